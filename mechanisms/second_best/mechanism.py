"""The second-best delegation schedule as a mechanism of the market env, one query per round and market
(MECHANISMS.md §6).

Each market holds its schedule as a table of segments (provider, phase, length) in the order the paper plays them:
the K exploration blocks, then - filled in when exploration ends - i*'s first exploitation block, its checked batches
(one segment, checked after every B queries), the remainder, i*'s bonus, the other providers' incentive blocks and
the K utility-based blocks. An early stop empties the batches, the remainder and the bonus.
"""

from __future__ import annotations

import numpy as np

from mechanisms.base import NO_WINNER, FloatArray, IntArray, MarketInfo, Mechanism, Outcome, pick
from mechanisms.registry import register
from mechanisms.second_best.schedule import (
    DONE,
    EXPLOITATION,
    EXPLORATION,
    INCENTIVE,
    N_PLAY_PHASES,
    PHASES,
    UTILITY,
    batch_size,
    check_schedule,
    delta_1,
    delta_2,
    delta_3,
    early_stop_threshold,
    exploitation_length,
    exploitation_plan,
    margin,
    utility_counts,
    utility_deltas,
)


@register
class SecondBest(Mechanism):
    """The second-best delegation schedule as a market mechanism (MECHANISMS.md §6), one query per round.

    ``allocate`` ignores bids and returns the provider the schedule names for the next query (``NO_WINNER`` once the
    schedule is exhausted before the env's horizon); billing is at list prices (the market bills p_in(declared) * input
    + p_out(declared) * reported output tokens and hands that payment to :meth:`update`). The mechanism only observes
    the score and the reported tokens: uhat_i, vbar_i (mean b*S) and taubar_i (mean reported output tokens) come from
    the exploration outcomes, the exploitation check uses the observed user utility b*S - payment.

    Args:
        T: length of the schedule (default: the env's horizon).
        epsilon: in (0, 1/2); B = floor(T^(2 eps)), M = T^-eps ln(K T).
        gamma: > 0, scales the early-stop margin.
        b: reward scale (default: the market's value_scale).
        eta: providers' share of the payment; not used by the schedule (kept for parity with the paper's
            parameters and reported in diagnostics).
        delta_1: the constant delta_1 of the paper (from the model table: :func:`delta_1`). Default: estimated at
            the end of exploration from what the platform observed, delta_1(min_i vbar_i, max_i taubar_i, L) - the
            platform never sees the providers' other models, so this uses the declared behaviour only.

    Public state (fixed size 6 + N): phase one-hot (exploration, exploitation, incentive - also i*'s bonus -,
    utility, done), u' / b, and each provider's uhat / b (0 before exploration ends). Diagnostics: phase, early_stopped,
    stop_time, best, u_second, R, threshold, delegated and the queries delegated in each phase; all finite (R = -1,
    best = -1 and the rest 0 until exploration ends).
    """

    name = "second_best"
    reference = "MECHANISMS.md §6"
    billing = "list_price"
    uses_bids = False

    def __init__(
        self,
        T: int | None = None,
        epsilon: float = 0.3,
        gamma: float = 2.0,
        b: float | None = None,
        eta: float = 0.9,
        delta_1: float | None = None,
    ):
        if T is not None:
            check_schedule(T, 0.25)
        if not 0.0 < epsilon < 0.5:
            raise ValueError(f"epsilon must be in (0, 1/2), got {epsilon!r}")
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma!r}")
        if b is not None and b <= 0:
            raise ValueError(f"b must be > 0, got {b!r}")
        if not 0.0 < eta <= 1.0:
            raise ValueError(f"eta must be in (0, 1], got {eta!r}")
        self.T, self.epsilon, self.gamma, self.b, self.eta, self.delta_1 = T, epsilon, gamma, b, eta, delta_1
        # None until reset (public_state_dim is asked before it); reset sets the market's facts.
        self.info: MarketInfo | None = None  # type: ignore[assignment]

    # ----------------------------------------------------------------------------------------------- lifecycle

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        super().reset(info, n_markets, rngs)
        E, K = n_markets, info.n_providers
        if K < 2:
            raise ValueError("second_best needs at least 2 providers")
        self.horizon = int(self.T if self.T is not None else info.horizon)
        self.scale = float(self.b if self.b is not None else info.value_scale)
        self.L = int(info.max_output_tokens)
        self.B = batch_size(self.horizon, self.epsilon)
        self.M = margin(self.horizon, self.epsilon, K)
        self.d2 = delta_2(self.scale)
        # Segment table: K exploration blocks, then (filled when exploration ends) first, batches, remainder, bonus,
        # K - 1 incentive blocks, K utility blocks.
        S = 3 * K + 3
        self._first, self._batches, self._rest, self._bonus = K, K + 1, K + 2, K + 3
        self.seg_provider = np.zeros((E, S), dtype=np.int64)
        self.seg_phase = np.zeros((E, S), dtype=np.int64)
        self.seg_count = np.zeros((E, S), dtype=np.int64)
        self.seg_provider[:, :K] = np.arange(K)
        self.seg_count[:, :K] = self.B
        self.seg_phase[:, K : self._bonus] = EXPLOITATION
        self.seg_phase[:, self._bonus : 2 * K + 3] = INCENTIVE
        self.seg_phase[:, 2 * K + 3 :] = UTILITY
        # Constants known only once exploration ends are 0 until then (R = -1, best = -1 mark that): diagnostics stay
        # finite, so infos compare equal across identical runs.
        self.d1 = np.full(E, float(self.delta_1) if self.delta_1 is not None else 0.0)
        self.d3 = np.zeros(E)
        self.R = np.full(E, -1, dtype=np.int64)
        self.threshold = np.zeros(E)
        self.t = np.zeros(E, dtype=np.int64)
        self.best = np.full(E, -1, dtype=np.int64)
        self.second = np.full(E, -1, dtype=np.int64)
        self.u_second = np.zeros(E)
        self.u_hat, self.vbar, self.taubar, self.deltas = (np.zeros((E, K)) for _ in range(4))
        self.delegations = np.zeros((E, K, N_PLAY_PHASES), dtype=np.int64)
        self.early_stopped = np.zeros(E, dtype=bool)
        self.stop_time = np.full(E, -1, dtype=np.int64)
        self._sums = np.zeros((E, K, 3))  # exploration sums: user utility, reward, reported tokens
        self._exploit_sum = np.zeros(E)
        self._exploit_n = np.zeros(E, dtype=np.int64)
        self._uniforms = np.stack([rng.random(K) for rng in rngs]) if E else np.zeros((0, K))  # utility counts
        self.cur = np.zeros(E, dtype=np.int64)  # current segment (S: done)
        self.remaining = self.seg_count[:, 0].copy()
        self._state = np.zeros((E, 6 + K))
        self._state[:, EXPLORATION] = 1.0

    # ----------------------------------------------------------------------------------------------- schedule

    @property
    def phase(self) -> FloatArray:
        """[E] current phase (DONE when the schedule or the T budget is exhausted)."""
        S = self.seg_count.shape[1]
        cur = np.minimum(self.cur, S - 1)
        return np.where(self.cur < S, pick(self.seg_phase, cur), DONE)

    def _advance(self, e: IntArray) -> None:
        """Markets ``e`` move to their next non-empty segment (or to done when the table or the T budget ends)."""
        S = self.seg_count.shape[1]
        cur = self.cur[e] + 1
        while True:
            empty = (cur < S) & (self.seg_count[e, np.minimum(cur, S - 1)] == 0)
            if not empty.any():
                break
            cur += empty
        cur[self.t[e] >= self.horizon] = S
        self.cur[e] = cur
        self.remaining[e] = np.where(cur < S, self.seg_count[e, np.minimum(cur, S - 1)], 0)
        self._state[e, :5] = 0.0
        self._state[e, self.phase[e]] = 1.0

    def _end_exploration(self, e: IntArray) -> None:
        """Markets ``e`` finished exploring: i*, u', the deltas, R, the threshold, and the rest of their table."""
        info = self.info
        assert info is not None, "reset() first"
        K, L = info.n_providers, self.L
        n = np.maximum(self.delegations[e, :, EXPLORATION], 1)[..., None]
        self.u_hat[e], self.vbar[e], self.taubar[e] = np.moveaxis(self._sums[e] / n, 2, 0)
        order = np.argsort(self.u_hat[e], axis=1, kind="stable")
        best, second = order[:, -1], order[:, -2]
        self.best[e], self.second[e] = best, second
        u2 = pick(self.u_hat[e], second)
        self.u_second[e] = u2
        if self.delta_1 is None:
            self.d1[e] = delta_1(self.vbar[e].min(axis=1), self.taubar[e].max(axis=1), L)
        self.d3[e] = delta_3(self.vbar[e], self.taubar[e], L, best)
        R = exploitation_length(self.horizon, self.B, K, self.d1[e], self.d2, self.d3[e])
        self.R[e] = R
        self.threshold[e] = early_stop_threshold(u2, self.M, self.scale, L, info.price_out[best], self.gamma)
        first, n_batches, remainder = exploitation_plan(R, self.horizon - self.t[e], self.B)
        self.seg_provider[e, self._first : self._bonus + 1] = best[:, None]
        self.seg_count[e, self._first] = first
        self.seg_count[e, self._batches] = n_batches * self.B
        self.seg_count[e, self._rest] = remainder
        self.seg_count[e, self._bonus] = self.B
        others = np.argsort(np.arange(K)[None, :] == best[:, None], axis=1, kind="stable")[:, : K - 1]
        self.seg_provider[e, self._bonus + 1 : 2 * K + 3] = others
        self.seg_count[e, self._bonus + 1 : 2 * K + 3] = self.B
        self.deltas[e] = utility_deltas(self.d1[e], self.vbar[e], self.taubar[e], L)
        self.seg_provider[e, 2 * K + 3 :] = np.arange(K)
        self.seg_count[e, 2 * K + 3 :] = utility_counts(self.deltas[e], self.B, self._uniforms[e])
        self._state[e, 5] = u2 / self.scale
        self._state[e, 6:] = self.u_hat[e] / self.scale

    # ------------------------------------------------------------------------------------------- interface

    def _round(self, market: int = 0) -> tuple[int, int, int]:
        """Market ``market``'s current segment, its provider and its phase (NO_WINNER and DONE once done)."""
        cur = self.cur.item(market)
        if cur >= self.seg_count.shape[1]:
            return cur, NO_WINNER, DONE
        return cur, self.seg_provider.item(market, cur), self.seg_phase.item(market, cur)

    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        S = self.seg_count.shape[1]
        active = self.cur < S
        winner = np.where(active, pick(self.seg_provider, np.minimum(self.cur, S - 1)), NO_WINNER)
        return winner, np.zeros(self.n_markets)

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        return self._round()[1], 0.0

    def update(self, outcome: Outcome) -> None:
        S = self.seg_count.shape[1]
        cur = np.minimum(self.cur, S - 1)
        e = np.flatnonzero((self.cur < S) & (outcome.winner == pick(self.seg_provider, cur)))
        if e.size == 0:
            return
        w, seg = outcome.winner[e], self.cur[e]
        phase = self.seg_phase[e, seg]
        reward = self.scale * outcome.score[e]
        user = reward - outcome.payment[e]
        self.delegations[e, w, phase] += 1
        self.t[e] += 1
        explore = phase == EXPLORATION
        self._sums[e[explore], w[explore]] += np.stack(
            (user[explore], reward[explore], outcome.reported_tokens[e][explore]), axis=1
        )
        exploit = phase == EXPLOITATION
        self._exploit_sum[e[exploit]] += user[exploit]
        self._exploit_n[e[exploit]] += 1
        self.remaining[e] -= 1
        # After every full batch of B checked queries: stop exploiting for good below the threshold.
        checked = e[(seg == self._batches) & (self.remaining[e] % self.B == 0)]
        stop = checked[self._exploit_sum[checked] / self._exploit_n[checked] < self.threshold[checked]]
        if stop.size:
            self.early_stopped[stop] = True
            self.stop_time[stop] = self.t[stop]
            self.remaining[stop] = 0
            self.seg_count[stop, self._rest] = 0
            self.seg_count[stop, self._bonus] = 0
        ended = e[(self.remaining[e] == 0) | (self.t[e] >= self.horizon)]
        if ended.size:
            explored = ended[self.cur[ended] == self._first - 1]
            if explored.size:
                self._end_exploration(explored)
            self._advance(ended)

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
        """:meth:`update` of a single market (E = 1) on Python numbers; the rare ends of a segment run the batched
        steps for it."""
        seg, provider, phase = self._round()
        if provider == NO_WINNER or winner != provider:
            return
        reward = self.scale * score
        user = reward - payment
        self.delegations[0, winner, phase] += 1
        self.t[0] += 1
        if phase == EXPLORATION:
            self._sums[0, winner] += (user, reward, reported_tokens)
        elif phase == EXPLOITATION:
            self._exploit_sum[0] += user
            self._exploit_n[0] += 1
        self.remaining[0] -= 1
        remaining = self.remaining.item(0)
        # After every full batch of B checked queries: stop exploiting for good below the threshold.
        if (
            seg == self._batches
            and remaining % self.B == 0
            and self._exploit_sum.item(0) / self._exploit_n.item(0) < self.threshold.item(0)
        ):
            self.early_stopped[0] = True
            self.stop_time[0] = self.t[0]
            self.remaining[0] = remaining = 0
            self.seg_count[0, self._rest] = 0
            self.seg_count[0, self._bonus] = 0
        if remaining == 0 or self.t.item(0) >= self.horizon:
            e = np.zeros(1, dtype=np.intp)
            if seg == self._first - 1:
                self._end_exploration(e)
            self._advance(e)

    @property
    def public_state_dim(self) -> int:
        return 6 + self.info.n_providers if self.info is not None else 0

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        return self._state

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        state: list[float] = self._state[0].tolist()
        return state

    def diagnostics(self) -> dict[str, FloatArray]:
        phases = self.delegations.sum(axis=1).astype(float)  # [E, 4] queries delegated in each phase
        return {
            "phase": self.phase.astype(float),
            "early_stopped": self.early_stopped.astype(float),
            "stop_time": self.stop_time.astype(float),
            "best": self.best.astype(float),
            "u_second": self.u_second,
            "R": self.R.astype(float),
            "threshold": self.threshold,
            "delegated": self.t.astype(float),
            **{f"delegated_{name}": phases[:, k] for k, name in enumerate(PHASES[:N_PLAY_PHASES])},
        }

    def diagnostics_one(self) -> dict[str, float]:
        phases = [float(sum(counts)) for counts in zip(*self.delegations[0].tolist())]
        return {
            "phase": float(self._round()[2]),
            "early_stopped": float(self.early_stopped.item(0)),
            "stop_time": float(self.stop_time.item(0)),
            "best": float(self.best.item(0)),
            "u_second": self.u_second.item(0),
            "R": float(self.R.item(0)),
            "threshold": self.threshold.item(0),
            "delegated": float(self.t.item(0)),
            **{f"delegated_{name}": phases[k] for k, name in enumerate(PHASES[:N_PLAY_PHASES])},
        }

    @classmethod
    def degenerate(cls, diagnostics: dict[str, float]) -> str | None:
        if diagnostics.get("R", 1.0) <= 0.0:
            return (
                "second_best's schedule is degenerate: exploitation length R = 0 (exploration and the fixed "
                "phases fill the horizon), so its trust-but-verify rule never runs"
            )
        return None

    def schedule(self, market: int = 0) -> dict[str, float | FloatArray]:
        """One market's schedule constants and counts so far (for tests and reports)."""
        m = market
        return {
            "T": self.horizon,
            "B": self.B,
            "M": self.M,
            "delta_1": float(self.d1[m]),
            "delta_2": self.d2,
            "delta_3": float(self.d3[m]),
            "R": int(self.R[m]),
            "threshold": float(self.threshold[m]),
            "best": int(self.best[m]),
            "u_second": float(self.u_second[m]),
            "u_hat": self.u_hat[m].copy(),
            "vbar": self.vbar[m].copy(),
            "taubar": self.taubar[m].copy(),
            "deltas": self.deltas[m].copy(),
            "delegations": self.delegations[m].copy(),
            "early_stopped": bool(self.early_stopped[m]),
            "stop_time": int(self.stop_time[m]),
        }
