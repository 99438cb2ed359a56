"""The one policy interface: observation -> action, for scripted and learned strategies alike.

A policy knows the observation layout (:class:`envs.market.ObservationLayout`) and the action encoding of the market
(module docstring of :mod:`envs.market`); it knows nothing of the mechanism's internals. Observations may be one
vector [D] or a batch [B, D]; the action has the matching shape [3] or [B, 3].
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Policy(ABC):
    """A provider strategy."""

    name: str = ""

    @abstractmethod
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Action(s) in [-1, 1]^3 (bid, substitution, inflation) for observation(s) [D] or [B, D]."""

    def reset(self, seed: int | None = None) -> None:
        """Start an episode (stateful or random policies reseed here)."""

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return self.act(obs)


def act_all(policies: dict[str, Policy], observations: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Joint action of a profile: every live agent's policy applied to its own observation."""
    return {agent: policies[agent].act(obs) for agent, obs in observations.items()}
