"""The batched market core against the per-market PettingZoo env: E markets stepped together play exactly the rounds
E separate envs with the same seeds play, for every registered mechanism in every scenario."""

from __future__ import annotations

import numpy as np
import pytest

from envs import make_batched, parallel_env
from envs.layout import ACTION_DIM


def probe_policy(layout, seed: int = 0):
    """A fixed nonlinear map from observation to action that moves every lever (bid, substitution, inflation), so the
    two paths act alike exactly when they observe alike."""
    w = np.random.default_rng(seed).normal(size=(layout.size, ACTION_DIM)).astype(np.float32)

    def act(obs: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(obs, dtype=np.float32) @ w * 3.0)

    return act


def test_batched_markets_play_the_rounds_of_separate_envs(mechanism_name, scenario_name, scenario_overrides):
    assert_batched_plays_separate_envs(scenario_name, mechanism_name, dict(horizon=70, **scenario_overrides))


# Variants of the mechanisms whose single-market rules take other branches than the defaults.
VARIANTS = [
    ("ucb_myerson", {"ironed": True}),
    ("ucb_myerson", {"payment": "next_higher", "value": "gross"}),
    ("myerson", {"support_cap": False}),
    ("myerson", {"quality": "prior"}),
    ("rosa", {"allocation": "greedy", "quality": "learned"}),
    ("rosa", {"allocation": "linucb_opt"}),
    ("soft_rochet", {"temperature": 0.02, "weights": [1.0, 0.0]}),
]


@pytest.mark.parametrize("mechanism, params", VARIANTS, ids=lambda v: str(v))
def test_batched_markets_play_the_rounds_of_separate_envs_in_mechanism_variants(mechanism, params):
    assert_batched_plays_separate_envs("capitals", mechanism, dict(horizon=70, **params))


def assert_batched_plays_separate_envs(scenario_name: str, mechanism_name: str, over: dict) -> None:
    seeds = [11, 12, 13]
    batched = make_batched(scenario_name, mechanism_name, len(seeds), **over)
    singles = [parallel_env(scenario_name, mechanism_name, **over) for _ in seeds]
    act = probe_policy(batched.layout)
    for episode in range(2):  # the second episode continues every market's streams
        obs = batched.reset(seeds if episode == 0 else None)
        single_obs = [env.reset(seed=s if episode == 0 else None)[0] for env, s in zip(singles, seeds)]
        for _ in range(over["horizon"]):
            for e, env in enumerate(singles):
                np.testing.assert_array_equal(obs[e], np.stack([single_obs[e][a] for a in env.possible_agents]))
            joint = act(obs)
            obs, rewards, done = batched.step(joint)
            r = batched.last_round
            for e, env in enumerate(singles):
                out = env.step({a: joint[e, i] for i, a in enumerate(env.possible_agents)})
                single_obs[e] = out[0]
                s = env.last_round
                for field in (
                    "query",
                    "bids",
                    "asks",
                    "honest_bids",
                    "rewards",
                    "served",
                    "substituted",
                    "inflation",
                    "winner",
                    "score",
                    "value",
                    "payment",
                    "cost",
                    "input_tokens",
                    "true_tokens",
                    "reported_tokens",
                    "user_utility",
                    "welfare",
                    "best_welfare",
                    "unserved",
                ):
                    np.testing.assert_array_equal(getattr(r, field)[e], getattr(s, field)[0], err_msg=field)
                assert [out[1][a] for a in env.possible_agents] == rewards[e].tolist()
                assert all(out[3].values()) == bool(done[e])
                assert out[4][env.possible_agents[0]]["market"]["mechanism"] == {
                    k: v[e] for k, v in batched.mechanism.diagnostics().items()
                }
        for e, env in enumerate(singles):
            diag_b = {k: v[e] for k, v in batched.mechanism.diagnostics().items()}
            assert diag_b == {k: v[0] for k, v in env.mechanism.diagnostics().items()}


def test_batched_actions_are_validated_naming_market_and_provider():
    market = make_batched("capitals", "first_price", 2, seeds=[0, 1])
    market.reset()
    bad = np.zeros((2, 2, 3))
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match="market 1, provider_0: action contains NaN"):
        market.step(bad)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 3\)"):
        market.step(np.zeros((2, 3)))


def test_a_market_continues_exactly_from_its_saved_state(mechanism_name, scenario_name, scenario_overrides):
    """state_dict / load_state_dict: a market rebuilt from the same config and loaded with a snapshot plays the same
    rounds as the original from there on, across an episode's end too (what exact resume of training needs)."""
    import json

    over = dict(horizon=60, **scenario_overrides)
    a = make_batched(scenario_name, mechanism_name, 2, seeds=[1, 2], **over)
    b = make_batched(scenario_name, mechanism_name, 2, seeds=[7, 8], **over)
    act = probe_policy(a.layout, seed=3)
    obs = a.reset()
    b.reset()
    for _ in range(25):
        obs, _, _ = a.step(act(obs))
    arrays, meta = a.state_dict()
    b.load_state_dict(arrays, json.loads(json.dumps(meta)))  # the snapshot survives JSON
    np.testing.assert_array_equal(b.obs, a.obs)
    for _ in range(80):
        joint = act(a.obs)
        oa, ra, da = a.step(joint)
        ob, rb, _ = b.step(joint)
        np.testing.assert_array_equal(oa, ob)
        np.testing.assert_array_equal(ra, rb)
        if da.all():
            a.reset()
            b.reset()


def test_a_single_market_continues_exactly_from_its_saved_state(mechanism_name):
    """The PettingZoo env's per-step path after a snapshot: caches of the single-market rules are rebuilt from the
    restored state, so a restored env plays the rounds of the original."""
    import json

    a = parallel_env("capitals", mechanism_name, seed=1, horizon=60)
    b = parallel_env("capitals", mechanism_name, seed=5, horizon=60)
    act = probe_policy(a.layout, seed=3)
    obs, _ = a.reset()
    b.reset()
    for _ in range(25):
        obs = a.step({k: act(o) for k, o in obs.items()})[0]
    arrays, meta = a.core.state_dict()
    b.core.load_state_dict(arrays, json.loads(json.dumps(meta)))
    for _ in range(80):
        joint = {k: act(o) for k, o in obs.items()}
        oa, ra, _, ta, ia = a.step(joint)
        ob, rb, _, _, ib = b.step(joint)
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
        assert ra == rb
        assert ia == ib
        obs = oa
        if all(ta.values()):
            obs, _ = a.reset()
            b.reset()
