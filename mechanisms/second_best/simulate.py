"""A fast batch simulator of one delegation game with every provider playing a fixed strategy (T = 1e6, 3 providers:
about 0.1 s): queries of each phase segment are drawn as arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from mechanisms.base import FloatArray, IntArray
from mechanisms.second_best.behaviours import BEHAVIOURS, STRATEGIES, STRATEGY_NAMES, resolve_behaviour
from mechanisms.second_best.game import Game
from mechanisms.second_best.schedule import (
    EXPLOITATION,
    EXPLORATION,
    INCENTIVE,
    N_PLAY_PHASES,
    UTILITY,
    batch_size,
    delta_2,
    delta_3,
    early_stop_threshold,
    exploitation_length,
    exploitation_plan,
    margin,
    utility_counts,
    utility_deltas,
)


@dataclass
class SimResult:
    """Outcome of one simulated game (phase index 0..3 = phases 1..4; phase 3 holds i*'s bonus and the incentive).

    Attributes:
        delegations, user_utility, provider_utility, reward, reported_tokens: [K, 4] per provider and phase (sums).
        best, second: i* and the second-best provider; u_second: u'; u_hat, vbar, taubar: [K] exploration means.
        early_stopped, stop_time: whether exploitation stopped early and the number of queries delegated by then
            (-1 if never).
        exploitation_length: queries i* served in phase 2.
    """

    T: int
    B: int
    M: float
    delta_1: float
    delta_2: float
    delta_3: float
    R: int
    threshold: float
    best: int
    second: int
    u_second: float
    u_hat: FloatArray
    vbar: FloatArray
    taubar: FloatArray
    deltas: FloatArray
    behaviours: list[tuple[str, str, str, str]]
    delegations: IntArray
    user_utility: FloatArray
    provider_utility: FloatArray
    reward: FloatArray
    reported_tokens: FloatArray
    early_stopped: bool = False
    stop_time: int = -1
    exploitation_length: int = 0

    @property
    def served(self) -> int:
        return int(self.delegations.sum())

    @property
    def user_utility_total(self) -> float:
        return float(self.user_utility.sum())

    @property
    def user_utility_per_query(self) -> float:
        """Total user utility / T (unserved queries count as 0)."""
        return self.user_utility_total / self.T

    @property
    def provider_utility_total(self) -> FloatArray:
        total: FloatArray = self.provider_utility.sum(axis=1)
        return total

    @property
    def provider_delegations(self) -> IntArray:
        total: IntArray = self.delegations.sum(axis=1)
        return total


class _Outcome(NamedTuple):
    user: FloatArray
    reward: FloatArray
    reported: FloatArray
    provider: FloatArray


def _play(game: Game, i: int, behaviour: str, n: int, u_second: float | None, rng: np.random.Generator) -> _Outcome:
    """n queries to provider i under one behaviour, as arrays."""
    menu = game.menus[i]
    act = resolve_behaviour(behaviour, menu, u_second, game.b, game.L)
    score, tin, tout = game.sampler.draw(i, act.model, n, rng)
    reported = np.minimum(tout + act.add, game.L) if act.add else tout
    price = menu.price_in[0] * tin + menu.price_out[0] * reported
    reward = game.b * score
    real = menu.price_in[act.model] * tin + menu.price_out[act.model] * tout
    return _Outcome(reward - price, reward, reported, game.eta * (price - real))


def _parse_strategy(s: str | Sequence[str]) -> tuple[str, str, str, str]:
    if isinstance(s, str):
        if s not in STRATEGIES:
            raise ValueError(f"unknown strategy {s!r}; choose one of {STRATEGY_NAMES}")
        return STRATEGIES[s]
    s = tuple(s)
    if len(s) != N_PLAY_PHASES or any(x not in BEHAVIOURS for x in s):
        raise ValueError(f"a strategy is a name or 4 behaviours from {BEHAVIOURS}, got {s!r}")
    return s  # type: ignore[return-value]


def simulate(
    game: Game,
    strategies: Sequence[str | Sequence[str]],
    T: int,
    epsilon: float = 0.3,
    gamma: float = 2.0,
    seed: int | np.random.SeedSequence | None = 0,
    d1: float | None = None,
) -> SimResult:
    """Run the second-best delegation mechanism once with every provider playing a fixed strategy.

    Queries are independent given the phase and behaviour, so each phase segment is drawn as one array; exploitation
    draws its planned batches at once and finds the first batch after which the running mean user utility (cumulative
    sums over batch sums) is below the threshold, keeping the draws up to it.

    Args:
        game: menus, sampler, b, eta, L.
        strategies: per provider a name of :data:`STRATEGIES` or 4 behaviour names (phases 1..4).
        T: horizon (queries to delegate at most); epsilon in (0, 1/2); gamma > 0.
        seed: seed of the numpy Generator (all randomness flows through it).
        d1: delta_1 (default: from the game's model tables, :meth:`Game.delta_1`).
    """
    K = game.K
    if K < 2:
        raise ValueError("the mechanism needs at least 2 providers (u' is the second-best utility)")
    if len(strategies) != K:
        raise ValueError(f"{len(strategies)} strategies for {K} providers")
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    behaviours = [_parse_strategy(s) for s in strategies]
    rng = np.random.default_rng(seed)
    b, L = game.b, game.L
    B, M = batch_size(T, epsilon), margin(T, epsilon, K)
    d1 = game.delta_1() if d1 is None else float(d1)
    d2 = delta_2(b)
    shape = (K, N_PLAY_PHASES)
    dele = np.zeros(shape, dtype=np.int64)
    user, prov, rew, rep = (np.zeros(shape) for _ in range(4))
    t = 0

    def record(i: int, phase: int, out: _Outcome, n: int | None = None) -> None:
        nonlocal t
        if n is not None:
            out = _Outcome(*(a[:n] for a in out))
        k = out.user.shape[0]
        dele[i, phase] += k
        user[i, phase] += out.user.sum()
        prov[i, phase] += out.provider.sum()
        rew[i, phase] += out.reward.sum()
        rep[i, phase] += out.reported.sum()
        t += k

    # Phase 1: exploration, B queries per provider in blocks.
    u_hat, vbar, taubar = np.zeros(K), np.zeros(K), np.zeros(K)
    for i in range(K):
        n = min(B, T - t)
        out = _play(game, i, behaviours[i][EXPLORATION], n, None, rng)
        record(i, EXPLORATION, out)
        if n:
            u_hat[i], vbar[i], taubar[i] = out.user.mean(), out.reward.mean(), out.reported.mean()
    order = np.argsort(u_hat, kind="stable")
    best, second = int(order[-1]), int(order[-2])
    u2 = float(u_hat[second])
    d3 = delta_3(vbar, taubar, L, best)
    R = exploitation_length(T, B, K, d1, d2, d3)
    thr = early_stop_threshold(u2, M, b, L, game.menus[best].p_max, gamma)
    result: dict[str, Any] = dict(
        T=T,
        B=B,
        M=M,
        delta_1=d1,
        delta_2=d2,
        delta_3=d3,
        R=R,
        threshold=thr,
        best=best,
        second=second,
        u_second=u2,
        u_hat=u_hat,
        vbar=vbar,
        taubar=taubar,
        behaviours=behaviours,
    )

    # Phase 2: exploitation with the batch early-stop check, then the remainder and the bonus if never stopped.
    first, n_batches, remainder = (int(v) for v in exploitation_plan(R, T - t, B))
    early, stop_time = False, -1
    n_full = min(first + n_batches * B, T - t)
    out = _play(game, best, behaviours[best][EXPLOITATION], n_full, u2, rng)
    n_used = n_full
    if n_batches > 0 and n_full == first + n_batches * B:
        batch_sums = out.user[first:].reshape(n_batches, B).sum(axis=1)
        running = (out.user[:first].sum() + np.cumsum(batch_sums)) / (first + B * np.arange(1, n_batches + 1))
        below = np.flatnonzero(running < thr)
        if below.size:
            early = True
            n_used = first + (int(below[0]) + 1) * B
    record(best, EXPLOITATION, out, n_used)
    if early:
        stop_time = t
    else:
        n = min(remainder, T - t)
        record(best, EXPLOITATION, _play(game, best, behaviours[best][EXPLOITATION], n, u2, rng))
        n = min(B, T - t)
        record(best, INCENTIVE, _play(game, best, behaviours[best][INCENTIVE], n, u2, rng))
    exploited = int(dele[best, EXPLOITATION])

    # Phase 3: incentive, B queries to every other provider.
    for i in range(K):
        if i != best:
            record(i, INCENTIVE, _play(game, i, behaviours[i][INCENTIVE], min(B, T - t), u2, rng))

    # Phase 4: utility-based delegations.
    deltas = utility_deltas(d1, vbar, taubar, L)
    counts = utility_counts(deltas, B, rng.random(K))
    for i in range(K):
        n = min(int(counts[i]), T - t)
        if n:
            record(i, UTILITY, _play(game, i, behaviours[i][UTILITY], n, u2, rng))

    return SimResult(
        **result,
        deltas=deltas,
        delegations=dele,
        user_utility=user,
        provider_utility=prov,
        reward=rew,
        reported_tokens=rep,
        early_stopped=early,
        stop_time=stop_time,
        exploitation_length=exploited,
    )
