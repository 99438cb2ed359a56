"""Typed dataclass configs loaded from YAML, with errors that name the file, flag and field.

One helper for every config of the project (scenarios here; ``training`` and ``evaluation`` configs): a YAML mapping
is checked key by key against a dataclass's fields and annotated types (a ``float`` must be a finite number), and
``KEY=VALUE`` overrides (``--set``) are parsed as YAML scalars and applied the same way. YAML is read with the YAML 1.2
core schema (``1e-3`` and ``.5`` are numbers, ``yes`` and ``0777``-style octals are not special). A config built from
several sources (a preset file, a config file, flags, ``--set`` pairs: :class:`Layer`) names the source of the key
that makes it invalid (:func:`build_layered`).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import operator
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, Union, cast

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override is malformed; the message names the source and field."""


class _Mismatch(ConfigError):
    """A value of the wrong type at ``where`` (what was ``expected`` is kept, so a union can list its options)."""

    def __init__(self, where: str, expected: str, value: Any):
        super().__init__(f"{where}: expected {expected}, got {value!r}")
        self.where, self.expected = where, expected


def _check(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to type ``tp`` or raise ConfigError naming ``where``.

    This is the one type check of every config value: a ``float`` must be a finite number (NaN and infinities are
    refused wherever they appear), an ``int`` an integer, a ``Literal`` one of its values, a dataclass a mapping of
    its fields (:func:`from_dict`)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        expected = []
        for arg in typing.get_args(tp):
            try:
                return _check(value, arg, where)
            except _Mismatch as exc:
                if exc.where != where:  # the value has this option's shape but a part of it is wrong: say which
                    raise
                expected.append(exc.expected)
        raise _Mismatch(where, " or ".join(expected), value)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch(where, "null", value)
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch(where, f"one of {list(typing.get_args(tp))}", value)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(where, "a list", value)
        (arg,) = typing.get_args(tp)[:1] or (Any,)
        return [_check(v, arg, f"{where}[{k}]") for k, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(where, "a mapping", value)
        kt, vt = typing.get_args(tp) or (Any, Any)
        return {_check(k, kt, where): _check(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            check_fields(value, where)
            return value
        return from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _Mismatch(where, "a finite number", value)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Mismatch(where, "an integer", value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _Mismatch(where, "true or false", value)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise _Mismatch(where, "a string", value)
        return value
    raise ConfigError(f"{where}: unsupported config type {tp}")


def from_dict(cls: type[T], data: Any, source: str | None = None) -> T:
    """Build dataclass ``cls`` from a mapping, checking every key and type; unknown keys are errors. Messages start
    with ``source`` (a file, a flag) when it is given."""
    prefix = f"{source}: " if source else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}expected a mapping of {cls.__name__} fields, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cast(Any, cls)) if f.init]
    unknown = sorted(set(data) - set(names), key=str)
    if unknown:
        raise ConfigError(f"{prefix}unknown field(s) {unknown}; {cls.__name__} has {names}")
    kwargs = {k: _check(v, hints[k], f"{prefix}field {k!r}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix}{exc}") from exc


def check_finite(value: Any, where: str) -> None:
    """Raise the ConfigError naming ``where`` when an untyped setting (``algo_kwargs``, ...) holds NaN or an
    infinity, alone or anywhere in its lists and mappings."""
    if isinstance(value, float) and not math.isfinite(value):
        raise _Mismatch(where, "a finite number", value)
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        check_finite(item, f"{where}[{key!r}]" if isinstance(value, dict) else f"{where}[{key}]")


def check_fields(obj: Any, source: str) -> None:
    """Check every field of a dataclass instance against its annotation (:func:`_check`): configs call it from
    ``__post_init__``, so one built directly in Python (not from a file or flags) is checked the same way."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        _check(getattr(obj, f.name), hints[f.name], f"{source}: field {f.name!r}")


# ------------------------------------------------------------------------------------------------ YAML 1.2 core

_TAG = "tag:yaml.org,2002:"
# The YAML 1.2 core schema's plain scalars that are not strings (https://yaml.org/spec/1.2.2/#1032-tag-resolution).
_CORE_SCALARS = [
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    (
        "float",
        (
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    ),
]


class _CoreLoader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema in place of YAML 1.1's implicit types."""


class _CoreDumper(yaml.SafeDumper):
    """PyYAML's safe dumper quoting every string that YAML 1.1 *or* 1.2 would read as another type."""


def _core_int(loader: _CoreLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    return int(text[2:], 8) if text.startswith("0o") else int(text, 16 if text.startswith("0x") else 10)


_CoreLoader.yaml_implicit_resolvers = {}
for _name, _pattern, _first in _CORE_SCALARS:
    _CoreLoader.add_implicit_resolver(_TAG + _name, re.compile(_pattern), _first)
    _CoreDumper.add_implicit_resolver(_TAG + _name, re.compile(_pattern), _first)
_CoreLoader.add_constructor(_TAG + "int", _core_int)


def parse_yaml(text: str) -> Any:
    """YAML text as data (safe: no Python objects), with the YAML 1.2 core schema."""
    return yaml.load(text, Loader=_CoreLoader)


def dump_yaml(data: Any) -> str:
    """Data as YAML that :func:`parse_yaml` (and YAML 1.1 readers) read back unchanged, keys in their order."""
    return yaml.dump(data, Dumper=_CoreDumper, sort_keys=False)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping, with a ConfigError naming the file when it is not one."""
    path = Path(path)
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def parse_overrides(items: list[str] | None, flag: str = "--set") -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings (values as YAML 1.2 scalars: ``n_providers=3``, ``quality=prior``,
    ``learning_rate=1e-3``)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = parse_yaml(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{flag} {item!r}: cannot parse the value: {exc}") from exc
    return out


# ------------------------------------------------------------------------------------------- layered sources


def _spell(value: Any) -> str:
    """A value as it is typed in YAML or on the command line."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


@dataclass(frozen=True)
class Layer:
    """Config data from one source (a file, flags, ``KEY=VALUE`` pairs); later layers win over earlier ones.

    Attributes:
        data: the keys this source gives.
        source: the source as a whole (a file path, ``command-line flags``, ``--set``).
        name: the source of one key, from the key and its value (``--learning-rate``, ``--set bid_scale=nan``);
            default ``source``.
    """

    data: dict[str, Any]
    source: str
    name: Callable[[str, Any], str] | None = None

    def label(self, key: str) -> str:
        """Where ``key`` comes from."""
        return self.name(key, self.data[key]) if self.name else self.source

    def restrict(self, keep: Callable[[str], bool]) -> Layer:
        """The same source with only the keys ``keep`` accepts."""
        return dataclasses.replace(self, data={k: v for k, v in self.data.items() if keep(k)})

    @staticmethod
    def flags(data: dict[str, Any], aliases: dict[str, list[str]] | None = None) -> Layer:
        """Config fields given as command-line flags (``--field-name``, or its first alias: :func:`flag_name`)."""
        return Layer(data, "command-line flags", lambda key, value: flag_name(key, aliases))

    @staticmethod
    def pairs(data: dict[str, Any], flag: str) -> Layer:
        """``KEY=VALUE`` pairs given with ``flag`` (``--set``) or as keyword arguments."""
        return Layer(data, flag, lambda key, value: f"{flag} {key}={_spell(value)}")


def merge_layers(layers: Sequence[Layer]) -> dict[str, Any]:
    """The layers' data, later ones on top (mappings merged key by key, as ``overrides`` are)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.data.items():
            base = out.get(key)
            out[key] = {**base, **value} if isinstance(base, dict) and isinstance(value, dict) else value
    return out


def _error(build: Callable[[dict[str, Any]], Any], data: dict[str, Any]) -> ValueError | None:
    try:
        build(data)
    except ValueError as exc:
        return exc
    return None


def build_layered(build: Callable[[dict[str, Any]], T], layers: Sequence[Layer]) -> T:
    """``build`` (which raises ValueError for bad data) of the layers merged in order.

    When it fails, the ConfigError names the source of the key at fault: the first layer that breaks what the layers
    below it build, and in it a key whose removal repairs it (the one the error names, if any; else the first key
    that breaks it alone; else the layer as a whole). The search runs only after a failure."""
    try:
        return build(merge_layers(layers))
    except ValueError:
        pass
    k = next(k for k in range(len(layers)) if _error(build, merge_layers(layers[: k + 1])))
    below, layer = list(layers[:k]), layers[k]
    error = _error(build, merge_layers([*below, layer]))
    if _error(build, merge_layers(below)) is None:  # what is below is fine: find the key of this layer at fault
        repairing = [
            key
            for key in layer.data
            if _error(build, merge_layers([*below, layer.restrict(functools.partial(operator.ne, key))])) is None
        ]
        if repairing:
            key = next((key for key in repairing if f"'{key}'" in str(error)), repairing[0])
            raise ConfigError(f"{layer.label(key)}: {error}")
        for key in layer.data:
            alone = _error(build, merge_layers([*below, layer.restrict(functools.partial(operator.eq, key))]))
            if alone is not None:
                raise ConfigError(f"{layer.label(key)}: {alone}")
    raise ConfigError(f"{layer.source}: {error}")


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
    for line in lines[start + 1 :]:
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


def flag_name(field: str, aliases: dict[str, list[str]] | None = None) -> str:
    """The flag an error names for a config field: its first alias (``overrides`` -> ``--set``) or
    ``--field-name``."""
    return ((aliases or {}).get(field) or [f"--{field.replace('_', '-')}"])[0]


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
        help_text = docs.get(f.name, "").replace("%", "%%")  # argparse %-formats help: "95%" would break --help
        if kind == "bool":
            parser.add_argument(
                *names, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif kind == "list":
            parser.add_argument(*names, dest=f.name, action="append", metavar="A,B,...", help=help_text)
        elif kind == "mapping":
            parser.add_argument(
                *names, dest=f.name, action="append", metavar="KEY=VALUE", help=f"{help_text} (repeatable)"
            )
        else:
            choices = (
                list(typing.get_args(hints[f.name])) if typing.get_origin(hints[f.name]) is typing.Literal else None
            )
            parser.add_argument(*names, dest=f.name, type=convert, choices=choices, default=None, help=help_text)


def flags_to_dict(args: argparse.Namespace, cls: type, aliases: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The fields of ``cls`` that were given as flags (see :func:`add_config_flags`, with the same ``aliases``), as
    config data."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        kind, convert = _flag_parser(hints[f.name])
        flag = flag_name(f.name, aliases)
        if kind == "list":
            items = [item.strip() for chunk in value for item in chunk.split(",") if item.strip()]
            try:
                value = [convert(item) for item in items]
            except ValueError:
                raise ConfigError(
                    f"{flag} {','.join(items)}: expected comma-separated {convert.__name__} values"
                ) from None
        elif kind == "mapping":
            value = parse_overrides(value, flag=flag)
        out[f.name] = value
    return out


def load_config(
    cls: type[T], path: str | Path | None = None, aliases: dict[str, list[str]] | None = None, **fields: Any
) -> T:
    """A ``cls`` config from an optional YAML file with ``fields`` (flags) on top (``None`` values are ignored;
    mapping fields such as ``overrides`` are merged key by key), validated by :func:`from_dict`; an error names the
    file or the flag (:func:`flag_name` with ``aliases``) it comes from."""
    layers = [Layer(load_yaml(path), str(path))] if path else []
    layers.append(Layer.flags({k: v for k, v in fields.items() if v is not None}, aliases))
    return build_layered(lambda data: from_dict(cls, data), layers)


def override_layers(
    path: str | Path | None, overrides: dict[str, Any], flagged: dict[str, Any] | None, flag: str = "--set"
) -> list[Layer]:
    """A config's ``overrides`` by source: those of its file ``path``, then those given as ``flag`` pairs
    (``flagged``), for :func:`envs.market.check_overrides`."""
    flagged = flagged or {}
    from_file = {k: v for k, v in overrides.items() if k not in flagged}
    return [Layer(from_file, f"{path}: field 'overrides'"), Layer.pairs(flagged, flag)]
