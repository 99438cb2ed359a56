"""The single-agent Gymnasium view: Gymnasium's and SB3's env checkers on every scenario x mechanism, the opponent
specs of train.py's --opponents, seeding, clear errors, and PPO learning to bid above cost through it."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import ecosystem
from agents import make_strategy
from agents.learned import make_manifest
from ecosystem import ENV_ID, SingleAgentMarket, gymnasium_id
from envs import ConfigError, parallel_env

# The market's observations are unbounded by design and it renders text: Gymnasium's checker warns about both (and
# about envs checked without a spec, or wrapped, which this file does on purpose).
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(infinity|render fps|different from the unwrapped|alternative render modes).*:UserWarning"
)


@pytest.fixture
def one_thread():
    """Tiny networks train faster on one thread, above all on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gymnasium_and_sb3_checkers_pass(mechanism_name, scenario_name, scenario_overrides):
    kwargs = dict(scenario=scenario_name, mechanism=mechanism_name, horizon=12, **scenario_overrides)
    check_env(SingleAgentMarket(**kwargs))
    made = gymnasium.make(ENV_ID, **kwargs)  # with a spec: the checker also builds every render mode
    check_env(made.unwrapped)
    sb3_check_env(SingleAgentMarket(**kwargs), warn=False)
    assert isinstance(made.unwrapped, SingleAgentMarket) and made.spec.id == "LLMMarket-v1"


def test_gymnasium_id_follows_the_pettingzoo_version():
    assert gymnasium_id("llm_market_v1") == "LLMMarket-v1" and gymnasium_id("llm_market_v12") == "LLMMarket-v12"
    assert gymnasium_id(parallel_env("uniform").metadata["name"]) == ecosystem.ENV_ID
    with pytest.raises(ValueError, match="_v<version>"):
        gymnasium_id("llm_market")
    env = gymnasium.make("ecosystem:LLMMarket-v1", scenario="uniform", n_providers=3, max_cycles=5)
    env.reset(seed=0)
    steps = 0
    truncated = False
    while not truncated:
        _, _, terminated, truncated, _ = env.step(np.zeros(3, dtype=np.float32))
        assert not terminated
        steps += 1
    assert steps == 5


def test_the_learner_plays_against_the_opponents_in_the_pettingzoo_market():
    """Each step is one round of the PettingZoo market with the opponents' policies on their own observations."""
    single = SingleAgentMarket(
        "uniform", "first_price", learner=1, opponents="markup", n_providers=3, seed=2, horizon=30
    )
    market = parallel_env("uniform", "first_price", n_providers=3, seed=2, horizon=30)
    markup = make_strategy("markup", market.layout)
    obs, _ = single.reset(seed=9)
    all_obs, _ = market.reset(seed=9)
    assert single.learner == "provider_1" and sorted(single.opponents) == ["provider_0", "provider_2"]
    rng = np.random.default_rng(0)
    for _ in range(30):
        np.testing.assert_array_equal(obs, all_obs["provider_1"])
        action = rng.uniform(-1, 1, 3).astype(np.float32)
        joint = {a: markup.act(o) for a, o in all_obs.items()}
        joint["provider_1"] = action
        obs, reward, terminated, truncated, info = single.step(action)
        all_obs, rewards, _, truncations, infos = market.step(joint)
        assert reward == rewards["provider_1"] and info == infos["provider_1"]
        assert truncated == truncations["provider_1"] and not terminated
    assert truncated
    with pytest.raises(RuntimeError, match="finished episode"):
        single.step(np.zeros(3))


