"""Playing a strategy profile in the market: the one loop shared by training-time evaluation and the evaluation.

All seeds of a profile play at once, one market per seed of a :class:`envs.batched.BatchedMarket`. A market's draws
(queries, private costs, the mechanism's coins) depend only on its seed, not on the actions, so two profiles played
with the same seeds face the same queries and the same costs (common random numbers) and their difference is a paired
comparison.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from agents.policy import LeverMask, Policy
from agents.scripted import ScriptedBatch, ScriptedPolicy
from envs.batched import BatchedMarket, Round
from envs.metrics import EpisodeStats

TRACE_ROUNDS = 4096  # rounds a trace keeps: its memory stays flat however long the episode


@dataclass
class Trace:
    """Per-round record of one market's episode for plots, its first :data:`TRACE_ROUNDS` rounds: each provider's
    honest bid (its cost) and bid, and the user's utility."""

    cost: list[np.ndarray] = field(default_factory=list)
    bid: list[np.ndarray] = field(default_factory=list)
    user_utility: list[float] = field(default_factory=list)

    def add(self, r: Round, market: int) -> None:
        """Record ``market``'s round ``r`` (nothing once the trace is full)."""
        if len(self.user_utility) < TRACE_ROUNDS:
            self.cost.append(r.honest_bids[market].copy())
            self.bid.append(r.bids[market].copy())
            self.user_utility.append(float(r.user_utility[market]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"cost": np.array(self.cost), "bid": np.array(self.bid), "user_utility": np.array(self.user_utility)}


def joint_actions(policies: Mapping[str, Policy], agents: Sequence[str], obs: np.ndarray) -> np.ndarray:
    """[E, N, 3] every provider's policy applied to its observations [E, N, D] (one batched call per provider)."""
    return np.stack([policies[a].act(obs[:, i]) for i, a in enumerate(agents)], axis=1)


def play(
    market: BatchedMarket, policies: Mapping[str, Policy], seeds: Sequence[int], trace: Trace | None = None
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
        r = market.played()
        stats.add(r)
        if trace is not None:
            trace.add(r, 0)
        if done.all():
            return stats.rows(market.mechanism.diagnostics())


@dataclass
class _ActGroup:
    """Markets whose provider plays one policy up to its lever mask (:class:`agents.policy.LeverMask`): the policy
    acts once on all of them, and each lever variant keeps its own action dimensions."""

    policy: Policy
    rows: np.ndarray  # the group's markets
    masks: list[tuple[slice, np.ndarray, np.ndarray | None]]  # (positions in rows, their markets, kept dimensions)

    def act(self, obs: np.ndarray, out: np.ndarray) -> None:
        action = self.policy.act(obs[self.rows])
        for positions, markets, keep in self.masks:
            out[markets] = action[positions] if keep is None else action[positions] * keep


def _act_groups(policies: Sequence[Policy], S: int) -> list[_ActGroup]:
    """One provider's policy in each profile (profile p in markets p * S .. (p + 1) * S - 1), grouped by the policy
    under any lever mask: policies with equal :meth:`agents.policy.Policy.key` act identically, so one call serves
    them all."""
    by_key: dict[object, tuple[Policy, dict[object, tuple[np.ndarray | None, list[int]]]]] = {}
    for p, policy in enumerate(policies):
        keep = policy.keep if isinstance(policy, LeverMask) else None
        if isinstance(policy, LeverMask):
            policy = policy.policy
        variants = by_key.setdefault(policy.key(), (policy, {}))[1]
        mask_key = None if keep is None else tuple(keep.tolist())
        variants.setdefault(mask_key, (keep, []))[1].extend(range(p * S, (p + 1) * S))
    groups: list[_ActGroup] = []
    scripted: dict[int, list[_ActGroup]] = {}  # by layout: one call for every scripted strategy of a market
    for policy, variants in by_key.values():
        rows = np.array([r for _, rs in variants.values() for r in rs])
        masks, start = [], 0
        for keep, rs in variants.values():
            masks.append((slice(start, start + len(rs)), np.array(rs), keep))
            start += len(rs)
        group = _ActGroup(policy, rows, masks)
        if isinstance(policy, ScriptedPolicy):
            scripted.setdefault(id(policy.layout), []).append(group)
        else:
            groups.append(group)
    for same in scripted.values():  # they differ only in per-row parameters
        if len(same) == 1:
            groups += same
            continue
        masks, start = [], 0
        for g in same:
            masks += [(slice(start + pos.start, start + pos.stop), markets, keep) for pos, markets, keep in g.masks]
            start += len(g.rows)
        batch = ScriptedBatch([(cast(ScriptedPolicy, g.policy), len(g.rows)) for g in same])
        groups.append(_ActGroup(batch, np.concatenate([g.rows for g in same]), masks))
    return groups


def play_profiles(
    market: BatchedMarket, profiles: Sequence[Mapping[str, Policy]], seeds: Sequence[int], traces: bool = False
) -> tuple[list[list[dict[str, float]]], list[Trace]]:
    """Several profiles at once: ``market`` holds ``len(profiles) * len(seeds)`` markets, profile p playing seeds
    ``seeds`` in markets ``p * S .. (p + 1) * S - 1``. Policies that act alike (equal :meth:`agents.policy.Policy.key`)
    are called once for all their markets. Returns each profile's per-seed metrics (and with ``traces`` the trace of
    each profile's first market)."""
    P, S = len(profiles), len(seeds)
    if market.n_markets != P * S:
        raise ValueError(f"{P} profiles x {S} seeds need {P * S} markets, the market has {market.n_markets}")
    agents = market.possible_agents
    groups = [_act_groups([policies[a] for policies in profiles], S) for a in agents]
    for k, policies in enumerate(profiles):
        for j, policy in enumerate(policies.values()):
            policy.reset(seed=int(seeds[0]) * 1009 + 31 * k + j)
    stats = EpisodeStats(agents, P * S)
    trace_list = [Trace() for _ in profiles] if traces else []
    obs = market.reset([s for _ in profiles for s in seeds])
    joint = np.zeros((P * S, len(agents), 3), dtype=np.float32)
    while True:
        for i, agent_groups in enumerate(groups):
            for group in agent_groups:
                group.act(obs[:, i], joint[:, i])
        obs, _, done = market.step(joint)
        r = market.played()
        stats.add(r)
        for p, trace in enumerate(trace_list):
            trace.add(r, p * S)
        if done.all():
            episodes = stats.rows(market.mechanism.diagnostics())
            return [episodes[p * S : (p + 1) * S] for p in range(P)], trace_list
