"""first_price: reverse pay-as-bid scoring auction (MECHANISMS.md §2).

The platform picks the provider with the best quality-adjusted score s_i = qhat_i - b_i (if s >= 0) and the user pays
the winner its bid, P_w = b_w. Not truthful: a provider gains by asking more than its cost (in the textbook uniform
market the equilibrium bid is b(c) = c + (1 - c) / n, §8).
"""

from mechanisms.base import FloatArray, IntArray
from mechanisms.registry import register
from mechanisms.scoring import ScoringAuction


@register
class FirstPrice(ScoringAuction):
    name = "first_price"
    reference = "MECHANISMS.md §2"

    def payment(self, winner: IntArray, bid_w: FloatArray, score_w: FloatArray, scores: FloatArray) -> FloatArray:
        return bid_w

    def payment_one(self, winner: int, bids: list[float], scores: list[float]) -> float:
        return bids[winner]
