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

What is here, all sharing the schedule math of the small functions below (nothing is written twice):

- :func:`batch_size`, :func:`margin`, :func:`delta_1`, :func:`delta_2`, :func:`provider_term`, :func:`delta_3`,
  :func:`exploitation_length`, :func:`early_stop_threshold`, :func:`exploitation_plan`, :func:`utility_deltas`,
  :func:`utility_counts`: the schedule.
- :class:`Menu`, :func:`resolve_behaviour`: a provider's ranked models and what each behaviour of §6 runs and reports.
- :func:`simulate`: a fast batch simulator of one game (T = 1e6, 3 providers: about 0.1 s), queries drawn per phase as
  arrays from a :class:`Sampler` (:class:`GaussianSampler` for the paper's toy game, :class:`CacheSampler` for a
  response cache).
- :class:`SecondBest`: the same schedule as a :class:`Mechanism` of the PettingZoo market, query by query.
- The toy game of the paper: :data:`TOY`, :func:`toy_game`, :func:`toy_draw` (also used by ``envs/synthetic.py`` to
  generate the ``second_best_toy`` cache).

Conventions read from the authors' simulator (github.com/teafrogsf/LLMs-Auditing-Econ, ``src/simulator``) and kept:
models are ranked by mu_u(m) = b * mean score - mean output tokens * p_out(m) (stable sort, ties keep the given order);
the billed price is p_in(model 0) * input tokens + p_out(model 0) * reported output tokens (the real-record runs set
input prices to 0: price per reported output token only); the provider's cost is eta times the list price of the
model it actually ran, so honest play earns exactly 0; ties in uhat go to the higher provider index (the authors sort
ascending and take the last). Where the authors' code can do something odd - for R < B the exploitation still sends
B + R queries, as ``(R - B) % B`` is R then - :func:`exploitation_plan` does the same and says so.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Protocol, Sequence

import numpy as np

from mechanisms.base import NO_WINNER, MarketInfo, Mechanism

PHASES = ("exploration", "exploitation", "incentive", "utility", "done")
EXPLORATION, EXPLOITATION, INCENTIVE, UTILITY, DONE = range(5)
N_PLAY_PHASES = 4  # phases in which queries are delegated (behaviour index = phase index)

BEHAVIOURS = ("honest", "lie_model", "lie_token", "lie_all", "lie_ours", "lie_second_best")

# The paper's six strategies, behaviours in phases 1 / 2 / 3 (bonus and incentive) / 4, in the order of the authors'
# STRATEGY list (the published T1000000.0_eps0.3/<i>-<j>-<k> runs index it).
STRATEGIES: dict[str, tuple[str, str, str, str]] = {
    "ours": ("honest", "lie_ours", "lie_all", "lie_all"),
    "honest": ("honest", "honest", "honest", "honest"),
    "dishonest-model": ("honest", "lie_model", "lie_all", "lie_all"),
    "dishonest-length": ("honest", "lie_token", "lie_all", "lie_all"),
    "dishonest-all": ("lie_all", "lie_all", "lie_all", "lie_all"),
    "ours-honest-length": ("honest", "lie_second_best", "lie_all", "lie_all"),
}
STRATEGY_NAMES = tuple(STRATEGIES)

# Floor of vbar and taubar inside logarithms (a provider whose answers all score 0 would make ln undefined; the
# authors' code would fail there, this treats it as a hugely negative term).
_LOG_FLOOR = 1e-12


# ------------------------------------------------------------------------------------------------ schedule math


def _check_schedule(T: int, epsilon: float) -> None:
    if int(T) != T or T < 1:
        raise ValueError(f"horizon T must be a positive integer, got {T!r}")
    if not 0.0 < epsilon < 0.5:
        raise ValueError(f"epsilon must be in (0, 1/2), got {epsilon!r}")


def batch_size(T: int, epsilon: float) -> int:
    """B = floor(T^(2 epsilon)): queries per provider in exploration, per batch in exploitation, per incentive.

    A relative tolerance of 1e-12 keeps exact powers exact (T = 10^4, epsilon = 1/4 gives 100, not 99).
    """
    _check_schedule(T, epsilon)
    x = float(T) ** (2.0 * epsilon)
    return max(1, int(math.floor(x * (1.0 + 1e-12))))


def margin(T: int, epsilon: float, K: int) -> float:
    """M = T^(-epsilon) ln(K T), the confidence margin of the early-stop threshold."""
    _check_schedule(T, epsilon)
    return float(T) ** (-epsilon) * math.log(K * T)


