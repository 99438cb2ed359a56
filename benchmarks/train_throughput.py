"""PPO training throughput on ``capitals`` with 2 providers (target: >= 1,500 env steps/s on 2 cores, < 15% of the
time inside the environment).

    python benchmarks/train_throughput.py [--timesteps 60000] [--n-envs 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from agents.training import TrainConfig, make_market, new_model, opponent_policies
from agents.vec_env import MarketVecEnv


class TimedVecEnv(MarketVecEnv):
    """MarketVecEnv that adds up the wall time spent stepping markets (including scripted opponents)."""

    env_seconds = 0.0

    def step_wait(self):
        start = time.perf_counter()
        out = super().step_wait()
        TimedVecEnv.env_seconds += time.perf_counter() - start
        return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=60_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mechanism", default="first_price")
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--n-epochs", type=int, default=TrainConfig.n_epochs)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(scenario="capitals", mechanism=args.mechanism, n_envs=args.n_envs, batch_size=args.batch_size,
                      n_epochs=args.n_epochs, run_dir=tempfile.mkdtemp())
    market = make_market(cfg)
    fixed = opponent_policies("truthful", market, ["provider_1"], cfg.seed)
    env = TimedVecEnv(lambda: make_market(cfg), cfg.n_envs, ["provider_0"], fixed, seed=0)
    model = new_model(cfg, env)
    model.learn(cfg.n_steps * cfg.n_envs)  # warm-up (torch init, first allocations)
    TimedVecEnv.env_seconds = 0.0
    start = time.perf_counter()
    model.learn(args.timesteps, reset_num_timesteps=False)
    wall = time.perf_counter() - start
    print(f"PPO on capitals (2 providers), {args.n_envs} envs, n_steps {cfg.n_steps}, batch {cfg.batch_size}, "
          f"{cfg.n_epochs} epochs, {torch.get_num_threads()} torch threads")
    print(f"  steps/s: {args.timesteps / wall:,.0f}   wall: {wall:.1f} s   "
          f"time in env: {100 * TimedVecEnv.env_seconds / wall:.1f}%")


if __name__ == "__main__":
    main()
