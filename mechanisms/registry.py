"""The mechanism registry: every mechanism module registers its class with :func:`register`, and the package imports
every module it holds (``mechanisms/__init__.py``), so adding a mechanism touches its own module and its docs only.

Registered mechanisms are kept in the order of the MECHANISMS.md sections that define them (``reference``), then by
name: the order of reports and of the default evaluation.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from mechanisms.base import Mechanism

REGISTRY: dict[str, type[Mechanism]] = {}


def _section(cls: type[Mechanism]) -> int:
    found = re.search(r"§(\d+)", cls.reference)
    return int(found.group(1)) if found else 99


def register(cls: type[Mechanism]) -> type[Mechanism]:
    """Class decorator adding a mechanism to the registry under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"mechanism name {cls.name!r} is empty or already registered")
    REGISTRY[cls.name] = cls
    ordered = sorted(REGISTRY.values(), key=lambda c: (_section(c), c.name))
    REGISTRY.clear()
    REGISTRY.update((c.name, c) for c in ordered)
    return cls


def parameters(name: str) -> list[str]:
    """The keyword parameters a mechanism accepts."""
    return [p for p in inspect.signature(REGISTRY[name].__init__).parameters if p != "self"]


def make(name: str, **params: Any) -> Mechanism:
    """Build a mechanism by registry name; unknown names or parameters are errors that list what is accepted."""
    if name not in REGISTRY:
        raise ValueError(f"unknown mechanism {name!r}; choose one of {sorted(REGISTRY)}")
    accepted = parameters(name)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"mechanism {name!r}: unknown parameter(s) {unknown}; it accepts {accepted}")
    return REGISTRY[name](**params)
