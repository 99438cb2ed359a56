#!/usr/bin/env python
"""Each mechanism's equilibrium when every provider is strategic, and how exploitable truthful play is (PSRO).

Per mechanism (:mod:`evaluation.metagame`): the payoff table of every provider's population (truthful, the scripted
deviations, then PPO best responses) on paired seeds; NashConv of all-truthful play (PPO best responses to it, and the
best scripted deviation); PSRO iterations (best responses to the table's equilibrium, added until none gains more than
its 95% CI); and the user's utility, payments and welfare at the equilibrium found. Writes ``metagame.md``,
``metagame.json``, plots and TensorBoard summaries (``tensorboard --logdir <out>``) and prints the table.

    python benchmarks/metagame.py --scenario uniform --mechanism first_price,second_price
    python benchmarks/metagame.py --scenario capitals --mechanism all --br-timesteps 200000 --iterations 2
    python benchmarks/metagame.py --scenario uniform --no-psro          # scripted populations only (seconds)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mechanisms  # noqa: E402
from envs.config import parse_overrides  # noqa: E402
from evaluation.metagame import MetaGameResult, MetaSpec, psro, write_metagame_report  # noqa: E402


def _run(job: tuple) -> MetaGameResult:
    scenario, mechanism, overrides, seeds, iterations, br_timesteps, seed, out, use_psro = job
    import torch

    torch.set_num_threads(1)
    from training.best_response import ppo_oracle

    spec = MetaSpec(scenario, mechanism, overrides, seeds=seeds)
    oracle = ppo_oracle(br_timesteps, log_root=Path(out) / "runs") if use_psro else None
    start = time.perf_counter()
    result = psro(
        spec,
        best_response=oracle,
        max_iterations=iterations,
        seed=seed,
        progress=lambda line: print(f"[{time.perf_counter() - start:6.0f} s] {line}", flush=True),
    )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="uniform")
    p.add_argument("--mechanism", default="first_price,second_price", help="comma-separated names or 'all'")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scenario fields / mechanism parameters (uniform defaults to n_providers=2)",
    )
    p.add_argument("--seeds", type=int, default=16, help="paired seeds of the payoff table")
    p.add_argument("--iterations", type=int, default=3, help="PSRO iterations after the best responses to truthful")
    p.add_argument("--br-timesteps", type=int, default=300_000, help="PPO transitions per best response")
    p.add_argument("--no-psro", action="store_true", help="solve the scripted populations only (no PPO)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="mechanisms in parallel processes")
    p.add_argument("--out", default="reports/metagame")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = list(mechanisms.REGISTRY) if args.mechanism == "all" else [m.strip() for m in args.mechanism.split(",")]
    unknown = [m for m in names if m not in mechanisms.REGISTRY]
    if unknown:
        print(f"error: unknown mechanism(s) {unknown}", file=sys.stderr)
        return 2
    overrides = parse_overrides(args.set, flag="--set") if args.set else {}
    if args.scenario == "uniform":
        overrides.setdefault("n_providers", 2)
    out = Path(args.out) / args.scenario
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (
            args.scenario,
            m,
            overrides,
            args.seeds,
            args.iterations,
            args.br_timesteps,
            args.seed,
            str(out),
            not args.no_psro,
        )
        for m in names
    ]
    start = time.perf_counter()
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_run, jobs))
    else:
        results = [_run(j) for j in jobs]
    header = {
        "scenario": args.scenario,
        "overrides": overrides,
        "seeds": args.seeds,
        "iterations": args.iterations,
        "br_timesteps": 0 if args.no_psro else args.br_timesteps,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
    }
    table = write_metagame_report(out, results, header)
    print(table)
    print(f"\nreport: {out / 'metagame.md'} ({header['seconds']:.0f} s; tensorboard --logdir {out})")
    for r in results:
        print(
            json.dumps(
                {
                    "mechanism": r.mechanism,
                    "scenario": r.scenario,
                    "truthful_nash_conv": r.truthful_nash_conv,
                    "truthful_nash_conv_population": r.truthful_nash_conv_population,
                    "equilibrium_nash_conv": r.equilibrium_nash_conv,
                    "converged": r.converged,
                    "user_utility": r.at_equilibrium["user_utility"][0],
                    "payment": r.at_equilibrium["payment"][0],
                    "welfare": r.at_equilibrium["welfare"][0],
                    "truthful_user_utility": r.at_truthful["user_utility"][0],
                },
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
