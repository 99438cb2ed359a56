#!/usr/bin/env python
"""Train provider agents against a mechanism and log to TensorBoard (a thin CLI over ``training``).

Every field of :class:`training.TrainConfig` is a flag (``--learning-rate``, ``--net-arch 64,64``, ...); a YAML file
(``--config``) gives the same keys, and flags override it.

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

from envs.config import ConfigError, add_config_flags, flag_name, flags_to_dict, load_config, override_layers
from envs.market import check_overrides
from training import TrainConfig, format_summary, train

ALIASES = {"overrides": ["--set"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file of TrainConfig fields (flags override it)")
    add_config_flags(p, TrainConfig, aliases=ALIASES)
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.resume:
            if not args.run_dir:
                raise ConfigError("--resume needs --run-dir")
            given = sorted(k for k in flags_to_dict(args, TrainConfig, ALIASES) if k != "run_dir")
            if given or args.config:
                named = [flag_name(k, ALIASES) for k in given] + (["--config"] if args.config else [])
                raise ConfigError(
                    f"--resume continues the run with the config it started with; it takes no "
                    f"{', '.join(named)} (start a new run dir to change settings)"
                )
            cfg = TrainConfig(run_dir=args.run_dir)
        else:
            flags = flags_to_dict(args, TrainConfig, ALIASES)
            cfg = load_config(TrainConfig, args.config, ALIASES, **flags)
            check_overrides(
                cfg.scenario, cfg.mechanism, override_layers(args.config, cfg.overrides, flags.get("overrides"))
            )
        result = train(cfg, resume=args.resume, progress=not args.no_progress)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C at the terminal (the message is printed by train())
        return 130
    print(f"\nrun dir: {result.run_dir}   (tensorboard --logdir {result.run_dir / 'tb'})")
    print(format_summary(result.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
