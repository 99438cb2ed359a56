"""Seed 003's second-best delegation mechanism (MECHANISMS.md §6): schedule math against hand-computed values of the
toy game, the paper's claims on the toy game (batch simulator), and the env mechanism against the simulator."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import mechanisms
from agents import act_all, make_strategy
from envs import parallel_env
from mechanisms import second_best as sb

TOY = sb.TOY
T6 = 1_000_000


@pytest.fixture(scope="module")
def game() -> sb.Game:
    return sb.toy_game()


# ------------------------------------------------------------------------------------------------ schedule math
# Hand computations for the toy game, T = 1e6, eps = 0.3, K = 3, b = 5, gamma = 2, L = 5000:
#   B = floor(10^3.6) = floor(3981.07) = 3981;  M = 10^-1.8 ln(3e6) = 0.0158489 * 14.914123 = 0.236373
#   delta_1 = -ln(5 * 0.4) + ln(1000) + 1000 / 5000 + 1 = -0.693147 + 6.907755 + 0.2 + 1 = 7.414608
#   delta_2 = ln 5 = 1.609438
#   honest exploration means (p1 best, u' = p3's 3.5 - 0.25 - 0.5 = 2.75):
#   delta_3 = [ln 3 - ln 1000 - 0.2] + [ln 3.5 - ln 1000 - 0.2] = -6.009143 - 5.854992 = -11.864135
#   R = int(1e6 - ((7.414608 + 3) 3 + 1.609438 - 11.864135) 3981) = int(1e6 - 20.989127 * 3981) = int(916442.3)
#   threshold = 2.75 - 0.236373 (5 + 5000 * 0.0005) / 2 = 2.75 - 0.886399 = 1.863601
#   delta_p1 = 7.414608 + ln 4.5 - ln 1000 - 0.2 = 1.810930 -> 3981 * 1.810930 = 7209.31 -> 7209 (+1 w.p. 0.31)


def test_schedule_constants_of_the_toy_game(game):
    assert sb.batch_size(T6, 0.3) == 3981
    assert sb.margin(T6, 0.3, 3) == pytest.approx(0.236373, abs=1e-6)
    assert game.delta_1() == pytest.approx(7.414608, abs=1e-6)
    assert sb.delta_1(2.0, 1000.0, 5000) == pytest.approx(7.414608, abs=1e-6)
    assert sb.delta_2(5.0) == pytest.approx(1.609438, abs=1e-6)
    vbar, taubar = np.array([4.5, 3.0, 3.5]), np.full(3, 1000.0)
    d3 = sb.delta_3(vbar, taubar, 5000, best=0)
    assert d3 == pytest.approx(-11.864135, abs=1e-6)
    assert sb.exploitation_length(T6, 3981, 3, 7.414608, 1.609438, d3) == 916442
    assert sb.early_stop_threshold(2.75, sb.margin(T6, 0.3, 3), 5.0, 5000, 0.0005, 2.0) == pytest.approx(
        1.863601, abs=1e-6
    )
    deltas = sb.utility_deltas(7.414608, vbar, taubar, 5000)
    assert deltas[0] == pytest.approx(1.810930, abs=1e-5)
    assert sb.utility_counts(deltas[:1], 3981, np.array([0.99]))[0] == 7209
    assert sb.utility_counts(deltas[:1], 3981, np.array([0.0]))[0] == 7210


def test_batch_size_and_margin_small_horizons():
    assert sb.batch_size(10_000, 0.3) == 251  # 10^2.4 = 251.19
    assert sb.batch_size(20_000, 0.3) == 380  # 380.7
    assert sb.batch_size(10_000, 0.25) == 100  # exact power stays exact
    assert sb.margin(10_000, 0.3, 3) == pytest.approx(10_000**-0.3 * math.log(30_000))
    with pytest.raises(ValueError, match=r"epsilon must be in \(0, 1/2\)"):
        sb.batch_size(100, 0.5)


def test_exploitation_plan_and_its_quirk():
    first, n_batches, rest = sb.exploitation_plan(916442, 1_000_000 - 3 * 3981, 3981)
    assert (first, n_batches, rest) == (3981, 229, 812)
    assert first + n_batches * 3981 + rest == 916442
    assert sb.exploitation_plan(5000, 300, 100) == (100, 2, 0)  # capped at the T budget
    assert sb.exploitation_plan(50, 10_000, 100) == (100, 0, 50)  # R < B: the authors' code sends B + R
    assert sb.exploitation_plan(0, 10_000, 100) == (100, 0, 0)
    assert sb.exploitation_length(100, 10, 3, 50.0, 0.0, 0.0) == 0  # never negative


def test_behaviours_of_the_toy_game(game):
    p1 = game.menus[0]
    assert p1.names == ("p1-good", "p1-mid", "p1-weak")
    assert sb.resolve_behaviour("honest", p1, None, 5.0, 5000) == (0, 0)
    assert sb.resolve_behaviour("lie_model", p1, None, 5.0, 5000) == (2, 0)
    assert sb.resolve_behaviour("lie_token", p1, None, 5.0, 5000) == (0, 5000)
    assert sb.resolve_behaviour("lie_all", p1, None, 5.0, 5000) == (2, 5000)
    # lie_ours with u' = 2.75: only the good model has mu_u >= u'; add = (4.5 - 2.75 - 500 * 0.0005) / 0.0005 - 1000.
    model, add = sb.resolve_behaviour("lie_ours", p1, 2.75, 5.0, 5000)
    assert model == 0 and add in (1999, 2000)
    assert sb.resolve_behaviour("lie_second_best", p1, 2.75, 5.0, 5000) == (0, 0)
    # With a very low u' every model qualifies and padding to L pays most on the cheapest model.
    assert sb.resolve_behaviour("lie_ours", p1, -0.75, 5.0, 5000) == (2, 5200)
    with pytest.raises(ValueError, match="u'"):
        sb.resolve_behaviour("lie_ours", p1, None, 5.0, 5000)


# ------------------------------------------------------------------------------------- the paper's claims (toy)


def run(game, profile, T=T6, seed=0, gamma=TOY.gamma):
    return sb.simulate(game, profile, T, TOY.epsilon, gamma, seed=seed)


def test_simulator_is_fast_and_deterministic(game):
    run(game, ["ours"] * 3, T=10_000)  # warm-up
    start = time.perf_counter()
    a = run(game, ["ours", "dishonest-length", "honest"], seed=3)
    assert time.perf_counter() - start < 5.0
    b = run(game, ["ours", "dishonest-length", "honest"], seed=3)
    assert np.array_equal(a.delegations, b.delegations) and np.array_equal(a.provider_utility, b.provider_utility)
    assert a.served <= T6 and a.delegations[:, 0].tolist() == [3981] * 3


@pytest.mark.parametrize("others", [("honest", "honest"), ("ours", "ours"), ("dishonest-all", "dishonest-model")])
@pytest.mark.parametrize("strategy", ["honest", "ours"])
def test_honest_and_ours_are_never_stopped(game, strategy, others):
    for seed in range(3):
        r = run(game, [strategy, *others], seed=seed)
        assert r.best == 0 and not r.early_stopped and r.stop_time == -1
        assert r.delegations[0, sb.EXPLOITATION] == r.R  # the whole exploitation, then the bonus
        assert r.delegations[0, sb.INCENTIVE] == r.B


@pytest.mark.parametrize("strategy", ["dishonest-model", "dishonest-length"])
def test_dishonest_best_provider_is_stopped(game, strategy):
    for seed in range(3):
        r = run(game, [strategy, "honest", "honest"], seed=seed)
        assert r.best == 0 and r.early_stopped
        assert r.delegations[0, sb.EXPLOITATION] < r.R / 100 and r.delegations[0, sb.INCENTIVE] == 0
        assert r.stop_time == 3 * r.B + r.delegations[0, sb.EXPLOITATION]


def test_dishonest_all_is_never_trusted(game):
    """dishonest-all lies already in exploration, so it is never i* against honest or "ours" opponents (and, lying
    consistently, it is not stopped when it is i* because everyone lies: the mechanism only promises u')."""
    for others in [("honest", "honest"), ("ours", "ours")]:
        r = run(game, ["dishonest-all", *others])
        assert r.best != 0 and r.delegations[0].sum() < 3 * r.B
    r = run(game, ["dishonest-all"] * 3)
    assert r.best == 0 and not r.early_stopped


@pytest.mark.parametrize("others", [("honest", "honest"), ("ours", "ours")])
def test_ours_pays_the_best_provider_more_than_honesty(game, others):
    ours = run(game, ["ours", *others]).provider_utility_total[0]
    honest = run(game, ["honest", *others]).provider_utility_total[0]
    second = run(game, ["ours-honest-length", *others]).provider_utility_total[0]
    assert honest == pytest.approx(0.0, abs=1e-6)  # cost = eta x list price: honest play earns exactly 0
    assert ours > 10 * second > 0  # padding to u' in exploitation vs true tokens (both lie_all afterwards)
    for dishonest in ["dishonest-model", "dishonest-length", "dishonest-all"]:
        assert run(game, [dishonest, *others]).provider_utility_total[0] < ours


def test_user_utility_per_query_approaches_u_prime(game):
    """With everyone playing "ours" the user is held at u' in exploitation; the other phases shrink like B / T."""
    gaps = []
    for T in (10_000, 100_000, 1_000_000):
        rs = [run(game, ["ours"] * 3, T=T, seed=s) for s in range(2)]
        gaps.append(np.mean([abs(r.user_utility_per_query - r.u_second) for r in rs]))
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 0.1 * TOY.b  # 0.21 at T = 1e6 (u' = 2.75): about 8 % of the queries are outside exploitation
    honest = run(game, ["honest"] * 3)
    assert honest.user_utility_per_query > honest.u_second  # honest play gives the user more than u'


# ---------------------------------------------------------------------------------------------- env mechanism


def play_env(profile, T=20_000, gamma=TOY.gamma, seed=0, horizon=None, **params):
    env = parallel_env(
        "second_best_toy",
        "second_best",
        seed=seed,
        horizon=horizon or T,
        mechanism_params=dict(T=T, gamma=gamma, delta_1=sb.toy_game().delta_1(), **params),
    )
    policies = {a: make_strategy(s, env.layout, market=env.market) for a, s in zip(env.possible_agents, profile)}
    obs, _ = env.reset()
    trace = []
    while env.agents:
        before = obs[env.possible_agents[0]][env.layout.mechanism].copy()
        obs, rewards, _, _, infos = env.step(act_all(policies, obs))
        trace.append((before, infos["provider_0"]["market"], rewards))
    return env, trace


def test_registered_and_validated():
    m = mechanisms.make("second_best", epsilon=0.25)
    assert isinstance(m, sb.SecondBest) and m.billing == "list_price" and not m.uses_bids
    for bad in (dict(epsilon=0.5), dict(gamma=0.0), dict(b=-1.0), dict(T=0)):
        with pytest.raises(ValueError, match="must be"):
            sb.SecondBest(**bad)


def test_env_agrees_with_simulator_for_honest_providers(game):
    T = 20_000
    env, _ = play_env(["sb_honest"] * 3, T=T)
    got = env.mechanism.schedule()
    sim = run(game, ["honest"] * 3, T=T)
    B, K = sim.B, 3
    assert got["B"] == B == 380 and got["best"] == sim.best == 0
    dele, ref = got["delegations"], sim.delegations
    assert dele[:, sb.EXPLORATION].tolist() == [B] * K
    assert dele[:, sb.INCENTIVE].tolist() == ref[:, sb.INCENTIVE].tolist() == [B] * K
    assert not got["early_stopped"] and not sim.early_stopped
    assert abs(int(dele[0, sb.EXPLOITATION]) - int(ref[0, sb.EXPLOITATION])) <= 0.005 * ref[0, sb.EXPLOITATION]
    assert np.all(np.abs(dele[:, sb.UTILITY] - ref[:, sb.UTILITY]) <= 0.03 * ref[:, sb.UTILITY] + 2)
    # Exactly: the env's phase lengths are the shared schedule functions applied to what it observed.
    d3 = sb.delta_3(got["vbar"], got["taubar"], TOY.L, got["best"])
    R = sb.exploitation_length(T, B, K, got["delta_1"], got["delta_2"], d3)
    first, n_batches, rest = sb.exploitation_plan(R, T - K * B, B)
    assert got["R"] == R and dele[0, sb.EXPLOITATION] == first + n_batches * B + rest
    whole = np.floor(sb.utility_deltas(got["delta_1"], got["vbar"], got["taubar"], TOY.L) * B)
    assert np.all((dele[:, sb.UTILITY] == whole) | (dele[:, sb.UTILITY] == whole + 1))


def test_env_stops_a_dishonest_best_provider_but_not_ours(game):
    # At T = 20,000 the margin M (b + L p_max) / gamma is wide; gamma = 50 (the authors' toy default) narrows it.
    env, _ = play_env(["sb_dishonest_length", "sb_honest", "sb_honest"], gamma=50.0)
    got = env.mechanism.schedule()
    assert got["best"] == 0 and got["early_stopped"] and got["delegations"][0, sb.EXPLOITATION] == 2 * got["B"]
    env, trace = play_env(["sb_ours", "sb_honest", "sb_honest"], gamma=50.0)
    got = env.mechanism.schedule()
    assert got["best"] == 0 and not got["early_stopped"]
    profit = sum(r["provider_0"] for _, _, r in trace)
    sim = run(game, ["ours", "honest", "honest"], T=20_000, gamma=50.0)
    assert profit == pytest.approx(sim.provider_utility_total[0], rel=0.1)  # multiplicative padding approximates add


def test_public_state_and_diagnostics_in_observations_and_infos():
    T, K = 2_000, 3
    env, trace = play_env(["sb_honest"] * K, T=T, horizon=T + 500)
    B = sb.batch_size(T, 0.3)
    assert env.layout.mechanism.stop - env.layout.mechanism.start == 6 + K
    phases = [int(np.argmax(state[:5])) for state, _, _ in trace]
    assert phases[: K * B] == [sb.EXPLORATION] * (K * B)
    assert np.all(trace[0][0][5:] == 0.0)  # u' and uhat unknown before exploration ends
    state = trace[K * B][0]
    m = env.mechanism
    assert phases[K * B] == sb.EXPLOITATION
    assert state[5] == pytest.approx(m.u_second / TOY.b) and np.allclose(state[6:], m.u_hat / TOY.b)
    seen = sorted(set(phases))
    assert seen == [sb.EXPLORATION, sb.EXPLOITATION, sb.INCENTIVE, sb.UTILITY, sb.DONE]
    served = [mk for _, mk, _ in trace if not mk["unserved"]]
    assert len(served) == m.t <= T and trace[-1][1]["unserved"]  # NO_WINNER once the schedule is exhausted
    diag = trace[-1][1]["mechanism"]
    assert set(diag) >= {"phase", "early_stopped", "stop_time"}
    assert diag["phase"] == sb.DONE and diag["early_stopped"] == 0.0 and diag["stop_time"] == -1.0
    assert [mk["winner"] for _, mk, _ in trace[: K * B : B]] == list(range(K))  # exploration in blocks


def test_pettingzoo_api_with_the_toy_scenario():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(parallel_env("second_best_toy", "second_best", seed=0, horizon=60, T=60), num_cycles=100)


def test_second_best_infos_are_finite_so_seeded_runs_compare_equal():
    """Diagnostics held NaN until exploration ended, and NaN != NaN broke PettingZoo's parallel_seed_test."""
    from pettingzoo.test import parallel_seed_test

    market = parallel_env("second_best_toy", "second_best", seed=0, horizon=2000)
    market.reset(seed=0)
    zero = {a: np.zeros(3, dtype=np.float32) for a in market.possible_agents}
    _, _, _, _, infos = market.step(zero)
    assert all(np.isfinite(v) for v in infos["provider_0"]["market"]["mechanism"].values())
    parallel_seed_test(lambda: parallel_env("second_best_toy", "second_best", horizon=2000))
