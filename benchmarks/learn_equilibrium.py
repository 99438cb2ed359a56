"""Does a best-response learner find the analytic answer? (MECHANISMS.md §8)

On ``uniform`` with n providers (costs i.i.d. U[0, 1], value 1): against opponents playing the first-price equilibrium
b(c) = c + (1 - c) / n, a PPO learner under first_price should learn that same bid function; under second_price
(opponents truthful) it should learn to bid its cost. Prints, per mechanism and seed, the mean absolute distance of the
learned bid function from the analytic one over a cost grid (read off a PettingZoo env of the same market with
``agents.analytic.bid_function``), the distance of honest play for scale, and the wall time.

Training uses the TrainConfig defaults (256 markets, n_steps 16, batch 1024, 5 epochs, lr 1e-3, net [64, 64]) except
gamma, 0 by default: a round is a one-shot auction against stateless opponents, whose equilibrium is the myopic best
response (``--gamma 0.9`` gives the default's discounting). torch runs one thread (``--threads``), as the main job's
workers do.

For first price it also prints the profit regret: 1 - (expected profit of the learned bid function against the
equilibrium opponents) / (that of the equilibrium bid function), both computed analytically over the grid
(``agents.analytic.first_price_profit``). The profit is flat around the optimum, so the regret is the sharper
measure of a best response; the distance says where the bids lie.

Target of issue 10: first price, n = 3, 1M steps: distance within 0.03.

    python benchmarks/learn_equilibrium.py [--n 3] [--timesteps 1000000] [--seeds 0] [--mechanisms first_price]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch

from agents.analytic import bid_function, bne_bid, first_price_profit
from envs import parallel_env
from training import TrainConfig, train

GRID = np.linspace(0.05, 0.95, 19)
TARGET = 0.03


def learned_distance(
    mechanism: str, n: int, timesteps: int, gamma: float, seed: int = 0, progress: bool = False
) -> tuple[float, np.ndarray, np.ndarray]:
    """Train a best response on ``uniform``; return (mean |learned - analytic| over GRID, learned, analytic)."""
    opponents, target = ("bne", bne_bid(GRID, n)) if mechanism == "first_price" else ("truthful", GRID.copy())
    cfg = TrainConfig(
        scenario="uniform",
        mechanism=mechanism,
        overrides={"n_providers": n},
        opponents=opponents,
        timesteps=timesteps,
        gamma=gamma,
        seed=seed,
        eval_every=0,
        checkpoint_every=0,
        eval_episodes=2,
        run_dir=tempfile.mkdtemp(prefix="learn_eq_"),
    )
    policy = train(cfg, progress=progress).policies["provider_0"]
    market = parallel_env(cfg.scenario, cfg.mechanism, **cfg.overrides)
    learned = bid_function(policy, market, "provider_0", GRID, seed=seed + 1)
    return float(np.abs(learned - target).mean()), learned, target


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--timesteps", type=int, default=1_000_000)
    p.add_argument("--gamma", type=float, default=0.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument(
        "--mechanisms", nargs="+", default=["first_price", "second_price"], choices=["first_price", "second_price"]
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (more than one thrashes on a busy machine)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, dict] = {}
    for mechanism in args.mechanisms:
        distances, walls, regrets = [], [], []
        for seed in args.seeds:
            start = time.perf_counter()
            dist, learned, target = learned_distance(
                mechanism, args.n, args.timesteps, args.gamma, seed, progress=not args.no_progress
            )
            walls.append(time.perf_counter() - start)
            distances.append(dist)
            honest = float(np.abs(GRID - target).mean())
            if mechanism == "first_price":
                best = first_price_profit(target, GRID, args.n).mean()
                regrets.append(float(1.0 - first_price_profit(learned, GRID, args.n).mean() / best))
                print(
                    f"first_price, seed {seed}: profit regret {regrets[-1]:.2%} of the best response's "
                    f"{best:.4f} per round (honest play: 100%)"
                )
            print(
                f"{mechanism}, seed {seed}: mean |learned - analytic| bid = {dist:.4f} over costs "
                f"{GRID[0]:.2f}..{GRID[-1]:.2f} (honest play: {honest:.4f}; n={args.n}, {args.timesteps:,} steps, "
                f"gamma {args.gamma}, {walls[-1]:.0f} s)",
                flush=True,
            )
            for c, b, t in zip(GRID[::3], learned[::3], target[::3]):
                print(f"   cost {c:.2f}: learned {b:.3f}  analytic {t:.3f}")
        results[mechanism] = {
            "distances": distances,
            "median_distance": statistics.median(distances),
            "wall_seconds": walls,
            "profit_regrets": regrets,
        }
    if "first_price" in results:
        d = results["first_price"]["median_distance"]
        print(
            f"first_price (n={args.n}): median distance {d:.4f} over {len(args.seeds)} seed(s), target <= {TARGET}: "
            f"{'ok' if d <= TARGET else 'MISS'}"
        )
    print(
        json.dumps(
            {
                "benchmark": "learn_equilibrium",
                "n": args.n,
                "timesteps": args.timesteps,
                "gamma": args.gamma,
                "seeds": args.seeds,
                "target": TARGET,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
