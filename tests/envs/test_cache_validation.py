"""The canonical cache loader rejects every malformed cache with a message naming the file and the field or row, and
the writer replaces a cache only with a valid one, in one atomic step.

A small valid cache (two queries, two models) is written with ``write_cache`` uncompressed, then one file is corrupted
per case; a hypothesis test checks that ``write_cache``/``load_cache`` round-trip scores, tokens and latencies exactly.
(The exhaustive bad-input sweep is test_data_bad_input.py; kills and torn writes are test_data_faults.py.)
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.data import cache as cache_module
from envs.data.__main__ import main
from envs.data.cache import MAX_TOKENS, CacheError, load_cache, write_cache

MODELS = ("small", "large")


def _meta(models=MODELS, provenance: str = "generated") -> dict:
    return {
        "name": "tiny",
        "provenance": provenance,
        "source": "test fixture",
        "description": "two toy questions",
        "models": {m: {"price_in": 0.1 * (k + 1), "price_out": 0.2 * (k + 1)} for k, m in enumerate(models)},
    }


QUERIES = [
    {"query_id": "q1", "text": "Capital of France?", "domain": "geo", "continent": "europe"},
    {"query_id": "q2", "text": "Capital of Peru?", "domain": "geo", "continent": "america"},
]
RESPONSES = [
    {"query_id": q, "model": m, "score": s, "input_tokens": 10, "output_tokens": 3, "latency_ms": 12.5, "answer": a}
    for q, m, s, a in [
        ("q1", "small", 1.0, "Paris"),
        ("q1", "large", 1.0, "Paris"),
        ("q2", "small", 0.0, "Quito"),
        ("q2", "large", 0.75, "Lima"),
    ]
]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return write_cache(tmp_path / "tiny", _meta(), QUERIES, RESPONSES, compress=False)


def _edit_csv(path: Path, edit: Callable[[list[list[str]]], None]) -> None:
    """Rewrite a CSV file after ``edit`` changed its rows in place (row 0 is the header)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    edit(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def _set_cell(column: str, row: int, value: str) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        rows[row][rows[0].index(column)] = value

    return edit


def _drop_column(column: str) -> Callable[[list[list[str]]], None]:
    def edit(rows: list[list[str]]) -> None:
        k = rows[0].index(column)
        for row in rows:
            del row[k]

    return edit


def test_valid_cache_loads(cache_dir: Path) -> None:
    cache = load_cache(cache_dir, required_models=MODELS)
    assert cache.query_ids == ["q1", "q2"] and cache.models == list(MODELS)
    assert cache.score.tolist() == [[1.0, 1.0], [0.0, 0.75]]
    assert cache.context_field == "continent" and cache.extra["answer"][1, 1] == "Lima"


CSV_CASES = {
    "missing column": ("responses.csv", _drop_column("score"), r"missing column\(s\) \['score'\]"),
    "missing query column": ("queries.csv", _drop_column("domain"), r"missing column\(s\) \['domain'\]"),
    "score above 1": ("responses.csv", _set_cell("score", 2, "1.5"), r"row 2, field 'score'"),
    "score below 0": ("responses.csv", _set_cell("score", 3, "-0.1"), r"row 3, field 'score'"),
    "score not a number": ("responses.csv", _set_cell("score", 1, "high"), r"row 1, field 'score'"),
    "score infinite": ("responses.csv", _set_cell("score", 1, "inf"), r"row 1, field 'score'"),
    "negative tokens": ("responses.csv", _set_cell("input_tokens", 4, "-3"), r"row 4, field 'input_tokens'"),
    "non-integer tokens": ("responses.csv", _set_cell("output_tokens", 2, "2.5"), r"row 2, field 'output_tokens'"),
    "duplicate result": (
        "responses.csv",
        lambda rows: rows.append(list(rows[1])),
        r"row 5: duplicate result for \(query 'q1', model 'small'\)",
    ),
    "unknown model": ("responses.csv", _set_cell("model", 3, "gpt-x"), r"row 3, field 'model': unknown model 'gpt-x'"),
    "unknown query": ("responses.csv", _set_cell("query_id", 2, "q9"), r"row 2, field 'query_id': 'q9'"),
    "duplicate query": ("queries.csv", _set_cell("query_id", 2, "q1"), r"row 2, field 'query_id': duplicate"),
    "ragged row": ("responses.csv", lambda rows: rows[2].pop(), r"row 2: expected \d+ fields"),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_malformed_tables_name_file_and_field(cache_dir: Path, case: str) -> None:
    name, edit, pattern = CSV_CASES[case]
    _edit_csv(cache_dir / name, edit)
    with pytest.raises(CacheError, match=pattern) as info:
        load_cache(cache_dir)
    assert name in str(info.value)


def test_query_without_result_for_a_required_model(cache_dir: Path) -> None:
    _edit_csv(cache_dir / "responses.csv", lambda rows: rows.pop(4))  # (q2, large)
    load_cache(cache_dir, required_models=["small"])
    with pytest.raises(CacheError, match=r"responses\.csv: query 'q2' has no result for model 'large'"):
        load_cache(cache_dir, required_models=["small", "large"])


def test_unknown_required_model(cache_dir: Path) -> None:
    with pytest.raises(CacheError, match=r"meta\.json: unknown model 'huge'"):
        load_cache(cache_dir, required_models=["huge"])


def _rewrite_meta(cache_dir: Path, text: str) -> None:
    (cache_dir / "meta.json").write_text(text, encoding="utf-8")


META_CASES = {
    "bad provenance": (json.dumps(_meta(provenance="invented")), r"meta\.json: field 'provenance'"),
    "non-JSON meta": ("{name: tiny", r"meta\.json: not valid JSON"),
    "meta not an object": ("[1, 2]", r"meta\.json: expected a JSON object"),
    "missing field": (
        json.dumps({k: v for k, v in _meta().items() if k != "source"}),
        r"meta\.json: missing field 'source'",
    ),
    "negative price": (
        json.dumps({**_meta(), "models": {"small": {"price_in": -1, "price_out": 1}}}),
        r"meta\.json: field 'models\.small\.price_in'",
    ),
    "unknown context field": (
        json.dumps({**_meta(), "context_field": "planet"}),
        r"meta\.json: field 'context_field' names 'planet'",
    ),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_malformed_meta_names_file_and_field(cache_dir: Path, case: str) -> None:
    text, pattern = META_CASES[case]
    _rewrite_meta(cache_dir, text)
    with pytest.raises(CacheError, match=pattern):
        load_cache(cache_dir)


def test_missing_files(cache_dir: Path) -> None:
    (cache_dir / "meta.json").unlink()
    with pytest.raises(CacheError, match=r"tiny: missing meta\.json"):
        load_cache(cache_dir)
    with pytest.raises(CacheError, match="not a cache directory"):
        load_cache(cache_dir / "absent")


def test_missing_table(cache_dir: Path) -> None:
    (cache_dir / "responses.csv").unlink()
    with pytest.raises(CacheError, match=r"missing responses\.csv or responses\.csv\.gz"):
        load_cache(cache_dir)


def test_validate_command(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "'tiny'" in out and "provenance generated" in out and "2 queries" in out and "large" in out
    _edit_csv(cache_dir / "responses.csv", _set_cell("score", 1, "2"))
    assert main(["validate", str(cache_dir)]) == 1
    assert "responses.csv: row 1, field 'score'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------------- round trip

_scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
_tokens = st.integers(min_value=0, max_value=MAX_TOKENS)  # the loader's bound, exact as the float it parses
_latencies = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n_queries=st.integers(min_value=1, max_value=6), compress=st.booleans())
def test_write_load_round_trip_is_exact(data: st.DataObject, n_queries: int, compress: bool) -> None:
    shape = (n_queries, len(MODELS))
    draw = lambda strategy: np.array(  # noqa: E731
        data.draw(st.lists(strategy, min_size=n_queries * len(MODELS), max_size=n_queries * len(MODELS)))
    ).reshape(shape)
    score, tin, tout, latency = draw(_scores), draw(_tokens), draw(_tokens), draw(_latencies)
    queries = [{"query_id": f"q{q}", "text": f"question {q}", "domain": "d"} for q in range(n_queries)]
    responses = [
        {
            "query_id": f"q{q}",
            "model": m,
            "score": float(score[q, k]),
            "input_tokens": int(tin[q, k]),
            "output_tokens": int(tout[q, k]),
            "latency_ms": float(latency[q, k]),
        }
        for q in range(n_queries)
        for k, m in enumerate(MODELS)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        write_cache(tmp, _meta(), queries, responses, compress=compress)
        cache = load_cache(tmp, required_models=MODELS)
    np.testing.assert_array_equal(cache.score, score)
    np.testing.assert_array_equal(cache.input_tokens, tin)
    np.testing.assert_array_equal(cache.output_tokens, tout)
    np.testing.assert_array_equal(cache.latency_ms, latency)
    assert cache.input_tokens.dtype == np.int64 and cache.context_field is None


# ------------------------------------------------------------------------------------------------------------ writing


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _with(row: int, **changes) -> list[dict]:
    return [({**r, **changes} if k == row else r) for k, r in enumerate(RESPONSES)]


IMPOSSIBLE = {
    "negative tokens": (_with(1, input_tokens=-5), r"row 2, field 'input_tokens': expected an integer in \[0, "),
    "1e30 tokens": (_with(2, output_tokens=10**30), r"row 3, field 'output_tokens': expected an integer"),
    "tokens past int64": (_with(0, input_tokens=2**63), r"row 1, field 'input_tokens'"),
    "300 kB reply": (_with(3, answer="x" * 300_000), r"row 4: not valid CSV \(field larger than field limit"),
    "120 kB reply": (_with(3, answer="x" * 120_000), r"row 4, field 'answer': 120000 characters, expected at most"),
    "NaN score": (_with(0, score=float("nan")), r"row 1, field 'score': expected a finite number"),
    "negative latency": (_with(0, latency_ms=-1.0), r"row 1, field 'latency_ms': expected a non-negative"),
}


@pytest.mark.parametrize("case", list(IMPOSSIBLE))
def test_an_invalid_cache_never_replaces_the_previous_one(cache_dir: Path, case: str) -> None:
    responses, pattern = IMPOSSIBLE[case]
    before = _files(cache_dir)
    with pytest.raises(
        CacheError,
        match=r"tiny: refusing to write an invalid cache \(the previous one is kept\): "
        r"responses\.csv\.gz: " + pattern,
    ):
        write_cache(cache_dir, _meta(), QUERIES, responses)
    assert _files(cache_dir) == before
    assert sorted(p.name for p in cache_dir.parent.iterdir()) == ["tiny"]  # no staging directory left behind
    load_cache(cache_dir, required_models=MODELS)


def test_the_swap_is_one_atomic_exchange_of_complete_caches(cache_dir: Path, monkeypatch) -> None:
    """At the only moment the path changes, it goes from the complete old cache to the complete, validated new one."""
    real_exchange, seen = cache_module._exchange, []

    def observed(staging: Path, out: Path) -> None:
        assert load_cache(out).score.tolist() == [[1.0, 1.0], [0.0, 0.75]]  # still the old cache
        staged = load_cache(staging)
        assert staged.score.tolist() == [[1.0, 1.0], [0.0, 0.5]] and staged.name == "tiny"
        assert sorted(p.name for p in staging.iterdir()) == ["meta.json", "queries.csv.gz", "responses.csv.gz"]
        seen.append(staging)
        real_exchange(staging, out)

    monkeypatch.setattr(cache_module, "_exchange", observed)
    write_cache(cache_dir, _meta(), QUERIES, _with(3, score=0.5))
    assert len(seen) == 1 and not seen[0].exists()
    assert load_cache(cache_dir).score.tolist() == [[1.0, 1.0], [0.0, 0.5]]


def test_the_new_directory_keeps_the_old_ones_permissions(cache_dir: Path) -> None:
    os.chmod(cache_dir, 0o750)
    write_cache(cache_dir, _meta(), QUERIES, RESPONSES)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o750
    fresh = write_cache(cache_dir.parent / "fresh", _meta(), QUERIES, RESPONSES)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o777 & ~umask


def test_one_form_per_table(cache_dir: Path, tmp_path: Path) -> None:
    """A stale responses.csv next to a fresh responses.csv.gz (or the other way round) is refused by name; writing
    either form removes the other with the old directory."""
    gz_dir = write_cache(tmp_path / "gz", _meta(), QUERIES, _with(0, score=0.0))
    (cache_dir / "responses.csv.gz").write_bytes((gz_dir / "responses.csv.gz").read_bytes())
    with pytest.raises(CacheError, match=r"tiny: holds both responses\.csv and responses\.csv\.gz; .*remove the stale"):
        load_cache(cache_dir)
    assert main(["validate", str(cache_dir)]) == 1
    write_cache(cache_dir, _meta(), QUERIES, RESPONSES)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["meta.json", "queries.csv.gz", "responses.csv.gz"]
    write_cache(cache_dir, _meta(), QUERIES, RESPONSES, compress=False)
    assert sorted(p.name for p in cache_dir.iterdir()) == ["meta.json", "queries.csv", "responses.csv"]
    assert load_cache(cache_dir).score.tolist() == [[1.0, 1.0], [0.0, 0.75]]


def test_the_writer_refuses_targets_it_would_damage(cache_dir: Path, tmp_path: Path) -> None:
    (cache_dir / "notes.txt").write_text("mine")
    before = _files(cache_dir)
    with pytest.raises(CacheError, match=r"tiny: holds notes\.txt, which is not part of a cache"):
        write_cache(cache_dir, _meta(), QUERIES, RESPONSES)
    assert _files(cache_dir) == before
    link = tmp_path / "link"
    link.symlink_to(cache_dir, target_is_directory=True)
    with pytest.raises(CacheError, match=r"link: is a symbolic link; give the directory it points to"):
        write_cache(link, _meta(), QUERIES, RESPONSES)
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(CacheError, match=r"afile: exists and is not a directory"):
        write_cache(afile, _meta(), QUERIES, RESPONSES)
    assert _files(cache_dir) == before and afile.read_text() == "x"


def test_stale_staging_directories_are_removed_but_not_live_ones(cache_dir: Path) -> None:
    dead = cache_dir.parent / ".tiny.tmp-deadbeef"
    dead.mkdir()
    (dead / "meta.json").write_text('{"half": ')
    live = cache_dir.parent / ".tiny.tmp-0badf00d"
    live.mkdir()
    other = cache_dir.parent / ".tinyx.tmp-deadbeef"  # another cache's: not ours to touch
    other.mkdir()
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the writer staging there would hold it
        write_cache(cache_dir, _meta(), QUERIES, RESPONSES)
    finally:
        os.close(fd)
    assert not dead.exists() and live.exists() and other.exists()
    load_cache(cache_dir, required_models=MODELS)


def test_a_byte_order_mark_is_ignored_and_a_decompression_bomb_refused(cache_dir: Path, monkeypatch) -> None:
    path = cache_dir / "queries.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # as spreadsheet programs save UTF-8
    assert load_cache(cache_dir).query_ids == ["q1", "q2"]
    gz_dir = write_cache(cache_dir.parent / "gz", _meta(), QUERIES, _with(0, answer="x" * 5000))
    monkeypatch.setattr(cache_module, "MAX_TABLE_BYTES", 4096)
    with pytest.raises(CacheError, match=r"responses\.csv\.gz: more than 4096 bytes once decompressed"):
        load_cache(gz_dir)
