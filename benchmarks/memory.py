"""Peak memory of training and evaluation, and whether it grows with the number of steps (target: < 2 GB, flat).

Each measurement runs in a fresh subprocess and reports its peak resident set size (ru_maxrss).

    python benchmarks/memory.py [--steps 10000 200000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys

TRAIN = """
import resource, sys, tempfile
from training import TrainConfig, train
train(TrainConfig(scenario="capitals", mechanism="ucb_myerson", timesteps={steps}, eval_every={eval_every},
                  checkpoint_every={checkpoint_every}, run_dir=tempfile.mkdtemp()), progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

ENV = """
import resource
from agents import act_all, make_strategy
from envs import parallel_env
from envs.metrics import EpisodeStats
market = parallel_env("capitals", "rosa", seed=0)
policies = {{a: make_strategy("random", market.layout, seed=k) for k, a in enumerate(market.possible_agents)}}
stats = EpisodeStats(market.possible_agents)
obs, _ = market.reset()
for _ in range({steps}):
    obs, rewards, _, _, infos = market.step(act_all(policies, obs))
    stats.add(market.last_round)
    if not market.agents:
        stats.reset()
        obs, _ = market.reset()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

EVAL = """
import resource
from evaluation import EvalSpec, run_evaluation
spec = EvalSpec(scenario="capitals", mechanisms=["first_price", "ucb_myerson"], seeds={seeds}, horizon=1000)
run_evaluation(spec, workers=1, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_mb(code: str) -> float:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, nargs="+", default=[10_000, 200_000])
    args = p.parse_args()
    print(f"{'process':<34}{'steps':>10}{'peak RSS (MB)':>16}")
    for steps in args.steps:
        print(f"{'env + scripted agents (rosa)':<34}{steps * 10:>10,}{peak_mb(ENV.format(steps=steps * 10)):>16.0f}")
    for steps in args.steps:
        code = TRAIN.format(steps=steps, eval_every=steps // 4, checkpoint_every=steps // 2)
        print(f"{'PPO training (ucb_myerson)':<34}{steps:>10,}{peak_mb(code):>16.0f}")
    for seeds in (2, 20):
        rounds = 2 * 6 * seeds * 1000
        print(f"{'evaluation (2 mechanisms)':<34}{rounds:>10,}{peak_mb(EVAL.format(seeds=seeds)):>16.0f}")


if __name__ == "__main__":
    main()
