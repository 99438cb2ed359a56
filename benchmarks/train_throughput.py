"""PPO training throughput on ``capitals`` with 2 providers (target: >= 1,500 env steps/s on 2 cores, < 15% of the
time inside the environment, i.e. in ``MarketVecEnv.step_wait``: markets, scripted opponents and episode metrics).

Two PPO settings are measured: SB3's standard minibatch of 64, and the project's default of 128 (half the gradient
steps per sample, so faster, with a larger share of the time left in the env).

    python benchmarks/train_throughput.py [--timesteps 60000] [--n-envs 8] [--threads 2] [--batch-sizes 64 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from training.trainer import TrainConfig, make_market, new_model, opponent_policies
from training.vec_env import MarketVecEnv


class TimedVecEnv(MarketVecEnv):
    """MarketVecEnv that adds up the wall time spent stepping markets (including scripted opponents)."""

    env_seconds = 0.0

    def step_wait(self):
        start = time.perf_counter()
        out = super().step_wait()
        TimedVecEnv.env_seconds += time.perf_counter() - start
        return out


def measure(cfg: TrainConfig, timesteps: int) -> tuple[float, float]:
    """(steps per second, share of wall time in the env) of PPO learning ``timesteps`` after a warm-up."""
    market = make_market(cfg)
    fixed = opponent_policies("truthful", market, ["provider_1"], cfg.seed)
    env = TimedVecEnv(lambda: make_market(cfg), cfg.n_envs, ["provider_0"], fixed, seed=0)
    model = new_model(cfg, env)
    model.learn(cfg.n_steps * cfg.n_envs)  # warm-up (torch init, first allocations)
    TimedVecEnv.env_seconds = 0.0
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    wall = time.perf_counter() - start
    return timesteps / wall, TimedVecEnv.env_seconds / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timesteps", type=int, default=60_000)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--mechanism", default="first_price")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, TrainConfig.batch_size])
    p.add_argument("--n-epochs", type=int, default=TrainConfig.n_epochs)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"PPO on capitals (2 providers, {args.mechanism}), {args.n_envs} envs, {args.n_epochs} epochs, "
          f"{torch.get_num_threads()} torch threads")
    for batch in args.batch_sizes:
        cfg = TrainConfig(scenario="capitals", mechanism=args.mechanism, n_envs=args.n_envs, batch_size=batch,
                          n_epochs=args.n_epochs, run_dir=tempfile.mkdtemp())
        sps, share = measure(cfg, args.timesteps)
        label = "project default" if batch == TrainConfig.batch_size else "SB3 standard minibatch"
        print(f"  batch {batch:>4} ({label}): {sps:,.0f} steps/s, {100 * share:.1f}% of the time in the env")


if __name__ == "__main__":
    main()
