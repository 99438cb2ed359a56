"""Importer for the real ``llama-cascades`` results: five Llama models graded on every question of a benchmark.

The data (Zellinger & Thomson, "Rational Tuning of LLM Cascades via Probabilistic Modeling", arXiv 2501.09345) is, for
each of MMLU, MedMCQA, TriviaQA and TruthfulQA and each of a test and a train split, the answer, correctness, token
counts and latency of Llama-3.2-1B/3B and Llama-3.1-8B/70B/405B-Instruct served at temperature 0 by a hosted API.
It is not shipped with the project: the folder is found through :func:`llama_cache_dir` and holds

    <bench>_llama_<split>.pkl       a dict of per-model lists aligned with ``user_prompts`` (the question id is the
                                    list index): model_correctness (bool), model_tokens ({'in', 'out'}),
                                    model_latencies (ms), model_answers (str), and fields this importer ignores
    <bench>_questions_<split>.pkl   the raw benchmark rows in the same order (mmlu, medmcqa, truthfulqa; optional for
                                    benchmarks this module does not know)

Any benchmark in that layout loads (the authors' repository has more, e.g. gsm8k): benchmark names are letters,
digits, ``.``, ``-`` and ``_``; split names the same without ``_``. What is checked:

- for every benchmark: the structure (a dict with ``user_prompts`` and the per-model tables for exactly the five
  priced models, one entry per prompt), the types and ranges of every value used (correctness a bool or a score in
  [0, 1], token counts integers in [0, :data:`~envs.data.cache.MAX_TOKENS`], latencies finite and >= 0, answers
  strings of at most :data:`~envs.data.cache.MAX_FIELD_CHARS` characters), and the questions file when there is one
  (a list of dicts, one per prompt, each with a string ``question`` and, for a known benchmark, its subject field);
- for the benchmark and split pairs of the published table (:data:`PUBLISHED`): the number of questions and every
  model's accuracy (to the table's three decimals). A file under a known name that does not match is not the
  published data and is refused; rename it (e.g. ``mmlu-rerun_llama_test.pkl``) to load it as another benchmark.

A benchmark this module does not know takes its question text from its questions file (the ``question`` field) or,
without one, from the prompt, as TriviaQA does; its questions share one subject, the benchmark's name.

The files are untrusted pickles, so they are read by :class:`SafeUnpickler`, which reconstructs only numpy scalars and
dtypes and replaces the authors' ``hcma.chain.ChainResponse`` objects with inert placeholders.

:func:`load_llama_cascades` turns a selection of these files into a canonical :class:`ResponseCache` in memory (one
query per benchmark question, score 1.0 when the model's answer was graded correct, else 0.0); :func:`cache_rows`
turns any cache back into the row dicts that :func:`envs.data.cache.write_cache` stores.
"""

from __future__ import annotations

import math
import os
import pickle
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from envs.data.cache import MAX_FIELD_CHARS, MAX_TOKENS, CacheError, ResponseCache, require_file

# List prices of the serving API when the results were collected, USD per 1M tokens (input = output).
MODEL_PRICES: dict[str, float] = {
    "llama3.2-1b": 0.10,
    "llama3.2-3b": 0.10,
    "llama3.1-8b": 0.20,
    "llama3.1-70b": 0.90,
    "llama3.1-405b": 3.00,
}
MODELS: tuple[str, ...] = tuple(MODEL_PRICES)

# Benchmarks with a questions file -> the field of that file naming the question's subject.
SUBJECT_FIELDS: dict[str, str] = {"mmlu": "subject", "medmcqa": "subject_name", "truthfulqa": "category"}
# Benchmarks whose questions exist only inside the prompts -> the one subject all their questions share.
PROMPT_ONLY_SUBJECTS: dict[str, str] = {"triviaqa": "trivia"}
# The benchmarks this module knows (subject fields and published figures); any other name in the layout loads too.
BENCHMARKS: tuple[str, ...] = ("mmlu", "medmcqa", "triviaqa", "truthfulqa")
GRADING: dict[str, str] = {
    "mmlu": "exact match",
    "medmcqa": "exact match",
    "triviaqa": "an LLM judge",
    "truthfulqa": "an LLM judge",
}
SPLITS: tuple[str, ...] = ("test", "train")

