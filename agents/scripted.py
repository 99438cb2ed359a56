"""Scripted provider strategies: the honest baseline and the hand-written manipulations (MECHANISMS.md §1, §8).

All are one :class:`ScriptedPolicy` with a bid rule, a substitution level and an inflation level:

- ``truthful``: bid the expected cost of serving the declared model, serve it, report true tokens.
- ``markup``: bid ``factor`` x cost (default 1.25).
- ``bne``: the symmetric first-price equilibrium of the uniform market, b(c) = c + (c_max - c) / n (§8).
- ``substitute``: serve the cheapest menu model, billed as the declared one (bid as if serving the declared model).
- ``inflate``: report ``inflation`` x more output tokens (action a[2]).
- ``random``: uniform actions, seeded.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from agents.policy import Policy
from agents.registry import StrategyFactory, register_strategy
from envs.market import BID, INFLATION, SUBSTITUTION, ObservationLayout

BidRule = Literal["cost", "markup", "bne"]


class ScriptedPolicy(Policy):
    """A fixed strategy reading its own costs from the observation.

    Args:
        layout: the market's observation layout.
        bid: ``cost`` (truthful), ``markup`` (factor x cost) or ``bne`` (first-price equilibrium for uniform costs).
        markup: the factor of the ``markup`` rule.
        n: number of bidders in the ``bne`` rule (default: the market's N).
        c_max: upper end of the cost prior in the ``bne`` rule (money units; default value_scale).
        substitution: action a[1] (0 = serve declared, 1 = serve the cheapest substitute).
        inflation: action a[2] (share of ``max_inflation``).
    """

    def __init__(self, layout: ObservationLayout, bid: BidRule = "cost", markup: float = 1.25, n: int | None = None,
                 c_max: float | None = None, substitution: float = 0.0, inflation: float = 0.0, name: str = ""):
        if bid not in ("cost", "markup", "bne"):
            raise ValueError(f"bid rule must be 'cost', 'markup' or 'bne', got {bid!r}")
        if not (-1.0 <= substitution <= 1.0 and 0.0 <= inflation <= 1.0):
            raise ValueError("substitution must be in [-1, 1] and inflation in [0, 1] (action units)")
        self.layout = layout
        self.bid_rule = bid
        self.markup = float(markup)
        self.n = int(n if n is not None else layout.agent_id.stop - layout.agent_id.start)
        self.c_max = float(c_max if c_max is not None else layout.value_scale)
        self.substitution = float(substitution)
        self.inflation = float(inflation)
        self.name = name or bid

    def bid(self, obs: np.ndarray) -> np.ndarray:
        """The money bid for observation(s)."""
        return self._bid_at(self.layout.honest_bid(obs))

    def _bid_at(self, cost: np.ndarray) -> np.ndarray:
        if self.bid_rule == "markup":
            return cost * self.markup
        if self.bid_rule == "bne":
            return cost + np.maximum(self.c_max - cost, 0.0) / self.n
        return cost

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        action = np.zeros(obs.shape[:-1] + (3,), dtype=np.float32)
        if self.bid_rule != "cost":  # truthful is exactly a[0] = 0, no round-off from the observation
            cost = self.layout.honest_bid(obs)
            action[..., BID] = np.clip((self._bid_at(cost) - cost) / self.layout.bid_scale, -1.0, 1.0)
        action[..., SUBSTITUTION] = self.substitution
        action[..., INFLATION] = self.inflation
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


PRESETS: dict[str, dict[str, Any]] = {
    "truthful": {},
    "markup": {"bid": "markup"},
    "bne": {"bid": "bne"},
    "substitute": {"substitution": 1.0},
    "inflate": {"inflation": 1.0},
}

def _preset(name: str) -> StrategyFactory:
    def factory(layout: ObservationLayout, seed: int | None = None, **params: Any) -> Policy:
        return ScriptedPolicy(layout, name=name, **{**PRESETS[name], **params})
    return factory


def _random(layout: ObservationLayout, seed: int | None = None) -> Policy:
    return RandomPolicy(layout, seed)


for _name in PRESETS:
    register_strategy(_name, _preset(_name))
register_strategy("random", _random)
