"""The mechanism registry: every mechanism module registers its class with :func:`register`, and the package imports
every module it holds (``mechanisms/__init__.py``), so adding a mechanism touches its own module and its docs only.

Registered mechanisms are kept in the order of the MECHANISMS.md sections that define them (``reference``), then by
name: the order of reports and of the default evaluation.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import numbers
import re
import types
import typing
from typing import Any, Literal, Union

import numpy as np

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


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of the annotated type ``hint``; a ``float`` must be finite."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple, collections.abc.Sequence):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return isinstance(value, (list, tuple, np.ndarray)) and all(_fits(v, item) for v in value)
    if hint is Any:
        return True
    if hint is float:
        return _is_number(value) and math.isfinite(value)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    """What a value of the annotated type ``hint`` is, in words."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if origin is Literal:
        return f"one of {list(typing.get_args(hint))}"
    if origin in (list, tuple, collections.abc.Sequence):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return f"a list, each {_describe(item)}"
    words = {float: "a finite number", int: "an integer", bool: "true or false", str: "a string", type(None): "null"}
    return words.get(hint, f"an instance of {getattr(hint, '__name__', hint)}")


def check_parameters(name: str, params: dict[str, Any]) -> None:
    """Raise the ValueError naming the mechanism and the parameter for a name it does not accept or a value that does
    not fit the parameter's annotation: the one check of every mechanism parameter (a number must be finite
    wherever it appears: ``reserve=nan``, ``weights=[1, inf]``; an integer an integer; a flag true or false; a choice
    one of its values). Ranges are the mechanism's own (its constructor's errors)."""
    accepted = parameters(name)
    unknown = sorted(set(params) - set(accepted), key=str)
    if unknown:
        raise ValueError(f"mechanism {name!r}: unknown parameter(s) {unknown}; it accepts {accepted}")
    hints = typing.get_type_hints(REGISTRY[name].__init__)
    for key, value in params.items():
        hint = hints.get(key, Any)
        if not _fits(value, hint):
            raise ValueError(f"mechanism {name!r}: parameter {key!r}: expected {_describe(hint)}, got {value!r}")


def make(name: str, **params: Any) -> Mechanism:
    """Build a mechanism by registry name; unknown names or parameters and values of the wrong type (NaN and
    infinities included) are errors that say what is accepted (:func:`check_parameters`)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown mechanism {name!r}; choose one of {sorted(REGISTRY)}")
    check_parameters(name, params)
    return REGISTRY[name](**params)
