"""Platform mechanisms, one module each behind :class:`mechanisms.base.Mechanism`, registered by name.

>>> import mechanisms
>>> sorted(mechanisms.REGISTRY)[:2]
['first_price', 'myerson']
>>> m = mechanisms.make("ucb_myerson", reserve=2.0)
"""

from __future__ import annotations

import inspect
from typing import Any

from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.first_price import FirstPrice
from mechanisms.myerson import Myerson
from mechanisms.rosa import Rosa
from mechanisms.second_best import SecondBest
from mechanisms.second_price import SecondPrice
from mechanisms.soft_rochet import SoftRochet
from mechanisms.ucb_myerson import UCBMyerson

REGISTRY: dict[str, type[Mechanism]] = {
    cls.name: cls for cls in (FirstPrice, SecondPrice, UCBMyerson, Myerson, Rosa, SoftRochet, SecondBest)}
DEFAULT_MECHANISMS = ("first_price", "second_price", "ucb_myerson", "myerson", "rosa", "soft_rochet", "second_best")


def register(cls: type[Mechanism]) -> type[Mechanism]:
    """Class decorator adding a mechanism to the registry under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"mechanism name {cls.name!r} is empty or already registered")
    REGISTRY[cls.name] = cls
    return cls


def make(name: str, **params: Any) -> Mechanism:
    """Build a mechanism by registry name; unknown names or parameters are errors that list what is accepted."""
    if name not in REGISTRY:
        raise ValueError(f"unknown mechanism {name!r}; choose one of {sorted(REGISTRY)}")
    cls = REGISTRY[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"mechanism {name!r}: unknown parameter(s) {unknown}; it accepts {accepted}")
    return cls(**params)


__all__ = ["Mechanism", "MarketInfo", "NO_WINNER", "REGISTRY", "DEFAULT_MECHANISMS", "register", "make"]
