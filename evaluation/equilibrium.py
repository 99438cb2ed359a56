"""Equilibria of empirical normal-form games (the meta-game of :mod:`evaluation.metagame`) and their exploitability.

A game is a list of payoff tensors, one per player: ``payoffs[i][s_0, ..., s_{N-1}]`` is player i's expected payoff
when player k plays its pure strategy s_k. A (mixed) profile is one probability vector per player.

- Two players, zero-sum: the maximin linear program (:func:`zero_sum_equilibrium`).
- Two players, general-sum (:func:`two_player_equilibria`): support enumeration, one *linear program* per support pair.
  For supports I (rows) and J (columns), the LP looks for y on J and a value u with A[i, J] y = u for i in I and
  A[k, J] y <= u elsewhere (every row of I is a best response to y), and likewise x on I against B. Any feasible pair
  (x, y) is a Nash equilibrium (each player mixes only over best responses), whatever the game's degeneracy; pairs are
  tried in increasing support size, after iterated elimination of strictly dominated pure strategies (which no
  equilibrium uses). This finds every equilibrium whose supports fit ``max_support`` - up to the continua of
  degenerate games, of which one point per support pair is returned.
- More players: replicator dynamics (:func:`replicator`), an approximation whose NashConv is reported with it.

:func:`nash_conv` is the sum over players of what a best pure deviation gains against the others' mixtures
(0 exactly at a Nash equilibrium of the table).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

Profile = list[np.ndarray]


def expected_payoffs(payoffs: Sequence[np.ndarray], profile: Sequence[np.ndarray]) -> np.ndarray:
    """[N] every player's expected payoff under the mixed ``profile``."""
    out = []
    for u in payoffs:
        v = np.asarray(u, dtype=np.float64)
        for p in profile:  # contract the leading axis with each player's mixture in turn
            v = np.tensordot(p, v, axes=(0, 0))
        out.append(float(v))
    return np.array(out)


def deviation_payoffs(payoffs: Sequence[np.ndarray], profile: Sequence[np.ndarray], player: int) -> np.ndarray:
    """[S_i] player i's expected payoff of each of its pure strategies against the others' mixtures."""
    v = np.moveaxis(np.asarray(payoffs[player], dtype=np.float64), player, 0)
    others = [p for k, p in enumerate(profile) if k != player]
    for p in others:  # axes after the first, in player order
        v = np.tensordot(v, p, axes=(1, 0))
    return v


def nash_conv(payoffs: Sequence[np.ndarray], profile: Sequence[np.ndarray]) -> float:
    """sum_i [max_s u_i(s, sigma_-i) - u_i(sigma)]: 0 at a Nash equilibrium of the table, > 0 otherwise."""
    values = expected_payoffs(payoffs, profile)
    return float(sum(deviation_payoffs(payoffs, profile, i).max() - values[i] for i in range(len(payoffs))))


