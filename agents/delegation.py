"""The six provider strategies of seed 003 (Cao et al., MECHANISMS.md §6) as env policies for ``second_best``.

A strategy is one behaviour per phase of the mechanism (exploration / exploitation / incentive and i*'s bonus /
utility-based; :data:`mechanisms.second_best.STRATEGIES`). The policy reads the phase of the coming query and u'
from the mechanism's public state (``obs[layout.mechanism]``: phase one-hot of 5, then u' / b, then uhat / b) and
its own identity from the agent-id one-hot, and turns the behaviour into the market's action:

- model: a[1] = 0 serves the declared model (model 0); any other model is served through the layout's codec
  (:meth:`envs.layout.ObservationLayout.substitution_action`: a[1] = (k - 0.5) / n_substitutes picks exactly the k-th
  cheaper menu model).
  lie_model / lie_all run the *last-ranked* model (ranking by b * mean score - mean tokens * p_out); in the toy game
  that is the cheapest substitute, a[1] = 1. A model that is not a cheaper substitute of the declared one cannot be
  served in this market; the policy then serves the declared model.
- tokens: the market reports min(ceil(tau (1 + iota)), L) with iota = a[2] * max_inflation. lie_token / lie_all
  (reported = min(tau + L, L) = L) use a[2] = 1, which reaches L only if the scenario's max_inflation >= L / min
  tau - 1 (``second_best_toy`` sets 99: tau >= 50, L = 5000). lie_ours' additive padding ``add`` (the exact procedure
  of :func:`mechanisms.second_best.resolve_behaviour`, used as is by the batch simulator) is approximated by a
  multiplicative iota = add / E[tau], E[tau] the query group's mean output tokens of the chosen model (from the
  observation): the expected reported tokens then equal E[tau] + add, as in the paper, but per query they scale with
  tau instead of being shifted by add.
- bids are ignored by second_best (a[0] = 0).

The policy needs what a provider privately knows about its own models (mean score, mean output tokens, list prices),
which the observation does not carry: it takes the :class:`envs.scenarios.Market` (``market=env.market``) or builds
the one of ``scenario`` (default ``second_best_toy``); a market given explicitly must match the observation layout.

Fallbacks, so that every registered strategy acts validly in any market (they are not the paper's play):
- no market matching the layout (none given and the default scenario's does not fit): models are ranked by the
  provider's observed expected cost instead of expected user utility (the last-ranked model is the cheapest
  substitute, a[1] = 1), and lie_ours / lie_second_best, which need the models' quality, play honest;
- a mechanism other than second_best (no phase in the public state): the strategy's exploitation behaviour is played
  on every query with u' unknown, so lie_ours / lie_second_best play honest.

Registered strategies: ``sb_ours``, ``sb_honest``, ``sb_dishonest_model``, ``sb_dishonest_length``,
``sb_dishonest_all``, ``sb_ours_honest_length``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from agents.policy import Policy
from agents.registry import register_strategy
from envs.layout import INFLATION, SUBSTITUTION, ObservationLayout
from envs.scenarios import Market, build_market, load_scenario, resolve_cache
from mechanisms.second_best import EXPLOITATION, EXPLORATION, N_PLAY_PHASES, STRATEGIES, Menu, resolve_behaviour

REGISTERED = {
    "sb_ours": "ours",
    "sb_honest": "honest",
    "sb_dishonest_model": "dishonest-model",
    "sb_dishonest_length": "dishonest-length",
    "sb_dishonest_all": "dishonest-all",
    "sb_ours_honest_length": "ours-honest-length",
}


def menus_from_market(market: Market, b: float | None = None) -> tuple[list[Menu], list[list[int]]]:
    """Each provider's :class:`Menu` (model 0 = its declared model, the rest ranked by expected user utility) from
    the market's cache means and list prices, and the market model index of every menu position."""
    cfg = market.config
    b = float(cfg.value_scale if b is None else b)
    cache = resolve_cache(cfg)
    menus, index = [], []
    for i in range(cfg.n):
        d = int(market.declared[i])
        models = [d] + [int(m) for m in np.flatnonzero(market.menu[i]) if m != d]
        p_in, p_out = [], []
        for m in models:
            if m == d:
                p_in.append(float(market.price_in[i]))
                p_out.append(float(market.price_out[i]))
            else:
                col = cache.models.index(market.models[m])
                p_in.append(float(cache.price_in[col]) * cfg.list_price_scale)
                p_out.append(float(cache.price_out[col]) * cfg.list_price_scale)
        score = market.score[:, models].mean(axis=0)
        tokens = market.output_tokens[:, models].mean(axis=0)
        menu = Menu.ranked(
            [market.models[m] for m in models],
            score,
            tokens,
            p_in,
            p_out,
            b,
            float(market.input_tokens[:, d].mean()),
            keep_first=True,
        )
        menus.append(menu)
        index.append([market.models.index(name) for name in menu.names])
    return menus, index


