"""Scripted provider strategies (agents/scripted.py): the action contract of every strategy, and that each one's
action decodes in the market env into the play it names (MECHANISMS.md §1, §8)."""

from __future__ import annotations

import numpy as np
import pytest

from agents import Policy, act_all, make_strategy, strategy_names
from envs import parallel_env

CAPITALS_3B, CAPITALS_1B = "llama-3.2-3b-instruct", "llama-3.2-1b-instruct"
SCRIPTED = ["bne", "inflate", "markup", "random", "substitute", "truthful"]


def observations(scenario: str = "capitals", rounds: int = 16, **overrides) -> tuple[object, np.ndarray]:
    """The env and a batch [B, D] of real observations (every provider, several rounds of truthful play)."""
    env = parallel_env(scenario, mechanism="second_price", seed=0, **overrides)
    truthful = {a: make_strategy("truthful", env.layout) for a in env.possible_agents}
    obs, _ = env.reset(seed=0)
    batch = []
    for _ in range(rounds):
        batch.extend(obs.values())
        obs, *_ = env.step(act_all(truthful, obs))
    return env, np.stack(batch)


def play(env, policies: dict[str, Policy], rounds: int, seed: int = 0) -> list[dict]:
    """Per-round infos of an episode prefix."""
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(rounds):
        obs, _, _, _, infos = env.step(act_all(policies, obs))
        out.append(infos)
    return out


# ------------------------------------------------------------------------------------------------ action contract


@pytest.mark.parametrize("scenario", ["capitals", "uniform"])
@pytest.mark.parametrize("name", strategy_names())
def test_actions_are_float32_in_the_box_for_single_and_batched_observations(name: str, scenario: str) -> None:
    env, batch = observations(scenario)
    policy = make_strategy(name, env.layout, seed=1)
    assert isinstance(policy, Policy)
    acts = policy.act(batch)
    assert acts.shape == (batch.shape[0], 3) and acts.dtype == np.float32
    assert np.all(np.isfinite(acts)) and np.all(np.abs(acts) <= 1.0)
    single = policy.act(batch[0])
    assert single.shape == (3,) and single.dtype == np.float32 and np.all(np.abs(single) <= 1.0)
    assert policy(batch[0]).shape == (3,)
    # deterministic strategies: batching changes nothing (random draws; qlearning learns online, every act explores
    # with its own coins and moves its Q table)
    if name not in ("random", "qlearning"):
        np.testing.assert_array_equal(np.stack([policy.act(o) for o in batch]), acts)
    assert env.action_space("provider_0").contains(single)


def test_strategy_list_names_every_scripted_strategy() -> None:
    assert set(SCRIPTED) <= set(strategy_names()) and strategy_names() == sorted(strategy_names())
    env, _ = observations()
    for name in SCRIPTED:
        assert make_strategy(name, env.layout).name == name


@pytest.mark.parametrize("scenario", ["capitals", "uniform"])
def test_truthful_is_exactly_the_zero_action(scenario: str) -> None:
    env, batch = observations(scenario)
    acts = make_strategy("truthful", env.layout).act(batch)
    assert np.array_equal(acts, np.zeros_like(acts)) and not np.signbit(acts).any()


# ------------------------------------------------------------------------------------------ decoding in the env


@pytest.mark.parametrize("scenario", ["capitals", "uniform"])
@pytest.mark.parametrize("factor", [1.25, 0.8, 2.0])
def test_markup_bid_is_factor_times_the_honest_bid(scenario: str, factor: float) -> None:
    env = parallel_env(scenario, mechanism="first_price", seed=0)
    policies = {a: make_strategy("markup", env.layout, markup=factor) for a in env.possible_agents}
    for infos in play(env, policies, 50):
        for a in env.possible_agents:
            info = infos[a]
            assert info["honest_bid"] > 0
            assert info["bid"] == pytest.approx(factor * info["honest_bid"], rel=1e-5)
            assert not info["substituted"] and info["inflation"] == 0.0