def zero_sum_equilibrium(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Maximin strategies of the zero-sum game where the row player gets A[i, j] and the column player -A[i, j]:
    (x, y, value), from two linear programs."""
    A = np.asarray(A, dtype=np.float64)
    m, n = A.shape
    shift = A.min() - 1.0  # make every payoff positive: the classic LP max 1'z s.t. A'z <= 1 has value 1 / (v - shift)
    P = A - shift
    row = linprog(np.ones(m), A_ub=-P.T, b_ub=-np.ones(n), bounds=[(0, None)] * m, method="highs")
    col = linprog(-np.ones(n), A_ub=P, b_ub=np.ones(m), bounds=[(0, None)] * n, method="highs")
    if row.status != 0 or col.status != 0:
        raise RuntimeError(f"zero-sum LP failed: {row.message}; {col.message}")
    assert row.x is not None and col.x is not None  # status 0: both solved
    x, y = row.x / row.x.sum(), col.x / col.x.sum()
    return x, y, float(x @ A @ y)


def _support_lp(M: np.ndarray, rows: tuple[int, ...], cols: tuple[int, ...]) -> np.ndarray | None:
    """A mixture y on ``cols`` making every row of ``rows`` a best response of the player whose payoffs are M
    (rows: its strategies; columns: the opponent's), or None if there is none."""
    m, _ = M.shape
    k = len(cols)
    # Variables: y (k, >= 0) and the value u (free). Equalities: M[i, cols] y - u = 0 (i in rows), sum y = 1.
    a_eq = np.zeros((len(rows) + 1, k + 1))
    a_eq[:-1, :k] = M[np.ix_(rows, cols)]
    a_eq[:-1, k] = -1.0
    a_eq[-1, :k] = 1.0
    b_eq = np.zeros(len(rows) + 1)
    b_eq[-1] = 1.0
    outside = [i for i in range(m) if i not in rows]
    a_ub = b_ub = None
    if outside:
        a_ub = np.zeros((len(outside), k + 1))
        a_ub[:, :k] = M[np.ix_(outside, cols)]
        a_ub[:, k] = -1.0
        b_ub = np.zeros(len(outside))
    res = linprog(
        np.zeros(k + 1),
        A_ub=a_ub,
        b_ub=b_ub,
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=[(0, None)] * k + [(None, None)],
        method="highs",
    )
    if res.status != 0 or res.x is None:
        return None
    y = np.zeros(M.shape[1])
    y[list(cols)] = np.maximum(res.x[:k], 0.0)
    return y / y.sum()


def eliminate_dominated(A: np.ndarray, B: np.ndarray, tol: float = 0.0) -> tuple[list[int], list[int]]:
    """Iterated elimination of pure strategies strictly dominated (by more than ``tol`` everywhere) by another pure
    strategy: the surviving rows and columns."""
    rows, cols = list(range(A.shape[0])), list(range(A.shape[1]))
    changed = True
    while changed:
        changed = False
        for r in list(rows):
            if any(np.all(A[np.ix_([o], cols)] > A[np.ix_([r], cols)] + tol) for o in rows if o != r):
                rows.remove(r)
                changed = True
        for c in list(cols):
            if any(np.all(B[np.ix_(rows, [o])] > B[np.ix_(rows, [c])] + tol) for o in cols if o != c):
                cols.remove(c)
                changed = True
    return rows, cols


@dataclass
class Equilibrium:
    """A mixed profile of a two-player table with its players' payoffs (``values``) and supports."""

    profile: Profile
    values: np.ndarray

    @property
    def supports(self) -> list[list[int]]:
        return [np.flatnonzero(p > 1e-9).tolist() for p in self.profile]


def two_player_equilibria(
    A: np.ndarray, B: np.ndarray, max_support: int | None = None, max_equilibria: int = 64, max_lps: int = 200_000
) -> list[Equilibrium]:
    """Nash equilibria of the bimatrix game (A: row player's payoffs, B: column player's), by support enumeration
    with one LP per player and support pair (see the module docstring), smallest supports first.

    Args:
        max_support: the largest support tried per player (default: every size).
        max_equilibria: stop after this many distinct equilibria.
        max_lps: a budget of LPs; a RuntimeError is raised if it runs out before any equilibrium is found.
    """
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.shape != B.shape or A.ndim != 2:
        raise ValueError(f"bimatrix game: A and B must be matrices of one shape, got {A.shape}, {B.shape}")
    rows, cols = eliminate_dominated(A, B)
    a, b = A[np.ix_(rows, cols)], B[np.ix_(rows, cols)]
    m, n = a.shape
    limit = min(max(m, n), max_support or max(m, n))
    found: list[Equilibrium] = []
    seen: set[tuple] = set()
    lps = 0
    for total in range(2, 2 * limit + 1):
        for size_r in range(max(1, total - min(n, limit)), min(m, limit, total - 1) + 1):
            size_c = total - size_r
            for row_support in itertools.combinations(range(m), size_r):
                for col_support in itertools.combinations(range(n), size_c):
                    lps += 1
                    if lps > max_lps:
                        if found:
                            return found
                        raise RuntimeError(f"support enumeration: no equilibrium within {max_lps} LPs")
                    y = _support_lp(a, row_support, col_support)
                    if y is None:
                        continue
                    x = _support_lp(b.T, col_support, row_support)
                    if x is None:
                        continue
                    X, Y = np.zeros(A.shape[0]), np.zeros(A.shape[1])
                    X[rows], Y[cols] = x, y
                    key = tuple(np.round(np.concatenate([X, Y]), 6))
                    if key in seen:
                        continue
                    seen.add(key)
                    found.append(Equilibrium([X, Y], np.array([X @ A @ Y, X @ B @ Y])))
                    if len(found) >= max_equilibria:
                        return found
    return found


def replicator(
    payoffs: Sequence[np.ndarray], iterations: int = 20_000, step: float = 0.1, start: Profile | None = None
) -> Profile:
    """Discrete replicator dynamics for any number of players: x_s <- x_s (1 + step (u(s) - u(x)) / scale), from the
    uniform profile (or ``start``); an approximate equilibrium (check it with :func:`nash_conv`)."""
    sizes = np.asarray(payoffs[0]).shape
    profile = [np.full(k, 1.0 / k) for k in sizes] if start is None else [np.array(p, dtype=float) for p in start]
    scale = max(1e-12, max(float(np.ptp(np.asarray(u))) for u in payoffs))
    for _ in range(iterations):
        new = []
        for i in range(len(payoffs)):
            dev = deviation_payoffs(payoffs, profile, i)
            x = profile[i] * (1.0 + step * (dev - profile[i] @ dev) / scale)
            x = np.maximum(x, 0.0)
            new.append(x / x.sum())
        profile = new
    return profile