def delta_1(min_value: float, max_tokens: float, L: float) -> float:
    """delta_1 = -ln(min mean reward) + ln(max mean output tokens) + max mean output tokens / L + 1.

    ``min_value`` is the smallest b * mean score and ``max_tokens`` the largest mean output tokens over *all* models of
    all providers (the published constant; the authors' earlier real-record code used -ln min(reward/tokens) instead).
    """
    return -math.log(max(min_value, _LOG_FLOOR)) + math.log(max(max_tokens, _LOG_FLOOR)) + max_tokens / L + 1.0


def delta_2(b: float) -> float:
    """delta_2 = ln b."""
    return math.log(b)


def provider_term(vbar: np.ndarray | float, taubar: np.ndarray | float, L: float) -> np.ndarray:
    """ln vbar - ln taubar - taubar / L: the per-provider term of delta_3 and of the utility-phase delta_i."""
    vbar = np.maximum(np.asarray(vbar, dtype=np.float64), _LOG_FLOOR)
    taubar = np.maximum(np.asarray(taubar, dtype=np.float64), _LOG_FLOOR)
    return np.log(vbar) - np.log(taubar) - taubar / L


def delta_3(vbar: np.ndarray, taubar: np.ndarray, L: float, best: int) -> float:
    """delta_3 = sum over i != i* of [ln vbar_i - ln taubar_i - taubar_i / L] (exploration means)."""
    terms = provider_term(vbar, taubar, L)
    return float(terms.sum() - terms[best])


def exploitation_length(T: int, B: int, K: int, d1: float, d2: float, d3: float) -> int:
    """R = max(0, int(T - ((delta_1 + 3) K + delta_2 + delta_3) B)) exploitation queries (int truncates to zero)."""
    x = T - ((d1 + 3.0) * K + d2 + d3) * B
    if not math.isfinite(x):
        return 0 if x < 0 else int(T)
    return max(0, int(x))


def early_stop_threshold(u_second: float, M: float, b: float, L: float, p_max: float, gamma: float) -> float:
    """threshold = u' - M (b + L p_max(i*)) / gamma: exploitation stops when its mean user utility falls below."""
    return u_second - M * (b + L * p_max) / gamma


