"""second_price: reverse second-score (Vickrey) procurement auction (MECHANISMS.md §2).

Same winner as first_price; the user pays the largest bid at which the winner would still have won,
P_w = qhat_w - max(0, s_(2)), with s_(2) the best other score. P_w >= b_w always, and bidding the true cost is a
dominant strategy as long as qhat does not depend on the provider's own actions (substitution does move qhat).
"""

import numpy as np

from mechanisms.base import FloatArray, IntArray, best_other
from mechanisms.registry import register
from mechanisms.scoring import ScoringAuction


@register
class SecondPrice(ScoringAuction):
    name = "second_price"
    reference = "MECHANISMS.md §2"

    def payment(self, winner: IntArray, bid_w: FloatArray, score_w: FloatArray, scores: FloatArray) -> FloatArray:
        return (score_w + bid_w) - np.maximum(0.0, best_other(scores, winner))  # qhat_w - max(0, s_(2))

    def payment_one(self, winner: int, bids: list[float], scores: list[float]) -> float:
        if len(scores) == 2:  # the other score (what the general rule below gives)
            other = scores[1 - winner]
        else:
            other = max((s for i, s in enumerate(scores) if i != winner), default=-np.inf)
        # max(0.0, other) written out (0.0 for NaN too, as the builtin gives): the call costs more than the compare
        return (scores[winner] + bids[winner]) - (other if other > 0.0 else 0.0)
