"""The market as a single-agent Gymnasium environment: one learning provider against fixed opponents.

Any single-agent RL code (Stable-Baselines3, CleanRL-style scripts, ...) can attack a mechanism through it:

>>> import gymnasium
>>> market = gymnasium.make("ecosystem:LLMMarket-v1", scenario="uniform", mechanism="first_price", n_providers=2)
>>> obs, info = market.reset(seed=0)
>>> obs.shape == market.observation_space.shape
True

The learner's observation, action and reward are its own in the PettingZoo market (:mod:`envs.market`): the
observation vector of :class:`envs.layout.ObservationLayout`, the action ``Box(-1, 1, (3,))`` (bid offset from the
honest bid, substitution, inflation; all zeros is honest play) and the round's profit. Every other provider plays a
fixed policy given by ``opponents`` (the form of train.py's ``--opponents``: a scripted strategy name or a run dir for
all, or ``agent=spec`` pairs; see :mod:`agents.spec`). An episode is the scenario's ``horizon`` rounds (``max_cycles``
is an alias); it is truncated, never terminated. The info is the learner's PettingZoo info (nested, or flat with
``info_format="flat"``).

Seeding: ``reset(seed=s)`` restarts the market's streams of queries, costs and mechanism noise from ``s`` and reseeds
the opponents' random strategies from ``s``, so a seeded episode is reproducible whatever ran before; ``reset()``
continues the streams.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from agents.policy import Policy
from agents.spec import PolicySpec, policies_from_spec
from envs.batched import ENV_NAME
from envs.market import raw_env
from envs.scenarios import ScenarioConfig
from mechanisms.base import Mechanism


def gymnasium_id(env_name: str = ENV_NAME) -> str:
    """The Gymnasium id of the market of PettingZoo name ``env_name``: ``llm_market_v1`` -> ``LLMMarket-v1`` (the
    two versions move together)."""
    base, _, version = env_name.rpartition("_v")
    if not base or not version.isdigit():
        raise ValueError(f"env name {env_name!r} does not end in _v<version>")
    return "".join("LLM" if part == "llm" else part.capitalize() for part in base.split("_")) + f"-v{version}"


ENV_ID = gymnasium_id()


class SingleAgentMarket(gymnasium.Env):
    """One provider (``learner``) learns; the others play fixed policies.

    Args:
        scenario: preset name, YAML path, mapping or :class:`envs.scenarios.ScenarioConfig`.
        mechanism: registry name or a Mechanism instance.
        learner: the learning provider, by name (``provider_0``) or index.
        opponents: the other providers' policies: a strategy name or run dir for all (``truthful``, ``bne``,
            ``runs/fp``), ``agent=spec`` pairs (``provider_1=markup,provider_2=runs/fp``), or a mapping agent -> spec
            or :class:`agents.policy.Policy` (pairs may include the learner's own: it is ignored).
        seed: seed of the first ``reset`` without one (the market's streams and the opponents' random strategies;
            ``None``: fresh entropy).
        render_mode: ``"ansi"`` or ``"human"``, as the PettingZoo market renders.
        **overrides: scenario fields (``n_providers=3``, ``horizon`` or its alias ``max_cycles``), mechanism
            parameters, ``mechanism_params`` or ``info_format``, as for :func:`envs.parallel_env`.

    Attributes:
        market: the PettingZoo market (:class:`envs.market.raw_env`) it plays in.
        learner: the learner's agent name. opponents: the fixed policies by agent. layout: the observation layout.
    """

    # gymnasium.Env declares metadata as an instance attribute (a ClassVar would conflict with it).
    metadata: dict[str, Any] = {"render_modes": ["ansi", "human"], "name": ENV_NAME}  # noqa: RUF012

    def __init__(
        self,
        scenario: str | ScenarioConfig | dict = "capitals",
        mechanism: str | Mechanism = "first_price",
        learner: str | int = "provider_0",
        opponents: PolicySpec = "truthful",
        seed: int | None = None,
        render_mode: str | None = None,
        **overrides: Any,
    ):
        self.market = raw_env(scenario, mechanism, seed=seed, render_mode=render_mode, **overrides)
        agents = self.market.possible_agents
        if isinstance(learner, (int, np.integer)) and not isinstance(learner, bool):
            if not 0 <= learner < len(agents):
                raise ValueError(
                    f"learner index {learner} out of range: the market has {len(agents)} providers {agents}"
                )
            learner = agents[learner]
        if learner not in agents:
            raise ValueError(f"unknown learner {learner!r}; agents are {agents}")
        self.learner: str = learner
        others = [a for a in agents if a != learner]
        self.opponents: dict[str, Policy] = policies_from_spec(opponents, self.market, others, seed=seed)
        self.layout = self.market.layout
        self.render_mode = render_mode
        self.observation_space = self.market.observation_space(learner)
        self.action_space = self.market.action_space(learner)
        self._obs: dict[str, np.ndarray] = {}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` restarts the market's streams and reseeds the opponents (see the module
        docstring). Returns the learner's observation and info."""
        super().reset(seed=seed)
        self._obs, infos = self.market.reset(seed=seed)
        distinct = list({id(p): p for p in self.opponents.values()}.values())  # a shared learned policy resets once
        for k, policy in enumerate(distinct):
            policy.reset(seed=None if seed is None else int(np.random.SeedSequence([seed, k]).generate_state(1)[0]))
        return self._obs[self.learner], infos[self.learner]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Play one round: the learner's ``action`` against the opponents' policies on their own observations.
        Returns the learner's observation, profit, terminated (always False), truncated (at the horizon) and info.
        A malformed action raises ValueError naming the learner."""
        if not self.market.agents:
            raise RuntimeError("step() called on a finished episode; call reset()")
        joint = {agent: policy.act(self._obs[agent]) for agent, policy in self.opponents.items()}
        joint[self.learner] = action
        obs, rewards, terminations, truncations, infos = self.market.step(joint)
        self._obs = obs
        a = self.learner
        return obs[a], float(rewards[a]), terminations[a], truncations[a], infos[a]

    def render(self) -> str | None:
        """The last round as the PettingZoo market renders it (a string in ``ansi`` mode, printed in ``human``)."""
        return self.market.render()

    def close(self) -> None:
        self.market.close()


def register(env_id: str = ENV_ID) -> None:
    """Register :class:`SingleAgentMarket` with Gymnasium as ``env_id`` (once; importing :mod:`ecosystem` does it),
    so ``gymnasium.make("LLMMarket-v1", scenario=..., mechanism=..., opponents=...)`` builds it."""
    if env_id not in gymnasium.registry:
        gymnasium.register(id=env_id, entry_point=f"{__name__}:SingleAgentMarket")


__all__ = ["SingleAgentMarket", "ENV_ID", "gymnasium_id", "register"]
