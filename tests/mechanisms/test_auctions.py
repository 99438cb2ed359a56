"""Economic properties of the auction mechanisms, driven directly through the Mechanism interface
(MECHANISMS.md §2-3): payment rules, individual rationality, dominant-strategy truthfulness of second_price,
monotone allocation in the own bid (history fixed), the reserve logic and virtual cost of ucb_myerson, quality
learning, and the registry's error messages.

Every test builds a hand-made :class:`MarketInfo` (N providers, one or two query groups, advertised qualities in
[0, 1], value scale v) and drives one market (:class:`tests.mechanisms.single.One`) round by round with ``allocate``
/ ``update`` like the market env does.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import mechanisms
from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.ucb_myerson import UCBMyerson
from tests.mechanisms.single import One

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TOL = 1e-9
CONTEXT = np.ones(1)

unit = st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False)
value_scales = st.floats(0.5, 10.0, allow_nan=False, allow_infinity=False)


def make_info(prior: np.ndarray, value_scale: float = 1.0) -> MarketInfo:
    """A market with ``prior.shape`` = [N, G] advertised qualities."""
    prior = np.atleast_2d(np.asarray(prior, dtype=float))
    n, g = prior.shape
    return MarketInfo(
        n_providers=n,
        context_dim=1,
        n_groups=g,
        value_scale=float(value_scale),
        bid_scale=float(value_scale),
        prior_quality=prior,
        cost_range=np.tile([0.0, value_scale], (n, 1)),
        price_in=np.zeros(n),
        price_out=np.zeros(n),
        max_output_tokens=100,
        horizon=1000,
    )


def fresh(name: str, info: MarketInfo, **params) -> One:
    return One(mechanisms.make(name, **params), info)


def play(mech: One, history: list[tuple[np.ndarray, float]], group: int = 0) -> None:
    """Run rounds of allocate + update (the winner's observed score is the drawn one)."""
    for bids, score in history:
        w, p = mech.allocate(np.asarray(bids, dtype=float), CONTEXT, group)
        mech.update(w, score, 10, 20, p, CONTEXT, group)


@st.composite
def markets(draw, min_n: int = 1, max_n: int = 4, max_history: int = 8, min_quality: float = 0.0):
    """(info, bids, history): N providers in one group, bids in [0, 1.5 v], a few past rounds."""
    n = draw(st.integers(min_n, max_n))
    v = draw(value_scales)
    prior = np.array(draw(st.lists(st.floats(min_quality, 1.0), min_size=n, max_size=n)))[:, None]
    bid = st.floats(0.0, 1.5 * v, allow_nan=False, allow_infinity=False)
    bids = np.array(draw(st.lists(bid, min_size=n, max_size=n)))
    rounds = st.tuples(st.lists(bid, min_size=n, max_size=n).map(np.array), unit)
    history = draw(st.lists(rounds, max_size=max_history))
    return make_info(prior, v), bids, history


def ucb_markets(**kwargs):
    """Markets with some positive advertised quality (ucb_myerson's default reserve is the best of them)."""
    return markets(min_quality=0.01, **kwargs)


# ------------------------------------------------------------------------------------------------- first_price


@SETTINGS
@given(markets())
def test_first_price_pays_the_bid_and_picks_the_best_nonnegative_score(market) -> None:
    info, bids, history = market
    mech = fresh("first_price", info)
    play(mech, history)
    qhat = mech.quality.qhat(0).copy()
    scores = qhat - bids
    w, p = mech.allocate(bids, CONTEXT, 0)
    if scores.max() < -TOL:
        assert w == NO_WINNER and p == 0.0
    elif scores.max() > TOL:
        assert w != NO_WINNER
    if w != NO_WINNER:
        assert p == bids[w]  # pay-as-bid, exactly
        assert scores[w] >= scores.max() - TOL  # the winner maximizes qhat - bid
        assert scores[w] >= -TOL


@SETTINGS
@given(st.integers(1, 4), value_scales, st.data())
def test_first_price_leaves_the_round_unserved_when_every_score_is_negative(n, v, data) -> None:
    prior = np.array(data.draw(st.lists(unit, min_size=n, max_size=n)))
    excess = np.array(data.draw(st.lists(st.floats(1e-6, v), min_size=n, max_size=n)))
    mech = fresh("first_price", make_info(prior[:, None], v))
    assert mech.allocate(prior * v + excess, CONTEXT, 0) == (NO_WINNER, 0.0)
    assert mech.diagnostics()["unserved_rate"] == 1.0


# ------------------------------------------------------------------------------------------------ second_price


@SETTINGS
@given(markets())
def test_second_price_pays_the_critical_bid(market) -> None:
    info, bids, history = market
    mech = fresh("second_price", info)
    play(mech, history)
    qhat = mech.quality.qhat(0).copy()
    scores = qhat - bids
    w, p = mech.allocate(bids, CONTEXT, 0)
    if scores.max() < -TOL:
        assert w == NO_WINNER
        return
    if w == NO_WINNER:
        return  # a score within round-off of 0
    others = np.delete(scores, w)
    best_other = others.max() if others.size else -np.inf
    assert p == pytest.approx(qhat[w] - max(0.0, best_other), abs=TOL)
    assert p >= bids[w] - TOL  # the winner is paid at least its ask
    assert p <= qhat[w] + TOL  # and never more than the value the platform expects


def second_price_profit(info: MarketInfo, history, bids: np.ndarray, i: int, bid: float, cost: float) -> float:
    mech = fresh("second_price", info)
    play(mech, history)
    b = bids.copy()
    b[i] = bid
    w, p = mech.allocate(b, CONTEXT, 0)
    return p - cost if w == i else 0.0


@SETTINGS
@given(markets(), st.data())
def test_second_price_truthful_bidding_is_individually_rational(market, data) -> None:
    info, bids, history = market
    costs = np.array(
        data.draw(st.lists(st.floats(0.0, 1.5 * info.value_scale), min_size=len(bids), max_size=len(bids)))
    )
    mech = fresh("second_price", info)
    play(mech, history)
    w, p = mech.allocate(costs, CONTEXT, 0)
    if w != NO_WINNER:
        assert p - costs[w] >= -TOL


@SETTINGS
@given(markets(min_n=2), st.data())
def test_second_price_bidding_the_cost_is_a_best_response(market, data) -> None:
    """Dominant strategy: for any others' bids and any history, no deviation on a grid beats bidding the cost."""
    info, bids, history = market
    v = info.value_scale
    i = data.draw(st.integers(0, len(bids) - 1))
    cost = data.draw(st.floats(0.0, 1.5 * v))
    truthful = second_price_profit(info, history, bids, i, cost, cost)
    assert truthful >= -TOL
    grid = np.concatenate([np.linspace(0.0, 2.0 * v, 41), cost + np.array([-0.1, -0.01, 0.01, 0.1]) * v])
    for dev in grid[grid >= 0.0]:
        assert second_price_profit(info, history, bids, i, float(dev), cost) <= truthful + TOL, dev


def test_second_price_deviation_check_has_power() -> None:
    """The same check catches a profitable deviation under first_price, so the best-response test can fail."""
    info = make_info(np.array([[0.9], [0.8]]), 1.0)
    mech = fresh("first_price", info)
    cost, other = 0.1, 0.5  # scores: 0.8 vs 0.3; provider 0 wins up to a bid of 0.6
    w, p = copy.deepcopy(mech).allocate(np.array([cost, other]), CONTEXT, 0)
    assert (w, p - cost) == (0, 0.0)
    w, p = copy.deepcopy(mech).allocate(np.array([0.55, other]), CONTEXT, 0)
    assert w == 0 and p - cost == pytest.approx(0.45)


# ----------------------------------------------------------------------------------------- monotone allocation


def own_bid_grid(mech: Mechanism, extra) -> np.ndarray:
    """Own bids to scan: a regular grid over [0, 1.5 v], both sides of every ucb_myerson histogram bin edge, and
    hypothesis-drawn points."""
    v = mech.info.value_scale
    grid = [np.linspace(0.0, 1.5 * v, 61), np.asarray(extra, dtype=float)]
    if isinstance(mech, UCBMyerson):
        edges = mech.width * np.arange(1, mech.bins + 1)
        grid += [edges - 1e-7 * v, edges + 1e-7 * v]
    grid = np.concatenate(grid)
    return np.unique(grid[grid >= 0.0])


def assert_monotone_allocation(mech: Mechanism, bids: np.ndarray, i: int, extra) -> None:
    """With the mechanism's history fixed (each trial runs on a deep copy), if provider i wins at some own bid it
    wins at every lower one: its win indicator is non-increasing along the sorted grid of own bids."""
    grid = own_bid_grid(mech, extra)
    won = np.empty(grid.shape, dtype=bool)
    for k, b in enumerate(grid):
        trial = bids.copy()
        trial[i] = b
        won[k] = copy.deepcopy(mech).allocate(trial, CONTEXT, 0)[0] == i
    if won.any():
        last = np.flatnonzero(won).max()
        assert won[: last + 1].all(), (
            f"provider {i} wins at {grid[last]:.6g} but loses at the lower bid "
            f"{grid[np.flatnonzero(~won[:last])[0]]:.6g}"
        )


own_bids = st.lists(st.floats(0.0, 15.0), max_size=3)


@settings(SETTINGS, max_examples=100)
@pytest.mark.parametrize("name", ["first_price", "second_price"])
@given(market=markets(), i=st.integers(0, 3), extra=own_bids)
def test_scoring_allocation_is_monotone_in_own_bid(name, market, i, extra) -> None:
    info, bids, history = market
    assume(i < info.n_providers)
    mech = fresh(name, info)
    play(mech, history)  # history fixed from here on
    assert_monotone_allocation(mech, bids, i, extra)


@settings(SETTINGS, max_examples=100)
@given(market=ucb_markets(), i=st.integers(0, 3), extra=own_bids)
def test_ucb_myerson_allocation_is_monotone_in_own_bid_without_bid_history(market, i, extra) -> None:
    """With the history of wins and observed values fixed but the bid histograms empty, every virtual cost is 2b
    and the allocation is monotone in the own bid (reserve, untried-first and UCB index included)."""
    info, bids, history = market
    assume(i < info.n_providers)
    mech = fresh("ucb_myerson", info)
    play(mech, history)
    mech.hist[:] = 0.0  # keep what was learned about values, forget the bids
    mech.n_bids[:] = 0.0
    assert_monotone_allocation(mech, bids, i, extra)


@st.composite
def concentrated_histories(draw):
    """ucb markets whose past rounds repeat (providers that ask about the same price again and again), which makes
    the empirical bid densities, and so the virtual costs, far from uniform."""
    info, bids, history = draw(ucb_markets(min_n=2, max_history=6))
    reps = draw(st.lists(st.integers(1, 40), min_size=len(history), max_size=len(history)))
    return info, bids, [r for r, k in zip(history, reps) for _ in range(k)]


@settings(SETTINGS, max_examples=100)
@given(market=concentrated_histories(), i=st.integers(0, 3), extra=own_bids)
def test_ucb_myerson_allocation_moves_only_with_the_virtual_cost(market, i, extra) -> None:
    """With any fixed history, winning at a higher own bid and losing at a lower one requires the virtual cost to be
    higher at the lower bid: eligibility (reserve) and untried-first are monotone, and the index falls with phi.
    So the allocation is monotone in the bid exactly when phi_i is."""
    info, bids, history = market
    assume(i < info.n_providers)
    mech = fresh("ucb_myerson", info)
    play(mech, history)
    grid = own_bid_grid(mech, extra)
    won = np.empty(grid.shape, dtype=bool)
    phi = np.empty(grid.shape)
    for k, b in enumerate(grid):
        trial = bids.copy()
        trial[i] = b
        phi[k] = mech.virtual_cost(trial)[i]
        won[k] = copy.deepcopy(mech).allocate(trial, CONTEXT, 0)[0] == i
    lo, hi = np.nonzero(np.triu(np.ones((grid.size, grid.size), dtype=bool), 1))  # every pair lo < hi
    inverted = won[hi] & ~won[lo]
    assert np.all(phi[lo][inverted] > phi[hi][inverted]), "allocation non-monotone where phi is not"
    assert not np.any(won & (grid > mech.reserve))  # never serves an ask above the reserve


def ucb_with_concentrated_history(ironed: bool = True) -> One:
    """Provider 0 has asked 0.52 (bin [0.50, 0.55) of 20 on [0, 1]) a hundred times, provider 1 asked 0.9; both have
    won and delivered value 1 every time (no exploration bonus)."""
    info = make_info(np.array([[0.5], [0.5]]), 1.0)
    mech = fresh("ucb_myerson", info, reserve=1.0, bins=20, prior_weight=2.0, exploration=0.0, ironed=ironed)
    play(mech, [(np.array([0.52, 0.9]), 1.0)] * 100)
    assert mech.wins.min() > 0
    return mech


def test_unironed_ucb_myerson_virtual_cost_drops_at_a_dense_bin_edge() -> None:
    """The rule as published (ironed=False): F/f of the histogram halves phi at the edge, which is why the default
    irons it."""
    mech = ucb_with_concentrated_history(ironed=False)
    phi = lambda b0: mech.virtual_cost(np.array([b0, 0.0]))[0]  # noqa: E731
    assert phi(0.499) == pytest.approx(0.998, abs=1e-3)  # below the edge: F/f of the uniform prior, b
    assert phi(0.5) == pytest.approx(0.5, abs=1e-3)  # at the edge: f jumps by 100 pseudo-bids


def test_ucb_myerson_allocation_is_monotone_in_own_bid() -> None:
    """The history where the published rule inverts the allocation: ironed, a lower ask never loses where a higher
    one wins, and the unironed rule does invert it (so this test can tell the two apart)."""
    other = np.array([0.0, 0.3])  # provider 1's virtual cost 0.6 (its history lies far above 0.3)
    grid = np.linspace(0.0, 1.0, 401)

    def wins(mech):
        return np.array([copy.deepcopy(mech).allocate(np.array([b, 0.3]), CONTEXT, 0)[0] == 0 for b in grid])

    ironed = wins(ucb_with_concentrated_history())
    if ironed.any():
        assert ironed[: np.flatnonzero(ironed).max() + 1].all()
    raw = wins(ucb_with_concentrated_history(ironed=False))
    assert raw.any() and not raw[: np.flatnonzero(raw).max() + 1].all()
    assert other[1] == 0.3


def test_ucb_myerson_virtual_cost_is_increasing_in_the_bid() -> None:
    mech = ucb_with_concentrated_history()
    grid = np.linspace(0.0, 1.0, 401)
    phi = np.array([mech.virtual_cost(np.array([b, 0.0]))[0] for b in grid])
    assert np.all(np.diff(phi) >= 0.0)


# ------------------------------------------------------------------------------------------------ ucb_myerson


@SETTINGS
@given(ucb_markets(), st.floats(0.05, 5.0))
def test_ucb_myerson_skips_when_every_bid_exceeds_the_reserve(market, reserve) -> None:
    info, bids, history = market
    mech = fresh("ucb_myerson", info, reserve=reserve)
    play(mech, history)
    w, p = mech.allocate(reserve + 1e-6 + bids, CONTEXT, 0)
    assert (w, p) == (NO_WINNER, 0.0)


@SETTINGS
@given(ucb_markets())
def test_ucb_myerson_default_reserve_is_the_best_advertised_value(market) -> None:
    info, bids, _ = market
    mech = fresh("ucb_myerson", info)
    r = info.value_scale * info.prior_quality.max()
    assert mech.reserve == pytest.approx(r)
    assume(r > 0)
    assert mech.allocate(np.full(len(bids), r * 1.001 + 1e-9), CONTEXT, 0)[0] == NO_WINNER


@SETTINGS
@given(ucb_markets(), st.one_of(st.none(), st.floats(0.05, 5.0)))
def test_ucb_myerson_pays_the_reserve_capped_second_lowest_bid(market, reserve) -> None:
    """The published rule (seed 001's calculate_payment): P = min(r, second-lowest of all N bids), ineligible bids
    included; with two providers the higher bidder, if it wins, is paid its own bid."""
    info, bids, history = market
    mech = fresh("ucb_myerson", info, reserve=reserve)
    play(mech, history)
    r = mech.reserve
    eligible = bids <= r
    w, p = mech.allocate(bids, CONTEXT, 0)
    if not eligible.any():
        assert w == NO_WINNER
        return
    assert w != NO_WINNER and eligible[w]  # some eligible provider is always served
    second = np.sort(bids)[1] if bids.size > 1 else bids[0]
    assert p == min(r, second)
    if bids.size == 2:
        assert p >= bids[w]


@SETTINGS
@given(ucb_markets(), st.one_of(st.none(), st.floats(0.05, 5.0)))
def test_ucb_myerson_next_higher_variant_pays_between_the_bid_and_the_reserve(market, reserve) -> None:
    info, bids, history = market
    mech = fresh("ucb_myerson", info, reserve=reserve, payment="next_higher")
    play(mech, history)
    r = mech.reserve
    w, p = mech.allocate(bids, CONTEXT, 0)
    if w == NO_WINNER:
        assert not (bids <= r).any()
        return
    assert bids[w] <= p <= r
    above = np.delete(bids, w)
    above = above[above >= bids[w]]
    assert p == (min(r, above.min()) if above.size else r)  # min(reserve, next-lowest bid at or above its own)


def test_ucb_myerson_pays_a_lone_low_bidder_the_other_bid_not_the_reserve() -> None:
    """The defect of the earlier rule: a winner with no higher bid was paid the reserve; the published rule pays
    min(r, second-lowest bid) - here the winner's own bid, as the other ask is higher than the reserve."""
    mech = fresh("ucb_myerson", make_info(np.array([[0.9], [0.9]]), 1.0), reserve=1.0)
    w, p = mech.allocate(np.array([0.3, 1.5]), CONTEXT, 0)
    assert (w, p) == (0, 1.0)  # second-lowest bid 1.5 is capped at r
    w, p = mech.allocate(np.array([0.3, 0.45]), CONTEXT, 0)
    assert p == 0.45


@pytest.mark.parametrize("value, expected", [("net", 0.8 - 0.35), ("gross", 0.8)])
def test_ucb_myerson_learns_the_net_value_by_default(value, expected) -> None:
    """Seed 001's update_model_stats: the UCB mean is the observed net value V - P (``value="gross"``: V)."""
    kwargs = {} if value == "net" else {"value": value}
    mech = fresh("ucb_myerson", make_info(np.array([[0.9], [0.9]]), 2.0), reserve=1.0, exploration=0.0, **kwargs)
    w, p = mech.allocate(np.array([0.2, 0.35]), CONTEXT, 0)
    assert (w, p) == (0, 0.35)
    mech.update(w, 0.4, 10, 20, p, CONTEXT, 0)
    assert mech.ucb()[0] == pytest.approx(expected)


def test_ucb_myerson_duopoly_incumbent_at_the_lowest_ask_is_paid_the_rivals_ask() -> None:
    """The mechanics behind benchmarks/collusion.py's ucb_myerson result (mean payment 0.50 in every session): with
    two providers P_w = min(r, second-lowest bid) is the *higher* of the two asks, so an incumbent that always asks
    the lowest grid ask 0.05 is paid its rival's ask. Provider 1's stale history (it won at price r = 1, net value 0)
    keeps its UCB index below the incumbent's, so while it asks each grid ask in turn (a Q-learner that never wins
    cycles through its grid) provider 0 wins every round, the price is the rival's ask - 0.05 when both ask 0.05 - and
    the mean payment of a cycle is the grid mean 0.50. With this history (the incumbent asked 0.05, and above r in the
    stale phase: bids clipped to r, in the top bin) any other own ask up to 0.90 loses: all its bids at 0.05 lie below
    it, so F/f is about n_bids / prior density."""
    grid = np.round(0.05 * np.arange(1, 20), 2)
    mech = fresh("ucb_myerson", make_info(np.array([[1.0], [1.0]]), 1.0))  # reserve 1, 20 bins, c = 0.5
    play(mech, [(np.array([1.5, 0.95]), 1.0)] * 50)  # provider 0 above the reserve: provider 1 wins, paid r = 1
    assert mech.wins.tolist() == [0.0, 50.0] and mech.value_sum[1] == 0.0
    paid = []
    for _ in range(20):
        for ask in grid:
            w, p = mech.allocate(np.array([0.05, ask]), CONTEXT, 0)
            mech.update(w, 1.0, 10, 20, p, CONTEXT, 0)
            assert w == 0 and p == pytest.approx(ask)
            paid.append(p)
    assert np.mean(paid) == pytest.approx(0.5)
    u = mech.ucb()
    assert u[0] > u[1]  # incumbent: net value 0.5 per win; rival: 0 + c sqrt(ln t / 50)
    for ask in grid[1:-1]:  # the incumbent deviating upwards loses even to the rival's highest ask
        trial = copy.deepcopy(mech)
        assert trial.virtual_cost(np.array([ask, 0.95]))[0] > 100.0
        assert trial.allocate(np.array([ask, 0.95]), CONTEXT, 0)[0] == 1


def test_ucb_myerson_bins_an_ask_on_a_bin_edge_by_its_value_not_by_rounding() -> None:
    """Asks that are multiples of the bin width r / bins sit on a left bin edge. In floating point 0.15 / 0.05 is
    2.9999999999999996, so truncating the quotient put 0.15, 0.30, 0.35, 0.60, 0.70 and 0.95 - six of the 19 asks of
    Banchio and Skrzypacz's grid - at the top of the bin below while 0.05, 0.10, 0.20, ... start their own bin: the
    own atom then counted as lying below the bid (F/f ~ one bin width) for those asks only."""
    grid = np.round(0.05 * np.arange(1, 20), 2)
    mech = fresh("ucb_myerson", make_info(np.array([[1.0]]), 1.0), reserve=1.0, bins=20, prior_weight=2.0)
    _, k = mech.mech._bin(grid[None])
    assert k[0].tolist() == list(range(1, 20))
    for ask in grid:
        m = fresh("ucb_myerson", make_info(np.array([[1.0], [1.0]]), 1.0), reserve=1.0, bins=20, prior_weight=2.0)
        play(m, [(np.array([ask, 0.5]), 1.0)] * 100)
        k = round(ask / 0.05)
        assert m.hist[0, k] == 100.0
        # The bids are an atom at the bin's left edge: F(ask) holds only the prior's mass, f the atom spread on the bin.
        expected = ask + (2.0 * ask) / (2.0 + 100.0 / 0.05)
        assert m.virtual_cost(np.array([ask, 0.5]))[0] == pytest.approx(expected, rel=1e-9), ask


@SETTINGS
@given(
    ucb_markets(max_history=30), st.one_of(st.none(), st.floats(0.05, 5.0)), st.integers(2, 30), st.floats(0.1, 10.0)
)
def test_ucb_myerson_virtual_cost_is_at_least_the_bid(market, reserve, bins, prior_weight) -> None:
    info, bids, history = market
    mech = fresh("ucb_myerson", info, reserve=reserve, bins=bins, prior_weight=prior_weight)
    play(mech, history)
    phi = mech.virtual_cost(bids)
    assert np.all(phi >= bids)
    assert np.all(np.isfinite(phi))


@SETTINGS
@given(
    st.integers(1, 4),
    value_scales,
    st.one_of(st.none(), st.floats(0.05, 5.0)),
    st.integers(2, 30),
    st.floats(0.1, 10.0),
    st.data(),
)
def test_ucb_myerson_virtual_cost_without_history_is_twice_the_bid(n, v, reserve, bins, prior_weight, data) -> None:
    """No bids yet: F and f are the uniform prior on [0, r], so phi(b) = b + b = 2b (MECHANISMS.md §4)."""
    prior = np.array(data.draw(st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n)))[:, None]
    mech = fresh("ucb_myerson", make_info(prior, v), reserve=reserve, bins=bins, prior_weight=prior_weight)
    b = np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))) * mech.reserve
    np.testing.assert_allclose(mech.virtual_cost(b), 2.0 * b, rtol=1e-9, atol=1e-12)


