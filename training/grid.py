"""The learners of an evaluation: best responses for every mechanism, billing and provider, several seeds each,
trained in parallel processes until they match the best scripted deviation; the strongest seed, chosen on selection
seeds disjoint from the evaluation's, is the one the evaluation plays.

Each (mechanism, billing, provider, seed) is one train.py run dir ``<out>/runs/<mechanism>-<billing>/<provider>-s<k>``
(one learner against truthful others, ``target: best_scripted``); a run dir that already holds a summary is reused.
The selection (every seed's gain on the selection seeds, its target and steps) is written to
``<out>/runs/selection.json`` and returned for the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mechanisms
from agents.registry import make_strategy
from envs.files import atomic_write
from evaluation.config import LIST_PRICE, EvalConfig, EvalSpec, Setting, billing_of
from evaluation.rollout import play
from evaluation.runner import process_pool
from training.config import TrainConfig
from training.trainer import train

CHUNK = 50_000  # learner steps between gain measurements (and the early stop)


def _train_job(job: tuple[dict, bool]) -> str:
    fields, progress = job
    return str(train(TrainConfig(**fields), progress=progress).run_dir)


def train_horizon(cfg: EvalConfig, mechanism: str, billing: str) -> int:
    """The horizon a mechanism's learners train at: ``cfg.train_horizon``, else the first of ``cfg.horizons`` at
    which the mechanism is not degenerate (in one honest episode)."""
    if cfg.train_horizon is not None:
        return cfg.train_horizon
    spec = EvalSpec(scenario=cfg.scenario, mechanisms=[mechanism], overrides=cfg.overrides)
    for horizon in sorted(cfg.horizons):
        market = spec.market(Setting(mechanism, billing, horizon), 1)
        honest = {a: make_strategy("truthful", market.layout) for a in market.possible_agents}
        row = play(market, honest, [cfg.selection_episodes])[0]
        diagnostics = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("mechanism/")}
        if mechanisms.REGISTRY[mechanism].degenerate(diagnostics) is None:
            return horizon
    return max(cfg.horizons)


def learner_jobs(cfg: EvalConfig, progress: bool) -> list[tuple[dict[str, Any], bool]]:
    """One training job per (mechanism, billing, provider, seed) not trained yet."""
    spec = EvalSpec(scenario=cfg.scenario, mechanisms=cfg.mechanisms, overrides=cfg.overrides,
                    billings=list(cfg.billings))
    jobs = []
    for mechanism, billing in dict.fromkeys(s.market_key for s in spec.settings()):
        horizon = train_horizon(cfg, mechanism, billing)
        agents = spec.market(Setting(mechanism, billing, horizon), 1).possible_agents
        learners = agents if cfg.train_learners in (["all"], []) else cfg.train_learners
        overrides = {**cfg.overrides, "horizon": horizon, **({} if billing == LIST_PRICE else {"billing": billing})}
        # At least four episodes of every market within the step cap: fewer markets at long horizons.
        n_envs = max(8, min(TrainConfig.n_envs, cfg.train_timesteps // (4 * horizon)))
        batch = min(TrainConfig.batch_size, n_envs * TrainConfig.n_steps)
        for provider in learners:
            for k in range(cfg.train_seeds):
                run_dir = Path(cfg.out) / "runs" / f"{mechanism}-{billing}" / f"{provider}-s{k}"
                if (run_dir / "summary.json").is_file():
                    continue
                jobs.append(({"scenario": cfg.scenario, "mechanism": mechanism, "overrides": overrides,
                              "learners": [provider], "opponents": "truthful", "timesteps": cfg.train_timesteps,
                              "target": "best_scripted", "eval_every": CHUNK, "eval_episodes": cfg.selection_episodes,
                              "seed": 100 * cfg.seed + k, "selection_seed": 500_000 + 10_000_000 * cfg.seed,
                              "n_envs": n_envs, "batch_size": batch, "checkpoint_every": 0,
                              "run_dir": str(run_dir)},
                             progress))
    return jobs


def train_learners(cfg: EvalConfig, progress: bool = True
                   ) -> tuple[dict[tuple[str, str], list[str]], list[dict[str, Any]]]:
    """Train (or reuse) every learner seed, then pick per (mechanism, billing, provider) the seed with the largest
    gain on the selection seeds. Returns the chosen run dirs by (mechanism, billing) and every seed's record."""
    jobs = learner_jobs(cfg, progress)
    if jobs:
        with process_pool(max(1, cfg.workers)) as pool:
            list(pool.map(_train_job, jobs))
    records: list[dict[str, Any]] = []
    chosen: dict[tuple[str, str], list[str]] = {}
    runs = Path(cfg.out) / "runs"
    for mechanism in cfg.mechanisms:
        for billing in dict.fromkeys(billing_of(mechanism, b) for b in cfg.billings):
            seeds: dict[str, list[dict[str, Any]]] = {}
            for run_dir in sorted((runs / f"{mechanism}-{billing}").glob("*-s*")):
                summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
                for provider, s in summary.items():
                    seeds.setdefault(provider, []).append({"mechanism": mechanism, "billing": billing,
                                                           "provider": provider, "run_dir": str(run_dir), **s})
            for group in seeds.values():
                best = max(group, key=lambda r: r["manipulation_gain"])
                for r in group:
                    r["chosen"] = r is best
                records += group
                chosen.setdefault((mechanism, billing), []).append(best["run_dir"])
    runs.mkdir(parents=True, exist_ok=True)
    atomic_write(runs / "selection.json", json.dumps(records, indent=2))
    return chosen, records
