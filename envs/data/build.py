"""Build a response cache from real inference: task x model(s) x backend -> a canonical cache (provenance
``generated``).

The embedded ``capitals`` cache is calibrated to seed 001's published accuracies; this module replaces it with
real results (and builds caches for other models and tasks)::

    python -m envs.data build --task capitals --backend transformers \\
        --model meta-llama/Llama-3.2-3B-Instruct --model meta-llama/Llama-3.2-1B-Instruct --out caches/capitals-real
    python -m envs.data build --task capitals --backend openai --base-url http://127.0.0.1:8000/v1 \\
        --model meta-llama/Llama-3.2-3B-Instruct --out caches/capitals-real

Pieces:
    :class:`Task`      the queries (rows of ``queries.csv``), each query's chat messages, and the grader of a reply
                       (score in [0, 1] plus per-field columns). :class:`CapitalsTask` is seed 001's experiment.
    ``Backend``        chat messages -> replies with token counts and latency (``envs/data/backends.py``:
                       ``transformers`` and ``openai``).
    :func:`build_cache` runs every (query, model) not yet done, journaling each finished reply, then grades all of
                       them and writes the canonical files with :func:`envs.data.cache.write_cache`.

Resuming: every finished, valid reply is appended to ``OUT/.journal.jsonl`` (one JSON line, flushed and fsynced)
before the next is awaited; a rerun of the same command reads the journal and only asks for what is missing. A reply
is reused when its model name, generation settings (backend, model id, decoding, token limit) and exact messages
match, so changing the prompt or the token limit re-asks, while changing the grader (``--tolerance-deg``) re-grades
the journaled replies without new inference. A truncated last journal line (a build killed mid-write) is dropped.

Validity: a reply is journaled only when :func:`reply_problem` finds nothing wrong with it (text of at most
:data:`~envs.data.cache.MAX_FIELD_CHARS` characters, token counts integers in [0, :data:`~envs.data.cache.MAX_TOKENS`],
a finite non-negative latency). An invalid reply is reported like a failed query and not journaled, so a rerun asks
again; journal records that fail the same check (written by an older builder) are ignored and asked again too.
Queries that still fail after the backend's retries are reported (and journaled as failures, which are never
reused); the build then writes nothing and returns non-zero, and a rerun retries just those.

Writing: once every (query, model) has a valid reply, the cache is written by :func:`envs.data.cache.write_cache`:
staged beside ``OUT``, validated with every check of ``load_cache``, then swapped in atomically with the journal
carried over, so ``OUT`` is at every instant the complete previous cache or the complete new one. A killed build
leaves the previous cache (or none); an invalid cache is refused and leaves it too.

Model names: ``--model ID`` names the cache column after the id's last path component, lower-cased (``:``
becomes ``-``): ``meta-llama/Llama-3.2-3B-Instruct`` -> ``llama-3.2-3b-instruct``, the name the ``capitals``
scenario uses. ``--model ID=NAME`` chooses the name (e.g. ``--model llama3.2:3b=llama-3.2-3b-instruct`` for Ollama).
List prices (USD per 1M tokens) default to the embedded cache's for the two Llama-3.2 names and 0 otherwise;
``--price NAME=IN[,OUT]`` sets them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import os
import stat
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

from envs.data.backends import Backend, BackendError, Completion, Messages
from envs.data.cache import MAX_FIELD_CHARS, MAX_PRICE, MAX_TOKENS, CacheError, check_cache_target, write_cache
from envs.data.grading import DEFAULT_TOLERANCE_DEG, grade_capitals

if TYPE_CHECKING:  # tqdm is imported when a build shows progress
    from tqdm import tqdm

JOURNAL_NAME = ".journal.jsonl"


class BuildError(RuntimeError):
    """A build cannot start or finish (bad arguments, unknown query ids, another build running)."""


# ---------------------------------------------------------------------------------------------------------- tasks


@dataclass
class Graded:
    """A graded reply: the score in [0, 1] and extra response columns (per-field correctness, ...)."""

    score: float
    fields: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """A task: queries, their prompts, and a grader."""

    name: str

    def queries(self) -> list[dict]:
        """Rows of ``queries.csv``: ``query_id``, ``text``, ``domain`` and context columns (ground truth may ride
        along as columns, as in ``capitals``)."""

    def messages(self, query: dict) -> Messages:
        """The chat messages sent for ``query``."""

    def grade(self, query: dict, reply: str) -> Graded:
        """Grade one reply (must not raise: an unusable reply scores 0)."""

    def meta(self) -> dict:
        """Task entries of ``meta.json``: ``source``, ``description``, ``context_field``, grader settings, ..."""


class CapitalsTask:
    """Seed 001's capital-city task: 196 countries, the seed's system and user messages, graded by
    :func:`envs.data.grading.grade_capitals` (per-field correctness, weighted 10/10/25/25)."""

    name = "capitals"

    def __init__(self, tolerance_deg: float = DEFAULT_TOLERANCE_DEG) -> None:
        if not (isinstance(tolerance_deg, Real) and math.isfinite(tolerance_deg) and 0 <= tolerance_deg <= 180):
            raise BuildError(f"tolerance_deg must be a finite number of degrees in [0, 180], got {tolerance_deg!r}")
        self.tolerance_deg: float = tolerance_deg

    def queries(self) -> list[dict]:
        from envs.data.make_capitals import load_countries, query_row

        try:
            countries = load_countries()
        except ImportError as exc:
            raise BuildError(
                f"the capitals task needs the countryinfo package (pip install countryinfo): {exc}"
            ) from exc
        return [query_row(c) for c in countries]

    def messages(self, query: dict) -> Messages:
        from envs.data.make_capitals import SYSTEM_PROMPT

        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": query["text"]}]

    def grade(self, query: dict, reply: str) -> Graded:
        g = grade_capitals(
            reply,
            str(query["capital"]),
            str(query["continent"]),
            float(query["latitude"]),
            float(query["longitude"]),
            tolerance_deg=self.tolerance_deg,
        )
        fields: dict[str, Any] = {f"correct_{f}": int(ok) for f, ok in g.correct.items()}
        fields["parse_ok"] = int(g.parse_ok)
        for axis in ("latitude", "longitude"):
            err = g.error_deg.get(axis)
            fields[f"{axis}_error_deg"] = "" if err is None else round(err, 4)
        return Graded(score=g.score, fields=fields)

    def meta(self) -> dict:
        from envs.data import make_capitals as mc

        version = importlib.metadata.version("countryinfo")
        return {
            "source": (
                f"Ground truth: countryinfo {version} (MIT), 196 sovereign states, corrections listed in "
                "envs/data/make_capitals.py. Prompt and decoding: seed 001's evaluation protocol "
                "(shared/seeds/001-evaluation-protocol.md). Replies: real inference, see 'build'."
            ),
            "description": (
                "Seed 001's capital-cities task: for each country, the model returns its capital city, continent, "
                "latitude and longitude as JSON (the seed's system message, greedy decoding). Every reply is real "
                "and kept in the 'answer' column; graded by envs/data/grading.py: the first JSON object in the "
                "reply; capital names compared after accent, case and punctuation folding with alternative names "
                "accepted; continents mapped between naming schemes (Americas = North or South America); "
                f"coordinates parsed with their hemisphere and correct within {self.tolerance_deg:g} degrees. "
                "Per-field correctness in correct_capital/continent/latitude/longitude, parse_ok, and absolute "
                "coordinate errors in latitude/longitude_error_deg. "
                "score = (10 capital + 10 continent + 25 latitude + 25 longitude) / 70; unparseable replies score 0."
            ),
            "context_field": "continent",
            "score_weights": mc.SCORE_WEIGHTS,
            "grader": {"module": "envs/data/grading.py", "tolerance_deg": self.tolerance_deg},
            "seed_cost_per_token": mc.SEED_COST_PER_TOKEN,
            "system_prompt": mc.SYSTEM_PROMPT,
            "user_template": mc.USER_TEMPLATE,
        }


TASKS: dict[str, Callable[..., Task]] = {"capitals": CapitalsTask}


# ---------------------------------------------------------------------------------------------------------- models


def default_model_name(model_id: str) -> str:
    """The cache's name for a model id: last path component, lower-cased, ``:`` -> ``-``
    (``meta-llama/Llama-3.2-3B-Instruct`` -> ``llama-3.2-3b-instruct``)."""
    name = model_id.rstrip("/").rsplit("/", 1)[-1].lower().replace(":", "-")
    if not name:
        raise BuildError(f"cannot derive a model name from {model_id!r}; use --model ID=NAME")
    return name


def default_prices(name: str) -> tuple[float, float]:
    """List prices (USD per 1M input, output tokens) of the embedded capitals cache for its two model names, else 0."""
    from envs.data.make_capitals import LIST_PRICE

    price = LIST_PRICE.get(name, 0.0)
    return price, price


@dataclass
class ModelRun:
    """One model column of the cache: its name, the backend that answers for it, and its list prices."""

    name: str
    backend: Backend
    price_in: float | None = None
    price_out: float | None = None

    def prices(self) -> tuple[float, float]:
        d_in, d_out = default_prices(self.name)
        return (d_in if self.price_in is None else self.price_in, d_out if self.price_out is None else self.price_out)


# --------------------------------------------------------------------------------------------------------- journal


def reply_problem(text: Any, input_tokens: Any, output_tokens: Any, latency_ms: Any) -> str | None:
    """What makes a reply unfit for a cache (``None`` when it is fine): the bounds ``load_cache`` enforces."""
    if not isinstance(text, str):
        return f"the reply text is a {type(text).__name__}, expected a string"
    if len(text) > MAX_FIELD_CHARS:
        return f"the reply has {len(text)} characters, more than the {MAX_FIELD_CHARS} a cache field holds"
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if isinstance(value, bool) or not isinstance(value, Integral) or not 0 <= int(value) <= MAX_TOKENS:
            return f"{name} is {value!r}, expected an integer in [0, {MAX_TOKENS}]"
    if latency_ms is not None and (
        isinstance(latency_ms, bool)
        or not isinstance(latency_ms, Real)
        or not math.isfinite(latency_ms)
        or latency_ms < 0
    ):
        return f"latency_ms is {latency_ms!r}, expected a finite number >= 0"
    return None


class Journal:
    """Append-only JSONL log of finished replies, durable line by line, locked against a concurrent build.

    Attributes:
        records: the readable records, in order (result records only when :func:`reply_problem` accepts them).
        dropped: lines that were not JSON objects (a torn last line, garbage).
        invalid: result records refused by :func:`reply_problem`, as (query id, problem); they are asked again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.dropped = 0
        self.invalid: list[tuple[str, str]] = []
        try:
            # No following a link and no blocking on a FIFO: the journal must be a plain file of this directory.
            fd = os.open(
                path,
                os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0),
                0o644,
            )
        except OSError as exc:
            kind = "is a symbolic link" if os.path.islink(path) else f"cannot be opened ({exc.strerror or exc})"
            raise BuildError(f"{path}: the build journal {kind}; it must be a regular file") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise BuildError(f"{path}: the build journal is not a regular file")
        os.set_blocking(fd, True)
        self._fh: IO[bytes] = os.fdopen(fd, "a+b")
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock
            pass
        except OSError:
            self._fh.close()
            raise BuildError(f"{path}: another build is writing this cache directory") from None
        self._fh.seek(0)
        data = self._fh.read()
        if data and not data.endswith(b"\n"):  # a build killed mid-line: drop the partial record
            keep = data.rfind(b"\n") + 1
            self._fh.truncate(keep)
            data = data[:keep]
            self.dropped += 1
        self.records: list[dict] = []
        for line in data.splitlines():
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):  # torn or garbage line (JSON, UTF-8, over-long numbers)
                self.dropped += 1
                continue
            if not isinstance(record, dict):
                self.dropped += 1
                continue
            if record.get("type") == "result":
                problem = (
                    "no string 'key'"
                    if not isinstance(record.get("key"), str)
                    else reply_problem(
                        record.get("text"),
                        record.get("input_tokens"),
                        record.get("output_tokens"),
                        record.get("latency_ms"),
                    )
                )
                if problem is not None:
                    self.invalid.append((str(record.get("query_id")), problem))
                    continue
            self.records.append(record)

    def append(self, record: dict) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def _sha256(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def reply_key(name: str, backend: Backend, messages: Messages) -> str:
    """Identity of a reply in the journal: model name, generation settings and the exact messages."""
    return _sha256({"model": name, "generation": backend.generation_key(), "messages": messages})


# ---------------------------------------------------------------------------------------------------------- build


@dataclass
class BuildReport:
    """What a build did.

    Attributes:
        out: the cache directory; ``written`` says whether the canonical files were (re)written.
        generated, resumed: per model, replies produced now and reused from the journal.
        failures: (model, query_id, error) of queries that failed after retries or returned an invalid reply (then
            nothing is written).
        invalid_journaled: (query_id, problem) of journal records refused by :func:`reply_problem` (asked again).
        backend_stats: per model, the backend's counters (requests, retries by cause).
        correct: per model and field, number of correct answers (capitals-like tasks), and ``score`` sums.
    """

    out: Path
    written: bool = False
    generated: dict[str, int] = field(default_factory=dict)
    resumed: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    backend_stats: dict[str, dict] = field(default_factory=dict)
    mean_score: dict[str, float] = field(default_factory=dict)
    correct: dict[str, dict[str, int]] = field(default_factory=dict)
    n_queries: int = 0
    invalid_journaled: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        lines = []
        if self.invalid_journaled:
            query, problem = self.invalid_journaled[0]
            lines.append(
                f"ignored {len(self.invalid_journaled)} invalid replies in the journal (e.g. {query}: "
                f"{problem}); asked again"
            )
        for model in self.generated:
            stats = ", ".join(f"{k} {v}" for k, v in sorted(self.backend_stats.get(model, {}).items()))
            lines.append(
                f"{model}: {self.generated[model]} generated, {self.resumed[model]} resumed from the journal"
                + (f" ({stats})" if stats else "")
            )
        if self.failures:
            lines.append(f"{len(self.failures)} queries failed (errors after retries, or invalid replies):")
            lines.extend(f"  {m} / {q}: {e}" for m, q, e in self.failures[:20])
            if len(self.failures) > 20:
                lines.append(f"  ... and {len(self.failures) - 20} more")
            lines.append(
                f"nothing written; finished replies are kept in {self.out / JOURNAL_NAME}: "
                "rerun the same command to resume (only the missing queries are asked again)"
            )
        if self.written:
            lines.append(f"wrote {self.out}: {self.n_queries} queries")
            for model, score in self.mean_score.items():
                fields = " ".join(f"{f} {n}/{self.n_queries}" for f, n in self.correct.get(model, {}).items())
                lines.append(f"  {model}: mean score {score:.3f}" + (f"; correct: {fields}" if fields else ""))
        return "\n".join(lines)


def select_queries(queries: list[dict], query_ids: Sequence[str] | None = None, limit: int | None = None) -> list[dict]:
    """The queries named in ``query_ids`` (in the task's order), then the first ``limit`` of them."""
    if query_ids is not None:
        if not query_ids:
            raise BuildError("the query id selection is empty")
        repeated = sorted({q for q in query_ids if list(query_ids).count(q) > 1})
        if repeated:
            raise BuildError(f"query id(s) {repeated} selected more than once")
        known = {q["query_id"] for q in queries}
        unknown = [q for q in query_ids if q not in known]
        if unknown:
            raise BuildError(f"unknown query id(s) {unknown}; the task has e.g. {sorted(known)[:5]}")
        wanted = set(query_ids)
        queries = [q for q in queries if q["query_id"] in wanted]
    if limit is not None:
        if limit < 1:
            raise BuildError(f"limit must be >= 1, got {limit}")
        queries = queries[:limit]
    return queries


def _progress(total: int, desc: str, enabled: bool) -> tqdm[Any]:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="query", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def build_cache(
    task: Task,
    runs: Sequence[ModelRun],
    out: str | os.PathLike,
    *,
    query_ids: Sequence[str] | None = None,
    limit: int | None = None,
    cache_name: str | None = None,
    progress: bool = True,
) -> BuildReport:
    """Ask every model of ``runs`` every selected query of ``task`` (resuming from ``out``'s journal), grade the
    replies, and write the cache to ``out`` when all succeeded.

    Args:
        task: the queries, prompts and grader.
        runs: the model columns, each with its backend; names must be distinct.
        out: the cache directory (created; its journal is ``out/.journal.jsonl``).
        query_ids, limit: build only these queries / the first ``limit`` of them.
        cache_name: ``meta.json`` name (default: the task's name).
        progress: show a progress bar per model (stderr).

    Returns:
        a :class:`BuildReport`; ``report.ok`` is false (and nothing was written) when some query failed.

    Raises:
        BuildError: bad arguments, an unusable ``out`` or a locked journal; any backend exception propagates
            (journal kept, no cache file touched).
        CacheError: the finished cache failed validation (the previous cache is kept).
    """
    names = [r.name for r in runs]
    if not runs:
        raise BuildError("no models to build")
    if len(set(names)) != len(names):
        raise BuildError(f"model names must be distinct, got {names}")
    out = Path(out)
    try:
        check_cache_target(out, keep=(JOURNAL_NAME,))  # before any inference: it would be lost at the end
    except CacheError as exc:
        raise BuildError(f"--out {exc}") from None
    queries = select_queries(task.queries(), query_ids, limit)
    if not queries:
        raise BuildError("no queries selected")
    messages = {q["query_id"]: task.messages(q) for q in queries}
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(f"--out {out}: cannot create the directory: {exc.strerror or exc}") from None
    report = BuildReport(out=out, n_queries=len(queries))

    journal = Journal(out / JOURNAL_NAME)
    report.invalid_journaled = journal.invalid
    try:
        done: dict[str, dict] = {r["key"]: r for r in journal.records if r.get("type") == "result"}
        keys: dict[tuple[str, str], str] = {}
        for run in runs:
            todo = []
            for q in queries:
                key = reply_key(run.name, run.backend, messages[q["query_id"]])
                keys[run.name, q["query_id"]] = key
                if key not in done:
                    todo.append(q["query_id"])
            report.resumed[run.name] = len(queries) - len(todo)
            report.generated[run.name] = 0
            if todo:
                completions = run.backend.generate([messages[qid] for qid in todo])
                failed = 0
                try:
                    with _progress(len(todo), run.name, progress) as bar:
                        for c in completions:
                            qid = todo[c.index]
                            error = c.error
                            if error is not None:
                                journal.append(_record(run, qid, keys[run.name, qid], c))
                            elif (
                                problem := reply_problem(c.text, c.input_tokens, c.output_tokens, c.latency_ms)
                            ) is not None:
                                error = f"invalid reply: {problem}"  # reported, never journaled: a rerun asks again
                            else:
                                record = _record(run, qid, keys[run.name, qid], c)
                                journal.append(record)
                                done[record["key"]] = record
                                report.generated[run.name] += 1
                            if error is not None:
                                report.failures.append((run.name, qid, error))
                                failed += 1
                                bar.set_postfix(failed=failed)
                            bar.update(1)
                finally:
                    close = getattr(completions, "close", None)
                    if close is not None:
                        close()  # stop a backend's workers when the build is interrupted
                    release = getattr(run.backend, "release", None)
                    if release is not None:
                        release()  # free a local model before the next one loads
            report.backend_stats[run.name] = run.backend.stats()
        if report.failures:
            return report

        responses = []
        for run in runs:
            total = 0.0
            correct: dict[str, int] = {}
            for q in queries:
                rec = done[keys[run.name, q["query_id"]]]
                graded = task.grade(q, rec["text"])
                total += graded.score
                for k, v in graded.fields.items():
                    if k.startswith("correct_"):
                        correct[k[len("correct_") :]] = correct.get(k[len("correct_") :], 0) + int(v)
                responses.append(
                    {
                        "query_id": q["query_id"],
                        "model": run.name,
                        "score": graded.score,
                        "input_tokens": rec["input_tokens"],
                        "output_tokens": rec["output_tokens"],
                        "latency_ms": None if rec.get("latency_ms") is None else round(rec["latency_ms"], 1),
                        "answer": rec["text"],
                        **graded.fields,
                    }
                )
            report.mean_score[run.name] = total / len(queries)
            report.correct[run.name] = correct
        meta = _meta(task, runs, queries, messages, [done[k] for k in keys.values()], cache_name)
        write_cache(out, meta, queries, responses, keep=(JOURNAL_NAME,))
        report.written = True
        return report
    finally:
        journal.close()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _record(run: ModelRun, query_id: str, key: str, c: Completion) -> dict:
    base = {
        "key": key,
        "model": run.name,
        "query_id": query_id,
        "backend": run.backend.name,
        "model_id": run.backend.model_id,
        "time": _now(),
        "attempts": c.attempts,
    }
    if c.error is not None:
        return {"type": "failure", **base, "error": c.error}
    text = c.text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates from a server would not encode
    return {
        "type": "result",
        **base,
        "text": text,
        "input_tokens": int(c.input_tokens),
        "output_tokens": int(c.output_tokens),
        "latency_ms": c.latency_ms,
    }


def _meta(
    task: Task,
    runs: Sequence[ModelRun],
    queries: list[dict],
    messages: dict[str, Messages],
    records: list[dict],
    cache_name: str | None,
) -> dict:
    task_meta = dict(task.meta())
    built = _now()
    times = sorted(r["time"] for r in records if "time" in r)
    prompt_hash = _sha256([[q["query_id"], messages[q["query_id"]]] for q in queries])
    backends = sorted({r.backend.name for r in runs})
    models_meta = {}
    for r in runs:
        price_in, price_out = r.prices()
        models_meta[r.name] = {"price_in": price_in, "price_out": price_out}
    source = task_meta.pop("source", "")
    return {
        "name": cache_name or task.name,
        "provenance": "generated",
        "source": (
            f"{source} Generated by envs/data/build.py on {built[:10]}: task {task.name!r}, "
            f"models {', '.join(f'{r.name} ({r.backend.model_id})' for r in runs)}, "
            f"backend {'/'.join(backends)}."
        ).strip(),
        "description": task_meta.pop("description", ""),
        "models": models_meta,
        **task_meta,
        "build": {
            "task": task.name,
            "date": built,
            "first_reply": times[0] if times else None,
            "last_reply": times[-1] if times else None,
            "prompt_hash": f"sha256:{prompt_hash}",
            "prompt_hash_of": "JSON list of [query_id, chat messages] of every query, sorted keys",
            "n_queries": len(queries),
            "models": {r.name: r.backend.describe() for r in runs},
            "builder_versions": {d: _ver(d) for d in ("llm-market-arena", "numpy")},
        },
    }


def _ver(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------------------- CLI


def csv_list(text: str) -> list[str]:
    """An argparse type: a comma-separated list of non-empty items."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high]; the message names the range."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer in [{low}, {high}], got {text!r}")
        return value

    return parse


def bounded_float(low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (in (low, high] when ``above``); NaN and infinities fail."""
    interval = f"{'(' if above else '['}{low:g}, {high:g}]"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if above else value >= low) and value <= high):
            raise argparse.ArgumentTypeError(f"expected a finite number in {interval}, got {text!r}")
        return value

    return parse


