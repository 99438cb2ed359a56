"""Wall time of an evaluation: 3 mechanisms x 6 profiles x 10 seeds x 1,000 queries on ``capitals`` (target: < 60 s on
2 cores).

    python benchmarks/evaluate_speed.py [--workers 2] [--seeds 10] [--horizon 1000]

Profiles: honest, and markup, substitute and inflate as unilateral deviations of each provider (substitute only for
provider_0, the one with a cheaper model): 1 + 2 + 1 + 2 = 6 profiles, all against the one honest baseline. All seeds
of a profile play as one batch of markets (``evaluation.rollout.play``); mechanisms run in ``--workers`` processes.
The wall time includes starting the worker processes (each imports torch). Prints each mechanism's verdict, the wall
time and rounds per second, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

from evaluation import EvalSpec, run_evaluation, verdicts
from evaluation.parallel import ProcessBackend

TARGET_SECONDS = 60.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mechanisms", nargs="+", default=["first_price", "second_price", "ucb_myerson"])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--horizon", type=int, default=1000)
    args = p.parse_args()
    spec = EvalSpec(
        scenario="capitals",
        mechanisms=args.mechanisms,
        strategies=["markup", "substitute", "inflate"],
        seeds=args.seeds,
        episodes=1,
        horizons=[args.horizon],
        levers=False,
    )
    start = time.perf_counter()
    results = run_evaluation(spec, ProcessBackend(args.workers), progress=True)
    wall = time.perf_counter() - start
    profiles = sum(len(r.profiles) for r in results)
    rounds = profiles * spec.seeds * args.horizon
    for v in verdicts(results, tolerance=0.0):
        print(f"{v.mechanism:<14} {v.verdict}")
    met = wall < TARGET_SECONDS
    print(
        f"{len(results)} mechanisms, {profiles} profiles x {spec.seeds} seeds x {args.horizon} queries = "
        f"{rounds:,} rounds in {wall:.1f} s ({rounds / wall:,.0f} rounds/s, {args.workers} workers); "
        f"target < {TARGET_SECONDS:.0f} s: {'ok' if met else 'MISS'}"
    )
    print(
        json.dumps(
            {
                "benchmark": "evaluate_speed",
                "mechanisms": args.mechanisms,
                "profiles": profiles,
                "seeds": spec.seeds,
                "horizon": args.horizon,
                "rounds": rounds,
                "workers": args.workers,
                "wall_seconds": wall,
                "rounds_per_second": rounds / wall,
                "target_seconds": TARGET_SECONDS,
                "met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
