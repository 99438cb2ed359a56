"""rosa: reverse self-resampling around a monotone allocation, truthful in expectation (MECHANISMS.md §5, seed 000).

Economics. Each round the platform buys at most one answer. Provider i's per-query cost c_i is private; it asks b_i.
Bids above the cap cbar (the user's reserve price; default ``MarketInfo.value_scale``, the value of a perfect answer,
so the user is never asked to pay more than that in expectation) are not eligible. Then:

1. Resampling (the mechanism's own randomness, from the ``rng`` given at reset; private to the platform): for each
   eligible provider independently, with probability 1 - mu x_i = b_i, with probability mu
   x_i = cbar - (cbar - b_i) * nu^(1 / (1 - mu)), nu ~ U[0, 1] (upward, never below b_i).
2. Allocation: any allocation rule A that is monotone (a higher own ask never wins more often, history and others
   fixed) picks the winner on the resampled asks x (the :class:`Allocation` interface). Default: LinUCB in the
   TRCM-UCB style - per provider a ridge regression of the observed score S on the query context over its past
   wins, UCB_i(x) = prior_i + theta_i . x + alpha ||x||_{V_i^-1}; the winner is argmax_i [value_scale UCB_i - x_i]
   when positive. ``greedy`` is known quality (argmax qhat_i - x_i from the advertised quality, §2), and
   ``linucb_opt`` subtracts the uniform-prior virtual cost phi_i(x_i) = 2 x_i - lo_i instead of x_i (the "OPT"
   variant of §5, still monotone).
3. Payment, user -> winner only (losers neither pay nor get paid; N_i = 1 for the winner, 0 otherwise):
   P_i = b_i N_i + (1 / mu) (cbar - b_i) N_i 1{x_i != b_i}.

Why it is truthful (*derived* in §5, checked in tests/mechanisms/test_truthful_mechanisms.py): with A's state and the
others' bids fixed, the smoothed allocation Abar(b) = P(i wins | b_i = b) is non-increasing and
E[P_i] = b Abar(b) + integral_b^cbar Abar(t) dt, Myerson's payment for Abar. So expected profit
integral_b^cbar Abar - (c - b) Abar(b) is maximized at b = c, and truthful profit (b - c) N_i + rebate >= 0 in every
realization when b_i is the realised cost (ex-post IR; in the market the honest bid is the *expected* cost of the
query, so truthful play is individually rational in expectation over the reply's length). Costs: the outcome
differs from A(b) with probability <= N mu and a rebated payment is of order cbar / mu (ex post the user may pay
more than the value; in expectation at most cbar).

Caveat: truthfulness is per round given the history. A learning allocation trains on the rounds i wins, which depend
on its bids, so a far-sighted provider could shape its future UCB (the seed's mechanism shares this; with
``greedy`` in prior mode there is no learning at all).

Public state: the allocation's per-provider index (LinUCB: UCB_i on the query / greedy: qhat_i / value_scale) and
cbar / value_scale. Diagnostics: unserved rate, the share of served rounds paid a rebate, the share of rounds whose
outcome the resampling changed, the mean payment.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from mechanisms.registry import register
from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.quality import QualityEstimator, QualityMode


class Allocation(ABC):
    """A monotone allocation rule: given asks, context and group, the winner (or NO_WINNER).

    ``choose`` must not change the rule's state and must be non-increasing in each provider's own ask (with the
    others' asks and the state fixed); an ask of +inf marks a provider that is not eligible and must not win.
    ``update`` learns from an observed outcome (learning rules); the wrapper calls it only for served rounds.
    """

    name: ClassVar[str] = ""

    def reset(self, info: MarketInfo) -> None:
        self.info = info

    @abstractmethod
    def choose(self, bids: np.ndarray, context: np.ndarray, group: int) -> int:
        """The winner on ``bids`` [N] (money), or NO_WINNER."""

    def update(self, winner: int, score: float, context: np.ndarray, group: int) -> None:
        """Learn from the winner's observed score S in [0, 1]."""

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        """[N] the rule's per-provider quality index on this query, in score units (a fraction of value_scale)."""
        return np.zeros(self.info.n_providers)


class LinUCBAllocation(Allocation):
    """TRCM-UCB style contextual allocation: argmax_i [value_scale UCB_i(x) - cost_i(b_i)] if positive.

    UCB_i(x) = m_i + theta_i . x + alpha sqrt(x' V_i^-1 x), theta_i = V_i^-1 sum (S - m_i) x over i's wins,
    V_i = ridge I + sum x x'. m_i is the advertised quality of i on the group (``prior_offset``, so the regression
    learns a correction to the public benchmark) or 0. V_i^-1 is kept with Sherman-Morrison updates: O(d^2) per win.
    cost_i(b) = b, or the uniform-prior virtual cost 2 max(b, lo_i) - lo_i on ``MarketInfo.cost_range`` with
    ``virtual`` (a bid below the support is read as its bottom, as in :mod:`mechanisms.myerson`).
    """

    name = "linucb"

    def __init__(self, alpha: float = 0.5, ridge: float = 1.0, prior_offset: bool = True, virtual: bool = False):
        if not alpha >= 0:
            raise ValueError(f"linucb: alpha must be >= 0, got {alpha!r}")
        if not ridge > 0:
            raise ValueError(f"linucb: ridge must be > 0, got {ridge!r}")
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self.prior_offset = bool(prior_offset)
        self.virtual = bool(virtual)
        if virtual:
            self.name = "linucb_opt"

    def reset(self, info: MarketInfo) -> None:
        super().reset(info)
        N, d = info.n_providers, info.context_dim
        self.v_inv = np.tile(np.eye(d) / self.ridge, (N, 1, 1))  # [N, d, d]
        self.b = np.zeros((N, d))
        self.theta = np.zeros((N, d))
        self.wins = np.zeros(N)
        self.offset = info.prior_quality if self.prior_offset else np.zeros_like(info.prior_quality)
        self.cost_lo = np.asarray(info.cost_range, dtype=float)[:, 0].copy()
        self._version = 0  # bumps on every update; keys the UCB cache
        self._cache_key: tuple[int, int] | None = None
        self._cache_ctx = np.empty(d)
        self._ucb = np.empty(N)

    def ucb(self, context: np.ndarray, group: int) -> np.ndarray:
        """[N] upper confidence bound on E[S | x] (a cached buffer: valid until the next update)."""
        key = (self._version, group)
        if key != self._cache_key or not np.array_equal(context, self._cache_ctx):
            x = np.asarray(context, dtype=float)
            vx = self.v_inv @ x  # [N, d]
            width = np.sqrt(np.maximum(vx @ x, 0.0))
            np.add(self.theta @ x, self.alpha * width, out=self._ucb)
            self._ucb += self.offset[:, group]
            self._cache_key = key
            self._cache_ctx[:] = x
        return self._ucb

    def choose(self, bids: np.ndarray, context: np.ndarray, group: int) -> int:
        cost = 2.0 * np.maximum(bids, self.cost_lo) - self.cost_lo if self.virtual else bids
        index = self.info.value_scale * self.ucb(context, group) - cost
        w = int(index.argmax())
        return w if index[w] > 0.0 else NO_WINNER

    def update(self, winner: int, score: float, context: np.ndarray, group: int) -> None:
        x = np.asarray(context, dtype=float)
        v_inv = self.v_inv[winner]
        vx = v_inv @ x
        v_inv -= np.outer(vx, vx) / (1.0 + vx @ x)  # Sherman-Morrison: (V + x x')^-1
        self.b[winner] += (score - self.offset[winner, group]) * x
        self.theta[winner] = v_inv @ self.b[winner]
        self.wins[winner] += 1.0
        self._version += 1

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        return np.clip(self.ucb(context, group), -1.0, 2.0)


class GreedyAllocation(Allocation):
    """Known quality: argmax_i [qhat_i - b_i] if >= 0 (the scoring rule of §2), qhat from the :class:`QualityEstimator`
    (advertised quality forever with ``quality="prior"``, the default; ``learned`` updates it from wins)."""

    name = "greedy"

    def __init__(self, quality: QualityMode = "prior", prior_weight: float = 5.0):
        self.quality = QualityEstimator(quality, prior_weight)

    def reset(self, info: MarketInfo) -> None:
        super().reset(info)
        self.quality.reset(info)

    def choose(self, bids: np.ndarray, context: np.ndarray, group: int) -> int:
        s = self.quality.qhat(group) - bids
        w = int(s.argmax())
        return w if s[w] >= 0.0 else NO_WINNER

    def update(self, winner: int, score: float, context: np.ndarray, group: int) -> None:
        self.quality.observe(winner, group, score)

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        return self.quality.qhat(group) / self.info.value_scale


ALLOCATIONS = ("linucb", "linucb_opt", "greedy")


@register
class Rosa(Mechanism):
    """Reverse self-resampling wrapper (MECHANISMS.md §5) around a monotone :class:`Allocation`."""

    name = "rosa"
    reference = "MECHANISMS.md §5"

    def __init__(self, mu: float = 0.1, cbar: float | None = None, allocation: str | Allocation = "linucb",
                 alpha: float = 0.5, ridge: float = 1.0, prior_offset: bool = True,
                 quality: QualityMode = "prior", prior_weight: float = 5.0):
        """
        Args:
            mu: resampling probability per provider, in (0, 1). Outcomes differ from the plain allocation with
                probability <= N mu; rebates scale like 1 / mu.
            cbar: bid cap / reserve (money); default ``value_scale``.
            allocation: ``linucb``, ``linucb_opt``, ``greedy`` or an :class:`Allocation` instance.
            alpha, ridge, prior_offset: LinUCB exploration width, ridge penalty, regression on the advertised quality
                residual (``linucb`` / ``linucb_opt``).
            quality, prior_weight: the quality estimator of ``greedy``.
        """
        if not 0.0 < mu < 1.0:
            raise ValueError(f"rosa: mu must be in (0, 1), got {mu!r}")
        if cbar is not None and not cbar > 0:
            raise ValueError(f"rosa: cbar must be > 0, got {cbar!r}")
        if isinstance(allocation, Allocation):
            self.allocation = allocation
        elif allocation in ("linucb", "linucb_opt"):
            self.allocation = LinUCBAllocation(alpha, ridge, prior_offset, virtual=allocation == "linucb_opt")
        elif allocation == "greedy":
            self.allocation = GreedyAllocation(quality, prior_weight)
        else:
            raise ValueError(f"rosa: allocation must be one of {ALLOCATIONS} or an Allocation, got {allocation!r}")
        self.mu = float(mu)
        self.cbar_param = cbar
        self._exponent = 1.0 / (1.0 - self.mu)

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        self.allocation.reset(info)
        self.cbar = float(self.cbar_param if self.cbar_param is not None else info.value_scale)
        N = info.n_providers
        self._x = np.empty(N)
        self._b = np.empty(N)
        self.resampled = np.zeros(N, dtype=bool)  # last round: whose ask was resampled
        self.last_asks = self._x  # last round's resampled asks (inf = not eligible)
        self.n_rounds = 0
        self.n_unserved = 0
        self.n_rebates = 0
        self.n_changed = 0
        self.payment_sum = 0.0

    def resample(self, bids: np.ndarray) -> np.ndarray:
        """Resampled asks x (a reused buffer; +inf for bids above cbar); sets ``self.resampled``.

        Always consumes 2N uniforms of ``self.rng`` (coins then nu), so runs with different bids share randomness.
        """
        N = bids.shape[0]
        u = self.rng.random(2 * N)
        eligible = bids <= self.cbar
        np.logical_and(u[:N] < self.mu, eligible, out=self.resampled)
        x = self._x
        np.copyto(x, bids)
        r = self.resampled
        if r.any():
            x[r] = self.cbar - (self.cbar - bids[r]) * u[N:][r] ** self._exponent
        x[~eligible] = np.inf
        return x

    def allocate(self, bids: np.ndarray, context: np.ndarray, group: int) -> tuple[int, float]:
        self.n_rounds += 1
        x = self.resample(bids)
        w = self.allocation.choose(x, context, group)
        # Diagnostic only: would the plain rule A(b) have picked someone else?
        np.copyto(self._b, bids)
        self._b[bids > self.cbar] = np.inf
        if self.allocation.choose(self._b, context, group) != w:
            self.n_changed += 1
        if w == NO_WINNER:
            self.n_unserved += 1
            return NO_WINNER, 0.0
        b_w = float(bids[w])
        payment = b_w
        if self.resampled[w]:
            payment += (self.cbar - b_w) / self.mu
            self.n_rebates += 1
        self.payment_sum += payment
        return w, payment

    def update(self, winner, score, input_tokens, reported_output_tokens, payment, context, group) -> None:
        if winner != NO_WINNER:
            self.allocation.update(winner, score, context, group)

    @property
    def public_state_dim(self) -> int:
        return self.info.n_providers + 1

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        out = np.empty(self.info.n_providers + 1)
        out[:-1] = self.allocation.public_state(context, group)
        out[-1] = self.cbar / self.info.value_scale
        return out

    def diagnostics(self) -> dict[str, float]:
        served = self.n_rounds - self.n_unserved
        return {"unserved_rate": self.n_unserved / max(1, self.n_rounds),
                "rebate_rate": self.n_rebates / max(1, served),
                "resample_changed_rate": self.n_changed / max(1, self.n_rounds),
                "mean_payment": self.payment_sum / max(1, served)}