def exploitation_plan(R: int, budget: int, B: int) -> tuple[int, int, int]:
    """Split exploitation into ``(first, n_batches, remainder)`` as the authors' simulator does.

    With R_eff = min(R, budget): a first block of ``first = min(B, budget)`` queries, then ``n_batches =
    max(0, (R_eff - B) // B)`` checked batches of B, then (if never stopped) ``remainder = (R_eff - B) mod B`` with
    Python's modulo. For R_eff >= B the total is exactly R_eff; for R_eff < B the authors' code sends B + R_eff queries
    ((R_eff - B) mod B = R_eff), and so does this. The caller still caps everything at the T budget.
    """
    R_eff = min(int(R), int(budget))
    rest = R_eff - B
    return min(B, max(0, int(budget))), max(0, rest // B), rest % B


def utility_deltas(d1: float, vbar: np.ndarray, taubar: np.ndarray, L: float) -> np.ndarray:
    """delta_i = delta_1 + ln vbar_i - ln taubar_i - taubar_i / L for every provider (exploration means)."""
    return d1 + provider_term(vbar, taubar, L)


def utility_counts(deltas: np.ndarray, B: int, uniforms: np.ndarray) -> np.ndarray:
    """Phase-4 queries per provider: int(delta_i B) plus one with probability frac(delta_i B) (``uniforms`` ~ U[0,1)
    decide), for positive delta_i; 0 otherwise."""
    x = np.asarray(deltas, dtype=np.float64) * B
    whole = np.floor(np.where(x > 0, x, 0.0))
    extra = (x > 0) & (np.asarray(uniforms) < x - whole)
    return (whole + extra).astype(np.int64)


# ------------------------------------------------------------------------------------------------ provider menus


@dataclass(frozen=True)
class Menu:
    """One provider's models in rank order: model 0 is the one it claims and is billed as.

    Attributes:
        names: model names.
        score: mean score per model (in [0, 1]).
        tokens: mean output tokens per model.
        price_in, price_out: list price per input / output token of each model (money units).
        input_tokens: mean input tokens per query (the input-token terms of lie_ours and lie_second_best).
    """

    names: tuple[str, ...]
    score: np.ndarray
    tokens: np.ndarray
    price_in: np.ndarray
    price_out: np.ndarray
    input_tokens: float = 0.0

    @staticmethod
    def ranked(names: Sequence[str], score: Sequence[float], tokens: Sequence[float], price_in: Sequence[float],
               price_out: Sequence[float], b: float, input_tokens: float = 0.0,
               keep_first: bool = False) -> "Menu":
        """The menu sorted by mu_u(m) = b * score - tokens * p_out (descending, stable); ``keep_first`` pins the given
        first model as model 0 (a market whose declared model is fixed) and ranks only the rest."""
        score, tokens = np.asarray(score, float), np.asarray(tokens, float)
        price_in, price_out = np.asarray(price_in, float), np.asarray(price_out, float)
        mu = b * score - tokens * price_out
        if keep_first:
            order = np.concatenate([[0], 1 + np.argsort(-mu[1:], kind="stable")])
        else:
            order = np.argsort(-mu, kind="stable")
        return Menu(tuple(names[k] for k in order), score[order], tokens[order], price_in[order], price_out[order],
                    float(input_tokens))

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def p_max(self) -> float:
        """Output price of model 0 (what every reported output token is billed at)."""
        return float(self.price_out[0])

    @property
    def p_in_max(self) -> float:
        return float(self.price_in[0])

    def user_utility(self, b: float) -> np.ndarray:
        """mu_u(m) = b * mean score - mean output tokens * p_out(m), the ranking key."""
        return b * self.score - self.tokens * self.price_out


class Behaviour(NamedTuple):
    """What a provider does on one query: the model it runs (menu index) and the output tokens it adds to the true
    count (reported = min(true + add, L); lie_token's add = L reports exactly L)."""

    model: int
    add: int


def resolve_behaviour(name: str, menu: Menu, u_second: float | None, b: float, L: int) -> Behaviour:
    """The model and padding of a behaviour of MECHANISMS.md §6 for a provider, given u' (None before it is known).

    - honest: model 0, true tokens. lie_model: the last-ranked model. lie_token: model 0, add L.
      lie_all: last-ranked model, add L.
    - lie_ours: among models with mu_u(m) >= u', add(m) = max(0, int((b score(m) - u' - n_in p_in(0)) / p_max -
      tokens(m))) and the model maximizing the expected margin p_max min(tokens(m) + add(m), L) - tokens(m) p_out(m)
      + n_in (p_in(0) - p_in(m)) (n_in = mean input tokens; the input terms vanish when input is not billed).
    - lie_second_best: among models with mu_u(m) >= u', the one maximizing p_max tokens(m) - tokens(m) p_out(m)
      + n_in (p_in(0) - p_in(m)), true tokens.
    For the last two, as in the authors' code, a model must beat a strictly positive margin to replace model 0.
    """
    last = menu.n - 1
    if name == "honest":
        return Behaviour(0, 0)
    if name == "lie_model":
        return Behaviour(last, 0)
    if name == "lie_token":
        return Behaviour(0, int(L))
    if name == "lie_all":
        return Behaviour(last, int(L))
    if name not in ("lie_ours", "lie_second_best"):
        raise ValueError(f"unknown behaviour {name!r}; choose one of {BEHAVIOURS}")
    if u_second is None:
        raise ValueError(f"behaviour {name!r} needs u' (the second-best utility), known only after exploration")
    mu = menu.user_utility(b)
    n_in = menu.input_tokens
    input_margin = n_in * (menu.p_in_max - menu.price_in)
    best, best_margin, best_add = 0, 0.0, 0
    for m in range(menu.n):
        if mu[m] < u_second:
            continue
        if name == "lie_ours":
            add = (b * menu.score[m] - u_second - n_in * menu.p_in_max) / menu.p_max - menu.tokens[m]
            add = max(0, int(add))
            value = menu.p_max * min(L, menu.tokens[m] + add) - menu.tokens[m] * menu.price_out[m] + input_margin[m]
        else:
            add = 0
            value = menu.p_max * menu.tokens[m] - menu.tokens[m] * menu.price_out[m] + input_margin[m]
        if value > best_margin:
            best, best_margin, best_add = m, value, add
    return Behaviour(best, best_add)


# ------------------------------------------------------------------------------------------------------ samplers


class Sampler(Protocol):
    """Per-query outcomes of a provider's model: ``draw(provider, model, n, rng) -> (score, input_tokens,
    output_tokens)``, arrays of length n (``model`` indexes the provider's ranked :class:`Menu`)."""

    def draw(self, provider: int, model: int, n: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...


def toy_draw(rng: np.random.Generator, score_mu: float, tokens_mu: float, n: int, L: int,
             score_sd: float = 0.05, tokens_sd: float = 50.0, min_tokens: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The toy game's per-model draws: score ~ clip(|N(mu, sd)|, 0, 1), output tokens ~ clip(round(|N(mu_tok,
    sd_tok)|), 50, L)."""
    score = np.clip(np.abs(rng.normal(score_mu, score_sd, n)), 0.0, 1.0)
    tokens = np.clip(np.rint(np.abs(rng.normal(tokens_mu, tokens_sd, n))), min_tokens, L)
    return score, tokens


def toy_input_draw(rng: np.random.Generator, n: int, mu: float = 500.0, sd: float = 50.0) -> np.ndarray:
    """The toy game's input tokens per query: round(|N(500, 50)|)."""
    return np.rint(np.abs(rng.normal(mu, sd, n)))


