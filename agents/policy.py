"""The one policy interface: observation -> action, for scripted and learned strategies alike.

A policy knows the observation layout (:class:`envs.market.ObservationLayout`) and the action encoding of the market
(module docstring of :mod:`envs.market`); it knows nothing of the mechanism's internals. Observations may be one
vector [D] or a batch [B, D]; the action has the matching shape [3] or [B, 3].
"""

from __future__ import annotations

import typing
from abc import ABC, abstractmethod
from typing import Literal

import numpy as np


class Policy(ABC):
    """A provider strategy."""

    name: str = ""

    @abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action(s) in [-1, 1]^3 (bid, substitution, inflation) for observation(s) [D] or [B, D]."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (stateful or random policies reseed here)."""

    def key(self) -> object:
        """Equal for policies that act identically on every observation (batched rollouts call each such group
        once); by default the object itself."""
        return id(self)

    def state_dict(self) -> dict:
        """What a stateful policy needs to continue exactly (JSON-able; empty for a stateless one)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)


Lever = Literal["bid", "substitution", "inflation"]  # the action's dimensions, in order
LEVERS: tuple[Lever, ...] = typing.get_args(Lever)
LEVER_SETS = {"bid": ("bid",), "substitution": ("substitution",), "inflation": ("inflation",), "all": LEVERS}


class LeverMask(Policy):
    """A policy restricted to some of its levers: the others play honest (their action dimension is 0).

    Playing a deviation with one lever at a time tells which lever pays (MECHANISMS.md §9: the regret decomposition
    of a verdict): ``LeverMask(policy, ("substitution",))`` substitutes as ``policy`` does but bids honestly and
    reports true tokens.
    """

    def __init__(self, policy: Policy, levers: tuple[str, ...]):
        unknown = [lever for lever in levers if lever not in LEVERS]
        if unknown:
            raise ValueError(f"unknown lever(s) {unknown}; levers are {list(LEVERS)}")
        self.policy = policy
        self.levers = tuple(levers)
        self.keep = np.array([lever in levers for lever in LEVERS], dtype=np.float32)  # 1: the dimension is played
        self.name = f"{policy.name}[{'+'.join(levers)}]"

    def act(self, obs: np.ndarray) -> np.ndarray:
        return (self.policy.act(obs) * self.keep).astype(np.float32)

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def key(self) -> object:
        return ("levers", self.levers, self.policy.key())

    def state_dict(self) -> dict:
        return self.policy.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.policy.load_state_dict(state)


def act_all(policies: dict[str, Policy], observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Joint action of a profile: every live agent's policy applied to its own observation."""
    return {agent: policies[agent].act(obs) for agent, obs in observations.items()}
