"""Simultaneous learning: PPO learners in lockstep, tabular Q-learners through train.py, and loading both back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import train as train_cli
from agents.learned import load_policies
from agents.qlearning import QLearningPolicy
from envs.config import ConfigError
from evaluation.profiles import learned_profiles
from training.simultaneous import simultaneous_ppo
from training.trainer import TrainConfig, make_market, train


def test_ppo_learners_step_the_same_markets_in_lockstep():
    cfg = TrainConfig(
        scenario="capitals",
        mechanism="first_price",
        overrides={"horizon": 1000},
        timesteps=2 * 16 * 8,
        n_envs=8,
        n_steps=16,
        batch_size=64,
        n_epochs=1,
    )
    models = simultaneous_ppo(cfg, progress=False)
    assert sorted(models) == ["provider_0", "provider_1"]
    r0 = models["provider_0"].rollout_buffer.rewards  # [n_steps, n_envs]: the last rollout of each learner
    r1 = models["provider_1"].rollout_buffer.rewards
    assert r0.shape == r1.shape == (16, 8)
    # The same rounds of the same markets: at most one provider wins (earns) in each (round, market), and both
    # learners' buffers hold those rounds.
    assert not np.any((r0 != 0) & (r1 != 0))
    assert np.count_nonzero(r0) + np.count_nonzero(r1) > 0
    assert all(m.num_timesteps == 2 * 16 * 8 and m._n_updates > 0 for m in models.values())


def test_simultaneous_ppo_run_dir_loads_back(tmp_path):
    cfg = TrainConfig(
        scenario="capitals",
        mechanism="second_price",
        mode="simultaneous",
        learners=["all"],
        timesteps=512,
        n_envs=16,
        n_steps=16,
        batch_size=128,
        n_epochs=1,
        eval_episodes=2,
        run_dir=str(tmp_path / "sim"),
    )
    result = train(cfg, progress=False)
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["mode"] == "simultaneous" and manifest["algo"] == "ppo"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert {"provider_0", "provider_1", "joint"} <= set(summary)
    market = make_market(cfg)
    loaded = load_policies(result.run_dir, market)
    obs = market.reset([3])[0]
    for i, (agent, policy) in enumerate(loaded.items()):
        np.testing.assert_array_equal(policy.act(obs[i]), result.policies[agent].act(obs[i]))
    # a joint profile: everyone plays its learned policy
    (profile,) = learned_profiles(result.run_dir, market, levers=False)
    assert sorted(profile.deviators) == ["provider_0", "provider_1"]
    with pytest.raises(ConfigError, match="not checkpointed"):
        train(cfg, resume=True, progress=False)


def test_qlearning_through_the_cli(tmp_path, capsys):
    run = tmp_path / "q"
    code = train_cli.main(
        [
            "--mode",
            "simultaneous",
            "--algo",
            "qlearning",
            "--learners",
            "all",
            "--scenario",
            "uniform",
            "--mechanism",
            "first_price",
            "--set",
            "cost_low=0",
            "--set",
            "cost_high=0",
            "--timesteps",
            "3000",
            "--n-envs",
            "4",
            "--eval-episodes",
            "2",
            "--run-dir",
            str(run),
            "--no-progress",
        ]
    )
    assert code == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["algo"] == "qlearning" and manifest["qlearning"]["alpha"] == 0.05
    cfg = TrainConfig(scenario="uniform", mechanism="first_price", overrides={"cost_low": 0, "cost_high": 0})
    market = make_market(cfg, 4)
    loaded = load_policies(run, market)
    obs = market.reset([0, 1, 2, 3])
    for i, (agent, policy) in enumerate(loaded.items()):
        assert isinstance(policy, QLearningPolicy) and not policy.learning
        with np.load(run / "policies" / f"{agent}.npz") as data:
            greedy = data["grid"][data["tables"].argmax(axis=1)]
        np.testing.assert_allclose(policy.act(obs[:, i])[:, 0], greedy, atol=1e-6)  # cost 0: a[0] is the ask


def test_qlearning_needs_simultaneous_mode():
    with pytest.raises(ConfigError, match="simultaneous"):
        TrainConfig(algo="qlearning")
    with pytest.raises(ConfigError):
        TrainConfig(algo="sac", mode="simultaneous")
