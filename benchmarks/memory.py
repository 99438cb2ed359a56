"""Peak memory of the market, training and evaluation at two step counts 10x apart: does it stay flat and < 2 GB?

Each measurement runs in a fresh Python process and reports its peak resident set size (``ru_maxrss``), so nothing
is shared between them. Processes (``capitals``; fixed seeds):

- ``batched core``: ``--markets`` markets under rosa (the mechanism with the largest state), a tenth of the steps in
  each, stepped with scripted (random) providers, metrics accumulated (``EpisodeStats``), episodes reset;
- ``PettingZoo env``: one market under rosa through the dict API, random providers, metrics accumulated;
- ``PPO training``: ``training.train`` with the TrainConfig defaults under ucb_myerson (periodic gain evaluation every
  quarter of the run, a checkpoint at half of it, the final summary);
- ``evaluation``: ``evaluation.run_evaluation`` of first_price and ucb_myerson (honest and the default scripted
  deviations, ``--eval-seeds`` seeds) with episodes of 1,000 and 10,000 rounds.

Targets of issue 10: every peak under 2 GB, and flat in the number of steps (here: the 10x longer run's peak within
10% of the shorter one's).

    python benchmarks/memory.py [--steps 20000 200000] [--markets 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

LIMIT_MB = 2048
FLAT = 1.10  # the longer run's peak / the shorter run's peak

PEAK = """
import resource
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

BATCHED = """
import numpy as np
from agents import make_strategy
from envs import make_batched
from envs.metrics import EpisodeStats
from evaluation.rollout import joint_actions
market = make_batched("capitals", "rosa", {markets}, seeds=list(range({markets})))
policies = {{a: make_strategy("random", market.layout, seed=k) for k, a in enumerate(market.possible_agents)}}
stats = EpisodeStats(market.possible_agents, market.n_markets)
obs = market.reset()
for _ in range({rounds}):
    obs, rewards, done = market.step(joint_actions(policies, market.possible_agents, obs))
    stats.add(market.last_round)
    if done.all():
        stats.summary(market.mechanism.diagnostics())
        stats.reset()
        obs = market.reset()
"""

PETTINGZOO = """
from agents import act_all, make_strategy
from envs import parallel_env
from envs.metrics import EpisodeStats
market = parallel_env("capitals", "rosa", seed=0)
policies = {{a: make_strategy("random", market.layout, seed=k) for k, a in enumerate(market.possible_agents)}}
stats = EpisodeStats(market.possible_agents)
obs, _ = market.reset()
for _ in range({rounds}):
    obs, rewards, _, _, infos = market.step(act_all(policies, obs))
    stats.add(market.last_round)
    if not market.agents:
        stats.reset()
        obs, _ = market.reset()
"""

TRAIN = """
import tempfile, torch
from training import TrainConfig, train
torch.set_num_threads(1)
train(TrainConfig(scenario="capitals", mechanism="ucb_myerson", timesteps={rounds}, eval_every={rounds} // 4,
                  checkpoint_every={rounds} // 2, run_dir=tempfile.mkdtemp()), progress=False)
"""

EVALUATE = """
from evaluation import EvalSpec, run_evaluation
spec = EvalSpec(scenario="capitals", mechanisms=["first_price", "ucb_myerson"], seeds={seeds},
                horizons=[{horizon}])
run_evaluation(spec, progress=False)
"""


def peak_mb(code: str) -> float:
    """Peak RSS (MB) of a fresh interpreter running ``code``."""
    out = subprocess.run([sys.executable, "-c", code + PEAK], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{code}\n{out.stderr}")
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--steps",
        type=int,
        nargs=2,
        default=[20_000, 200_000],
        help="learner steps of the two training runs and rounds of the two PettingZoo runs; the batched "
        "core plays a tenth as many rounds in each of its markets",
    )
    p.add_argument("--markets", type=int, default=256, help="markets of the batched core")
    p.add_argument("--eval-horizons", type=int, nargs=2, default=[1_000, 10_000])
    p.add_argument("--eval-seeds", type=int, default=10)
    args = p.parse_args()

    small, large = args.steps
    cases = [
        (
            "batched core, rosa",
            f"{args.markets} markets x rounds",
            [
                (f"{args.markets} x {r // 10:,}", BATCHED.format(markets=args.markets, rounds=r // 10))
                for r in (small, large)
            ],
        ),
        ("PettingZoo env, rosa", "rounds", [(f"{r:,}", PETTINGZOO.format(rounds=r)) for r in (small, large)]),
        ("PPO training, ucb_myerson", "learner steps", [(f"{r:,}", TRAIN.format(rounds=r)) for r in (small, large)]),
        (
            "evaluation, 2 mechanisms",
            "seeds x rounds per profile",
            [
                (f"{args.eval_seeds} x {h:,}", EVALUATE.format(seeds=args.eval_seeds, horizon=h))
                for h in args.eval_horizons
            ],
        ),
    ]
    print(f"{'process':<28}{'size':>28}{'peak RSS (MB)':>16}")
    figures, ok = {}, True
    for name, unit, runs in cases:
        peaks = []
        for size, code in runs:
            peaks.append(peak_mb(code))
            print(f"{name:<28}{size:>28}{peaks[-1]:>16.0f}", flush=True)
        growth = peaks[1] / peaks[0]
        met = growth <= FLAT and max(peaks) < LIMIT_MB
        ok &= met
        print(f"{'':<28}{'10x longer / shorter':>28}{growth:>15.2f}x  {'ok' if met else 'MISS'}")
        figures[name] = {"unit": unit, "sizes": [s for s, _ in runs], "peak_mb": peaks, "growth": growth, "met": met}
    print(f"targets: every peak < {LIMIT_MB} MB and growth <= {FLAT:.2f}x over 10x the steps: {'ok' if ok else 'MISS'}")
    print(json.dumps({"benchmark": "memory", "limit_mb": LIMIT_MB, "flat_growth": FLAT, "figures": figures, "met": ok}))


if __name__ == "__main__":
    main()