@settings(SETTINGS, max_examples=100)
@given(ucb_markets(max_history=30), st.integers(0, 3), st.integers(2, 30))
def test_ucb_myerson_virtual_cost_increases_within_a_histogram_bin(market, i, bins) -> None:
    """Inside one bin F rises at the rate f, so F/f has slope 1 and the raw phi slope 2: increasing between edges
    (the drops can only be at edges, which is what ironing lifts)."""
    info, _, history = market
    assume(i < info.n_providers)
    mech = fresh("ucb_myerson", info, reserve=1.0, bins=bins, ironed=False)
    play(mech, history)
    grid = np.linspace(0.0, 1.0, 6 * bins + 1)
    phi = np.array([mech.virtual_cost(np.where(np.arange(info.n_providers) == i, b, 0.0))[i] for b in grid])
    k = mech.mech._bin(grid[None])[1][0]  # the mechanism's own binning
    same_bin = k[:-1] == k[1:]
    np.testing.assert_allclose(np.diff(phi)[same_bin], 2.0 * (grid[1] - grid[0]), rtol=1e-6)


def test_ucb_myerson_rejects_a_zero_default_reserve() -> None:
    info = make_info(np.zeros((2, 1)), 1.0)
    with pytest.raises(ValueError, match="reserve"):
        fresh("ucb_myerson", info)
    assert fresh("ucb_myerson", info, reserve=0.5).reserve == 0.5


