"""The canonical response-cache format and its validating loader.

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
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

PROVENANCES = ("real", "calibrated", "generated")
QUERY_COLUMNS = ("query_id", "text", "domain")
RESPONSE_COLUMNS = ("query_id", "model", "score", "input_tokens", "output_tokens")
OPTIONAL_RESPONSE_COLUMNS = ("latency_ms", "answer")


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

    def accuracy(self) -> dict[str, float]:
        """Mean score per model over all queries."""
        return {m: float(self.score[:, k].mean()) for k, m in enumerate(self.models)}

    def subset(self, mask: np.ndarray) -> "ResponseCache":
        """The cache restricted to the queries where ``mask`` is true (e.g. one domain)."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            raise CacheError(f"cache {self.name!r}: the query selection is empty")
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return ResponseCache(
            name=self.name, provenance=self.provenance, source=self.source, description=self.description,
            models=list(self.models), price_in=self.price_in, price_out=self.price_out,
            query_ids=pick(self.query_ids), texts=pick(self.texts), domains=pick(self.domains),
            context={k: pick(v) for k, v in self.context.items()}, context_field=self.context_field,
            score=self.score[idx], input_tokens=self.input_tokens[idx], output_tokens=self.output_tokens[idx],
            latency_ms=self.latency_ms[idx], extra={k: v[idx] for k, v in self.extra.items()}, meta=self.meta,
        )


# ----------------------------------------------------------------------------------------------------------- reading


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.csv", f"{stem}.csv.gz"):
        if (directory / name).is_file():
            return directory / name
    raise CacheError(f"{directory}: missing {stem}.csv or {stem}.csv.gz")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error, EOFError) as exc:
        raise CacheError(f"{path}: cannot read as UTF-8 CSV: {exc}") from exc
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
    if value < 0 or value != int(value):
        raise CacheError(f"{path}: row {row}, field {column!r}: expected a non-negative integer, got {text!r}")
    return int(value)


def _read_meta(directory: Path) -> dict:
    path = directory / "meta.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CacheError(f"{directory}: missing meta.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CacheError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise CacheError(f"{path}: expected a JSON object")
    for key in ("name", "provenance", "source", "models"):
        if key not in meta:
            raise CacheError(f"{path}: missing field {key!r}")
    if meta["provenance"] not in PROVENANCES:
        raise CacheError(f"{path}: field 'provenance' must be one of {PROVENANCES}, got {meta['provenance']!r}")
    if not isinstance(meta["models"], dict) or not meta["models"]:
        raise CacheError(f"{path}: field 'models' must map model names to list prices")
    for model, prices in meta["models"].items():
        for key in ("price_in", "price_out"):
            value = prices.get(key) if isinstance(prices, dict) else None
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise CacheError(f"{path}: field 'models.{model}.{key}': expected a non-negative number, got {value!r}")
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
            latency[q, m] = _parse_float(rpath, r, "latency_ms", row[rcol["latency_ms"]])
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
        raise CacheError(f"{directory / 'meta.json'}: field 'context_field' names {context_field!r}, "
                         f"which is not a column of {qpath.name} ({context_cols})")
    return ResponseCache(
        name=str(meta["name"]), provenance=meta["provenance"], source=str(meta["source"]),
        description=str(meta.get("description", "")), models=models,
        price_in=np.array([float(meta["models"][m]["price_in"]) for m in models]),
        price_out=np.array([float(meta["models"][m]["price_out"]) for m in models]),
        query_ids=query_ids, texts=[row[col["text"]] for row in qrows],
        domains=[row[col["domain"]] for row in qrows],
        context={c: [row[col[c]] for row in qrows] for c in context_cols}, context_field=context_field,
        score=score, input_tokens=tin, output_tokens=tout, latency_ms=latency, extra=extra, meta=meta,
    )


# ----------------------------------------------------------------------------------------------------------- writing


def write_cache(
    directory: str | os.PathLike,
    meta: dict,
    queries: Sequence[dict],
    responses: Sequence[dict],
    compress: bool = True,
) -> Path:
    """Write a cache in the canonical format, atomically, and return its directory.

    ``queries`` and ``responses`` are lists of row dicts; their keys become columns (required ones first). Files are
    written to temporary names and renamed into place, so an interrupted write never leaves a truncated cache. The
    result is re-loaded with :func:`load_cache`, so nothing invalid is ever written silently.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".csv.gz" if compress else ".csv"

    def columns(rows: Sequence[dict], first: Sequence[str]) -> list[str]:
        rest: list[str] = []
        for row in rows:
            rest.extend(k for k in row if k not in first and k not in rest)
        return list(first) + rest

    def dump(stem: str, rows: Sequence[dict], first: Sequence[str]) -> tuple[Path, Path]:
        header = columns(rows, first)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in header])
        data = buf.getvalue().encode("utf-8")
        final = directory / f"{stem}{suffix}"
        tmp = directory / f".{stem}{suffix}.tmp"
        # mtime=0 keeps gzip output byte-identical across runs, so regenerated caches diff cleanly.
        tmp.write_bytes(gzip.compress(data, mtime=0) if compress else data)
        return tmp, final

    staged = [dump("queries", queries, QUERY_COLUMNS), dump("responses", responses, RESPONSE_COLUMNS)]
    meta_tmp = directory / ".meta.json.tmp"
    meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    staged.append((meta_tmp, directory / "meta.json"))
    for tmp, final in staged:
        os.replace(tmp, final)
    load_cache(directory)
    return directory
