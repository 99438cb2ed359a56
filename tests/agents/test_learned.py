"""The learned policy's numpy actor is SB3's deterministic action, and follows the model while it trains."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC

from agents.learned import LearnedPolicy
from training import TrainConfig
from training.trainer import make_market, opponent_policies
from training.vec_env import MarketVecEnv


def _vec_env() -> MarketVecEnv:
    cfg = TrainConfig(n_envs=8)
    market = make_market(cfg, cfg.n_envs)
    fixed = opponent_policies(cfg.opponents, market, market.possible_agents[1:], cfg.seed)
    return MarketVecEnv(market, ["provider_0"], fixed, seed=cfg.seed)


def _observations(env: MarketVecEnv, n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-3, 3, size=(n, *env.observation_space.shape)).astype(np.float32)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_numpy_actor_is_sb3s_deterministic_action(activation):
    import torch

    env = _vec_env()
    fn = {"tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}[activation]
    model = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [32, 16], "activation_fn": fn}, n_steps=8, seed=3)
    with torch.no_grad():  # weights large enough that some actions clip at the bounds
        model.policy.action_net.weight.normal_(0.0, 3.0)
    policy = LearnedPolicy(model)
    assert policy._layers, "a plain PPO MLP actor takes the numpy path"
    obs = _observations(env)
    expected, _ = model.predict(obs, deterministic=True)
    got = policy.act(obs)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, np.clip(expected, -1, 1), atol=1e-5)
    assert (np.abs(got) == 1.0).any() and (np.abs(got) < 1.0).any()
    np.testing.assert_allclose(policy.act(obs[0]), got[0], atol=1e-6)  # one observation [D] as well


def test_the_numpy_actor_follows_the_model_while_it_trains():
    env = _vec_env()
    model = PPO("MlpPolicy", env, n_steps=8, batch_size=64, seed=1, learning_rate=1e-2)
    policy = LearnedPolicy(model)
    obs = _observations(env)
    before = policy.act(obs)
    model.learn(total_timesteps=64)
    after = policy.act(obs)
    expected, _ = model.predict(obs, deterministic=True)
    assert not np.allclose(before, after), "training moved the policy"
    np.testing.assert_allclose(after, np.clip(expected, -1, 1), atol=1e-5)


def test_other_models_act_through_sb3():
    env = _vec_env()
    model = SAC("MlpPolicy", env, buffer_size=10, learning_starts=0, seed=0)
    policy = LearnedPolicy(model)
    assert policy._layers == []
    obs = _observations(env, 8)
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-6)
