"""The backends of :mod:`evaluation.parallel`: the process pool's workers die with a parent killed by SIGKILL, one
pool serves every phase within ``shared_pool``, the backend flags are checked, and ``--backend ray`` without Ray
says how to install it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evaluate as evaluate_cli
from envs.config import ConfigError
from evaluation import EvalConfig
from evaluation.parallel import ProcessBackend, shared_pool

ROOT = Path(__file__).resolve().parents[2]

# A parent that maps two sleeping jobs over a pool of two workers; each job writes its worker's pid to a file.
PARENT = """
import os, sys, time
from pathlib import Path

from evaluation.parallel import process_pool


def job(k):
    Path(sys.argv[1], f"{os.getpid()}.pid").write_text("")
    time.sleep(120)


if __name__ == "__main__":
    with process_pool(2) as pool:
        list(pool.map(job, range(2)))
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie no longer runs)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads process states from /proc (Linux)")
def test_pool_workers_exit_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    parent = subprocess.Popen(
        [sys.executable, str(script), str(pids_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 90  # two fresh interpreters import torch on a busy 2-core machine
        while len(pids) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            pids = [int(p.stem) for p in pids_dir.glob("*.pid")]
        assert len(pids) == 2, f"the workers did not start (parent exit code {parent.poll()})"
        assert all(_alive(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids), "pool workers outlived their killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_process_backend_runs_one_worker_or_one_job_inline():
    assert ProcessBackend(1).map(abs, [-3, 1, -2], desc="abs", progress=False) == [3, 1, 2]
    assert ProcessBackend(2).map(abs, [-1], desc="abs", progress=False) == [1]
    assert ProcessBackend(2, inline=False).map(abs, [], desc="abs", progress=False) == []


def _worker_pid(_: int) -> int:
    time.sleep(0.2)  # long enough that both workers take a job
    return os.getpid()


def test_the_phases_of_an_evaluation_share_one_pool():
    backend = ProcessBackend(2, inline=False)
    with shared_pool(2):
        first = set(backend.map(_worker_pid, range(4), desc="pid", progress=False))
        second = set(backend.map(_worker_pid, range(4), desc="pid", progress=False))
        assert first == second and len(first) == 2 and os.getpid() not in first
        assert set(ProcessBackend(2).map(_worker_pid, range(4), desc="pid", progress=False)) == first
    alone = set(backend.map(_worker_pid, range(4), desc="pid", progress=False))  # outside the block: a fresh pool
    assert not alone & first


def test_backend_fields_are_checked():
    with pytest.raises(ConfigError, match="field 'backend'"):
        EvalConfig(backend="dask")
    with pytest.raises(ConfigError, match=r"field 'address'.*--backend ray"):
        EvalConfig(address="auto")
    with pytest.raises(ConfigError, match="field 'address'"):
        EvalConfig(backend="ray", address=" ")


def test_address_without_ray_and_an_unknown_backend_are_usage_errors(capsys):
    assert evaluate_cli.main(["--address", "auto", "--no-progress"]) == 2
    assert "field 'address'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        evaluate_cli.main(["--backend", "dask"])
    assert "--backend" in capsys.readouterr().err


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails as if it were not installed
    assert (
        evaluate_cli.main(
            [
                "--scenario",
                "uniform",
                "--mechanism",
                "first_price",
                "--billings",
                "per_query",
                "--horizons",
                "8",
                "--seeds",
                "2",
                "--max-seeds",
                "2",
                "--strategies",
                "markup",
                "--backend",
                "ray",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "pip install -e '.[ray]'" in capsys.readouterr().err