@dataclass
class GaussianSampler:
    """The paper's toy-game distributions (MECHANISMS.md §6) for ranked menus (``score_mu[i][m]``,
    ``tokens_mu[i][m]`` in each provider's rank order)."""

    score_mu: Sequence[Sequence[float]]
    tokens_mu: Sequence[Sequence[float]]
    L: int
    input_mu: float = 500.0
    input_sd: float = 50.0
    score_sd: float = 0.05
    tokens_sd: float = 50.0
    min_tokens: int = 50

    @staticmethod
    def for_menus(menus: Sequence[Menu], L: int, **kw: float) -> "GaussianSampler":
        return GaussianSampler([m.score for m in menus], [m.tokens for m in menus], L, **kw)

    def draw(self, provider, model, n, rng):
        tin = toy_input_draw(rng, n, self.input_mu, self.input_sd)
        score, tout = toy_draw(rng, self.score_mu[provider][model], self.tokens_mu[provider][model], n, self.L,
                               self.score_sd, self.tokens_sd, self.min_tokens)
        return score, tin, tout


@dataclass
class CacheSampler:
    """Queries drawn uniformly with replacement from a response cache: ``score``, ``input_tokens``, ``output_tokens``
    are [Q, M] arrays and ``columns[i][m]`` is the column of provider i's m-th ranked model."""

    score: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    columns: Sequence[Sequence[int]]

    def draw(self, provider, model, n, rng):
        q = rng.integers(0, self.score.shape[0], n)
        c = self.columns[provider][model]
        return (self.score[q, c].astype(np.float64), self.input_tokens[q, c].astype(np.float64),
                self.output_tokens[q, c].astype(np.float64))


# --------------------------------------------------------------------------------------------------- the game


@dataclass
class Game:
    """A delegation game: ranked menus, the outcome sampler, reward scale b, providers' share eta, max tokens L."""

    menus: list[Menu]
    sampler: Sampler
    b: float
    eta: float
    L: int

    @property
    def K(self) -> int:
        return len(self.menus)

    def delta_1(self) -> float:
        """delta_1 over all models of all providers."""
        values = np.concatenate([self.b * m.score for m in self.menus])
        tokens = np.concatenate([m.tokens for m in self.menus])
        return delta_1(float(values.min()), float(tokens.max()), self.L)


# The toy game of the paper (MECHANISMS.md §6): per provider (mean score of good / mid / weak); every provider's
# models have the same mean output tokens and per-token prices (input = output price).
@dataclass(frozen=True)
class ToyGame:
    providers: tuple[tuple[str, tuple[float, float, float]], ...] = (
        ("p1", (0.9, 0.6, 0.5)), ("p2", (0.6, 0.5, 0.4)), ("p3", (0.7, 0.5, 0.4)))
    tiers: tuple[str, str, str] = ("good", "mid", "weak")
    tokens: tuple[float, float, float] = (1000.0, 900.0, 800.0)
    prices: tuple[float, float, float] = (0.0005, 0.0004, 0.0003)
    T: int = 1_000_000
    epsilon: float = 0.3
    b: float = 5.0
    gamma: float = 2.0
    eta: float = 0.9
    L: int = 5000
    input_mu: float = 500.0
    input_sd: float = 50.0
    score_sd: float = 0.05
    tokens_sd: float = 50.0
    min_tokens: int = 50

    def model_names(self, i: int) -> list[str]:
        return [f"{self.providers[i][0]}-{tier}" for tier in self.tiers]


TOY = ToyGame()


def toy_game(toy: ToyGame = TOY) -> Game:
    """The paper's toy game as a :class:`Game` (Gaussian sampler, input tokens billed at model 0's input price)."""
    menus = [Menu.ranked(toy.model_names(i), scores, toy.tokens, toy.prices, toy.prices, toy.b, toy.input_mu)
             for i, (_, scores) in enumerate(toy.providers)]
    sampler = GaussianSampler.for_menus(menus, toy.L, input_mu=toy.input_mu, input_sd=toy.input_sd,
                                        score_sd=toy.score_sd, tokens_sd=toy.tokens_sd, min_tokens=toy.min_tokens)
    return Game(menus, sampler, toy.b, toy.eta, toy.L)


