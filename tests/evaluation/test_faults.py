"""Fault injection for ``evaluate.py --train``: the job (parent and workers) is killed with SIGKILL at random moments,
then run again with the same command until it finishes; its report and learner selection equal an uninterrupted
run's. A learner killed mid-training is resumed from its checkpoint, never reported half-trained. Kills are bounded
in number and time; their moments are drawn from a fixed seed."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import evaluate as evaluate_cli
from envs.config import ConfigError, flags_to_dict, load_config
from evaluation import EvalConfig
from training.grid import train_learners

ROOT = Path(__file__).resolve().parents[2]
FLAGS = (
    "--train --scenario capitals --mechanism first_price --billings per_query --horizons 32 --seeds 2 "
    "--max-seeds 2 --strategies markup --no-levers --train-timesteps 16384 --train-seeds 1 "
    "--train-learners provider_0 --train-chunk 4096 --selection-episodes 2 --workers 1 --no-progress"
).split()


def normalized(out: Path, name: str) -> object:
    """A JSON output of the job with its own directory replaced by a placeholder."""
    return json.loads((out / name).read_text(encoding="utf-8").replace(str(out), "<out>"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    assert evaluate_cli.main([*FLAGS, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_kill9_of_the_whole_job_then_rerun_gives_the_uninterrupted_report(reference, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "evaluate.py"), *FLAGS, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(20261202)
    kills, resumed, start = 0, 0, time.monotonic()
    run = out / "runs" / "first_price-per_query" / "provider_0-s0"
    while kills < 3 and time.monotonic() - start < 200:
        # A new session: the kill takes the parent and its pool workers at once, as a preempted job loses them.
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        # The first kill lands within a second of the learner's start, so mid-training; the later ones anywhere.
        started = run / "config.yaml" if kills == 0 else out / "runs"
        while proc.poll() is None and not started.exists():  # imports first: draw the moment from here
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 1.0 if kills == 0 else 8.0)))
        if proc.poll() is not None:
            assert proc.returncode == 0, proc.stderr.read().decode()
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        resumed += (run / "config.yaml").is_file() and not (run / "summary.json").is_file()
    assert kills >= 1 and resumed >= 1, (kills, resumed)  # at least one learner was killed mid-training
    final = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert normalized(out, "report.json") == normalized(reference, "report.json")
    assert normalized(out / "runs", "selection.json") == normalized(reference / "runs", "selection.json")


def test_a_learner_trained_with_other_settings_is_refused_not_reused(reference, tmp_path):
    out = tmp_path / "out"
    run = reference / "runs" / "first_price-per_query" / "provider_0-s0"
    target = out / "runs" / "first_price-per_query" / "provider_0-s0"
    target.parent.mkdir(parents=True)
    os.symlink(run, target)  # a finished learner, reused as is ...
    cfg = load_config(
        EvalConfig, None, **flags_to_dict(evaluate_cli.parse_args([*FLAGS, "--out", str(out)]), EvalConfig)
    )
    chosen, _ = train_learners(cfg, progress=False)
    assert chosen == {("first_price", "per_query"): [str(target)]}
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*"))
    refused = r"config.yaml: this learner was trained with other settings \(.*timesteps: 16384, now 4096"
    with pytest.raises(ConfigError, match=refused):
        train_learners(dataclasses.replace(cfg, train_timesteps=4096), progress=False)  # ... unless it differs
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*")) == before
