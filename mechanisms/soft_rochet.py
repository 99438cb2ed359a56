"""soft_rochet: MOSAIC-style soft (logit) allocation with Rochet payments (MECHANISMS.md §7, seed 002).

Economics. Each round the platform buys at most one answer. Provider i's per-query cost is private; it asks b_i and
gets the quality-adjusted score s_i = qhat_i - b_i (§2; qhat learned from observed scores, or the advertised quality
with ``quality="prior"``). With temperature t (money units), reference weights w_i >= 0 (the platform's reference
routing distribution) and w_0 > 0 for "no allocation" (an outside option of score 0):

- allocation: the winner is drawn (with the round's ``noise``, one uniform per market) from
  x_i = w_i e^{s_i/t} / (w_0 + sum_k w_k e^{s_k/t}), and nobody is served with probability w_0 / (...);
- payment, user -> winner only (losers pay and get nothing): P_i / x_i, where
  P_i = b_i x_i + t ln(1 + w_i e^{s_i/t} / C_i), C_i = w_0 + sum_{k != i} w_k e^{s_k/t},
  so i's expected payment is P_i and the winner is always paid at least its ask.

x is the gradient of the convex t LSE(ln w_0, ln w_k + s_k/t), so by Rochet's characterization expected profit
P_i - c_i x_i is maximized at b_i = c_i (dominant strategy in the bid, given qhat) and the truthful expected profit is
t [LSE(all) - LSE(all but i)] >= 0; ex post a winner that bid its realised cost earns (P_i / x_i - c_i) >= 0 (in the
market the honest bid is the query's *expected* cost, so this holds in expectation over the reply's length). As
t -> 0 the allocation concentrates on argmax s_i (if s >= 0) and the payment tends to second_price's
qhat_w - max(0, s_(2)); a larger t trades allocative efficiency and user surplus for smoother (harder to game,
explorative) routing.

Numerics: logits ln w_k + s_k / t with log-sum-exp and a softplus / sigmoid form of P_i / x_i, so t -> 0 neither
overflows nor divides by a vanishing probability.

Public state: qhat_i / value_scale (as the other scoring auctions). Diagnostics: unserved rate, mean payment, the share
of served rounds won by a provider without the best weighted score ln w_i + s_i / t (the softness of the rule).
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence

import numpy as np

from mechanisms.base import (
    NO_WINNER,
    FloatArray,
    IntArray,
    MarketInfo,
    argmax_random_ties,
    pick,
    row_max,
    row_offsets,
)
from mechanisms.quality import QualityMode
from mechanisms.registry import register
from mechanisms.scoring import ScoringAuction


def payment_ratio(d: FloatArray) -> FloatArray:
    """softplus(d) / sigmoid(d) = ln(1 + e^d)(1 + e^-d), stable for any real d (-> 1 as d -> -inf, ~d for large d)."""
    d = np.asarray(d, dtype=np.float64)
    pos = np.maximum(d, 0.0)
    e_neg = np.exp(-np.abs(d))  # e^-d for d >= 0, e^d for d < 0: never overflows
    high = (pos + np.log1p(e_neg)) * (1.0 + e_neg)  # the d >= 0 form
    with np.errstate(divide="ignore", invalid="ignore"):
        low = np.where(e_neg > 0.0, np.log1p(e_neg) / e_neg, 1.0) * (1.0 + e_neg)  # the d < 0 form, u = e^d
    return np.where(d >= 0.0, high, low)


# The single-market rules below take numpy's exp, log and log1p (elementwise, so the same numbers as in a batch) and do
# the rest in Python arithmetic, in the order of the batched rules.


def payment_ratio_one(d: float) -> float:
    """:func:`payment_ratio` of one number."""
    e_neg = float(np.exp(-abs(d)))
    if d >= 0.0:
        return (d + float(np.log1p(e_neg))) * (1.0 + e_neg)
    return (float(np.log1p(e_neg)) / e_neg if e_neg > 0.0 else 1.0) * (1.0 + e_neg)


def logsumexp_one(a: list[float]) -> float:
    """:func:`logsumexp` of one row."""
    m = max(a)
    safe = m if math.isfinite(m) else 0.0
    total = 0.0
    for term in np.exp([x - safe for x in a]).tolist():
        total += term
    return float(np.log(total)) + safe


def logsumexp(a: FloatArray) -> FloatArray:
    """[E] ln sum exp(a) over each row of ``a`` [E, K] (-inf where every entry is -inf)."""
    m = row_max(a)
    safe = np.where(np.isfinite(m), m, 0.0)
    total = np.zeros(a.shape[0])
    for k in range(a.shape[1]):
        total += np.exp(a[:, k] - safe)
    return np.log(total) + safe


@register
class SoftRochet(ScoringAuction):
    """Logit allocation x_i proportional to w_i e^{s_i/t}, Rochet payments (MECHANISMS.md §7)."""

    name = "soft_rochet"
    reference = "MECHANISMS.md §7"

    def __init__(
        self,
        temperature: float | None = None,
        w0: float = 1.0,
        weights: Sequence[float] | None = None,
        quality: QualityMode = "learned",
        prior_weight: float = 5.0,
    ):
        """
        Args:
            temperature: t in money units (default 0.05 x value_scale); must be > 0.
            w0: weight of "no allocation" (> 0); with w0 = w_i a score s_i = 0 ties with not serving.
            weights: reference weight w_i >= 0 per provider (default 1 each, uniform).
            quality, prior_weight: the quality estimator (see :class:`mechanisms.quality.QualityEstimator`).
        """
        super().__init__(quality, prior_weight)
        if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
            raise ValueError(f"soft_rochet: temperature must be a finite number > 0, got {temperature!r}")
        if not (w0 > 0 and math.isfinite(w0)):
            raise ValueError(f"soft_rochet: w0 must be a finite number > 0, got {w0!r}")
        self.temperature_param = temperature
        self.w0 = float(w0)
        self.weights_param = None if weights is None else np.asarray(weights, dtype=float)
        if self.weights_param is not None and not (
            np.all(self.weights_param >= 0) and np.all(np.isfinite(self.weights_param))
        ):
            raise ValueError(f"soft_rochet: weights must be finite and >= 0, got {weights!r}")

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        super().reset(info, n_markets, rngs)
        N = info.n_providers
        self.t = float(self.temperature_param if self.temperature_param is not None else 0.05 * info.value_scale)
        w = np.ones(N) if self.weights_param is None else self.weights_param
        if w.shape != (N,):
            raise ValueError(f"soft_rochet: {w.shape[0] if w.ndim else 1} weights given for {N} providers")
        with np.errstate(divide="ignore"):
            self.log_w = np.log(w)
        self.payment_sum = np.zeros(n_markets)
        self.n_soft = np.zeros(n_markets)

    @property
    def noise_dim(self) -> int:
        return 1

    def logits(self, bids: FloatArray, group: IntArray) -> FloatArray:
        """[E, N + 1] logits (ln w_0, ln w_i + s_i / t)."""
        out = np.empty((bids.shape[0], bids.shape[1] + 1))
        out[:, 0] = math.log(self.w0)
        out[:, 1:] = self.scores(bids, group) / self.t + self.log_w
        return out

    def allocation_probabilities(self, bids: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] x_i (the rest, 1 - sum x, is the probability of not serving)."""
        lg = self.logits(bids, group)
        return np.exp(lg[:, 1:] - logsumexp(lg)[:, None])

    def _rent(self, lg: FloatArray, k: IntArray) -> FloatArray:
        """[E] d = logit_k - ln C_k, C_k the weight of every other option, for column k [E] of ``lg``."""
        others = lg.copy()
        others.reshape(-1).put(row_offsets(*lg.shape) + k, -np.inf)
        return pick(lg, k) - logsumexp(others)

    def expected_payments(self, bids: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] P_i = b_i x_i + t ln(1 + w_i e^{s_i/t} / C_i), the expected payment to i."""
        lg = self.logits(bids, group)
        x = np.exp(lg[:, 1:] - logsumexp(lg)[:, None])
        rent = np.empty_like(x)
        for i in range(x.shape[1]):
            d = self._rent(lg, np.full(lg.shape[0], i + 1))
            rent[:, i] = self.t * np.logaddexp(0.0, d)  # softplus(d)
        return bids * x + rent

    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        self.n_rounds += 1
        lg = self.logits(bids, group)
        weights = np.exp(lg - row_max(lg)[:, None])
        cum = np.cumsum(weights, axis=1)
        threshold = noise[:, 0] * cum[:, -1]
        k = np.zeros(lg.shape[0], dtype=np.int64)
        for j in range(lg.shape[1] - 1):  # the first option whose cumulative weight exceeds the draw
            k += cum[:, j] <= threshold
        served = k > 0
        self.n_unserved += ~served
        w = k - 1
        ws = np.maximum(w, 0)
        payment = np.where(served, pick(bids, ws) + self.t * payment_ratio(self._rent(lg, k)), 0.0)
        self.payment_sum += payment
        self.n_soft += served & (ws != argmax_random_ties(lg[:, 1:], np.zeros((lg.shape[0], lg.shape[1] - 1))))
        return np.where(served, w, NO_WINNER), payment

    def logits_one(self, bids: list[float], group: int) -> list[float]:
        """:meth:`logits` of a single market."""
        t = self.t
        scores = map(operator.sub, self.quality.qhat_one(group), bids)
        return [math.log(self.w0), *(s / t + lw for s, lw in zip(scores, self.log_w.tolist()))]

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        """:meth:`allocate` of a single market, step for step."""
        self.n_rounds += 1
        lg = self.logits_one(bids, group)
        top = max(lg)
        weights = np.exp([x - top for x in lg]).tolist()
        cum = list(itertools.accumulate(weights))  # sequential sums, as numpy's cumsum
        threshold = noise[0] * cum[-1]
        k = sum(c <= threshold for c in cum[:-1])  # the first option whose cumulative weight exceeds the draw
        if k == 0:
            self.n_unserved[0] += 1.0
            return NO_WINNER, 0.0
        w = k - 1
        others = [-math.inf if j == k else x for j, x in enumerate(lg)]
        payment = bids[w] + self.t * payment_ratio_one(lg[k] - logsumexp_one(others))
        self.payment_sum[0] += payment
        if w != lg.index(max(lg[1:]), 1) - 1:
            self.n_soft[0] += 1.0
        return w, payment

    def diagnostics(self) -> dict[str, FloatArray]:
        served = self.n_rounds - self.n_unserved
        return {
            "unserved_rate": self.n_unserved / max(1, self.n_rounds),
            "mean_payment": self.payment_sum / np.maximum(1, served),
            "non_argmax_rate": self.n_soft / np.maximum(1, served),
        }

    def diagnostics_one(self) -> dict[str, float]:
        served = max(1.0, self.n_rounds - self.n_unserved.item(0))
        return {
            **super().diagnostics_one(),
            "mean_payment": self.payment_sum.item(0) / served,
            "non_argmax_rate": self.n_soft.item(0) / served,
        }