def test_ucb_myerson_tries_untried_providers_first_cheapest_first() -> None:
    mech = fresh("ucb_myerson", make_info(np.array([[0.9], [0.9], [0.9]]), 1.0), reserve=1.0)
    assert mech.allocate(np.array([0.6, 0.4, 0.95]), CONTEXT, 0)[0] == 1
    mech.update(1, 1.0, 1, 1, 0.6, CONTEXT, 0)
    assert mech.allocate(np.array([0.6, 0.1, 0.7]), CONTEXT, 0)[0] == 0  # 1 is tried; 0 is the cheapest untried


# ---------------------------------------------------------------------------------------------- quality learning


@SETTINGS
@given(
    st.sampled_from(["first_price", "second_price"]),
    st.floats(0.3, 1.0),
    st.floats(0.0, 0.9),
    st.integers(5, 40),
    value_scales,
    st.floats(0.0, 0.25),
)
def test_learned_quality_falls_with_low_scores_and_costs_allocations(name, prior, gap, rounds, v, bid) -> None:
    """A provider whose observed scores are below its advertised quality loses qhat, and so loses the rounds it tied
    for at equal bids to an equally advertised rival (MECHANISMS.md §2, quality learning)."""
    observed = prior * (1.0 - gap) - 0.05  # strictly below the prior
    assume(observed >= 0.0)
    info = make_info(np.array([[prior, 0.0], [prior, 0.0]]), v)  # two groups: learning is per group
    mech = fresh(name, info, quality="learned")
    bids = np.full(2, bid * v * prior)
    assert {
        copy.deepcopy(mech).allocate(bids, CONTEXT, 0)[0] for mech.rng in map(np.random.default_rng, range(30))
    } == {0, 1}  # equal scores: the tie is broken at random
    before = mech.quality.qhat(0).copy()
    for _ in range(rounds):
        mech.update(0, observed, 1, 1, 0.0, CONTEXT, 0)
    after = mech.quality.qhat(0).copy()
    assert after[0] < before[0] and after[1] == before[1]
    assert after[0] > v * observed  # shrunk toward the prior, not replaced by the sample mean
    np.testing.assert_array_equal(mech.quality.qhat(1), [0.0, 0.0])  # other group untouched
    assert mech.allocate(bids, CONTEXT, 0)[0] == 1
    np.testing.assert_allclose(mech.public_state(CONTEXT, 0), after / v)


