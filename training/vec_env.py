"""Stable-Baselines3 view of the batched market: E markets, chosen learners, everyone else fixed.

:class:`MarketVecEnv` is the :class:`envs.batched.BatchedMarket` itself as an SB3 ``VecEnv``: each (market, learner)
pair is one environment slot, so the same class serves every training mode: one learner against fixed opponents
(best response, iterated best response) or all providers feeding one shared policy (parameter sharing; the agent id
is part of every observation). The fixed providers' policies act on all markets in one batched call per provider, and
one ``step`` of the market plays a round in every market.

Markets run in lockstep, so every slot's episode ends at once (truncation at the horizon); each slot's info then
carries SB3's ``terminal_observation``, ``TimeLimit.truncated`` and ``episode`` (the learner's return), and
:attr:`MarketVecEnv.episode_metrics` holds the finished episodes' metrics (:class:`envs.metrics.EpisodeStats`, mean
over markets) for the logger.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvStepReturn

from agents.policy import LEVERS, Policy
from envs.batched import BatchedMarket
from envs.layout import ObservationLayout
from envs.metrics import EpisodeStats
from envs.snapshot import capture, restore


class MarketVecEnv(VecEnv):
    """E markets x ``learners`` slots, with fixed policies for the other providers.

    Args:
        market: the batched market (E = ``market.n_markets``).
        learners: agents whose actions come from SB3 (one slot per market each).
        fixed: a policy for every other agent.
        seed: market e's first reset uses seed ``seed + e`` (SB3's ``seed()`` overrides it).
        levers: the action dimensions the learners control; the others are set to honest (0).
    """

    def __init__(
        self,
        market: BatchedMarket,
        learners: Sequence[str],
        fixed: dict[str, Policy],
        seed: int | None = None,
        levers: Sequence[str] = LEVERS,
    ):
        agents = market.possible_agents
        unknown = [a for a in [*learners, *fixed] if a not in agents]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown}; the market has {agents}")
        uncovered = [a for a in agents if a not in learners and a not in fixed]
        if uncovered or set(learners) & set(fixed):
            raise ValueError(
                f"every agent needs exactly one source of actions: learners {list(learners)}, "
                f"fixed {sorted(fixed)}, agents {agents}"
            )
        self.market = market
        self.agents = agents
        self.learners = list(learners)
        self.fixed = fixed
        self.n_markets = E = market.n_markets
        self.stats = EpisodeStats(agents, E)
        index = {a: i for i, a in enumerate(agents)}
        self._fixed_rows = [(index[a], p) for a, p in fixed.items()]
        self._learner_rows = np.array([index[a] for a in self.learners])
        self._joint = np.zeros((E, len(agents), 3), dtype=np.float32)
        self._lever_mask = np.array([lever in levers for lever in LEVERS], dtype=np.float32)
        self._returns = np.zeros((E, len(self.learners)))
        self._obs = np.zeros((E, len(agents), market.layout.size), dtype=np.float32)
        self._start = time.time()
        self.render_mode = None
        self.episode_metrics: dict[str, float] = {}
        self.episodes_done = 0
        super().__init__(E * len(self.learners), market.observation_space(agents[0]), market.action_space(agents[0]))
        self._seeds = [None if seed is None else seed + k for k in range(E)] * len(self.learners)

    @property
    def layout(self) -> ObservationLayout:
        return self.market.layout

    def _learner_obs(self) -> np.ndarray:
        return self._obs[:, self._learner_rows].reshape(self.num_envs, -1)

    def reset(self) -> np.ndarray:
        L = len(self.learners)
        seeds = self._seeds[::L] if self._seeds and self._seeds[0] is not None else None
        self._obs[:] = self.market.reset(seeds)
        self._seeds = [None] * self.num_envs
        self.stats.reset()
        self._returns[:] = 0.0
        return self._learner_obs()

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed market e with ``seed + e`` at the next reset (one seed per market, repeated for its slots)."""
        if seed is None:
            return [None] * self.num_envs
        seeds: list[int | None] = [seed + e for e in range(self.n_markets)]
        self._seeds = seeds * len(self.learners)
        return self._seeds

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The markets' and the slots' state (see :meth:`envs.batched.BatchedMarket.state_dict`), and the fixed
        policies' (a seeded random strategy draws from its own generator)."""
        arrays, meta = self.market.state_dict()
        capture(self.stats, "vec.stats.", arrays, meta)
        arrays.update({"vec.obs": self._obs, "vec.joint": self._joint, "vec.returns": self._returns})
        meta["vec"] = {
            "episode_metrics": self.episode_metrics,
            "episodes_done": self.episodes_done,
            "seeds": self._seeds,
            "fixed": {a: p.state_dict() for a, p in self.fixed.items()},
        }
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` snapshot of a VecEnv built the same way."""
        self.market.load_state_dict(arrays, meta)
        restore(self.stats, arrays, meta, "vec.stats.")
        self._obs, self._joint, self._returns = (
            np.array(arrays[k], copy=True) for k in ("vec.obs", "vec.joint", "vec.returns")
        )
        vec = meta["vec"]
        self.episode_metrics, self.episodes_done, self._seeds = (
            vec["episode_metrics"],
            vec["episodes_done"],
            vec["seeds"],
        )
        for a, state in vec["fixed"].items():
            self.fixed[a].load_state_dict(state)

    def step_async(self, actions: np.ndarray) -> None:
        self._joint[:, self._learner_rows] = (
            np.asarray(actions).reshape(self.n_markets, len(self.learners), -1) * self._lever_mask
        )

    def step_wait(self) -> VecEnvStepReturn:
        for i, policy in self._fixed_rows:  # one batched call per fixed agent over all markets
            self._joint[:, i] = policy.act(self._obs[:, i])
        obs, rewards, done = self.market.step(self._joint)
        self.stats.add(self.market.played())
        learner_rewards = rewards[:, self._learner_rows]
        self._returns += learner_rewards
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        dones = np.repeat(done, len(self.learners))
        if done.all():
            self._obs[:] = obs
            terminal = self._learner_obs()
            summary = self.stats.summary(self.market.mechanism.diagnostics())
            self.episode_metrics = {k: float(v.mean()) for k, v in summary.items()}
            self.episodes_done += self.n_markets
            elapsed = round(time.time() - self._start, 6)
            returns = self._returns.reshape(-1)
            for slot in range(self.num_envs):
                infos[slot] = {
                    "terminal_observation": terminal[slot],
                    "TimeLimit.truncated": True,
                    "episode": {"r": float(returns[slot]), "l": self.stats.rounds, "t": elapsed},
                }
            self._obs[:] = self.market.reset()
            self.stats.reset()
            self._returns[:] = 0.0
        else:
            self._obs[:] = obs
        return self._learner_obs(), learner_rewards.reshape(-1).astype(np.float32), dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self.market, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.market, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        return [getattr(self.market, method_name)(*method_args, **method_kwargs)] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)
