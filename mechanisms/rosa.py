"""rosa: reverse self-resampling around a monotone allocation, truthful in expectation (MECHANISMS.md §5, seed 000).

Economics. Each round the platform buys at most one answer. Provider i's per-query cost c_i is private; it asks b_i.
Bids above the cap cbar (the user's reserve price; default ``MarketInfo.value_scale``, the value of a perfect answer,
so the user is never asked to pay more than that in expectation) are not eligible. Then:

1. Resampling (the mechanism's own randomness, the round's ``noise``; private to the platform): for each
   eligible provider independently, with probability 1 - mu x_i = b_i, with probability mu
   x_i = cbar - (cbar - b_i) * nu^(1 / (1 - mu)), nu ~ U[0, 1] (upward, never below b_i).
2. Allocation: any allocation rule A that is monotone (a higher own ask never wins more often, history and others
   fixed) picks the winner on the resampled asks x (the :class:`Allocation` interface). Default: LinUCB in the
   TRCM-UCB style - per provider a ridge regression of the observed score S on the query context over its past
   wins, UCB_i(x) = prior_i + theta_i . x + alpha ||x||_{V_i^-1}; the winner is argmax_i [value_scale UCB_i - x_i]
   when positive (ties broken at random). ``greedy`` is known quality (argmax qhat_i - x_i from the advertised quality,
   §2), and
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

import math
from abc import ABC, abstractmethod
from typing import ClassVar

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
    pick,
)
from mechanisms.quality import QualityEstimator, QualityMode
from mechanisms.registry import register


class Allocation(ABC):
    """A monotone allocation rule for E markets: given asks, context and group, each market's winner (or NO_WINNER).

    ``choose`` must not change the rule's state and must be non-increasing in each provider's own ask (with the
    others' asks and the state fixed); an ask of +inf marks a provider that is not eligible and must not win.
    ``update`` learns from an observed outcome (learning rules); it is called with every round's outcome.
    """

    name: str = ""  # a class default; a variant may rename its instance (linucb_opt)
    TRANSIENT: ClassVar[tuple[str, ...]] = ("info",)  # the public facts, rebuilt at reset
    CACHES: ClassVar[tuple[str, ...]] = ("_cached", "_cached_one")  # LinUCB's index of the current query

    def reset(self, info: MarketInfo, n_markets: int) -> None:
        self.info = info
        self.n_markets = n_markets
        self._markets = np.arange(n_markets)

    @abstractmethod
    def choose(self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray) -> IntArray:
        """[E] the winner on ``bids`` [E, N] (money), or NO_WINNER; ``noise`` [E, N] breaks ties."""

    def update(self, outcome: Outcome) -> None:
        """Learn from the winners' observed scores S in [0, 1]."""

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] the rule's per-provider quality index on this query, in score units (a fraction of value_scale)."""
        return np.zeros((context.shape[0], self.info.n_providers))

    # One market (E = 1) with Python numbers: the PettingZoo env's per-step path. The defaults run the batched rule
    # with E = 1; a rule may override them with the same rule on scalars.

    def choose_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> int:
        """:meth:`choose` of a single market."""
        return int(self.choose(np.array([bids]), context[None], np.array([group]), np.array([noise]))[0])

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
        """:meth:`update` of a single market (the arguments of :meth:`Mechanism.update_one`)."""
        self.update(Outcome.one(winner, score, input_tokens, reported_tokens, payment, context, group))

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        """:meth:`public_state` of a single market."""
        state: list[float] = self.public_state(context[None], np.array([group]))[0].tolist()
        return state


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
        if not (alpha >= 0 and np.isfinite(alpha)):
            raise ValueError(f"linucb: alpha must be a finite number >= 0, got {alpha!r}")
        if not (ridge > 0 and np.isfinite(ridge)):
            raise ValueError(f"linucb: ridge must be a finite number > 0, got {ridge!r}")
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self.prior_offset = bool(prior_offset)
        self.virtual = bool(virtual)
        if virtual:
            self.name = "linucb_opt"

    def reset(self, info: MarketInfo, n_markets: int) -> None:
        super().reset(info, n_markets)
        E, N, d = n_markets, info.n_providers, info.context_dim
        self.v_inv = np.broadcast_to(np.eye(d) / self.ridge, (E, N, d, d)).copy()
        self.b = np.zeros((E, N, d))
        self.theta = np.zeros((E, N, d))
        self.wins = np.zeros((E, N))
        self.offset = (info.prior_quality if self.prior_offset else np.zeros_like(info.prior_quality)).T  # [G, N]
        self.cost_lo = np.asarray(info.cost_range, dtype=float)[:, 0].copy()
        self._cost_lo_one = self.cost_lo.tolist()
        self._cached: tuple[FloatArray, FloatArray, FloatArray] | None = None  # (context, group, ucb) of this round
        self._cached_one: tuple[tuple[bytes, int], list[float]] | None = None  # E = 1: ((context, group), ucb)

    def _ucb(self, context: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] upper confidence bound on E[S | x], computed."""
        x = np.asarray(context, dtype=float)
        vx = np.matmul(self.v_inv, x[:, None, :, None])[..., 0]  # [E, N, d]
        width = np.sqrt(np.maximum(np.einsum("end,ed->en", vx, x), 0.0))
        ucb: FloatArray = np.einsum("end,ed->en", self.theta, x) + self.alpha * width + self.offset.take(group, axis=0)
        return ucb

    def ucb(self, context: FloatArray, group: IntArray) -> FloatArray:
        """[E, N] upper confidence bound on E[S | x] (cached until the next update or another query)."""
        c = self._cached
        if c is None or not (np.array_equal(c[0], context) and np.array_equal(c[1], group)):
            ucb = self._ucb(context, group)
            self._cached = c = (np.array(context, copy=True), np.array(group, copy=True), ucb)
        return c[2]

    def ucb_one(self, context: FloatArray, group: int) -> list[float]:
        """:meth:`ucb` of a single market (the batched computation with E = 1, cached as a list)."""
        key = (context.tobytes(), group)
        if self._cached_one is None or self._cached_one[0] != key:
            self._cached_one = (key, self._ucb(context[None], np.array([group]))[0].tolist())
        return self._cached_one[1]

    def costs_one(self, bids: list[float]) -> list[float]:
        """cost_i(b_i) of a single market (the bids, or the uniform-prior virtual costs with ``virtual``)."""
        if not self.virtual:
            return bids
        return [2.0 * max(b, lo) - lo for b, lo in zip(bids, self._cost_lo_one)]

    def choose(self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray) -> IntArray:
        cost = 2.0 * np.maximum(bids, self.cost_lo) - self.cost_lo if self.virtual else bids
        index = self.info.value_scale * self.ucb(context, group) - cost
        w = argmax_random_ties(index, noise)
        return np.where(pick(index, w) > 0.0, w, NO_WINNER)

    def choose_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> int:
        vs = self.info.value_scale
        index = [vs * u - c for u, c in zip(self.ucb_one(context, group), self.costs_one(bids))]
        w = argmax_random_ties_one(index, noise)
        return w if index[w] > 0.0 else NO_WINNER

    def update(self, outcome: Outcome) -> None:
        e = np.flatnonzero(outcome.served)
        if e.size == 0:
            return
        N = self.b.shape[1]
        w = outcome.winner[e]
        residual = outcome.score.take(e) - self.offset[outcome.group.take(e), w]
        self._learn(e * N + w, outcome.context.take(e, axis=0), residual)

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
            self._learn(np.array([winner]), context[None], np.array([score - self.offset.item(group, winner)]))

    def _learn(self, cell: IntArray, context: FloatArray, residual: FloatArray) -> None:
        """Add the observed residuals S - m_i [S] on the contexts [S, d] to the regressions of the (market, winner)
        ``cell`` [S] (indices into the flattened [E * N] leading axes)."""
        E, N, d = self.b.shape
        x = np.asarray(context, dtype=float)  # [S, d]
        v_inv = self.v_inv.reshape(E * N, d, d).take(cell, axis=0)  # [S, d, d]
        vx = np.matmul(v_inv, x[..., None])[..., 0]
        v_inv -= vx[:, :, None] * vx[:, None, :] / (1.0 + np.einsum("sd,sd->s", vx, x))[:, None, None]
        self.v_inv.reshape(E * N, d, d)[cell] = v_inv  # Sherman-Morrison: (V + x x')^-1
        b = self.b.reshape(E * N, d)
        b[cell] += residual[:, None] * x
        self.theta.reshape(E * N, d)[cell] = np.matmul(v_inv, b[cell][..., None])[..., 0]
        self.wins.reshape(-1)[cell] += 1.0
        self._cached = self._cached_one = None

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        return np.clip(self.ucb(context, group), -1.0, 2.0)

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        return [min(max(u, -1.0), 2.0) for u in self.ucb_one(context, group)]


class GreedyAllocation(Allocation):
    """Known quality: argmax_i [qhat_i - b_i] if >= 0 (the scoring rule of §2), qhat from the :class:`QualityEstimator`
    (advertised quality forever with ``quality="prior"``, the default; ``learned`` updates it from wins)."""

    name = "greedy"

    def __init__(self, quality: QualityMode = "prior", prior_weight: float = 5.0):
        self.quality = QualityEstimator(quality, prior_weight)

    def reset(self, info: MarketInfo, n_markets: int) -> None:
        super().reset(info, n_markets)
        self.quality.reset(info, n_markets)

    def choose(self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray) -> IntArray:
        s = self.quality.qhat(group) - bids
        w = argmax_random_ties(s, noise)
        return np.where(pick(s, w) >= 0.0, w, NO_WINNER)

    def choose_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> int:
        s = [q - b for q, b in zip(self.quality.qhat_one(group), bids)]
        w = argmax_random_ties_one(s, noise)
        return w if s[w] >= 0.0 else NO_WINNER

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

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        return self.quality.mean_score(group)

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        return self.quality.mean_score_one(group)


ALLOCATIONS = ("linucb", "linucb_opt", "greedy")


@register
class Rosa(Mechanism):
    """Reverse self-resampling wrapper (MECHANISMS.md §5) around a monotone :class:`Allocation`."""

    name = "rosa"
    reference = "MECHANISMS.md §5"

    def __init__(
        self,
        mu: float = 0.1,
        cbar: float | None = None,
        allocation: str | Allocation = "linucb",
        alpha: float = 0.5,
        ridge: float = 1.0,
        prior_offset: bool = True,
        quality: QualityMode = "prior",
        prior_weight: float = 5.0,
    ):
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
        if cbar is not None and not (cbar > 0 and np.isfinite(cbar)):
            raise ValueError(f"rosa: cbar must be a finite number > 0, got {cbar!r}")
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

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        super().reset(info, n_markets, rngs)
        self.allocation.reset(info, n_markets)
        self.cbar = float(self.cbar_param if self.cbar_param is not None else info.value_scale)
        self.resampled = np.zeros((n_markets, info.n_providers), dtype=bool)  # last round: whose ask was resampled
        self.last_asks = np.zeros((n_markets, info.n_providers))  # last round's resampled asks (inf = not eligible)
        self.n_rounds = 0
        self.n_unserved = np.zeros(n_markets)
        self.n_rebates = np.zeros(n_markets)
        self.n_changed = np.zeros(n_markets)
        self.payment_sum = np.zeros(n_markets)

    @property
    def noise_dim(self) -> int:
        """Per provider: the resampling coin, nu, and a tie-break priority."""
        return 3 * self.info.n_providers

    def resample(self, bids: FloatArray, noise: FloatArray) -> FloatArray:
        """[E, N] resampled asks x (+inf for bids above cbar); sets ``self.resampled``. ``noise`` [E, 2N]: the coins,
        then nu."""
        N = bids.shape[1]
        eligible = bids <= self.cbar
        self.resampled = (noise[:, :N] < self.mu) & eligible
        x = np.where(self.resampled, self.cbar - (self.cbar - bids) * noise[:, N : 2 * N] ** self._exponent, bids)
        x[~eligible] = np.inf
        self.last_asks = x
        return x

    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        self.n_rounds += 1
        N = bids.shape[1]
        x = self.resample(bids, noise)
        ties = noise[:, 2 * N :]
        w = self.allocation.choose(x, context, group, ties)
        # Diagnostic only: would the plain rule A(b) have picked someone else?
        plain = self.allocation.choose(np.where(bids <= self.cbar, bids, np.inf), context, group, ties)
        self.n_changed += plain != w
        served = w != NO_WINNER
        self.n_unserved += ~served
        ws = np.maximum(w, 0)
        b_w = pick(bids, ws)
        rebate = pick(self.resampled, ws) & served
        payment = np.where(served, b_w + np.where(rebate, (self.cbar - b_w) / self.mu, 0.0), 0.0)
        self.n_rebates += rebate
        self.payment_sum += payment
        return w, payment

    def update(self, outcome: Outcome) -> None:
        self.allocation.update(outcome)

    # One market (E = 1) on Python numbers: the rules above, term for term (the PettingZoo env's per-step path).

    def resample_one(self, bids: list[float], noise: list[float]) -> list[float]:
        """:meth:`resample` of a single market."""
        N, cbar = len(bids), self.cbar
        resampled = [coin < self.mu and b <= cbar for coin, b in zip(noise[:N], bids)]
        x = [
            (cbar - (cbar - b) * float(np.power(nu, self._exponent)) if r else b) if b <= cbar else math.inf
            for b, r, nu in zip(bids, resampled, noise[N : 2 * N])
        ]
        self.resampled, self.last_asks = np.array([resampled]), np.array([x])
        return x

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        self.n_rounds += 1
        N, cbar = len(bids), self.cbar
        x = self.resample_one(bids, noise)
        ties = noise[2 * N :]
        w = self.allocation.choose_one(x, context, group, ties)
        # Diagnostic only: would the plain rule A(b) have picked someone else?
        plain = self.allocation.choose_one([b if b <= cbar else math.inf for b in bids], context, group, ties)
        if plain != w:
            self.n_changed[0] += 1.0
        if w == NO_WINNER:
            self.n_unserved[0] += 1.0
            return NO_WINNER, 0.0
        b_w = bids[w]
        rebate = self.resampled.item(0, w)
        payment = b_w + ((cbar - b_w) / self.mu if rebate else 0.0)
        self.n_rebates[0] += rebate
        self.payment_sum[0] += payment
        return w, payment

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
        self.allocation.update_one(winner, score, input_tokens, reported_tokens, payment, context, group)

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        return [*self.allocation.public_state_one(context, group), self.cbar / self.info.value_scale]

    @property
    def public_state_dim(self) -> int:
        return self.info.n_providers + 1

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        out = np.empty((context.shape[0], self.info.n_providers + 1))
        out[:, :-1] = self.allocation.public_state(context, group)
        out[:, -1] = self.cbar / self.info.value_scale
        return out

    def diagnostics(self) -> dict[str, FloatArray]:
        served = self.n_rounds - self.n_unserved
        return {
            "unserved_rate": self.n_unserved / max(1, self.n_rounds),
            "rebate_rate": self.n_rebates / np.maximum(1, served),
            "resample_changed_rate": self.n_changed / max(1, self.n_rounds),
            "mean_payment": self.payment_sum / np.maximum(1, served),
        }

    def diagnostics_one(self) -> dict[str, float]:
        rounds, unserved = max(1, self.n_rounds), self.n_unserved.item(0)
        served = max(1.0, self.n_rounds - unserved)
        return {
            "unserved_rate": unserved / rounds,
            "rebate_rate": self.n_rebates.item(0) / served,
            "resample_changed_rate": self.n_changed.item(0) / rounds,
            "mean_payment": self.payment_sum.item(0) / served,
        }