@SETTINGS
@given(st.sampled_from(["first_price", "second_price"]), markets())
def test_prior_quality_never_changes(name, market) -> None:
    info, _, history = market
    mech = fresh(name, info, quality="prior")
    before = mech.quality.qhat(0).copy()
    np.testing.assert_allclose(before, info.value_scale * info.prior_quality[:, 0], rtol=1e-12)
    play(mech, history)
    for _ in range(5):
        mech.update(0, 0.0, 1, 1, 0.0, CONTEXT, 0)
    np.testing.assert_array_equal(mech.quality.qhat(0), before)


def test_learned_quality_converges_toward_the_observed_mean() -> None:
    info = make_info(np.array([[0.9]]), 2.0)
    mech = fresh("first_price", info, quality="learned", prior_weight=5.0)
    for _ in range(995):
        mech.update(0, 0.3, 1, 1, 0.0, CONTEXT, 0)
    # (5 * 0.9 + 995 * 0.3) / 1000 = 0.303 of value_scale 2
    assert mech.quality.qhat(0)[0] == pytest.approx(2.0 * 0.303)


# ------------------------------------------------------------------------------------------------------ registry


def test_make_rejects_unknown_names_listing_the_registry() -> None:
    with pytest.raises(ValueError, match="unknown mechanism 'vickrey'") as err:
        mechanisms.make("vickrey")
    for name in ("first_price", "second_price", "ucb_myerson"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    "name, accepted",
    [
        ("first_price", ["quality", "prior_weight"]),
        ("second_price", ["quality", "prior_weight"]),
        ("ucb_myerson", ["reserve", "exploration", "bins", "prior_weight"]),
    ],
)
def test_make_rejects_unknown_parameters_listing_the_accepted_ones(name, accepted) -> None:
    with pytest.raises(ValueError, match="reserv_price") as err:
        mechanisms.make(name, reserv_price=1.0)
    for p in accepted:
        assert repr(p) in str(err.value)


