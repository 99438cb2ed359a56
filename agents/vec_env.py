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
        for market in self.markets:  # episode metrics come from ``last_round``; SB3 needs no per-provider infos
            market.per_agent_infos = False
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
        self._last_obs: list[dict[str, np.ndarray]] = [{} for _ in range(n_envs)]
        self._returns = np.zeros(n_envs * len(self.learners))
        self._start = time.time()
        m0 = self.markets[0]
        super().__init__(n_envs * len(self.learners), m0.observation_space(self.learners[0]),
                         m0.action_space(self.learners[0]))
        self._seeds = [None if seed is None else seed + k for k in range(self.num_envs)]
        self._actions: np.ndarray | None = None

    @property
    def layout(self):
        return self.markets[0].layout

    def _learner_obs(self) -> np.ndarray:
        return np.stack([self._last_obs[k][a] for k in range(self.n_markets) for a in self.learners])

    def reset(self) -> np.ndarray:
        L = len(self.learners)
        for k, market in enumerate(self.markets):
            seed = self._seeds[k * L]
            self._last_obs[k], _ = market.reset(seed=seed)
            self.stats[k].reset()
        self._seeds = [None] * self.num_envs
        self._returns[:] = 0.0
        return self._learner_obs()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        L = len(self.learners)
        fixed_actions = {a: policy.act(np.stack([o[a] for o in self._last_obs])) for a, policy in self.fixed.items()}
        obs = np.empty((self.num_envs, *self.observation_space.shape), dtype=np.float32)
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        dones = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for k, market in enumerate(self.markets):
            joint = {a: acts[k] for a, acts in fixed_actions.items()}
            for j, a in enumerate(self.learners):
                joint[a] = self._actions[k * L + j]
            next_obs, rew, _, trunc, info = market.step(joint)
            self.stats[k].add(market.last_round)
            done = not market.agents
            for j, a in enumerate(self.learners):
                slot = k * L + j
                rewards[slot] = rew[a]
                self._returns[slot] += rew[a]
                infos[slot] = info[a]
            if done:
                metrics = self.stats[k].summary()
                for j, a in enumerate(self.learners):
                    slot = k * L + j
                    infos[slot] = {**infos[slot], "terminal_observation": next_obs[a], "TimeLimit.truncated": True,
                                   "episode": {"r": float(self._returns[slot]), "l": self.stats[k].rounds,
                                               "t": round(time.time() - self._start, 6)},
                                   "market_metrics": metrics}
                    self._returns[slot] = 0.0
                    dones[slot] = True
                next_obs, _ = market.reset()
                self.stats[k].reset()
            self._last_obs[k] = next_obs
            for j, a in enumerate(self.learners):
                obs[k * L + j] = next_obs[a]
        return obs, rewards, dones, infos

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
