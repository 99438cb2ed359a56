"""Running an evaluation: every profile of every mechanism over every seed (in parallel processes) and the analytic
checks of MECHANISMS.md §8.

For every mechanism, every profile is played on the same seeds, so all profiles face the same query sequences and
private costs (common random numbers) and gains are paired differences (:mod:`evaluation.summary`).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from agents.analytic import bid_function, bne_bid
from agents.learned import load_policies
from agents.registry import make_strategy
from envs.config import ConfigError
from evaluation.config import EvalConfig, EvalSpec
from evaluation.profiles import Profile, learned_profiles, scripted_profiles
from evaluation.results import MechanismResult, MechanismSummary, ProfileRuns, ReportHeader, Runs
from evaluation.rollout import Trace, play
from evaluation.statistics import mean_ci
from evaluation.summary import summarize


def _mean_over_episodes(rows: Runs) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def evaluate_mechanism(spec: EvalSpec, mechanism: str, traces: bool = True) -> MechanismResult:
    """Play every profile of one mechanism over all seeds (all seeds of a profile as one batch); per-seed means of
    every metric, plus a trace of the first market."""
    market = spec.market(mechanism)
    seeds = spec.all_seeds()
    profiles = [Profile("honest", {})] + scripted_profiles(market, spec.strategies)
    profiles += [p for d in spec.run_dirs.get(mechanism, []) for p in learned_profiles(d, market)]
    per_profile: dict[str, ProfileRuns] = {}
    baselines: dict[tuple[str, ...], Runs] = {}

    def per_seed(rows: Runs) -> Runs:
        E = spec.episodes
        return [_mean_over_episodes(rows[k * E:(k + 1) * E]) for k in range(spec.seeds)]

    for profile in profiles:
        trace = Trace() if traces else None
        runs = per_seed(play(market, profile.policies(market), seeds, trace))
        others_key = tuple(sorted(profile.others))
        if profile.others and others_key not in baselines:  # its own honest baseline: same others, deviators honest
            baselines[others_key] = per_seed(play(market, profile.policies(market, honest_deviators=True), seeds))
        per_profile[profile.name] = ProfileRuns(profile.kind, sorted(profile.deviators), others_key, runs,
                                                (trace or Trace()).arrays())
    honest_runs = per_profile["honest"].runs
    for rec in per_profile.values():
        rec.baseline = baselines.get(rec.others, honest_runs)
    return MechanismResult(mechanism, market.config.name, market.possible_agents, market.config.value_scale,
                           per_profile)


def _evaluate_one(args: tuple[EvalSpec, str]) -> MechanismResult:
    spec, mechanism = args
    return evaluate_mechanism(spec, mechanism)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of fresh interpreters, one torch thread each: forking a process whose torch has started its thread
    pool can deadlock the children, and two cores are best used by two single-threaded workers."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_single_thread)


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_evaluation(spec: EvalSpec, workers: int = 1, progress: bool = True) -> list[MechanismResult]:
    """Raw results of every mechanism (in parallel processes when ``workers > 1``)."""
    from tqdm.auto import tqdm

    jobs = [(spec, m) for m in spec.mechanisms]
    if workers > 1 and len(jobs) > 1:
        with process_pool(workers) as pool:
            return list(tqdm(pool.map(_evaluate_one, jobs), total=len(jobs), desc="evaluate", disable=not progress))
    return [_evaluate_one(j) for j in tqdm(jobs, desc="evaluate", disable=not progress)]


def check_run_dirs(spec: EvalSpec) -> None:
    """Fail early, naming the run dir, when a run is missing or does not match its mechanism's market."""
    for mechanism, dirs in spec.run_dirs.items():
        for d in dirs:
            if not Path(d).is_dir():
                raise ConfigError(f"--run-dir {d}: does not exist")
            learned_profiles(d, spec.market(mechanism))


def analytic_checks(spec: EvalSpec) -> dict[str, Any]:
    """Where theory applies (``uniform``): revenue equivalence of first and second price at equilibrium, and the
    distance of learned first-price bid functions from the equilibrium b(c) = c + (1 - c) / n (MECHANISMS.md §8)."""
    market = spec.market(spec.mechanisms[0])
    if market.config.name != "uniform":
        return {}
    n = len(market.possible_agents)
    seeds = spec.all_seeds()
    out: dict[str, Any] = {"n_providers": n, "expected_payment_theory": 2.0 / (n + 1)}
    if {"first_price", "second_price"} <= set(spec.mechanisms):
        fp, sp = spec.market("first_price"), spec.market("second_price")
        bne = {a: make_strategy("bne", fp.layout) for a in fp.possible_agents}
        truthful = {a: make_strategy("truthful", sp.layout) for a in sp.possible_agents}
        pay_fp = np.array([row["market/payment"] for row in play(fp, bne, seeds)])
        pay_sp = np.array([row["market/payment"] for row in play(sp, truthful, seeds)])
        diff, half = mean_ci(pay_fp - pay_sp)
        out["revenue_equivalence"] = {"first_price_bne_payment": float(pay_fp.mean()),
                                      "second_price_truthful_payment": float(pay_sp.mean()),
                                      "difference": diff, "difference_ci": half}
    grid = np.linspace(0.05, 0.95, 19)
    distances = {}
    for run_dir in spec.run_dirs.get("first_price", []):
        fp = spec.single_market("first_price")
        for agent, policy in load_policies(run_dir, fp).items():
            learned = bid_function(policy, fp, agent, grid)
            distances[f"{Path(run_dir).name}/{agent}"] = float(np.abs(learned - bne_bid(grid, n)).mean())
    if distances:
        out["learned_bid_distance_from_equilibrium"] = distances
    return out


def evaluate_all(cfg: EvalConfig, run_dirs: dict[str, list[str]], progress: bool = True
                 ) -> tuple[ReportHeader, list[MechanismResult], list[MechanismSummary], dict[str, Any]]:
    """The whole evaluation a config asks for: play every profile of every mechanism (scripted deviations and the
    learned runs of ``run_dirs``, mechanism -> run dirs), summarize, and run the analytic checks."""
    missing = sorted(set(run_dirs) - set(cfg.mechanisms))
    if missing:
        raise ConfigError(f"--run-dir: runs trained on mechanism(s) {missing}, which are not evaluated "
                          f"(--mechanism {','.join(cfg.mechanisms)})")
    spec = EvalSpec(scenario=cfg.scenario, mechanisms=cfg.mechanisms, overrides=cfg.overrides,
                    strategies=cfg.strategies, run_dirs=run_dirs, seeds=cfg.seeds, episodes=cfg.episodes,
                    horizon=cfg.horizon)
    check_run_dirs(spec)
    results = run_evaluation(spec, workers=cfg.workers, progress=progress)
    summaries = [summarize(r, cfg.tolerance) for r in results]
    market = spec.market(cfg.mechanisms[0])
    header = ReportHeader(scenario=market.config.name, mechanisms=cfg.mechanisms, seeds=cfg.seeds,
                          episodes=cfg.episodes, horizon=market.config.horizon,
                          n_providers=len(market.possible_agents), strategies=cfg.strategies, run_dirs=run_dirs,
                          tolerance=cfg.tolerance, overrides=cfg.overrides)
    return header, results, summaries, analytic_checks(spec)
