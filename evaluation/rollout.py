"""Playing a strategy profile in the market: the one loop shared by training-time evaluation and the evaluation.

All seeds of a profile play at once, one market per seed of a :class:`envs.batched.BatchedMarket`. A market's draws
(queries, private costs, the mechanism's coins) depend only on its seed, not on the actions, so two profiles played
with the same seeds face the same queries and the same costs (common random numbers) and their difference is a paired
comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from agents.policy import Policy
from envs.batched import BatchedMarket
from envs.metrics import EpisodeStats


@dataclass
class Trace:
    """Per-round record of one market's episode for plots: each provider's honest bid (its cost) and bid, and the
    user's utility."""

    cost: list[np.ndarray] = field(default_factory=list)
    bid: list[np.ndarray] = field(default_factory=list)
    user_utility: list[float] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"cost": np.array(self.cost), "bid": np.array(self.bid), "user_utility": np.array(self.user_utility)}


def joint_actions(policies: dict[str, Policy], agents: Sequence[str], obs: np.ndarray) -> np.ndarray:
    """[E, N, 3] every provider's policy applied to its observations [E, N, D] (one batched call per provider)."""
    return np.stack([policies[a].act(obs[:, i]) for i, a in enumerate(agents)], axis=1)


def play(market: BatchedMarket, policies: dict[str, Policy], seeds: Sequence[int], trace: Trace | None = None
         ) -> list[dict[str, float]]:
    """One episode of a profile in each of ``market``'s markets, market e seeded ``seeds[e]``; the metrics of each
    (:class:`envs.metrics.EpisodeStats`). ``trace`` records market 0's rounds."""
    if len(seeds) != market.n_markets:
        raise ValueError(f"{len(seeds)} seeds for {market.n_markets} markets")
    agents = market.possible_agents
    stats = EpisodeStats(agents, market.n_markets)
    for k, policy in enumerate(policies.values()):
        policy.reset(seed=int(seeds[0]) * 1009 + k)
    obs = market.reset(list(seeds))
    while True:
        obs, _, done = market.step(joint_actions(policies, agents, obs))
        r = market.last_round
        stats.add(r)
        if trace is not None:
            trace.cost.append(r.honest_bids[0].copy())
            trace.bid.append(r.bids[0].copy())
            trace.user_utility.append(float(r.user_utility[0]))
        if done.all():
            return stats.rows(market.mechanism.diagnostics())