def test_opponent_specs(tmp_path):
    kw = dict(scenario="uniform", mechanism="second_price", n_providers=3, horizon=5)
    by_pairs = SingleAgentMarket(**kw, opponents="provider_1=bne,provider_2=random")
    assert set(by_pairs.opponents) == {"provider_1", "provider_2"}
    assert by_pairs.opponents["provider_1"].name == "bne" and by_pairs.opponents["provider_2"].name == "random"
    assert SingleAgentMarket(**kw, opponents="provider_0=markup,provider_1=bne,provider_2=bne").learner == "provider_0"
    policy = make_strategy("truthful", by_pairs.layout)
    assert (
        SingleAgentMarket(**kw, opponents={"provider_1": policy, "provider_2": "markup"}).opponents["provider_1"]
        is policy
    )

    # A train.py run dir: the opponents act with its saved policy (weights only, checked against the market).
    run = tmp_path / "run"
    (run / "policies").mkdir(parents=True)
    market = parallel_env(kw["scenario"], kw["mechanism"], n_providers=3, horizon=5)
    model = PPO("MlpPolicy", SingleAgentMarket(**kw), policy_kwargs={"net_arch": [8]}, device="cpu", seed=0)
    model.save(run / "policies" / "provider_2.zip")
    manifest = make_manifest(
        market,
        kw["mechanism"],
        "ppo",
        "best-response",
        {"provider_2": "provider_2.zip"},
        {"policy_kwargs": {"net_arch": [8]}},
    )
    (run / "manifest.json").write_text(json.dumps(manifest))
    env = SingleAgentMarket(**kw, opponents=f"provider_1=truthful,provider_2={run}")
    env.reset(seed=0)
    expected, _ = model.predict(env._obs["provider_2"], deterministic=True)
    acted = env.opponents["provider_2"].act(env._obs["provider_2"])
    np.testing.assert_allclose(acted, np.clip(expected, -1, 1), atol=1e-6)  # numpy's float32 sums vs torch's

    with pytest.raises(ConfigError, match="no strategy given for provider_2"):
        SingleAgentMarket(**kw, opponents="provider_1=bne")
    with pytest.raises(ConfigError, match=r"unknown agent\(s\) \['provider_7'\]"):
        SingleAgentMarket(**kw, opponents="provider_1=bne,provider_2=bne,provider_7=bne")
    with pytest.raises(ConfigError, match=r"'greedy' is neither a strategy .* nor a run dir"):
        SingleAgentMarket(**kw, opponents="greedy")
    with pytest.raises(ConfigError, match="not an agent=spec pair"):
        SingleAgentMarket(**kw, opponents="provider_1=bne,provider_2")
    with pytest.raises(ValueError, match="unknown learner 'provider_3'"):
        SingleAgentMarket(**kw, learner="provider_3")
    with pytest.raises(ValueError, match="learner index 3 out of range"):
        SingleAgentMarket(**kw, learner=3)
    with pytest.raises(ConfigError, match="neither a scenario field nor a parameter"):
        SingleAgentMarket(**kw, bogus=1)
    with pytest.raises(ValueError, match="provider_0: action must have shape"):
        env.step(np.zeros(4))


def test_seeded_episodes_reproduce_random_opponents():
    def episode(env: SingleAgentMarket, seed: int | None) -> list[float]:
        env.reset(seed=seed)
        out, done = [], False
        while not done:
            _, _, _, done, info = env.step(np.zeros(3, dtype=np.float32))
            out.append(info["market"]["payment"])
        return out

    kw = dict(scenario="uniform", mechanism="first_price", opponents="random", n_providers=3, horizon=20)
    a, b = SingleAgentMarket(**kw), SingleAgentMarket(**kw)
    first = episode(a, 11)
    episode(b, 3)  # whatever ran before
    assert episode(b, 11) == first
    assert episode(a, None) != first  # reset() goes on with the streams


def test_ppo_learns_to_bid_above_cost_against_truthful_rivals(one_thread):
    """The README's example, shorter: first price on `uniform` against a truthful rival, whose best response is to
    ask (1 + c) / 2 > c. A few thousand PPO steps move the learner's bid measurably above its cost and earn it a
    profit where honest play earns none."""
    env = gymnasium.make(ENV_ID, scenario="uniform", mechanism="first_price", opponents="truthful", n_providers=2)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=512,
        batch_size=128,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.0,
        policy_kwargs={"log_std_init": -1.0},
        seed=0,
        device="cpu",
    ).learn(3072)

    def evaluate(act) -> tuple[float, float]:
        obs, _ = env.reset(seed=1234)
        markups, profit, truncated = [], 0.0, False
        while not truncated:
            obs, reward, _, truncated, info = env.step(act(obs))
            markups.append(info["bid"] - info["honest_bid"])
            profit += reward
        return float(np.mean(markups)), profit

    markup, profit = evaluate(lambda obs: model.predict(obs, deterministic=True)[0])
    honest_markup, honest_profit = evaluate(lambda obs: np.zeros(3, dtype=np.float32))
    assert honest_markup == 0 and abs(honest_profit) < 1e-9  # first price, truthful asks: paid exactly the cost
    assert 0.1 < markup < 0.8, markup  # above cost, not priced out of the market
    assert profit > 8.0, profit  # of 256 rounds: the best response earns 256 / 12 = 21.3 in expectation


def test_opponent_spec_parsing():
    from agents.spec import parse_spec

    agents = ["provider_1", "provider_2"]
    known = ["provider_0", *agents]
    assert parse_spec("bne", agents) == {"provider_1": "bne", "provider_2": "bne"}
    assert parse_spec(" provider_2 = runs/x , provider_1=markup,provider_0=bne", agents, known) == {
        "provider_1": "markup",
        "provider_2": "runs/x",
    }
    with pytest.raises(ConfigError, match="'provider_9' is not an agent=spec pair"):
        parse_spec("provider_1=bne,provider_9", agents, known)
    with pytest.raises(ConfigError, match=r"unknown agent\(s\) \['provider_9'\]"):
        parse_spec("provider_1=bne,provider_9=bne", agents, known)
    with pytest.raises(ConfigError, match="give a strategy name"):
        parse_spec("  ", agents)
