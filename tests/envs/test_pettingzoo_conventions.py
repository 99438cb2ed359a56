"""PettingZoo conventions beyond the API tests: the public global state, ``max_cycles``, keyword errors that say
where a keyword could have gone, and rendering before the first round."""

from __future__ import annotations

import numpy as np
import pytest

import mechanisms
from envs import ConfigError, env, parallel_env
from envs.scenarios import scenario_fields

ZERO = np.zeros(3, dtype=np.float32)


def test_state_is_public_it_does_not_depend_on_private_costs():
    """Two markets on the same seed whose providers' private costs differ: observations differ (own expected costs),
    the state does not, as long as the public outcomes (who won, at what price) coincide."""
    low = parallel_env("uniform", "second_price", seed=4, n_providers=3, cost_low=0.0, cost_high=1.0)
    high = parallel_env("uniform", "second_price", seed=4, n_providers=3, cost_low=0.2, cost_high=0.3)
    obs_low, _ = low.reset()
    obs_high, _ = high.reset()
    cost = low.layout.expected_cost
    assert not np.array_equal(obs_low["provider_0"][cost], obs_high["provider_0"][cost])
    np.testing.assert_array_equal(low.state(), high.state())
    assert low.state().shape == low.state_space.shape == (low.state_layout.size,)
    assert low.state().dtype == np.float32


def test_state_follows_the_public_history():
    market = parallel_env("uniform", "first_price", seed=0, n_providers=3, horizon=10)
    market.reset()
    slay = market.state_layout
    state = market.state()
    assert state[slay.last_price] == 0 and not state[slay.last_winner].any() and state[slay.time_left] == 1
    # provider_2 undercuts everyone by the whole bid range: it wins and is paid its (zero) ask.
    _, _, _, _, infos = market.step({"provider_0": ZERO, "provider_1": ZERO, "provider_2": np.array([-1, 0, 0])})
    state = market.state()
    assert infos["provider_2"]["won"]
    np.testing.assert_array_equal(state[slay.last_winner], [0, 0, 1])
    np.testing.assert_array_equal(state[slay.win_rate], [0, 0, 1])
    assert state[slay.last_price] == pytest.approx(infos["provider_2"]["payment"])
    assert state[slay.time_left] == pytest.approx(0.9)
    with pytest.raises(RuntimeError, match="before reset"):
        parallel_env("uniform").state()


def test_batched_state_is_the_state_of_each_market():
    from envs import make_batched

    batched = make_batched("uniform", "second_price", 2, seeds=[7, 8], n_providers=2)
    batched.reset()
    singles = [parallel_env("uniform", "second_price", seed=s, n_providers=2) for s in (7, 8)]
    for m in singles:
        m.reset()
    np.testing.assert_array_equal(batched.state(), np.stack([m.state() for m in singles]))


def test_max_cycles_is_the_horizon():
    market = parallel_env("capitals", "second_price", seed=0, max_cycles=7)
    assert market.config.horizon == 7
    market.reset()
    steps = 0
    while market.agents:
        market.step(dict.fromkeys(market.agents, ZERO))
        steps += 1
    assert steps == 7
    assert parallel_env("capitals", max_cycles=5, horizon=5).config.horizon == 5  # both, agreeing
    with pytest.raises(ConfigError, match="max_cycles=3 and horizon=4 disagree"):
        parallel_env("capitals", max_cycles=3, horizon=4)
    with pytest.raises(ConfigError, match="'horizon' must be >= 1"):
        parallel_env("capitals", max_cycles=0)


def test_unknown_keyword_is_neither_a_scenario_field_nor_a_mechanism_parameter():
    with pytest.raises(ConfigError) as err:
        parallel_env("capitals", "ucb_myerson", bogus=1, reserve=2.0)
    message = str(err.value)
    assert "['bogus']" in message and "neither a scenario field nor a parameter of mechanism 'ucb_myerson'" in message
    assert "reserve" in message and "max_cycles (alias of horizon)" in message
    assert all(f in message for f in scenario_fields())
    first_price = mechanisms.make("first_price")
    with pytest.raises(ConfigError, match="neither a scenario field nor a parameter of the given"):
        parallel_env("capitals", first_price, bogus=1)
    with pytest.raises(ValueError, match="unknown mechanism 'nope'"):
        parallel_env("capitals", "nope", bogus=1)


def test_human_render_returns_none_before_and_after_the_first_round(capsys):
    market = parallel_env("capitals", "first_price", seed=0, render_mode="human")
    assert market.render() is None
    market.reset()
    assert market.render() is None
    assert "no round played yet" in capsys.readouterr().out
    market.step(dict.fromkeys(market.agents, ZERO))  # human mode prints every round
    assert "provider_0" in capsys.readouterr().out
    assert market.render() is None
    aec = env("capitals", "first_price", seed=0, render_mode="human")
    aec.reset()
    assert aec.render() is None


def test_info_format_is_checked():
    with pytest.raises(ValueError, match="info_format must be one of"):
        parallel_env("capitals", info_format="json")
