"""Shared machinery of quality-adjusted (scoring) auctions: s_i = qhat_i(x) - b_i (MECHANISMS.md §2)."""

from __future__ import annotations

import numpy as np

from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.quality import QualityEstimator, QualityMode


class ScoringAuction(Mechanism):
    """Picks w = argmax_i s_i with s_i = qhat_i - b_i when s_w >= 0; subclasses set the payment.

    Public state: the platform's current qhat_i / value_scale for every provider on the query's group, so providers
    can see how the platform rates them (and each other).
    """

    def __init__(self, quality: QualityMode = "learned", prior_weight: float = 5.0):
        self.quality = QualityEstimator(quality, prior_weight)

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.quality.reset(info)
        self._scores = np.empty(info.n_providers)
        self.n_rounds = 0
        self.n_unserved = 0

    def scores(self, bids: np.ndarray, group: int) -> np.ndarray:
        """[N] quality-adjusted scores qhat - bid (a reused buffer)."""
        return np.subtract(self.quality.qhat(group), bids, out=self._scores)

    def allocate(self, bids: np.ndarray, context: np.ndarray, group: int) -> tuple[int, float]:
        s = self.scores(bids, group)
        w = int(s.argmax())
        self.n_rounds += 1
        if s[w] < 0.0:
            self.n_unserved += 1
            return NO_WINNER, 0.0
        return w, self.payment(w, bids, s)

    def payment(self, winner: int, bids: np.ndarray, scores: np.ndarray) -> float:
        raise NotImplementedError

    def update(self, winner, score, input_tokens, reported_output_tokens, payment, context, group) -> None:
        if winner != NO_WINNER:
            self.quality.observe(winner, group, score)

    @property
    def public_state_dim(self) -> int:
        return self.info.n_providers

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        return self.quality.mean_score(group)

    def diagnostics(self) -> dict[str, float]:
        return {"unserved_rate": self.n_unserved / max(1, self.n_rounds)}


def best_other(scores: np.ndarray, winner: int) -> float:
    """Highest score among providers other than ``winner`` (-inf when there is none)."""
    if scores.shape[0] == 1:
        return -np.inf
    saved = scores[winner]
    scores[winner] = -np.inf
    second = scores.max()
    scores[winner] = saved
    return float(second)
