"""From per-seed runs to verdicts (MECHANISMS.md §9): paired gains with confidence intervals, IC regret and whether a
mechanism holds.

Metrics per mechanism x profile x provider: ``profit`` (mean per round), ``gain`` (profit minus the paired honest
baseline, with a 95% CI over seeds), ``bid_markup``, ``substitution_rate``, ``mean_inflation``, ``win_rate``,
``payment``; per mechanism x profile: ``user_utility`` (absolute; ``user_utility_ratio`` to all-honest play;
``full_info_ratio`` to the full-information benchmark where the best provider serves at cost), ``payment``,
``allocative_efficiency``, ``unserved_share`` and the mechanism's own diagnostics. A mechanism's ``ic_regret`` is
the largest gain found (a lower bound on its exploitability); the mechanism is *exploited* when that gain exceeds
the tolerance with family-wise 95% confidence (Bonferroni over the deviations tested), and otherwise *holds*.
"""

from __future__ import annotations

import numpy as np

from evaluation.results import (MARKET_KEYS, PROVIDER_KEYS, DeviationRecord, ICRegret, MarketRecord,
                                MechanismResult, MechanismSummary, Runs)
from evaluation.statistics import mean_ci, t_quantile


def _column(rows: Runs, key: str) -> np.ndarray:
    return np.array([r[key] for r in rows])


def summarize(result: MechanismResult, tolerance: float) -> MechanismSummary:
    """Means, paired gains with 95% CIs, IC regret and the verdict for one mechanism's raw result."""
    honest = result.profiles["honest"].runs
    honest_user = _column(honest, "market/user_utility")
    records: list[DeviationRecord] = []
    market_rows: list[MarketRecord] = []
    best: DeviationRecord | None = None
    for name, rec in result.profiles.items():
        runs, base = rec.runs, rec.baseline
        user = _column(runs, "market/user_utility")
        full_info = _column(runs, "market/full_info_utility")
        means = {}
        for key in MARKET_KEYS:
            means[key], means[f"{key}_ci"] = mean_ci(_column(runs, f"market/{key}"))
        mrow = MarketRecord(
            mechanism=result.mechanism, profile=name, kind=rec.kind, **means,
            user_utility_ratio=float(user.mean() / honest_user.mean()) if honest_user.mean() else float("nan"),
            full_info_ratio=float(user.mean() / full_info.mean()) if full_info.mean() else float("nan"),
            mechanism_events={k.split("/", 1)[1]: float(np.mean(_column(runs, k)))
                              for k in runs[0] if k.startswith("mechanism/")})
        market_rows.append(mrow)
        for a in result.agents:
            per = {}
            for key in PROVIDER_KEYS:
                per[key], per[f"{key}_ci"] = mean_ci(_column(runs, f"{a}/{key}"))
            diff = _column(runs, f"{a}/profit") - _column(base, f"{a}/profit")
            gain, half = mean_ci(diff)
            se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
            row = DeviationRecord(
                mechanism=result.mechanism, profile=name, kind=rec.kind, provider=a, deviator=a in rec.deviators,
                **per, gain=gain, gain_ci_low=gain - half, gain_ci_high=gain + half, gain_se=se,
                user_utility=mrow.user_utility, user_utility_ratio=mrow.user_utility_ratio,
                full_info_ratio=mrow.full_info_ratio, allocative_efficiency=mrow.allocative_efficiency,
                unserved_share=mrow.unserved_share, market_payment=mrow.payment)
            records.append(row)
            if row.deviator and (best is None or row.gain > best.gain):
                best = row
    # Many deviations are tested per mechanism and the verdict looks at the largest gain, so its lower bound uses
    # a Bonferroni-adjusted Student-t quantile (family-wise 95%) rather than each deviation's own 95% CI.
    tested = sum(r.deviator for r in records)
    z_family = t_quantile(1 - 0.05 / max(1, tested), max(1, len(honest) - 1))
    exploited = best is not None and best.gain - z_family * best.gain_se > tolerance
    verdict = ("holds" if best is None or not exploited else
               f"exploited by {best.provider} via {best.profile}: gain {best.gain:.4f} per round "
               f"[{best.gain_ci_low:.4f}, {best.gain_ci_high:.4f}]")
    regret = None if best is None else ICRegret(best.provider, best.profile, best.gain, best.gain_ci_low,
                                                best.gain_ci_high)
    return MechanismSummary(result.mechanism, records, market_rows, regret, verdict, exploited, tested, z_family)
