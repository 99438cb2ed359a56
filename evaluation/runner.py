"""Running an evaluation: every profile of every mechanism in every setting (billing x horizon) over every seed, the
seeds added until the gains are as precise as asked, one job per setting on a backend (:mod:`evaluation.parallel`:
a local process pool or Ray); then the verdicts and the analytic checks of MECHANISMS.md §8.

All profiles of a setting play at once, one market per (profile, seed) of one batched market, on the same seeds, so
they face the same query sequences, private costs and mechanism coins (common random numbers) and gains are paired
differences (:mod:`evaluation.summary`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import mechanisms
from agents.analytic import bid_function, bne_bid
from agents.learned import load_policies, read_manifest
from agents.policy import Policy
from agents.registry import make_strategy
from envs.config import ConfigError
from evaluation.config import LIST_PRICE, EvalConfig, EvalSpec, Setting, billing_of
from evaluation.parallel import Backend, ProcessBackend, make_backend
from evaluation.profiles import Profile, learned_profiles, scripted_profiles
from evaluation.results import MechanismVerdict, ProfileRuns, ReportHeader, Runs, SettingResult
from evaluation.rollout import Trace, play, play_profiles
from evaluation.statistics import family_quantile, mean_ci
from evaluation.summary import judge


def _mean_over_episodes(rows: Runs, seeds: int, episodes: int) -> Runs:
    return [
        {k: float(np.mean([r[k] for r in rows[i * episodes : (i + 1) * episodes]])) for k in rows[0]}
        for i in range(seeds)
    ]


def setting_profiles(spec: EvalSpec, setting: Setting) -> list[Profile]:
    """All-honest play, every scripted deviation and every learned run of the setting (with lever variants)."""
    market = spec.market(setting, 1)
    profiles = [Profile("honest", {})] + scripted_profiles(market, spec.strategies, spec.levers)
    for run_dir in spec.run_dirs.get(setting.market_key, []):
        profiles += learned_profiles(run_dir, market, spec.levers)
    return profiles


def _play_seeds(
    spec: EvalSpec, setting: Setting, profiles: list[Profile], first: int, stop: int, traces: bool
) -> tuple[dict[str, Runs], dict[tuple[str, ...], Runs], dict[str, Trace]]:
    """Independent seeds ``first .. stop - 1`` of every profile (aliases share their source's) and of every baseline
    with non-truthful others."""
    seeds = spec.seeds_between(first, stop)
    baselines = {tuple(sorted(p.others)): p for p in profiles if p.others}
    plays: list[tuple[Any, Profile, bool]] = [(p.name, p, False) for p in profiles if p.alias_of is None]  # name or key
    plays += [(key, p, True) for key, p in baselines.items()]
    market = spec.market(setting, len(plays) * len(seeds))
    policies = [p.policies(market, honest_deviators=honest) for _, p, honest in plays]
    rows, trace_list = play_profiles(market, policies, seeds, traces)
    n = stop - first
    runs = {name: _mean_over_episodes(r, n, spec.episodes) for (name, _, honest), r in zip(plays, rows) if not honest}
    base = {key: _mean_over_episodes(r, n, spec.episodes) for (key, _, honest), r in zip(plays, rows) if honest}
    traces_by_name = {name: t for (name, _, honest), t in zip(plays, trace_list) if not honest}
    for p in profiles:
        if p.alias_of is not None:
            runs[p.name] = runs[p.alias_of]
            if traces:
                traces_by_name[p.name] = traces_by_name[p.alias_of]
    return runs, base, traces_by_name


def evaluate_setting(spec: EvalSpec, setting: Setting, family: int = 0) -> SettingResult:
    """Every profile of one setting over ``spec.seeds`` seeds; then, doubling up to ``spec.max_seeds``, more seeds for
    each deviation (with all its lever variants, so their paired shortfalls stay paired) while one of its gains'
    family-wise CI half-width (``family`` tests; default: this setting's deviations) exceeds the target. A deviation
    whose gains are already that precise stops: the seeds go where the uncertainty is. Honest play, every deviation's
    baseline, plays every seed any deviation plays."""
    profiles = setting_profiles(spec, setting)
    family = family or sum(len(p.deviators) for p in profiles if p.alias_of is None)
    runs, base, traces = _play_seeds(spec, setting, profiles, 0, spec.seeds, traces=True)
    baselines = {p.name: list(base.get(tuple(sorted(p.others)), runs["honest"])) for p in profiles}
    n = spec.seeds
    cap = spec.max_seeds or spec.seeds
    while n < cap:
        sources = [p for p in profiles if p.alias_of is None and p.deviators and len(runs[p.name]) == n]
        t = family_quantile(family, n - 1)
        wide = {
            p.deviation for p in sources if _half_width(p, runs[p.name], baselines[p.name], t) > spec.target_half_width
        }
        if not wide:
            break
        extended = [p for p in sources if p.deviation in wide]
        more = min(2 * n, cap)
        honest = next(p for p in profiles if p.name == "honest")
        extra, extra_base, _ = _play_seeds(spec, setting, [honest, *extended], n, more, traces=False)
        runs["honest"] = runs["honest"] + extra["honest"]
        for p in extended:
            runs[p.name] = runs[p.name] + extra[p.name]
            baselines[p.name] = baselines[p.name] + extra_base.get(tuple(sorted(p.others)), extra["honest"])
        n = more
    baselines["honest"] = runs["honest"]
    results = {
        p.name: ProfileRuns(
            p.deviation,
            p.lever,
            p.kind,
            sorted(p.deviators),
            tuple(sorted(p.others)),
            runs[p.alias_of or p.name],
            traces[p.name].arrays(),
            baselines[p.alias_of or p.name],
            p.alias_of,
        )
        for p in profiles
    }
    market = spec.market(setting, 1)
    honest_runs = runs["honest"]
    note = mechanisms.REGISTRY[setting.mechanism].degenerate(
        {
            k.split("/", 1)[1]: float(np.mean([r[k] for r in honest_runs]))
            for k in honest_runs[0]
            if k.startswith("mechanism/")
        }
    )
    return SettingResult(
        setting.mechanism,
        setting.billing,
        setting.horizon,
        market.config.name,
        market.possible_agents,
        market.config.value_scale,
        results,
        note,
    )


def _half_width(profile: Profile, runs: Runs, baseline: Runs, t: float) -> float:
    """The widest CI half-width (quantile ``t``) of a deviator's paired gain in one profile."""
    widest = 0.0
    for a in profile.deviators:
        diff = np.array([r[f"{a}/profit"] - b[f"{a}/profit"] for r, b in zip(runs, baseline)])
        widest = max(widest, t * float(diff.std(ddof=1)) / np.sqrt(diff.size))
    return widest


def _evaluate_one(args: tuple[EvalSpec, Setting, int]) -> SettingResult:
    return evaluate_setting(*args)


def run_evaluation(spec: EvalSpec, backend: Backend | None = None, progress: bool = True) -> list[SettingResult]:
    """Raw results of every setting, one job per setting on ``backend`` (default: in this process). Each setting's
    seeds grow for the family of its mechanism and billing (deviations x horizons)."""
    backend = backend or ProcessBackend()
    settings = spec.settings()
    horizons = len(spec.horizons)
    jobs = [
        (spec, s, sum(len(p.deviators) for p in setting_profiles(spec, s) if p.alias_of is None) * horizons)
        for s in settings
    ]
    return backend.map_longest_first(_evaluate_one, jobs, lambda job: job[1].horizon, "evaluate", progress)


Extension = tuple[EvalSpec, Setting, list[str], int, int]  # spec, setting, profile names, first seed, stop seed


def _extend_one(args: Extension) -> tuple[dict[str, Runs], dict[tuple[str, ...], Runs]]:
    """Seeds ``first .. stop - 1`` of the named profiles of a setting (sources, not aliases) and of their baselines."""
    spec, setting, names, first, stop = args
    profiles = [p for p in setting_profiles(spec, setting) if p.name == "honest" or p.name in names]
    runs, base, _ = _play_seeds(spec, setting, profiles, first, stop, traces=False)
    return runs, base


def resolve_undecided(
    spec: EvalSpec,
    results: list[SettingResult],
    tolerance: float,
    backend: Backend | None = None,
    progress: bool = True,
) -> list[MechanismVerdict]:
    """The verdicts, once every decision is settled or its deviations reach ``spec.decision_seeds`` seeds.

    While a decision (exploited or not, the levers that pay, persistence) turns on a deviation whose family-wise lower
    bound does not clear the tolerance while its 95% CI reaches above it (:attr:`MechanismVerdict.undecided`), that
    deviation - with all its lever variants, so paired shortfalls stay paired - plays twice the seeds, continuing the
    same seed sequence, and the mechanism is judged again. Only the undecided deviations and their baselines play, so
    a gain at the detection limit of a long horizon costs a few profiles' seeds, not the setting's. ``results`` are
    extended in place.

    Adding seeds only where a decision is open is a sequential design: whether a deviation plays more seeds depends on
    its gain so far, so every look is a test, and each look is a Bonferroni test of the whole family over
    ``spec.looks`` looks (every verdict of the run, the first look's included)."""
    backend = backend or ProcessBackend()
    by_setting = {(r.mechanism, r.billing, r.horizon): r for r in results}
    cap = spec.decision_seeds or 0
    while True:
        judged = verdicts(results, tolerance, spec.looks)
        jobs: list[Extension] = []
        for v in judged:
            for horizon in sorted({h for h, _ in v.undecided}):
                result = by_setting[v.mechanism, v.billing, horizon]
                profiles = result.profiles
                sources = {profiles[p].alias_of or p for h, p in v.undecided if h == horizon}
                deviations = {profiles[p].deviation for p in sources}
                by_seeds: dict[int, list[str]] = {}
                for name, pr in profiles.items():
                    if pr.alias_of is None and pr.deviation in deviations:
                        by_seeds.setdefault(len(pr.runs), []).append(name)
                setting = Setting(v.mechanism, v.billing, horizon)
                jobs += [(spec, setting, names, n, min(2 * n, cap)) for n, names in by_seeds.items() if n < cap]
        if not jobs:
            return judged
        extras = backend.map_longest_first(
            _extend_one, jobs, lambda job: job[1].horizon * (job[4] - job[3]), "resolve", progress
        )
        for (_, setting, names, _, _), (runs, base) in zip(jobs, extras):
            profiles = by_setting[setting.mechanism, setting.billing, setting.horizon].profiles
            for name in names:  # new lists: profiles share their baseline's
                pr = profiles[name]
                pr.runs = pr.runs + runs[name]
                pr.baseline = pr.baseline + (base[pr.others] if pr.others else runs["honest"])
            for pr in profiles.values():
                if pr.alias_of in names:
                    pr.runs, pr.baseline = profiles[pr.alias_of].runs, profiles[pr.alias_of].baseline


def verdicts(results: list[SettingResult], tolerance: float, looks: int = 1) -> list[MechanismVerdict]:
    """One verdict per (mechanism, billing), over its horizons (``looks``: see :func:`evaluation.summary.judge`)."""
    by_market: dict[tuple[str, str], list[SettingResult]] = {}
    for r in results:
        by_market.setdefault((r.mechanism, r.billing), []).append(r)
    return [judge(sorted(rs, key=lambda r: r.horizon), tolerance, looks=looks) for rs in by_market.values()]


def run_dirs_by_market(paths: list[str]) -> dict[tuple[str, str], list[str]]:
    """Run dirs grouped by the (mechanism, billing) their manifest says they were trained in."""
    out: dict[tuple[str, str], list[str]] = {}
    for d in paths:
        manifest = read_manifest(d)
        mechanism = manifest["mechanism"]
        billing = (
            billing_of(mechanism, manifest.get("overrides", {}).get("billing", "per_query"))
            if mechanism in mechanisms.REGISTRY
            else LIST_PRICE
        )
        out.setdefault((mechanism, billing), []).append(d)
    return out


def check_run_dirs(spec: EvalSpec) -> None:
    """Fail early, naming the run dir, when a run is missing or does not match the market it is evaluated in."""
    markets = {s.market_key: s for s in spec.settings()}
    for key, dirs in spec.run_dirs.items():
        if key not in markets:
            raise ConfigError(
                f"--run-dir: runs trained on {key[0]} ({key[1]} billing), which is not evaluated "
                f"(--mechanism {','.join(spec.mechanisms)}, --billings {','.join(spec.billings)})"
            )
        for d in dirs:
            if not Path(d).is_dir():
                raise ConfigError(f"--run-dir {d}: does not exist")
            learned_profiles(d, spec.market(markets[key], 1))


def analytic_checks(spec: EvalSpec) -> dict[str, Any]:
    """Where theory applies (``uniform``): revenue equivalence of first and second price at equilibrium, and the
    distance of learned first-price bid functions from the equilibrium b(c) = c + (1 - c) / n (MECHANISMS.md §8)."""
    if "first_price" not in spec.mechanisms:  # every check involves it (and --set may hold other mechanisms' params)
        return {}
    horizon = spec.horizons[0]
    first, second = Setting("first_price", "per_query", horizon), Setting("second_price", "per_query", horizon)
    market = spec.market(first, 1)
    if market.config.name != "uniform":
        return {}
    n = len(market.possible_agents)
    seeds = spec.seeds_between(0, spec.seeds)
    out: dict[str, Any] = {"n_providers": n, "expected_payment_theory": 2.0 / (n + 1)}
    if {"first_price", "second_price"} <= set(spec.mechanisms):
        fp, sp = spec.market(first, len(seeds)), spec.market(second, len(seeds))
        bne: dict[str, Policy] = {a: make_strategy("bne", fp.layout) for a in fp.possible_agents}
        truthful: dict[str, Policy] = {a: make_strategy("truthful", sp.layout) for a in sp.possible_agents}
        pay_fp = np.array([row["market/payment"] for row in play(fp, bne, seeds)])
        pay_sp = np.array([row["market/payment"] for row in play(sp, truthful, seeds)])
        diff, half = mean_ci(pay_fp - pay_sp)
        out["revenue_equivalence"] = {
            "first_price_bne_payment": float(pay_fp.mean()),
            "second_price_truthful_payment": float(pay_sp.mean()),
            "difference": diff,
            "difference_ci": half,
        }
    grid = np.linspace(0.05, 0.95, 19)
    distances = {}
    for run_dir in spec.run_dirs.get(first.market_key, []):
        env = spec.single_market(first)
        for agent, policy in load_policies(run_dir, env).items():
            learned = bid_function(policy, env, agent, grid)
            distances[f"{Path(run_dir).name}/{agent}"] = float(np.abs(learned - bne_bid(grid, n)).mean())
    if distances:
        out["learned_bid_distance_from_equilibrium"] = distances
    return out


def evaluate_all(
    cfg: EvalConfig,
    run_dirs: dict[tuple[str, str], list[str]],
    progress: bool = True,
    learners: list[dict[str, Any]] | None = None,
) -> tuple[ReportHeader, list[SettingResult], list[MechanismVerdict], dict[str, Any]]:
    """The whole evaluation a config asks for: play every profile of every setting (scripted deviations and the
    learned runs of ``run_dirs``), judge every mechanism and billing, and run the analytic checks. ``learners``
    (the training grid's selection records) ride along into the report header."""
    spec = EvalSpec(
        scenario=cfg.scenario,
        mechanisms=cfg.mechanisms,
        overrides=cfg.overrides,
        strategies=cfg.strategies,
        run_dirs=run_dirs,
        billings=list(cfg.billings),
        horizons=sorted(cfg.horizons),
        levers=cfg.levers,
        seeds=cfg.seeds,
        max_seeds=cfg.max_seeds,
        target_half_width=cfg.target_half_width,
        decision_seeds=cfg.decision_seeds,
        episodes=cfg.episodes,
        base_seed=EvalSpec.base_seed_of(cfg.seed),
    )
    check_run_dirs(spec)
    backend = make_backend(cfg)
    results = run_evaluation(spec, backend, progress)
    judged = resolve_undecided(spec, results, cfg.tolerance, backend, progress)
    market = spec.market(spec.settings()[0], 1)
    header = ReportHeader(
        scenario=market.config.name,
        mechanisms=cfg.mechanisms,
        billings=list(cfg.billings),
        horizons=sorted(cfg.horizons),
        seeds=cfg.seeds,
        max_seeds=cfg.max_seeds,
        target_half_width=cfg.target_half_width,
        decision_seeds=cfg.decision_seeds,
        episodes=cfg.episodes,
        n_providers=len(market.possible_agents),
        strategies=cfg.strategies,
        run_dirs={f"{m}/{b}": d for (m, b), d in run_dirs.items()},
        tolerance=cfg.tolerance,
        overrides=cfg.overrides,
        learners=learners or [],
    )
    return header, results, judged, analytic_checks(spec)
