"""The schedule of seed 003's delegation mechanism (MECHANISMS.md §6): phases, batch size, margins, the deltas, the
exploitation length and plan, the early-stop threshold and the utility-based counts.

The functions of exploration statistics take scalars or arrays with a leading market axis (the market env runs many
markets at once; the batch simulator one)."""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

from mechanisms.base import FloatArray, IntArray

# One rule for one market (floats) or for every market at once (arrays).
FloatOrArray = TypeVar("FloatOrArray", float, FloatArray)

PHASES = ("exploration", "exploitation", "incentive", "utility", "done")
EXPLORATION, EXPLOITATION, INCENTIVE, UTILITY, DONE = range(5)
N_PLAY_PHASES = 4  # phases in which queries are delegated (behaviour index = phase index)

# Floor of vbar and taubar inside logarithms (a provider whose answers all score 0 would make ln undefined; the
# authors' code would fail there, this treats it as a hugely negative term).
_LOG_FLOOR = 1e-12


def check_schedule(T: int, epsilon: float) -> None:
    """Raise ValueError unless T is a positive integer and epsilon lies in (0, 1/2)."""
    if int(T) != T or T < 1:
        raise ValueError(f"horizon T must be a positive integer, got {T!r}")
    if not 0.0 < epsilon < 0.5:
        raise ValueError(f"epsilon must be in (0, 1/2), got {epsilon!r}")


def batch_size(T: int, epsilon: float) -> int:
    """B = floor(T^(2 epsilon)): queries per provider in exploration, per batch in exploitation, per incentive.

    A relative tolerance of 1e-12 keeps exact powers exact (T = 10^4, epsilon = 1/4 gives 100, not 99).
    """
    check_schedule(T, epsilon)
    x: float = float(T) ** (2.0 * epsilon)
    return max(1, math.floor(x * (1.0 + 1e-12)))


def margin(T: int, epsilon: float, K: int) -> float:
    """M = T^(-epsilon) ln(K T), the confidence margin of the early-stop threshold."""
    check_schedule(T, epsilon)
    scale: float = float(T) ** (-epsilon)
    return scale * math.log(K * T)


def delta_1(min_value: FloatOrArray, max_tokens: FloatOrArray, L: float) -> FloatOrArray:
    """delta_1 = -ln(min mean reward) + ln(max mean output tokens) + max mean output tokens / L + 1.

    ``min_value`` is the smallest b * mean score and ``max_tokens`` the largest mean output tokens over *all* models of
    all providers (the published constant; the authors' earlier real-record code used -ln min(reward/tokens) instead).
    """
    d1: FloatOrArray = (
        -np.log(np.maximum(min_value, _LOG_FLOOR)) + np.log(np.maximum(max_tokens, _LOG_FLOOR)) + max_tokens / L + 1.0
    )
    return d1


def delta_2(b: float) -> float:
    """delta_2 = ln b."""
    return math.log(b)


def provider_term(vbar: FloatArray | float, taubar: FloatArray | float, L: float) -> FloatArray:
    """ln vbar - ln taubar - taubar / L: the per-provider term of delta_3 and of the utility-phase delta_i."""
    vbar = np.maximum(np.asarray(vbar, dtype=np.float64), _LOG_FLOOR)
    taubar = np.maximum(np.asarray(taubar, dtype=np.float64), _LOG_FLOOR)
    return np.log(vbar) - np.log(taubar) - taubar / L


def delta_3(vbar: FloatArray, taubar: FloatArray, L: float, best: IntArray | int) -> FloatArray | float:
    """delta_3 = sum over i != i* of [ln vbar_i - ln taubar_i - taubar_i / L] (exploration means; providers on the
    last axis, ``best`` one index per leading entry)."""
    terms = provider_term(vbar, taubar, L)
    own: FloatArray = np.take_along_axis(terms, np.asarray(best)[..., None], axis=-1)[..., 0]
    total: FloatArray = terms.sum(axis=-1) - own
    return total


def exploitation_length(T: int, B: int, K: int, d1: FloatArray | float, d2: float, d3: FloatArray | float) -> IntArray:
    """R = max(0, int(T - ((delta_1 + 3) K + delta_2 + delta_3) B)) exploitation queries (int truncates to zero; an
    infinite term gives 0 or T)."""
    x = T - ((np.asarray(d1) + 3.0) * K + d2 + np.asarray(d3)) * B
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(x), np.maximum(np.trunc(np.nan_to_num(x)), 0), np.where(x < 0, 0, T)).astype(
            np.int64
        )


def early_stop_threshold(
    u_second: FloatOrArray, M: float, b: float, L: float, p_max: FloatOrArray, gamma: float
) -> FloatOrArray:
    """threshold = u' - M (b + L p_max(i*)) / gamma: exploitation stops when its mean user utility falls below."""
    return u_second - M * (b + L * p_max) / gamma


def exploitation_plan(R: IntArray | int, budget: IntArray | int, B: int) -> tuple[IntArray, IntArray, IntArray]:
    """Split exploitation into ``(first, n_batches, remainder)`` as the authors' simulator does.

    With R_eff = min(R, budget): a first block of ``first = min(B, budget)`` queries, then ``n_batches =
    max(0, (R_eff - B) // B)`` checked batches of B, then (if never stopped) ``remainder = (R_eff - B) mod B`` with
    Python's modulo. For R_eff >= B the total is exactly R_eff; for R_eff < B the authors' code sends B + R_eff queries
    ((R_eff - B) mod B = R_eff), and so does this. The caller still caps everything at the T budget.
    """
    budget = np.asarray(budget, dtype=np.int64)
    rest = np.minimum(np.asarray(R, dtype=np.int64), budget) - B
    return np.minimum(B, np.maximum(0, budget)), np.maximum(0, rest // B), rest % B


def utility_deltas(d1: FloatArray | float, vbar: FloatArray, taubar: FloatArray, L: float) -> FloatArray:
    """delta_i = delta_1 + ln vbar_i - ln taubar_i - taubar_i / L for every provider (exploration means)."""
    return np.asarray(d1)[..., None] + provider_term(vbar, taubar, L)


def utility_counts(deltas: FloatArray, B: int, uniforms: FloatArray) -> IntArray:
    """Phase-4 queries per provider: int(delta_i B) plus one with probability frac(delta_i B) (``uniforms`` ~ U[0,1)
    decide), for positive delta_i; 0 otherwise."""
    x = np.asarray(deltas, dtype=np.float64) * B
    whole = np.floor(np.where(x > 0, x, 0.0))
    extra = (x > 0) & (np.asarray(uniforms) < x - whole)
    return (whole + extra).astype(np.int64)
