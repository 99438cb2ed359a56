"""Speed of the second-best delegation batch simulator and the paper's 6 x 6 x 6 strategy grid on the toy game.

    python benchmarks/second_best.py [--T 1000000] [--workers 2] [--seeds 1]

1. Wall time of one game with T = 1e6 and 3 providers playing scripted strategies (target < 5 s on one core).
2. Wall time of the full grid of the paper's six strategies for each of the 3 providers (216 games at T = 1e6; target
   < 5 min on 2 cores, multiprocessing with ``--workers`` processes), and its summary: for each provider and each of
   the 36 profiles of the others, the best-response strategy (highest utility of that provider; ties - identical
   behaviour on the phases actually played gives identical utilities under common random numbers - all count), how
   often "ours" is a best response, and the largest gain of deviating from "ours" compared with the approximation
   bound's scale T^(1-eps) ln T.

Every profile uses the same seeds (common random numbers), so differences between strategies are not sampling noise.
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mechanisms import second_best as sb

NAMES = sb.STRATEGY_NAMES
SHORT = {
    "ours": "ours",
    "honest": "honest",
    "dishonest-model": "dis-model",
    "dishonest-length": "dis-length",
    "dishonest-all": "dis-all",
    "ours-honest-length": "ours-hl",
}
_GAME: sb.Game | None = None


def _init_worker() -> None:
    global _GAME
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _GAME = sb.toy_game()


def _run(task: tuple[tuple[int, int, int], int, int]) -> tuple[tuple[int, int, int], np.ndarray, float, bool]:
    profile, T, seeds = task
    game = _GAME or sb.toy_game()
    utils, user, stopped = np.zeros(3), 0.0, False
    for seed in range(seeds):
        r = sb.simulate(game, [NAMES[k] for k in profile], T, sb.TOY.epsilon, sb.TOY.gamma, seed=seed)
        utils += r.provider_utility_total / seeds
        user += r.user_utility_per_query / seeds
        stopped |= r.early_stopped
    return profile, utils, user, stopped


def one_run(T: int) -> None:
    game = sb.toy_game()
    profile = ["ours", "dishonest-length", "honest"]
    sb.simulate(game, profile, 10_000, sb.TOY.epsilon, sb.TOY.gamma, seed=0)  # imports and caches warm
    times = []
    for seed in range(3):
        start = time.perf_counter()
        r = sb.simulate(game, profile, T, sb.TOY.epsilon, sb.TOY.gamma, seed=seed)
        times.append(time.perf_counter() - start)
    print(f"one game, T = {T:,}, 3 providers {profile}: {min(times):.3f} s (best of 3; target < 5 s on one core)")
    print(
        f"  B = {r.B}, R = {r.R:,}, i* = p{r.best + 1}, u' = {r.u_second:.4f}, early stop: {r.early_stopped}; "
        f"delegations {r.provider_delegations.tolist()}, provider utilities "
        f"{np.round(r.provider_utility_total, 1).tolist()}, user utility / T = {r.user_utility_per_query:.4f}"
    )


def grid(T: int, workers: int, seeds: int) -> None:
    tasks = [(p, T, seeds) for p in itertools.product(range(len(NAMES)), repeat=3)]
    start = time.perf_counter()
    if workers > 1:
        with mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
            results = pool.map(_run, tasks, chunksize=4)
    else:
        _init_worker()
        results = [_run(t) for t in tasks]
    wall = time.perf_counter() - start
    print(
        f"\nfull grid: {len(tasks)} games x {seeds} seed(s), T = {T:,}, {workers} worker(s): {wall:.1f} s "
        f"(target < 300 s on 2 cores)"
    )
    U = np.zeros((len(NAMES),) * 3 + (3,))
    user = np.zeros((len(NAMES),) * 3)
    for profile, utils, u, _ in results:
        U[profile] = utils
        user[profile] = u
    bound = T ** (1 - sb.TOY.epsilon) * math.log(T)
    toy = sb.TOY
    slack = sb.margin(T, toy.epsilon, 3) * T * (toy.b + toy.L * toy.prices[0]) / toy.gamma
    ours = NAMES.index("ours")
    print(
        f"best responses of each provider over the 36 profiles of the others (T^(1-eps) ln T = {bound:,.0f}; "
        f"the threshold's slack over T queries, M T (b + L p_max) / gamma = {slack:,.0f}):"
    )
    print(f"{'provider':<9}" + "".join(f"{SHORT[n]:>11}" for n in NAMES) + f"{'ours BR':>9}{'max gain over ours':>20}")
    for i in range(3):
        counts = np.zeros(len(NAMES), dtype=int)
        ours_br, max_gain, worst = 0, 0.0, None
        for others in itertools.product(range(len(NAMES)), repeat=2):
            utils = np.array([U[_profile(i, k, others)][i] for k in range(len(NAMES))])
            best = utils.max()
            tied = np.flatnonzero(utils >= best - 1e-9 * max(1.0, abs(best)))
            counts[tied] += 1
            ours_br += int(ours in tied)
            gain = best - utils[ours]
            if gain > max_gain:
                max_gain, worst = gain, (others, NAMES[int(utils.argmax())])
        where = "" if worst is None else (f" ({SHORT[worst[1]]} vs {'/'.join(SHORT[NAMES[k]] for k in worst[0])})")
        print(
            f"{'p' + str(i + 1):<9}" + "".join(f"{c:>11}" for c in counts) + f"{ours_br:>6}/36{max_gain:>20,.0f}{where}"
        )
    all_ours = (ours,) * 3
    print(
        f"all 'ours': provider utilities {np.round(U[all_ours], 1).tolist()}, user utility / T "
        f"{user[all_ours]:.4f}; all 'honest': user utility / T {user[(NAMES.index('honest'),) * 3]:.4f}"
    )


def _profile(i: int, k: int, others: tuple[int, int]) -> tuple[int, int, int]:
    p = list(others)
    p.insert(i, k)
    return tuple(p)  # type: ignore[return-value]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=1, help="seeds per profile (averaged)")
    args = parser.parse_args()
    one_run(args.T)
    grid(args.T, args.workers, args.seeds)


if __name__ == "__main__":
    main()
