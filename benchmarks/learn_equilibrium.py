"""Does a best-response learner find the analytic answer? (MECHANISMS.md §8)

On ``uniform`` with n providers: against opponents playing the first-price equilibrium b(c) = c + (1 - c) / n, a
PPO learner under first_price should learn that same bid function; under second_price (opponents truthful) it
should learn to bid its cost. Prints the mean absolute distance of the learned bid function from the analytic one
over a cost grid, and the wall time.

    python benchmarks/learn_equilibrium.py [--n 3] [--timesteps 300000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from agents.analytic import bid_function, bne_bid
from training.trainer import TrainConfig, make_market, train

GRID = np.linspace(0.05, 0.95, 19)


def learned_distance(mechanism: str, n: int, timesteps: int, seed: int = 0, progress: bool = False
                     ) -> tuple[float, np.ndarray, np.ndarray]:
    """Train a best response on ``uniform``; return (mean |learned - analytic| over GRID, learned, analytic)."""
    opponents, target = ("bne", bne_bid(GRID, n)) if mechanism == "first_price" else ("truthful", GRID.copy())
    cfg = TrainConfig(scenario="uniform", mechanism=mechanism, overrides={"n_providers": n}, opponents=opponents,
                      timesteps=timesteps, gamma=0.0, seed=seed, eval_every=0, checkpoint_every=0,
                      eval_episodes=2, run_dir=tempfile.mkdtemp(prefix="learn_eq_"))
    result = train(cfg, progress=progress)
    learned = bid_function(result.policies["provider_0"], make_market(cfg), "provider_0", GRID, seed=seed + 1)
    return float(np.abs(learned - target).mean()), learned, target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--timesteps", type=int, default=300_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for mechanism in ("first_price", "second_price"):
        start = time.perf_counter()
        dist, learned, target = learned_distance(mechanism, args.n, args.timesteps, args.seed, progress=True)
        wall = time.perf_counter() - start
        print(f"{mechanism}: mean |learned - analytic| bid = {dist:.4f} over costs {GRID[0]:.2f}..{GRID[-1]:.2f} "
              f"(n={args.n}, {args.timesteps} steps, {wall:.0f} s)")
        for c, b, t in zip(GRID[::3], learned[::3], target[::3]):
            print(f"   cost {c:.2f}: learned {b:.3f}  analytic {t:.3f}")


if __name__ == "__main__":
    main()
