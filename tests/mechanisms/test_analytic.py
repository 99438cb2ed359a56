"""Monte Carlo checks of the textbook results (MECHANISMS.md §8) on the market env's ``uniform`` scenario: n providers
with private costs i.i.d. U[0, 1] each query, value 1, every answer correct.

- Reverse first price: the symmetric Bayes-Nash equilibrium b(c) = c + (1 - c) / n gives an expected payment of
  2 / (n + 1) per query, the same as second price with truthful bids (revenue equivalence).
- The equilibrium is a best response: a unilateral deviation to a smaller or larger markup earns less.
- Reverse second price: bidding the cost is dominant; a markup bidder never earns more than a truthful one.
- An honest bidder under first price is paid its cost, so it earns exactly 0.

Comparisons between strategies are paired: the env's cost draws and queries depend only on the seed, never on the
actions, so two runs with the same seed face the same costs and the per-round profit differences have small variance.
Confidence intervals are 99% normal intervals from the sample standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from agents import Policy, act_all, make_strategy
from envs import ObservationLayout, parallel_env
from envs.market import BID

Z99 = 2.576
ROUNDS = 4000


class EquilibriumMarkup(Policy):
    """Bids c + k (1 - c) / n: the uniform first-price equilibrium markup scaled by k (k = 1 is the BNE)."""

    def __init__(self, layout: ObservationLayout, k: float, n: int):
        self.layout, self.k, self.n = layout, k, n
        self.name = f"bne_x{k}"

    def act(self, obs: np.ndarray) -> np.ndarray:
        cost = self.layout.honest_bid(obs)
        bid = cost + self.k * (self.layout.value_scale - cost) / self.n
        action = np.zeros(np.shape(obs)[:-1] + (3,), dtype=np.float32)
        action[..., BID] = np.clip(self.layout.bid_action(obs, bid), -1.0, 1.0)
        return action


@dataclass
class Run:
    payment: np.ndarray  # [T] payment of the round (0 when unserved)
    profit: np.ndarray  # [T, N]
    winner: np.ndarray  # [T]
    cost: np.ndarray  # [T, N] each provider's honest bid = its realised cost this round
    bid: np.ndarray  # [T, N]


def run(
    mechanism: str, n: int, policy: Callable[[ObservationLayout, str], Policy], seed: int = 0, rounds: int = ROUNDS
) -> Run:
    """One episode of ``rounds`` queries on ``uniform`` with n providers, ``policy(layout, agent)`` for each."""
    env = parallel_env("uniform", mechanism=mechanism, seed=seed, n_providers=n, horizon=rounds)
    policies = {a: policy(env.layout, a) for a in env.possible_agents}
    obs, _ = env.reset(seed=seed)
    pay, profit, winner, cost, bid = [], [], [], [], []
    while env.agents:
        obs, rewards, _, _, infos = env.step(act_all(policies, obs))
        row = [infos[a] for a in env.possible_agents]
        pay.append(row[0]["market"]["payment"])
        winner.append(row[0]["market"]["winner"])
        profit.append([rewards[a] for a in env.possible_agents])
        cost.append([i["honest_bid"] for i in row])
        bid.append([i["bid"] for i in row])
    return Run(np.array(pay), np.array(profit), np.array(winner), np.array(cost), np.array(bid))


def everyone(name: str) -> Callable[[ObservationLayout, str], Policy]:
    return lambda layout, agent: make_strategy(name, layout)


def one_deviates(deviant: Callable[[ObservationLayout], Policy], others: str):
    return lambda layout, agent: deviant(layout) if agent == "provider_0" else make_strategy(others, layout)


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Sample mean and the half-width of its 99% confidence interval."""
    return float(x.mean()), Z99 * float(x.std(ddof=1)) / np.sqrt(x.size)


@pytest.mark.parametrize("n", [2, 3])
def test_first_price_equilibrium_revenue_is_two_over_n_plus_one(n: int) -> None:
    r = run("first_price", n, everyone("bne"))
    assert np.all(r.winner >= 0)  # value 1 >= every bid: always served
    # The equilibrium is efficient: the lowest-cost provider wins.
    np.testing.assert_array_equal(r.winner, r.cost.argmin(axis=1))
    np.testing.assert_allclose(r.bid, r.cost + (1.0 - r.cost) / n, atol=1e-6)
    mean, ci = mean_ci(r.payment)
    assert abs(mean - 2.0 / (n + 1)) <= ci, (mean, ci)
    # and the interval is tight enough to tell the equilibrium from a wrong markup (1 - c) / (n + 1)
    wrong = (r.cost.min(axis=1) + (1.0 - r.cost.min(axis=1)) / (n + 1)).mean()
    assert abs(wrong - 2.0 / (n + 1)) > 3 * ci


