"""The platform's estimate qhat_i(x) of the value a provider delivers on a query (MECHANISMS.md §2).

Quality is learned from observed scores, per market, provider and query group, starting from the provider's
advertised (benchmark) quality with the weight of ``prior_weight`` pseudo-observations. This is what makes
substitution detectable: a provider that serves a cheaper model than it declares sees its qhat, and so its chance to
win, fall. With ``mode="prior"`` the platform trusts advertised quality forever (no quality monitoring).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

from mechanisms.base import FloatArray, IntArray, MarketInfo, Outcome, pick, row_offsets

QualityMode = Literal["learned", "prior"]


class QualityEstimator:
    """Running mean of S per (market, group, provider), shrunk toward the advertised quality."""

    # The E = 1 path's qhat lists, rebuilt from the means, and its flat views of the arrays (of the arrays a restore
    # replaces: rebuilt on first use).
    CACHES: ClassVar[tuple[str, ...]] = ("_qhat_one", "_flat_one")

    def __init__(self, mode: QualityMode = "learned", prior_weight: float = 5.0):
        if mode not in ("learned", "prior"):
            raise ValueError(f"quality mode must be 'learned' or 'prior', got {mode!r}")
        if not (prior_weight > 0 and np.isfinite(prior_weight)):
            raise ValueError(f"prior_weight must be a finite number > 0, got {prior_weight!r}")
        self.mode = mode
        self.prior_weight = float(prior_weight)

    def reset(self, info: MarketInfo, n_markets: int) -> None:
        self.value_scale = info.value_scale
        prior = info.prior_quality.T  # [G, N]
        self.sums = np.broadcast_to(prior * self.prior_weight, (n_markets, *prior.shape)).copy()  # [E, G, N]
        self.counts = np.full_like(self.sums, self.prior_weight)
        self.means = self.sums / self.counts
        self._means_one: list[list[float]] | None = self.means[0].tolist() if n_markets == 1 else None  # [G][N]: E = 1
        self._qhat_one: list[list[float]] | None = None
        self._flat_one: tuple[memoryview[float], memoryview[float], memoryview[float]] | None = None

    def mean_score(self, group: IntArray) -> FloatArray:
        """[E, N] estimated mean score of every provider on each market's query group."""
        return pick(self.means, group)

    def qhat(self, group: IntArray) -> FloatArray:
        """[E, N] estimated expected value (money) of every provider on each market's query group."""
        return self.mean_score(group) * self.value_scale

    def observe(self, outcome: Outcome) -> None:
        """Add each served market's observed score to its winner's estimate on the query's group."""
        if self.mode != "learned":
            return
        E, G, N = self.sums.shape
        served = outcome.served
        if served.all():  # the common case: no gathers
            starts, group, winner, score = row_offsets(E, G), outcome.group, outcome.winner, outcome.score
        else:
            e = np.flatnonzero(served)
            if e.size == 0:
                return
            starts, group, winner, score = e * G, outcome.group[e], outcome.winner[e], outcome.score[e]
        cell = (starts + group) * N + winner  # flat index of (market, group, winner)
        sums, counts = self.sums.reshape(-1), self.counts.reshape(-1)
        new_sums, new_counts = sums.take(cell) + score, counts.take(cell) + 1.0
        # Index assignment, not ``put``: several times faster (cells are distinct, one per market).
        sums[cell] = new_sums
        counts[cell] = new_counts
        self.means.reshape(-1)[cell] = new_sums / new_counts
        if self._means_one is not None:
            self._means_one = self.means[0].tolist()
            self._qhat_one = None

    def mean_score_one(self, group: int) -> list[float]:
        """:meth:`mean_score` of a single market (E = 1), as a list (the estimator's own: read only)."""
        assert self._means_one is not None, "mean_score_one needs a single market (E = 1)"
        return self._means_one[group]

    def qhat_one(self, group: int) -> list[float]:
        """:meth:`qhat` of a single market (E = 1), as a list (the estimator's own: read only)."""
        if self._qhat_one is None:
            vs, means = self.value_scale, self._means_one
            assert means is not None, "qhat_one needs a single market (E = 1)"
            self._qhat_one = [[m * vs for m in row] for row in means]
        return self._qhat_one[group]

    def observe_one(self, winner: int, group: int, score: float) -> None:
        """:meth:`observe` of a single market (E = 1); ``winner`` >= 0."""
        if self.mode == "learned":
            means = self._means_one
            assert means is not None, "observe_one needs a single market (E = 1)"
            sums, counts, flat_means = self._flat_one or self._flat_views()
            cell = group * len(means[0]) + winner  # (market 0, group, winner) of the [1, G, N] arrays
            sums[cell] = total = sums[cell] + score
            counts[cell] = count = counts[cell] + 1.0
            flat_means[cell] = means[group][winner] = mean = total / count
            if self._qhat_one is not None:
                self._qhat_one[group][winner] = mean * self.value_scale

    def _flat_views(self) -> tuple[memoryview[float], memoryview[float], memoryview[float]]:
        """Flat float views of the sums, counts and means of a single market: a memoryview's item access is several
        times cheaper than numpy's scalar indexing, and writes through to the arrays."""
        sums, counts, means = (a.data.cast("B").cast("d") for a in (self.sums, self.counts, self.means))
        self._flat_one = sums, counts, means
        return sums, counts, means
