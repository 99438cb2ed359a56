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
