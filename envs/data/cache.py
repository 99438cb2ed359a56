"""The canonical response-cache format, its validating loader and its crash-safe writer.

A response cache is what makes the market's value stochastic and real: for every query and every model, how good
the model's answer was (score in [0, 1]) and how many tokens it consumed. The market draws a query, looks up the
served model's row, and pays the user ``value_scale * score`` (MECHANISMS.md §1).

On disk a cache is a directory with three files::

    meta.json           {"name", "provenance": "real" | "calibrated" | "generated", "source", "description",
                         "models": {model: {"price_in": USD per 1M input tokens, "price_out": ...}}, ...}
    queries.csv[.gz]    query_id, text, domain, [context columns ...]
    responses.csv[.gz]  query_id, model, score, input_tokens, output_tokens, [latency_ms, answer, extra columns ...]

Context columns of the queries table (e.g. ``subject``, ``continent``) are public features of the query; the first
one named in ``meta.json["context_field"]`` (default: the first extra column) groups queries for the platform's
quality estimates. Extra response columns (per-field correctness, raw replies) are kept as strings.

Every check names the file, the row (1-based data row) and the field: a cache that loads is a cache that is right.
Besides types and ranges, the loader bounds what no real cache holds: token counts above :data:`MAX_TOKENS` per
request, CSV fields longer than :data:`MAX_FIELD_CHARS` characters, list prices above :data:`MAX_PRICE`, tables above
:data:`MAX_TABLE_BYTES`. Files are UTF-8 (a byte-order mark is ignored); ``meta.json`` is strict JSON (no NaN or
Infinity, no duplicate keys).

One form per table: a directory holds either ``queries.csv`` or ``queries.csv.gz`` (the same for ``responses``),
never both. A directory with both is refused with an error naming the two files, since nothing tells which one is
current; the writer never leaves both, because it replaces the whole directory.

Writing (:func:`write_cache`) is all or nothing. The new cache is written to a sibling staging directory
(``.NAME.tmp-XXXXXXXX``, every file fsynced), loaded back with every check of :func:`load_cache`, and only then
swapped with the old directory in one atomic exchange (``renameat2(RENAME_EXCHANGE)`` on Linux, ``renamex_np`` on
macOS; a plain ``rename`` when there is no old directory). At every instant the path is the complete old cache or the
complete new one: a killed writer leaves the previous cache, plus at most a staging directory that the next write
removes. An invalid new cache raises :class:`CacheError` and changes nothing.
"""

from __future__ import annotations

import csv
import ctypes
import gzip
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.files import fsync_dir, write_durably

PROVENANCES = ("real", "calibrated", "generated")
QUERY_COLUMNS = ("query_id", "text", "domain")
RESPONSE_COLUMNS = ("query_id", "model", "score", "input_tokens", "output_tokens")
OPTIONAL_RESPONSE_COLUMNS = ("latency_ms", "answer")
CACHE_FILES = ("meta.json", "queries.csv", "queries.csv.gz", "responses.csv", "responses.csv.gz")

# Tokens of one request: no model's context window comes near; a count above it is a unit or parsing error.
MAX_TOKENS = 100_000_000
# Characters of one CSV field (a reply, a question): below the csv module's default field limit (131072), so the
# loader's own message, naming row and field, is the one a user sees.
MAX_FIELD_CHARS = 100_000
# USD per 1M tokens: list prices are cents to tens of dollars; this bound only catches typos and unit slips.
MAX_PRICE = 1_000_000.0
# Bytes of one table once decompressed (the real Llama results take ~15 MB): a bound against decompression bombs.
MAX_TABLE_BYTES = 1 << 30


class CacheError(ValueError):
    """A response cache is malformed; the message names the file, row and field."""


