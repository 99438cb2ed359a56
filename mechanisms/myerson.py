"""myerson: optimal reverse (procurement) auction with known cost priors (MECHANISMS.md §4, checked against §8).

Economics. Each round the user (through the platform) buys one answer. Provider i's per-query cost c_i is private;
the platform knows only its prior F_i (by default uniform on ``MarketInfo.cost_range[i]``, the public range of
per-query costs of i's type over every model on its menu: a provider that may secretly serve a cheaper model may also
have that model's cost) and its value v_i = qhat_i for the query (the platform's quality estimate, §2: learned
from observed scores, or the advertised prior with ``quality="prior"``). With virtual cost
phi_i(c) = c + F_i(c) / f_i(c) (increasing for a regular prior; 2c - lo for U[lo, hi]):

- allocation: w = argmax_i [v_i - phi_i(b_i)] if that is positive, else nobody is served;
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

from collections.abc import Sequence

import numpy as np

from mechanisms.registry import register
from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.quality import QualityEstimator, QualityMode


class CostPrior:
    """A provider's per-query cost distribution on [lo, hi] as the platform believes it (must be regular:
    :meth:`virtual_cost` increasing). Subclasses give ``cdf`` and ``pdf``; the default inverse virtual cost is a
    bisection on the support (override it for speed when a closed form exists)."""

    lo: float
    hi: float

    def cdf(self, c: float) -> float:
        raise NotImplementedError

    def pdf(self, c: float) -> float:
        raise NotImplementedError

    def virtual_cost(self, c: float) -> float:
        """phi(c) = c + F(c) / f(c), with a cost below the support read as the support's bottom."""
        c = max(c, self.lo)
        return c + self.cdf(c) / self.pdf(c)

    def inverse_virtual_cost(self, y: float) -> float:
        """The cost c in [lo, hi] with phi(c) = y (lo when y <= phi(lo), hi when y >= phi(hi))."""
        lo, hi = self.lo, self.hi
        if y <= self.virtual_cost(lo):
            return lo
        if y >= self.virtual_cost(hi):
            return hi
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self.virtual_cost(mid) < y:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)


class UniformPrior(CostPrior):
    """U[lo, hi]: F(c) = (c - lo) / (hi - lo), phi(c) = 2 max(c, lo) - lo, phi^{-1}(y) = (max(y, lo) + lo) / 2.

    Below the support phi is flat at lo (a bid below lo is read as lo); above it the closed form 2c - lo is used for
    every real c (``support_cap=False`` relies on that).
    """

    def __init__(self, lo: float, hi: float):
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"uniform cost prior needs finite lo < hi, got [{lo!r}, {hi!r}]")
        self.lo, self.hi = float(lo), float(hi)

    def cdf(self, c: float) -> float:
        return min(1.0, max(0.0, (c - self.lo) / (self.hi - self.lo)))

    def pdf(self, c: float) -> float:
        return 1.0 / (self.hi - self.lo) if self.lo <= c <= self.hi else 0.0

    def virtual_cost(self, c: float) -> float:
        return 2.0 * max(c, self.lo) - self.lo

    def inverse_virtual_cost(self, y: float) -> float:
        return 0.5 * (max(y, self.lo) + self.lo)

    def __repr__(self) -> str:
        return f"UniformPrior({self.lo:g}, {self.hi:g})"


@register
class Myerson(Mechanism):
    """Myerson's optimal procurement auction with known priors (MECHANISMS.md §4)."""

    name = "myerson"
    reference = "MECHANISMS.md §4"

    def __init__(self, quality: QualityMode = "learned", prior_weight: float = 5.0,
                 priors: CostPrior | Sequence[CostPrior] | None = None, support_cap: bool = True):
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

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.quality.reset(info)
        N = info.n_providers
        p = self.priors_param
        if p is None:
            self.priors = [UniformPrior(*info.cost_range[i]) for i in range(N)]
        elif isinstance(p, CostPrior):
            self.priors = [p] * N
        else:
            self.priors = list(p)
            if len(self.priors) != N:
                raise ValueError(f"myerson: {len(self.priors)} priors given for {N} providers")
        self.tops = np.array([pr.hi for pr in self.priors])
        self._index = np.empty(N)
        self.n_rounds = 0
        self.n_unserved = 0
        self.payment_sum = 0.0

    def virtual_costs(self, bids: np.ndarray) -> np.ndarray:
        """[N] phi_i(b_i) (a reused buffer)."""
        out = self._index
        for i, pr in enumerate(self.priors):
            out[i] = pr.virtual_cost(float(bids[i]))
        return out

    def indices(self, bids: np.ndarray, group: int) -> np.ndarray:
        """[N] v_i - phi_i(b_i), -inf for ineligible bids (a reused buffer)."""
        idx = self.virtual_costs(bids)
        np.subtract(self.quality.qhat(group), idx, out=idx)
        if self.support_cap:
            idx[bids > self.tops] = -np.inf
        return idx

    def reserves(self, group: int) -> np.ndarray:
        """[N] r_i = phi_i^{-1}(v_i): the highest bid i can win with alone (capped to the support top)."""
        v = self.quality.qhat(group)
        r = np.array([pr.inverse_virtual_cost(float(v[i])) for i, pr in enumerate(self.priors)])
        return np.minimum(r, self.tops) if self.support_cap else r

    def allocate(self, bids: np.ndarray, context: np.ndarray, group: int) -> tuple[int, float]:
        self.n_rounds += 1
        idx = self.indices(bids, group)
        w = int(idx.argmax())
        if not idx[w] > 0.0:
            self.n_unserved += 1
            return NO_WINNER, 0.0
        if idx.shape[0] > 1:
            saved = idx[w]
            idx[w] = -np.inf
            rival = max(0.0, float(idx.max()))
            idx[w] = saved
        else:
            rival = 0.0
        v_w = float(self.quality.qhat(group)[w])
        payment = self.priors[w].inverse_virtual_cost(v_w - rival)
        if self.support_cap:
            payment = min(payment, float(self.tops[w]))
        payment = max(payment, float(bids[w]))  # equal up to round-off: the threshold is never below the bid
        self.payment_sum += payment
        return w, payment

    def update(self, winner, score, input_tokens, reported_output_tokens, payment, context, group) -> None:
        if winner != NO_WINNER:
            self.quality.observe(winner, group, score)

    @property
    def public_state_dim(self) -> int:
        return 2 * self.info.n_providers

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        """qhat_i / value_scale and the reserves r_i / value_scale on the query's group."""
        vs = self.info.value_scale
        return np.concatenate((self.quality.qhat(group) / vs, self.reserves(group) / vs))

    def diagnostics(self) -> dict[str, float]:
        served = self.n_rounds - self.n_unserved
        return {"unserved_rate": self.n_unserved / max(1, self.n_rounds),
                "mean_payment": self.payment_sum / max(1, served)}