class DelegationPolicy(Policy):
    """One of the paper's six strategies (a name of :data:`mechanisms.second_best.STRATEGIES`) as a market policy.

    Args:
        layout: the market's observation layout (``env.layout``).
        strategy: ``ours``, ``honest``, ``dishonest-model``, ``dishonest-length``, ``dishonest-all`` or
            ``ours-honest-length``.
        market: the compiled market (``env.market``); default: built from ``scenario`` if it fits the layout.
        scenario: scenario preset used when no market is given.
        b: reward scale of the mechanism (default: the market's value_scale, as ``second_best`` assumes).
    """

    def __init__(
        self,
        layout: ObservationLayout,
        strategy: str,
        market: Market | None = None,
        scenario: str = "second_best_toy",
        b: float | None = None,
        name: str = "",
    ):
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown delegation strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
        n_agents = layout.agent_id.stop - layout.agent_id.start
        fits = lambda mk: layout.n_models == mk.n_models and n_agents == mk.config.n  # noqa: E731
        if market is not None and not fits(market):
            raise ValueError(
                f"strategy {strategy!r}: the market ({market.config.n} providers, {market.n_models} "
                f"models) does not match the env's observation layout ({n_agents} agents, "
                f"{layout.n_models} models); pass market=env.market"
            )
        if market is None:
            market = build_market(load_scenario(scenario))
            market = market if fits(market) else None
        self.layout = layout
        self.strategy = strategy
        self.behaviours = STRATEGIES[strategy]
        self.name = name or f"sb_{strategy}"
        self.has_phases = layout.mechanism.stop - layout.mechanism.start == 6 + n_agents
        self.exact = market is not None
        self.L = int(layout.max_output_tokens)
        if market is not None:
            self.b = float(market.config.value_scale if b is None else b)
            self.menus, self.model_index = menus_from_market(market, self.b)
            self.subst = [
                [layout.substitution_action(i, m, int(market.declared[i])) for m in idx]
                for i, idx in enumerate(self.model_index)
            ]
        else:
            self.b = float(layout.value_scale if b is None else b)
        self._memo: dict[tuple[int, int, float | None], tuple[int, float, int]] = {}

    def _plan(self, i: int, phase: int, u_second: float | None) -> tuple[int, float, int]:
        """(menu model, a[1], padding) of provider i in a phase (memoized: u' is fixed after exploration)."""
        key = (i, phase, u_second)
        plan = self._memo.get(key)
        if plan is None:
            behaviour = self.behaviours[phase] if phase < N_PLAY_PHASES else "honest"
            if behaviour in ("lie_ours", "lie_second_best") and (u_second is None or not self.exact):
                behaviour = "honest"  # u' or the models' quality unknown (fallbacks of the module docstring)
            if self.exact:
                act = resolve_behaviour(behaviour, self.menus[i], u_second, self.b, self.L)
                a1 = self.subst[i][act.model]
                plan = (act.model, 0.0, 0) if a1 is None else (act.model, a1, act.add)
            else:  # ranked by cost: the last-ranked model is the cheapest substitute
                last = behaviour in ("lie_model", "lie_all")
                plan = (-1 if last else 0, 1.0 if last else 0.0, self.L if behaviour in ("lie_token", "lie_all") else 0)
            self._memo[key] = plan
        return plan

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        rows = obs.reshape(-1, obs.shape[-1])
        lay = self.layout
        if self.has_phases:
            mech = rows[:, lay.mechanism]
            phases = mech[:, :5].argmax(axis=1)
            u_second = mech[:, 5].astype(np.float64) * self.b
        else:
            phases = np.full(rows.shape[0], EXPLOITATION)
        agents = rows[:, lay.agent_id].argmax(axis=1)
        out = np.zeros((rows.shape[0], 3), dtype=np.float32)
        for r in range(rows.shape[0]):
            i, phase = int(agents[r]), int(phases[r])
            u2 = float(u_second[r]) if self.has_phases and phase != EXPLORATION else None
            model, a1, add = self._plan(i, phase, u2)
            out[r, SUBSTITUTION] = a1
            if add >= self.L:
                out[r, INFLATION] = 1.0
            elif add > 0:
                m = self.model_index[i][model]
                mean_tokens = float(rows[r, lay.expected_output_tokens][m]) * self.L or self.menus[i].tokens[model]
                out[r, INFLATION] = lay.inflation_action(add / mean_tokens)
        return out.reshape(obs.shape[:-1] + (3,))


def _factory(strategy: str) -> Callable[..., Policy]:
    def factory(
        layout: ObservationLayout,
        seed: int | None = None,
        market: Market | None = None,
        scenario: str = "second_best_toy",
        b: float | None = None,
    ) -> Policy:
        return DelegationPolicy(layout, strategy, market=market, scenario=scenario, b=b)

    return factory


for _name, _strategy in REGISTERED.items():
    register_strategy(_name, _factory(_strategy))


__all__ = ["DelegationPolicy", "REGISTERED", "menus_from_market"]