@dataclass
class ResponseCache:
    """A validated response cache held as dense arrays (query x model).

    Attributes:
        name, provenance, source, description: from ``meta.json``.
        models: model names, the column order of the arrays.
        price_in, price_out: list prices in USD per 1M tokens, aligned with ``models``.
        query_ids, texts, domains: one entry per query (row order of the arrays).
        context: public context columns of the queries table, name -> list of strings.
        context_field: the context column that groups queries (``None`` when there is none).
        score: float64 [Q, M] in [0, 1]; input_tokens, output_tokens: int64 [Q, M].
        latency_ms: float64 [Q, M] (NaN where absent).
        extra: other response columns, name -> object array [Q, M] of strings.
    """

    name: str
    provenance: str
    source: str
    description: str
    models: list[str]
    price_in: np.ndarray
    price_out: np.ndarray
    query_ids: list[str]
    texts: list[str]
    domains: list[str]
    context: dict[str, list[str]]
    context_field: str | None
    score: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    latency_ms: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids)

    def model_index(self, model: str) -> int:
        try:
            return self.models.index(model)
        except ValueError:
            raise CacheError(f"cache {self.name!r}: unknown model {model!r}; it has {self.models}") from None

    def groups(self) -> tuple[np.ndarray, list[str]]:
        """Group index per query and the group names: domain, refined by the context field when there is one."""
        if self.context_field is None:
            labels = list(self.domains)
        else:
            labels = [f"{d}/{c}" for d, c in zip(self.domains, self.context[self.context_field])]
        names = sorted(set(labels))
        lookup = {n: k for k, n in enumerate(names)}
        return np.array([lookup[x] for x in labels], dtype=np.int64), names

    def subset(self, mask: np.ndarray) -> ResponseCache:
        """The cache restricted to the queries where ``mask`` is true (e.g. one domain)."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            raise CacheError(f"cache {self.name!r}: the query selection is empty")
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return ResponseCache(
            name=self.name,
            provenance=self.provenance,
            source=self.source,
            description=self.description,
            models=list(self.models),
            price_in=self.price_in,
            price_out=self.price_out,
            query_ids=pick(self.query_ids),
            texts=pick(self.texts),
            domains=pick(self.domains),
            context={k: pick(v) for k, v in self.context.items()},
            context_field=self.context_field,
            score=self.score[idx],
            input_tokens=self.input_tokens[idx],
            output_tokens=self.output_tokens[idx],
            latency_ms=self.latency_ms[idx],
            extra={k: v[idx] for k, v in self.extra.items()},
            meta=self.meta,
        )


# ----------------------------------------------------------------------------------------------------------- reading


def require_file(path: Path) -> Path:
    """``path`` if it is a regular file (a symbolic link to one is fine), else :class:`CacheError` saying what it is.

    A directory, a FIFO (reading one would block forever), a broken link or a missing path are all refused here, so a
    reader never fails later with an unlabelled ``OSError``.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        problem = "is a broken symbolic link" if path.is_symlink() else "does not exist"
        raise CacheError(f"{path}: {problem}, expected a file") from None
    except OSError as exc:
        raise CacheError(f"{path}: cannot be examined: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise CacheError(f"{path}: is a directory, expected a file")
    if not stat.S_ISREG(mode):
        raise CacheError(f"{path}: is not a regular file (a FIFO, socket or device), expected a file")
    return path


def _find(directory: Path, stem: str) -> Path:
    forms = [directory / f"{stem}.csv", directory / f"{stem}.csv.gz"]
    present = [p for p in forms if os.path.lexists(p)]
    if len(present) == 2:
        raise CacheError(
            f"{directory}: holds both {stem}.csv and {stem}.csv.gz; a cache has one form of each table "
            f"and nothing tells which is current: remove the stale one"
        )
    if not present:
        raise CacheError(f"{directory}: missing {stem}.csv or {stem}.csv.gz")
    return require_file(present[0])


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and data rows of a UTF-8 CSV file (gzipped when its name ends in ``.gz``), every field bounded."""
    gz = path.name.endswith(".gz")
    try:
        with (gzip.open if gz else open)(path, "rb") as fh:
            data = fh.read(MAX_TABLE_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        kind = "gzip file (truncated or corrupt?)" if gz else "file"
        raise CacheError(f"{path}: cannot read as a {kind}: {type(exc).__name__}: {exc}") from None
    if len(data) > MAX_TABLE_BYTES:
        raise CacheError(f"{path}: more than {MAX_TABLE_BYTES} bytes{' once decompressed' if gz else ''}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CacheError(f"{path}: line {line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows: list[list[str]] = []

    def where() -> str:
        return "the header" if not rows else f"row {len(rows)}"

    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            for k, value in enumerate(row):
                if len(value) > MAX_FIELD_CHARS:
                    column = rows[0][k] if rows and k < len(rows[0]) else f"#{k + 1}"
                    raise CacheError(
                        f"{path}: {where()}, field {column!r}: {len(value)} characters, expected at "
                        f"most {MAX_FIELD_CHARS}"
                    )
            rows.append(row)
    except csv.Error as exc:
        raise CacheError(f"{path}: {where()}: not valid CSV ({exc})") from None
    if not rows:
        raise CacheError(f"{path}: empty file, expected a header row")
    return rows[0], rows[1:]


def _require_columns(path: Path, header: Sequence[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise CacheError(f"{path}: missing column(s) {missing}; header is {list(header)}")
    dupes = {c for c in header if header.count(c) > 1}
    if dupes:
        raise CacheError(f"{path}: duplicate column(s) {sorted(dupes)}")


def _parse_float(path: Path, row: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CacheError(f"{path}: row {row}, field {column!r}: expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise CacheError(f"{path}: row {row}, field {column!r}: expected a finite number, got {text!r}")
    return value


def _parse_tokens(path: Path, row: int, column: str, text: str) -> int:
    value = _parse_float(path, row, column, text)
    if not 0 <= value <= MAX_TOKENS or value != int(value):
        raise CacheError(f"{path}: row {row}, field {column!r}: expected an integer in [0, {MAX_TOKENS}], got {text!r}")
    return int(value)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate key(s) {dupes} in one object")
    return dict(pairs)


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_price(path: Path, model: str, key: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= MAX_PRICE
    if not ok:
        raise CacheError(
            f"{path}: field 'models.{model}.{key}': expected a number in [0, {MAX_PRICE:g}] (USD per 1M "
            f"tokens), got {value!r}"
        )


def _read_meta(directory: Path) -> dict:
    path = directory / "meta.json"
    if not os.path.lexists(path):
        raise CacheError(f"{directory}: missing meta.json")
    require_file(path)
    try:
        text = path.read_bytes().decode("utf-8")
        meta = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except OSError as exc:
        raise CacheError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CacheError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, our hooks, over-long integers, deep nesting
        raise CacheError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise CacheError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    for key in ("name", "provenance", "source", "models"):
        if key not in meta:
            raise CacheError(f"{path}: missing field {key!r}")
    for key in ("name", "source", "description"):
        if key in meta and not isinstance(meta[key], str):
            raise CacheError(f"{path}: field {key!r}: expected a string, got {meta[key]!r}")
    if not meta["name"]:
        raise CacheError(f"{path}: field 'name': expected a non-empty string")
    if meta["provenance"] not in PROVENANCES:
        raise CacheError(f"{path}: field 'provenance' must be one of {PROVENANCES}, got {meta['provenance']!r}")
    if not isinstance(meta["models"], dict) or not meta["models"]:
        raise CacheError(
            f"{path}: field 'models': expected an object mapping model names to "
            f"{{'price_in': ..., 'price_out': ...}}, got {meta['models']!r}"
        )
    for model, prices in meta["models"].items():
        if not model:
            raise CacheError(f"{path}: field 'models': a model name is empty")
        if not isinstance(prices, dict):
            raise CacheError(
                f"{path}: field 'models.{model}': expected an object with 'price_in' and 'price_out', got {prices!r}"
            )
        for key in ("price_in", "price_out"):
            _check_price(path, model, key, prices.get(key))
    context_field = meta.get("context_field")
    if context_field is not None and not isinstance(context_field, str):
        raise CacheError(f"{path}: field 'context_field': expected a column name or null, got {context_field!r}")
    return meta


def load_cache(directory: str | os.PathLike, required_models: Sequence[str] = ()) -> ResponseCache:
    """Load and validate a cache directory in the canonical format.

    Args:
        directory: folder holding ``meta.json``, ``queries.csv[.gz]`` and ``responses.csv[.gz]``.
        required_models: models the caller will use; each must be priced in ``meta.json`` and have a result for every
            query.

    Raises:
        CacheError: naming the file, row and field of the first problem found.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CacheError(f"{directory}: not a cache directory (expected meta.json, queries.csv, responses.csv)")
    meta = _read_meta(directory)
    models = list(meta["models"])
    for model in required_models:
        if model not in meta["models"]:
            raise CacheError(f"{directory / 'meta.json'}: unknown model {model!r}; the cache prices {models}")

    qpath = _find(directory, "queries")
    qheader, qrows = _read_csv(qpath)
    _require_columns(qpath, qheader, QUERY_COLUMNS)
    context_cols = [c for c in qheader if c not in QUERY_COLUMNS]
    col = {c: k for k, c in enumerate(qheader)}
    query_ids: list[str] = []
    qindex: dict[str, int] = {}
    for r, row in enumerate(qrows, start=1):
        if len(row) != len(qheader):
            raise CacheError(f"{qpath}: row {r}: expected {len(qheader)} fields, got {len(row)}")
        qid = row[col["query_id"]]
        if not qid:
            raise CacheError(f"{qpath}: row {r}, field 'query_id': empty")
        if qid in qindex:
            raise CacheError(f"{qpath}: row {r}, field 'query_id': duplicate query {qid!r}")
        if not row[col["domain"]]:
            raise CacheError(f"{qpath}: row {r}, field 'domain': empty")
        qindex[qid] = r - 1
        query_ids.append(qid)
    if not query_ids:
        raise CacheError(f"{qpath}: no queries")

    rpath = _find(directory, "responses")
    rheader, rrows = _read_csv(rpath)
    _require_columns(rpath, rheader, RESPONSE_COLUMNS)
    rcol = {c: k for k, c in enumerate(rheader)}
    extra_cols = [c for c in rheader if c not in RESPONSE_COLUMNS and c != "latency_ms"]
    Q, M = len(query_ids), len(models)
    mindex = {m: k for k, m in enumerate(models)}
    score = np.full((Q, M), np.nan)
    tin = np.zeros((Q, M), dtype=np.int64)
    tout = np.zeros((Q, M), dtype=np.int64)
    latency = np.full((Q, M), np.nan)
    extra = {c: np.full((Q, M), "", dtype=object) for c in extra_cols}
    seen = np.zeros((Q, M), dtype=bool)
    for r, row in enumerate(rrows, start=1):
        if len(row) != len(rheader):
            raise CacheError(f"{rpath}: row {r}: expected {len(rheader)} fields, got {len(row)}")
        qid, model = row[rcol["query_id"]], row[rcol["model"]]
        if qid not in qindex:
            raise CacheError(f"{rpath}: row {r}, field 'query_id': {qid!r} is not in {qpath.name}")
        if model not in mindex:
            raise CacheError(f"{rpath}: row {r}, field 'model': unknown model {model!r}; meta.json prices {models}")
        q, m = qindex[qid], mindex[model]
        if seen[q, m]:
            raise CacheError(f"{rpath}: row {r}: duplicate result for (query {qid!r}, model {model!r})")
        seen[q, m] = True
        s = _parse_float(rpath, r, "score", row[rcol["score"]])
        if not 0.0 <= s <= 1.0:
            raise CacheError(f"{rpath}: row {r}, field 'score': expected a value in [0, 1], got {s}")
        score[q, m] = s
        tin[q, m] = _parse_tokens(rpath, r, "input_tokens", row[rcol["input_tokens"]])
        tout[q, m] = _parse_tokens(rpath, r, "output_tokens", row[rcol["output_tokens"]])
        if "latency_ms" in rcol and row[rcol["latency_ms"]] != "":
            lat = _parse_float(rpath, r, "latency_ms", row[rcol["latency_ms"]])
            if lat < 0:
                raise CacheError(
                    f"{rpath}: row {r}, field 'latency_ms': expected a non-negative number of "
                    f"milliseconds (or empty), got {lat}"
                )
            latency[q, m] = lat
        for c in extra_cols:
            extra[c][q, m] = row[rcol[c]]
    for model in required_models:
        m = mindex[model]
        missing = np.flatnonzero(~seen[:, m])
        if missing.size:
            raise CacheError(
                f"{rpath}: query {query_ids[missing[0]]!r} has no result for model {model!r} "
                f"({missing.size} queries lack one)"
            )

    context_field = meta.get("context_field", context_cols[0] if context_cols else None)
    if context_field is not None and context_field not in context_cols:
        raise CacheError(
            f"{directory / 'meta.json'}: field 'context_field' names {context_field!r}, "
            f"which is not a column of {qpath.name} ({context_cols})"
        )
    return ResponseCache(
        name=meta["name"],
        provenance=meta["provenance"],
        source=meta["source"],
        description=meta.get("description", ""),
        models=models,
        price_in=np.array([float(meta["models"][m]["price_in"]) for m in models]),
        price_out=np.array([float(meta["models"][m]["price_out"]) for m in models]),
        query_ids=query_ids,
        texts=[row[col["text"]] for row in qrows],
        domains=[row[col["domain"]] for row in qrows],
        context={c: [row[col[c]] for row in qrows] for c in context_cols},
        context_field=context_field,
        score=score,
        input_tokens=tin,
        output_tokens=tout,
        latency_ms=latency,
        extra=extra,
        meta=meta,
    )


# ----------------------------------------------------------------------------------------------------------- writing

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # Linux renameat2 flag
_RENAME_SWAP = 2  # macOS renamex_np flag


def _exchange(a: Path, b: Path) -> None:
    """Swap the directory entries ``a`` and ``b`` in one atomic step (both must exist)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (OSError, TypeError):
        libc = None
    if libc is not None and hasattr(libc, "renameat2"):
        rc = libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    elif libc is not None and hasattr(libc, "renamex_np"):
        rc = libc.renamex_np(os.fsencode(a), os.fsencode(b), _RENAME_SWAP)
    else:
        raise CacheError(
            f"{b}: this platform cannot swap two directories atomically, so an existing cache cannot "
            "be replaced safely; write to a new directory"
        )
    if rc != 0:
        err = ctypes.get_errno()
        raise CacheError(
            f"{b}: cannot swap in the new cache atomically: {os.strerror(err)} "
            "(the filesystem may not support it; write to a local disk)"
        )


def _staging_name(out: Path) -> re.Pattern:
    """Names of staging directories of ``out``: ``.NAME.tmp-`` and 8 random hex digits."""
    return re.compile(rf"\.{re.escape(out.name)}\.tmp-[0-9a-f]{{8}}")


def _make_staging(out: Path) -> Path:
    """A new, empty staging directory beside ``out``, with ``out``'s permissions (else the umask's, as mkdir)."""
    while True:
        staging = out.parent / f".{out.name}.tmp-{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            break
        except FileExistsError:
            continue
    if out.is_dir():
        os.chmod(staging, stat.S_IMODE(out.stat().st_mode))
    return staging


def _remove_stale_staging(out: Path) -> None:
    """Delete staging directories of ``out`` left by killed writers; a live writer holds a lock on its own."""
    import fcntl

    pattern = _staging_name(out)
    for entry in os.listdir(out.parent):
        if not pattern.fullmatch(entry):
            continue
        path = out.parent / entry
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # not a directory (so not ours)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a writer is still staging there
        else:
            shutil.rmtree(path, ignore_errors=True)  # garbage either way; what stays is retried next time
        finally:
            os.close(fd)


def check_cache_target(directory: str | os.PathLike, keep: Sequence[str] = ()) -> Path:
    """Check that a cache may be written at ``directory``; return its absolute path.

    The target must not exist, or be a real directory (not a symbolic link) holding nothing but cache files, the
    ``keep`` files and temporaries of an older writer (``.meta.json.tmp``, ...): replacing the directory drops
    everything else, so a directory with anything else in it is refused rather than emptied.

    Raises:
        CacheError: naming the directory and what is wrong with it.
    """
    out = Path(os.path.abspath(directory))
    if not out.name:
        raise CacheError(f"{out}: cannot write a cache at the filesystem root")
    if out.is_symlink():
        raise CacheError(f"{out}: is a symbolic link; give the directory it points to ({os.path.realpath(out)})")
    if not os.path.lexists(out):
        return out
    if not out.is_dir():
        raise CacheError(f"{out}: exists and is not a directory")
    allowed = set(CACHE_FILES) | {f".{name}.tmp" for name in CACHE_FILES} | set(keep)
    try:
        foreign = sorted(name for name in os.listdir(out) if name not in allowed)
    except OSError as exc:
        raise CacheError(f"{out}: cannot list: {exc.strerror or exc}") from None
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise CacheError(
            f"{out}: holds {shown}, which is not part of a cache; writing replaces the whole "
            "directory, so choose a new or empty one (or a cache directory)"
        )
    return out


def _csv_bytes(rows: Sequence[dict], first: Sequence[str], compress: bool) -> bytes:
    header = list(first)
    for row in rows:
        header.extend(k for k in row if k not in header)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in header])
    data = buf.getvalue().encode("utf-8")
    # mtime=0 keeps gzip output byte-identical across runs, so regenerated caches diff cleanly.
    return gzip.compress(data, mtime=0) if compress else data


def write_cache(
    directory: str | os.PathLike,
    meta: dict,
    queries: Sequence[dict],
    responses: Sequence[dict],
    compress: bool = True,
    *,
    keep: Sequence[str] = (),
) -> Path:
    """Write a cache in the canonical format, all or nothing, and return its directory.

    ``queries`` and ``responses`` are lists of row dicts; their keys become columns (required ones first). The whole
    cache is staged in a sibling directory, validated with :func:`load_cache` and swapped in atomically (see the module
    docstring), so the directory is always either the complete previous cache or the complete new one, and a stale
    other form of a table (``responses.csv`` next to a new ``responses.csv.gz``) goes away with the old directory.

    Args:
        directory: the cache directory (created with its parents if needed); see :func:`check_cache_target`.
        meta: the ``meta.json`` content (JSON without NaN or infinities).
        queries, responses: the table rows.
        compress: write ``.csv.gz`` (default) or plain ``.csv``.
        keep: names of files of the existing directory to carry into the new one (hard links; the builder's journal).

    Raises:
        CacheError: the target is unsuitable or the new cache is invalid; the cache directory has not changed.
    """
    import fcntl

    out = check_cache_target(directory, keep)
    try:
        meta_bytes = (json.dumps(meta, indent=2, allow_nan=False) + "\n").encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CacheError(f"{out / 'meta.json'}: cannot be written as JSON: {exc}") from None
    suffix = ".csv.gz" if compress else ".csv"
    files = {"meta.json": meta_bytes}
    for stem, rows, first in (("queries", queries, QUERY_COLUMNS), ("responses", responses, RESPONSE_COLUMNS)):
        try:
            files[f"{stem}{suffix}"] = _csv_bytes(rows, first, compress)
        except UnicodeEncodeError as exc:
            raise CacheError(
                f"{out / (stem + suffix)}: a field is not valid Unicode text ({exc.reason}: "
                f"{exc.object[max(0, exc.start - 20) : exc.end + 20]!r})"
            ) from None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out)
        staging = _make_staging(out)
    except OSError as exc:
        raise CacheError(f"{out}: cannot create a staging directory beside it: {exc}") from None
    lock = None
    try:
        lock = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(lock, fcntl.LOCK_EX)  # tells other writers' cleanup that this staging directory is live
        for name, data in files.items():
            write_durably(staging / name, data)
        for name in keep:
            if os.path.lexists(out / name):
                os.link(out / name, staging / name, follow_symlinks=False)
        fsync_dir(staging)
        try:
            load_cache(staging)
        except CacheError as exc:
            detail = str(exc).replace(f"{staging}{os.sep}", "").replace(str(staging), "the new cache")
            raise CacheError(
                f"{out}: refusing to write an invalid cache (the previous one is kept): {detail}"
            ) from None
        if os.path.lexists(out):
            _exchange(staging, out)
        else:
            os.rename(staging, out)
        fsync_dir(out.parent)
    except OSError as exc:
        raise CacheError(f"{out}: cannot write the cache: {exc}") from None
    finally:
        # Before the swap this is the unfinished new cache, after it the old one: garbage either way.
        shutil.rmtree(staging, ignore_errors=True)
        if lock is not None:
            os.close(lock)
    return Path(directory)
