"""myerson: optimal reverse (procurement) auction with known cost priors (MECHANISMS.md §4, checked against §8).

Economics. Each round the user (through the platform) buys one answer. Provider i's per-query cost c_i is private;
the platform knows only its prior F_i (by default uniform on ``MarketInfo.cost_range[i]``, the public range of
per-query costs of i's type over every model on its menu: a provider that may secretly serve a cheaper model may also
have that model's cost) and its value v_i = qhat_i for the query (the platform's quality estimate, §2: learned
from observed scores, or the advertised prior with ``quality="prior"``). With virtual cost
phi_i(c) = c + F_i(c) / f_i(c) (increasing for a regular prior; 2c - lo for U[lo, hi]):

- allocation: w = argmax_i [v_i - phi_i(b_i)] if that is positive (ties broken at random), else nobody is served;
- payment (user -> winner only; losers pay and get nothing): the threshold bid, the largest ask at which w still wins,
  P_w = phi_w^{-1}(v_w - max(0, max_{j != w} [v_j - phi_j(b_j)])), capped to the top of w's prior support.
  With the cap (``support_cap=True``, the default) a bid above the support top is not eligible - the prior says no
  such cost exists - so the cap is exactly part of the threshold and the rule stays a threshold payment;
- private: the costs (and the served model, §1); public before bidding: the quality estimates v_i and the reserves
  r_i = phi_i^{-1}(v_i) (each / value_scale).

A bid below the support is treated as the support's bottom: phi_i(b) = phi_i(max(b, lo_i)) >= lo_i, so no ask buys a
virtual cost below what the prior allows (extending phi(c) = 2c - lo below lo would hand a negative virtual cost,
and every round, to a provider asking less than any cost it can have).

Bidding the cost is a dominant strategy (monotone allocation + threshold payment) and the payment is never below the
bid, so a provider that bids its realised per-query cost never loses money. In the market the honest bid is the
*expected* cost of the query (its output length is unknown before serving), so truthful play is individually rational
in expectation: a winner whose reply runs longer than expected can lose a little in that round.
When the priors are right, the user's expected utility is the largest any truthful mechanism achieves.
U[0, 1] costs, v = 1: reserve 1/2; one provider yields user utility v^2/4; identical providers: the lowest bid wins
and is paid min(second-lowest bid, 1/2).

Caveat. The env's cost range is computed at mean token counts, so the true per-query cost of a long query can exceed
the support top (about 15-20% of queries in ``llama``). Such honest bids are then never served. ``support_cap=False``
extends the virtual cost beyond the support (for the uniform prior, phi(c) = 2c - lo for every c) and pays the
uncapped threshold: still truthful and individually rational (in the sense above), no longer optimal for the stated
prior.

The prior is pluggable: pass ``priors`` (one :class:`CostPrior` per provider, or one shared) to replace the uniform
default.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from mechanisms.base import (
    NO_WINNER,
    FloatArray,
    IntArray,
    MarketInfo,
    Mechanism,
    Outcome,
    argmax_random_ties,
    argmax_random_ties_one,
    best_other,
    pick,
)
from mechanisms.quality import QualityEstimator, QualityMode
from mechanisms.registry import register


class CostPrior:
    """A provider's per-query cost distribution on [lo, hi] as the platform believes it (must be regular:
    :meth:`virtual_cost` increasing). Subclasses give ``cdf`` and ``pdf`` on arrays; the default inverse virtual cost
    is a bisection on the support (override it for speed when a closed form exists)."""

    lo: float
    hi: float

    def cdf(self, c: FloatArray) -> FloatArray:
        raise NotImplementedError

    def pdf(self, c: FloatArray) -> FloatArray:
        raise NotImplementedError

    def virtual_cost(self, c: FloatArray) -> FloatArray:
        """phi(c) = c + F(c) / f(c), with a cost below the support read as the support's bottom."""
        c = np.maximum(np.asarray(c, dtype=np.float64), self.lo)
        return c + self.cdf(c) / self.pdf(c)

    def inverse_virtual_cost(self, y: FloatArray) -> FloatArray:
        """The cost c in [lo, hi] with phi(c) = y (lo when y <= phi(lo), hi when y >= phi(hi))."""
        y = np.asarray(y, dtype=np.float64)
        lo, hi = np.full_like(y, self.lo), np.full_like(y, self.hi)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            below = self.virtual_cost(mid) < y
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    # One cost at a time, for the single-market path: the array rules on a one-element array (elementwise, so the
    # same numbers as in a batch); a prior with a closed form overrides them with Python arithmetic.

    def virtual_cost_one(self, c: float) -> float:
        """:meth:`virtual_cost` of one cost."""
        return float(self.virtual_cost(np.array([c]))[0])

    def inverse_virtual_cost_one(self, y: float) -> float:
        """:meth:`inverse_virtual_cost` of one value."""
        return float(self.inverse_virtual_cost(np.array([y]))[0])