def test_markup_default_factor_is_one_quarter_above_cost() -> None:
    env = parallel_env("uniform", mechanism="first_price", seed=0)
    policies = {a: make_strategy("markup", env.layout) for a in env.possible_agents}
    info = play(env, policies, 1)[0]["provider_0"]
    assert info["bid"] == pytest.approx(1.25 * info["honest_bid"], rel=1e-5)


@pytest.mark.parametrize("scenario", ["capitals", "uniform"])
def test_underbid_asks_a_tenth_of_the_cost_and_moves_only_the_bid(scenario: str) -> None:
    from agents.scripted import DEVIATIONS, scripted_levers

    env = parallel_env(scenario, mechanism="second_price", seed=0)
    policies = {a: make_strategy("underbid", env.layout) for a in env.possible_agents}
    for infos in play(env, policies, 50):
        for a in env.possible_agents:
            info = infos[a]
            assert info["bid"] == pytest.approx(0.1 * info["honest_bid"], rel=1e-5)
            assert not info["substituted"] and info["inflation"] == 0.0
    assert scripted_levers("underbid") == ("bid",) and "underbid" in DEVIATIONS


@pytest.mark.parametrize("n", [2, 3, 5])
def test_bne_bid_is_the_uniform_first_price_equilibrium(n: int) -> None:
    env = parallel_env("uniform", mechanism="first_price", seed=0, n_providers=n)
    policies = {a: make_strategy("bne", env.layout) for a in env.possible_agents}
    for infos in play(env, policies, 100):
        for a in env.possible_agents:
            c = infos[a]["honest_bid"]
            assert 0.0 <= c <= 1.0
            assert infos[a]["bid"] == pytest.approx(c + (1.0 - c) / n, abs=1e-6)


def test_bne_parameters_override_the_market_defaults() -> None:
    env = parallel_env("uniform", mechanism="first_price", seed=0, n_providers=2)
    policies = {a: make_strategy("bne", env.layout, n=4, c_max=2.0) for a in env.possible_agents}
    info = play(env, policies, 1)[0]["provider_1"]
    c = info["honest_bid"]
    assert info["bid"] == pytest.approx(c + (2.0 - c) / 4, abs=1e-6)


def test_substitute_serves_the_cheaper_model_billed_as_the_declared_one() -> None:
    env = parallel_env("capitals", mechanism="second_price", seed=0)
    policies = {a: make_strategy("substitute", env.layout) for a in env.possible_agents}
    name = env.market.models
    for infos in play(env, policies, 30):
        p0, p1 = infos["provider_0"], infos["provider_1"]
        assert p0["substituted"] and name[p0["declared"]] == CAPITALS_3B and name[p0["served"]] == CAPITALS_1B
        assert not p1["substituted"] and name[p1["served"]] == name[p1["declared"]] == CAPITALS_1B  # nothing cheaper
        assert p0["bid"] == pytest.approx(p0["honest_bid"])  # bids as if serving the declared model
    # When it wins, the outcome (score, tokens, cost) is the 1B's.
    mk = env.market
    wins = [i for i in play(env, policies, 200) if i["provider_0"]["won"]]
    assert wins
    one_b = mk.models.index(CAPITALS_1B)
    for infos in wins:
        q = infos["provider_0"]["market"]["query"]
        assert infos["provider_0"]["market"]["score"] == mk.score[q, one_b]
        assert infos["provider_0"]["true_tokens"] == mk.output_tokens[q, one_b]