# -------------------------------------------------------------------------------------------- batch simulator


@dataclass
class SimResult:
    """Outcome of one simulated game (phase index 0..3 = phases 1..4; phase 3 holds i*'s bonus and the incentive).

    Attributes:
        delegations, user_utility, provider_utility, reward, reported_tokens: [K, 4] per provider and phase (sums).
        best, second: i* and the second-best provider; u_second: u'; u_hat, vbar, taubar: [K] exploration means.
        early_stopped, stop_time: whether exploitation stopped early and the number of queries delegated by then
            (-1 if never).
        exploitation_length: queries i* served in phase 2.
    """

    T: int
    B: int
    M: float
    delta_1: float
    delta_2: float
    delta_3: float
    R: int
    threshold: float
    best: int
    second: int
    u_second: float
    u_hat: np.ndarray
    vbar: np.ndarray
    taubar: np.ndarray
    deltas: np.ndarray
    behaviours: list[tuple[str, str, str, str]]
    delegations: np.ndarray
    user_utility: np.ndarray
    provider_utility: np.ndarray
    reward: np.ndarray
    reported_tokens: np.ndarray
    early_stopped: bool = False
    stop_time: int = -1
    exploitation_length: int = 0

    @property
    def served(self) -> int:
        return int(self.delegations.sum())

    @property
    def user_utility_total(self) -> float:
        return float(self.user_utility.sum())

    @property
    def user_utility_per_query(self) -> float:
        """Total user utility / T (unserved queries count as 0)."""
        return self.user_utility_total / self.T

    @property
    def provider_utility_total(self) -> np.ndarray:
        return self.provider_utility.sum(axis=1)

    @property
    def provider_delegations(self) -> np.ndarray:
        return self.delegations.sum(axis=1)


class _Outcome(NamedTuple):
    user: np.ndarray
    reward: np.ndarray
    reported: np.ndarray
    provider: np.ndarray


def _play(game: Game, i: int, behaviour: str, n: int, u_second: float | None, rng: np.random.Generator) -> _Outcome:
    """n queries to provider i under one behaviour, as arrays."""
    menu = game.menus[i]
    act = resolve_behaviour(behaviour, menu, u_second, game.b, game.L)
    score, tin, tout = game.sampler.draw(i, act.model, n, rng)
    reported = np.minimum(tout + act.add, game.L) if act.add else tout
    price = menu.price_in[0] * tin + menu.price_out[0] * reported
    reward = game.b * score
    real = menu.price_in[act.model] * tin + menu.price_out[act.model] * tout
    return _Outcome(reward - price, reward, reported, game.eta * (price - real))


def _parse_strategy(s: str | Sequence[str]) -> tuple[str, str, str, str]:
    if isinstance(s, str):
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}; choose one of {STRATEGY_NAMES}")
        return STRATEGIES[s]
    s = tuple(s)
    if len(s) != N_PLAY_PHASES or any(x not in BEHAVIOURS for x in s):
        raise ValueError(f"a strategy is a name or 4 behaviours from {BEHAVIOURS}, got {s!r}")
    return s  # type: ignore[return-value]


