"""The strategy registry: scripted strategies by name.

Each module of the ``agents`` package registers the strategies it defines with :func:`register_strategy`; the registry
imports every module of the package the first time it is asked for a strategy, so adding a strategy touches its own
module only.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

from agents.policy import Policy

StrategyFactory = Callable[..., Policy]
"""``factory(layout, seed=None, **params) -> Policy``."""

REGISTRY: dict[str, StrategyFactory] = {}
_discovered = False


def register_strategy(name: str, factory: StrategyFactory) -> None:
    """Add a scripted strategy ``factory(layout, seed=None, **params) -> Policy`` under ``name``."""
    if name in REGISTRY:
        raise ValueError(f"strategy {name!r} is already registered")
    REGISTRY[name] = factory


def _discover() -> None:
    """Import every module of the ``agents`` package once, so each registers its strategies."""
    global _discovered
    if not _discovered:
        _discovered = True
        import agents

        for module in pkgutil.iter_modules(agents.__path__):
            importlib.import_module(f"agents.{module.name}")


def strategy_names() -> list[str]:
    """Every registered strategy name, sorted."""
    _discover()
    return sorted(REGISTRY)


def make_strategy(name: str, layout: Any, seed: int | None = None, **params: Any) -> Policy:
    """A scripted strategy by name (the modules' docstrings describe them), with parameter overrides.

    Args:
        name: a registered name (:func:`strategy_names`).
        layout: the market's :class:`envs.market.ObservationLayout`.
        seed: seed of a random strategy's Generator.
        **params: the strategy's own parameters (``markup=1.5``, ...).
    """
    _discover()
    if name not in REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; choose one of {strategy_names()}")
    try:
        return REGISTRY[name](layout, seed=seed, **params)
    except TypeError as exc:
        raise ValueError(f"strategy {name!r}: {exc}") from None
