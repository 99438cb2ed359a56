"""The meta-game: payoff tables on paired seeds, the uniform market's analytic equilibria, mixtures played in the
batched market, and PSRO's stopping rule."""

from __future__ import annotations

import numpy as np
import pytest

from agents import make_strategy
from agents.mixed import MixedPolicy, RowDispatch
from envs import make_batched
from evaluation.metagame import MetaSpec, PayoffTable, deviation_gain, psro, pure, scripted

UNIFORM2 = {"n_providers": 2}


@pytest.fixture(scope="module")
def uniform_games():
    return {m: psro(MetaSpec("uniform", m, UNIFORM2, seeds=16)) for m in ("first_price", "second_price")}


def test_first_price_equilibrium_pays_the_analytic_amount(uniform_games):
    r = uniform_games["first_price"]
    n = 2
    pay, _ = r.at_equilibrium["payment"]
    assert abs(pay - 2.0 / (n + 1)) < 0.05  # revenue of the Bayes-Nash equilibrium, MECHANISMS.md §8
    assert r.equilibrium_nash_conv_population == pytest.approx(0.0, abs=1e-9)
    assert [p[r.populations[i].index("bne")] for i, p in enumerate(r.equilibrium)] == [1.0, 1.0]
    assert r.truthful_nash_conv_population > 0.1  # truthful play is exploitable under first price
    assert "inflate@provider_0" in r.dropped  # per-query billing: inflating is truthful play


def test_second_price_equilibrium_is_truthful(uniform_games):
    r = uniform_games["second_price"]
    for i in range(2):
        assert r.equilibrium[i][r.populations[i].index("truthful")] == pytest.approx(1.0)
    assert r.truthful_nash_conv_population == pytest.approx(0.0, abs=1e-12)
    assert abs(r.at_equilibrium["payment"][0] - 2.0 / 3.0) < 0.05  # revenue equivalence


def test_mixed_policy_draws_per_market_and_episode_from_its_seed():
    market = make_batched("uniform", "first_price", 400, seeds=list(range(400)), horizon=3, **UNIFORM2)
    lay = market.layout
    pols = [make_strategy("truthful", lay), make_strategy("bne", lay)]
    mixed, again = MixedPolicy(lay, pols, [0.25, 0.75], seed=7), MixedPolicy(lay, pols, [0.25, 0.75], seed=7)
    obs = market.reset()
    a, b = mixed.act(obs[:, 0]), again.act(obs[:, 0])
    np.testing.assert_array_equal(a, b)  # same seed, same draws
    first = mixed.assignment.copy()
    assert abs(first.mean() - 0.75) < 0.07
    np.testing.assert_array_equal(a[first == 0, 0], 0.0)  # truthful rows ask their cost
    assert np.all(a[first == 1, 0] > 0)  # bne rows shade up
    for _ in range(2):  # within the episode the draw is kept
        obs, _, _ = market.step(np.stack([mixed.act(obs[:, 0]), np.zeros((400, 3))], axis=1))
        np.testing.assert_array_equal(mixed.assignment, first)
    obs = market.reset()  # a new episode: a new draw
    mixed.act(obs[:, 0])
    assert not np.array_equal(mixed.assignment, first)
    mixed.reset(7)
    mixed.act(obs[:, 0])
    np.testing.assert_array_equal(mixed.assignment, first)
    with pytest.raises(ValueError, match="2 policies for 1 weights"):
        MixedPolicy(lay, pols, [0.5])
    dispatch = RowDispatch(pols, np.arange(400) % 2)
    np.testing.assert_array_equal(dispatch.act(obs[:, 0])[::2], 0.0)


def test_payoff_table_gains_are_paired():
    spec = MetaSpec("uniform", "first_price", UNIFORM2, seeds=8)
    table = PayoffTable(spec, [[scripted("truthful"), scripted("bne")], [scripted("truthful"), scripted("bne")]])
    U = table.payoffs()
    assert U[0].shape == (2, 2)
    gain, ci = deviation_gain(table, 0, 1, pure(table.shape, [0, 0]))
    assert gain == pytest.approx(U[0][1, 0] - U[0][0, 0])
    assert 0 < ci < gain  # shading against a truthful rival pays, with a tight paired CI


def _scripted_oracle(name: str):
    calls = []

    def oracle(spec, learner, opponents, seed):
        calls.append((learner, sorted(opponents)))
        return make_strategy(name, spec.market(1).layout)

    oracle.calls = calls
    return oracle


def test_psro_stops_when_the_best_response_gains_less_than_its_ci():
    # Second price from truthful: the "best response" offered (shading) gains nothing against the equilibrium, so PSRO
    # stops at iteration 1 with truthful play.
    oracle = _scripted_oracle("bne")
    spec = MetaSpec("uniform", "second_price", UNIFORM2, seeds=8)
    r = psro(spec, [[scripted("truthful")], [scripted("truthful")]], oracle, max_iterations=3)
    assert r.converged and len(r.iterations) == 2 and len(oracle.calls) == 4
    assert all(g <= c for g, c in zip(r.equilibrium_gains, r.equilibrium_gain_cis))
    assert r.truthful_nash_conv == 0.0
    assert r.equilibrium[0][0] == 1.0
    # First price from truthful: shading gains (iteration 0 and the equilibrium of {truthful} are truthful play), is
    # added, becomes the equilibrium, and the same response then gains exactly 0: stop at iteration 1.
    oracle = _scripted_oracle("bne")
    spec = MetaSpec("uniform", "first_price", UNIFORM2, seeds=8)
    r = psro(spec, [[scripted("truthful")], [scripted("truthful")]], oracle, max_iterations=3)
    first = r.iterations[0]
    assert all(g > c for g, c in zip(first.gains, first.gain_cis))
    assert r.truthful_nash_conv == pytest.approx(sum(first.gains))
    assert r.converged and len(r.iterations) == 2
    assert r.equilibrium[0][r.populations[0].index("br0")] == 1.0
    assert r.equilibrium_nash_conv == pytest.approx(0.0, abs=1e-12)
    # A response that keeps gaining is not stopped early.
    spec = MetaSpec("uniform", "first_price", UNIFORM2, seeds=8)
    r = psro(spec, [[scripted("truthful")], [scripted("truthful")]], _scripted_oracle("markup"), max_iterations=0)
    assert not r.converged and r.truthful_nash_conv > 0
