"""Bad input sweep of the data layer: every entry point fed every kind of malformed input.

Entry points: ``load_cache`` and ``python -m envs.data validate`` (the canonical CSV/JSON files), ``convert-llama``,
``build`` (its flags and its output directory) and ``load_llama_cascades`` (the pickles). Each case asserts a clear
error (``CacheError``, ``BuildError`` or an argparse usage error, never a raw ``OverflowError``, ``zlib.error``,
``UnicodeDecodeError``, ``EOFError``, ...) whose message names the file or flag, the field (and row or index) and what
was expected, and that nothing on disk changed (every file, link and directory under the test's folder, byte for
byte). Cases are data: add a line to a table to add a case.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from envs.data.__main__ import main
from envs.data.cache import CacheError, load_cache, write_cache
from envs.data.llama_cascades import load_llama_cascades
from tests.envs.test_llama_cascades import _Pwn, _questions, _results

MODELS = ("small", "large")
META = {
    "name": "tiny",
    "provenance": "generated",
    "source": "test fixture",
    "description": "two toy questions",
    "models": {m: {"price_in": 0.1 * (k + 1), "price_out": 0.2 * (k + 1)} for k, m in enumerate(MODELS)},
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


def snapshot(root: Path) -> dict[str, tuple]:
    """Everything under ``root`` (not following links): kind and content of every entry."""
    state: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            key = str(path.relative_to(root))
            if stat.S_ISLNK(mode):
                state[key] = ("link", os.readlink(path))
            elif stat.S_ISREG(mode):
                state[key] = ("file", path.read_bytes())
            else:
                state[key] = ("dir" if stat.S_ISDIR(mode) else "other", stat.S_IFMT(mode))
    return state


# ------------------------------------------------------------------------------------------- canonical cache files
# A case is (compressed, edit of the cache directory, pattern of the message). The plain cache has queries.csv
# (rows q1, q2) and responses.csv (rows 1-4: q1/small, q1/large, q2/small, q2/large).


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def cell(name: str, column: str, row: int, value: str) -> Callable[[Path], None]:
    """Set one field of a plain CSV file (``row`` 1 is the first data row)."""

    def edit(d: Path) -> None:
        lines = _lines(d / name)
        header = lines[0].split(",")
        fields = lines[row].split(",")
        fields[header.index(column)] = value
        lines[row] = ",".join(fields)
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")

    return edit


def line(name: str, row: int, text: str) -> Callable[[Path], None]:
    """Replace a line of a plain CSV file (0 is the header; ``row`` one past the end appends)."""

    def edit(d: Path) -> None:
        lines = _lines(d / name)
        lines[row : row + 1] = [text]
        (d / name).write_text("\n".join(lines) + "\n", encoding="utf-8")

    return edit


def replace_with(name: str, make: Callable[[Path], None]) -> Callable[[Path], None]:
    """Delete a file and let ``make(path)`` put something else at its name."""

    def edit(d: Path) -> None:
        (d / name).unlink()
        make(d / name)

    return edit


def raw(name: str, data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        (d / name).write_bytes(data((d / name).read_bytes()) if callable(data) else data)

    return edit


def meta(change: Callable[[dict], object] | str) -> Callable[[Path], None]:
    """Rewrite meta.json: a string is its new text; a function edits the dict in place."""

    def edit(d: Path) -> None:
        if isinstance(change, str):
            text = change
        else:
            data = json.loads((d / "meta.json").read_text())
            change(data)
            text = json.dumps(data)
        (d / "meta.json").write_text(text, encoding="utf-8")

    return edit


def flip(position: int) -> Callable[[bytes], bytes]:
    """Invert one byte (a negative position counts from the end)."""

    def change(data: bytes) -> bytes:
        b = bytearray(data)
        b[position] ^= 0xFF
        return bytes(b)

    return change


def drop_responses_column(column: str) -> Callable[[Path], None]:
    """Delete a column of the plain responses.csv (its fields hold no commas)."""

    def edit(d: Path) -> None:
        lines = [row.split(",") for row in _lines(d / "responses.csv")]
        k = lines[0].index(column)
        (d / "responses.csv").write_text("\n".join(",".join(r[:k] + r[k + 1 :]) for r in lines) + "\n")

    return edit


R, Q = "responses\\.csv", "queries\\.csv"
TOK = r"expected an integer in \[0, 100000000\]"
PRICE = r"expected a number in \[0, 1e\+06\] \(USD per 1M tokens\)"
CANONICAL: dict[str, tuple[bool, Callable[[Path], None], str]] = {
    # columns and rows
    "missing column": (False, drop_responses_column("score"), rf"{R}: missing column\(s\) \['score'\]"),
    "missing query column": (
        False,
        line("queries.csv", 0, "query_id,domain,continent"),
        rf"{Q}: missing column\(s\) \['text'\]",
    ),
    "duplicate column": (
        False,
        cell("responses.csv", "latency_ms", 0, "answer"),
        rf"{R}: duplicate column\(s\) \['answer'\]",
    ),
    "ragged response row": (False, line("responses.csv", 2, "q1,large,1.0"), rf"{R}: row 2: expected 7 fields, got 3"),
    "ragged query row": (False, line("queries.csv", 1, "q1,text"), rf"{Q}: row 1: expected 4 fields, got 2"),
    "duplicate query id": (
        False,
        cell("queries.csv", "query_id", 2, "q1"),
        rf"{Q}: row 2, field 'query_id': duplicate query 'q1'",
    ),
    "empty query id": (False, cell("queries.csv", "query_id", 1, ""), rf"{Q}: row 1, field 'query_id': empty"),
    "empty domain": (False, cell("queries.csv", "domain", 2, ""), rf"{Q}: row 2, field 'domain': empty"),
    "duplicate result": (
        False,
        line("responses.csv", 5, "q1,small,1.0,10,3,12.5,Paris"),
        rf"{R}: row 5: duplicate result for \(query 'q1', model 'small'\)",
    ),
    "unknown model": (
        False,
        cell("responses.csv", "model", 3, "gpt-x"),
        rf"{R}: row 3, field 'model': unknown model 'gpt-x'; meta\.json prices \['small', 'large'\]",
    ),
    "unknown query": (
        False,
        cell("responses.csv", "query_id", 2, "q9"),
        rf"{R}: row 2, field 'query_id': 'q9' is not in queries\.csv",
    ),
    "no queries": (False, raw("queries.csv", b"query_id,text,domain,continent\n"), rf"{Q}: no queries"),
    # numbers: wrong types, NaN/inf, negative, fractional, huge
    "score not a number": (
        False,
        cell("responses.csv", "score", 1, "high"),
        rf"{R}: row 1, field 'score': expected a number, got 'high'",
    ),
    "score empty": (False, cell("responses.csv", "score", 2, ""), rf"{R}: row 2, field 'score': expected a number"),
    "score NaN": (
        False,
        cell("responses.csv", "score", 1, "nan"),
        rf"{R}: row 1, field 'score': expected a finite number, got 'nan'",
    ),
    "score inf": (False, cell("responses.csv", "score", 4, "inf"), rf"{R}: row 4, field 'score': expected a finite"),
    "score -inf": (False, cell("responses.csv", "score", 4, "-inf"), rf"{R}: row 4, field 'score': expected a finite"),
    "score above 1": (
        False,
        cell("responses.csv", "score", 2, "1.5"),
        rf"{R}: row 2, field 'score': expected a value in \[0, 1\], got 1.5",
    ),
    "score negative": (False, cell("responses.csv", "score", 3, "-0.1"), rf"{R}: row 3, field 'score': expected a"),
    "tokens negative": (
        False,
        cell("responses.csv", "input_tokens", 4, "-3"),
        rf"{R}: row 4, field 'input_tokens': {TOK}, got '-3'",
    ),
    "tokens fractional": (
        False,
        cell("responses.csv", "output_tokens", 2, "2.5"),
        rf"{R}: row 2, field 'output_tokens': {TOK}, got '2.5'",
    ),
    "tokens 1e30": (
        False,
        cell("responses.csv", "output_tokens", 1, "1e30"),
        rf"{R}: row 1, field 'output_tokens': {TOK}, got '1e30'",
    ),
    "tokens 2**63": (
        False,
        cell("responses.csv", "input_tokens", 1, str(2**63)),
        rf"{R}: row 1, field 'input_tokens': {TOK}, got '9223372036854775808'",
    ),
    "tokens of 400 digits": (
        False,
        cell("responses.csv", "input_tokens", 1, "9" * 400),
        rf"{R}: row 1, field 'input_tokens': expected a finite number",
    ),
    "tokens NaN": (
        False,
        cell("responses.csv", "input_tokens", 3, "NaN"),
        rf"{R}: row 3, field 'input_tokens': expected a finite number",
    ),
    "tokens hexadecimal": (
        False,
        cell("responses.csv", "output_tokens", 3, "0x10"),
        rf"{R}: row 3, field 'output_tokens': expected a number, got '0x10'",
    ),
    "latency negative": (
        False,
        cell("responses.csv", "latency_ms", 2, "-1"),
        rf"{R}: row 2, field 'latency_ms': expected a non-negative number of milliseconds",
    ),
    "latency NaN": (
        False,
        cell("responses.csv", "latency_ms", 2, "nan"),
        rf"{R}: row 2, field 'latency_ms': expected a finite number",
    ),
    "latency inf": (
        False,
        cell("responses.csv", "latency_ms", 2, "inf"),
        rf"{R}: row 2, field 'latency_ms': expected a finite number",
    ),
    "latency text": (
        False,
        cell("responses.csv", "latency_ms", 2, "fast"),
        rf"{R}: row 2, field 'latency_ms': expected a number, got 'fast'",
    ),
    # sizes and encodings
    "empty queries file": (False, raw("queries.csv", b""), rf"{Q}: empty file, expected a header row"),
    "empty responses file": (False, raw("responses.csv", b""), rf"{R}: empty file, expected a header row"),
    "non-UTF-8 responses": (
        False,
        raw("responses.csv", lambda b: b.replace(b"Lima", b"L\xefma")),
        rf"{R}: line 5: not UTF-8 text \(invalid continuation byte at byte \d+\)",
    ),
    "non-UTF-8 queries": (
        False,
        raw("queries.csv", lambda b: b.replace(b"Peru", b"\xff\xfe")),
        rf"{Q}: line 3: not UTF-8 text \(invalid start byte",
    ),
    "120k-character answer": (
        False,
        cell("responses.csv", "answer", 1, "x" * 120_000),
        rf"{R}: row 1, field 'answer': 120000 characters, expected at most 100000",
    ),
    "300k-character answer": (
        False,
        cell("responses.csv", "answer", 3, "x" * 300_000),
        rf"{R}: row 3: not valid CSV \(field larger than field limit",
    ),
    "110k-character question": (
        False,
        cell("queries.csv", "text", 2, "y" * 110_000),
        rf"{Q}: row 2, field 'text': 110000 characters, expected at most 100000",
    ),
    "unterminated quote": (
        False,
        raw("responses.csv", lambda b: b + b'q9,small,"1.0,1,1,1,x\n'),
        rf"{R}: row 5: expected 7 fields, got 3",
    ),
    "NUL-padded tail": (False, raw("responses.csv", lambda b: b + b"\x00" * 64), rf"{R}: row 5: expected 7 fields"),
    # files: both forms, missing, wrong kinds
    "stale plain responses next to gzip": (
        False,
        lambda d: (d / "responses.csv.gz").write_bytes(gzip.compress((d / "responses.csv").read_bytes())),
        r"holds both responses\.csv and responses\.csv\.gz; .*nothing tells which is current: remove the stale",
    ),
    "stale plain queries next to gzip": (
        False,
        lambda d: (d / "queries.csv.gz").write_bytes(gzip.compress((d / "queries.csv").read_bytes())),
        r"holds both queries\.csv and queries\.csv\.gz",
    ),
    "stale gzip responses next to plain": (
        True,
        lambda d: (d / "responses.csv").write_bytes(gzip.decompress((d / "responses.csv.gz").read_bytes())),
        r"holds both responses\.csv and responses\.csv\.gz",
    ),
    "responses missing": (
        False,
        lambda d: (d / "responses.csv").unlink(),
        r"missing responses\.csv or responses\.csv\.gz",
    ),
    "queries missing": (True, lambda d: (d / "queries.csv.gz").unlink(), r"missing queries\.csv or queries\.csv\.gz"),
    "meta.json missing": (False, lambda d: (d / "meta.json").unlink(), r"tiny: missing meta\.json"),
    "responses is a directory": (
        False,
        replace_with("responses.csv", lambda p: p.mkdir()),
        rf"{R}: is a directory, expected a file",
    ),
    "queries is a FIFO": (
        False,
        replace_with("queries.csv", os.mkfifo),
        rf"{Q}: is not a regular file \(a FIFO, socket or device\), expected a file",
    ),
    "responses is a broken link": (
        True,
        replace_with("responses.csv.gz", lambda p: p.symlink_to("gone.csv.gz")),
        rf"{R}\.gz: is a broken symbolic link, expected a file",
    ),
    "responses links to a directory": (
        False,
        replace_with("responses.csv", lambda p: p.symlink_to(p.parent)),
        rf"{R}: is a directory, expected a file",
    ),
    "meta.json is a directory": (
        False,
        replace_with("meta.json", lambda p: p.mkdir()),
        r"tiny/meta\.json: is a directory, expected a file$",
    ),
    "meta.json is a broken link": (
        False,
        replace_with("meta.json", lambda p: p.symlink_to("nowhere.json")),
        r"meta\.json: is a broken symbolic link, expected a file",
    ),
    "meta.json is a FIFO": (False, replace_with("meta.json", os.mkfifo), r"meta\.json: is not a regular file"),
    # gzip damage
    "truncated gzip": (
        True,
        raw("responses.csv.gz", lambda b: b[: len(b) // 2]),
        (
            r"responses\.csv\.gz: cannot read as a gzip file \(truncated or corrupt\?\): EOFError: "
            r"Compressed file ended"
        ),
    ),
    "corrupt deflate data": (
        True,
        raw("responses.csv.gz", flip(12)),
        (
            r"responses\.csv\.gz: cannot read as a gzip file \(truncated or corrupt\?\): error: "
            r"Error -3 while decompressing"
        ),
    ),
    "bad gzip checksum": (
        True,
        raw("queries.csv.gz", flip(-6)),
        r"queries\.csv\.gz: cannot read as a gzip file .*BadGzipFile: CRC check failed",
    ),
    "bad gzip length": (
        True,
        raw("queries.csv.gz", flip(-2)),
        r"queries\.csv\.gz: cannot read as a gzip file .*BadGzipFile: Incorrect length",
    ),
    "not gzip at all": (
        True,
        raw("responses.csv.gz", b"query_id,model\n"),
        r"responses\.csv\.gz: cannot read as a gzip file .*BadGzipFile: Not a gzipped file",
    ),
    "zero-byte gzip": (True, raw("responses.csv.gz", b""), r"responses\.csv\.gz: empty file, expected a header row"),
    "gzip of nothing": (True, raw("queries.csv.gz", gzip.compress(b"")), r"queries\.csv\.gz: empty file"),
    "gzip with trailing garbage": (
        True,
        raw("responses.csv.gz", lambda b: b + b"garbage"),
        r"responses\.csv\.gz: cannot read as a gzip file .*Not a gzipped file",
    ),
    "non-UTF-8 inside gzip": (
        True,
        raw("queries.csv.gz", gzip.compress(b"query_id,text,domain\nq1,\xff,geo\n")),
        r"queries\.csv\.gz: line 2: not UTF-8 text \(invalid start byte at byte 24\)",
    ),
    # meta.json content
    "meta not JSON": (False, meta("{name: tiny"), r"meta\.json: not valid JSON"),
    "meta empty": (False, meta(""), r"meta\.json: not valid JSON"),
    "meta a list": (False, meta("[1, 2]"), r"meta\.json: expected a JSON object, got list"),
    "meta a string": (False, meta('"tiny"'), r"meta\.json: expected a JSON object, got str"),
    "meta not UTF-8": (False, raw("meta.json", lambda b: b.replace(b"tiny", b"t\xffny")), r"meta\.json: not UTF-8"),
    "meta nested 100000 deep": (False, meta("[" * 100_000 + "]" * 100_000), r"meta\.json: not valid JSON"),
    "meta duplicate key": (
        False,
        meta(
            '{"name": "a", "name": "b", "provenance": "real", "source": "", '
            '"models": {"m": {"price_in": 0, "price_out": 0}}}'
        ),
        r"meta\.json: not valid JSON: duplicate key\(s\) \['name'\]",
    ),
    "meta missing name": (False, meta(lambda m: m.pop("name")), r"meta\.json: missing field 'name'"),
    "meta missing models": (False, meta(lambda m: m.pop("models")), r"meta\.json: missing field 'models'"),
    "name not a string": (
        False,
        meta(lambda m: m.update(name=5)),
        r"meta\.json: field 'name': expected a string, got 5",
    ),
    "name empty": (False, meta(lambda m: m.update(name="")), r"meta\.json: field 'name': expected a non-empty string"),
    "source a list": (
        False,
        meta(lambda m: m.update(source=["a"])),
        r"meta\.json: field 'source': expected a string, got \['a'\]",
    ),
    "description a number": (
        False,
        meta(lambda m: m.update(description=1)),
        r"meta\.json: field 'description': expected a string",
    ),
    "provenance invented": (
        False,
        meta(lambda m: m.update(provenance="invented")),
        r"meta\.json: field 'provenance' must be one of \('real', 'calibrated', 'generated'\)",
    ),
    "provenance a list": (False, meta(lambda m: m.update(provenance=["real"])), r"meta\.json: field 'provenance'"),
    "models a list": (
        False,
        meta(lambda m: m.update(models=["small", "large"])),
        r"meta\.json: field 'models': expected an object mapping model names",
    ),
    "models empty": (False, meta(lambda m: m.update(models={})), r"meta\.json: field 'models': expected an object"),
    "model name empty": (
        False,
        meta(lambda m: m["models"].update({"": {"price_in": 0, "price_out": 0}})),
        r"meta\.json: field 'models': a model name is empty",
    ),
    "model prices a string": (
        False,
        meta(lambda m: m["models"].update(small="cheap")),
        r"meta\.json: field 'models\.small': expected an object with 'price_in' and 'price_out'",
    ),
    "price missing": (
        False,
        meta(lambda m: m["models"]["small"].pop("price_in")),
        rf"meta\.json: field 'models\.small\.price_in': {PRICE}, got None",
    ),
    "price a string": (
        False,
        meta(lambda m: m["models"]["large"].update(price_out="0.1")),
        rf"meta\.json: field 'models\.large\.price_out': {PRICE}, got '0\.1'",
    ),
    "price negative": (
        False,
        meta(lambda m: m["models"]["small"].update(price_in=-1)),
        rf"meta\.json: field 'models\.small\.price_in': {PRICE}, got -1",
    ),
    "price a bool": (
        False,
        meta(lambda m: m["models"]["small"].update(price_in=True)),
        rf"meta\.json: field 'models\.small\.price_in': {PRICE}, got True",
    ),
    "price 1e12": (
        False,
        meta(lambda m: m["models"]["small"].update(price_in=1e12)),
        rf"meta\.json: field 'models\.small\.price_in': {PRICE}, got 1000000000000\.0",
    ),
    "price NaN literal": (
        False,
        meta(json.dumps(META).replace('"price_in": 0.1', '"price_in": NaN')),
        r"meta\.json: not valid JSON: NaN is not a number JSON allows",
    ),
    "price Infinity literal": (
        False,
        meta(json.dumps(META).replace('"price_out": 0.2', '"price_out": Infinity')),
        r"meta\.json: not valid JSON: Infinity is not a number JSON allows",
    ),
    "price 1e400": (
        False,
        meta(json.dumps(META).replace('"price_in": 0.1', '"price_in": 1e400')),
        rf"meta\.json: field 'models\.small\.price_in': {PRICE}, got inf",
    ),
    "price of 5000 digits": (
        False,
        meta(json.dumps(META).replace('"price_in": 0.1', '"price_in": ' + "1" * 5000)),
        r"meta\.json: not valid JSON: Exceeds the limit",
    ),
    "context_field not a column": (
        False,
        meta(lambda m: m.update(context_field="planet")),
        r"meta\.json: field 'context_field' names 'planet', which is not a column",
    ),
    "context_field a number": (
        False,
        meta(lambda m: m.update(context_field=3)),
        r"meta\.json: field 'context_field': expected a column name or null, got 3",
    ),
}


@pytest.mark.parametrize("entry", ["load_cache", "validate"])
@pytest.mark.parametrize("case", list(CANONICAL))
def test_canonical_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, entry: str) -> None:
    compressed, edit, pattern = CANONICAL[case]
    directory = write_cache(tmp_path / "tiny", META, QUERIES, RESPONSES, compress=compressed)
    load_cache(directory, required_models=MODELS)  # valid before the edit
    edit(directory)
    before = snapshot(tmp_path)
    if entry == "load_cache":
        with pytest.raises(CacheError) as info:
            load_cache(directory, required_models=MODELS)
        message = str(info.value)
    else:
        assert main(["validate", str(directory)]) == 1
        message = capsys.readouterr().err
    assert re.search(pattern, message), message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "target, pattern",
    [
        ("absent", r"absent: not a cache directory"),
        ("afile", r"afile: not a cache directory"),
    ],
)
def test_validate_a_path_that_is_no_cache(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, pattern: str
) -> None:
    (tmp_path / "afile").write_text("x")
    before = snapshot(tmp_path)
    assert main(["validate", str(tmp_path / target)]) == 1
    assert re.search(pattern, capsys.readouterr().err)
    assert snapshot(tmp_path) == before


# ------------------------------------------------------------------------------------------------------ build flags

BUILD = [
    "build",
    "--backend",
    "openai",
    "--base-url",
    "http://127.0.0.1:9/v1",
    "--model",
    "meta-llama/Llama-3.2-3B-Instruct",
    "--no-progress",
]
FLAGS: dict[str, tuple[list[str], str]] = {
    "tolerance NaN": (
        ["--tolerance-deg", "nan"],
        (
            r"argument --tolerance-deg: expected a finite number in \[0, 180\], "
            r"got 'nan'"
        ),
    ),
    "tolerance inf": (["--tolerance-deg", "inf"], r"argument --tolerance-deg: expected a finite number"),
    "tolerance negative": (["--tolerance-deg", "-1"], r"argument --tolerance-deg: expected a finite number"),
    "tolerance beyond 180": (["--tolerance-deg", "181"], r"argument --tolerance-deg: expected a finite number"),
    "tolerance text": (["--tolerance-deg", "one"], r"argument --tolerance-deg: expected a finite number"),
    "price NaN": (
        ["--price", "a=nan"],
        (
            r"argument --price: expected NAME=IN\[,OUT\] with finite prices in "
            r"\[0, 1e\+06\] \(USD per 1M tokens\), got 'a=nan'"
        ),
    ),
    "price inf": (["--price", "a=inf"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price out NaN": (["--price", "a=1,nan"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price 1e400": (["--price", "a=1e400"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price negative": (["--price", "a=-1"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price huge": (["--price", "a=1e9"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price without =": (["--price", "a"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price without name": (["--price", "=1"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "price three values": (["--price", "a=1,2,3"], r"argument --price: expected NAME=IN\[,OUT\]"),
    "timeout NaN": (["--timeout", "nan"], r"argument --timeout: expected a finite number in \(0, 86400\]"),
    "timeout zero": (["--timeout", "0"], r"argument --timeout: expected a finite number in \(0, 86400\]"),
    "timeout negative": (["--timeout", "-5"], r"argument --timeout: expected a finite number"),
    "timeout inf": (["--timeout", "inf"], r"argument --timeout: expected a finite number"),
    "backoff NaN": (["--backoff", "nan"], r"argument --backoff: expected a finite number in \[0, 3600\]"),
    "backoff negative": (["--backoff", "-1"], r"argument --backoff: expected a finite number"),
    "limit zero": (["--limit", "0"], r"argument --limit: expected an integer in \[1, 1000000000\], got '0'"),
    "limit negative": (["--limit", "-3"], r"argument --limit: expected an integer"),
    "limit text": (["--limit", "ten"], r"argument --limit: expected an integer"),
    "limit fractional": (["--limit", "2.5"], r"argument --limit: expected an integer"),
    "max-new-tokens zero": (
        ["--max-new-tokens", "0"],
        (
            r"argument --max-new-tokens: expected an integer in "
            r"\[1, 100000000\]"
        ),
    ),
    "max-new-tokens huge": (["--max-new-tokens", str(10**12)], r"argument --max-new-tokens: expected an integer"),
    "concurrency zero": (["--concurrency", "0"], r"argument --concurrency: expected an integer in \[1, 1024\]"),
    "max-retries negative": (["--max-retries", "-1"], r"argument --max-retries: expected an integer in \[0, 100\]"),
    "batch-size zero": (["--batch-size", "0"], r"argument --batch-size: expected an integer in \[1, 65536\]"),
    "queries empty": (["--queries", ""], r"argument --queries: expected a comma-separated list, got ''"),
    "queries only commas": (["--queries", " , ,"], r"argument --queries: expected a comma-separated list"),
    "name empty": (["--name", " "], r"argument --name: expected a non-empty name"),
    "model without id": (["--model", "=x"], r"argument --model: expected ID or ID=NAME, got '=x'"),
    "model with empty name": (["--model", "a/b="], r"argument --model: expected ID or ID=NAME"),
    "model without a name to derive": (["--model", "/"], r"argument --model: cannot derive a model name from '/'"),
    "unknown backend": (["--backend", "magic"], r"argument --backend: invalid choice: 'magic'"),
    "unknown task": (["--task", "poetry"], r"argument --task: invalid choice: 'poetry'"),
}


@pytest.mark.parametrize("case", list(FLAGS))
def test_build_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    extra, pattern = FLAGS[case]
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(BUILD + ["--out", str(tmp_path / "out")] + extra)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert snapshot(tmp_path) == before


def _out(tmp: Path) -> Path:
    return tmp / "out"


def _out_as_file(tmp: Path) -> Path:
    (tmp / "out").write_text("x")
    return tmp / "out"


def _out_as_link(tmp: Path) -> Path:
    (tmp / "real").mkdir()
    (tmp / "out").symlink_to(tmp / "real")
    return tmp / "out"


def _out_with_other_files(tmp: Path) -> Path:
    (tmp / "out").mkdir()
    (tmp / "out" / "thesis.tex").write_text("x")
    return tmp / "out"


def _out_under_a_file(tmp: Path) -> Path:
    (tmp / "afile").write_text("x")
    return tmp / "afile" / "out"


def _journal_as(make: Callable[[Path], None]) -> Callable[[Path], Path]:
    def prepare(tmp: Path) -> Path:
        (tmp / "out").mkdir()
        make(tmp / "out" / ".journal.jsonl")
        return tmp / "out"

    return prepare


JOURNAL = r"\.journal\.jsonl: the build journal"
BUILD_RUNS: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    "out is a file": (_out_as_file, [], r"--out .*out: exists and is not a directory"),
    "out is a link": (_out_as_link, [], r"--out .*out: is a symbolic link; give the directory it points to"),
    "out holds other files": (
        _out_with_other_files,
        [],
        (
            r"--out .*out: holds thesis\.tex, which is not part of a "
            r"cache"
        ),
    ),
    "out under a file": (_out_under_a_file, [], r"--out .*afile/out: cannot create the directory"),
    "journal is a directory": (_journal_as(Path.mkdir), [], rf"{JOURNAL} cannot be opened .*; it must be a regular"),
    "journal is a link": (
        _journal_as(lambda p: p.symlink_to(p.parent.parent / "elsewhere")),
        [],
        rf"{JOURNAL} is a symbolic link; it must be a regular file",
    ),
    "journal is a FIFO": (_journal_as(os.mkfifo), [], rf"{JOURNAL} is not a regular file"),
    "unknown query id": (_out, ["--queries", "FRA,XXX"], r"unknown query id\(s\) \['XXX'\]"),
    "query id twice": (_out, ["--queries", "FRA,ARG,FRA"], r"query id\(s\) \['FRA'\] selected more than once"),
    "price of an unknown model": (_out, ["--price", "gpt=1"], r"--price names unknown model\(s\) \['gpt'\]"),
    "price named twice": (
        _out,
        ["--price", "llama-3.2-3b-instruct=1", "--price", "llama-3.2-3b-instruct=2"],
        r"--price names \['llama-3\.2-3b-instruct'\] more than once",
    ),
    "model named twice": (_out, ["--model", "other/llama-3.2-3B-Instruct"], r"model names must be distinct"),
}


@pytest.mark.parametrize("case", list(BUILD_RUNS))
def test_build_refuses_before_asking_anything(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    prepare, extra, pattern = BUILD_RUNS[case]
    out = prepare(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(BUILD + ["--out", str(out)] + extra)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------------- convert-llama


def _llama_folder(folder: Path) -> Path:
    folder.mkdir()
    for split in ("test", "train"):
        (folder / f"toybench_llama_{split}.pkl").write_bytes(pickle.dumps(_results(3)))
    return folder


def _nothing(tmp: Path) -> None:
    pass


def _broken_train_pickle(tmp: Path) -> None:
    (tmp / "src" / "toybench_llama_train.pkl").write_bytes(b"\x80\x04\x95")


# A case: (preparation, arguments with {t} for the test's folder, exit status, pattern).
CONVERT: dict[str, tuple[Callable[[Path], None], list[str], int, str]] = {
    "source missing": (_nothing, ["{t}/absent", "{t}/out"], 1, r"absent: not a directory; point it at"),
    "source is a file": (
        _nothing,
        ["{t}/src/toybench_llama_test.pkl", "{t}/out"],
        1,
        r"toybench_llama_test\.pkl: not a directory",
    ),
    "source without results": (
        lambda t: (t / "empty").mkdir(),
        ["{t}/empty", "{t}/out"],
        1,
        r"empty: no \*_llama_\*\.pkl files",
    ),
    "benchmarks only commas": (
        _nothing,
        ["{t}/src", "{t}/out", "--benchmarks", ",,"],
        2,
        r"argument --benchmarks: expected a comma-separated list, got ',,'",
    ),
    "benchmark with a path": (
        _nothing,
        ["{t}/src", "{t}/out", "--benchmarks", "../etc"],
        1,
        r"src: the benchmark selection names benchmark '\.\./etc'; expected letters, digits",
    ),
    "split with underscore": (
        _nothing,
        ["{t}/src", "{t}/out", "--splits", "a_b"],
        1,
        r"src: split 'a_b': expected letters, digits, '\.' and '-'",
    ),
    "splits empty": (
        _nothing,
        ["{t}/src", "{t}/out", "--splits", ""],
        2,
        r"argument --splits: expected a comma-separated list",
    ),
    "split not there": (
        _nothing,
        ["{t}/src", "{t}/out", "--splits", "dev"],
        1,
        r"src: missing toybench_llama_dev\.pkl \(the results of toybench dev\)",
    ),
    "out is a file": (
        _nothing,
        ["{t}/src", "{t}/src/toybench_llama_test.pkl"],
        1,
        r"toybench_llama_test\.pkl: exists and is not a directory",
    ),
    "out is a link": (
        lambda t: (t / "link").symlink_to(t / "elsewhere"),
        ["{t}/src", "{t}/link"],
        1,
        r"link: is a symbolic link",
    ),
    "out holds other files": (
        _nothing,
        ["{t}/src", "{t}/src"],
        1,
        r"src: holds toybench_llama_test\.pkl, .*which is not part of a cache",
    ),
    "broken pickle": (
        _broken_train_pickle,
        ["{t}/src", "{t}/out"],
        1,
        r"toybench_llama_train\.pkl: not a readable pickle: UnpicklingError",
    ),
}


@pytest.mark.parametrize("case", list(CONVERT))
def test_convert_llama(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    _llama_folder(tmp_path / "src")
    prepare, arg_templates, code, pattern = CONVERT[case]
    prepare(tmp_path)
    args = [a.format(t=tmp_path) for a in arg_templates]
    before = snapshot(tmp_path)
    if code == 2:
        with pytest.raises(SystemExit) as info:
            main(["convert-llama", *args])
        assert info.value.code == 2
    else:
        assert main(["convert-llama", *args]) == 1
    err = capsys.readouterr().err
    assert re.search(pattern, err), err
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------- load_llama_cascades pickles
# A case edits the results dict of toybench_llama_test.pkl (3 questions) or writes the file's bytes itself.

RESULTS = "toybench_llama_test\\.pkl"


def at(field: str, model: str, index: int, value: object) -> Callable[[dict], None]:
    return lambda r: r[field][model].__setitem__(index, value)


def tokens(index: int, value: dict) -> Callable[[dict], None]:
    return at("model_tokens", "llama3.1-8b", index, value)


LLAMA_RESULTS: dict[str, tuple[Callable[[dict], object], str]] = {
    "tokens 2**63": (
        tokens(1, {"in": 2**63, "out": 1}),
        rf"{RESULTS}: field 'model_tokens', model 'llama3\.1-8b', index 1, key 'in': {TOK}",
    ),
    "tokens 2**70": (tokens(2, {"in": 5, "out": 2**70}), rf"index 2, key 'out': {TOK}, got 1180591620717411303424"),
    "tokens of 400 digits": (tokens(0, {"in": 10**400, "out": 1}), rf"index 0, key 'in': {TOK}, got 1000000000"),
    "tokens 1e30": (tokens(0, {"in": 1e30, "out": 1}), rf"index 0, key 'in': {TOK}, got 1e\+30"),
    "tokens NaN": (tokens(0, {"in": float("nan"), "out": 1}), rf"index 0, key 'in': {TOK}, got nan"),
    "tokens inf": (tokens(0, {"in": 5, "out": float("inf")}), rf"index 0, key 'out': {TOK}, got inf"),
    "tokens negative numpy": (tokens(0, {"in": np.int64(-4), "out": 1}), rf"index 0, key 'in': {TOK}"),
    "tokens a string": (tokens(0, {"in": "12", "out": 1}), rf"index 0, key 'in': {TOK}, got '12'"),
    "tokens a bool": (tokens(0, {"in": True, "out": 1}), rf"index 0, key 'in': {TOK}, got True"),
    "tokens not a dict": (
        tokens(1, [5, 1]),
        (
            r"field 'model_tokens', model 'llama3\.1-8b', index 1: expected "
            r"\{'in': int, 'out': int\}"
        ),
    ),
    "tokens key missing": (
        tokens(1, {"in": 5}),
        rf"{RESULTS}: field 'model_tokens', model 'llama3\.1-8b', index 1: missing key 'out'",
    ),
    "latency 10**400": (
        at("model_latencies", "llama3.2-1b", 2, 10**400),
        r"field 'model_latencies', model 'llama3\.2-1b', index 2: expected a finite non-negative",
    ),
    "latency inf": (at("model_latencies", "llama3.2-1b", 2, float("inf")), r"index 2: expected a finite non-negative"),
    "latency negative": (at("model_latencies", "llama3.2-1b", 0, -3.0), r"index 0: expected a finite non-negative"),
    "score 10**400": (
        at("model_correctness", "llama3.1-70b", 0, 10**400),
        (
            r"field 'model_correctness', model 'llama3\.1-70b', index 0: expected a bool or a score in "
            r"\[0, 1\]"
        ),
    ),
    "score NaN": (at("model_correctness", "llama3.1-70b", 1, float("nan")), r"index 1: expected a bool or a score"),
    "score a rubric dict": (
        at("model_correctness", "llama3.1-70b", 1, {"coherence": 4, "fluency": 5}),
        r"index 1: expected a bool or a score in \[0, 1\], got \{'coherence': 4",
    ),
    "answer not a string": (
        at("model_answers", "llama3.1-405b", 0, b"A"),
        r"field 'model_answers', model 'llama3\.1-405b', index 0: expected a string, got b'A'",
    ),
    "answer of 200k characters": (
        at("model_answers", "llama3.1-405b", 2, "A" * 200_000),
        (
            r"field 'model_answers', model 'llama3\.1-405b', index 2: 200000 characters, "
            r"expected at most 100000"
        ),
    ),
    "prompt not a string": (
        lambda r: r["user_prompts"].__setitem__(1, None),
        rf"{RESULTS}: field 'user_prompts', index 1: expected a string, got None",
    ),
    "prompts empty": (lambda r: r.update({"user_prompts": []}), rf"{RESULTS}: field 'user_prompts': no questions"),
    "prompts not a list": (
        lambda r: r.update({"user_prompts": "q?"}),
        rf"{RESULTS}: field 'user_prompts': expected a list, got str",
    ),
    "prompts missing": (lambda r: r.pop("user_prompts"), rf"{RESULTS}: missing field 'user_prompts'"),
    "table not a dict": (
        lambda r: r.update({"model_answers": ["A"] * 3}),
        rf"{RESULTS}: field 'model_answers': expected a dict keyed by model, got list",
    ),
    "table misaligned": (
        lambda r: r["model_latencies"]["llama3.1-8b"].append(1.0),
        r"field 'model_latencies', model 'llama3\.1-8b': has 4 entries, expected 3",
    ),
    "model missing": (
        lambda r: r["model_answers"].pop("llama3.2-3b"),
        r"field 'model_answers': no results for model\(s\) \['llama3\.2-3b'\]",
    ),
    "unknown model": (
        lambda r: r["model_tokens"].update({"gpt-4o": []}),
        r"field 'model_tokens': unknown model\(s\) \['gpt-4o'\]",
    ),
}


def _write_results(folder: Path, edit: Callable[[dict], object]) -> None:
    results = _results(3)
    edit(results)
    (folder / "toybench_llama_test.pkl").write_bytes(pickle.dumps(results))


def _pickle_bytes(data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / "toybench_llama_test.pkl").write_bytes(data)


def _questions_file(rows: object) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        _write_results(folder, lambda r: None)
        (folder / "toybench_questions_test.pkl").write_bytes(pickle.dumps(rows))

    return make


def _replace_results(make: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda folder: make(folder / "toybench_llama_test.pkl")


def _beside_valid_results(name: str, data: bytes) -> Callable[[Path], None]:
    """Valid results, plus ``data`` in the file ``name`` of the folder."""

    def make(folder: Path) -> None:
        _write_results(folder, lambda r: None)
        (folder / name).write_bytes(data)

    return make


PWNED = Path(tempfile.gettempdir()) / f"llm-arena-pwned-{os.getpid()}"


LLAMA_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "results a list": (_pickle_bytes(pickle.dumps([_results(3)])), rf"{RESULTS}: expected a pickled dict, got list"),
    "results an array": (
        _pickle_bytes(pickle.dumps(np.arange(3))),
        rf"{RESULTS}: refused to load global 'numpy\.(_)?core\.(multiarray|numeric)\._",
    ),
    "empty file": (_pickle_bytes(b""), rf"{RESULTS}: not a readable pickle: EOFError"),
    "truncated pickle": (
        _pickle_bytes(pickle.dumps(_results(3))[:-40]),
        rf"{RESULTS}: not a readable pickle: (UnpicklingError|EOFError)",
    ),
    "garbage bytes": (_pickle_bytes(b"\x80\x04not a pickle at all"), rf"{RESULTS}: not a readable pickle"),
    "invalid UTF-8 in a string": (
        _pickle_bytes(b"\x80\x02X\x02\x00\x00\x00\xff\xfe."),
        rf"{RESULTS}: not a readable pickle: UnicodeDecodeError",
    ),
    "a gzip file": (
        _pickle_bytes(gzip.compress(pickle.dumps(_results(3)), mtime=0)),
        rf"{RESULTS}: not a readable pickle: UnpicklingError",
    ),
    "code execution": (
        _pickle_bytes(pickle.dumps({"user_prompts": [_Pwn(f"touch {PWNED}")]})),
        rf"{RESULTS}: refused to load global '(posix|os|nt)\.system'",
    ),
    "builtins.eval": (_pickle_bytes(pickle.dumps(eval)), rf"{RESULTS}: refused to load global 'builtins\.eval'"),
    "a directory": (_replace_results(lambda p: p.mkdir()), rf"{RESULTS}: is a directory, expected a file"),
    "a FIFO": (_replace_results(os.mkfifo), rf"{RESULTS}: is not a regular file"),
    "a broken link": (
        _replace_results(lambda p: p.symlink_to("elsewhere.pkl")),
        rf"{RESULTS}: is a broken symbolic link, expected a file",
    ),
    "questions misaligned": (
        _questions_file(_questions(2)),
        r"toybench_questions_test\.pkl: has 2 questions, but toybench_llama_test\.pkl has 3",
    ),
    "questions not dicts": (
        _questions_file(["q0", "q1", "q2"]),
        r"toybench_questions_test\.pkl: index 0: expected a dict, got str",
    ),
    "questions without a question field": (
        _questions_file([{"document": "d", "summary": "s"}] * 3),
        r"toybench_questions_test\.pkl: index 0, missing field 'question'",
    ),
    "questions not a list": (
        _questions_file({"question": "q"}),
        r"toybench_questions_test\.pkl: questions: expected a list, got dict",
    ),
    "questions a broken pickle": (
        _beside_valid_results("toybench_questions_test.pkl", b"\x80\x04\x95\x00"),
        r"toybench_questions_test\.pkl: not a readable pickle",
    ),
    "a file name that names no benchmark": (
        _beside_valid_results("-odd_llama_test.pkl", b""),
        r"a results file name in the folder names benchmark '-odd'; expected",
    ),
    "a known name that is not the published data": (
        _beside_valid_results("mmlu_llama_test.pkl", pickle.dumps(_results(3))),
        r"mmlu_llama_test\.pkl: has 3 questions, the published mmlu test split has 1531",
    ),
}


@pytest.mark.parametrize("case", list(LLAMA_RESULTS) + list(LLAMA_FILES))
def test_load_llama_cascades(tmp_path: Path, case: str) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    if case in LLAMA_RESULTS:
        edit, pattern = LLAMA_RESULTS[case]
        _write_results(folder, edit)
    else:
        make, pattern = LLAMA_FILES[case]
        make(folder)
    before = snapshot(tmp_path)
    with pytest.raises(CacheError) as info:
        load_llama_cascades(folder, splits="test")
    assert re.search(pattern, str(info.value)), str(info.value)
    assert snapshot(tmp_path) == before
    assert not PWNED.exists()
