"""Shared machinery of quality-adjusted (scoring) auctions: s_i = qhat_i(x) - b_i (MECHANISMS.md §2)."""

from __future__ import annotations

import operator

import numpy as np

from mechanisms.base import (
    NO_WINNER,
    FloatArray,
    IntArray,
    MarketInfo,
    Mechanism,
    Outcome,
    argmax_drawing_ties,
    argmax_drawing_ties_one,
    row_offsets,
)
from mechanisms.quality import QualityEstimator, QualityMode


class ScoringAuction(Mechanism):
    """Picks w = argmax_i s_i with s_i = qhat_i - b_i when s_w >= 0 (ties broken at random, by a coin drawn from the
    market's generator only when it ties: :func:`mechanisms.base.argmax_drawing_ties`); subclasses set the payment
    from the user to the winner.

    Public state: the platform's current qhat_i / value_scale for every provider on the query's group, so providers
    can see how the platform rates them (and each other).
    """

    def __init__(self, quality: QualityMode = "learned", prior_weight: float = 5.0):
        self.quality = QualityEstimator(quality, prior_weight)

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        super().reset(info, n_markets, rngs)
        self.quality.reset(info, n_markets)
        self.n_rounds = 0
        self.n_unserved = np.zeros(n_markets)

    def scores(self, bids: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] quality-adjusted scores qhat - bid."""
        return self.quality.qhat(group) - bids

    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        s = self.scores(bids, group)
        w = argmax_drawing_ties(s, self.rngs)
        flat = row_offsets(*s.shape) + w  # each market's winner in the flattened [E, N] arrays
        score_w = s.reshape(-1).take(flat)
        served = score_w >= 0.0
        self.n_rounds += 1
        payment = self.payment(w, bids.reshape(-1).take(flat), score_w, s)
        if served.all():  # every market served, the common case: no masks (the same numbers)
            return w, payment
        self.n_unserved += ~served
        return np.where(served, w, NO_WINNER), np.where(served, payment, 0.0)

    def payment(self, winner: IntArray, bid_w: FloatArray, score_w: FloatArray, scores: FloatArray) -> FloatArray:
        """[E] what the user pays each market's winner (where it is served), from the winner's bid and score [E] and
        every provider's score [E, N]."""
        raise NotImplementedError

    def payment_one(self, winner: int, bids: list[float], scores: list[float]) -> float:
        """:meth:`payment` of a single market, on Python lists."""
        raise NotImplementedError

    def update(self, outcome: Outcome) -> None:
        self.quality.observe(outcome)

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        s = list(map(operator.sub, self.quality.qhat_one(group), bids))
        w = argmax_drawing_ties_one(s, self.rngs[0])
        self.n_rounds += 1
        if s[w] < 0.0:
            self.n_unserved[0] += 1
            return NO_WINNER, 0.0
        return w, self.payment_one(w, bids, s)

    def update_one(
        self,
        winner: int,
        score: float,
        input_tokens: int,
        reported_tokens: int,
        payment: float,
        context: FloatArray,
        group: int,
    ) -> None:
        if winner != NO_WINNER:
            self.quality.observe_one(winner, group, score)

    @property
    def public_state_dim(self) -> int:
        return self.info.n_providers

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        return self.quality.mean_score(group)

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        return self.quality.mean_score_one(group)

    def diagnostics(self) -> dict[str, FloatArray]:
        return {"unserved_rate": self.n_unserved / max(1, self.n_rounds)}

    def diagnostics_one(self) -> dict[str, float]:
        return {"unserved_rate": self.n_unserved.item(0) / (self.n_rounds or 1)}  # max(1, n_rounds), n_rounds >= 0