# The published table (README of the data folder; Zellinger & Thomson, arXiv 2501.09345): questions and accuracy of
# the MODELS, in their order, per benchmark and split, rounded to three decimals.
PUBLISHED: dict[tuple[str, str], tuple[int, tuple[float, ...]]] = {
    ("mmlu", "test"): (1531, (0.425, 0.572, 0.634, 0.815, 0.852)),
    ("mmlu", "train"): (285, (0.411, 0.579, 0.625, 0.786, 0.814)),
    ("medmcqa", "test"): (1000, (0.345, 0.531, 0.518, 0.726, 0.757)),
    ("medmcqa", "train"): (300, (0.423, 0.663, 0.680, 0.897, 0.913)),
    ("triviaqa", "test"): (1000, (0.372, 0.633, 0.787, 0.928, 0.949)),
    ("triviaqa", "train"): (300, (0.323, 0.620, 0.803, 0.943, 0.970)),
    ("truthfulqa", "test"): (517, (0.358, 0.433, 0.503, 0.594, 0.692)),
    ("truthfulqa", "train"): (300, (0.383, 0.390, 0.520, 0.623, 0.720)),
}
# Half a unit of the table's last digit, plus float slack.
_PUBLISHED_TOLERANCE = 0.0006

ENV_VAR = "LLM_ARENA_LLAMA_DIR"
NAME = "llama-cascades"
SOURCE = (
    "github.com/mzelling/rational-llm-cascades, commit 0d9c8610de48960420ec2352855555a8c1e2c52f, "
    "benchmarks/data/<benchmark>/; Zellinger & Thomson, 'Rational Tuning of LLM Cascades via Probabilistic "
    "Modeling', arXiv 2501.09345 (2025)"
)

_RESULTS_FILE = re.compile(r"^(?P<bench>.+)_llama_(?P<split>[^_]+)\.pkl$")
_BENCH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_PROMPT_QUESTION = re.compile(r"Question: (?P<question>.*?)\n\nAnswer: ?$", re.DOTALL)


# --------------------------------------------------------------------------------------------------- safe unpickling


class InertChainResponse:
    """Placeholder for the authors' ``hcma.chain.ChainResponse``: accepts any arguments and state, keeps nothing."""

    __slots__ = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> InertChainResponse:
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        """Discard the pickled state."""