@pytest.mark.parametrize("max_inflation", [1.0, 0.5])
def test_inflate_reports_padded_tokens(max_inflation: float) -> None:
    env = parallel_env("capitals", mechanism="second_price", seed=0, max_inflation=max_inflation)
    policies = {"provider_0": make_strategy("inflate", env.layout), "provider_1": make_strategy("truthful", env.layout)}
    L = env.market.max_output_tokens
    wins = 0
    for infos in play(env, policies, 200):
        p0, p1 = infos["provider_0"], infos["provider_1"]
        assert p0["inflation"] == max_inflation and p1["inflation"] == 0.0
        assert not p0["substituted"]
        if p0["won"]:
            wins += 1
            true, reported = p0["true_tokens"], p0["reported_tokens"]
            assert reported == min(int(np.ceil(true * (1.0 + max_inflation))), L)
            assert reported > true or true == L
        if p1["won"]:
            assert p1["reported_tokens"] == p1["true_tokens"]
    assert wins > 20


# --------------------------------------------------------------------------------------------------------- random


def test_random_is_reproducible_from_its_seed() -> None:
    env, batch = observations()
    a = make_strategy("random", env.layout, seed=7)
    b = make_strategy("random", env.layout, seed=7)
    first = a.act(batch)
    np.testing.assert_array_equal(first, b.act(batch))
    assert not np.array_equal(first, make_strategy("random", env.layout, seed=8).act(batch))
    assert not np.array_equal(first, a.act(batch))  # a stream, not a constant
    a.reset(seed=7)
    np.testing.assert_array_equal(first, a.act(batch))
    assert np.abs(first).max() <= 1.0 and first.min() < -0.5 and first.max() > 0.5  # covers the box


# ------------------------------------------------------------------------------------------------------- registry


def test_make_strategy_rejects_unknown_names_listing_the_strategies() -> None:
    env, _ = observations()
    with pytest.raises(ValueError, match="unknown strategy 'greedy'") as err:
        make_strategy("greedy", env.layout)
    for name in strategy_names():
        assert name in str(err.value)


@pytest.mark.parametrize("name", SCRIPTED)
def test_make_strategy_rejects_unknown_parameters(name: str) -> None:
    env, _ = observations()
    with pytest.raises(ValueError, match=f"strategy '{name}'.*margin"):
        make_strategy(name, env.layout, margin=0.1)


def test_make_strategy_rejects_bad_parameter_values() -> None:
    env, _ = observations()
    with pytest.raises(ValueError, match="bid rule"):
        make_strategy("truthful", env.layout, bid="shade")
    with pytest.raises(ValueError, match="substitution"):
        make_strategy("substitute", env.layout, substitution=2.0)
    with pytest.raises(ValueError, match="inflation"):
        make_strategy("inflate", env.layout, inflation=-0.5)


@pytest.mark.parametrize(
    "scenario, overrides",
    [("capitals", {}), ("capitals", {"billing": "per_token"}), ("uniform", {"n_providers": 3})],
)
def test_a_scripted_batch_acts_exactly_as_each_strategy_on_its_rows(scenario: str, overrides: dict) -> None:
    """The evaluation plays every scripted deviation in one call (agents.scripted.ScriptedBatch): each block of rows
    gets bit for bit the actions its own strategy gives."""
    from agents.scripted import PRESETS, ScriptedBatch

    env, obs = observations(scenario, **overrides)
    strategies = [make_strategy(name, env.layout) for name in PRESETS] + [
        make_strategy("markup", env.layout, markup=0.5),
        make_strategy("substitute_cost", env.layout, substitution=0.3),
    ]
    rng = np.random.default_rng(0)
    blocks = [(s, int(n)) for s, n in zip(strategies, rng.integers(1, len(obs), len(strategies)))]
    rows = np.concatenate([rng.integers(0, len(obs), n) for _, n in blocks])
    batched = ScriptedBatch(blocks).act(obs[rows])
    one_by_one = np.concatenate(
        [s.act(obs[part]) for (s, _), part in zip(blocks, np.split(rows, np.cumsum([n for _, n in blocks])[:-1]))]
    )
    assert batched.dtype == np.float32 and np.array_equal(batched, one_by_one)
    assert np.any(batched[:, 0] != 0) and np.any(batched[:, 0] < 0)  # bids above and below the honest ask