def simulate(game: Game, strategies: Sequence[str | Sequence[str]], T: int, epsilon: float = 0.3,
             gamma: float = 2.0, seed: int | np.random.SeedSequence | None = 0, d1: float | None = None) -> SimResult:
    """Run the second-best delegation mechanism once with every provider playing a fixed strategy.

    Queries are independent given the phase and behaviour, so each phase segment is drawn as one array; exploitation
    draws its planned batches at once and finds the first batch after which the running mean user utility (cumulative
    sums over batch sums) is below the threshold, keeping the draws up to it.

    Args:
        game: menus, sampler, b, eta, L.
        strategies: per provider a name of :data:`STRATEGIES` or 4 behaviour names (phases 1..4).
        T: horizon (queries to delegate at most); epsilon in (0, 1/2); gamma > 0.
        seed: seed of the numpy Generator (all randomness flows through it).
        d1: delta_1 (default: from the game's model tables, :meth:`Game.delta_1`).
    """
    K = game.K
    if K < 2:
        raise ValueError("the mechanism needs at least 2 providers (u' is the second-best utility)")
    if len(strategies) != K:
        raise ValueError(f"{len(strategies)} strategies for {K} providers")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    behaviours = [_parse_strategy(s) for s in strategies]
    rng = np.random.default_rng(seed)
    b, L = game.b, game.L
    B, M = batch_size(T, epsilon), margin(T, epsilon, K)
    d1 = game.delta_1() if d1 is None else float(d1)
    d2 = delta_2(b)
    shape = (K, N_PLAY_PHASES)
    dele = np.zeros(shape, dtype=np.int64)
    user, prov, rew, rep = (np.zeros(shape) for _ in range(4))
    t = 0

    def record(i: int, phase: int, out: _Outcome, n: int | None = None) -> None:
        nonlocal t
        if n is not None:
            out = _Outcome(*(a[:n] for a in out))
        k = out.user.shape[0]
        dele[i, phase] += k
        user[i, phase] += out.user.sum()
        prov[i, phase] += out.provider.sum()
        rew[i, phase] += out.reward.sum()
        rep[i, phase] += out.reported.sum()
        t += k

    # Phase 1: exploration, B queries per provider in blocks.
    u_hat, vbar, taubar = np.zeros(K), np.zeros(K), np.zeros(K)
    for i in range(K):
        n = min(B, T - t)
        out = _play(game, i, behaviours[i][EXPLORATION], n, None, rng)
        record(i, EXPLORATION, out)
        if n:
            u_hat[i], vbar[i], taubar[i] = out.user.mean(), out.reward.mean(), out.reported.mean()
    order = np.argsort(u_hat, kind="stable")
    best, second = int(order[-1]), int(order[-2])
    u2 = float(u_hat[second])
    d3 = delta_3(vbar, taubar, L, best)
    R = exploitation_length(T, B, K, d1, d2, d3)
    thr = early_stop_threshold(u2, M, b, L, game.menus[best].p_max, gamma)
    result = dict(T=T, B=B, M=M, delta_1=d1, delta_2=d2, delta_3=d3, R=R, threshold=thr, best=best, second=second,
                  u_second=u2, u_hat=u_hat, vbar=vbar, taubar=taubar, behaviours=behaviours)

    # Phase 2: exploitation with the batch early-stop check, then the remainder and the bonus if never stopped.
    first, n_batches, remainder = exploitation_plan(R, T - t, B)
    early, stop_time = False, -1
    n_full = min(first + n_batches * B, T - t)
    out = _play(game, best, behaviours[best][EXPLOITATION], n_full, u2, rng)
    n_used = n_full
    if n_batches > 0 and n_full == first + n_batches * B:
        batch_sums = out.user[first:].reshape(n_batches, B).sum(axis=1)
        running = (out.user[:first].sum() + np.cumsum(batch_sums)) / (first + B * np.arange(1, n_batches + 1))
        below = np.flatnonzero(running < thr)
        if below.size:
            early = True
            n_used = first + (int(below[0]) + 1) * B
    record(best, EXPLOITATION, out, n_used)
    if early:
        stop_time = t
    else:
        n = min(remainder, T - t)
        record(best, EXPLOITATION, _play(game, best, behaviours[best][EXPLOITATION], n, u2, rng))
        n = min(B, T - t)
        record(best, INCENTIVE, _play(game, best, behaviours[best][INCENTIVE], n, u2, rng))
    exploited = int(dele[best, EXPLOITATION])

    # Phase 3: incentive, B queries to every other provider.
    for i in range(K):
        if i != best:
            record(i, INCENTIVE, _play(game, i, behaviours[i][INCENTIVE], min(B, T - t), u2, rng))

    # Phase 4: utility-based delegations.
    deltas = utility_deltas(d1, vbar, taubar, L)
    counts = utility_counts(deltas, B, rng.random(K))
    for i in range(K):
        n = min(int(counts[i]), T - t)
        if n:
            record(i, UTILITY, _play(game, i, behaviours[i][UTILITY], n, u2, rng))

    return SimResult(**result, deltas=deltas, delegations=dele, user_utility=user, provider_utility=prov, reward=rew,
                     reported_tokens=rep, early_stopped=early, stop_time=stop_time, exploitation_length=exploited)


# ------------------------------------------------------------------------------------------ env mechanism


@dataclass
class _Segment:
    provider: int
    phase: int
    count: int
    kind: str  # explore | exploit_first | exploit_batch | exploit_rest | bonus | incentive | utility


