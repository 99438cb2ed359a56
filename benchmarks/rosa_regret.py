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

from mechanisms.base import NO_WINNER, MarketInfo
from mechanisms.rosa import LinUCBAllocation, Rosa


def market(n: int, d: int, horizon: int) -> MarketInfo:
    return MarketInfo(n_providers=n, context_dim=d, n_groups=1, value_scale=1.0, bid_scale=1.0,
                      prior_quality=np.zeros((n, 1)), cost_range=np.tile([0.0, 1.0], (n, 1)), price_in=np.zeros(n),
                      price_out=np.zeros(n), max_output_tokens=1, horizon=horizon)


def regret(horizon: int, seed: int, resample: bool, n: int = 3, d: int = 5, noise: float = 0.2,
           c_max: float = 0.5, alpha: float = 0.5) -> float:
    rng = np.random.default_rng(seed)
    theta = rng.uniform(-0.2, 0.3, (n, d))
    theta[:, 0] = rng.uniform(0.2, 0.5, n)  # mean quality between about 0.2 and 0.9
    info = market(n, d, horizon)
    if resample:
        rule = Rosa(mu=horizon ** -0.5, cbar=1.0, allocation="linucb", alpha=alpha, prior_offset=False)
        rule.reset(info, np.random.default_rng(seed + 1))
    else:
        rule = LinUCBAllocation(alpha=alpha, prior_offset=False)
        rule.reset(info)
    total = 0.0
    for _ in range(horizon):
        x = np.concatenate(([1.0], rng.random(d - 1)))
        cost = rng.random(n) * c_max
        welfare = theta @ x - cost
        best = max(0.0, float(welfare.max()))
        if resample:
            w, _ = rule.allocate(cost, x, 0)
        else:
            w = rule.choose(cost, x, 0)
        got = 0.0 if w == NO_WINNER else float(welfare[w])
        total += best - got
        if w != NO_WINNER:
            s = float(theta[w] @ x + noise * rng.normal())
            if resample:
                rule.update(w, s, 0, 0, 0.0, x, 0)
            else:
                rule.update(w, s, x, 0)
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
            r = np.array([regret(T, s, resample) for s in range(args.seeds)])
            means.append(r.mean())
            print(f"{label:<20} T = {T:>6}  regret {r.mean():9.2f} +- {r.std(ddof=1) / np.sqrt(len(r)):.2f}")
        slope = np.polyfit(np.log(args.horizons), np.log(means), 1)[0]
        print(f"{label:<20} log-log slope {slope:.3f}\n")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
