"""ucb_myerson: seed 001's UCB quality learning + reverse Myerson selection with a reserve (MECHANISMS.md §3).

Economics. Each round the user (through the platform) buys one answer; provider i's cost is private, it asks b_i.
For every provider whose bid is at most the reserve r (the user's price cap) the platform computes
    index_i = u_i - phi_i(b_i),  u_i = mean observed net value of i + c * value_scale * sqrt(ln t / n_i),
    phi_i(b) = b + F_i(b) / f_i(b),
with F_i, f_i the empirical CDF and density of i's *own past bids* (a histogram on [0, r] smoothed toward the
uniform prior with ``prior_weight`` pseudo-bids). Untried providers are chosen first (cheapest ask first; ties in
the index or the ask are broken at random). If every bid exceeds r the round is skipped. The user pays the winner

    P_w = min(r, second-lowest bid among all N bids)      (``payment="second_lowest"``, the default)

and the winner's mean is updated with the observed *net* value V - P_w, V = value_scale * S (``value="net"``). This
is the rule of the seed's own code (``calculate_payment`` and ``update_model_stats`` in its ``added_payment.py``),
MECHANISMS.md §3: with two providers a winner that is the higher bidder is paid its own bid; with three or more a
winner with a high index but a high ask can be paid less than its ask (the rule is not individually rational then).

Named variants (not the published rule): ``payment="next_higher"`` pays min(r, the lowest other bid at or above the
winner's, r when there is none), the threshold-like price of an earlier version; ``value="gross"`` learns the mean
of V instead of V - P; ``ironed=True`` replaces phi_i by its monotone envelope (the empirical F/f can drop at a bin
edge where the density of past bids rises, which lets a higher ask win where a lower one loses; the envelope,
a running maximum over lower bids, keeps the allocation monotone in the own bid).

It is not truthful: phi_i depends on i's own bid history, which the provider controls, and the payment depends on
the provider's own bid whenever it is the second-lowest.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

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
    row_any,
    row_min,
)
from mechanisms.registry import register

PaymentRule = Literal["second_lowest", "next_higher"]
ValueSignal = Literal["net", "gross"]
EDGE_TOL = 1e-9  # bin widths: a bid this close below a histogram edge is binned as on it (float rounding)


@register
class UCBMyerson(Mechanism):
    name = "ucb_myerson"
    reference = "MECHANISMS.md §3"
    # The single-market path's copy of the histogram and its coming index, rebuilt from the arrays when None.
    CACHES: ClassVar[tuple[str, ...]] = ("_hist_one", "_ucb_next_one")

    def __init__(
        self,
        reserve: float | None = None,
        exploration: float = 0.5,
        bins: int = 20,
        prior_weight: float = 2.0,
        ironed: bool = False,
        payment: PaymentRule = "second_lowest",
        value: ValueSignal = "net",
    ):
        """
        Args:
            reserve: r, the user's price cap in money units (default: the best advertised expected value,
                value_scale x the largest mean prior quality of a declared model).
            exploration: UCB constant c, in units of value_scale.
            bins: histogram bins of the empirical bid distribution on [0, r].
            prior_weight: pseudo-bids of the uniform prior that smooth F and f.
            ironed: use the monotone envelope of the empirical virtual cost (a variant; see the module docstring).
            payment: ``second_lowest`` (published) or ``next_higher`` (a variant).
            value: the UCB mean learns the ``net`` value V - P (published) or the ``gross`` value V.
        """
        if reserve is not None and not (reserve > 0 and np.isfinite(reserve)):
            raise ValueError(f"ucb_myerson: reserve must be a finite number > 0, got {reserve!r}")
        if not (exploration >= 0 and np.isfinite(exploration)):
            raise ValueError(f"ucb_myerson: exploration must be a finite number >= 0, got {exploration!r}")
        if bins < 2:
            raise ValueError(f"ucb_myerson: bins must be >= 2, got {bins!r}")
        if not (prior_weight > 0 and np.isfinite(prior_weight)):
            raise ValueError(f"ucb_myerson: prior_weight must be a finite number > 0, got {prior_weight!r}")
        if payment not in ("second_lowest", "next_higher"):
            raise ValueError(f"ucb_myerson: payment must be 'second_lowest' or 'next_higher', got {payment!r}")
        if value not in ("net", "gross"):
            raise ValueError(f"ucb_myerson: value must be 'net' or 'gross', got {value!r}")
        self.reserve_param = reserve
        self.exploration = float(exploration)
        self.bins = int(bins)
        self.prior_weight = float(prior_weight)
        self.ironed = bool(ironed)
        self.payment_rule = payment
        self.value_signal = value

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        super().reset(info, n_markets, rngs)
        E, N = n_markets, info.n_providers
        best_advertised = info.value_scale * float(info.prior_quality.mean(axis=1).max())
        self.reserve = float(self.reserve_param if self.reserve_param is not None else best_advertised)
        if not self.reserve > 0:  # the default is 0 when every provider advertises quality 0
            raise ValueError(
                f"ucb_myerson: the default reserve (value_scale x best advertised quality) is "
                f"{self.reserve!r}; pass a reserve > 0"
            )
        self.width = self.reserve / self.bins
        self.edges = self.width * np.arange(1, self.bins + 1)  # right edge of every bin
        self.hist = np.zeros((E, N, self.bins))
        self.n_bids = np.zeros((E, N))
        self.wins = np.zeros((E, N))
        self.value_sum = np.zeros((E, N))
        self.t = 0
        self.n_skipped = np.zeros(E)
        self._cells = (np.arange(E * N) * self.bins).reshape(E, N)  # first bin of every (market, provider)
        self._prior_density = self.prior_weight / self.reserve  # the uniform prior's pseudo-bids per unit of bid
        self._ucb_next: FloatArray | None = None  # the index of round t + 1, computed for the public state
        self._hist_one: list[list[float]] | None = None  # E = 1: hist[0] as lists
        self._ucb_next_one: list[float] | None = None  # E = 1: _ucb_next[0] as a list

    @property
    def noise_dim(self) -> int:
        return self.info.n_providers

    def _bin(self, bids: FloatArray) -> tuple[FloatArray, IntArray]:
        """Bids clipped to [0, r] and their histogram bin [k w, (k + 1) w). A bid on an edge starts the bin above it
        whatever the rounding of x / w (0.15 / 0.05 = 2.9999999999999996): bids within EDGE_TOL bin widths below an
        edge count as on it."""
        x = np.minimum(np.maximum(bids, 0.0), self.reserve)
        k = np.minimum(np.floor(x / self.width + EDGE_TOL).astype(np.int64), self.bins - 1)
        return x, k

    def virtual_cost(self, bids: FloatArray) -> FloatArray:
        """[E, N] phi_i(b_i) = b_i + F_i(b_i) / f_i(b_i) from each provider's smoothed empirical bid distribution
        (monotone envelope when ``ironed``)."""
        x, k = self._bin(bids)
        cum = np.cumsum(self.hist, axis=2)
        cell = self._cells + k  # (market, provider, bin) in the flattened histogram
        own = self.hist.reshape(-1).take(cell)
        below = cum.reshape(-1).take(cell) - own
        # F/f: the common normalisation (n_bids + prior_weight) cancels; (x / width - k) is the share of the bid's
        # own bin lying below it.
        cdf = self._prior_density * x + below + np.maximum(x / self.width - k, 0.0) * own
        pdf = self._prior_density + own / self.width
        phi = bids + cdf / pdf
        if self.ironed:
            # phi rises inside a bin (slope 2) and can only drop at an edge: lift it to the largest left limit
            # phi(e^-) over the edges below the bid.
            left = self.edges + (
                (self._prior_density * self.edges + cum) / (self._prior_density + self.hist / self.width)
            )
            envelope = np.maximum.accumulate(left, axis=2)  # [E, N, bins]: envelope up to each bin's right edge
            lifted = envelope.reshape(-1).take(self._cells + np.maximum(k - 1, 0))
            phi = np.where(k > 0, np.maximum(phi, lifted), phi)
        return phi

    def ucb(self, t: int | None = None) -> FloatArray:
        """[E, N] optimistic (net) value index at round ``t`` (default: the current one); inf for providers that never
        won."""
        n = np.maximum(self.wins, 1.0)
        bonus = self.exploration * self.info.value_scale * np.sqrt(np.log(max(self.t if t is None else t, 1)) / n)
        return np.where(self.wins == 0, np.inf, self.value_sum / n + bonus)

    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        self.t += 1
        ucb = self._ucb_next if self._ucb_next is not None else self.ucb()
        self._ucb_next = None
        index = ucb - self.virtual_cost(bids)
        _, k = self._bin(bids)
        hist, cell = self.hist.reshape(-1), self._cells + k
        hist.put(cell, hist.take(cell) + 1.0)  # record the bids (each (market, provider) once)
        self.n_bids += 1.0
        self._hist_one = None
        eligible = bids <= self.reserve
        served = row_any(eligible)
        self.n_skipped += ~served
        untried = eligible & (self.wins == 0)
        # Untried providers first, cheapest ask first; otherwise the best index.
        w = np.where(
            row_any(untried),
            argmax_random_ties(np.where(untried, -bids, -np.inf), noise),
            argmax_random_ties(np.where(eligible, index, -np.inf), noise),
        )
        if self.payment_rule == "second_lowest":
            second = (
                -best_other(-bids, argmax_random_ties(-bids, np.zeros_like(bids))) if bids.shape[1] > 1 else bids[:, 0]
            )
            payment = np.minimum(self.reserve, second)
        else:
            own = pick(bids, w)[:, None]
            others = (bids >= own) & (np.arange(bids.shape[1]) != w[:, None])
            payment = np.minimum(self.reserve, row_min(np.where(others, bids, np.inf)))
        return np.where(served, w, NO_WINNER), np.where(served, payment, 0.0)

    def update(self, outcome: Outcome) -> None:
        self._ucb_next = self._ucb_next_one = None
        e = np.flatnonzero(outcome.served)
        if e.size:
            cell = e * self.info.n_providers + outcome.winner[e]
            value = self.info.value_scale * outcome.score[e]
            self.wins.reshape(-1)[cell] += 1.0
            self.value_sum.reshape(-1)[cell] += value - outcome.payment[e] if self.value_signal == "net" else value

    # One market (E = 1) on Python numbers: the rules above, term for term (the PettingZoo env's per-step path).

    def ucb_one(self, t: int) -> list[float]:
        """:meth:`ucb` of a single market at round ``t``."""
        log_t = float(np.log(max(t, 1)))  # numpy's log, as in the batched rule
        scale = self.exploration * self.info.value_scale
        return [
            math.inf if n == 0 else v / n + scale * math.sqrt(log_t / n)
            for n, v in zip(self.wins[0].tolist(), self.value_sum[0].tolist())
        ]

    def virtual_cost_one(self, bid: float, row: list[float]) -> tuple[float, int]:
        """phi_i(b_i) of :meth:`virtual_cost` for one bid on its provider's histogram ``row``, and the bid's bin."""
        x = min(max(bid, 0.0), self.reserve)
        k = min(math.floor(x / self.width + EDGE_TOL), self.bins - 1)
        own, below = row[k], sum(row[:k])  # counts: every partial sum is exact
        density = self._prior_density
        cdf = density * x + below + max(x / self.width - k, 0.0) * own
        phi = bid + cdf / (density + own / self.width)
        if self.ironed and k > 0:
            edges, cum, lifted = self.edges.tolist(), 0.0, -math.inf
            for edge, count in zip(edges[:k], row):
                cum += count
                lifted = max(lifted, edge + (density * edge + cum) / (density + count / self.width))
            phi = max(phi, lifted)
        return phi, k

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        self.t += 1
        ucb = self._ucb_next_one if self._ucb_next_one is not None else self.ucb_one(self.t)
        self._ucb_next = self._ucb_next_one = None
        if self._hist_one is None:
            self._hist_one = self.hist[0].tolist()
        index = []
        for i, (bid, row) in enumerate(zip(bids, self._hist_one)):
            phi, k = self.virtual_cost_one(bid, row)
            index.append(ucb[i] - phi)
            row[k] += 1.0  # record the bid
            self.hist[0, i, k] = row[k]
        self.n_bids[0] += 1.0
        eligible = [bid <= self.reserve for bid in bids]
        if not any(eligible):
            self.n_skipped[0] += 1.0
            return NO_WINNER, 0.0
        untried = [ok and n == 0 for ok, n in zip(eligible, self.wins[0].tolist())]
        if any(untried):  # untried providers first, cheapest ask first; otherwise the best index
            w = argmax_random_ties_one([-b if u else -math.inf for b, u in zip(bids, untried)], noise)
        else:
            w = argmax_random_ties_one([v if ok else -math.inf for v, ok in zip(index, eligible)], noise)
        if self.payment_rule == "second_lowest":
            second = sorted(bids)[1] if len(bids) > 1 else bids[0]
        else:
            second = min((b for i, b in enumerate(bids) if i != w and b >= bids[w]), default=math.inf)
        return w, min(self.reserve, second)

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
        self._ucb_next = self._ucb_next_one = None
        if winner != NO_WINNER:
            value = self.info.value_scale * score
            self.wins[0, winner] += 1.0
            self.value_sum[0, winner] += value - payment if self.value_signal == "net" else value

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        self._ucb_next_one = ucb = self.ucb_one(self.t + 1)
        vs = self.info.value_scale
        return [self.reserve / vs, *(min(u, 2.0 * vs) / vs for u in ucb)]

    def diagnostics_one(self) -> dict[str, float]:
        return {"skipped_rate": self.n_skipped.item(0) / max(1, self.t), "reserve": self.reserve}

    @property
    def public_state_dim(self) -> int:
        return 1 + self.info.n_providers

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        """The reserve and the UCB index the next allocation will use (untried providers shown capped at 2), both
        / value_scale."""
        self._ucb_next = self.ucb(self.t + 1)
        vs = self.info.value_scale
        out = np.empty((self.n_markets, 1 + self.info.n_providers))
        out[:, 0] = self.reserve / vs
        out[:, 1:] = np.minimum(self._ucb_next, 2.0 * vs) / vs
        return out

    def diagnostics(self) -> dict[str, FloatArray]:
        return {"skipped_rate": self.n_skipped / max(1, self.t), "reserve": np.full(self.n_markets, self.reserve)}
