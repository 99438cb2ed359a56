"""Every registered mechanism in every scenario preset: PettingZoo's API and seed tests, finite infos, and the
observation slice the mechanism's public state fills (a new mechanism or scenario is covered without touching this
file)."""

from __future__ import annotations

import numpy as np
from pettingzoo.test import parallel_api_test, parallel_seed_test

from envs import parallel_env


def test_every_mechanism_in_every_scenario(mechanism_name, scenario_name, scenario_overrides):
    build = lambda: parallel_env(scenario_name, mechanism_name, horizon=40, **scenario_overrides)  # noqa: E731
    parallel_api_test(build(), num_cycles=100)
    parallel_seed_test(build, num_cycles=60)
    market = build()
    lay = market.layout
    assert market.mechanism.public_state_dim == lay.mechanism.stop - lay.mechanism.start
    obs, _ = market.reset(seed=3)
    zero = {a: np.zeros(3, dtype=np.float32) for a in market.agents}
    while market.agents:
        obs, rewards, _, _, infos = market.step(zero)
        m = infos[market.possible_agents[0]]["market"]
        assert all(np.isfinite(v) for v in m["mechanism"].values()), m["mechanism"]
        assert np.isfinite([m["payment"], m["user_utility"], m["welfare"], *rewards.values()]).all()
        assert all(np.isfinite(o).all() for o in obs.values())
