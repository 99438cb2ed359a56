"""Tabular Q-learning providers: the update rule, the vectorized learner, its seeding, and the Policy face."""

from __future__ import annotations

import numpy as np
import pytest

from agents import make_strategy
from agents.qlearning import QConfig, QLearningPolicy, TabularQ, banchio_skrzypacz_grid, update_rule
from envs import make_batched
from training.tabular import run_sessions

DUOPOLY = {"cost_low": 0.0, "cost_high": 0.0, "n_providers": 2}


def test_update_rule_on_a_hand_computed_case():
    # Q = [1, 2, 3], ask 0 earned 0.5: Q[0] <- 0.9 * 1 + 0.1 * (0.5 + 0.9 * max Q) = 0.9 + 0.1 * 3.2 = 1.22
    q = update_rule(np.array([1.0, 2.0, 3.0]), 0, 0.5, alpha=0.1, gamma=0.9)
    np.testing.assert_allclose(q, [1.22, 2.0, 3.0])
    # The max includes the updated entry itself: Q = [3, 1], ask 0 earned 0 -> 0.9 * 3 + 0.1 * 0.9 * 3 = 2.97
    np.testing.assert_allclose(update_rule(np.array([3.0, 1.0]), 0, 0.0, 0.1, 0.9), [2.97, 1.0])


def test_vectorized_learner_applies_the_rule_to_each_table():
    cfg = QConfig(grid=(0.1, 0.2, 0.3), alpha=0.1, gamma=0.9, eps0=0.0, q0=0.0)
    q = TabularQ(2, 2, cfg, seeds=[0, 1])
    q.Q[:] = np.array([[[1.0, 2.0, 3.0], [0.0, 5.0, 1.0]], [[2.0, 2.0, 0.5], [4.0, 0.0, 0.0]]])
    before = q.Q.copy()
    chosen = q.choose()
    np.testing.assert_array_equal(chosen, [[2, 1], [0, 0]])  # greedy (eps = 0); the first of exact ties
    actions = np.array([[0, 1], [2, 0]])  # the update uses whatever was played
    rewards = np.array([[0.5, 1.0], [0.0, 2.0]])
    q.update(actions, rewards)
    for e in range(2):
        for i in range(2):
            np.testing.assert_allclose(q.Q[e, i], update_rule(before[e, i], actions[e, i], rewards[e, i], 0.1, 0.9))


def test_exploration_schedule_and_optimistic_start():
    cfg = QConfig()
    assert cfg.epsilon(0) == pytest.approx(0.025)
    assert cfg.epsilon(10_000) == pytest.approx(0.025 * np.exp(-2.0))
    q = TabularQ(3, 2, cfg, seeds=[0, 1, 2], value_scale=1.0)
    np.testing.assert_allclose(q.Q, 100.0, rtol=1e-8)  # 1 / (1 - 0.99), up to the tie-breaking jitter
    assert len(np.unique(q.Q[0, 0])) == cfg.n_asks  # the jitter breaks the flat start's ties
    with pytest.raises(ValueError, match="grid must be a non-empty increasing list"):
        QConfig(grid=(0.3, 0.2))
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\)"):
        QConfig(gamma=1.0)


@pytest.mark.parametrize("level", [0.01, 23.5])
def test_a_learner_that_never_earns_cycles_through_its_whole_grid(level):
    """A learner whose every ask earns 0 (a provider that never wins) lowers the ask it played below the others,
    Q[a] <- Q[a] (1 - alpha (1 - gamma)), so its greedy ask changes every period and it asks each grid ask once per
    cycle: the rival of benchmarks/collusion.py's ucb_myerson incumbent, whose uniform asks make the mean payment
    0.50 and keep every session from converging."""
    cfg = QConfig(eps0=0.0)
    q = TabularQ(1, 1, cfg, seeds=[0])
    q.Q[:] = level * (1.0 + 1e-6 * np.random.default_rng(0).random(q.Q.shape))  # stale values, nearly equal
    played = []
    for _ in range(3 * cfg.n_asks):
        idx = q.choose()
        played.append(int(idx[0, 0]))
        q.update(idx, np.zeros((1, 1)))
    for k in range(3):
        assert sorted(played[k * cfg.n_asks : (k + 1) * cfg.n_asks]) == list(range(cfg.n_asks))
    assert np.mean(np.asarray(cfg.grid)[played]) == pytest.approx(0.5)


def test_sessions_are_independent_and_seeded():
    kw = dict(config=QConfig(), window=50, overrides=DUOPOLY, progress=False)
    a = run_sessions("uniform", "first_price", 3, 600, seed=5, **kw)
    b = run_sessions("uniform", "first_price", 5, 600, seed=5, **kw)  # two more sessions beside the same three
    c = run_sessions("uniform", "first_price", 3, 600, seed=5, **kw)
    np.testing.assert_array_equal(a.tables, b.tables[:3])
    np.testing.assert_array_equal(a.profit, b.profit[:3])
    np.testing.assert_array_equal(a.tables, c.tables)
    np.testing.assert_array_equal(a.greedy, c.greedy)
    d = run_sessions("uniform", "first_price", 3, 600, seed=6, **kw)
    assert not np.array_equal(a.tables, d.tables)
    # Session e is seeded seed + e: the second session of seed 5 is the first of seed 6.
    np.testing.assert_array_equal(a.tables[1], d.tables[0])


def test_policy_reads_its_profit_off_the_observation():
    """The observation carries what a learner needs: last_won * (last_price - own cost of the last query) is the
    market's reward (uniform: eta = 1, realised cost = expected cost), so the Policy face learns exactly as the
    market-fed learner would."""
    market = make_batched("uniform", "first_price", 6, seeds=list(range(6)), n_providers=2)  # random costs
    lay = market.layout
    policies = [
        QLearningPolicy(lay, seed=10 * i, grid=tuple(np.round(np.linspace(0.05, 0.95, 19), 2))) for i in range(2)
    ]
    obs = market.reset()
    prev_cost, prev_reward = None, None
    for _ in range(40):
        if prev_cost is not None:
            for i, p in enumerate(policies):
                np.testing.assert_allclose(p.observed_profit(obs[:, i], prev_cost[:, i]), prev_reward[:, i], atol=1e-6)
        prev_cost = np.stack([lay.honest_bid(obs[:, i]) for i in range(2)], axis=1)
        actions = np.stack([p.act(obs[:, i]) for i, p in enumerate(policies)], axis=1)
        obs, prev_reward, _ = market.step(actions)
        asks = market.last_round.asks
        for i, p in enumerate(policies):
            np.testing.assert_allclose(asks[:, i], p.grid[p._prev[0]], atol=1e-6)  # the codec asks the grid ask
    assert policies[0].learner.t == 39  # one update per round after the first


def test_registered_strategy_and_greedy_tables():
    market = make_batched("uniform", "first_price", 4, seeds=list(range(4)), **DUOPOLY)
    p = make_strategy("qlearning", market.layout, seed=3)
    assert isinstance(p, QLearningPolicy) and p.config.grid == banchio_skrzypacz_grid()
    tables = np.zeros((2, 19))
    tables[0, 4], tables[1, 10] = 1.0, 1.0
    frozen = QLearningPolicy(market.layout, tables=tables, learning=False)
    obs = market.reset()
    a = frozen.act(obs[:, 0])
    np.testing.assert_allclose(a[:, 0], [0.25, 0.55, 0.25, 0.55], atol=1e-6)  # row b plays table b mod 2
    with pytest.raises(ValueError, match="outside the action box"):
        QLearningPolicy(market.layout, grid=(0.5, 1.5), seed=0).act(obs[:, 0])