def _model_spec(text: str) -> tuple[str, str]:
    model_id, sep, name = text.partition("=")
    model_id, name = model_id.strip(), name.strip()
    if not model_id or (sep and not name):
        raise argparse.ArgumentTypeError(f"expected ID or ID=NAME, got {text!r}")
    try:
        return model_id, name or default_model_name(model_id)
    except BuildError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _price_spec(text: str) -> tuple[str, float, float]:
    name, sep, value = text.partition("=")
    try:
        parts = [float(v) for v in value.split(",")]
    except ValueError:
        parts = []
    if (
        not sep
        or not name.strip()
        or len(parts) not in (1, 2)
        or not all(math.isfinite(p) and 0 <= p <= MAX_PRICE for p in parts)
    ):
        raise argparse.ArgumentTypeError(
            f"expected NAME=IN[,OUT] with finite prices in [0, {MAX_PRICE:g}] (USD per 1M tokens), got {text!r}"
        )
    return name.strip(), parts[0], parts[-1]


def _cache_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty name")
    return text


def make_backend(args: argparse.Namespace, model_id: str) -> Backend:
    """The backend of the CLI arguments for one model."""
    from envs.data.backends import OpenAIBackend, TransformersBackend

    if args.backend == "transformers":
        return TransformersBackend(
            model_id,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            device=args.device,
            dtype=args.dtype,
        )
    return OpenAIBackend(
        model_id,
        base_url=args.base_url,
        api_key=args.api_key,
        max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency,
        timeout=args.timeout,
        max_retries=args.max_retries,
        backoff=args.backoff,
    )


