"""Platform mechanisms, one module each behind :class:`mechanisms.base.Mechanism`, registered by name.

>>> import mechanisms
>>> list(mechanisms.REGISTRY)[:3]
['first_price', 'second_price', 'ucb_myerson']
>>> m = mechanisms.make("ucb_myerson", reserve=2.0)
"""

from __future__ import annotations

import importlib
import pkgutil

from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.registry import REGISTRY, make, parameters, register

# Every module of the package is imported once, so each mechanism module's @register runs.
for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

DEFAULT_MECHANISMS = tuple(REGISTRY)

__all__ = ["Mechanism", "MarketInfo", "NO_WINNER", "REGISTRY", "DEFAULT_MECHANISMS", "register", "make", "parameters"]
