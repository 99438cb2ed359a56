"""PPO best-response training on the market against the same PPO on a zero-cost VecEnv: learner steps per second.

Measured (``--scenario capitals``, ``--mechanism first_price``, provider_0 learns against a truthful provider_1):

1. ``zero-cost``: SB3 PPO on :class:`ZeroCostVecEnv`, a numpy VecEnv written below with the market's observation and
   action spaces and number of slots, returning one constant observation and zero rewards, whose episodes end at the
   market's horizon like the market's (so PPO's end-of-episode work is the same on both sides);
2. ``market``: the same PPO on the project's ``training.vec_env.MarketVecEnv`` (the batched market, E = n_envs
   markets, the truthful opponent acting through its policy);
3. ``train()``: the project's whole training run (``training.train``: the market, its callbacks - TensorBoard metrics,
   periodic gain evaluation, checkpoints - and the final summary) for the same number of steps, once.

Both PPOs are built by ``training.trainer.new_model`` from one ``TrainConfig`` (default: the TrainConfig defaults,
n_envs=256, n_steps=16, batch_size=1024, n_epochs=5, lr=1e-3, net [64, 64], device cpu), so every setting is
identical. The time spent inside the VecEnv (``step_wait`` and ``reset``) is added up by a wrapper around each.

Targets of issue 10: market >= 0.5x zero-cost learner steps/s, with the env under 15% of the wall time.

Repeated ``--repeats`` times in turn (zero-cost, then market), after one warm-up rollout each; the medians of the
rates, of the per-repeat ratios and of the env shares are printed, then one JSON line.

    taskset -c 0 python benchmarks/train_throughput.py [--timesteps 200000] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from training import TrainConfig, train
from training.trainer import make_market, new_model, opponent_policies
from training.vec_env import MarketVecEnv

TARGET_RATIO = 0.5
TARGET_ENV_SHARE = 0.15


class ZeroCostVecEnv(VecEnv):
    """A VecEnv that costs (almost) nothing: a constant observation, zero rewards, and every slot truncated together
    every ``horizon`` steps (with SB3's ``terminal_observation`` and ``episode`` infos, as the market gives)."""

    def __init__(self, num_envs: int, observation_space, action_space, horizon: int, seed: int = 0):
        self.render_mode = None
        super().__init__(num_envs, observation_space, action_space)
        self.horizon = horizon
        self._obs = np.random.default_rng(seed).standard_normal((num_envs, *observation_space.shape)).astype(np.float32)
        self._no_infos = [{} for _ in range(num_envs)]
        self._not_done = np.zeros(num_envs, dtype=bool)
        self._done = np.ones(num_envs, dtype=bool)
        self.t = 0

    def reset(self):
        self.t = 0
        return self._obs.copy()

    def step_async(self, actions):
        self._actions = actions

    def step_wait(self):
        self.t += 1
        rewards = np.zeros(self.num_envs, dtype=np.float32)  # fresh: PPO adds bootstrap values into it in place
        if self.t < self.horizon:
            return self._obs.copy(), rewards, self._not_done, self._no_infos
        self.t = 0
        infos = [
            {
                "terminal_observation": self._obs[k],
                "TimeLimit.truncated": True,
                "episode": {"r": 0.0, "l": self.horizon, "t": 0.0},
            }
            for k in range(self.num_envs)
        ]
        return self._obs.copy(), rewards, self._done, infos

    def close(self):
        pass

    def get_attr(self, attr_name, indices=None):
        return [getattr(self, attr_name)] * self.num_envs

    def set_attr(self, attr_name, value, indices=None):
        setattr(self, attr_name, value)

    def env_method(self, method_name, *method_args, indices=None, **method_kwargs):
        return [getattr(self, method_name)(*method_args, **method_kwargs)] * self.num_envs

    def env_is_wrapped(self, wrapper_class, indices=None):
        return [False] * self.num_envs


class EnvTimer(VecEnvWrapper):
    """Adds up the wall time spent inside the wrapped VecEnv's ``step_wait`` and ``reset``."""

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self.seconds = 0.0

    def reset(self):
        start = time.perf_counter()
        obs = self.venv.reset()
        self.seconds += time.perf_counter() - start
        return obs

    def step_wait(self):
        start = time.perf_counter()
        out = self.venv.step_wait()
        self.seconds += time.perf_counter() - start
        return out


def market_env(cfg: TrainConfig) -> MarketVecEnv:
    """provider_0 learning against the configured (truthful) opponents in n_envs markets, as the trainer builds it."""
    market = make_market(cfg, cfg.n_envs)
    fixed = opponent_policies(cfg.opponents, market, market.possible_agents[1:], cfg.seed)
    return MarketVecEnv(market, ["provider_0"], fixed, seed=cfg.seed)


def zero_cost_env(cfg: TrainConfig) -> ZeroCostVecEnv:
    market = make_market(cfg)
    agent = market.possible_agents[0]
    return ZeroCostVecEnv(
        cfg.n_envs, market.observation_space(agent), market.action_space(agent), market.config.horizon, cfg.seed
    )


def measure(cfg: TrainConfig, env: VecEnv, timesteps: int) -> tuple[float, float]:
    """(learner steps/s, share of wall time inside the env) of PPO learning ``timesteps`` after one warm-up rollout."""
    timer = EnvTimer(env)
    model = new_model(cfg, timer)
    model.learn(cfg.n_steps * cfg.n_envs)  # warm-up: torch init, first allocations
    timer.seconds, steps_before = 0.0, model.num_timesteps
    start = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)  # whole rollouts: at least ``timesteps`` steps
    wall = time.perf_counter() - start
    return (model.num_timesteps - steps_before) / wall, timer.seconds / wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="capitals")
    p.add_argument("--mechanism", default="first_price")
    p.add_argument("--timesteps", type=int, default=200_000, help="learner steps of each measurement")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the main job's workers use 1)")
    p.add_argument("--n-envs", type=int, default=TrainConfig.n_envs)
    p.add_argument("--n-steps", type=int, default=TrainConfig.n_steps)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--n-epochs", type=int, default=TrainConfig.n_epochs)
    p.add_argument("--no-train", action="store_true", help="skip the end-to-end train() measurement")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(
        scenario=args.scenario,
        mechanism=args.mechanism,
        n_envs=args.n_envs,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        seed=args.seed,
        timesteps=args.timesteps,
        run_dir=tempfile.mkdtemp(prefix="train_throughput_"),
    )
    cores = len(os.sched_getaffinity(0))
    print(
        f"PPO on {cfg.scenario}/{cfg.mechanism}: n_envs={cfg.n_envs}, n_steps={cfg.n_steps}, "
        f"batch_size={cfg.batch_size}, n_epochs={cfg.n_epochs}, net {cfg.net_arch}, lr={cfg.learning_rate}; "
        f"{args.timesteps:,} learner steps per measurement, {torch.get_num_threads()} torch thread(s), "
        f"{cores} core(s) allowed"
    )

    runs: dict[str, list[float]] = {"zero_cost": [], "zero_cost_env_share": [], "market": [], "market_env_share": []}
    for k in range(args.repeats):
        for name, make_env in (("zero_cost", zero_cost_env), ("market", market_env)):
            sps, share = measure(cfg, make_env(cfg), args.timesteps)
            runs[name].append(sps)
            runs[f"{name}_env_share"].append(share)
        zero, market = runs["zero_cost"][-1], runs["market"][-1]
        print(
            f"  repeat {k + 1}/{args.repeats}: zero-cost {zero:,.0f} steps/s "
            f"({100 * runs['zero_cost_env_share'][-1]:.1f}% in env), market {market:,.0f} steps/s "
            f"({100 * runs['market_env_share'][-1]:.1f}% in env), ratio {market / zero:.2f}",
            flush=True,
        )
    fig = {k: statistics.median(v) for k, v in runs.items()}
    fig["ratio"] = statistics.median(m / z for m, z in zip(runs["market"], runs["zero_cost"]))

    if not args.no_train:  # the whole training run, as train.py does it (callbacks, logging, final summary)
        start = time.perf_counter()
        train(cfg, progress=False)
        fig["train_end_to_end"] = args.timesteps / (time.perf_counter() - start)
        fig["train_end_to_end_ratio"] = fig["train_end_to_end"] / fig["zero_cost"]

    met = fig["ratio"] >= TARGET_RATIO and fig["market_env_share"] < TARGET_ENV_SHARE
    print(f"{'env':<12}{'steps/s':>12}{'in env':>9}")
    print(f"{'zero-cost':<12}{fig['zero_cost']:>12,.0f}{100 * fig['zero_cost_env_share']:>8.1f}%")
    print(f"{'market':<12}{fig['market']:>12,.0f}{100 * fig['market_env_share']:>8.1f}%")
    if "train_end_to_end" in fig:
        print(
            f"{'train()':<12}{fig['train_end_to_end']:>12,.0f}{'':>9}  (one run, with callbacks and summary; "
            f"{fig['train_end_to_end_ratio']:.2f}x zero-cost)"
        )
    print(
        f"market / zero-cost = {fig['ratio']:.2f}x (target >= {TARGET_RATIO}x), env share "
        f"{100 * fig['market_env_share']:.1f}% (target < {100 * TARGET_ENV_SHARE:.0f}%): {'ok' if met else 'MISS'}"
    )
    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "unit": "learner steps/s",
                "scenario": cfg.scenario,
                "mechanism": cfg.mechanism,
                "n_envs": cfg.n_envs,
                "n_steps": cfg.n_steps,
                "batch_size": cfg.batch_size,
                "n_epochs": cfg.n_epochs,
                "timesteps": args.timesteps,
                "threads": torch.get_num_threads(),
                "cores": cores,
                "repeats": args.repeats,
                "runs": runs,
                **fig,
                "met": met,
            }
        )
    )


if __name__ == "__main__":
    main()
