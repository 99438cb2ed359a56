"""Economic properties of the truthful mechanisms myerson (MECHANISMS.md §4, §8), rosa (§5) and soft_rochet (§7).

Monte Carlo checks use confidence intervals (Z standard errors) and paired common random numbers: for each draw the
deviating and the truthful bid see the same costs, the same rivals and the same mechanism randomness (the Generator
state is restored before every bid). Mechanisms are driven directly through the Mechanism interface with a hand-made
:class:`MarketInfo` (costs U[0, 1], value_scale 1) unless the test is about the env. Learning state (rosa's LinUCB) is
frozen by a deep copy after a warm-up: no ``update`` is called inside a Monte Carlo loop, so the allocation is a fixed
monotone rule across draws.

Negative controls show the tests can fail: the same deviation harness finds first_price's profitable markup, and the
Myerson-integral check could tell rosa's payment from pay-as-bid.
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings

import numpy as np
import pytest

import mechanisms
from envs import parallel_env
from mechanisms.base import NO_WINNER, MarketInfo, Outcome
from mechanisms.myerson import CostPrior, Myerson, UniformPrior
from mechanisms.rosa import GreedyAllocation, LinUCBAllocation, Rosa
from mechanisms.soft_rochet import SoftRochet
from tests.mechanisms.single import One

Z = 3.0  # width of the confidence intervals, in standard errors
D = 4  # context dimension of the hand-made markets
DELTAS = np.array([-0.3, -0.15, -0.05, 0.0, 0.05, 0.15, 0.3])  # bid - cost
TRUTH = int(np.flatnonzero(DELTAS == 0.0)[0])


def make_info(prior, d: int = D, value_scale: float = 1.0, cost_range=None) -> MarketInfo:
    prior = np.asarray(prior, dtype=float).reshape(len(prior), -1)
    n = prior.shape[0]
    cr = np.tile([0.0, value_scale], (n, 1)) if cost_range is None else np.asarray(cost_range, dtype=float)
    return MarketInfo(
        n_providers=n,
        context_dim=d,
        n_groups=prior.shape[1],
        value_scale=value_scale,
        bid_scale=value_scale,
        prior_quality=prior,
        cost_range=cr,
        price_in=np.zeros(n),
        price_out=np.zeros(n),
        max_output_tokens=100,
        horizon=10_000,
    )


PRIOR = [0.8, 0.9, 0.7]
CONTEXTS = np.column_stack([np.ones(6), np.random.default_rng(7).random((6, D - 1))])


def warmed_rosa(allocation: str = "linucb", mu: float = 0.1, rounds: int = 300, seed: int = 1, **params) -> One:
    """A rosa with some learning history (random asks, contexts and Bernoulli scores), then frozen by a copy."""
    info = make_info(PRIOR)
    mech = One(Rosa(mu=mu, allocation=allocation, **params))
    rng = np.random.default_rng(seed)
    mech.reset(info, np.random.default_rng(seed + 1))
    theta = rng.normal(0.0, 0.15, (3, D))
    for _ in range(rounds):
        x = np.concatenate(([1.0], rng.random(D - 1)))
        w, p = mech.allocate(rng.random(3), x, 0)
        if w != NO_WINNER:
            q = np.clip(PRIOR[w] + theta[w] @ x - theta[w, 0], 0.0, 1.0)
            mech.update(w, float(rng.random() < q), 5, 10, p, x, 0)
    return copy.deepcopy(mech)


def build(name: str) -> One:
    """The mechanisms under the deviation tests (N = 3, qualities PRIOR, value 1, costs U[0, 1])."""
    if name == "rosa_linucb":
        return warmed_rosa("linucb", mu=0.2)
    if name == "rosa_greedy":
        return warmed_rosa("greedy", mu=0.2, rounds=0)
    if name == "rosa_linucb_opt":
        return warmed_rosa("linucb_opt", mu=0.2)
    return One(mechanisms.make(name, quality="prior"), make_info(PRIOR))


def profits(mech: One, deltas: np.ndarray, n_draws: int, seed: int, bidder: int = 0) -> np.ndarray:
    """[n_draws, len(deltas)] profit of ``bidder`` (cost c ~ U[0, 1], bid max(0, c + delta)) against truthful rivals
    (costs U[0, 1]), on a random context; paired: every delta of a draw sees the same mechanism randomness."""
    data = np.random.default_rng(seed)
    costs = data.random((n_draws, mech.info.n_providers))
    ctx = data.integers(0, len(CONTEXTS), n_draws)
    gen = np.random.default_rng(seed + 10_000)
    mech.rng = gen
    out = np.zeros((n_draws, len(deltas)))
    bids = np.empty(mech.info.n_providers)
    for k in range(n_draws):
        state = gen.bit_generator.state
        c = costs[k, bidder]
        for j, delta in enumerate(deltas):
            gen.bit_generator.state = state
            bids[:] = costs[k]
            bids[bidder] = max(0.0, c + delta)
            w, p = mech.allocate(bids, CONTEXTS[ctx[k]], 0)
            if w == bidder:
                out[k, j] = p - c
    return out


def gains(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of (deviation profit - truthful profit) per delta (paired)."""
    diff = table - table[:, [TRUTH]]
    return diff.mean(0), diff.std(0, ddof=1) / math.sqrt(diff.shape[0])