def _run_build(args: argparse.Namespace) -> None:
    try:
        task = TASKS[args.task](tolerance_deg=args.tolerance_deg)
        prices = {name: (p_in, p_out) for name, p_in, p_out in args.price or []}
        if len(prices) != len(args.price or []):
            named = [name for name, _, _ in args.price]
            raise BuildError(f"--price names {sorted({n for n in named if named.count(n) > 1})} more than once")
        runs = []
        for model_id, name in args.model:
            p_in, p_out = prices.pop(name, (None, None))
            runs.append(ModelRun(name=name, backend=make_backend(args, model_id), price_in=p_in, price_out=p_out))
        if prices:
            raise BuildError(f"--price names unknown model(s) {sorted(prices)}; models are {[r.name for r in runs]}")
        report = build_cache(
            task,
            runs,
            args.out,
            query_ids=args.queries,
            limit=args.limit,
            cache_name=args.name,
            progress=not args.no_progress,
        )
    except (BuildError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except CacheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    if not report.ok:
        raise SystemExit(1)


def register_build(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``build`` subcommand to ``python -m envs.data``."""
    p = subparsers.add_parser(
        "build",
        help="build a cache from real inference (task x models x backend), resumable",
        description="Ask each model every query of a task with a real inference backend, grade the replies and "
        "write a canonical cache (provenance 'generated'). Finished replies are journaled in "
        f"OUT/{JOURNAL_NAME}; rerunning the same command resumes. Exit status 1 when some query "
        "still failed after retries (nothing written; rerun to resume), 2 on a usage error.",
    )
    p.add_argument("--task", choices=sorted(TASKS), default="capitals", help="task (default: %(default)s)")
    p.add_argument("--backend", choices=("transformers", "openai"), required=True, help="inference backend")
    p.add_argument(
        "--model",
        type=_model_spec,
        action="append",
        required=True,
        metavar="ID[=NAME]",
        help="model id (HF id or path for transformers, the server's model name for openai), optionally "
        "=NAME for the cache's column name (default: the id's last component, lower-cased); "
        "repeat for several models",
    )
    p.add_argument("--out", type=Path, required=True, help="cache directory (created; holds the resume journal)")
    p.add_argument("--name", type=_cache_name, default=None, help="cache name in meta.json (default: the task's name)")
    p.add_argument("--limit", type=bounded_int(1, 10**9), default=None, help="only the first N queries")
    p.add_argument(
        "--queries",
        type=csv_list,
        default=None,
        metavar="ID,ID",
        help="only these query ids (capitals: ISO alpha-3 codes, e.g. FRA,ARG)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=bounded_int(1, MAX_TOKENS),
        default=256,
        help="reply token limit (default: %(default)s)",
    )
    p.add_argument(
        "--tolerance-deg",
        type=bounded_float(0.0, 180.0),
        default=DEFAULT_TOLERANCE_DEG,
        help="capitals: coordinate tolerance in degrees (default: %(default)s)",
    )
    p.add_argument(
        "--price",
        type=_price_spec,
        action="append",
        metavar="NAME=IN[,OUT]",
        help="list price of a model in USD per 1M input[, output] tokens",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    t = p.add_argument_group("transformers backend")
    t.add_argument(
        "--batch-size", type=bounded_int(1, 65536), default=8, help="prompts per generate call (default: %(default)s)"
    )
    t.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    t.add_argument(
        "--dtype",
        choices=("auto", "bfloat16", "float16", "float32"),
        default="auto",
        help="weights dtype (default: bfloat16 on GPU, float32 on CPU)",
    )
    o = p.add_argument_group("openai backend")
    o.add_argument("--base-url", default=None, help="e.g. http://127.0.0.1:8000/v1 (default: $OPENAI_BASE_URL)")
    o.add_argument("--api-key", default=None, help="bearer token (default: $OPENAI_API_KEY; none if unset)")
    o.add_argument(
        "--concurrency", type=bounded_int(1, 1024), default=8, help="requests in flight (default: %(default)s)"
    )
    o.add_argument(
        "--timeout",
        type=bounded_float(0.0, 86400.0, above=True),
        default=120.0,
        help="seconds per attempt, in total: connecting, sending, the headers and the whole body "
        "(default: %(default)s)",
    )
    o.add_argument(
        "--max-retries", type=bounded_int(0, 100), default=6, help="retries per query (default: %(default)s)"
    )
    o.add_argument(
        "--backoff",
        type=bounded_float(0.0, 3600.0),
        default=1.0,
        help="first retry's wait in seconds, doubling per retry up to 60 s, unless the server sends "
        "Retry-After (default: %(default)s)",
    )
    p.set_defaults(handler=_run_build)


__all__ = [
    "BuildError",
    "BuildReport",
    "CapitalsTask",
    "Graded",
    "Journal",
    "ModelRun",
    "TASKS",
    "Task",
    "bounded_float",
    "bounded_int",
    "build_cache",
    "csv_list",
    "default_model_name",
    "make_backend",
    "register_build",
    "reply_key",
    "reply_problem",
    "select_queries",
]
