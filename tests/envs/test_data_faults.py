"""Fault injection: cache builds killed with SIGKILL at chosen points, and torn writes left on disk.

Every build here answers with :class:`tests.envs.build_entry.ScriptedBackend` under a frozen clock, so an interrupted
and resumed build can be compared byte for byte with an uninterrupted one. The scenario: ``OUT`` holds a valid cache
of 4 countries x 2 models (and its journal); the same command then asks for 10 countries. After each fault:

- ``OUT`` is a complete, loadable cache: the previous one, or (only once the swap happened) the new one;
- every reply journaled before the fault is still in the journal (nothing lost);
- rerunning the same command completes, asks only for what the journal lacks, leaves no staging directory, and
  writes files byte-identical to an uninterrupted build (whose date fields are frozen like everything else).

Kills (``test_a_killed_build``) run the real CLI in a subprocess (``python -m tests.envs.build_entry``) and kill it
at an event drawn from a fixed seed: after the k-th reply (before journaling), after the k-th fsync (journal lines,
staged files, directories), just before and just after the atomic exchange. Torn writes (``test_a_torn_write``)
are made by hand in-process: a journal cut mid-line, garbage and impossible records in it, a truncated cache file,
half-written staging directories and temporaries, a stale other form of a table.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

from envs.data import build as build_module
from envs.data.build import JOURNAL_NAME, CapitalsTask, ModelRun, build_cache
from envs.data.cache import CacheError, load_cache
from tests.envs.build_entry import FROZEN_NOW, ScriptedBackend

pytest.importorskip("countryinfo", reason="the capitals task needs countryinfo (a test dependency)")

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = ["ARG", "FRA", "JPN", "KEN"]
NEW = PREVIOUS + ["BRA", "DEU", "IND", "MEX", "NZL", "EGY"]
MODEL_IDS = ("scripted/alpha", "scripted/beta")
NAMES = ("alpha", "beta")
CACHE_FILES = ("meta.json", "queries.csv.gz", "responses.csv.gz")
SEED = 20250612
STOP_TIMEOUT_S = 30.0


def command(out: Path, queries: list[str]) -> list[str]:
    models = [arg for m in MODEL_IDS for arg in ("--model", m)]
    return ["--backend", "openai", *models, "--out", str(out), "--queries", ",".join(queries), "--no-progress"]


def entry(args: list[str]) -> subprocess.CompletedProcess:
    """One uninterrupted scripted build through the CLI, in a subprocess."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.envs.build_entry", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def cache_files(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in CACHE_FILES}


def result_keys(out: Path) -> list[str]:
    """Distinct keys of the complete, valid result records of the journal: what a rerun must not ask again. Read
    without the builder's Journal, which would take its lock and trim a torn last line."""
    keys = []
    for line in (out / JOURNAL_NAME).read_bytes().split(b"\n")[:-1]:  # the part after the last newline is torn
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(record, dict)
            and record.get("type") == "result"
            and isinstance(record.get("key"), str)
            and build_module.reply_problem(
                record.get("text"), record.get("input_tokens"), record.get("output_tokens"), record.get("latency_ms")
            )
            is None
        ):
            keys.append(record["key"])
    return list(dict.fromkeys(keys))


def generated(stdout: str) -> int:
    """Replies a build asked for, from its summary lines ("alpha: 3 generated, 7 resumed ...")."""
    return sum(
        int(line.split(": ", 1)[1].split(" generated")[0])
        for line in stdout.splitlines()
        if line.split(":")[0] in NAMES and " generated" in line
    )


@dataclass
class States:
    """The previous cache (with its journal), the final files of an uninterrupted build, and its event counts."""

    previous: Path
    previous_files: dict[str, bytes]
    final_files: dict[str, bytes]
    events: dict[str, int]


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> States:
    root = tmp_path_factory.mktemp("states")
    previous = root / "previous" / "cache"
    entry(command(previous, PREVIOUS))
    reference = root / "reference" / "cache"
    shutil.copytree(previous.parent, reference.parent, symlinks=True)
    done = entry(command(reference, NEW))
    events = dict(item.split("=") for item in done.stdout.split("EVENTS ", 1)[1].split())
    fresh = root / "fresh" / "cache"
    entry(command(fresh, NEW))  # from scratch: the same bytes as after resuming from the previous journal
    assert cache_files(fresh) == cache_files(reference)
    assert json.loads((reference / "meta.json").read_text())["build"]["date"] == FROZEN_NOW
    counts = {k: int(v) for k, v in events.items()}
    assert counts == {"reply": 12, "fsync": 17, "exchange": 1, "swapped": 1}  # what kill_plan draws from
    return States(
        previous=previous, previous_files=cache_files(previous), final_files=cache_files(reference), events=counts
    )