class SecondBest(Mechanism):
    """The second-best delegation schedule as a market mechanism (MECHANISMS.md §6), one query per round.

    ``allocate`` ignores bids and returns the provider the schedule names for the next query (``NO_WINNER`` once the
    schedule is exhausted before the env's horizon); billing is per token (the market bills p_in(declared) * input +
    p_out(declared) * reported output tokens and hands that payment to :meth:`update`). The mechanism only observes
    the score and the reported tokens: uhat_i, vbar_i (mean b*S) and taubar_i (mean reported output tokens) come from
    the exploration outcomes, the exploitation check uses the observed user utility b*S - payment.

    Args:
        T: length of the schedule (default: the env's horizon).
        epsilon: in (0, 1/2); B = floor(T^(2 eps)), M = T^-eps ln(K T).
        gamma: > 0, scales the early-stop margin.
        b: reward scale (default: the market's value_scale).
        eta: providers' share of the payment; not used by the schedule (kept for parity with the paper's
            parameters and reported in diagnostics).
        delta_1: the constant delta_1 of the paper (from the model table: :func:`delta_1`). Default: estimated at
            the end of exploration from what the platform observed, delta_1(min_i vbar_i, max_i taubar_i, L) - the
            platform never sees the providers' other models, so this uses the declared behaviour only.

    Public state (fixed size 6 + N): phase one-hot (exploration, exploitation, incentive - also i*'s bonus -,
    utility, done), u' / b, and each provider's uhat / b (0 before exploration ends). Diagnostics: phase, early_stopped,
    stop_time, best, u_second, R, threshold, delegated; all finite (R = -1, best = -1 and the rest 0 until
    exploration ends).
    """

    name = "second_best"
    billing = "per_token"
    uses_bids = False

    def __init__(self, T: int | None = None, epsilon: float = 0.3, gamma: float = 2.0, b: float | None = None,
                 eta: float = 0.9, delta_1: float | None = None):
        if T is not None:
            _check_schedule(T, 0.25)
        if not 0.0 < epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 1/2), got {epsilon!r}")
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        if b is not None and b <= 0:
            raise ValueError(f"b must be > 0, got {b!r}")
        if not 0.0 < eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], got {eta!r}")
        self.T, self.epsilon, self.gamma, self.b, self.eta, self.delta_1 = T, epsilon, gamma, b, eta, delta_1
        self.info: MarketInfo | None = None

    # ----------------------------------------------------------------------------------------------- lifecycle

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        K = info.n_providers
        if K < 2:
            raise ValueError("second_best needs at least 2 providers")
        self.horizon = int(self.T if self.T is not None else info.horizon)
        self.scale = float(self.b if self.b is not None else info.value_scale)
        self.L = int(info.max_output_tokens)
        self.B = batch_size(self.horizon, self.epsilon)
        self.M = margin(self.horizon, self.epsilon, K)
        # Constants known only once exploration ends are 0 until then (R = -1 marks that): diagnostics stay finite,
        # so infos compare equal across identical runs.
        self.d1 = float(self.delta_1) if self.delta_1 is not None else 0.0
        self.d2 = delta_2(self.scale)
        self.d3 = 0.0
        self.R = -1
        self.threshold = 0.0
        self.t = 0
        self.best = -1
        self.second = -1
        self.u_second = 0.0
        self.u_hat = np.zeros(K)
        self.vbar = np.zeros(K)
        self.taubar = np.zeros(K)
        self.deltas = np.zeros(K)
        self.delegations = np.zeros((K, N_PLAY_PHASES), dtype=np.int64)
        self.early_stopped = False
        self.stop_time = -1
        self._sums = np.zeros((K, 3))  # exploration sums: user utility, reward, reported tokens
        self._exploit_sum = 0.0
        self._exploit_n = 0
        self._queue: deque[_Segment] = deque(_Segment(i, EXPLORATION, self.B, "explore") for i in range(K))
        self._seg: _Segment | None = None
        self._state = np.zeros(6 + K)
        self._advance()

    # ----------------------------------------------------------------------------------------------- schedule

    @property
    def phase(self) -> int:
        return DONE if self._seg is None else self._seg.phase

    def _advance(self) -> None:
        """Move to the next non-empty segment (or to 'done' when the schedule or the T budget is exhausted)."""
        self._seg = None
        while self._queue and self.t < self.horizon:
            seg = self._queue.popleft()
            if seg.count > 0:
                seg.count = min(seg.count, self.horizon - self.t)
                self._seg = seg
                break
        self._state[:5] = 0.0
        self._state[self.phase] = 1.0

    def _end_exploration(self) -> None:
        K, L = self.info.n_providers, self.L
        n = np.maximum(self.delegations[:, EXPLORATION], 1)
        self.u_hat, self.vbar, self.taubar = (self._sums / n[:, None]).T.copy()
        order = np.argsort(self.u_hat, kind="stable")
        self.best, self.second = int(order[-1]), int(order[-2])
        self.u_second = float(self.u_hat[self.second])
        if self.delta_1 is None:
            self.d1 = delta_1(float(self.vbar.min()), float(self.taubar.max()), L)
        self.d3 = delta_3(self.vbar, self.taubar, L, self.best)
        self.R = exploitation_length(self.horizon, self.B, K, self.d1, self.d2, self.d3)
        self.threshold = early_stop_threshold(self.u_second, self.M, self.scale, L,
                                              float(self.info.price_out[self.best]), self.gamma)
        first, n_batches, remainder = exploitation_plan(self.R, self.horizon - self.t, self.B)
        q = self._queue
        q.append(_Segment(self.best, EXPLOITATION, first, "exploit_first"))
        q.extend(_Segment(self.best, EXPLOITATION, self.B, "exploit_batch") for _ in range(n_batches))
        q.append(_Segment(self.best, EXPLOITATION, remainder, "exploit_rest"))
        q.append(_Segment(self.best, INCENTIVE, self.B, "bonus"))
        q.extend(_Segment(i, INCENTIVE, self.B, "incentive") for i in range(K) if i != self.best)
        self.deltas = utility_deltas(self.d1, self.vbar, self.taubar, L)
        counts = utility_counts(self.deltas, self.B, self.rng.random(K))
        q.extend(_Segment(i, UTILITY, int(counts[i]), "utility") for i in range(K))
        self._state[5] = self.u_second / self.scale
        self._state[6:] = self.u_hat / self.scale

    def _check_batch(self) -> None:
        if self._exploit_sum / self._exploit_n < self.threshold:
            self.early_stopped = True
            self.stop_time = self.t
            self._queue = deque(s for s in self._queue if s.kind not in ("exploit_batch", "exploit_rest", "bonus"))

    # ------------------------------------------------------------------------------------------- interface

    def allocate(self, bids: np.ndarray, context: np.ndarray, group: int) -> tuple[int, float]:
        if self._seg is None:
            return NO_WINNER, 0.0
        return self._seg.provider, 0.0

    def update(self, winner: int, score: float, input_tokens: int, reported_output_tokens: int,
               payment: float, context: np.ndarray, group: int) -> None:
        seg = self._seg
        if seg is None or winner != seg.provider:
            return
        reward = self.scale * score
        user = reward - payment
        self.delegations[winner, seg.phase] += 1
        self.t += 1
        if seg.phase == EXPLORATION:
            self._sums[winner] += (user, reward, reported_output_tokens)
        elif seg.phase == EXPLOITATION:
            self._exploit_sum += user
            self._exploit_n += 1
        seg.count -= 1
        if seg.count > 0 and self.t < self.horizon:
            return
        if seg.kind == "explore" and not any(s.kind == "explore" for s in self._queue):
            self._end_exploration()
        elif seg.kind == "exploit_batch" and seg.count == 0:
            self._check_batch()
        self._advance()

    @property
    def public_state_dim(self) -> int:
        return 6 + self.info.n_providers if self.info is not None else 0

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        return self._state

    def diagnostics(self) -> dict[str, float]:
        return {
            "phase": float(self.phase), "early_stopped": float(self.early_stopped), "stop_time": float(self.stop_time),
            "best": float(self.best), "u_second": self.u_second, "R": float(self.R), "threshold": self.threshold,
            "delegated": float(self.t),
        }

    def schedule(self) -> dict[str, float | np.ndarray]:
        """The schedule's constants and counts so far (for tests and reports)."""
        return {"T": self.horizon, "B": self.B, "M": self.M, "delta_1": self.d1, "delta_2": self.d2,
                "delta_3": self.d3, "R": self.R, "threshold": self.threshold, "best": self.best,
                "u_second": self.u_second, "u_hat": self.u_hat.copy(), "vbar": self.vbar.copy(),
                "taubar": self.taubar.copy(), "deltas": np.array(self.deltas), "delegations": self.delegations.copy(),
                "early_stopped": self.early_stopped, "stop_time": self.stop_time}


__all__ = [
    "PHASES", "BEHAVIOURS", "STRATEGIES", "STRATEGY_NAMES", "batch_size", "margin", "delta_1", "delta_2",
    "provider_term", "delta_3", "exploitation_length", "early_stop_threshold", "exploitation_plan", "utility_deltas",
    "utility_counts", "Menu", "Behaviour", "resolve_behaviour", "Sampler", "GaussianSampler", "CacheSampler",
    "Game", "ToyGame", "TOY", "toy_game", "toy_draw", "toy_input_draw", "SimResult", "simulate", "SecondBest",
]
