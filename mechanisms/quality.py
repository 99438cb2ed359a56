"""The platform's estimate qhat_i(x) of the value a provider delivers on a query (MECHANISMS.md §2).

Quality is learned from observed scores, per provider and query group, starting from the provider's advertised
(benchmark) quality with the weight of ``prior_weight`` pseudo-observations. This is what makes substitution
detectable: a provider that serves a cheaper model than it declares sees its qhat, and so its chance to win, fall.
With ``mode="prior"`` the platform trusts advertised quality forever (no quality monitoring).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from mechanisms.base import MarketInfo

QualityMode = Literal["learned", "prior"]


class QualityEstimator:
    """Running mean of value_scale * S per (provider, group), shrunk toward the advertised quality."""

    def __init__(self, mode: QualityMode = "learned", prior_weight: float = 5.0):
        if mode not in ("learned", "prior"):
            raise ValueError(f"quality mode must be 'learned' or 'prior', got {mode!r}")
        if not prior_weight > 0:
            raise ValueError(f"prior_weight must be > 0, got {prior_weight!r}")
        self.mode = mode
        self.prior_weight = float(prior_weight)

    def reset(self, info: MarketInfo) -> None:
        self.value_scale = info.value_scale
        # Per group (rows) and provider: running sum and count of scores, and their ratio kept up to date, so a
        # round reads a contiguous row instead of dividing columns.
        self.sums = info.prior_quality.T * self.prior_weight  # [G, N], in score units
        self.counts = np.full_like(self.sums, self.prior_weight)
        self.means = self.sums / self.counts
        self._qhat = np.empty(info.n_providers)

    def qhat(self, group: int) -> np.ndarray:
        """[N] estimated expected value (money) of each provider on a query of ``group``; a reused buffer."""
        return np.multiply(self.means[group], self.value_scale, out=self._qhat)

    def mean_score(self, group: int) -> np.ndarray:
        """[N] estimated mean score (qhat / value_scale) on ``group`` (a view: copy before keeping it)."""
        return self.means[group]

    def observe(self, provider: int, group: int, score: float) -> None:
        if self.mode == "learned":
            self.sums[group, provider] += score
            self.counts[group, provider] += 1.0
            self.means[group, provider] = self.sums[group, provider] / self.counts[group, provider]