# The scalar reconstructor lives in numpy.core.multiarray (numpy 1) or numpy._core.multiarray (numpy 2); pickles name
# either, and both resolve to the function this numpy uses to unpickle its scalars.
_NUMPY_SCALAR = np.float64(0).__reduce__()[0]
ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "scalar"): _NUMPY_SCALAR,
    ("numpy._core.multiarray", "scalar"): _NUMPY_SCALAR,
    ("numpy", "dtype"): np.dtype,
    ("hcma.chain", "ChainResponse"): InertChainResponse,
}


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild plain containers, numpy scalars and dtypes, and nothing that runs code.

    Every global the pickle references goes through :meth:`find_class`, which resolves only :data:`ALLOWED_GLOBALS`;
    any other one (``os.system``, ``builtins.eval``, ...) raises :class:`CacheError` naming the file and the global.
    Persistent ids are refused too. Nothing in a file can run code: the allowed callables only build values.
    """

    def __init__(self, file: Any, *, source: str | os.PathLike = "<pickle>") -> None:
        super().__init__(file)
        self.source = str(source)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise CacheError(
                f"{self.source}: refused to load global '{module}.{name}' (only numpy scalars and dtypes and "
                f"hcma.chain.ChainResponse are allowed in these pickles)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise CacheError(f"{self.source}: refused persistent id {pid!r} (not allowed in these pickles)")


def safe_load(path: str | os.PathLike) -> Any:
    """Read one pickle file with :class:`SafeUnpickler`; any failure becomes a :class:`CacheError` naming the file."""
    path = Path(path)
    if os.path.lexists(path):
        require_file(path)  # a directory or a FIFO is refused before open() (which would block on a FIFO)
    try:
        with path.open("rb") as fh:
            return SafeUnpickler(fh, source=path).load()
    except CacheError:
        raise
    except OSError as exc:
        raise CacheError(f"{path}: cannot read: {exc}") from None
    except Exception as exc:  # a malformed pickle can fail in any way (EOFError, UnpicklingError, UnicodeDecodeError,
        # ValueError, RecursionError, ...); none of it may escape unlabelled
        raise CacheError(f"{path}: not a readable pickle: {type(exc).__name__}: {exc}") from None


# ------------------------------------------------------------------------------------------------------- validation


def _field(path: Path, data: dict, name: str, where: str = "") -> Any:
    if name not in data:
        raise CacheError(f"{path}: {where}{', ' if where else ''}missing field {name!r}")
    return data[name]


def _as_list(path: Path, where: str, value: Any, n: int | None) -> Sequence[Any]:
    if not isinstance(value, (list, tuple)):
        raise CacheError(f"{path}: {where}: expected a list, got {type(value).__name__}")
    if n is not None and len(value) != n:
        raise CacheError(f"{path}: {where}: has {len(value)} entries, expected {n} (one per user prompt)")
    return value


def _per_model(path: Path, data: dict, name: str, n: int) -> dict[str, Sequence[Any]]:
    """A ``{model: list}`` field, checked to cover exactly the priced models with one entry per prompt."""
    table = _field(path, data, name)
    if not isinstance(table, dict):
        raise CacheError(f"{path}: field {name!r}: expected a dict keyed by model, got {type(table).__name__}")
    unknown = [m for m in table if m not in MODEL_PRICES]
    if unknown:
        raise CacheError(f"{path}: field {name!r}: unknown model(s) {unknown}; priced models are {list(MODELS)}")
    missing = [m for m in MODELS if m not in table]
    if missing:
        raise CacheError(f"{path}: field {name!r}: no results for model(s) {missing}")
    return {m: _as_list(path, f"field {name!r}, model {m!r}", table[m], n) for m in MODELS}


def _finite(value: Any) -> float | None:
    """``value`` as a finite float, or ``None`` for a bool, a non-number, NaN, an infinity or an int too big for a
    float (which ``math.isfinite`` would raise ``OverflowError`` on)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Real):
        return None
    try:
        number = float(value)
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _score(path: Path, where: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        return 1.0 if value else 0.0
    number = _finite(value)
    if number is None or not 0.0 <= number <= 1.0:
        raise CacheError(f"{path}: {where}: expected a bool or a score in [0, 1], got {_shown(value)}")
    return number


def _tokens(path: Path, where: str, value: Any) -> int:
    number = _finite(value)
    if number is None or not number.is_integer() or not 0 <= value <= MAX_TOKENS:
        raise CacheError(f"{path}: {where}: expected an integer in [0, {MAX_TOKENS}], got {_shown(value)}")
    return int(value)


def _latency(path: Path, where: str, value: Any) -> float:
    number = _finite(value)
    if number is None or number < 0:
        raise CacheError(f"{path}: {where}: expected a finite non-negative number of milliseconds, got {_shown(value)}")
    return number


def _string(path: Path, where: str, value: Any, limit: int | None = MAX_FIELD_CHARS) -> str:
    if not isinstance(value, str):
        raise CacheError(f"{path}: {where}: expected a string, got {_shown(value)}")
    if limit is not None and len(value) > limit:
        raise CacheError(f"{path}: {where}: {len(value)} characters, expected at most {limit}")
    return value


# ----------------------------------------------------------------------------------------------------------- loading


@dataclass
class _Block:
    """The queries and results of one ``<bench>_llama_<split>.pkl`` file, arrays shaped [questions, models]."""

    query_ids: list[str]
    texts: list[str]
    subjects: list[str]
    score: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    latency_ms: np.ndarray
    answers: np.ndarray


def _read_questions(qpath: Path, bench: str, split: str, n: int) -> tuple[list[str], list[str]]:
    """Question texts and subjects of a questions file (``n`` rows expected); the subject of a benchmark without a
    subject field is the benchmark's name."""
    rows = _as_list(qpath, "questions", safe_load(qpath), None)
    if len(rows) != n:
        raise CacheError(f"{qpath}: has {len(rows)} questions, but {bench}_llama_{split}.pkl has {n} results")
    subject_field = SUBJECT_FIELDS.get(bench)
    texts, subjects = [], []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise CacheError(f"{qpath}: index {i}: expected a dict, got {type(row).__name__}")
        texts.append(_string(qpath, f"index {i}, field 'question'", _field(qpath, row, "question", f"index {i}")))
        subjects.append(
            bench
            if subject_field is None
            else _string(qpath, f"index {i}, field {subject_field!r}", _field(qpath, row, subject_field, f"index {i}"))
        )
    return texts, subjects


def _check_published(rpath: Path, bench: str, split: str, score: np.ndarray) -> None:
    """For a benchmark and split of the published table: the same number of questions and accuracies."""
    if (bench, split) not in PUBLISHED:
        return
    n, accuracy = PUBLISHED[bench, split]
    rename = (
        f"; this is not the published {bench} {split} data: to load another data set, name its files "
        f"differently (e.g. {bench}-rerun_llama_{split}.pkl)"
    )
    if len(score) != n:
        raise CacheError(f"{rpath}: has {len(score)} questions, the published {bench} {split} split has {n}{rename}")
    for model, expected, got in zip(MODELS, accuracy, score.mean(axis=0)):
        if abs(got - expected) > _PUBLISHED_TOLERANCE:
            raise CacheError(
                f"{rpath}: field 'model_correctness', model {model!r}: accuracy {got:.4f}, the published "
                f"table says {expected:.3f}{rename}"
            )


def _read_block(path: Path, bench: str, split: str) -> _Block:
    """Load and validate one benchmark split (results file, plus its questions file when the benchmark has one)."""
    rpath = path / f"{bench}_llama_{split}.pkl"
    if not os.path.lexists(rpath):
        raise CacheError(f"{path}: missing {rpath.name} (the results of {bench} {split})")
    data = safe_load(rpath)
    if not isinstance(data, dict):
        raise CacheError(f"{rpath}: expected a pickled dict, got {type(data).__name__}")
    prompts = _as_list(rpath, "field 'user_prompts'", _field(rpath, data, "user_prompts"), None)
    n = len(prompts)
    if n == 0:
        raise CacheError(f"{rpath}: field 'user_prompts': no questions")
    prompts = [_string(rpath, f"field 'user_prompts', index {i}", p, None) for i, p in enumerate(prompts)]
    correctness = _per_model(rpath, data, "model_correctness", n)
    tokens = _per_model(rpath, data, "model_tokens", n)
    latencies = _per_model(rpath, data, "model_latencies", n)
    answers = _per_model(rpath, data, "model_answers", n)

    M = len(MODELS)
    score = np.empty((n, M))
    tin = np.empty((n, M), dtype=np.int64)
    tout = np.empty((n, M), dtype=np.int64)
    latency = np.empty((n, M))
    answer = np.empty((n, M), dtype=object)
    for m, model in enumerate(MODELS):
        for i in range(n):
            where = f"model {model!r}, index {i}"
            score[i, m] = _score(rpath, f"field 'model_correctness', {where}", correctness[model][i])
            used = tokens[model][i]
            if not isinstance(used, dict):
                raise CacheError(
                    f"{rpath}: field 'model_tokens', {where}: expected {{'in': int, 'out': int}}, got {used!r}"
                )
            for key, out in (("in", tin), ("out", tout)):
                if key not in used:
                    raise CacheError(f"{rpath}: field 'model_tokens', {where}: missing key {key!r}")
                out[i, m] = _tokens(rpath, f"field 'model_tokens', {where}, key {key!r}", used[key])
            latency[i, m] = _latency(rpath, f"field 'model_latencies', {where}", latencies[model][i])
            answer[i, m] = _string(rpath, f"field 'model_answers', {where}", answers[model][i])

    _check_published(rpath, bench, split, score)

    qpath = path / f"{bench}_questions_{split}.pkl"
    if bench in SUBJECT_FIELDS or (bench not in PROMPT_ONLY_SUBJECTS and os.path.lexists(qpath)):
        if not os.path.lexists(qpath):
            raise CacheError(f"{path}: missing {qpath.name} (the questions of {bench} {split})")
        texts, subjects = _read_questions(qpath, bench, split, n)
    else:
        texts = [(match["question"] if (match := _PROMPT_QUESTION.search(p)) else p) for p in prompts]
        texts = [_string(rpath, f"field 'user_prompts', index {i} (the question text)", t) for i, t in enumerate(texts)]
        subjects = [PROMPT_ONLY_SUBJECTS.get(bench, bench)] * n
    return _Block(
        query_ids=[f"{bench}/{split}/{i}" for i in range(n)],
        texts=texts,
        subjects=subjects,
        score=score,
        input_tokens=tin,
        output_tokens=tout,
        latency_ms=latency,
        answers=answer,
    )


def llama_description(benchmarks: Sequence[str]) -> str:
    """What a cache of ``benchmarks`` holds, with how each benchmark was graded."""
    graded = "; ".join(f"{b}: {GRADING.get(b, 'as recorded in its results file')}" for b in benchmarks)
    return (
        "Real per-question results of Llama-3.2-1B/3B and Llama-3.1-8B/70B/405B-Instruct (hosted API, temperature 0) "
        f"on {', '.join(benchmarks)}. score is 1 when the answer was graded correct, else 0 ({graded}); tokens and "
        "latency are as the API reported them."
    )


def llama_meta(benchmarks: Sequence[str], splits: Sequence[str]) -> dict:
    """The ``meta.json`` content of a llama-cascades cache covering ``benchmarks`` x ``splits``."""
    return {
        "name": NAME,
        "provenance": "real",
        "source": SOURCE,
        "description": llama_description(benchmarks),
        "models": {m: {"price_in": p, "price_out": p} for m, p in MODEL_PRICES.items()},
        "context_field": "subject",
        "benchmarks": list(benchmarks),
        "splits": list(splits),
    }


def _select(path: Path, benchmarks: Iterable[str] | None, splits: Iterable[str]) -> tuple[list[str], list[str]]:
    """The benchmarks (default: every one with a results file in ``path``) and splits to load, checked."""
    if not path.is_dir():
        raise CacheError(
            f"{path}: not a directory; point it at the llama-cascades folder "
            f"(the one holding <bench>_llama_<split>.pkl, e.g. ../shared/data/llama-cascades)"
        )
    try:
        found = [m for name in sorted(os.listdir(path)) if (m := _RESULTS_FILE.match(name))]
    except OSError as exc:
        raise CacheError(f"{path}: cannot list the folder: {exc.strerror or exc}") from None
    if not found:
        raise CacheError(
            f"{path}: no *_llama_*.pkl files; point it at the llama-cascades folder "
            f"(the one holding <bench>_llama_<split>.pkl, e.g. ../shared/data/llama-cascades)"
        )
    if benchmarks is None:
        present = {m["bench"] for m in found}
        chosen = [b for b in BENCHMARKS if b in present] + sorted(present - set(BENCHMARKS))
        where = "a results file name in the folder"
    else:
        chosen = list(dict.fromkeys([benchmarks] if isinstance(benchmarks, str) else benchmarks))
        where = "the benchmark selection"
    split_list = list(dict.fromkeys([splits] if isinstance(splits, str) else splits))
    if not chosen or not split_list:
        raise CacheError(f"{path}: empty selection (benchmarks {chosen}, splits {split_list})")
    for name in chosen:
        if not isinstance(name, str) or not _BENCH_NAME.fullmatch(name):
            raise CacheError(
                f"{path}: {where} names benchmark {name!r}; expected letters, digits, '.', '-' and '_' "
                "(starting with a letter or digit)"
            )
    for name in split_list:
        if not isinstance(name, str) or not _SPLIT_NAME.fullmatch(name):
            raise CacheError(
                f"{path}: split {name!r}: expected letters, digits, '.' and '-' (starting with a letter or digit)"
            )
    return chosen, split_list


def load_llama_cascades(
    path: str | os.PathLike,
    benchmarks: Iterable[str] | None = None,
    splits: Iterable[str] = SPLITS,
) -> ResponseCache:
    """Load the llama-cascades folder as a canonical :class:`ResponseCache`, validating every value.

    Queries are ``"<bench>/<split>/<index>"`` in benchmark, split, question order; ``text`` is the benchmark's
    question (TriviaQA's, and that of a benchmark without a questions file, is cut out of its prompt), ``domain`` the
    benchmark, and the context columns are ``subject`` (MMLU subject, MedMCQA subject_name, TruthfulQA category,
    "trivia" for TriviaQA, the benchmark's name for others; the grouping field) and ``split``. Each (query, model)
    holds score 1.0/0.0 (graded correct or not; a fractional score in [0, 1] is kept), the API's input and output
    tokens, the latency in ms and, in ``extra["answer"]``, the model's answer.

    Args:
        path: the llama-cascades folder (see :func:`llama_cache_dir`).
        benchmarks: benchmarks to load (default: all with results in the folder, known or not); each needs every
            split. A single name may be given as a string.
        splits: splits to load, e.g. ``("test",)`` or ``"test"``.

    Raises:
        CacheError: naming the file, field and index of the first problem, a refused pickle global, or a known
            benchmark whose figures differ from the published table.
    """
    path = Path(path)
    chosen, split_list = _select(path, benchmarks, splits)
    blocks = [(bench, split, _read_block(path, bench, split)) for bench in chosen for split in split_list]
    meta = llama_meta(chosen, split_list)
    prices = np.array([MODEL_PRICES[m] for m in MODELS])
    return ResponseCache(
        name=NAME,
        provenance="real",
        source=SOURCE,
        description=meta["description"],
        models=list(MODELS),
        price_in=prices,
        price_out=prices.copy(),
        query_ids=[q for _, _, b in blocks for q in b.query_ids],
        texts=[t for _, _, b in blocks for t in b.texts],
        domains=[bench for bench, _, b in blocks for _ in b.query_ids],
        context={
            "subject": [s for _, _, b in blocks for s in b.subjects],
            "split": [split for _, split, b in blocks for _ in b.query_ids],
        },
        context_field="subject",
        score=np.concatenate([b.score for _, _, b in blocks]),
        input_tokens=np.concatenate([b.input_tokens for _, _, b in blocks]),
        output_tokens=np.concatenate([b.output_tokens for _, _, b in blocks]),
        latency_ms=np.concatenate([b.latency_ms for _, _, b in blocks]),
        extra={"answer": np.concatenate([b.answers for _, _, b in blocks])},
        meta=meta,
    )


def llama_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """Where the llama-cascades folder is: ``cache_dir`` when given, else ``$LLM_ARENA_LLAMA_DIR``.

    Raises:
        CacheError: when neither is set, saying how to set one.
    """
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    raise CacheError(
        f"no llama-cascades folder given: set `cache_dir` in the scenario (or `--set cache_dir=...`) or the "
        f"environment variable {ENV_VAR} to the llama-cascades folder (e.g. ../shared/data/llama-cascades)"
    )


# ------------------------------------------------------------------------------------------------------- conversion


def cache_rows(cache: ResponseCache) -> tuple[list[dict], list[dict]]:
    """The query and response row dicts of ``cache``, as :func:`envs.data.cache.write_cache` takes them.

    The inverse of :func:`envs.data.cache.load_cache`: writing these rows with ``cache.meta`` and loading the result
    gives back the same arrays. (Queries x models with a NaN score, i.e. no result, are left out.)
    """
    queries = [
        {
            "query_id": qid,
            "text": cache.texts[q],
            "domain": cache.domains[q],
            **{c: values[q] for c, values in cache.context.items()},
        }
        for q, qid in enumerate(cache.query_ids)
    ]
    responses = []
    for q, qid in enumerate(cache.query_ids):
        for m, model in enumerate(cache.models):
            if math.isnan(cache.score[q, m]):
                continue
            latency = float(cache.latency_ms[q, m])
            responses.append(
                {
                    "query_id": qid,
                    "model": model,
                    "score": float(cache.score[q, m]),
                    "input_tokens": int(cache.input_tokens[q, m]),
                    "output_tokens": int(cache.output_tokens[q, m]),
                    "latency_ms": None if math.isnan(latency) else latency,
                    **{c: values[q, m] for c, values in cache.extra.items()},
                }
            )
    return queries, responses