# --------------------------------------------------------------------------------------- truthfulness (§4, §5, §7)


@pytest.mark.parametrize(
    "name, n_draws",
    [
        ("myerson", 3000),
        ("soft_rochet", 3000),
        ("rosa_linucb", 12_000),
        ("rosa_greedy", 12_000),
        ("rosa_linucb_opt", 12_000),
    ],
)
def test_truthful_bidding_maximizes_expected_profit(name, n_draws) -> None:
    mech = build(name)
    gain, se = gains(profits(mech, DELTAS, n_draws, seed=11))
    for delta, g, s in zip(DELTAS, gain, se):
        assert g <= Z * s + 1e-12, f"{name}: bidding cost {delta:+} gains {g:.4f} +- {s:.4f} over truthful"
    # Power: the largest deviations lose money significantly (a bid-blind rule would fail this).
    for j in (0, len(DELTAS) - 1):
        assert gain[j] < -Z * se[j], f"{name}: deviation {DELTAS[j]:+} loses only {-gain[j]:.4f} +- {se[j]:.4f}"


def test_deviation_harness_detects_first_price_markup() -> None:
    """Negative control: under pay-as-bid the same harness finds a significantly profitable markup."""
    gain, se = gains(profits(build("first_price"), DELTAS, 2000, seed=11))
    assert (gain > Z * se).any(), f"first_price: no profitable deviation found: {gain} +- {se}"
    assert gain[DELTAS > 0].max() > 0.02


# ------------------------------------------------------------------------------------------- individual rationality


@pytest.mark.parametrize("allocation", ["linucb", "greedy", "linucb_opt"])
def test_rosa_truthful_profit_nonnegative_in_every_realization(allocation) -> None:
    mech = warmed_rosa(allocation, mu=0.1)
    rng = np.random.default_rng(3)
    mech.rng = np.random.default_rng(4)
    n_won = n_rebated = 0
    for k in range(20_000):
        costs = rng.random(3) * 1.2  # some costs above cbar = 1: not eligible, profit 0
        w, p = mech.allocate(costs, CONTEXTS[k % len(CONTEXTS)], 0)
        if w != NO_WINNER:
            assert costs[w] <= mech.cbar and p - costs[w] >= -1e-12, (costs, w, p)
            n_won += 1
            n_rebated += bool(mech.resampled[w])
    assert n_won > 10_000 and n_rebated > 200  # the rebate branch was exercised


@pytest.mark.parametrize("name", ["myerson", "soft_rochet"])
def test_winner_is_paid_at_least_its_bid(name) -> None:
    mech = build(name)
    rng = np.random.default_rng(5)
    for _ in range(5000):
        bids = rng.random(3)
        w, p = mech.allocate(bids, CONTEXTS[0], 0)
        if w != NO_WINNER:
            assert p >= bids[w] - 1e-12


# ---------------------------------------------------------------------------- rosa: Myerson's payment identity (§5)