def kill_plan() -> list[tuple[str, int]]:
    """Nine kill points drawn from a fixed seed: three replies, two journal fsyncs, two write-phase fsyncs, the
    exchange and just after it.

    12 replies are asked (6 countries x 2 models); each is journaled with one fsync (1-12), then the write stages 3
    files and the staging directory (fsyncs 13-16), swaps, and fsyncs the parent directory (17). The ``states``
    fixture checks these counts against an uninterrupted run.
    """
    rng = random.Random(SEED)
    plan = [("reply", k) for k in sorted(rng.sample(range(1, 13), 3))]
    plan += [("fsync", k) for k in sorted(rng.sample(range(1, 13), 2))]
    plan += [("fsync", k) for k in sorted(rng.sample(range(13, 18), 2))]
    return plan + [("exchange", 1), ("swapped", 1)]


def journaled_before(event: str, k: int) -> int:
    """New replies that must be in the journal when the build is killed at (event, k)."""
    if event == "reply":
        return k - 1  # the k-th reply was produced but not yet journaled
    if event == "fsync":
        return min(k, 12)
    return 12


def swapped_before(event: str, k: int) -> bool:
    """Whether the kill point is after the atomic exchange (only the parent directory's fsync and the cleanup)."""
    return event == "swapped" or (event == "fsync" and k == 17)


