#!/usr/bin/env python
"""Evaluate mechanisms against honest, scripted and learned strategies and write the robustness report.

A thin CLI over ``evaluation`` (playing profiles, summaries, the report: report.md, report.json, metrics.csv, plots,
TensorBoard) and, with ``--train``, ``training`` (best-response learners for every mechanism first). Every field of
:class:`evaluation.EvalConfig` is a flag; a YAML file (``--config``) gives the same keys, and flags override it.

Examples:
    python evaluate.py --train                                   # the main job: capitals, default mechanisms
    python evaluate.py --mechanism first_price,second_price --strategies markup,substitute --seeds 20
    python evaluate.py --run-dir runs/fp --run-dir runs/sp --out reports/learned
    python evaluate.py --scenario uniform --set n_providers=3 --mechanism all
    python evaluate.py --collusion --mechanism first_price,second_price   # + collusion index of simultaneous PPO
    python evaluate.py --train --backend ray --address auto      # the main job on a Ray cluster (README)
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

from envs.config import ConfigError, add_config_flags, flags_to_dict, load_config, override_layers
from envs.market import check_overrides
from evaluation import EvalConfig, evaluate_all, run_dirs_by_market, write_report
from evaluation.parallel import make_backend, shared_pool, single_thread
from training import train_learners

ALIASES = {"mechanisms": ["--mechanism"], "run_dirs": ["--run-dir"], "overrides": ["--set"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of EvalConfig fields (flags override it)")
    add_config_flags(p, EvalConfig, aliases=ALIASES)
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    progress = not args.no_progress
    single_thread()  # as in every worker: the few policy evaluations made here match theirs bit for bit
    try:
        flags = flags_to_dict(args, EvalConfig, ALIASES)
        cfg = load_config(EvalConfig, args.config, ALIASES, **flags)
        layers = override_layers(args.config, cfg.overrides, flags.get("overrides"))
        for mechanism in cfg.mechanisms:
            check_overrides(cfg.scenario, mechanism, layers)
        if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
            raise ConfigError(f"--out {cfg.out}: is a file, not a directory")
        # One pool of workers for every phase (training, evaluation, more seeds, collusion).
        with shared_pool(cfg.workers) if cfg.backend == "process" else contextlib.nullcontext():
            run_dirs = run_dirs_by_market(cfg.run_dirs)
            learners: list[dict] = []
            if cfg.train:
                chosen, learners = train_learners(cfg, progress)
                for key, dirs in chosen.items():
                    run_dirs.setdefault(key, []).extend(d for d in dirs if d not in run_dirs.get(key, []))
            header, results, judged, analytic = evaluate_all(cfg, run_dirs, progress, learners)
            collusion = None
            if cfg.collusion:  # simultaneous PPO learners per mechanism and their collusion index
                from training.simultaneous import collusion_column

                collusion = collusion_column(
                    cfg.scenario,
                    cfg.mechanisms,
                    cfg.overrides,
                    cfg.collusion_timesteps or cfg.train_timesteps,
                    [1000 + 1000 * k for k in range(cfg.seeds)],
                    backend=make_backend(cfg),
                    progress=progress,
                )
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = write_report(Path(cfg.out), header, results, judged, analytic, collusion=collusion)
    print(table)
    print(
        f"\nreport: {Path(cfg.out) / 'report.md'}   ({time.perf_counter() - start:.0f} s; "
        f"tensorboard --logdir {cfg.out})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
