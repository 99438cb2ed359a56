"""Statistics of paired comparisons over independent seeds (MECHANISMS.md §9): every interval of the project is
computed here."""

from __future__ import annotations

import numpy as np


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student-t confidence interval at ``level`` over independent seeds (0 for a single
    value): with 20 seeds the 95% quantile is 2.09, not the normal 1.96."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float(values.mean()) if values.size else float("nan"), 0.0
    se = values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean()), float(t_quantile(level, values.size - 1) * se)


def t_quantile(level: float, df: int) -> float:
    """The two-sided Student-t quantile: P(|T_df| <= q) = level."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, df))


def family_quantile(n_tests: int, df: int, level: float = 0.95) -> float:
    """The Student-t quantile of a family-wise ``level`` over ``n_tests`` comparisons (Bonferroni, two-sided): an
    interval of this many standard errors around each of the tests' estimates covers all true values with
    probability at least ``level``."""
    return t_quantile(1.0 - (1.0 - level) / max(1, n_tests), max(1, df))


def detectable_gain(se: float, t_family: float, df: int, power: float = 0.8) -> float:
    """The smallest true gain above the tolerance that the family-wise test detects with probability ``power``:
    (t_family + t_power) standard errors."""
    from scipy.stats import t

    return float((t_family + t.ppf(power, max(1, df))) * se)
