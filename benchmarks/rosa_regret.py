"""Regret of rosa's LinUCB allocation against the known-theta benchmark (MECHANISMS.md §5): does it grow like sqrt(T)?

    python benchmarks/rosa_regret.py [--horizons 500 1000 2000 4000 8000 16000] [--seeds 5]

Synthetic linear market: N providers, context x = (1, u_1..u_{d-1}) with u ~ U[0, 1]; provider i's score
S = theta_i . x + N(0, noise^2), its cost c_i ~ U[0, c_max] per round, truthful bids, value_scale 1. The benchmark
knows theta and picks argmax_i [theta_i . x - c_i] when positive; the regret of a round is the benchmark's expected
welfare minus that of the provider rosa served (0 when unserved). rosa runs with mu = T^-1/2 (the resampling itself
costs at most N mu T = N sqrt(T) rounds of changed outcomes); the plain LinUCB rule (no resampling, mu -> 0) is shown
for comparison. Prints the mean cumulative regret per horizon and the log-log slope (0.5 = sqrt(T)).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mechanisms.base import NO_WINNER, MarketInfo, Outcome
from mechanisms.rosa import LinUCBAllocation, Rosa


def market(n: int, d: int, horizon: int) -> MarketInfo:
    return MarketInfo(
        n_providers=n,
        context_dim=d,
        n_groups=1,
        value_scale=1.0,
        bid_scale=1.0,
        prior_quality=np.zeros((n, 1)),
        cost_range=np.tile([0.0, 1.0], (n, 1)),
        price_in=np.zeros(n),
        price_out=np.zeros(n),
        max_output_tokens=1,
        horizon=horizon,
    )


def regret(
    horizon: int,
    seeds: list[int],
    resample: bool,
    n: int = 3,
    d: int = 5,
    noise: float = 0.2,
    c_max: float = 0.5,
    alpha: float = 0.5,
) -> np.ndarray:
    """[len(seeds)] cumulative regret of one run per seed, all seeds played at once (one market each).

    Market e draws its theta, contexts, costs and score noise from ``default_rng(seeds[e])`` and the mechanism's
    coins from ``default_rng(seeds[e] + 1)``, so rosa and plain LinUCB face the same markets (common random numbers).
    """
    E = len(seeds)
    rngs = [np.random.default_rng(s) for s in seeds]
    coins = [np.random.default_rng(s + 1) for s in seeds]
    theta = np.stack([rng.uniform(-0.2, 0.3, (n, d)) for rng in rngs])  # [E, n, d]
    theta[:, :, 0] = np.stack([rng.uniform(0.2, 0.5, n) for rng in rngs])  # mean quality between about 0.2 and 0.9
    info = market(n, d, horizon)
    if resample:
        rule = Rosa(mu=horizon**-0.5, cbar=1.0, allocation="linucb", alpha=alpha, prior_offset=False)
        rule.reset(info, E, coins)
    else:
        rule = LinUCBAllocation(alpha=alpha, prior_offset=False)
        rule.reset(info, E)
    noise_dim = rule.noise_dim if resample else n  # rosa: coins, nu and tie-breaks; LinUCB: tie-breaks
    group = np.zeros(E, dtype=np.int64)
    zeros = np.zeros(E)
    total = np.zeros(E)
    for _ in range(horizon):
        draws = np.stack([rng.random(d - 1 + n) for rng in rngs])  # context, costs
        x = np.concatenate([np.ones((E, 1)), draws[:, : d - 1]], axis=1)
        cost = draws[:, d - 1 :] * c_max
        eps = noise * np.array([rng.normal() for rng in rngs])  # score noise (used where served)
        mech_noise = np.stack([c.random(noise_dim) for c in coins])
        welfare = np.einsum("end,ed->en", theta, x) - cost  # [E, n]
        best = np.maximum(0.0, welfare.max(axis=1))
        if resample:
            w, payment = rule.allocate(cost, x, group, mech_noise)
        else:
            w, payment = rule.choose(cost, x, group, mech_noise), zeros
        served = w != NO_WINNER
        ws = np.maximum(w, 0)
        got = np.where(served, welfare[np.arange(E), ws], 0.0)
        total += best - got
        score = np.where(served, np.einsum("ed,ed->e", theta[np.arange(E), ws], x) + eps, 0.0)
        rule.update(Outcome(w, score, zeros, zeros, payment, x, group))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--horizons", nargs="+", type=int, default=[500, 1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    for resample, label in ((True, "rosa (mu = T^-1/2)"), (False, "plain LinUCB")):
        means = []
        for T in args.horizons:
            r = regret(T, list(range(args.seeds)), resample)
            means.append(r.mean())
            print(f"{label:<20} T = {T:>6}  regret {r.mean():9.2f} +- {r.std(ddof=1) / np.sqrt(len(r)):.2f}")
        slope = np.polyfit(np.log(args.horizons), np.log(means), 1)[0]
        print(f"{label:<20} log-log slope {slope:.3f}\n")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
