"""Fault injection for training: kill -9 at random moments and torn checkpoints, then --resume: the finished run is
bitwise identical to an uninterrupted one (weights, summary) and keeps one whole history (progress.csv). Kills are
bounded in number and time; their moments are drawn from a fixed seed."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.learned import load_weights
from training import TrainConfig, train
from training.checkpoint import checkpoints
from training.trainer import make_market, policy_kwargs

ROOT = Path(__file__).resolve().parents[2]
CONFIG = dict(
    scenario="capitals",
    mechanism="ucb_myerson",
    timesteps=4096,
    n_envs=16,
    n_steps=16,
    batch_size=128,
    n_epochs=2,
    eval_every=768,
    eval_episodes=2,
    checkpoint_every=256,
    target=None,
)


def weights(run: Path) -> dict[str, torch.Tensor]:
    cfg = TrainConfig(**{**CONFIG, "run_dir": str(run)})
    market = make_market(cfg)
    model = load_weights(
        run / "policies" / "provider_0.zip",
        "ppo",
        market.observation_space("provider_0"),
        market.action_space("provider_0"),
        policy_kwargs(cfg),
    )
    return model.policy.state_dict()


def history(run: Path) -> list[dict[str, str]]:
    """progress.csv without the wall-clock columns."""
    with open(run / "tb" / "provider_0" / "progress.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in csv.DictReader(fh)]


def assert_same_run(reference: Path, run: Path) -> None:
    a, b = weights(reference), weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "weights differ"
    assert json.loads((run / "summary.json").read_text()) == json.loads((reference / "summary.json").read_text())
    assert history(run) == history(reference)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("reference") / "run"
    train(TrainConfig(**CONFIG, run_dir=str(run)), progress=False)
    return run


def cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train.py"), *args, "--no-progress"]


def test_kill9_at_random_moments_then_resume_is_bitwise_identical(reference, tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "run_dir": str(run)}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = np.random.default_rng(20261202)
    kills, start = 0, time.monotonic()
    first, again = cli("--config", str(config)), cli("--resume", "--run-dir", str(run))
    while kills < 4 and time.monotonic() - start < 150:
        args = again if (run / "config.yaml").exists() else first  # a kill before the run started: start it again
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Imports take seconds (more on a loaded machine): the moment is drawn once the run has started writing.
        while proc.poll() is None and not (run / "config.yaml").exists():
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 5.0)))
        if proc.poll() is not None:
            break  # it finished before the kill: the rest is the plain resume path
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    args = again if (run / "config.yaml").exists() else first
    final = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-2000:]
    assert kills >= 1, "no kill landed: the run finished too fast to test a fault"
    assert_same_run(reference, run)


def test_a_torn_checkpoint_falls_back_to_the_one_before(reference, tmp_path, monkeypatch):
    run = tmp_path / "run"
    from training import callbacks

    calls = {"n": 0}
    original = callbacks.MarketLogger._on_step

    def interrupt(self):
        calls["n"] += 1
        if calls["n"] == 150:  # 150 vec steps of 16 markets: after the 2048-step checkpoint
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(callbacks.MarketLogger, "_on_step", interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(**CONFIG, run_dir=str(run)), progress=False)
    monkeypatch.setattr(callbacks.MarketLogger, "_on_step", original)
    saved = checkpoints(run / "checkpoints", "provider_0")
    assert [s for s, _ in saved] == [2304, 2048]  # the newest two are kept
    newest = saved[0][1]
    (newest / "model.zip").write_bytes((newest / "model.zip").read_bytes()[:1000])  # a torn write
    with pytest.warns(UserWarning, match="cannot load the checkpoint"):
        train(TrainConfig(run_dir=str(run)), resume=True, progress=False)
    assert_same_run(reference, run)


def test_no_partial_checkpoint_or_file_is_ever_visible(tmp_path):
    """Checkpoints are built in a hidden directory and renamed whole; run files are replaced, never rewritten."""
    run = tmp_path / "run"
    train(TrainConfig(**{**CONFIG, "timesteps": 512}, run_dir=str(run)), progress=False)
    names = [p.name for p in (run / "checkpoints").iterdir()]
    assert not [n for n in names if n.startswith(".")], names  # no leftover temporary directory
    for _, path in checkpoints(run / "checkpoints", "provider_0"):
        assert {p.name for p in path.iterdir()} == {"model.zip", "state.npz", "state.json"}
    assert not list(run.rglob(".*.tmp"))


def test_resume_refuses_an_edited_or_unknown_config(tmp_path, capsys):
    import train as train_cli

    run = tmp_path / "run"
    train(TrainConfig(**{**CONFIG, "timesteps": 512}, run_dir=str(run)), progress=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**saved, "n_envs": 32}))
    assert train_cli.main(["--resume", "--run-dir", str(run), "--no-progress"]) == 2
    assert "['n_envs'] changed since the run started" in capsys.readouterr().err
    (run / "config.yaml").write_text(yaml.safe_dump({**saved, "timestep": 9}))
    assert train_cli.main(["--resume", "--run-dir", str(run), "--no-progress"]) == 2
    assert "unknown key(s) ['timestep']" in capsys.readouterr().err
    (run / "config.yaml").write_text(yaml.safe_dump({**saved, "timesteps": 768}))  # going further is allowed
    assert train_cli.main(["--resume", "--run-dir", str(run), "--no-progress"]) == 0
    assert json.loads((run / "summary.json").read_text())["provider_0"]["steps"] == 768
    assert train_cli.main(["--resume", "--run-dir", str(run), "--timesteps", "99", "--no-progress"]) == 2
    assert "--resume continues the run with the config it started with" in capsys.readouterr().err
