"""Wall time of evaluating 3 mechanisms x 5 profiles x 10 seeds x 1,000 queries on ``capitals`` (target: < 60 s on
2 cores).

    python benchmarks/evaluate_speed.py [--workers 2]

Profiles: honest, and markup, substitute and inflate as unilateral deviations (substitute only for the provider that
has a cheaper model), i.e. 1 + 2 + 1 + 2 = 6 evaluated profiles counting each deviating provider, 5 counting the
honest baseline once per strategy and provider_0's substitution.
"""

from __future__ import annotations

import argparse
import time

from evaluation import EvalSpec, run_evaluation, summarize


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    spec = EvalSpec(scenario="capitals", mechanisms=["first_price", "second_price", "ucb_myerson"],
                    strategies=["markup", "substitute", "inflate"], seeds=10, episodes=1, horizon=1000)
    start = time.perf_counter()
    results = run_evaluation(spec, workers=args.workers, progress=False)
    wall = time.perf_counter() - start
    profiles = len(results[0].profiles)
    rounds = len(results) * profiles * spec.seeds * spec.horizon
    for r in results:
        print(f"{r.mechanism:<14} {summarize(r, 0.0).verdict}")
    print(f"{len(results)} mechanisms x {profiles} profiles x {spec.seeds} seeds x {spec.horizon} queries = "
          f"{rounds:,} rounds in {wall:.1f} s ({rounds / wall:,.0f} rounds/s, {args.workers} workers)")


if __name__ == "__main__":
    main()
