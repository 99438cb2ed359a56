"""From per-seed runs to verdicts (MECHANISMS.md §9): paired gains with confidence intervals, family-wise tests over
every deviation, lever and horizon, the lever that pays, transient and persistent exploits, and the test's power.

The rule. For one mechanism under one billing, the *family* is every (deviating provider, profile, lever variant,
judged horizon) tested. A deviation's gain is its profit minus the same provider's profit in the paired honest
baseline, over independent seeds; its family-wise lower bound is gain - t * se with t the Bonferroni Student-t
quantile of the family (95%) at that gain's degrees of freedom. The mechanism is *exploited* when any deviation's
lower bound exceeds the tolerance, and otherwise *holds*; its IC regret is the largest lower bound (with that
deviation's point estimate).
An exploit is *persistent* when it is still significant at the longest judged horizon, *transient* otherwise. The
*paying lever* of one exploit: its own lever if it moves one; for a multi-lever deviation, the single-lever variant
that earns the exploit alone (its lower bound clears the tolerance and the whole deviation earns no significantly
more, by the paired shortfall), the one with the largest lower bound if several do, else the combination of the
deviation's levers. The *levers that pay* a mechanism are the simplest of its exploits' paying levers: every single
lever that earns an exploit on its own at the longest judged horizon (at any horizon when no exploit persists), else
every smallest combination that does: what keeps paying as the mechanism learns. They do not hang on which deviation
happens to top the ranking (learned policies of different seeds mix the levers differently) nor on a lever that pays
only briefly, at the edge of significance.

Each of these decisions turns on some deviations' confidence intervals; a deviation whose family-wise lower bound
does not clear the tolerance but whose 95% confidence interval reaches above it, where a decision turns on it, is
*undecided* (:attr:`MechanismVerdict.undecided`), and the runner plays it on more seeds
(:func:`evaluation.runner.resolve_undecided`) so that a gain at the test's detection limit does not flip a decision from
one run to the next. A small gain whose first estimate happens to fall below the tolerance is pursued as well as one
whose estimate falls above it (pursuing only the latter named a lever in one run and missed it in the next); a gain
whose 95% interval lies below the tolerance is settled (a claim that a gain pays needs the family-wise bound, one that
it does not, only the ordinary one). As whether seeds are added then depends on the gains seen, every look at the
runs is a test: the Bonferroni family counts each test at each look (``looks``), which keeps the family-wise level.
The smallest gain the test detects with 80% power is reported per deviation and, as the mechanism's power, its largest
value at the longest judged horizon.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from agents.policy import LEVERS
from agents.scripted import PRESETS, scripted_levers
from evaluation.results import (
    MARKET_KEYS,
    PROVIDER_KEYS,
    DeviationRecord,
    Exploit,
    MarketRecord,
    MechanismVerdict,
    Runs,
    SettingResult,
)
from evaluation.statistics import detectable_gain, family_quantile, mean_ci


def _column(rows: Runs, key: str) -> np.ndarray:
    return np.array([r[key] for r in rows])


def _se(diff: np.ndarray) -> float:
    return float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0


def setting_records(result: SettingResult) -> tuple[list[DeviationRecord], list[MarketRecord]]:
    """Means and paired gains (95% CIs) of every profile and provider in one setting; the family-wise fields
    (``gain_lower``, ``detectable``) are filled in by :func:`judge`."""
    honest = result.profiles["honest"].runs
    honest_user = _column(honest, "market/user_utility")
    records: list[DeviationRecord] = []
    market_rows: list[MarketRecord] = []
    where: dict[str, Any] = dict(mechanism=result.mechanism, billing=result.billing, horizon=result.horizon)
    whole = {rec.deviation: rec.runs for rec in result.profiles.values() if rec.lever == "all"}
    for name, rec in result.profiles.items():
        runs, base = rec.runs, rec.baseline
        user = _column(runs, "market/user_utility")
        full_info = _column(runs, "market/full_info_utility")
        means: dict[str, Any] = {}  # MARKET_KEYS fields and their CIs
        for key in MARKET_KEYS:
            means[key], means[f"{key}_ci"] = mean_ci(_column(runs, f"market/{key}"))
        mrow = MarketRecord(
            **where,
            profile=name,
            deviation=rec.deviation,
            lever=rec.lever,
            kind=rec.kind,
            **means,
            user_utility_ratio=float(user.mean() / honest_user.mean()) if honest_user.mean() else float("nan"),
            full_info_ratio=float(user.mean() / full_info.mean()) if full_info.mean() else float("nan"),
            mechanism_events={
                k.split("/", 1)[1]: float(np.mean(_column(runs, k))) for k in runs[0] if k.startswith("mechanism/")
            },
        )
        market_rows.append(mrow)
        for a in result.agents:
            per: dict[str, Any] = {}  # PROVIDER_KEYS fields and their CIs
            for key in PROVIDER_KEYS:
                per[key], per[f"{key}_ci"] = mean_ci(_column(runs, f"{a}/{key}"))
            diff = _column(runs, f"{a}/profit") - _column(base, f"{a}/profit")
            gain, half = mean_ci(diff)
            se = _se(diff)
            shortfall = shortfall_se = float("nan")
            if rec.lever != "all" and rec.deviation in whole:
                # over the seeds both played: an undecided one may have been played on more (resolve_undecided)
                n = min(len(whole[rec.deviation]), len(runs))
                beyond = _column(whole[rec.deviation][:n], f"{a}/profit") - _column(runs[:n], f"{a}/profit")
                shortfall, shortfall_se = float(beyond.mean()), _se(beyond)
            records.append(
                DeviationRecord(
                    **where,
                    profile=name,
                    deviation=rec.deviation,
                    lever=rec.lever,
                    kind=rec.kind,
                    provider=a,
                    deviator=a in rec.deviators,
                    **per,
                    gain=gain,
                    gain_ci_low=gain - half,
                    gain_ci_high=gain + half,
                    gain_se=se,
                    gain_lower=float("nan"),
                    detectable=float("nan"),
                    n_seeds=diff.size,
                    user_utility=mrow.user_utility,
                    user_utility_ratio=mrow.user_utility_ratio,
                    full_info_ratio=mrow.full_info_ratio,
                    allocative_efficiency=mrow.allocative_efficiency,
                    unserved_share=mrow.unserved_share,
                    market_payment=mrow.payment,
                    shortfall=shortfall,
                    shortfall_se=shortfall_se,
                )
            )
    return records, market_rows


def family_size(results: list[SettingResult]) -> int:
    """Deviations the verdict tests: deviating (provider, profile) pairs over the judged settings, an alias (the same
    actions under another name) counted once."""
    return sum(len(p.deviators) for r in results if r.note is None for p in r.profiles.values() if p.alias_of is None)


def _paying_lever(
    top: DeviationRecord, records: list[DeviationRecord], tolerance: float, t_of: Callable[[int], float]
) -> str:
    """The lever of a significant deviation that pays: its own single lever; else the single-lever variant of the same
    deviation that earns the exploit alone - its gain clears the tolerance family-wise and the whole deviation earns
    no significantly more (paired shortfall) - with the largest lower bound; else the combination of its levers.

    A lever that alone earns a small fraction of the exploit does not "pay" it: naming it would turn on whether that
    fraction happens to clear the bound in a given run."""
    if top.lever != "all":
        return top.lever
    siblings = [
        r
        for r in records
        if r.deviation == top.deviation and r.provider == top.provider and r.horizon == top.horizon and r.lever != "all"
    ]
    if not siblings:  # a one-lever deviation: its lever is the one it moves
        return "all"
    alone = [
        r
        for r in siblings
        if r.gain_lower > tolerance
        and not r.shortfall - t_of(min(r.n_seeds, top.n_seeds)) * r.shortfall_se > tolerance  # NaN: not alone
    ]
    if alone:
        return max(alone, key=lambda r: r.gain_lower).lever
    return "+".join(sorted(r.lever for r in siblings))


def _lever_count(lever: str) -> int:
    return len(LEVERS) if lever == "all" else len(lever.split("+"))


def paying_levers(exploits: list[Exploit], longest: int | None = None) -> str | None:
    """The levers that pay a mechanism's exploits in the long run: of the exploits at the ``longest`` judged horizon
    (every exploit when none persists there), every single lever that earns one on its own (in the order of
    :data:`agents.policy.LEVERS`), else every smallest combination that does, comma-separated; None without an
    exploit."""
    exploits = [e for e in exploits if e.horizon == longest] or exploits
    if not exploits:
        return None
    size = min(_lever_count(e.paying_lever) for e in exploits)
    simplest = {e.paying_lever for e in exploits if _lever_count(e.paying_lever) == size}
    order: dict[str, int] = {lever: i for i, lever in enumerate(LEVERS)}
    return ", ".join(sorted(simplest, key=lambda lever: (order.get(lever, len(order)), lever)))


def judge(
    results: list[SettingResult], tolerance: float, levers_of: dict[str, str] | None = None, looks: int = 1
) -> MechanismVerdict:
    """The verdict on one mechanism under one billing from its settings (one per horizon).

    Args:
        results: the mechanism's settings, one per horizon.
        tolerance: the gain per round a family-wise lower bound must exceed.
        levers_of: the single lever a one-lever deviation moves (deviation name -> lever), to name it as the paying
            lever (default: the scripted presets').
        looks: how many times the runs may be judged as seeds are added where a decision is open
            (:attr:`evaluation.config.EvalSpec.looks`): the Bonferroni family counts every test at every look.
    """
    if levers_of is None:
        levers_of = {name: scripted_levers(name)[0] for name in PRESETS if len(scripted_levers(name)) == 1}
    mechanism, billing = results[0].mechanism, results[0].billing
    judged = [r for r in results if r.note is None]
    records: list[DeviationRecord] = []
    market_rows: list[MarketRecord] = []
    for r in results:
        recs, mrows = setting_records(r)
        records += recs
        market_rows += mrows
    tested = family_size(results)

    @cache
    def t_of(n_seeds: int) -> float:  # the family's quantile for a gain over n_seeds seeds
        return family_quantile(tested * looks, n_seeds - 1)

    t_family = t_of(min((r.n_seeds for r in judged), default=2))
    for rec in records:
        t = t_of(rec.n_seeds)
        rec.gain_lower = rec.gain - t * rec.gain_se
        rec.detectable = tolerance + detectable_gain(rec.gain_se, t, rec.n_seeds - 1)
    judged_horizons = sorted(r.horizon for r in judged)
    longest = judged_horizons[-1] if judged_horizons else None
    candidates = [r for r in records if r.deviator and r.horizon in judged_horizons]
    significant = [r for r in candidates if r.gain_lower > tolerance]

    def exploit(r: DeviationRecord) -> Exploit:
        lever = _paying_lever(r, records, tolerance, t_of)
        if lever == "all" and levers_of:
            lever = levers_of.get(r.deviation.split("@")[0], lever)
        return Exploit(
            r.provider,
            r.profile,
            r.deviation,
            r.lever,
            r.horizon,
            r.gain,
            r.gain_ci_low,
            r.gain_ci_high,
            r.gain_lower,
            lever,
        )

    exploits = [exploit(r) for r in sorted(significant, key=lambda r: -r.gain_lower)]
    top = max(candidates, key=lambda r: r.gain_lower, default=None)
    regret = exploit(top) if top is not None else None
    persistence = None
    if exploits:
        persistence = "persistent" if any(e.horizon == longest for e in exploits) else "transient"
    at_longest = [r.detectable for r in candidates if r.horizon == longest and r.lever == "all"]
    detectable = max(at_longest, default=float("nan"))
    paying = paying_levers(exploits, longest)
    undecided = _undecided(candidates, exploits, paying, longest, tolerance, levers_of)
    if paying is not None:  # a lever that may yet pay alone, its deviations at the seed cap: said, not dropped
        open_levers = {
            _single_lever(r, levers_of) for r in candidates if (r.horizon, r.profile) in set(undecided)
        } - set(paying.split(", "))
        if open_levers & set(LEVERS):
            paying += "; undecided: " + ", ".join(lever for lever in LEVERS if lever in open_levers)
    notes = [f"T={r.horizon}: not judged ({r.note})" for r in results if r.note is not None]
    notes += _weaker_learners(records, judged_horizons)
    if undecided:
        notes.append(
            f"undecided (95% CI reaches above {tolerance:g}, family-wise lower bound not): "
            + ", ".join(f"{profile} at T={horizon}" for horizon, profile in undecided)
        )
    if exploits:
        e = exploits[0]
        verdict = (
            f"exploited ({persistence}) by {e.provider} via {e.profile} at T={e.horizon}, lever "
            f"{e.paying_lever}: {e.gain:+.4f} per round [95% CI {e.gain_ci_low:+.4f}, {e.gain_ci_high:+.4f}], "
            f"family-wise lower bound {e.gain_lower:+.4f}"
        )
    elif regret is not None:
        verdict = (
            f"holds: no family-wise lower bound clears {tolerance:g} (largest {regret.gain_lower:+.4f}, "
            f"{regret.profile} at T={regret.horizon}); gains above {detectable:.4f} per round would have "
            f"been detected with 80% power"
        )
    else:
        verdict = "holds: no deviation tested"
    return MechanismVerdict(
        mechanism=mechanism,
        billing=billing,
        horizons=[r.horizon for r in results],
        records=records,
        market=market_rows,
        exploited=bool(exploits),
        verdict=verdict,
        ic_regret=regret,
        exploits=exploits,
        persistence=persistence,
        paying_lever=paying,
        deviations_tested=tested,
        t_family=t_family,
        detectable=detectable,
        notes=notes,
        undecided=undecided,
    )


def _single_lever(r: DeviationRecord, levers_of: dict[str, str]) -> str:
    """The one lever a record's deviation moves: its lever variant's, or a one-lever deviation's; else "all"."""
    return r.lever if r.lever != "all" else levers_of.get(r.deviation.split("@")[0], "all")


def _undecided(
    candidates: list[DeviationRecord],
    exploits: list[Exploit],
    paying: str | None,
    longest: int | None,
    tolerance: float,
    levers_of: dict[str, str],
) -> list[tuple[int, str]]:
    """(horizon, profile) of the deviations whose family-wise lower bound does not clear the tolerance but whose 95%
    confidence interval reaches above it (whichever side of it the estimate lies on), where a decision turns on them:
    every deviation while the mechanism holds (one of them may yet exploit it); once exploited, the one-lever
    deviations and variants of a lever not yet among the levers that pay (it may yet pay alone) at the horizons those
    are named at, and, while no exploit is significant at the longest horizon, the deviations there (persistence)."""

    def unconfirmed(r: DeviationRecord) -> bool:
        return r.gain_lower <= tolerance < r.gain_ci_high

    if not exploits:
        relevant = candidates
    else:
        open_levers = set(LEVERS) - set((paying or "").split(", "))
        persists = any(e.horizon == longest for e in exploits)
        relevant = [
            r
            for r in candidates
            if _single_lever(r, levers_of) in open_levers and (r.horizon == longest or not persists)
        ]
        if not persists:
            relevant += [r for r in candidates if r.horizon == longest]
    return sorted({(r.horizon, r.profile) for r in relevant if unconfirmed(r)})


def _weaker_learners(records: list[DeviationRecord], horizons: list[int]) -> list[str]:
    """Learned deviations (all levers) whose gain stays below the best scripted deviation of the same provider at the
    same horizon, by name."""
    notes = []
    for r in records:
        if r.kind != "learned" or r.lever != "all" or not r.deviator or r.horizon not in horizons:
            continue
        scripted = [
            s
            for s in records
            if s.kind == "scripted"
            and s.lever == "all"
            and s.deviator
            and s.provider == r.provider
            and s.horizon == r.horizon
        ]
        best = max(scripted, key=lambda s: s.gain, default=None)
        if best is not None and r.gain < best.gain:
            notes.append(
                f"{r.profile} stays weaker than {best.profile} at T={r.horizon} ({r.gain:+.4f} vs "
                f"{best.gain:+.4f} per round)"
            )
    return notes
