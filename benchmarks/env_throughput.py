"""Market throughput: the batched core against the PettingZoo per-step path, and that path against a minimal env.

Measured, for every mechanism on a scenario (default ``capitals``), in provider-rounds per second (rounds x providers;
each reset, which draws the episode's randomness, is timed and spread over the episode's rounds; truthful = all-zero
actions for every provider):

1. the batched core (``envs.make_batched``, E markets per ``step`` call; E = 256, 1024 and ``--markets``, default
   4096);
2. the PettingZoo per-step path (``envs.parallel_env``: dict of actions in, dicts of observations, rewards,
   terminations, truncations and infos out);
3. a minimal dict-based two-provider ParallelEnv auction written below (:class:`MinimalAuction`): per-round costs from
   a numpy Generator, lowest ask wins and is paid its ask, numpy observation arrays, the same five dicts.

Targets of issue 10, on one core (run under ``taskset -c 0``):
- batched core (E = ``--markets``) / PettingZoo path >= 100x for first_price and second_price, >= 20x for every other
  mechanism;
- PettingZoo path / minimal env >= 0.5x for first_price and second_price: the minimal env is a stateless auction, and
  these are the mechanisms it is the like of (the issue's baseline, 0.15x, was the first-price path). The other
  mechanisms do per-round work it has no counterpart of (UCB indices and bid histograms, virtual costs, LinUCB
  matrices, soft allocations); their ratio is printed, with no target ("-").

The three are measured side by side in this one process, ``--repeats`` times in turn (each for ``--seconds``), and
the medians are reported (rates and per-repeat ratios), so machine load affects both sides of a ratio alike. One line
per mechanism, then one JSON line with every figure.

    taskset -c 0 python benchmarks/env_throughput.py [--markets 4096] [--repeats 3] [--seconds 1.0] [--llama]

``--llama`` adds the ``llama`` scenario (five providers, real results) when LLM_ARENA_LLAMA_DIR or
../shared/data/llama-cascades exists.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv

import mechanisms
from envs import make_batched, parallel_env

SHARED_LLAMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llama-cascades"
TARGETS = {"first_price": 100.0, "second_price": 100.0}  # batched / PettingZoo; every other mechanism: 20x
DEFAULT_TARGET = 20.0
MINIMAL_TARGETS = {"first_price": 0.5, "second_price": 0.5}  # PettingZoo / minimal env; the others have none


# ------------------------------------------------------------------------------------------- the reference env


class MinimalAuction(ParallelEnv):
    """The smallest honest PettingZoo version of a procurement auction: each round every provider draws a private cost
    in [0, 1) from the env's Generator and asks cost x (1 + a[0]); the lowest ask wins and is paid its ask. The
    observation is (own cost, last price, time left) as a float32 array; infos are empty dicts."""

    metadata: ClassVar[dict[str, Any]] = {"name": "minimal_auction_v0"}

    def __init__(self, n_providers: int = 2, horizon: int = 256, seed: int = 0):
        self.n = n_providers
        self.horizon = horizon
        self.possible_agents = [f"provider_{i}" for i in range(n_providers)]
        self.agents: list[str] = []
        self.rng = np.random.default_rng(seed)
        self._observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (3,), np.float32)
        self._action_space = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)

    def observation_space(self, agent):
        return self._observation_space

    def action_space(self, agent):
        return self._action_space

    def reset(self, seed=None, options=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.t = 0
        self.last_price = 0.0
        self.costs = self.rng.random(self.n)
        return self._observations(), {a: {} for a in self.agents}

    def _observations(self):
        time_left = 1.0 - self.t / self.horizon
        return {
            a: np.array([self.costs[i], self.last_price, time_left], dtype=np.float32)
            for i, a in enumerate(self.agents)
        }

    def step(self, actions):
        asks = self.costs * (1.0 + np.array([actions[a][0] for a in self.agents]))
        winner = int(asks.argmin())
        payment = float(asks[winner])
        rewards = dict.fromkeys(self.agents, 0.0)
        rewards[self.agents[winner]] = payment - float(self.costs[winner])
        self.t += 1
        self.last_price = payment
        done = self.t >= self.horizon
        terminations = dict.fromkeys(self.agents, False)
        truncations = dict.fromkeys(self.agents, done)
        infos = {a: {} for a in self.agents}
        self.costs = self.rng.random(self.n)
        observations = self._observations()
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


# ------------------------------------------------------------------------------------------------ measurements


def seconds_per_round(step: Callable[[], bool], reset: Callable[[], None], horizon: int, seconds: float) -> float:
    """Wall time of one round with its share of an episode's reset: ``step`` (which returns whether the episode
    ended) runs for about ``seconds``, steps and resets timed apart, and the mean reset is spread over the ``horizon``
    rounds of an episode, so a window shorter than an episode still pays for the reset (which draws the episode's
    randomness in the batched core; its blocks of 256 rounds cover the whole episode on capitals and llama)."""
    clock = time.perf_counter
    reset()  # a market's first reset also seeds its streams: not timed
    for _ in range(3):  # warm-up: first calls allocate
        if step():
            reset()
    start = clock()
    reset()
    resets = [clock() - start]
    stepping, rounds = 0.0, 0
    while rounds < 3 or stepping + sum(resets) < seconds:
        start = clock()
        ended = step()
        stepping += clock() - start
        rounds += 1
        if ended:
            start = clock()
            reset()
            resets.append(clock() - start)
    return stepping / rounds + statistics.mean(resets) / horizon


def batched_rate(market, seconds: float) -> float:
    """Provider-rounds/s of the batched core, truthful actions for every provider of every market."""
    actions = np.zeros((market.n_markets, market.n_providers, 3), dtype=np.float32)
    per_round = seconds_per_round(
        lambda: bool(market.step(actions)[2][0]), market.reset, market.config.horizon, seconds
    )
    return market.n_markets * market.n_providers / per_round


def dict_env_rate(env: ParallelEnv, horizon: int, seconds: float) -> float:
    """Provider-rounds/s of a ParallelEnv through its dict API, all-zero actions."""
    zero = {a: np.zeros(3, dtype=np.float32) for a in env.possible_agents}

    def step() -> bool:
        env.step(zero)
        return not env.agents

    return len(env.possible_agents) / seconds_per_round(step, env.reset, horizon, seconds)


def measure_mechanism(scenario: str, mechanism: str, sizes: list[int], args: argparse.Namespace) -> dict:
    """Every rate of one mechanism, ``args.repeats`` times in turn; medians and the per-repeat ratios' medians."""
    markets = {E: make_batched(scenario, mechanism, E, seeds=[args.seed + e for e in range(E)]) for E in sizes}
    pz = parallel_env(scenario, mechanism, seed=args.seed)
    minimal = MinimalAuction(n_providers=2, horizon=pz.config.horizon, seed=args.seed)
    runs: dict[str, list[float]] = {**{f"batched_E{E}": [] for E in sizes}, "pettingzoo": [], "minimal": []}
    for _ in range(args.repeats):
        for E, market in markets.items():
            runs[f"batched_E{E}"].append(batched_rate(market, args.seconds))
        runs["pettingzoo"].append(dict_env_rate(pz, pz.config.horizon, args.seconds))
        runs["minimal"].append(dict_env_rate(minimal, minimal.horizon, args.seconds))
    main_key = f"batched_E{args.markets}"
    speedups = [b / p for b, p in zip(runs[main_key], runs["pettingzoo"])]
    vs_minimal = [p / m for p, m in zip(runs["pettingzoo"], runs["minimal"])]
    target = TARGETS.get(mechanism, DEFAULT_TARGET)
    minimal_goal = MINIMAL_TARGETS.get(mechanism)  # None: no target
    out = {k: statistics.median(v) for k, v in runs.items()}
    out.update(
        batched_over_pettingzoo=statistics.median(speedups),
        batched_target=target,
        pettingzoo_over_minimal=statistics.median(vs_minimal),
        minimal_target=minimal_goal,
        runs=runs,
    )
    out["batched_met"] = out["batched_over_pettingzoo"] >= target
    out["minimal_met"] = None if minimal_goal is None else out["pettingzoo_over_minimal"] >= minimal_goal
    return out