class UniformPrior(CostPrior):
    """U[lo, hi]: F(c) = (c - lo) / (hi - lo), phi(c) = 2 max(c, lo) - lo, phi^{-1}(y) = (max(y, lo) + lo) / 2.

    Below the support phi is flat at lo (a bid below lo is read as lo); above it the closed form 2c - lo is used for
    every real c (``support_cap=False`` relies on that).
    """

    def __init__(self, lo: float, hi: float):
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"uniform cost prior needs finite lo < hi, got [{lo!r}, {hi!r}]")
        self.lo, self.hi = float(lo), float(hi)

    def cdf(self, c: FloatArray) -> FloatArray:
        return np.clip((np.asarray(c, dtype=np.float64) - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    def pdf(self, c: FloatArray) -> FloatArray:
        c = np.asarray(c, dtype=np.float64)
        return np.where((c >= self.lo) & (c <= self.hi), 1.0 / (self.hi - self.lo), 0.0)

    def virtual_cost(self, c: FloatArray) -> FloatArray:
        return 2.0 * np.maximum(c, self.lo) - self.lo

    def inverse_virtual_cost(self, y: FloatArray) -> FloatArray:
        return 0.5 * (np.maximum(y, self.lo) + self.lo)

    def virtual_cost_one(self, c: float) -> float:
        return 2.0 * max(c, self.lo) - self.lo

    def inverse_virtual_cost_one(self, y: float) -> float:
        return 0.5 * (max(y, self.lo) + self.lo)

    def __repr__(self) -> str:
        return f"UniformPrior({self.lo:g}, {self.hi:g})"


@register
class Myerson(Mechanism):
    """Myerson's optimal procurement auction with known priors (MECHANISMS.md §4)."""

    name = "myerson"
    reference = "MECHANISMS.md §4"

    def __init__(
        self,
        quality: QualityMode = "learned",
        prior_weight: float = 5.0,
        priors: CostPrior | Sequence[CostPrior] | None = None,
        support_cap: bool = True,
    ):
        """
        Args:
            quality: ``learned`` (qhat from observed scores) or ``prior`` (advertised quality forever) - the values
                v_i = qhat_i.
            prior_weight: pseudo-observations of the advertised quality in the learned estimate.
            priors: cost prior per provider (or one for all); default U[cost_range[i, 0], cost_range[i, 1]].
            support_cap: bids above the prior's support top are not eligible and payments are capped there.
        """
        self.quality = QualityEstimator(quality, prior_weight)
        self.priors_param = priors
        self.support_cap = bool(support_cap)

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        super().reset(info, n_markets, rngs)
        self.quality.reset(info, n_markets)
        N = info.n_providers
        p = self.priors_param
        if p is None:
            self.priors: list[CostPrior] = [UniformPrior(*info.cost_range[i]) for i in range(N)]
        elif isinstance(p, CostPrior):
            self.priors = [p] * N
        else:
            self.priors = list(p)
            if len(self.priors) != N:
                raise ValueError(f"myerson: {len(self.priors)} priors given for {N} providers")
        self.tops = np.array([pr.hi for pr in self.priors])
        self._tops_one = self.tops.tolist()  # the single-market path's tops
        self.n_rounds = 0
        self.n_unserved = np.zeros(n_markets)
        self.payment_sum = np.zeros(n_markets)

    @property
    def noise_dim(self) -> int:
        return self.info.n_providers

    def virtual_costs(self, bids: FloatArray) -> FloatArray:
        """[E, N] phi_i(b_i)."""
        return np.stack([pr.virtual_cost(bids[:, i]) for i, pr in enumerate(self.priors)], axis=1)

    def indices(self, bids: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] v_i - phi_i(b_i), -inf for ineligible bids."""
        idx = self.quality.qhat(group) - self.virtual_costs(bids)
        if self.support_cap:
            idx[bids > self.tops] = -np.inf
        return idx

    def reserves(self, group: IntArray) -> FloatArray:
        """[E, N] r_i = phi_i^{-1}(v_i): the highest bid i can win with alone (capped to the support top)."""
        v = self.quality.qhat(group)
        r = np.stack([pr.inverse_virtual_cost(v[:, i]) for i, pr in enumerate(self.priors)], axis=1)
        return np.minimum(r, self.tops) if self.support_cap else r

    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        self.n_rounds += 1
        idx = self.indices(bids, group)
        w = argmax_random_ties(idx, noise)
        served = pick(idx, w) > 0.0
        self.n_unserved += ~served
        target = pick(self.quality.qhat(group), w) - np.maximum(0.0, best_other(idx, w))
        payment = np.empty(w.shape[0])
        for i, pr in enumerate(self.priors):  # the winner's own inverse virtual cost
            mine = w == i
            if mine.any():
                payment[mine] = pr.inverse_virtual_cost(target[mine])
        if self.support_cap:
            payment = np.minimum(payment, self.tops[w])
        payment = np.maximum(payment, pick(bids, w))  # equal up to round-off: the threshold is never below the bid
        payment = np.where(served, payment, 0.0)
        self.payment_sum += payment
        return np.where(served, w, NO_WINNER), payment

    # One market (E = 1) on Python numbers: the rules above, term for term (the PettingZoo env's per-step path).

    def indices_one(self, bids: list[float], qhat: list[float]) -> list[float]:
        """:meth:`indices` of a single market, given its values ``qhat`` on the query's group."""
        idx = [v - pr.virtual_cost_one(b) for v, pr, b in zip(qhat, self.priors, bids)]
        if self.support_cap:
            idx = [-math.inf if b > top else i for i, b, top in zip(idx, bids, self._tops_one)]
        return idx

    def reserves_one(self, qhat: list[float]) -> list[float]:
        """:meth:`reserves` of a single market, given its values ``qhat`` on the query's group."""
        r = [pr.inverse_virtual_cost_one(v) for pr, v in zip(self.priors, qhat)]
        return [min(ri, top) for ri, top in zip(r, self._tops_one)] if self.support_cap else r

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        self.n_rounds += 1
        qhat = self.quality.qhat_one(group)
        idx = self.indices_one(bids, qhat)
        w = argmax_random_ties_one(idx, noise)
        if not idx[w] > 0.0:
            self.n_unserved[0] += 1.0
            return NO_WINNER, 0.0
        others = max((v for i, v in enumerate(idx) if i != w), default=-math.inf)
        payment = self.priors[w].inverse_virtual_cost_one(qhat[w] - max(0.0, others))
        if self.support_cap:
            payment = min(payment, self._tops_one[w])
        payment = max(payment, bids[w])
        self.payment_sum[0] += payment
        return w, payment

    def update(self, outcome: Outcome) -> None:
        self.quality.observe(outcome)

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
        return 2 * self.info.n_providers

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        """qhat_i / value_scale and the reserves r_i / value_scale on the query's group."""
        vs = self.info.value_scale
        return np.concatenate((self.quality.qhat(group) / vs, self.reserves(group) / vs), axis=1)

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        vs = self.info.value_scale
        qhat = self.quality.qhat_one(group)
        return [v / vs for v in qhat] + [r / vs for r in self.reserves_one(qhat)]

    def diagnostics(self) -> dict[str, FloatArray]:
        served = self.n_rounds - self.n_unserved
        return {
            "unserved_rate": self.n_unserved / max(1, self.n_rounds),
            "mean_payment": self.payment_sum / np.maximum(1, served),
        }

    def diagnostics_one(self) -> dict[str, float]:
        unserved = self.n_unserved.item(0)
        return {
            "unserved_rate": unserved / max(1, self.n_rounds),
            "mean_payment": self.payment_sum.item(0) / max(1.0, self.n_rounds - unserved),
        }