def test_make_rejects_bad_parameter_values() -> None:
    with pytest.raises(ValueError, match="parameter 'quality'"):
        mechanisms.make("first_price", quality="trusted")
    with pytest.raises(ValueError, match="reserve"):
        mechanisms.make("ucb_myerson", reserve=0.0)
    with pytest.raises(ValueError, match="bins"):
        mechanisms.make("ucb_myerson", bins=1)


def test_registry_builds_fresh_instances_of_the_named_class() -> None:
    for name, cls in mechanisms.REGISTRY.items():
        a, b = mechanisms.make(name), mechanisms.make(name)
        assert type(a) is cls and a is not b and a.name == name
    assert isinstance(mechanisms.make("ucb_myerson", reserve=2.0), UCBMyerson)


@pytest.mark.parametrize("name", ["first_price", "second_price"])
@pytest.mark.parametrize("n", [2, 3])
def test_scoring_auctions_draw_a_tie_coin_only_on_a_tie_uniformly_and_alike_on_both_paths(name, n) -> None:
    """First and second price break a tie of the best score with N uniforms drawn from the tied market's own
    generator at that moment; a market without a tie draws nothing. Over 6,000 markets whose N
    providers tie, every provider wins 1/N of them (99.9% binomial bounds), and each market's single-market path
    (``allocate_one``, the PettingZoo env's) picks the same winner from the same draws."""
    E = 6_000
    info = make_info(np.full((n, 1), 0.8))
    seeds = np.random.SeedSequence(7).spawn(E)
    batched, rngs = mechanisms.make(name), [np.random.default_rng(s) for s in seeds]
    batched.reset(info, E, rngs)
    bids = np.full((E, n), 0.3)
    bids[::2, -1] = 0.2  # even markets: the last provider wins outright, no coin
    winner, _ = batched.allocate(bids, np.ones((E, 1)), np.zeros(E, dtype=np.int64), np.zeros((E, 0)))
    untouched = [np.random.default_rng(s).random() for s in seeds[::2]]
    assert [g.random() for g in rngs[::2]] == untouched  # no draw without a tie
    assert (winner[::2] == n - 1).all()
    counts = np.bincount(winner[1::2], minlength=n)
    lo, hi = (E // 2) / n + np.array([-1, 1]) * 3.3 * np.sqrt((E // 2) / n * (1 - 1 / n))
    assert ((lo < counts) & (counts < hi)).all(), counts
    for e in range(1, 200, 2):  # the single-market path: the same generator state, the same coin
        one = mechanisms.make(name)
        one.reset(info, 1, [np.random.default_rng(seeds[e])])
        w, _ = one.allocate_one(bids[e].tolist(), np.ones(1), 0, [])
        assert w == winner[e]
