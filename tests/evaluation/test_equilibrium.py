"""Equilibria of normal-form games: the LPs on known games, NashConv, replicator dynamics."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.equilibrium import (
    eliminate_dominated,
    nash_conv,
    replicator,
    two_player_equilibria,
    zero_sum_equilibrium,
)

PENNIES = np.array([[1.0, -1.0], [-1.0, 1.0]])
# Prisoner's dilemma, strategies (cooperate, defect): (3, 3), (0, 5), (5, 0), (1, 1).
PD_ROW = np.array([[3.0, 0.0], [5.0, 1.0]])


def test_matching_pennies_by_lp():
    x, y, value = zero_sum_equilibrium(PENNIES)
    np.testing.assert_allclose(x, [0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(y, [0.5, 0.5], atol=1e-9)
    assert value == pytest.approx(0.0, abs=1e-9)
    (eq,) = two_player_equilibria(PENNIES, -PENNIES)
    np.testing.assert_allclose(eq.profile[0], [0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(eq.profile[1], [0.5, 0.5], atol=1e-9)


def test_prisoners_dilemma_is_mutual_defection():
    (eq,) = two_player_equilibria(PD_ROW, PD_ROW.T)
    np.testing.assert_allclose(eq.profile[0], [0.0, 1.0])
    np.testing.assert_allclose(eq.profile[1], [0.0, 1.0])
    np.testing.assert_allclose(eq.values, [1.0, 1.0])
    assert nash_conv([PD_ROW, PD_ROW.T], [np.array([1.0, 0.0]), np.array([1.0, 0.0])]) == pytest.approx(4.0)


def test_every_equilibrium_of_battle_of_the_sexes():
    A, B = np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 2.0]])
    found = two_player_equilibria(A, B)
    assert len(found) == 3
    mixed = next(e for e in found if len(e.supports[0]) == 2)
    np.testing.assert_allclose(mixed.profile[0], [2 / 3, 1 / 3])
    np.testing.assert_allclose(mixed.profile[1], [1 / 3, 2 / 3])
    for e in found:
        assert nash_conv([A, B], e.profile) == pytest.approx(0.0, abs=1e-9)


def test_rock_paper_scissors_and_a_game_with_dominated_strategies():
    R = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    (eq,) = two_player_equilibria(R, -R)
    np.testing.assert_allclose(eq.profile[0], np.full(3, 1 / 3), atol=1e-9)
    # Row 2 is strictly dominated by row 0; after removing it column 1 is dominated by column 0.
    A = np.array([[3.0, 2.0], [1.0, 4.0], [0.0, 1.0]])
    B = np.array([[2.0, 1.0], [1.0, 3.0], [0.0, 0.0]])
    rows, cols = eliminate_dominated(A, B)
    assert rows == [0, 1] and cols == [0, 1]
    for e in two_player_equilibria(A, B):
        assert e.profile[0][2] == 0.0
        assert nash_conv([A, B], e.profile) == pytest.approx(0.0, abs=1e-9)


def test_replicator_for_three_players():
    # Each player earns 1 for strategy 1 whatever the others do, plus 0.5 when everyone plays it: (1, 1, 1) is the
    # unique equilibrium.
    payoffs = []
    for i in range(3):
        u = np.zeros((2, 2, 2))
        for idx in np.ndindex(2, 2, 2):
            u[idx] = idx[i] + 0.5 * all(idx)
        payoffs.append(u)
    profile = replicator(payoffs, iterations=3000)
    for p in profile:
        assert p[1] > 0.99
    assert nash_conv(payoffs, profile) < 1e-2