def run_until(args: list[str]) -> tuple[subprocess.Popen, str]:
    """Start the build and wait until it says it stopped at its kill point (a watchdog kills it after
    ``STOP_TIMEOUT_S`` if it never does)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.envs.build_entry", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(STOP_TIMEOUT_S, process.kill)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("STOPPED "):
                return process, line.strip()
    finally:
        watchdog.cancel()
    _, err = process.communicate()
    raise AssertionError(f"the build never reached its kill point: {''.join(lines)}{err}")


@pytest.mark.parametrize("event, k", kill_plan(), ids=[f"{e}-{k}" for e, k in kill_plan()])
def test_a_killed_build(states: States, tmp_path: Path, event: str, k: int) -> None:
    out = tmp_path / "cache"
    shutil.copytree(states.previous, out, symlinks=True)
    args = command(out, NEW)

    process, said = run_until(["--stop-at", f"{event}:{k}", *args])
    assert said == f"STOPPED {event} {k}"
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL

    expected = states.final_files if swapped_before(event, k) else states.previous_files
    assert cache_files(out) == expected
    load_cache(out, required_models=NAMES)
    kept = result_keys(out)
    assert len(kept) == 2 * len(PREVIOUS) + journaled_before(event, k)  # nothing journaled was lost

    rerun = entry(args)
    assert generated(rerun.stdout) == 2 * len(NEW) - len(kept)  # only what the journal lacked was asked
    assert cache_files(out) == states.final_files
    assert sorted(os.listdir(tmp_path)) == ["cache"]  # no staging directory left behind
    assert sorted(os.listdir(out)) == [JOURNAL_NAME, *CACHE_FILES]


# ------------------------------------------------------------------------------------------------------ torn writes


class _Capitals(CapitalsTask):
    """The capitals task with its 196 countries read once per module (countryinfo takes ~0.4 s)."""

    _rows: ClassVar[list[dict]] = []

    def queries(self) -> list[dict]:
        if not _Capitals._rows:
            _Capitals._rows = super().queries()
        return [dict(q) for q in _Capitals._rows]


def build(out: Path, queries: list[str]) -> build_module.BuildReport:
    runs = [ModelRun(name, ScriptedBackend(model_id)) for name, model_id in zip(NAMES, MODEL_IDS)]
    return build_cache(_Capitals(), runs, out, query_ids=queries, progress=False)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_module, "_now", lambda: FROZEN_NOW)


def cut_journal_mid_line(line: int) -> Callable[[Path], None]:
    """Truncate the journal in the middle of its ``line``-th line (1-based), as a crash mid-append leaves it."""

    def tear(out: Path) -> None:
        data = (out / JOURNAL_NAME).read_bytes()
        starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")]
        (out / JOURNAL_NAME).write_bytes(data[: starts[line - 1] + (starts[line] - starts[line - 1]) // 2])

    return tear


def truncate(name: str) -> Callable[[Path], None]:
    def tear(out: Path) -> None:
        data = (out / name).read_bytes()
        (out / name).write_bytes(data[: len(data) // 2])

    return tear


def half_staging(out: Path) -> None:
    """A staging directory of a writer killed while writing its files."""
    staging = out.parent / f".{out.name}.tmp-0123abcd"
    staging.mkdir()
    (staging / "meta.json").write_bytes((out / "meta.json").read_bytes()[:100])
    (staging / "responses.csv.gz").write_bytes((out / "responses.csv.gz").read_bytes()[:50])


def old_writer_temporaries(out: Path) -> None:
    """What the previous writer, which renamed file by file, left when killed between two renames."""
    (out / ".responses.csv.gz.tmp").write_bytes((out / "responses.csv.gz").read_bytes()[:40])
    (out / ".meta.json.tmp").write_text('{"name": "half')


def stale_plain_table(out: Path) -> None:
    """An uncompressed responses.csv from an older cache, next to the current responses.csv.gz."""
    (out / "responses.csv").write_text("query_id,model,score,input_tokens,output_tokens\nARG,alpha,0,1,1\n")


def garbage_in_journal(out: Path) -> None:
    """A line of garbage and an impossible result record in the middle of the journal."""
    lines = (out / JOURNAL_NAME).read_text().splitlines(keepends=True)
    bad = json.loads(lines[2])
    bad["output_tokens"] = -7
    lines[3:3] = ["\x00\x00 not json\n", json.dumps(bad) + "\n"]
    (out / JOURNAL_NAME).write_text("".join(lines))


def both(*tears: Callable[[Path], None]) -> Callable[[Path], None]:
    def tear(out: Path) -> None:
        for t in tears:
            t(out)

    return tear


# (tear, pattern of the load error of OUT afterwards; None: OUT must still be the previous cache, loadable)
TORN: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "journal cut mid-line": (cut_journal_mid_line(6), None),
    "journal cut in its first line": (cut_journal_mid_line(1), None),
    "journal with garbage and an impossible record": (garbage_in_journal, None),
    "half-written staging directory": (half_staging, None),
    "old writer's temporaries": (old_writer_temporaries, None),
    "responses.csv.gz truncated": (
        truncate("responses.csv.gz"),
        r"responses\.csv\.gz: cannot read as a gzip file \(truncated or corrupt\?\)",
    ),
    "meta.json truncated": (truncate("meta.json"), r"meta\.json: not valid JSON"),
    "stale plain responses.csv": (stale_plain_table, r"holds both responses\.csv and responses\.csv\.gz"),
    "journal and cache torn together": (
        both(cut_journal_mid_line(3), truncate("queries.csv.gz"), half_staging),
        r"queries\.csv\.gz: cannot read as a gzip file",
    ),
}


@pytest.fixture(scope="module")
def torn_states(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bytes]]]:
    """The previous cache and the files of an uninterrupted build, built in-process with the frozen clock."""
    root = tmp_path_factory.mktemp("torn")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(build_module, "_now", lambda: FROZEN_NOW)
        assert build(root / "previous" / "cache", PREVIOUS).written
        assert build(root / "reference" / "cache", NEW).written
    return root / "previous" / "cache", cache_files(root / "reference" / "cache")


@pytest.mark.parametrize("case", list(TORN))
def test_a_torn_write(torn_states, tmp_path: Path, frozen_clock: None, case: str) -> None:
    previous, final = torn_states
    tear, error = TORN[case]
    out = tmp_path / "cache"
    shutil.copytree(previous, out, symlinks=True)
    before = cache_files(previous)
    tear(out)
    if error is None:
        assert cache_files(out) == before
        load_cache(out, required_models=NAMES)
    else:
        with pytest.raises(CacheError, match=error):
            load_cache(out)
    kept = result_keys(out)

    report = build(out, NEW)
    assert report.ok and report.written, report.summary()
    assert sum(report.generated.values()) == 2 * len(NEW) - len(kept)
    assert cache_files(out) == final
    assert sorted(os.listdir(tmp_path)) == ["cache"]
    assert sorted(os.listdir(out)) == [JOURNAL_NAME, *CACHE_FILES]
    assert len(result_keys(out)) == 2 * len(NEW)
