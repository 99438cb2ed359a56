"""Stable-Baselines3 view of the market: many markets, chosen learners, everyone else fixed.

:class:`MarketVecEnv` runs ``n_envs`` independent copies of the market. Each (copy, learner) pair is one SB3
environment slot, so the same class serves every training mode: one learner against fixed opponents
(best response, iterated best response) or all providers feeding one shared policy (parameter sharing; the agent id
is part of every observation). The fixed providers' policies are applied to all copies in one batched call.

Episodes end together in all slots of a copy (truncation at the horizon); the slot's info then carries SB3's
``terminal_observation``, ``TimeLimit.truncated`` and ``episode`` (the learner's return), and ``market_metrics``: the
episode's metrics of :class:`envs.metrics.EpisodeStats`. Per-round infos are otherwise empty (the markets' per-provider
infos are switched off for speed).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from agents.policy import Policy
from envs.market import raw_env
from envs.metrics import EpisodeStats


class MarketVecEnv(VecEnv):
    """``n_envs`` market copies x ``learners`` slots, with fixed policies for the other providers.

    Args:
        make_market: builds one market (called ``n_envs`` times).
        n_envs: number of market copies.
        learners: agents whose actions come from SB3 (one slot per copy each).
        fixed: a policy for every other agent.
        seed: seed of copy k is ``seed + k`` at the first reset (SB3's ``seed()`` overrides it).
    """

    def __init__(self, make_market: Callable[[], raw_env], n_envs: int, learners: Sequence[str],
                 fixed: dict[str, Policy], seed: int | None = None):
        self.markets = [make_market() for _ in range(n_envs)]
        agents = self.markets[0].possible_agents
        unknown = [a for a in [*learners, *fixed] if a not in agents]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown}; the market has {agents}")
        uncovered = [a for a in agents if a not in learners and a not in fixed]
        if uncovered or set(learners) & set(fixed):
            raise ValueError(f"every agent needs exactly one source of actions: learners {list(learners)}, "
                             f"fixed {sorted(fixed)}, agents {agents}")
        self.agents = agents
        self.learners = list(learners)
        self.fixed = fixed
        self.n_markets = n_envs
        self.stats = [EpisodeStats(agents) for _ in range(n_envs)]
        self._index = {a: i for i, a in enumerate(agents)}
        self._learner_rows = np.array([self._index[a] for a in self.learners])
        m0 = self.markets[0]
        self._obs = np.zeros((n_envs, len(agents), m0.layout.size), dtype=np.float32)  # every agent, every market
        self._joint = np.zeros((n_envs, len(agents), 3), dtype=np.float32)  # the joint actions being played
        self._returns = np.zeros(n_envs * len(self.learners))
        self._start = time.time()
        super().__init__(n_envs * len(self.learners), m0.observation_space(self.learners[0]),
                         m0.action_space(self.learners[0]))
        self._seeds = [None if seed is None else seed + k for k in range(self.num_envs)]

    @property
    def layout(self):
        return self.markets[0].layout

    def reset(self) -> np.ndarray:
        L = len(self.learners)
        for k, market in enumerate(self.markets):
            obs, _ = market.reset(seed=self._seeds[k * L])
            self._obs[k] = [obs[a] for a in self.agents]
            self.stats[k].reset()
        self._seeds = [None] * self.num_envs
        self._returns[:] = 0.0
        return self._obs[:, self._learner_rows].reshape(self.num_envs, -1)

    def step_async(self, actions: np.ndarray) -> None:
        self._joint[:, self._learner_rows] = np.asarray(actions).reshape(self.n_markets, len(self.learners), -1)

    def step_wait(self):
        L = len(self.learners)
        for a, policy in self.fixed.items():  # one batched call per fixed agent over all markets
            i = self._index[a]
            self._joint[:, i] = policy.act(self._obs[:, i])
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for k, market in enumerate(self.markets):
            obs, rew, done = market.step_arrays(self._joint[k])
            self.stats[k].add(market.last_round)
            slots = slice(k * L, (k + 1) * L)
            rewards[slots] = rew[self._learner_rows]
            self._returns[slots] += rew[self._learner_rows]
            if done:
                metrics = self.stats[k].summary()
                for j, row in enumerate(self._learner_rows):
                    slot = k * L + j
                    infos[slot] = {"terminal_observation": obs[row].copy(), "TimeLimit.truncated": True,
                                   "episode": {"r": float(self._returns[slot]), "l": self.stats[k].rounds,
                                               "t": round(time.time() - self._start, 6)},
                                   "market_metrics": metrics}
                self._returns[slots] = 0.0
                dones[slots] = True
                first, _ = market.reset()
                self._obs[k] = [first[a] for a in self.agents]
                self.stats[k].reset()
            else:
                self._obs[k] = obs
        return self._obs[:, self._learner_rows].reshape(self.num_envs, -1), rewards, dones, infos

    def close(self) -> None:
        for market in self.markets:
            market.close()

    def _targets(self, indices) -> list[raw_env]:
        if indices is None:
            indices = range(self.num_envs)
        elif isinstance(indices, int):
            indices = [indices]
        return [self.markets[i // len(self.learners)] for i in indices]

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(m, attr_name) for m in self._targets(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        for m in self._targets(indices):
            setattr(m, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        return [getattr(m, method_name)(*method_args, **method_kwargs) for m in self._targets(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._targets(indices)]
