"""Mixtures of strategies played in a batched market: one pure strategy per market, drawn per episode.

A mixed strategy of the meta-game (:mod:`evaluation.metagame`) is a probability vector over a population of pure
policies. :class:`MixedPolicy` plays it the way a mixed strategy is meant: in each market (session) of a batched
market it draws one pure policy at the start of every episode - from its own seeded Generator, so the same seed
gives the same draws - and plays it for the whole episode. :class:`RowDispatch` is the deterministic version (a fixed
pure policy per market), which is how a whole payoff table is played as one batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from agents.policy import Policy
from envs.layout import ACTION_DIM, ObservationLayout


class RowDispatch(Policy):
    """Market (row) b of the observation batch plays ``policies[assignment[b]]``; one batched call per policy.

    Rows beyond ``len(assignment)`` are an error (the batch must be the batched market's E rows)."""

    def __init__(self, policies: Sequence[Policy], assignment: np.ndarray, name: str = "dispatch"):
        if not policies:
            raise ValueError("RowDispatch needs at least one policy")
        self.policies = list(policies)
        self.assignment = np.asarray(assignment, dtype=np.int64)
        if self.assignment.size and not (self.assignment.min() >= 0 and self.assignment.max() < len(self.policies)):
            raise ValueError(f"RowDispatch: assignment indices must be in [0, {len(self.policies)})")
        self.name = name

    def reset(self, seed: int | None = None) -> None:
        for k, p in enumerate(self.policies):
            p.reset(None if seed is None else seed + 7919 * k)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        if batch.shape[0] != self.assignment.size:
            raise ValueError(f"{self.name}: {batch.shape[0]} observations for {self.assignment.size} assigned markets")
        out = np.zeros((batch.shape[0], ACTION_DIM), dtype=np.float32)
        for k, policy in enumerate(self.policies):
            rows = np.flatnonzero(self.assignment == k)
            if rows.size:
                out[rows] = policy.act(batch[rows])
        return out[0] if single else out


class MixedPolicy(Policy):
    """A mixed strategy: each market plays one pure policy drawn with probabilities ``weights`` at the start of every
    episode (recognised from the observation: time left = 1), from a Generator seeded ``seed`` (and reseeded by
    :meth:`reset`).

    Args:
        layout: the market's observation layout (to see episode starts).
        policies: the pure policies.
        weights: their probabilities (normalised; zero weights are never drawn).
        seed: seed of the draws.
    """

    def __init__(
        self,
        layout: ObservationLayout,
        policies: Sequence[Policy],
        weights: Sequence[float] | np.ndarray,
        seed: int | None = None,
        name: str = "mixed",
    ):
        w = np.asarray(weights, dtype=np.float64)
        if len(policies) != w.size or w.size == 0:
            raise ValueError(f"MixedPolicy: {len(policies)} policies for {w.size} weights")
        if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
            raise ValueError(f"MixedPolicy: weights must be finite, >= 0 and not all 0, got {w.tolist()}")
        self.layout = layout
        self.policies = list(policies)
        self.weights = w / w.sum()
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.name = name
        self.assignment: np.ndarray | None = None
        self._at_start = False

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)
        self.assignment = None
        self._at_start = False
        for k, p in enumerate(self.policies):
            p.reset(None if seed is None else seed + 7919 * k)

    def draw(self, rows: int) -> np.ndarray:
        """A fresh pure policy index for each of ``rows`` markets."""
        self.assignment = self.rng.choice(len(self.policies), size=rows, p=self.weights)
        return self.assignment

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        single = obs.ndim == 1
        batch = obs[None] if single else obs
        start = bool(batch[0, self.layout.time_left] >= 1.0)
        if self.assignment is None or self.assignment.size != batch.shape[0] or (start and not self._at_start):
            self.draw(batch.shape[0])
        self._at_start = start
        out = np.zeros((batch.shape[0], ACTION_DIM), dtype=np.float32)
        for k, policy in enumerate(self.policies):
            rows = np.flatnonzero(self.assignment == k)
            if rows.size:
                out[rows] = policy.act(batch[rows])
        return out[0] if single else out
