"""Env steps per second through the PettingZoo parallel API with scripted agents (target: >= 20,000 on one core
for ``capitals``).

    python benchmarks/env_throughput.py [--steps 200000] [--scenarios capitals llama]

The ``llama`` scenario needs LLM_ARENA_LLAMA_DIR (or runs against ../shared/data/llama-cascades when present).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from agents import act_all, make_strategy
from envs import parallel_env

SHARED_LLAMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llama-cascades"


def steps_per_second(scenario: str, mechanism: str, strategy: str, steps: int) -> float:
    env = parallel_env(scenario, mechanism, seed=0)
    policies = {a: make_strategy(strategy, env.layout) for a in env.possible_agents}
    obs, _ = env.reset()
    start = time.perf_counter()
    for _ in range(steps):
        obs, _, _, trunc, _ = env.step(act_all(policies, obs))
        if not env.agents:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--scenarios", nargs="+", default=["capitals", "llama"])
    parser.add_argument("--mechanisms", nargs="+", default=["first_price", "second_price", "ucb_myerson"])
    parser.add_argument("--strategy", default="markup")
    args = parser.parse_args()
    if "LLM_ARENA_LLAMA_DIR" not in os.environ and SHARED_LLAMA.is_dir():
        os.environ["LLM_ARENA_LLAMA_DIR"] = str(SHARED_LLAMA)
    print(f"{'scenario':<10}{'mechanism':<14}{'steps/s':>10}")
    for scenario in args.scenarios:
        for mechanism in args.mechanisms:
            sps = steps_per_second(scenario, mechanism, args.strategy, args.steps)
            print(f"{scenario:<10}{mechanism:<14}{sps:>10,.0f}")


if __name__ == "__main__":
    main()
