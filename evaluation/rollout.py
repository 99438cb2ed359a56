"""Playing a strategy profile in the market: the one loop shared by training-time evaluation and the evaluation.

Episodes are seeded ``seed, seed + 1, ...``; the market's draws (queries, private costs) depend only on the seed, not
on the actions, so two profiles played with the same seeds face the same queries and the same costs (common random
numbers) and their difference is a paired comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agents.policy import Policy, act_all
from envs.market import raw_env
from envs.metrics import EpisodeStats


@dataclass
class Trace:
    """Per-round record of an episode for plots: each provider's honest bid (its cost) and bid, user utility."""

    cost: list[np.ndarray] = field(default_factory=list)
    bid: list[np.ndarray] = field(default_factory=list)
    user_utility: list[float] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"cost": np.array(self.cost), "bid": np.array(self.bid), "user_utility": np.array(self.user_utility)}


def play_episode(market: raw_env, policies: dict[str, Policy], seed: int, trace: Trace | None = None
                 ) -> dict[str, float]:
    """One seeded episode of a profile; returns the episode's metrics (:class:`envs.metrics.EpisodeStats`)."""
    stats = EpisodeStats(market.possible_agents)
    for k, policy in enumerate(policies.values()):
        policy.reset(seed=seed * 1009 + k)
    obs, _ = market.reset(seed=seed)
    while market.agents:
        obs, rewards, _, _, infos = market.step(act_all(policies, obs))
        stats.add(market.last_round)
        if trace is not None:
            trace.cost.append(np.array([infos[a]["honest_bid"] for a in market.possible_agents]))
            trace.bid.append(np.array([infos[a]["bid"] for a in market.possible_agents]))
            trace.user_utility.append(infos[market.possible_agents[0]]["market"]["user_utility"])
    return stats.summary()


def play(market: raw_env, policies: dict[str, Policy], seeds: list[int]) -> list[dict[str, float]]:
    """Metrics of one episode per seed."""
    return [play_episode(market, policies, s) for s in seeds]
