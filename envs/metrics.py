"""Episode metrics of the market (MECHANISMS.md §9), accumulated round by round from the env's infos.

One accumulator serves training (TensorBoard) and evaluation (reports), so a metric means the same everywhere.
Per provider: ``profit`` (mean per round), ``episode_profit``, ``win_rate``, ``bid_markup`` (total bids / total
honest bids, i.e. the cost-weighted mean of bid / cost),
``substitution_rate`` (share of won rounds served by a model other than the declared one), ``mean_inflation`` (over
won rounds), ``payment`` (mean received per round). Market: ``user_utility``, ``payment``, ``value``, ``welfare``
(means per round), ``allocative_efficiency`` (realised welfare / best achievable welfare), ``unserved_share``,
``full_info_utility`` (the user's utility under full information: the best provider serves every query at cost).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PROVIDER_METRICS = ("profit", "episode_profit", "win_rate", "bid_markup", "substitution_rate", "mean_inflation",
                    "payment")
MARKET_METRICS = ("user_utility", "payment", "value", "welfare", "allocative_efficiency", "unserved_share",
                  "full_info_utility")


class EpisodeStats:
    """Running sums over one episode of an N-provider market."""

    def __init__(self, agents: list[str]):
        self.agents = list(agents)
        self.reset()

    def reset(self) -> None:
        n = len(self.agents)
        self.rounds = 0
        self.sums = np.zeros((3, n))  # rewards, bids, honest bids (rows of the env's ``per_provider``)
        self.wins = np.zeros(n)
        self.substitutions = np.zeros(n)
        self.inflation_sum = np.zeros(n)
        self.received = np.zeros(n)
        self.market = dict.fromkeys(("user_utility", "payment", "value", "welfare", "best_welfare", "unserved"), 0.0)
        self.mechanism: dict[str, float] = {}

    def add(self, last_round: dict[str, Any]) -> None:
        """Record one round from the env's ``last_round`` (arrays over providers plus the market fields)."""
        r = last_round
        self.rounds += 1
        self.sums += r["per_provider"]
        w = r["winner"]
        if w >= 0:
            self.wins[w] += 1
            self.substitutions[w] += r["substituted"][w]
            self.inflation_sum[w] += r["inflation"][w]
            self.received[w] += r["payment"]
        m = self.market
        for key in ("user_utility", "payment", "value", "welfare", "best_welfare"):
            m[key] += r[key]
        m["unserved"] += r["unserved"]
        self.mechanism = r["mechanism"]

    def summary(self) -> dict[str, float]:
        """Flat ``provider_<i>/<metric>``, ``market/<metric>`` and ``mechanism/<key>`` means of the episode."""
        t = max(1, self.rounds)
        safe = lambda num, den: np.divide(num, den, out=np.zeros_like(num), where=den > 0)  # noqa: E731
        profit, bids, honest = self.sums
        per = {
            "profit": profit / t, "episode_profit": profit, "win_rate": self.wins / t,
            "bid_markup": safe(bids, honest), "substitution_rate": safe(self.substitutions, self.wins),
            "mean_inflation": safe(self.inflation_sum, self.wins), "payment": self.received / t,
        }
        out = {f"{agent}/{name}": float(per[name][i]) for i, agent in enumerate(self.agents) for name in per}
        m = self.market
        out.update({
            "market/user_utility": m["user_utility"] / t, "market/payment": m["payment"] / t,
            "market/value": m["value"] / t, "market/welfare": m["welfare"] / t,
            "market/allocative_efficiency": m["welfare"] / m["best_welfare"] if m["best_welfare"] > 0 else 1.0,
            "market/unserved_share": m["unserved"] / t, "market/full_info_utility": m["best_welfare"] / t,
        })
        out.update({f"mechanism/{k}": float(v) for k, v in self.mechanism.items()
                    if isinstance(v, (int, float, np.number))})
        return out