@pytest.mark.parametrize("allocation, mu", [("linucb", 0.1), ("greedy", 0.1), ("linucb", 0.5)])
def test_rosa_expected_payment_is_the_myerson_integral(allocation, mu) -> None:
    """E[P] = b Abar(b) + integral_b^cbar Abar(t) dt, Abar estimated by re-running the resampling and allocation:
    stratified Monte Carlo over t (one uniform point per stratum of a K-cell grid, so the jump of the unsmoothed
    allocation costs no discretization bias). A large mu makes the check sensitive to the resampling law."""
    mech = warmed_rosa(allocation, mu=mu)
    context, b = CONTEXTS[2], 0.25
    cbar = mech.cbar
    # Rivals' asks put provider 0's threshold ask (for the plain rule) near 0.55: a sizable information rent.
    index = mech.public_state(context, 0)[:3]  # the rule's quality index (value_scale = 1)
    others = np.clip(index[1:] - index[0] + 0.55 + np.array([0.0, 0.1]), 0.0, cbar)
    mech.rng = np.random.default_rng(8)

    def wins(bid: float) -> tuple[bool, float]:
        w, p = mech.allocate(np.concatenate(([bid], others)), context, 0)
        return w == 0, (p if w == 0 else 0.0)

    n_pay = 40_000
    pay = np.array([wins(b)[1] for _ in range(n_pay)])
    lhs, lhs_se = pay.mean(), pay.std(ddof=1) / math.sqrt(n_pay)

    rng = np.random.default_rng(9)
    n_at_b, K, per_cell = 20_000, 200, 100
    won_b = np.array([wins(b)[0] for _ in range(n_at_b)], dtype=float)
    h = (cbar - b) / K
    cell_means = np.empty(K)
    cell_vars = np.empty(K)
    for k in range(K):
        t = b + (k + rng.random(per_cell)) * h
        won = np.array([wins(tt)[0] for tt in t], dtype=float)
        cell_means[k], cell_vars[k] = won.mean(), won.var(ddof=1)
    integral = h * cell_means.sum()
    integral_se = h * math.sqrt(cell_vars.sum() / per_cell)
    abar_b = won_b.mean()
    rhs = b * abar_b + integral
    rhs_se = math.sqrt((b * won_b.std(ddof=1)) ** 2 / n_at_b + integral_se**2)
    se = math.hypot(lhs_se, rhs_se)
    assert abs(lhs - rhs) <= Z * se, f"E[P] = {lhs:.4f} vs Myerson {rhs:.4f} (se {se:.4f})"
    # Power: the information rent is far outside the interval, so pay-as-bid would fail the check.
    assert integral > 8 * se and 0.05 < abar_b < 0.95
    # Abar is non-increasing: the first cells win more often than the last ones.
    assert cell_means[: K // 10].mean() > cell_means[-K // 10 :].mean()


# ------------------------------------------------------------------------------------------ soft_rochet (§7)


def soft(temperature: float, prior=PRIOR, **params) -> One:
    return One(SoftRochet(temperature=temperature, quality="prior", **params), make_info(prior))


def test_soft_rochet_probabilities_payments_and_rent_match_the_formulas() -> None:
    t, w0, weights = 0.07, 0.5, np.array([1.0, 2.0, 0.5])
    mech = soft(t, w0=w0, weights=weights)
    bids = np.array([0.3, 0.45, 0.2])
    s = np.array(PRIOR) - bids
    z = w0 + (weights * np.exp(s / t)).sum()
    x = weights * np.exp(s / t) / z
    np.testing.assert_allclose(mech.allocation_probabilities(bids, 0), x, rtol=1e-12)
    logits = np.concatenate(([math.log(w0)], np.log(weights) + s / t))
    rent = np.array(
        [t * (np.logaddexp.reduce(logits) - np.logaddexp.reduce(np.delete(logits, i + 1))) for i in range(3)]
    )
    P = mech.expected_payments(bids, 0)
    np.testing.assert_allclose(P, bids * x + rent, rtol=1e-10)
    assert (rent > 0).all()  # truthful expected profit P_i - b_i x_i = t [LSE(all) - LSE(all but i)] > 0
    c = np.array([bids * x + t * np.log1p(weights * np.exp(s / t) / (z - weights * np.exp(s / t)))])
    np.testing.assert_allclose(P, c[0], rtol=1e-10)  # the §7 form t ln(1 + w_i e^{s_i/t} / C_i)

    # Monte Carlo: winner frequencies are x, the mean payment to each provider is P_i, winners get >= their bid.
    n = 40_000
    counts, paid, sq = np.zeros(3), np.zeros(3), np.zeros(3)
    for _ in range(n):
        w, p = mech.allocate(bids, CONTEXTS[0], 0)
        if w != NO_WINNER:
            assert p >= bids[w]
            counts[w] += 1
            paid[w] += p
            sq[w] += p * p
    freq_se = np.sqrt(x * (1 - x) / n)
    assert np.all(np.abs(counts / n - x) <= Z * freq_se), (counts / n, x)
    pay_se = np.sqrt((sq / n - (paid / n) ** 2) / n)
    assert np.all(np.abs(paid / n - P) <= Z * pay_se), (paid / n, P)


def second_price_outcome(bids: np.ndarray, prior=PRIOR) -> tuple[int, float]:
    return One(mechanisms.make("second_price", quality="prior"), make_info(prior)).allocate(bids, CONTEXTS[0], 0)


def test_soft_rochet_tends_to_second_price_as_temperature_vanishes() -> None:
    rng = np.random.default_rng(12)
    n_checked = 0
    for _ in range(200):
        bids = rng.random(3)
        s = np.sort(np.concatenate((np.array(PRIOR) - bids, [0.0])))
        if s[-1] - s[-2] < 0.02:
            continue  # a near tie needs a smaller t to concentrate
        w_sp, p_sp = second_price_outcome(bids)
        errors = []
        for t in (0.03, 0.01, 0.003, 1e-3):
            mech = soft(t)
            x = mech.allocation_probabilities(bids, 0)
            P = mech.expected_payments(bids, 0)
            if w_sp == NO_WINNER:
                errors.append(x.sum() + P.sum())
            else:
                errors.append(abs(P[w_sp] - p_sp) + (1 - x[w_sp]))
        assert errors[-1] < 1e-3 and errors[0] > errors[-1], (bids, errors)
        n_checked += 1
        # Tiny temperatures: the drawn winner and its payment are second_price's, without overflow or warnings.
        for t in (1e-9, 1e-100, 1e-300):
            mech = soft(t)
            with warnings.catch_warnings(), np.errstate(over="raise", divide="raise", invalid="raise"):
                warnings.simplefilter("error")
                w, p = mech.allocate(bids, CONTEXTS[0], 0)
            assert w == w_sp and (w == NO_WINNER or abs(p - p_sp) < 1e-9), (t, bids, w, p, w_sp, p_sp)
    assert n_checked > 100


def test_soft_rochet_payment_ratio_is_stable() -> None:
    """P_i / x_i = b_i + t softplus(d) / sigmoid(d), d = ln w_i + s_i / t - ln C_i: finite for any d (a winner drawn
    with probability e^-800 is paid about its bid plus t), and expected payments stay finite at extreme logits."""
    from mechanisms.soft_rochet import payment_ratio

    for d in (-1e6, -800.0, -50.0, -1e-9, 0.0, 1e-9, 50.0, 800.0, 1e6):
        r = float(payment_ratio(d))
        assert math.isfinite(r) and r >= 1.0 - 1e-12
        exact = math.log1p(math.exp(d)) * (1 + math.exp(-d)) if abs(d) < 700 else (1.0 if d < 0 else d)
        assert r == pytest.approx(exact, rel=1e-9)
    mech = soft(1e-3, prior=[1.0, 0.2])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        P = mech.expected_payments(np.array([0.0, 0.1]), 0)  # logits 1000 and 100
        x = mech.allocation_probabilities(np.array([0.0, 0.1]), 0)
    assert np.isfinite(P).all() and P[0] == pytest.approx(0.9, abs=1e-9)  # qhat_0 - s_1, second price
    assert x[1] == 0.0 or x[1] < 1e-300


# ------------------------------------------------------------------------------------------ myerson (§4, §8)


def test_uniform_prior_virtual_cost_and_inverse() -> None:
    pr = UniformPrior(0.2, 1.0)
    for c in np.linspace(0.2, 1.0, 9):
        assert pr.virtual_cost(c) == pytest.approx(c + pr.cdf(c) / pr.pdf(c))
        assert pr.inverse_virtual_cost(pr.virtual_cost(c)) == pytest.approx(c)
    with pytest.raises(ValueError, match="lo < hi"):
        UniformPrior(1.0, 1.0)


class PowerPrior(CostPrior):
    """F(c) = c^2 on [0, 1]: phi(c) = 1.5 c (regular); inverse through the generic bisection."""

    lo, hi = 0.0, 1.0

    def cdf(self, c):
        return np.clip(c, 0.0, 1.0) ** 2

    def pdf(self, c):
        return np.where((c > 0.0) & (c <= 1.0), 2.0 * np.asarray(c, dtype=float), 1e-300)


def test_myerson_threshold_payment_reserve_and_pluggable_prior() -> None:
    info = make_info([1.0, 1.0])
    mech = One(Myerson(quality="prior"))
    mech.reset(info, np.random.default_rng(0))
    np.testing.assert_allclose(mech.reserves(0), [0.5, 0.5])
    np.testing.assert_allclose(mech.public_state(CONTEXTS[0], 0), [1, 1, 0.5, 0.5])
    assert mech.allocate(np.array([0.2, 0.4]), CONTEXTS[0], 0) == (0, pytest.approx(0.4))
    assert mech.allocate(np.array([0.2, 0.7]), CONTEXTS[0], 0) == (0, pytest.approx(0.5))
    assert mech.allocate(np.array([0.6, 0.7]), CONTEXTS[0], 0) == (NO_WINNER, 0.0)
    # Asymmetric values: w = argmax [v - 2b]; pay phi^-1(v_w - best other index) = (v_w - rival) / 2.
    mech = One(Myerson(quality="prior"))
    mech.reset(make_info([1.0, 0.6]), np.random.default_rng(0))
    w, p = mech.allocate(np.array([0.25, 0.1]), CONTEXTS[0], 0)  # indices 1 - 0.5 = 0.5 and 0.6 - 0.2 = 0.4
    assert w == 0 and p == pytest.approx((1.0 - 0.4) / 2)
    # The cap: v = 3 > 2 hi, so the reserve 1.5 is capped to the support top 1; a bid above 1 is not eligible.
    mech = One(Myerson(quality="prior"))
    mech.reset(make_info([1.0], value_scale=3.0, cost_range=[[0.0, 1.0]]), np.random.default_rng(0))
    assert mech.allocate(np.array([0.9]), CONTEXTS[0], 0) == (0, pytest.approx(1.0))
    assert mech.allocate(np.array([1.1]), CONTEXTS[0], 0) == (NO_WINNER, 0.0)
    mech = One(Myerson(quality="prior", support_cap=False))
    mech.reset(make_info([1.0], value_scale=3.0, cost_range=[[0.0, 1.0]]), np.random.default_rng(0))
    assert mech.allocate(np.array([1.1]), CONTEXTS[0], 0) == (0, pytest.approx(1.5))
    # A non-uniform prior: phi = 1.5 c, so one provider with v = 0.9 has reserve 0.6 and is paid it.
    mech = One(Myerson(quality="prior", priors=PowerPrior()))
    mech.reset(make_info([0.9]), np.random.default_rng(0))
    assert mech.reserves(0)[0] == pytest.approx(0.6, abs=1e-9)
    assert mech.allocate(np.array([0.3]), CONTEXTS[0], 0) == (0, pytest.approx(0.6, abs=1e-9))
    assert mech.allocate(np.array([0.61]), CONTEXTS[0], 0)[0] == NO_WINNER
    with pytest.raises(ValueError, match="2 priors given for 1"):
        One(Myerson(priors=[PowerPrior(), PowerPrior()]), make_info([0.9]))


def test_myerson_reads_a_bid_below_the_support_as_its_bottom() -> None:
    """The defect: phi(c) = 2c - lo extended below lo gave a negative virtual cost, and every round, to a provider
    asking less than any cost it can have. Below the support phi is lo, and the payment is still the threshold."""
    pr = UniformPrior(0.4, 1.0)
    assert pr.virtual_cost(0.1) == pr.virtual_cost(0.4) == pytest.approx(0.4)
    assert pr.inverse_virtual_cost(-1.0) == pytest.approx(0.4)
    mech = One(Myerson(quality="prior"))
    mech.reset(make_info([0.5, 0.5], cost_range=[[0.4, 1.0], [0.0, 1.0]]), np.random.default_rng(0))
    # Provider 0 asks 0 (below its support [0.4, 1]): index 0.5 - 0.4 = 0.1, never above what the prior allows.
    np.testing.assert_allclose(mech.indices(np.array([0.0, 0.2]), 0), [0.1, 0.1])
    w, p = mech.allocate(np.array([0.0, 0.22]), CONTEXTS[0], 0)  # rival index 0.5 - 0.44 = 0.06
    assert w == 0 and p == pytest.approx((0.5 - 0.06 + 0.4) / 2)


def test_myerson_prior_covers_every_model_on_the_menu() -> None:
    """capitals: provider_0 declares the 3B but may serve the 1B, so its public cost range reaches down to the 1B's
    per-query cost; a substituting provider bidding the 1B's cost gets a virtual cost inside its prior, >= lo."""
    market = parallel_env("capitals", "myerson", seed=0)
    mk, cfg = market.market, market.config
    mean_tokens = (mk.input_tokens + mk.output_tokens).mean(axis=0)
    per_query = mk.base_cost * mean_tokens  # [N, M]
    lo, hi = market.info.cost_range.T
    for i in range(cfg.n):
        on_menu = per_query[i, mk.menu[i]]
        assert lo[i] == pytest.approx(on_menu.min() * cfg.cost_low)
        assert hi[i] == pytest.approx(on_menu.max() * cfg.cost_high)
    assert lo[0] < per_query[0, mk.declared[0]] * cfg.cost_low  # the 1B is cheaper than the declared 3B
    market.reset(seed=0)
    phi = market.mechanism.virtual_costs(np.zeros((1, 2)))[0]
    assert np.all(phi >= lo - 1e-12)


def test_myerson_substitution_no_longer_buys_every_round() -> None:
    """Serving the 1B and bidding its cost bought phi < 0 and won every round (+0.33 per round at T = 1024). With the
    prior covering the menu and phi flat below it, the deviation wins only where its index does (quality learning is
    slow to unmask it: a real, smaller exploit)."""
    from agents.scripted import ScriptedPolicy
    from envs import make_batched
    from evaluation.rollout import play

    seeds = [0, 1, 2]
    market = make_batched("capitals", "myerson", len(seeds), horizon=1024)
    lay = market.layout
    honest = {a: ScriptedPolicy(lay) for a in market.possible_agents}
    deviate = {**honest, "provider_0": ScriptedPolicy(lay, cost_of="served", substitution=1.0)}
    dev, base = play(market, deviate, seeds), play(market, honest, seeds)
    win_rate = np.mean([d["provider_0/win_rate"] for d in dev])
    gain = np.mean([d["provider_0/profit"] - h["provider_0/profit"] for d, h in zip(dev, base)])
    assert win_rate < 0.95 and gain < 0.2, (win_rate, gain)


def run_truthful(market, steps: int):
    """Truthful play (the all-zero action is honest, exactly); yields the infos of each round."""
    market.reset(seed=0)
    zero = np.zeros(3, dtype=np.float32)
    for _ in range(steps):
        _, _, _, _, infos = market.step(dict.fromkeys(market.agents, zero))
        yield infos
        if not market.agents:
            market.reset()


def test_myerson_on_uniform_one_provider_reaches_the_optimal_user_utility() -> None:
    """One provider, cost U[0, 1], v = 1: reserve 1/2, trade iff cost <= 1/2, user utility v^2 / 4 (§8)."""
    market = parallel_env("uniform", "myerson", seed=0, n_providers=1)
    np.testing.assert_allclose(market.mechanism.reserves(np.array([0]))[0], [0.5])
    utility = []
    for infos in run_truthful(market, 12_000):
        me = infos["provider_0"]
        assert me["won"] == (me["honest_bid"] <= 0.5)
        if me["won"]:
            assert me["payment"] == pytest.approx(0.5) and me["profit"] >= 0.0
        utility.append(me["market"]["user_utility"])
    u = np.array(utility)
    se = u.std(ddof=1) / math.sqrt(len(u))
    assert abs(u.mean() - 0.25) <= Z * se, (u.mean(), se)
    assert se < 0.005


def test_myerson_on_uniform_two_providers_lowest_bid_wins_paid_min_second_and_reserve() -> None:
    market = parallel_env("uniform", "myerson", seed=1, n_providers=2)
    utility = []
    for infos in run_truthful(market, 8000):
        bids = np.array([infos[a]["bid"] for a in ("provider_0", "provider_1")])
        winner = infos["provider_0"]["market"]["winner"]
        if bids.min() <= 0.5:
            assert winner == int(bids.argmin())
            assert infos["provider_0"]["market"]["payment"] == pytest.approx(min(bids.max(), 0.5))
        else:
            assert winner == NO_WINNER
        utility.append(infos["provider_0"]["market"]["user_utility"])
    u = np.array(utility)
    # E[(1 - min(c_(2), 1/2)) 1{c_(1) <= 1/2}] = 1/4 + 1/6 for two U[0, 1] costs.
    assert abs(u.mean() - 5 / 12) <= Z * u.std(ddof=1) / math.sqrt(len(u))


# ------------------------------------------------------------------------------------- monotone allocations


def choose(rule, bids, context, group: int = 0, ties=None) -> int:
    """One market's winner under an allocation rule (ties broken by ``ties``, default: lowest noise to none)."""
    noise = np.zeros((1, len(bids))) if ties is None else np.asarray(ties, dtype=float)[None]
    return int(rule.choose(np.asarray(bids, dtype=float)[None], np.atleast_2d(context), np.array([group]), noise)[0])


def learn(rule, winner: int, score: float, x, group: int = 0) -> None:
    rule.update(
        Outcome(
            np.array([winner]),
            np.array([score]),
            np.array([0]),
            np.array([0]),
            np.array([0.0]),
            np.atleast_2d(x),
            np.array([group]),
        )
    )


def test_myerson_allocation_monotone_in_own_bid() -> None:
    rng = np.random.default_rng(13)
    mech = build("myerson")
    grid = np.linspace(0.0, 1.2, 61)
    for _ in range(300):
        bids = rng.random(3)
        i = int(rng.integers(3))
        won = []
        for b in grid:
            bids[i] = b
            won.append(mech.allocate(bids, CONTEXTS[0], 0)[0] == i)
        assert all(a >= b for a, b in itertools.pairwise(won)), won


@pytest.mark.parametrize("allocation", ["linucb", "greedy", "linucb_opt"])
def test_rosa_allocation_monotone_in_own_bid_pathwise(allocation) -> None:
    """With the history fixed, the raw rule is monotone, and so is every realization of the wrapper under common
    randomness (a higher bid is resampled to a higher ask with the same coin and nu)."""
    mech = warmed_rosa(allocation, mu=0.3)
    rule = mech.allocation
    rng = np.random.default_rng(14)
    gen = np.random.default_rng(15)
    mech.rng = gen
    grid = np.linspace(0.0, 1.1, 45)
    n_changes = 0
    for k in range(300):
        bids = rng.random(3)
        i = int(rng.integers(3))
        ctx = CONTEXTS[k % len(CONTEXTS)]
        state = gen.bit_generator.state
        raw, wrapped = [], []
        for b in grid:
            bids[i] = b
            raw.append(choose(rule, np.where(bids > mech.cbar, np.inf, bids), ctx) == i)
            gen.bit_generator.state = state
            wrapped.append(mech.allocate(bids, ctx, 0)[0] == i)
        assert all(a >= b for a, b in itertools.pairwise(raw)), raw
        assert all(a >= b for a, b in itertools.pairwise(wrapped)), wrapped
        assert not wrapped[-1]  # bids above cbar never win
        n_changes += wrapped[0] != wrapped[-1]
    assert n_changes > 100


def test_soft_rochet_allocation_monotone_in_own_bid() -> None:
    mech = soft(0.05)
    rng = np.random.default_rng(16)
    grid = np.linspace(0.0, 1.2, 41)
    for _ in range(200):
        bids = rng.random(3)
        i = int(rng.integers(3))
        xs = []
        for b in grid:
            bids[i] = b
            xs.append(mech.allocation_probabilities(bids, 0).copy())
        xs = np.array(xs)
        assert np.all(np.diff(xs[:, i]) < 0)  # own probability strictly decreasing
        assert np.all(np.diff(np.delete(xs, i, axis=1), axis=0) >= -1e-15)  # the others' never decrease


# ------------------------------------------------------------------------------------------ LinUCB internals


def test_linucb_sherman_morrison_matches_ridge_regression() -> None:
    info = make_info([0.5, 0.6], d=6)
    rule = LinUCBAllocation(alpha=0.7, ridge=2.0)
    rule.reset(info, 1)
    rng = np.random.default_rng(17)
    X, y = [], []
    for _ in range(150):
        x = rng.normal(size=6)
        s = float(rng.random())
        learn(rule, 1, s, x)
        X.append(x)
        y.append(s - 0.6)
    X, y = np.array(X), np.array(y)
    V = 2.0 * np.eye(6) + X.T @ X
    theta = np.linalg.solve(V, X.T @ y)
    np.testing.assert_allclose(rule.theta[0, 1], theta, atol=1e-9)
    np.testing.assert_allclose(rule.v_inv[0, 1], np.linalg.inv(V), atol=1e-9)
    x = rng.normal(size=6)
    ucb = rule.ucb(x[None], np.array([0]))[0]
    assert ucb[1] == pytest.approx(0.6 + theta @ x + 0.7 * math.sqrt(x @ np.linalg.solve(V, x)))
    assert ucb[0] == pytest.approx(0.5 + 0.7 * math.sqrt(x @ x / 2.0))  # provider 0 never won
    learn(rule, 0, 1.0, x)  # the cache is invalidated by an update
    assert rule.ucb(x[None], np.array([0]))[0, 0] != pytest.approx(0.5 + 0.7 * math.sqrt(x @ x / 2.0))


def test_greedy_allocation_is_known_quality_scoring() -> None:
    rule = GreedyAllocation()
    rule.reset(make_info(PRIOR), 1)
    assert choose(rule, [0.5, 0.5, 0.5], CONTEXTS[0]) == 1
    assert choose(rule, [0.1, 0.5, 0.5], CONTEXTS[0]) == 0
    assert choose(rule, [0.9, 0.95, np.inf], CONTEXTS[0]) == NO_WINNER
    assert {choose(rule, [0.8, 0.9, 1.0], CONTEXTS[0], ties=t) for t in ([1, 0, 0], [0, 1, 0])} == {0, 1}  # tie


# ------------------------------------------------------------------------------------ registry, params, the env


def test_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="mu must be in"):
        mechanisms.make("rosa", mu=1.0)
    with pytest.raises(ValueError, match="allocation must be one of"):
        mechanisms.make("rosa", allocation="oracle")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        mechanisms.make("soft_rochet", temperature=0.0)
    with pytest.raises(ValueError, match="w0 must be"):
        mechanisms.make("soft_rochet", w0=0.0)
    with pytest.raises(ValueError, match="weights given for 3"):
        One(mechanisms.make("soft_rochet", weights=[1.0, 1.0]), make_info(PRIOR))
    with pytest.raises(ValueError, match="unknown parameter"):
        mechanisms.make("myerson", reserve=1.0)


@pytest.mark.parametrize("scenario", ["capitals", "uniform"])
@pytest.mark.parametrize(
    "mechanism, params", [("myerson", {}), ("rosa", {}), ("rosa", {"allocation": "greedy"}), ("soft_rochet", {})]
)
def test_env_runs_the_mechanism(scenario, mechanism, params) -> None:
    market = parallel_env(scenario, mechanism, seed=0, horizon=100, **params)
    served = 0
    for infos in run_truthful(market, 300):
        m = infos["provider_0"]["market"]
        served += not m["unserved"]
        assert all(np.isfinite(v) for v in m["mechanism"].values())
        if scenario == "uniform":  # known per-query cost: truthful providers never lose money (ex-post IR)
            assert all(infos[a]["profit"] >= -1e-9 for a in market.possible_agents)
    assert served > 100
    assert market.mechanism.public_state_dim == market.layout.mechanism.stop - market.layout.mechanism.start
