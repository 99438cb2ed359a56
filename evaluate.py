#!/usr/bin/env python
"""Evaluate mechanisms against honest, scripted and learned strategies and write the robustness report.

A thin CLI over ``agents.evaluation`` (playing profiles), ``agents.report`` (report.md, report.json, metrics.csv,
plots, TensorBoard) and, with ``--train``, ``agents.training`` (best-response learners for every mechanism first).

Examples:
    python evaluate.py --train                                   # the main job: capitals, default mechanisms
    python evaluate.py --mechanism first_price,second_price --strategies markup,substitute --seeds 20
    python evaluate.py --run-dir runs/fp --run-dir runs/sp --out reports/learned
    python evaluate.py --scenario uniform --set n_providers=3 --mechanism all
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mechanisms
from agents.evaluation import (DEFAULT_STRATEGIES, EvalSpec, analytic_checks, check_run_dirs, process_pool,
                               run_evaluation, summarize)
from agents.learned import read_manifest
from agents.report import write_report
from envs.config import ConfigError, from_dict, load_yaml, parse_overrides


@dataclass
class EvalConfig:
    """Keys of ``--config`` YAML files (flags override them)."""

    scenario: str = "capitals"
    mechanisms: list[str] = field(default_factory=lambda: list(mechanisms.DEFAULT_MECHANISMS))
    overrides: dict[str, Any] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    run_dirs: list[str] = field(default_factory=list)
    seeds: int = 20
    episodes: int = 1
    horizon: int | None = None
    out: str = "reports/latest"
    train: bool = False
    train_timesteps: int = 100_000
    train_learners: list[str] = field(default_factory=lambda: ["all"])
    workers: int = 2
    tolerance: float = 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of EvalConfig fields")
    p.add_argument("--scenario")
    p.add_argument("--mechanism", action="append", help="name, comma list or 'all' (repeatable)")
    p.add_argument("--run-dir", action="append", dest="run_dirs", help="a train.py run dir (repeatable)")
    p.add_argument("--strategies", help="comma list of scripted deviations (default markup,substitute,inflate)")
    p.add_argument("--episodes", type=int, help="episodes per seed")
    p.add_argument("--seeds", type=int, help="independent seeds (the unit of the confidence intervals)")
    p.add_argument("--horizon", type=int, help="rounds per episode (default: the scenario's)")
    p.add_argument("--out", help="output directory (default reports/latest)")
    p.add_argument("--set", action="append", dest="overrides", metavar="KEY=VALUE")
    p.add_argument("--train", action="store_true", help="first train best-response learners for every mechanism")
    p.add_argument("--train-timesteps", type=int, dest="train_timesteps")
    p.add_argument("--workers", type=int, help="parallel processes (default 2)")
    p.add_argument("--tolerance", type=float, help="gain per round a CI must exceed to count as exploitation")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> EvalConfig:
    data = load_yaml(args.config) if args.config else {}
    if args.mechanism:
        names = [m for item in args.mechanism for m in item.split(",") if m]
        data["mechanisms"] = sorted(mechanisms.REGISTRY) if names == ["all"] else names
    if args.strategies:
        data["strategies"] = [s for s in args.strategies.split(",") if s]
    if args.overrides:
        data["overrides"] = {**data.get("overrides", {}), **parse_overrides(args.overrides)}
    for key in ("scenario", "run_dirs", "episodes", "seeds", "horizon", "out", "train_timesteps", "workers",
                "tolerance"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.train:
        data["train"] = True
    cfg = from_dict(EvalConfig, data, args.config or "evaluate flags")
    unknown = [m for m in cfg.mechanisms if m not in mechanisms.REGISTRY]
    if unknown:
        raise ConfigError(f"unknown mechanism(s) {unknown}; choose from {sorted(mechanisms.REGISTRY)} or 'all'")
    return cfg


def _train_job(job: tuple[dict[str, Any], bool]) -> str:
    from agents.training import TrainConfig, train

    fields, progress = job
    return str(train(TrainConfig(**fields), progress=progress).run_dir)


def train_learners(cfg: EvalConfig, progress: bool) -> dict[str, list[str]]:
    """Best-response learners (each provider against truthful others) for every mechanism, one run dir each."""
    jobs = []
    for m in cfg.mechanisms:
        run_dir = Path(cfg.out) / "runs" / m
        if (run_dir / "manifest.json").is_file():
            print(f"reusing trained learners in {run_dir}")
            continue
        jobs.append(({"scenario": cfg.scenario, "mechanism": m, "overrides": cfg.overrides,
                      "learners": cfg.train_learners, "opponents": "truthful", "timesteps": cfg.train_timesteps,
                      "run_dir": str(run_dir), "eval_every": 0, "checkpoint_every": 0, "eval_episodes": 4}, progress))
    if jobs:
        with process_pool(max(1, cfg.workers)) as pool:
            list(pool.map(_train_job, jobs))
    return {m: [str(Path(cfg.out) / "runs" / m)] for m in cfg.mechanisms}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        cfg = resolve_config(args)
        run_dirs: dict[str, list[str]] = {}
        for d in cfg.run_dirs:
            run_dirs.setdefault(read_manifest(d)["mechanism"], []).append(d)
        if cfg.train:
            for m, dirs in train_learners(cfg, progress=not args.no_progress).items():
                run_dirs.setdefault(m, []).extend(d for d in dirs if d not in run_dirs.get(m, []))
        missing = sorted(set(run_dirs) - set(cfg.mechanisms))
        if missing:
            raise ConfigError(f"--run-dir: runs trained on mechanism(s) {missing}, which are not evaluated "
                              f"(--mechanism {','.join(cfg.mechanisms)})")
        spec = EvalSpec(scenario=cfg.scenario, mechanisms=cfg.mechanisms, overrides=cfg.overrides,
                        strategies=cfg.strategies, run_dirs=run_dirs, seeds=cfg.seeds, episodes=cfg.episodes,
                        horizon=cfg.horizon)
        check_run_dirs(spec)
        results = run_evaluation(spec, workers=cfg.workers, progress=not args.no_progress)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summaries = [summarize(r, cfg.tolerance) for r in results]
    market = spec.market(cfg.mechanisms[0])
    header = {"scenario": market.config.name, "mechanisms": cfg.mechanisms, "seeds": cfg.seeds,
              "episodes": cfg.episodes, "horizon": market.config.horizon, "n_providers": len(market.possible_agents),
              "strategies": cfg.strategies, "run_dirs": run_dirs, "tolerance": cfg.tolerance,
              "overrides": cfg.overrides}
    table = write_report(Path(cfg.out), header, results, summaries, analytic_checks(spec))
    print(table)
    print(f"\nreport: {Path(cfg.out) / 'report.md'}   ({time.perf_counter() - start:.0f} s; "
          f"tensorboard --logdir {cfg.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
