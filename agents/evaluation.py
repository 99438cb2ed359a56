"""Does a mechanism hold up against manipulation? Paired evaluation of strategy profiles (MECHANISMS.md §9).

For every mechanism, every profile is played on the same seeds, so all profiles face the same query sequences and
private costs (common random numbers) and gains are paired differences. A profile is a unilateral deviation: one or
more *deviators* play a scripted manipulation or a learned policy while the others keep their strategy (truthful
unless a training run says otherwise); its baseline is the same profile with the deviators playing truthful.

Metrics per mechanism x profile x provider: ``profit`` (mean per round), ``gain`` (profit minus the paired honest
baseline, with a 95% CI over seeds), ``bid_markup``, ``substitution_rate``, ``mean_inflation``, ``win_rate``,
``payment``; per mechanism x profile: ``user_utility`` (absolute; ``user_utility_ratio`` to all-honest play;
``full_info_ratio`` to the full-information benchmark where the best provider serves at cost), ``payment``,
``allocative_efficiency``, ``unserved_share`` and the mechanism's own diagnostics. A mechanism's ``ic_regret`` is
the largest gain found (a lower bound on its exploitability); the mechanism is *exploited* when that gain exceeds
the tolerance with family-wise 95% confidence (Bonferroni over the deviations tested), and otherwise *holds*.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from agents.learned import load_policies, read_manifest
from agents.policy import Policy
from agents.rollout import Trace, mean_ci, play_episode, t_quantile
from agents.scripted import make_strategy
from envs.config import ConfigError
from envs.market import parallel_env, raw_env

DEFAULT_STRATEGIES = ("markup", "substitute", "inflate")


@dataclass
class Profile:
    """A named strategy profile: ``deviators`` (agent -> policy factory) against ``others`` (default truthful)."""

    name: str
    deviators: dict[str, Callable[[raw_env], Policy]]
    others: dict[str, Callable[[raw_env], Policy]] = field(default_factory=dict)
    kind: str = "scripted"

    def policies(self, market: raw_env, honest_deviators: bool = False) -> dict[str, Policy]:
        out = {}
        for a in market.possible_agents:
            if a in self.deviators and not honest_deviators:
                out[a] = self.deviators[a](market)
            elif a in self.others:
                out[a] = self.others[a](market)
            else:
                out[a] = make_strategy("truthful", market.layout)
        return out


def scripted_profiles(market: raw_env, strategies: list[str]) -> list[Profile]:
    """One profile per (strategy, provider): that provider plays the strategy, everyone else truthful.

    ``substitute`` is skipped for providers with nothing cheaper on their menu (it would be honest play)."""
    can_substitute = market.market.n_substitutes > 0
    return [Profile(f"{s}@{a}", {a: (lambda m, _s=s, _k=k: make_strategy(_s, m.layout, seed=_k))})
            for s in strategies if s != "truthful" for k, a in enumerate(market.possible_agents)
            if s != "substitute" or can_substitute[k]]


def learned_profiles(run_dir: str | Path, market: raw_env) -> list[Profile]:
    """Profiles of a train.py run, checked against ``market`` first.

    A best-response run gives one unilateral profile per learner, ``learned@<agent>:<run>``: that learner's policy
    against the strategy it trained against (a scripted opponents spec; truthful otherwise). Independent and shared
    runs give one joint profile, ``learned:<run>``, in which all learners play their policies at once (its gains are
    against all of them honest).
    """
    manifest = read_manifest(run_dir)
    load_policies(run_dir, market)  # checks the manifest against this market before anything runs
    learners = list(manifest["policies"])
    run = Path(run_dir).name
    cache: dict[str, Policy] = {}

    def learned(agent: str) -> Callable[[raw_env], Policy]:
        def build(m: raw_env) -> Policy:
            if agent not in cache:
                cache.update(load_policies(run_dir, m))
            return cache[agent]
        return build

    if manifest.get("mode") != "best-response":
        return [Profile(f"learned:{run}", {a: learned(a) for a in learners}, kind="learned")]
    spec = manifest.get("opponents", "truthful")
    # Others default to truthful (and then share the all-honest baseline); a scripted opponent spec is kept.
    scripted = spec != "truthful" and "=" not in spec and not Path(spec).is_dir()
    others = {a: (lambda m, _s=spec: make_strategy(_s, m.layout)) for a in market.possible_agents} if scripted else {}
    return [Profile(f"learned@{a}:{run}", {a: learned(a)}, {o: f for o, f in others.items() if o != a},
                    kind="learned") for a in learners]


@dataclass
class EvalSpec:
    """What to evaluate: the market, the mechanisms, the profiles and the seeds."""

    scenario: str
    mechanisms: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    run_dirs: dict[str, list[str]] = field(default_factory=dict)  # mechanism -> run dirs
    seeds: int = 10
    episodes: int = 1
    horizon: int | None = None
    base_seed: int = 1_000

    def market(self, mechanism: str) -> raw_env:
        over = dict(self.overrides)
        if self.horizon is not None:
            over["horizon"] = self.horizon
        return parallel_env(self.scenario, mechanism, **over)

    def seed_list(self, seed_index: int) -> list[int]:
        return [self.base_seed + 1000 * seed_index + e for e in range(self.episodes)]


def _mean_over_episodes(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def evaluate_mechanism(spec: EvalSpec, mechanism: str, traces: bool = True) -> dict[str, Any]:
    """Play every profile of one mechanism over all seeds; per-seed means of every metric, plus traces."""
    market = spec.market(mechanism)
    agents = market.possible_agents
    profiles = [Profile("honest", {})] + scripted_profiles(market, spec.strategies)
    profiles += [p for d in spec.run_dirs.get(mechanism, []) for p in learned_profiles(d, market)]
    per_profile: dict[str, dict[str, Any]] = {}
    baselines: dict[tuple, list[dict[str, float]]] = {}
    for profile in profiles:
        runs, base_runs, trace = [], [], Trace()
        others_key = tuple(sorted(profile.others))
        for k in range(spec.seeds):
            seeds = spec.seed_list(k)
            policies = profile.policies(market)
            rows = [play_episode(market, policies, s, trace if (traces and k == 0 and e == 0) else None)
                    for e, s in enumerate(seeds)]
            runs.append(_mean_over_episodes(rows))
            if profile.others:  # its own honest baseline: same others, deviators truthful
                honest = profile.policies(market, honest_deviators=True)
                base_runs.append(_mean_over_episodes([play_episode(market, honest, s) for s in seeds]))
        if profile.others:
            baselines[others_key] = base_runs
        per_profile[profile.name] = {"kind": profile.kind, "deviators": sorted(profile.deviators),
                                     "others": others_key, "runs": runs, "trace": trace.arrays()}
    honest_runs = per_profile["honest"]["runs"]
    for rec in per_profile.values():
        rec["baseline"] = baselines.get(rec["others"], honest_runs)
    return {"mechanism": mechanism, "agents": agents, "profiles": per_profile,
            "value_scale": market.config.value_scale, "scenario": market.config.name, "n": len(agents)}


PROVIDER_KEYS = ("profit", "win_rate", "bid_markup", "substitution_rate", "mean_inflation", "payment")
MARKET_KEYS = ("user_utility", "payment", "value", "welfare", "allocative_efficiency", "unserved_share",
               "full_info_utility")


def summarize(result: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Means, paired gains with 95% CIs, IC regret and the verdict for one mechanism's raw result."""
    agents, profiles = result["agents"], result["profiles"]
    honest = profiles["honest"]["runs"]
    records, market_rows = [], []
    best = None
    for name, rec in profiles.items():
        runs, base = rec["runs"], rec["baseline"]
        col = lambda rows, key: np.array([r[key] for r in rows])  # noqa: E731
        user = col(runs, "market/user_utility")
        honest_user = col(honest, "market/user_utility")
        full_info = col(runs, "market/full_info_utility")
        mrow = {"mechanism": result["mechanism"], "profile": name, "kind": rec["kind"]}
        for key in MARKET_KEYS:
            mrow[key], mrow[f"{key}_ci"] = mean_ci(col(runs, f"market/{key}"))
        mrow["user_utility_ratio"] = float(user.mean() / honest_user.mean()) if honest_user.mean() else float("nan")
        mrow["full_info_ratio"] = float(user.mean() / full_info.mean()) if full_info.mean() else float("nan")
        mrow["mechanism_events"] = {k.split("/", 1)[1]: float(np.mean(col(runs, k)))
                                    for k in runs[0] if k.startswith("mechanism/")}
        market_rows.append(mrow)
        for a in agents:
            row = {"mechanism": result["mechanism"], "profile": name, "kind": rec["kind"], "provider": a,
                   "deviator": a in rec["deviators"]}
            for key in PROVIDER_KEYS:
                row[key], row[f"{key}_ci"] = mean_ci(col(runs, f"{a}/{key}"))
            diff = col(runs, f"{a}/profit") - col(base, f"{a}/profit")
            gain, half = mean_ci(diff)
            se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else 0.0
            row.update(gain=gain, gain_ci_low=gain - half, gain_ci_high=gain + half, gain_se=se)
            row.update({k: mrow[k] for k in ("user_utility", "user_utility_ratio", "full_info_ratio",
                                              "allocative_efficiency", "unserved_share")})
            row["market_payment"] = mrow["payment"]
            records.append(row)
            if row["deviator"] and (best is None or row["gain"] > best["gain"]):
                best = row
    # Many deviations are tested per mechanism and the verdict looks at the largest gain, so its lower bound uses
    # a Bonferroni-adjusted Student-t quantile (family-wise 95%) rather than each deviation's own 95% CI.
    tested = sum(r["deviator"] for r in records)
    n_seeds = len(honest)
    z_family = t_quantile(1 - 0.05 / max(1, tested), max(1, n_seeds - 1))
    exploited = best is not None and best["gain"] - z_family * best["gain_se"] > tolerance
    verdict = ("holds" if not exploited else
               f"exploited by {best['provider']} via {best['profile']}: gain {best['gain']:.4f} per round "
               f"[{best['gain_ci_low']:.4f}, {best['gain_ci_high']:.4f}]")
    return {"mechanism": result["mechanism"], "records": records, "market": market_rows,
            "ic_regret": None if best is None else {k: best[k] for k in
                                                    ("provider", "profile", "gain", "gain_ci_low", "gain_ci_high")},
            "verdict": verdict, "exploited": exploited, "deviations_tested": tested, "z_family": z_family}


