"""Typed dataclass configs loaded from YAML, with errors that name the file and field.

One helper for every config of the project (scenarios here; ``training`` and ``evaluation`` configs): a YAML mapping
is checked key by key against a dataclass's fields and annotated types, and ``KEY=VALUE`` overrides (``--set``) are
parsed as YAML scalars and applied the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union, cast

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the source and field."""


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for arg in typing.get_args(tp):
            try:
                return _check(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {tp}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ConfigError(f"{where}: expected one of {list(typing.get_args(tp))}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_check(v, arg, f"{where}[{k}]") for k, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_check(k, kt, where): _check(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {tp}")


def from_dict(cls: type[T], data: Any, source: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type; unknown keys are errors."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cast(Any, cls)) if f.init]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {unknown}; {cls.__name__} has {names}")
    kwargs = {k: _check(v, hints[k], f"{source}: field {k!r}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with a ConfigError naming the file when it is not one."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_overrides(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings (values as YAML scalars: ``n_providers=3``, ``quality=prior``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{flag} {item!r}: cannot parse the value: {exc}") from exc
    return out


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain YAML/JSON-friendly data."""
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj


# ---------------------------------------------------------------------------------------------- command-line flags


def field_docs(cls: type) -> dict[str, str]:
    """Each field's description from the class docstring's ``Attributes:`` section (``a, b: text`` documents both)."""
    docs: dict[str, str] = {}
    lines = (cls.__doc__ or "").splitlines()
    try:
        start = next(k for k, line in enumerate(lines) if line.strip() == "Attributes:")
    except StopIteration:
        return docs
    names: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        head, sep, text = line.strip().partition(": ")
        if sep and all(n.strip().isidentifier() for n in head.split(",")):
            names = [n.strip() for n in head.split(",")]
            for n in names:
                docs[n] = text.strip()
        else:
            for n in names:
                docs[n] += " " + line.strip()
    return docs


def parse_scalar(text: str) -> Any:
    """A command-line value as the number it spells (``3``, ``1e-3``) or else the string itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _flag_parser(tp: Any) -> tuple[str, Any]:
    """How a field of annotated type ``tp`` is given on the command line: (kind, converter)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _flag_parser(args[0]) if len(args) == 1 else ("scalar", parse_scalar)
    if tp is bool:
        return "bool", None
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)
        return "list", item if item in (int, float) else str
    if origin is dict:
        return "mapping", None
    if origin is typing.Literal:
        return "scalar", str
    return "scalar", tp if tp in (int, float, str) else str


def add_config_flags(parser: argparse.ArgumentParser, cls: type, aliases: dict[str, list[str]] | None = None) -> None:
    """One flag per field of the dataclass ``cls`` (CleanRL's ``Args`` pattern), help text from its docstring.

    ``--field-name`` for every field (plus ``aliases``); lists take comma-separated values and may repeat; mappings
    take repeatable ``KEY=VALUE`` pairs (values as YAML scalars); booleans are ``--name`` / ``--no-name``. A flag
    not given is ``None`` in the namespace, so :func:`flags_to_dict` keeps only what was typed.
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        names = [f"--{f.name.replace('_', '-')}", *(aliases or {}).get(f.name, [])]
        kind, convert = _flag_parser(hints[f.name])
        help_text = docs.get(f.name, "")
        if kind == "bool":
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif kind == "list":
            parser.add_argument(*names, dest=f.name, action="append", metavar="A,B,...", help=help_text)
        elif kind == "mapping":
            parser.add_argument(*names, dest=f.name, action="append", metavar="KEY=VALUE",
                                help=f"{help_text} (repeatable)")
        else:
            choices = list(typing.get_args(hints[f.name])) if typing.get_origin(hints[f.name]) is typing.Literal \
                else None
            parser.add_argument(*names, dest=f.name, type=convert, choices=choices, default=None, help=help_text)


def flags_to_dict(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that were given as flags (see :func:`add_config_flags`), as config data."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        kind, convert = _flag_parser(hints[f.name])
        flag = f"--{f.name.replace('_', '-')}"
        if kind == "list":
            items = [item.strip() for chunk in value for item in chunk.split(",") if item.strip()]
            try:
                value = [convert(item) for item in items]
            except ValueError:
                raise ConfigError(f"{flag} {','.join(items)}: expected comma-separated {convert.__name__} values") \
                    from None
        elif kind == "mapping":
            value = parse_overrides(value, flag=flag)
        out[f.name] = value
    return out


def load_config(cls: type[T], path: str | Path | None = None, **fields: Any) -> T:
    """A ``cls`` config from an optional YAML file with ``fields`` on top (``None`` values are ignored; mapping
    fields such as ``overrides`` are merged key by key), validated by :func:`from_dict`."""
    data = load_yaml(path) if path else {}
    hints = typing.get_type_hints(cls)
    for key, value in fields.items():
        if value is None:
            continue
        if typing.get_origin(hints.get(key)) is dict and isinstance(data.get(key), dict):
            value = {**data[key], **value}
        data[key] = value
    return from_dict(cls, data, str(path) if path else f"{cls.__name__} flags")