def minimal_target(r: dict) -> str:
    """The PettingZoo / minimal target column: the target and whether it is met, or "-" where there is none."""
    if r["minimal_target"] is None:
        return f"{'-':>7}"
    return f"{r['minimal_target']:>6.1f}x {'ok' if r['minimal_met'] else 'MISS'}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="capitals")
    p.add_argument("--mechanisms", nargs="+", default=list(mechanisms.REGISTRY))
    p.add_argument("--markets", type=int, default=4096, help="E of the batched core's headline figure")
    p.add_argument("--also-markets", type=int, nargs="*", default=[256, 1024], help="other E printed beside it")
    p.add_argument("--repeats", type=int, default=3, help="measurements of each figure (medians are reported)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of one measurement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--llama", action="store_true", help="also the llama scenario (needs the llama-cascades data)")
    args = p.parse_args()

    scenarios = [args.scenario]
    if args.llama:
        if "LLM_ARENA_LLAMA_DIR" not in os.environ and SHARED_LLAMA.is_dir():
            os.environ["LLM_ARENA_LLAMA_DIR"] = str(SHARED_LLAMA)
        if "LLM_ARENA_LLAMA_DIR" in os.environ:
            scenarios.append("llama")
        else:
            print(f"--llama: skipped, no LLM_ARENA_LLAMA_DIR and no {SHARED_LLAMA}")
    sizes = sorted(set(args.also_markets) | {args.markets})
    cores = len(os.sched_getaffinity(0))
    print(
        f"provider-rounds/s, truthful actions; medians of {args.repeats} x {args.seconds:.1f} s; "
        f"{cores} core(s) allowed{'' if cores == 1 else ' (targets are one-core figures: taskset -c 0)'}"
    )
    batched_cols = "".join(f"{f'E={E}':>12}" for E in sizes)
    print(
        f"{'scenario':<10}{'mechanism':<14}{batched_cols}{'PettingZoo':>12}{'minimal':>11}"
        f"{'batched/PZ':>12}{'target':>8}{'PZ/minimal':>12}{'target':>8}"
    )
    figures: dict[str, dict[str, dict]] = {}
    for scenario in scenarios:
        for mechanism in args.mechanisms:
            r = measure_mechanism(scenario, mechanism, sizes, args)
            figures.setdefault(scenario, {})[mechanism] = r
            rates = "".join(f"{r[f'batched_E{E}']:>12,.0f}" for E in sizes)
            print(
                f"{scenario:<10}{mechanism:<14}{rates}{r['pettingzoo']:>12,.0f}{r['minimal']:>11,.0f}"
                f"{r['batched_over_pettingzoo']:>11.1f}x{r['batched_target']:>6.0f}x "
                f"{'ok' if r['batched_met'] else 'MISS':<4}"
                f"{r['pettingzoo_over_minimal']:>7.2f}x{minimal_target(r)}",
                flush=True,
            )
    print(
        json.dumps(
            {
                "benchmark": "env_throughput",
                "unit": "provider-rounds/s",
                "markets": args.markets,
                "repeats": args.repeats,
                "seconds": args.seconds,
                "cores": cores,
                "figures": figures,
            }
        )
    )


if __name__ == "__main__":
    main()
