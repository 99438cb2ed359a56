"""Scripted provider strategies: the honest baseline and the hand-written manipulations (MECHANISMS.md §1, §8).

All are one :class:`ScriptedPolicy` with a bid rule, a substitution level and an inflation level. One lever each:

- ``truthful``: bid the expected cost of serving the declared model, serve it, report true tokens.
- ``markup``: bid ``factor`` x cost (default 1.25).
- ``underbid``: bid a tenth of the cost: buy rounds at a loss. It pays where winning now is worth more later (a
  mechanism that learns a provider's quality from the rounds it wins, or ranks a bid below its prior's support as the
  support's bottom); learners found it under soft_rochet and myerson.
- ``bne``: the symmetric first-price equilibrium of the uniform market, b(c) = c + (c_max - c) / n (§8).
- ``substitute``: serve the cheapest menu model, billed as the declared one (bid as if serving the declared model).
- ``inflate``: report the most output tokens the market allows (a[2] = 1: (1 + max_inflation) x the true count,
  capped at L); it pays where the user is billed per reported token.

Joint deviations (several levers at once, the strongest hand-written attacks):

- ``substitute_cost``: serve the cheapest substitute and ask what *it* costs (undercut rivals with its cost advantage).
- ``substitute_markup``: serve the cheapest substitute and ask ``factor`` x its cost.
- ``markup_inflate``: ``markup`` and ``inflate`` together.
- ``all_levers``: ``substitute_markup`` and ``inflate`` together.

``random``: uniform actions, seeded. Every deviation's name states its levers (:data:`LEVERS`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from agents.policy import Policy
from agents.registry import StrategyFactory, register_strategy
from envs.layout import BID, INFLATION, SUBSTITUTION, ObservationLayout

BidRule = Literal["cost", "markup", "bne"]
CostBasis = Literal["declared", "served"]


class ScriptedPolicy(Policy):
    """A fixed strategy reading its own costs from the observation.

    Args:
        layout: the market's observation layout (its codec turns asks, models and inflation into actions).
        bid: ``cost`` (ask the cost), ``markup`` (factor x cost) or ``bne`` (first-price equilibrium for uniform
            costs).
        markup: the factor of the ``markup`` rule.
        cost_of: whose expected cost the bid starts from: the ``declared`` model's (the honest ask) or the model
            actually ``served`` (a substituting provider asking what its cheaper model costs).
        n: number of bidders in the ``bne`` rule (default: the market's N).
        c_max: upper end of the cost prior in the ``bne`` rule (money units; default value_scale).
        substitution: action a[1] (0 = serve declared, 1 = serve the cheapest substitute).
        inflation: action a[2] (share of ``max_inflation``).
    """

    def __init__(
        self,
        layout: ObservationLayout,
        bid: BidRule = "cost",
        markup: float = 1.25,
        cost_of: CostBasis = "declared",
        n: int | None = None,
        c_max: float | None = None,
        substitution: float = 0.0,
        inflation: float = 0.0,
        name: str = "",
    ):
        if bid not in ("cost", "markup", "bne"):
            raise ValueError(f"bid rule must be 'cost', 'markup' or 'bne', got {bid!r}")
        if cost_of not in ("declared", "served"):
            raise ValueError(f"cost_of must be 'declared' or 'served', got {cost_of!r}")
        if not (-1.0 <= substitution <= 1.0 and 0.0 <= inflation <= 1.0):
            raise ValueError("substitution must be in [-1, 1] and inflation in [0, 1] (action units)")
        if not (np.isfinite(markup) and markup >= 0):
            raise ValueError(f"markup must be a finite number >= 0, got {markup!r}")
        self.layout = layout
        self.bid_rule = bid
        self.markup = float(markup)
        self.cost_of = cost_of
        self.n = int(n if n is not None else layout.n_agents)
        self.c_max = float(c_max if c_max is not None else layout.value_scale)
        self.substitution = float(substitution)
        self.inflation = float(inflation)
        self.name = name or bid

    def base_ask(self, obs: np.ndarray, honest: np.ndarray | None = None) -> np.ndarray:
        """The ask the bid rule starts from (the billing's unit): the honest ask (``honest`` when given), or the
        served model's cost."""
        lay = self.layout
        if self.cost_of == "declared" or self.substitution <= 0:
            return lay.honest_ask(obs) if honest is None else honest
        served = lay.served_model(obs, self.substitution)
        cost = np.take_along_axis(obs[..., lay.expected_cost], np.asarray(served)[..., None], -1)[..., 0]
        cost = cost.astype(np.float64) * lay.value_scale
        if lay.billing == "per_token":
            return cost / np.maximum(lay.expected_output_tokens_declared(obs), 1.0)
        return cost

    def ask(self, obs: np.ndarray, honest: np.ndarray | None = None) -> np.ndarray:
        """The ask for observation(s), in the billing's unit (``honest``: their honest asks, when known)."""
        base = self.base_ask(obs, honest)
        if self.bid_rule == "markup":
            return base * self.markup
        if self.bid_rule == "bne":
            return base + np.maximum(self.c_max - base, 0.0) / self.n
        return base

    def key(self) -> object:
        return (
            "scripted",
            id(self.layout),
            self.bid_rule,
            self.markup,
            self.cost_of,
            self.n,
            self.c_max,
            self.substitution,
            self.inflation,
        )

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        action = np.zeros(obs.shape[:-1] + (3,), dtype=np.float32)
        if self.bid_rule != "cost" or self.cost_of == "served":  # truthful is exactly a[0] = 0, no round-off
            honest = self.layout.honest_ask(obs)  # read once: the ask and its action both start from it
            action[..., BID] = np.clip(self.layout.bid_action(obs, self.ask(obs, honest), honest), -1.0, 1.0)
        action[..., SUBSTITUTION] = self.substitution
        action[..., INFLATION] = self.inflation
        return action


class ScriptedBatch(Policy):
    """Several scripted strategies in one call, each on its own consecutive block of rows (the evaluation plays many
    profiles in one batched market): the same actions as each strategy's :meth:`ScriptedPolicy.act` on its block,
    with the honest asks read once for all rows. All strategies must share one observation layout.

    Args:
        blocks: (strategy, number of rows) in row order.
    """

    name = "scripted_batch"

    def __init__(self, blocks: list[tuple[ScriptedPolicy, int]]):
        layouts = {id(policy.layout) for policy, _ in blocks}
        if len(layouts) != 1:
            raise ValueError(f"a ScriptedBatch needs one observation layout, got {len(layouts)}")
        self.layout = blocks[0][0].layout

        def per_row(value: Any, dtype: Any) -> np.ndarray:
            return np.repeat(np.array([value(p) for p, _ in blocks], dtype=dtype), [n for _, n in blocks])

        self.moves_bid = per_row(lambda p: p.bid_rule != "cost" or p.cost_of == "served", bool)
        self.markup = per_row(lambda p: p.markup if p.bid_rule == "markup" else 1.0, np.float64)
        self.bne = per_row(lambda p: p.bid_rule == "bne", bool)
        self.n = per_row(lambda p: p.n, np.int64)
        self.c_max = per_row(lambda p: p.c_max, np.float64)
        self.served = per_row(lambda p: p.cost_of == "served" and p.substitution > 0, bool)
        self.substitution = per_row(lambda p: p.substitution, np.float64)
        self.inflation = per_row(lambda p: p.inflation, np.float64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        lay = self.layout
        action = np.zeros((obs.shape[0], 3), dtype=np.float32)
        if self.moves_bid.any():
            honest = lay.honest_ask(obs)
            base = honest.copy()
            rows = np.flatnonzero(self.served)
            if rows.size:
                o = obs[rows]
                model = lay.served_model(o, self.substitution[rows])
                cost = np.take_along_axis(o[:, lay.expected_cost], model[:, None], -1)[:, 0]
                cost = cost.astype(np.float64) * lay.value_scale
                if lay.billing == "per_token":
                    cost = cost / np.maximum(lay.expected_output_tokens_declared(o), 1.0)
                base[rows] = cost
            ask = np.where(self.bne, base + np.maximum(self.c_max - base, 0.0) / self.n, base * self.markup)
            with np.errstate(divide="ignore", invalid="ignore"):
                bid = np.clip(lay.bid_action(obs, ask, honest), -1.0, 1.0)
            action[:, BID] = np.where(self.moves_bid, bid, 0.0)
        action[:, SUBSTITUTION] = self.substitution
        action[:, INFLATION] = self.inflation
        return action


class RandomPolicy(Policy):
    """Uniform random actions from its own seeded Generator."""

    name = "random"

    def __init__(self, layout: ObservationLayout, seed: int | None = None):
        self.rng = np.random.default_rng(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.rng.uniform(-1.0, 1.0, np.shape(obs)[:-1] + (3,)).astype(np.float32)

    def state_dict(self) -> dict:
        return {"generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["generator"]


PRESETS: dict[str, dict[str, Any]] = {
    "truthful": {},
    "markup": {"bid": "markup"},
    "underbid": {"bid": "markup", "markup": 0.1},
    "bne": {"bid": "bne"},
    "substitute": {"substitution": 1.0},
    "inflate": {"inflation": 1.0},
    "substitute_cost": {"substitution": 1.0, "cost_of": "served"},
    "substitute_markup": {"substitution": 1.0, "cost_of": "served", "bid": "markup"},
    "markup_inflate": {"bid": "markup", "inflation": 1.0},
    "all_levers": {"substitution": 1.0, "cost_of": "served", "bid": "markup", "inflation": 1.0},
}


def scripted_levers(name: str) -> tuple[str, ...]:
    """The levers (of :data:`agents.policy.LEVERS`) a preset strategy moves away from honest play."""
    p = PRESETS[name]
    bid = p.get("bid", "cost") != "cost" or p.get("cost_of") == "served"
    return tuple(
        lever
        for lever, used in (
            ("bid", bid),
            ("substitution", p.get("substitution", 0) > 0),
            ("inflation", p.get("inflation", 0) > 0),
        )
        if used
    )


DEVIATIONS = (
    "markup",
    "underbid",
    "substitute",
    "inflate",
    "substitute_cost",
    "substitute_markup",
    "markup_inflate",
    "all_levers",
)
"""The scripted manipulations an evaluation tries by default (every preset but truthful and bne, which is the
equilibrium of one textbook market)."""


def _preset(name: str) -> StrategyFactory:
    def factory(layout: ObservationLayout, seed: int | None = None, **params: Any) -> Policy:
        return ScriptedPolicy(layout, name=name, **{**PRESETS[name], **params})

    return factory


def _random(layout: ObservationLayout, seed: int | None = None) -> Policy:
    return RandomPolicy(layout, seed)


for _name in PRESETS:
    register_strategy(_name, _preset(_name))
register_strategy("random", _random)
