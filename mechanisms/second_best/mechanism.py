"""The second-best delegation schedule as a mechanism of the market env, one query per round (MECHANISMS.md §6)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from mechanisms.base import NO_WINNER, MarketInfo, Mechanism
from mechanisms.registry import register
from mechanisms.second_best.schedule import (DONE, EXPLOITATION, EXPLORATION, INCENTIVE, N_PLAY_PHASES, UTILITY,
                                            check_schedule, batch_size, delta_1, delta_2, delta_3,
                                            early_stop_threshold, exploitation_length, exploitation_plan, margin,
                                            utility_counts, utility_deltas)


@dataclass
class _Segment:
    provider: int
    phase: int
    count: int
    kind: str  # explore | exploit_first | exploit_batch | exploit_rest | bonus | incentive | utility


@register
class SecondBest(Mechanism):
    """The second-best delegation schedule as a market mechanism (MECHANISMS.md §6), one query per round.

    ``allocate`` ignores bids and returns the provider the schedule names for the next query (``NO_WINNER`` once the
    schedule is exhausted before the env's horizon); billing is per token (the market bills p_in(declared) * input +
    p_out(declared) * reported output tokens and hands that payment to :meth:`update`). The mechanism only observes
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
    stop_time, best, u_second, R, threshold, delegated; all finite (R = -1, best = -1 and the rest 0 until
    exploration ends).
    """

    name = "second_best"
    reference = "MECHANISMS.md §6"
    billing = "per_token"
    uses_bids = False

    def __init__(self, T: int | None = None, epsilon: float = 0.3, gamma: float = 2.0, b: float | None = None,
                 eta: float = 0.9, delta_1: float | None = None):
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
        self.info: MarketInfo | None = None

    # ----------------------------------------------------------------------------------------------- lifecycle

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        super().reset(info, rng)
        K = info.n_providers
        if K < 2:
            raise ValueError("second_best needs at least 2 providers")
        self.horizon = int(self.T if self.T is not None else info.horizon)
        self.scale = float(self.b if self.b is not None else info.value_scale)
        self.L = int(info.max_output_tokens)
        self.B = batch_size(self.horizon, self.epsilon)
        self.M = margin(self.horizon, self.epsilon, K)
        # Constants known only once exploration ends are 0 until then (R = -1 marks that): diagnostics stay finite,
        # so infos compare equal across identical runs.
        self.d1 = float(self.delta_1) if self.delta_1 is not None else 0.0
        self.d2 = delta_2(self.scale)
        self.d3 = 0.0
        self.R = -1
        self.threshold = 0.0
        self.t = 0
        self.best = -1
        self.second = -1
        self.u_second = 0.0
        self.u_hat = np.zeros(K)
        self.vbar = np.zeros(K)
        self.taubar = np.zeros(K)
        self.deltas = np.zeros(K)
        self.delegations = np.zeros((K, N_PLAY_PHASES), dtype=np.int64)
        self.early_stopped = False
        self.stop_time = -1
        self._sums = np.zeros((K, 3))  # exploration sums: user utility, reward, reported tokens
        self._exploit_sum = 0.0
        self._exploit_n = 0
        self._queue: deque[_Segment] = deque(_Segment(i, EXPLORATION, self.B, "explore") for i in range(K))
        self._seg: _Segment | None = None
        self._state = np.zeros(6 + K)
        self._advance()

    # ----------------------------------------------------------------------------------------------- schedule

    @property
    def phase(self) -> int:
        return DONE if self._seg is None else self._seg.phase

    def _advance(self) -> None:
        """Move to the next non-empty segment (or to 'done' when the schedule or the T budget is exhausted)."""
        self._seg = None
        while self._queue and self.t < self.horizon:
            seg = self._queue.popleft()
            if seg.count > 0:
                seg.count = min(seg.count, self.horizon - self.t)
                self._seg = seg
                break
        self._state[:5] = 0.0
        self._state[self.phase] = 1.0

    def _end_exploration(self) -> None:
        K, L = self.info.n_providers, self.L
        n = np.maximum(self.delegations[:, EXPLORATION], 1)
        self.u_hat, self.vbar, self.taubar = (self._sums / n[:, None]).T.copy()
        order = np.argsort(self.u_hat, kind="stable")
        self.best, self.second = int(order[-1]), int(order[-2])
        self.u_second = float(self.u_hat[self.second])
        if self.delta_1 is None:
            self.d1 = delta_1(float(self.vbar.min()), float(self.taubar.max()), L)
        self.d3 = delta_3(self.vbar, self.taubar, L, self.best)
        self.R = exploitation_length(self.horizon, self.B, K, self.d1, self.d2, self.d3)
        self.threshold = early_stop_threshold(self.u_second, self.M, self.scale, L,
                                              float(self.info.price_out[self.best]), self.gamma)
        first, n_batches, remainder = exploitation_plan(self.R, self.horizon - self.t, self.B)
        q = self._queue
        q.append(_Segment(self.best, EXPLOITATION, first, "exploit_first"))
        q.extend(_Segment(self.best, EXPLOITATION, self.B, "exploit_batch") for _ in range(n_batches))
        q.append(_Segment(self.best, EXPLOITATION, remainder, "exploit_rest"))
        q.append(_Segment(self.best, INCENTIVE, self.B, "bonus"))
        q.extend(_Segment(i, INCENTIVE, self.B, "incentive") for i in range(K) if i != self.best)
        self.deltas = utility_deltas(self.d1, self.vbar, self.taubar, L)
        counts = utility_counts(self.deltas, self.B, self.rng.random(K))
        q.extend(_Segment(i, UTILITY, int(counts[i]), "utility") for i in range(K))
        self._state[5] = self.u_second / self.scale
        self._state[6:] = self.u_hat / self.scale

    def _check_batch(self) -> None:
        if self._exploit_sum / self._exploit_n < self.threshold:
            self.early_stopped = True
            self.stop_time = self.t
            self._queue = deque(s for s in self._queue if s.kind not in ("exploit_batch", "exploit_rest", "bonus"))

    # ------------------------------------------------------------------------------------------- interface

    def allocate(self, bids: np.ndarray, context: np.ndarray, group: int) -> tuple[int, float]:
        if self._seg is None:
            return NO_WINNER, 0.0
        return self._seg.provider, 0.0

    def update(self, winner: int, score: float, input_tokens: int, reported_output_tokens: int,
               payment: float, context: np.ndarray, group: int) -> None:
        seg = self._seg
        if seg is None or winner != seg.provider:
            return
        reward = self.scale * score
        user = reward - payment
        self.delegations[winner, seg.phase] += 1
        self.t += 1
        if seg.phase == EXPLORATION:
            self._sums[winner] += (user, reward, reported_output_tokens)
        elif seg.phase == EXPLOITATION:
            self._exploit_sum += user
            self._exploit_n += 1
        seg.count -= 1
        if seg.count > 0 and self.t < self.horizon:
            return
        if seg.kind == "explore" and not any(s.kind == "explore" for s in self._queue):
            self._end_exploration()
        elif seg.kind == "exploit_batch" and seg.count == 0:
            self._check_batch()
        self._advance()

    @property
    def public_state_dim(self) -> int:
        return 6 + self.info.n_providers if self.info is not None else 0

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        return self._state

    def diagnostics(self) -> dict[str, float]:
        return {
            "phase": float(self.phase), "early_stopped": float(self.early_stopped), "stop_time": float(self.stop_time),
            "best": float(self.best), "u_second": self.u_second, "R": float(self.R), "threshold": self.threshold,
            "delegated": float(self.t),
        }

    def schedule(self) -> dict[str, float | np.ndarray]:
        """The schedule's constants and counts so far (for tests and reports)."""
        return {"T": self.horizon, "B": self.B, "M": self.M, "delta_1": self.d1, "delta_2": self.d2,
                "delta_3": self.d3, "R": self.R, "threshold": self.threshold, "best": self.best,
                "u_second": self.u_second, "u_hat": self.u_hat.copy(), "vbar": self.vbar.copy(),
                "taubar": self.taubar.copy(), "deltas": np.array(self.deltas), "delegations": self.delegations.copy(),
                "early_stopped": self.early_stopped, "stop_time": self.stop_time}