def _evaluate_one(args: tuple[EvalSpec, str]) -> dict[str, Any]:
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


def run_evaluation(spec: EvalSpec, workers: int = 1, progress: bool = True) -> list[dict[str, Any]]:
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
    from agents.analytic import bid_function, bne_bid

    market = spec.market(spec.mechanisms[0])
    if market.config.name != "uniform":
        return {}
    n = len(market.possible_agents)
    seeds = [s for k in range(spec.seeds) for s in spec.seed_list(k)]
    out: dict[str, Any] = {"n_providers": n, "expected_payment_theory": 2.0 / (n + 1)}
    if {"first_price", "second_price"} <= set(spec.mechanisms):
        fp, sp = spec.market("first_price"), spec.market("second_price")
        bne = {a: make_strategy("bne", fp.layout) for a in fp.possible_agents}
        truthful = {a: make_strategy("truthful", sp.layout) for a in sp.possible_agents}
        pay_fp = np.array([play_episode(fp, bne, s)["market/payment"] for s in seeds])
        pay_sp = np.array([play_episode(sp, truthful, s)["market/payment"] for s in seeds])
        diff, half = mean_ci(pay_fp - pay_sp)
        out["revenue_equivalence"] = {"first_price_bne_payment": float(pay_fp.mean()),
                                      "second_price_truthful_payment": float(pay_sp.mean()),
                                      "difference": diff, "difference_ci": half}
    grid = np.linspace(0.05, 0.95, 19)
    distances = {}
    for run_dir in spec.run_dirs.get("first_price", []):
        fp = spec.market("first_price")
        for agent, policy in load_policies(run_dir, fp).items():
            learned = bid_function(policy, fp, agent, grid)
            distances[f"{Path(run_dir).name}/{agent}"] = float(np.abs(learned - bne_bid(grid, n)).mean())
    if distances:
        out["learned_bid_distance_from_equilibrium"] = distances
    return out