@pytest.mark.parametrize("n", [2, 3])
def test_second_price_truthful_revenue_equals_first_price_equilibrium_revenue(n: int) -> None:
    sp = run("second_price", n, everyone("truthful"))
    fp = run("first_price", n, everyone("bne"))
    np.testing.assert_array_equal(sp.cost, fp.cost)  # same seed, same cost draws: a paired comparison
    # second price with truthful bids pays the second-lowest cost (qhat = 1 is never learned away: S = 1)
    np.testing.assert_allclose(sp.payment, np.sort(sp.cost, axis=1)[:, 1], atol=1e-6)
    mean, ci = mean_ci(sp.payment)
    assert abs(mean - 2.0 / (n + 1)) <= ci, (mean, ci)
    diff, ci_diff = mean_ci(fp.payment - sp.payment)
    assert abs(diff) <= ci_diff, (diff, ci_diff)


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("k", [0.5, 1.5])
def test_first_price_equilibrium_is_a_best_response(n: int, k: float) -> None:
    """provider_0 scales the equilibrium markup by k while the others play the BNE: it earns less (paired runs)."""
    eq = run("first_price", n, everyone("bne"))
    dev = run("first_price", n, one_deviates(lambda layout: EquilibriumMarkup(layout, k, n), "bne"))
    np.testing.assert_array_equal(eq.cost, dev.cost)
    np.testing.assert_allclose(dev.bid[:, 0], dev.cost[:, 0] + k * (1 - dev.cost[:, 0]) / n, atol=1e-6)
    gain, ci = mean_ci(dev.profit[:, 0] - eq.profit[:, 0])
    assert gain <= ci, f"deviation k={k} gains {gain:.4f} +- {ci:.4f} over the equilibrium"
    # The loss is large enough to be seen: the check would catch a wrong equilibrium formula.
    assert gain < -ci, f"deviation k={k}: {gain:.4f} +- {ci:.4f} is not distinguishable from the equilibrium"


def test_first_price_best_response_check_detects_a_non_equilibrium() -> None:
    """Against truthful opponents (not an equilibrium under first price), a markup pays: the check has power."""
    base = run("first_price", 2, everyone("truthful"))
    dev = run("first_price", 2, one_deviates(lambda layout: EquilibriumMarkup(layout, 1.0, 2), "truthful"))
    gain, ci = mean_ci(dev.profit[:, 0] - base.profit[:, 0])
    assert gain > ci


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_second_price_markup_earns_no_more_than_truthful(factor: float) -> None:
    n = 3
    honest = run("second_price", n, everyone("truthful"))
    marked = run(
        "second_price", n, one_deviates(lambda layout: make_strategy("markup", layout, markup=factor), "truthful")
    )
    np.testing.assert_array_equal(honest.cost, marked.cost)
    np.testing.assert_allclose(marked.bid[:, 0], factor * marked.cost[:, 0], rtol=1e-5, atol=1e-7)
    diff = marked.profit[:, 0] - honest.profit[:, 0]
    gain, ci = mean_ci(diff)
    assert gain <= ci, (gain, ci)
    # Dominance holds round by round: the payment does not depend on the own bid, so a deviation only changes
    # whether it wins, and it wins exactly the rounds it would rather lose (or loses ones it would rather win).
    assert diff.max() <= 1e-6
    assert gain < 0.0  # some rounds are actually lost (or won at a loss): the comparison is not vacuous


@pytest.mark.parametrize("others", ["truthful", "bne"])
def test_first_price_honest_bidder_earns_zero(others: str) -> None:
    r = run("first_price", 3, one_deviates(lambda layout: make_strategy("truthful", layout), others))
    won = r.winner == 0
    assert won.sum() > 100  # it wins often (it undercuts bne bidders), so the zero is not vacuous
    np.testing.assert_allclose(r.payment[won], r.cost[won, 0], atol=1e-6)  # paid exactly its cost
    assert np.abs(r.profit[:, 0]).max() <= 1e-6
    mean, ci = mean_ci(r.profit[:, 0])
    assert abs(mean) <= max(ci, 1e-9)
