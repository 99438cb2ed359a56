"""Episode metrics of the market (MECHANISMS.md §9), accumulated round by round over E markets at once.

One accumulator serves training (TensorBoard) and evaluation (reports), so a metric means the same everywhere.
Per provider: ``profit`` (mean per round), ``episode_profit``, ``win_rate``, ``bid_markup`` (total bids / total
honest bids, i.e. the cost-weighted mean of bid / cost), ``substitution_rate`` (share of won rounds served by a model
other than the declared one), ``mean_inflation`` (over won rounds), ``payment`` (mean received per round). Market:
``user_utility``, ``payment``, ``value``, ``welfare`` (means per round), ``allocative_efficiency`` (realised welfare
/ best achievable welfare), ``unserved_share``, ``full_info_utility`` (the user's utility under full information:
the best provider serves every query at cost). Mechanism: its diagnostics at the episode's end (``mechanism/<key>``).
"""

from __future__ import annotations

import numpy as np

from envs.batched import Round

PROVIDER_METRICS = (
    "profit",
    "episode_profit",
    "win_rate",
    "bid_markup",
    "substitution_rate",
    "mean_inflation",
    "payment",
)
MARKET_METRICS = (
    "user_utility",
    "payment",
    "value",
    "welfare",
    "allocative_efficiency",
    "unserved_share",
    "full_info_utility",
)
_MARKET_SUMS = ("user_utility", "payment", "value", "welfare", "best_welfare", "unserved")


class EpisodeStats:
    """Running sums over one episode of E markets with N providers."""

    def __init__(self, agents: list[str], n_markets: int = 1):
        self.agents = list(agents)
        self.n_markets = n_markets
        self._providers = np.arange(len(self.agents))
        self.reset()

    def reset(self) -> None:
        E, N = self.n_markets, len(self.agents)
        self.rounds = 0
        self.profit, self.bids, self.honest, self.wins, self.substitutions, self.inflation, self.received = (
            np.zeros((E, N)) for _ in range(7)
        )
        self.market = {k: np.zeros(E) for k in _MARKET_SUMS}

    def add(self, r: Round) -> None:
        """Record one round of every market."""
        self.rounds += 1
        self.profit += r.rewards
        self.bids += r.bids
        self.honest += r.honest_bids
        won = r.winner[:, None] == self._providers  # [E, N] one-hot of the winner (none where unserved)
        self.wins += won
        self.substitutions += won & r.substituted
        self.inflation += np.where(won, r.inflation, 0.0)
        self.received += np.where(won, r.payment[:, None], 0.0)
        m = self.market
        m["user_utility"] += r.user_utility
        m["payment"] += r.payment
        m["value"] += r.value
        m["welfare"] += r.welfare
        m["best_welfare"] += r.best_welfare
        m["unserved"] += r.unserved

    def summary(self, diagnostics: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """Flat ``provider_<i>/<metric>``, ``market/<metric>`` and ``mechanism/<key>`` episode means, each an [E]
        array over markets (``diagnostics``: the mechanism's at the episode's end)."""
        t = max(1, self.rounds)

        def safe(num: np.ndarray, den: np.ndarray) -> np.ndarray:
            return np.divide(num, den, out=np.zeros_like(num), where=den > 0)

        per = {
            "profit": self.profit / t,
            "episode_profit": self.profit,
            "win_rate": self.wins / t,
            "bid_markup": safe(self.bids, self.honest),
            "substitution_rate": safe(self.substitutions, self.wins),
            "mean_inflation": safe(self.inflation, self.wins),
            "payment": self.received / t,
        }
        out = {f"{agent}/{name}": per[name][:, i] for i, agent in enumerate(self.agents) for name in per}
        m = self.market
        out.update(
            {
                "market/user_utility": m["user_utility"] / t,
                "market/payment": m["payment"] / t,
                "market/value": m["value"] / t,
                "market/welfare": m["welfare"] / t,
                "market/allocative_efficiency": np.where(
                    m["best_welfare"] > 0, safe(m["welfare"], m["best_welfare"]), 1.0
                ),
                "market/unserved_share": m["unserved"] / t,
                "market/full_info_utility": m["best_welfare"] / t,
            }
        )
        out.update({f"mechanism/{k}": np.asarray(v, dtype=np.float64) for k, v in (diagnostics or {}).items()})
        return out

    def rows(self, diagnostics: dict[str, np.ndarray] | None = None) -> list[dict[str, float]]:
        """:meth:`summary` as one flat dict of floats per market."""
        summary = self.summary(diagnostics)
        return [{k: float(v[e]) for k, v in summary.items()} for e in range(self.n_markets)]
