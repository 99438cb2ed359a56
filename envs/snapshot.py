"""Snapshots of a market's (or a mechanism's, or any project object's) dynamic state as plain data, for exact resume.

:func:`capture` walks an object's attributes into numpy arrays (saved with ``numpy.savez``, never pickled) and JSON
values (numbers, strings, lists of them, numpy Generators as their bit-generator state); nested objects of this
project (a mechanism's quality estimator, an allocation rule) are walked too. :func:`restore` writes the values back
into an object of the same class built the same way (same config, same constructor arguments), which then continues
exactly where the captured one was. An attribute of any other type is an error, so a new kind of state cannot be
dropped silently: a class lists the attributes rebuilt from its configuration in ``TRANSIENT`` (skipped) and its
caches in ``CACHES`` (skipped, and emptied to None on restore, so a stale cache cannot outlive the restored state).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PACKAGES = ("envs.", "mechanisms.", "agents.", "training.", "evaluation.")


class SnapshotError(ValueError):
    """A snapshot does not fit the object it is restored into, or an attribute cannot be captured."""


def _ours(value: Any) -> bool:
    return type(value).__module__.startswith(PACKAGES) and hasattr(value, "__dict__")


def _plain(value: Any) -> bool:
    """JSON-representable without loss: None, bool, int, float, str, and lists / tuples of those."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _declared(obj: Any, attribute: str) -> set[str]:
    names: set[str] = set()
    for cls in type(obj).__mro__:
        names.update(getattr(cls, attribute, ()))
    return names


def _transient(obj: Any) -> set[str]:
    return _declared(obj, "TRANSIENT") | _declared(obj, "CACHES")


def capture(
    obj: Any, prefix: str = "", arrays: dict[str, np.ndarray] | None = None, meta: dict[str, Any] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The dynamic state of ``obj`` as (arrays, JSON meta), keyed by dotted attribute path."""
    arrays = {} if arrays is None else arrays
    meta = {} if meta is None else meta
    skip = _transient(obj)
    for name, value in vars(obj).items():
        if name in skip:
            continue
        key = f"{prefix}{name}"
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, np.generic):
            meta[key] = value.item()
        elif _plain(value):
            meta[key] = list(value) if isinstance(value, tuple) else value
        elif isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
            for k, v in value.items():
                arrays[f"{key}[{k}]"] = v
            meta[key] = {"array_dict": list(value)}
        elif isinstance(value, np.random.Generator):
            meta[key] = {"generator": value.bit_generator.state}
        elif isinstance(value, list) and all(isinstance(v, np.random.Generator) for v in value):
            meta[key] = {"generators": [g.bit_generator.state for g in value]}
        elif _ours(value):
            capture(value, f"{key}.", arrays, meta)
        elif isinstance(value, list) and value and all(_ours(v) for v in value):
            for k, v in enumerate(value):
                capture(v, f"{key}[{k}].", arrays, meta)
        else:
            raise SnapshotError(
                f"{type(obj).__name__}.{name}: cannot capture a {type(value).__name__}; list it in "
                f"{type(obj).__name__}.TRANSIENT if it is rebuilt from the configuration or a cache"
            )
    return arrays, meta


def restore(obj: Any, arrays: dict[str, np.ndarray], meta: dict[str, Any], prefix: str = "") -> None:
    """Write a :func:`capture` snapshot back into ``obj`` (built like the captured object)."""
    skip = _transient(obj)
    for name in _declared(obj, "CACHES"):
        setattr(obj, name, None)
    for name, value in list(vars(obj).items()):
        if name in skip:
            continue
        key = f"{prefix}{name}"
        stored = meta.get(key)
        if key in arrays:
            setattr(obj, name, np.array(arrays[key], copy=True))
        elif isinstance(stored, dict) and "array_dict" in stored:
            setattr(obj, name, {k: np.array(arrays[f"{key}[{k}]"], copy=True) for k in stored["array_dict"]})
        elif isinstance(stored, dict) and "generator" in stored:
            value.bit_generator.state = stored["generator"]
        elif isinstance(stored, dict) and "generators" in stored:
            if len(stored["generators"]) != len(value):
                raise SnapshotError(f"{key}: {len(stored['generators'])} generator states for {len(value)} generators")
            for g, state in zip(value, stored["generators"]):
                g.bit_generator.state = state
        elif key in meta:
            setattr(obj, name, tuple(meta[key]) if isinstance(value, tuple) else meta[key])
        elif _ours(value):
            restore(value, arrays, meta, f"{key}.")
        elif isinstance(value, list) and value and all(_ours(v) for v in value):
            for k, v in enumerate(value):
                restore(v, arrays, meta, f"{key}[{k}].")
        else:
            raise SnapshotError(f"the snapshot has no value for {key!r}")
