"""Every registered mechanism in every scenario preset: PettingZoo's API, seed, render, state and max-cycles tests
(parallel and AEC), finite infos, the public state, the numeric flat infos TorchRL needs, and the observation slice the
mechanism's public state fills (a new mechanism or scenario is covered without touching this file)."""

from __future__ import annotations

import functools
import numbers
from types import SimpleNamespace

import numpy as np
import pytest
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, parallel_seed_test, render_test, seed_test
from pettingzoo.test.state_test import state_test

from envs import env, parallel_env

HORIZON = 40  # short episodes: 7 mechanisms x 4 scenarios run every test below

# Observations, and the query's features in the state, are unbounded by design (money amounts and the mechanisms' own
# statistics have no a-priori range), which PettingZoo's checks warn about.
pytestmark = pytest.mark.filterwarnings("ignore:.*(infinity|too low|too high).*:UserWarning")


def test_every_mechanism_in_every_scenario(mechanism_name, scenario_name, scenario_overrides):
    build = functools.partial(parallel_env, scenario_name, mechanism_name, horizon=HORIZON, **scenario_overrides)
    build_aec = functools.partial(env, scenario_name, mechanism_name, horizon=HORIZON, **scenario_overrides)
    parallel_api_test(build(), num_cycles=HORIZON + 10)
    api_test(build_aec(), num_cycles=HORIZON + 10)
    parallel_seed_test(build, num_cycles=HORIZON + 10)
    seed_test(build_aec, num_cycles=HORIZON + 10)
    render_test(build_aec)  # "human" returns None (before the first round too), "ansi" a string
    state_test(build_aec(), build(), num_cycles=HORIZON + 10)
    # PettingZoo's own check of the max_cycles keyword (4 rounds; each AEC agent also takes its dead step).
    max_cycles_test(
        SimpleNamespace(
            parallel_env=functools.partial(parallel_env, scenario_name, mechanism_name, **scenario_overrides),
            env=functools.partial(env, scenario_name, mechanism_name, **scenario_overrides),
        )
    )

    market = build()
    lay, slay = market.layout, market.state_layout
    assert market.mechanism.public_state_dim == lay.mechanism.stop - lay.mechanism.start
    obs, _ = market.reset(seed=3)
    zero = {a: np.zeros(3, dtype=np.float32) for a in market.agents}
    agents = market.possible_agents
    wins = np.zeros(len(agents))
    rounds = 0
    while market.agents:
        state = market.state()
        assert market.state_space.contains(state)
        for o in obs.values():  # the state's public parts are what every provider sees
            np.testing.assert_array_equal(state[slay.query], o[slay.query])
            np.testing.assert_array_equal(state[slay.mechanism], o[lay.mechanism])
        np.testing.assert_allclose(state[slay.win_rate], wins / max(rounds, 1), rtol=1e-6)
        assert state[slay.time_left] == np.float32(1 - rounds / HORIZON)
        obs, rewards, _, _, infos = market.step(zero)
        rounds += 1
        m = infos[agents[0]]["market"]
        if m["winner"] >= 0:
            wins[m["winner"]] += 1
        assert all(np.isfinite(v) for v in m["mechanism"].values()), m["mechanism"]
        assert np.isfinite([m["payment"], m["user_utility"], m["welfare"], *rewards.values()]).all()
        assert all(np.isfinite(o).all() for o in obs.values())
        if market.agents:
            np.testing.assert_array_equal(
                market.state()[slay.last_winner],
                np.eye(len(agents) + 1)[m["winner"]][:-1] if m["winner"] >= 0 else np.zeros(len(agents)),
            )
    assert rounds == HORIZON

    # The flat infos (TorchRL's PettingZooWrapper builds its specs from the reset infos): numbers only, the same keys
    # at reset and at every step, and the same numbers as the nested infos of the same round.
    flat = build(info_format="flat")
    nested = build()
    _, flat_infos = flat.reset(seed=5)
    nested.reset(seed=5)
    keys = {a: set(i) for a, i in flat_infos.items()}
    for _ in range(3):
        _, _, _, _, flat_infos = flat.step(zero)
        _, _, _, _, nested_infos = nested.step(zero)
        for a in agents:
            assert set(flat_infos[a]) == keys[a]
            assert all(isinstance(v, (numbers.Number, np.number, np.bool_)) for v in flat_infos[a].values())
            assert flat_infos[a]["market_winner"] == nested_infos[a]["market"]["winner"]
            for k, v in nested_infos[a]["market"]["mechanism"].items():
                assert flat_infos[a][f"market_mechanism_{k}"] == v
