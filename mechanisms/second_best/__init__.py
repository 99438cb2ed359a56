"""Seed 003: "pay for the second-best service" delegation (Cao et al., arXiv 2511.00847, WWW 2026), MECHANISMS.md §6.

No bids. The user delegates T queries to K providers in four phases and, by trusting the best provider only while its
observed user utility stays near the *second*-best one, pays roughly for second-best service:

1. Exploration: each provider serves B = floor(T^(2 eps)) queries (in blocks, provider 0 first). uhat_i = mean user
   utility b*S - price; i* = argmax uhat, u' = the second-highest uhat; vbar_i, taubar_i = mean reward b*S and mean
   *reported* output tokens of provider i over its B queries.
2. Exploitation: R = max(0, int(T - ((delta_1 + 3) K + delta_2 + delta_3) B)) queries to i*: a first block of B, then
   batches of B; after each batch the mean user utility over *all* exploitation queries so far is compared with
   threshold = u' - M (b + L p_max(i*)) / gamma, M = T^-eps ln(K T); below it, exploitation stops for good (early
   stop). Never stopped: the remainder ((R - B) mod B, Python's modulo) and then B bonus queries to i*.
3. Incentive: every other provider gets B queries. (The bonus of phase 2 is played with phase-3 behaviour.)
4. Utility-based: provider i gets int(delta_i B) queries, one more with probability frac(delta_i B), when
   delta_i = delta_1 + ln vbar_i - ln taubar_i - taubar_i / L is positive.
The schedule never exceeds T delegations in total.

The package, by role, all sharing one schedule (nothing is written twice):

- ``schedule``: :func:`batch_size`, :func:`margin`, :func:`delta_1`, :func:`delta_2`, :func:`provider_term`,
  :func:`delta_3`, :func:`exploitation_length`, :func:`early_stop_threshold`, :func:`exploitation_plan`,
  :func:`utility_deltas`, :func:`utility_counts`.
- ``behaviours``: :class:`Menu`, :func:`resolve_behaviour`, :data:`STRATEGIES`: a provider's ranked models, what each
  behaviour of §6 runs and reports, and the paper's six strategies.
- ``samplers``: per-query outcomes (:class:`GaussianSampler` for the paper's toy game, :class:`CacheSampler` for a
  response cache); :func:`toy_draw` and :func:`toy_input_draw` also generate the ``second_best_toy`` cache.
- ``game``: :class:`Game` and the paper's toy game (:data:`TOY`, :func:`toy_game`).
- ``simulate``: :func:`simulate`, a fast batch simulator of one game (T = 1e6, 3 providers: about 0.1 s).
- ``mechanism``: :class:`SecondBest`, the same schedule as a :class:`Mechanism` of the market, query by query.

Conventions read from the authors' simulator (github.com/teafrogsf/LLMs-Auditing-Econ, ``src/simulator``) and kept:
models are ranked by mu_u(m) = b * mean score - mean output tokens * p_out(m) (stable sort, ties keep the given order);
the billed price is p_in(model 0) * input tokens + p_out(model 0) * reported output tokens (the real-record runs set
input prices to 0: price per reported output token only); the provider's cost is eta times the list price of the
model it actually ran, so honest play earns exactly 0; ties in uhat go to the higher provider index (the authors sort
ascending and take the last). Where the authors' code can do something odd - for R < B the exploitation still sends
B + R queries, as ``(R - B) % B`` is R then - :func:`exploitation_plan` does the same and says so.
"""

from mechanisms.second_best.behaviours import BEHAVIOURS, STRATEGIES, STRATEGY_NAMES, Behaviour, Menu, resolve_behaviour
from mechanisms.second_best.game import TOY, Game, ToyGame, toy_game
from mechanisms.second_best.mechanism import SecondBest
from mechanisms.second_best.samplers import CacheSampler, GaussianSampler, Sampler, toy_draw, toy_input_draw
from mechanisms.second_best.schedule import (
    DONE,
    EXPLOITATION,
    EXPLORATION,
    INCENTIVE,
    N_PLAY_PHASES,
    PHASES,
    UTILITY,
    batch_size,
    delta_1,
    delta_2,
    delta_3,
    early_stop_threshold,
    exploitation_length,
    exploitation_plan,
    margin,
    provider_term,
    utility_counts,
    utility_deltas,
)
from mechanisms.second_best.simulate import SimResult, simulate

__all__ = [
    "PHASES",
    "EXPLORATION",
    "EXPLOITATION",
    "INCENTIVE",
    "UTILITY",
    "DONE",
    "N_PLAY_PHASES",
    "BEHAVIOURS",
    "STRATEGIES",
    "STRATEGY_NAMES",
    "batch_size",
    "margin",
    "delta_1",
    "delta_2",
    "provider_term",
    "delta_3",
    "exploitation_length",
    "early_stop_threshold",
    "exploitation_plan",
    "utility_deltas",
    "utility_counts",
    "Menu",
    "Behaviour",
    "resolve_behaviour",
    "Sampler",
    "GaussianSampler",
    "CacheSampler",
    "Game",
    "ToyGame",
    "TOY",
    "toy_game",
    "toy_draw",
    "toy_input_draw",
    "SimResult",
    "simulate",
    "SecondBest",
]
