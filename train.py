#!/usr/bin/env python
"""Train provider agents against a mechanism and log to TensorBoard (a thin CLI over ``agents.training``).

Examples:
    python train.py --scenario capitals --mechanism first_price --timesteps 50000 --run-dir runs/fp
    python train.py --scenario uniform --mechanism first_price --set n_providers=3 --opponents bne
    python train.py --mode independent --learners all --rounds 3 --run-dir runs/ibr
    python train.py --config configs/train/capitals_best_response.yaml
    python train.py --resume --run-dir runs/fp          # continue an interrupted run to its step count
    tensorboard --logdir runs
"""

from __future__ import annotations

import argparse
import sys

from agents.training import format_summary, load_train_config, train
from envs.config import ConfigError, parse_overrides


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    p.add_argument("--scenario", help="scenario preset or YAML path (default capitals)")
    p.add_argument("--mechanism", help="mechanism name (default first_price)")
    p.add_argument("--mode", choices=["best-response", "independent", "shared"])
    p.add_argument("--learners", help="comma-separated agents, or 'all' (default provider_0)")
    p.add_argument("--opponents", help="strategy of non-learners: scripted name, run dir, or agent=spec,...")
    p.add_argument("--algo", choices=["ppo", "sac"])
    p.add_argument("--timesteps", type=int, help="transitions per learner")
    p.add_argument("--rounds", type=int, help="rounds of independent mode")
    p.add_argument("--n-envs", type=int, dest="n_envs", help="market copies stepped together")
    p.add_argument("--seed", type=int)
    p.add_argument("--run-dir", dest="run_dir")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", dest="overrides",
                   help="override a scenario field or mechanism parameter (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.resume:
            if not args.run_dir:
                raise ConfigError("--resume needs --run-dir")
            cfg = load_train_config(run_dir=args.run_dir)
        else:
            cfg = load_train_config(
                args.config, scenario=args.scenario, mechanism=args.mechanism, mode=args.mode,
                learners=args.learners.split(",") if args.learners else None, opponents=args.opponents,
                algo=args.algo, timesteps=args.timesteps, rounds=args.rounds, n_envs=args.n_envs, seed=args.seed,
                run_dir=args.run_dir, overrides=parse_overrides(args.overrides))
        result = train(cfg, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(f"\nrun dir: {result.run_dir}   (tensorboard --logdir {result.run_dir / 'tb'})")
    print(format_summary(result.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
