"""Tacit collusion: how much of the room between competitive and monopoly profit simultaneous learners capture.

The collusion index (Calvano et al. 2020; Banchio and Skrzypacz 2022 use the same normalisation)

    Delta = (profit - competitive profit) / (monopoly profit - competitive profit)

is 0 when learners earn what competition leaves them and 1 when they earn what a cartel would. Everything here is
measured through the market (so it holds for any registered mechanism); the benchmarks are defined per setting:

Tabular duopoly on an ask grid (:func:`stage_game`, :func:`summarize_sessions`; Banchio and Skrzypacz's setting as a
reverse auction: 2 providers, cost 0, user value 1, asks 0.05..0.95). The stage game of constant asks is played through
the mechanism for every ask pair (same seeds for every pair), giving each pair's expected profit and payment.
- competitive: the profile where both ask the *competitive ask*, the lowest grid ask at which selling is profitable
  (0.05 with cost 0). Under first price this is Bertrand pricing. Under second price too: the winner is paid the
  other's ask, so the only pure equilibrium of the grid stage game is both asking 0.05 (a higher ask loses to an
  undercut that is then paid that ask; and at (0.05, x > 0.05) the loser gains by matching 0.05), and the
  competitive price the user pays is 0.05 under both rules. The competitive profit is the per-provider profit of that
  profile under the mechanism at hand.
- monopoly: the largest joint profit of any ask pair, split evenly (first and second price: 0.95 per period, 0.475
  each; a mechanism with a reserve caps it lower, e.g. Myerson's reserve).
- a session is *collusive* when it converged and the payment of its greedy ask pair exceeds the competitive price by
  more than half a grid step (under first price: both asks above 0.05; under second price: the higher ask, which is
  paid, above 0.05). Its Delta uses the profit it actually earned over its final window.

Learned policies on a real scenario (:func:`policy_collusion`, e.g. simultaneous PPO learners on ``capitals``): joint
profit per round, paired on the same seeds,
- competitive: all-truthful play (everyone asks its expected cost);
- monopoly: the best joint profit over *constant-margin cartels* - provider i always asks its honest ask plus m_i x
  ask_scale, every (m_0, m_1, ...) on a grid in [0, 1] (one provider may price itself out: market division). This is
  a lower bound on the joint-profit maximum, so Delta > 1 would mean the learners beat every such cartel.
Caveat: under a non-truthful rule (first price) the static equilibrium already earns more than truthful play, so
Delta against truthful counts equilibrium markups too; pass ``competitive`` (e.g. the meta-game equilibrium's joint
profit, :mod:`evaluation.metagame`) to measure collusion beyond the static equilibrium.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from agents.policy import Policy
from agents.qlearning import ask_actions
from agents.registry import make_strategy
from envs.batched import BatchedMarket
from envs.layout import ACTION_DIM, BID
from envs.market import make_batched
from evaluation.rollout import play
from evaluation.statistics import mean_ci
from mechanisms.base import Mechanism


def collusion_index(profit: float | np.ndarray, competitive: float, monopoly: float) -> float | np.ndarray:
    """Delta = (profit - competitive) / (monopoly - competitive).

    Raises:
        ValueError: when monopoly <= competitive (no room for collusion: the index is undefined, e.g. under a
            mechanism that ignores asks).
    """
    if not (np.isfinite(competitive) and np.isfinite(monopoly)):
        raise ValueError(
            f"collusion index: benchmarks must be finite, got competitive={competitive}, monopoly={monopoly}"
        )
    if monopoly <= competitive:
        raise ValueError(
            f"collusion index undefined: monopoly profit {monopoly:.6g} <= competitive profit "
            f"{competitive:.6g} (the asks cannot raise profit under this mechanism)"
        )
    out = (np.asarray(profit, dtype=np.float64) - competitive) / (monopoly - competitive)
    return float(out) if np.ndim(out) == 0 else out


# ---------------------------------------------------------------------------------------- the grid stage game


@dataclass
class StageGame:
    """The constant-ask stage game of a duopoly on an ask grid, measured through a mechanism.

    Attributes:
        mechanism: its name. grid: [A] asks.
        profit: [A, A, 2] mean profit per period of each provider when provider 0 asks grid[i] and provider 1 grid[j].
        payment: [A, A] mean payment per period (0 when unserved). user_utility: [A, A]. unserved: [A, A] share.
        competitive_ask: index of the competitive ask. competitive_profit: per-provider profit there.
        competitive_price: payment per period there.
        monopoly_pair: the ask pair of the largest joint profit. monopoly_profit: that joint profit / 2.
        pure_equilibria: pure Nash equilibria (i, j) of the table, within ``tolerance``.
        periods, seeds: how it was measured.
    """

    mechanism: str
    grid: np.ndarray
    profit: np.ndarray
    payment: np.ndarray
    user_utility: np.ndarray
    unserved: np.ndarray
    competitive_ask: int
    competitive_profit: float
    competitive_price: float
    monopoly_pair: tuple[int, int]
    monopoly_profit: float
    pure_equilibria: list[tuple[int, int]]
    tolerance: float
    periods: int
    seeds: list[int]

    @property
    def collusion_possible(self) -> bool:
        """Whether asks can raise profit above the competitive level at all under this mechanism."""
        return self.monopoly_profit > self.competitive_profit + self.tolerance


def stage_game(
    scenario: str | dict,
    mechanism: str | Mechanism | Callable[[], Mechanism],
    grid: Sequence[float],
    periods: int = 2000,
    n_seeds: int = 4,
    seed: int = 10_000,
    basis: str = "absolute",
    overrides: dict[str, Any] | None = None,
    tolerance: float = 1e-3,
) -> StageGame:
    """Play every constant ask pair of ``grid`` for ``periods`` periods in ``n_seeds`` markets each (one batched
    market, the same seeds for every pair: common random numbers) and tabulate profits and payments.

    Args:
        scenario, overrides: a two-provider scenario (e.g. ``uniform`` with cost 0).
        mechanism: registry name, instance, or a factory of instances.
        grid: the asks (absolute, or margins over the honest ask with ``basis="margin"``).
        periods: periods per market (learning mechanisms reach their steady state under constant play).
        n_seeds: markets per pair.
        tolerance: slack of the pure-equilibrium test and of "profitable" (money per period).
    """
    asks_grid = np.asarray(grid, dtype=np.float64)
    A = asks_grid.size
    mech = mechanism() if callable(mechanism) and not isinstance(mechanism, (str, Mechanism)) else mechanism
    seeds = [seed + s for s in range(n_seeds)]
    E = A * A * n_seeds
    market = make_batched(scenario, mech, E, seeds=seeds * (A * A), **{**(overrides or {}), "horizon": periods})
    if market.n_providers != 2:
        raise ValueError(f"stage_game: a duopoly is needed, the scenario has {market.n_providers} providers")
    pair = np.repeat(np.arange(A * A), n_seeds)
    asks = np.stack([asks_grid[pair // A], asks_grid[pair % A]], axis=1)  # [E, 2]
    actions = np.zeros((E, 2, ACTION_DIM))
    profit, payment, user, unserved = np.zeros((E, 2)), np.zeros(E), np.zeros(E), np.zeros(E)
    obs = market.reset()
    for _ in range(periods):
        # The learners' own codec, so the table means what their asks mean.
        actions[:, :, BID] = ask_actions(market.layout, obs, asks, basis)  # type: ignore[arg-type]
        obs, rewards, _ = market.step(actions)
        r = market.played()
        profit += rewards
        payment += r.payment
        user += r.user_utility
        unserved += r.unserved

    def table(x: np.ndarray) -> np.ndarray:
        return (x / periods).reshape(A, A, n_seeds, *x.shape[1:]).mean(axis=2)

    prof, pay, uu, un = table(profit), table(payment), table(user), table(unserved)
    symmetric = prof[np.arange(A), np.arange(A)].mean(axis=1)
    profitable = np.flatnonzero(symmetric > tolerance)
    c = int(profitable[0]) if profitable.size else 0
    joint = prof.sum(axis=2)
    m = np.unravel_index(int(joint.argmax()), joint.shape)
    best0, best1 = prof[:, :, 0].max(axis=0), prof[:, :, 1].max(axis=1)
    equilibria = [
        (i, j)
        for i in range(A)
        for j in range(A)
        if prof[i, j, 0] >= best0[j] - tolerance and prof[i, j, 1] >= best1[i] - tolerance
    ]
    return StageGame(
        mechanism=market.mechanism.name,
        grid=asks_grid,
        profit=prof,
        payment=pay,
        user_utility=uu,
        unserved=un,
        competitive_ask=c,
        competitive_profit=float(symmetric[c]),
        competitive_price=float(pay[c, c]),
        monopoly_pair=(int(m[0]), int(m[1])),
        monopoly_profit=float(joint[m] / 2.0),
        pure_equilibria=equilibria,
        tolerance=tolerance,
        periods=periods,
        seeds=seeds,
    )


# -------------------------------------------------------------------------------------- sessions' summary


@dataclass
class SessionsSummary:
    """The figures of a Q-learning collusion run under one mechanism (see the module docstring for definitions).

    ``pair_counts`` [A, A] counts converged sessions by greedy ask pair (provider 0 x provider 1); ``delta`` is the
    mean over sessions of each session's Delta (its mean profit per provider over its final window), with the 95% CI
    over sessions; ``delta_converged`` over converged sessions only; ``delta`` is None when the mechanism leaves no
    room for collusion (``note`` says why)."""

    mechanism: str
    sessions: int
    periods: int
    converged_share: float
    mean_payment: float
    mean_payment_ci: float
    mean_price: float
    user_utility: float
    collusive_share: float
    collusive_share_of_converged: float
    competitive_share_of_converged: float
    delta: float | None
    delta_ci: float | None
    delta_converged: float | None
    mean_profit: float
    competitive_ask: float
    competitive_price: float
    competitive_profit: float
    monopoly_asks: tuple[float, float]
    monopoly_profit: float
    stage_equilibria: list[tuple[float, float]]
    mean_greedy_asks: list[float]
    seconds: float
    cpu_seconds: float
    pair_counts: list[list[int]] = field(repr=False, default_factory=list)
    note: str = ""

    def record(self) -> dict[str, Any]:
        """JSON-friendly figures (without the pair counts)."""
        out = asdict(self)
        out.pop("pair_counts")
        return out


def summarize_sessions(result: Any, game: StageGame) -> SessionsSummary:
    """The collusion figures of a :class:`training.tabular.SessionsResult` against its stage game's benchmarks."""
    grid = game.grid
    A = grid.size
    step = float(np.min(np.diff(grid))) if A > 1 else 0.0
    conv = result.converged
    g = result.greedy
    pair_price = game.payment[g[:, 0], g[:, 1]]
    collusive = conv & (pair_price > game.competitive_price + step / 2)
    competitive = conv & (np.abs(pair_price - game.competitive_price) <= step / 2)
    counts = np.zeros((A, A), dtype=int)
    np.add.at(counts, (g[conv, 0], g[conv, 1]), 1)
    profit = result.profit.mean(axis=1)
    delta = delta_ci = delta_conv = None
    note = ""
    if game.collusion_possible:
        d = np.asarray(collusion_index(profit, game.competitive_profit, game.monopoly_profit))
        delta, delta_ci = mean_ci(d)
        delta_conv = float(np.mean(d[conv])) if conv.any() else None
    else:
        note = "no room for collusion: no ask pair earns more than the competitive profile under this mechanism"
    pay, pay_ci = mean_ci(result.payment)
    n_conv = max(1, int(conv.sum()))
    return SessionsSummary(
        mechanism=result.mechanism,
        sessions=int(conv.size),
        periods=int(result.periods),
        converged_share=float(conv.mean()),
        mean_payment=pay,
        mean_payment_ci=pay_ci,
        mean_price=float(result.price.mean()),
        user_utility=float(result.user_utility.mean()),
        collusive_share=float(collusive.mean()),
        collusive_share_of_converged=float(collusive.sum() / n_conv),
        competitive_share_of_converged=float(competitive.sum() / n_conv),
        delta=delta,
        delta_ci=delta_ci,
        delta_converged=delta_conv,
        mean_profit=float(profit.mean()),
        competitive_ask=float(grid[game.competitive_ask]),
        competitive_price=game.competitive_price,
        competitive_profit=game.competitive_profit,
        monopoly_asks=(float(grid[game.monopoly_pair[0]]), float(grid[game.monopoly_pair[1]])),
        monopoly_profit=game.monopoly_profit,
        stage_equilibria=[(float(grid[i]), float(grid[j])) for i, j in game.pure_equilibria],
        mean_greedy_asks=[float(x) for x in result.greedy_asks.mean(axis=0)],
        seconds=float(result.seconds),
        cpu_seconds=float(getattr(result, "cpu_seconds", float("nan"))),
        pair_counts=counts.tolist(),
        note=note,
    )


# ------------------------------------------------------------------------------------ learned policies' Delta


class ConstantMargin(Policy):
    """Ask the honest ask plus a fixed margin (in action units: a[0] = margin), serve the declared model, report
    true tokens; one margin per row of the observation batch (``margins`` [B])."""

    name = "constant_margin"

    def __init__(self, margins: np.ndarray):
        self.margins = np.asarray(margins, dtype=np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        action = np.zeros(np.shape(obs)[:-1] + (ACTION_DIM,), dtype=np.float32)
        action[..., BID] = np.broadcast_to(self.margins, action.shape[:-1])
        return action


@dataclass
class PolicyCollusion:
    """Delta of a learned joint profile (see the module docstring), all per round, joint over providers.

    Attributes:
        mechanism, scenario: where it was measured. seeds: the paired seeds.
        learned_profit: joint profit per round of the learned profile, with its 95% CI over seeds.
        competitive_profit: the competitive benchmark's joint profit (all-truthful unless given).
        competitive: what the competitive benchmark is.
        monopoly_profit: the best constant-margin cartel's joint profit; monopoly_margins: its margins.
        delta: the collusion index (None when undefined) with the CI of the paired differences, scaled.
        user_utility, payment: per round under the learned profile; truthful_user_utility likewise.
    """

    mechanism: str
    scenario: str
    seeds: list[int]
    learned_profit: float
    learned_profit_ci: float
    competitive_profit: float
    competitive: str
    monopoly_profit: float
    monopoly_margins: list[float]
    delta: float | None
    delta_ci: float | None
    user_utility: float
    payment: float
    truthful_user_utility: float
    note: str = ""


def _joint(rows: list[dict[str, float]], agents: Sequence[str]) -> np.ndarray:
    return np.array([sum(r[f"{a}/profit"] for a in agents) for r in rows])


def cartel_profit(
    market_factory: Callable[[int], BatchedMarket],
    seeds: Sequence[int],
    margins: Sequence[float] = tuple(np.round(np.linspace(0.0, 1.0, 21), 3)),
) -> tuple[float, list[float]]:
    """The best joint profit per round over constant-margin profiles (provider i asks honest + m_i x ask_scale, every
    combination of ``margins``), played on ``seeds``; returns (joint profit, the margins)."""
    probe = market_factory(1)
    N = probe.n_providers
    combos = list(itertools.product(margins, repeat=N))
    S = len(seeds)
    market = market_factory(len(combos) * S)
    m = np.repeat(np.array(combos, dtype=np.float64), S, axis=0)  # [C * S, N]
    policies = {a: ConstantMargin(m[:, i]) for i, a in enumerate(market.possible_agents)}
    rows = play(market, policies, list(seeds) * len(combos))
    joint = _joint(rows, market.possible_agents).reshape(len(combos), S).mean(axis=1)
    best = int(joint.argmax())
    return float(joint[best]), [float(x) for x in combos[best]]


def policy_collusion(
    scenario: str,
    mechanism: str,
    policies: Mapping[str, Policy],
    seeds: Sequence[int],
    overrides: dict[str, Any] | None = None,
    competitive: float | None = None,
    competitive_label: str = "",
) -> PolicyCollusion:
    """Delta of the joint profile ``policies`` (all providers) on ``seeds``: learned joint profit against all-truthful
    play (or ``competitive``) and the best constant-margin cartel, every profile on the same seeds."""
    over = dict(overrides or {})

    def factory(n: int) -> BatchedMarket:
        return make_batched(scenario, mechanism, n, **over)

    market = factory(len(seeds))
    agents = market.possible_agents
    missing = [a for a in agents if a not in policies]
    if missing:
        raise ValueError(f"policy_collusion: no policy for {missing}; a joint profile needs every provider")
    learned = play(market, policies, list(seeds))
    truthful = play(market, {a: make_strategy("truthful", market.layout) for a in agents}, list(seeds))
    j_learned, j_truthful = _joint(learned, agents), _joint(truthful, agents)
    monopoly, margins = cartel_profit(factory, seeds)
    comp = float(j_truthful.mean()) if competitive is None else float(competitive)
    label = "all-truthful play" if competitive is None else (competitive_label or "given")
    lp, lp_ci = mean_ci(j_learned)
    delta = delta_ci = None
    note = ""
    try:
        delta = float(collusion_index(lp, comp, monopoly))
        delta_ci = lp_ci / (monopoly - comp)
    except ValueError as exc:
        note = str(exc)
    return PolicyCollusion(
        mechanism=mechanism,
        scenario=market.config.name,
        seeds=list(seeds),
        learned_profit=lp,
        learned_profit_ci=lp_ci,
        competitive_profit=comp,
        competitive=label,
        monopoly_profit=monopoly,
        monopoly_margins=margins,
        delta=delta,
        delta_ci=delta_ci,
        user_utility=float(np.mean([r["market/user_utility"] for r in learned])),
        payment=float(np.mean([r["market/payment"] for r in learned])),
        truthful_user_utility=float(np.mean([r["market/user_utility"] for r in truthful])),
        note=note,
    )


def format_delta(c: PolicyCollusion | None) -> str:
    """The report cell of a collusion measurement: Delta with its CI, or why there is none."""
    if c is None:
        return "n/a"
    if c.delta is None:
        return "undefined"
    return f"{c.delta:+.2f} ± {c.delta_ci:.2f}"


def collusion_section(collusion: dict[str, PolicyCollusion]) -> list[str]:
    """Markdown lines of the report's collusion section (definitions and one row per mechanism)."""
    lines = [
        "## Collusion of simultaneous learners",
        "",
        (
            "Every provider learns at once (PPO in lockstep, `train.py --mode simultaneous`); Delta = (learned joint "
            "profit - competitive) / (monopoly - competitive) per round, paired on the same seeds. Competitive: "
            "all-truthful play; monopoly: the best constant-margin cartel (each provider asks its cost plus a fixed "
            "margin, every combination on a grid; a lower bound on the joint-profit maximum). Under first price the "
            "static equilibrium's markups count toward Delta too (see evaluation/collusion.py)."
        ),
        "",
        (
            "| mechanism | Delta | learned joint profit | truthful | best cartel (margins) | user utility "
            "(truthful) | payment |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for m, c in collusion.items():
        lines.append(
            f"| {m} | {format_delta(c)} | {c.learned_profit:.4f} ± {c.learned_profit_ci:.4f} | "
            f"{c.competitive_profit:.4f} | {c.monopoly_profit:.4f} "
            f"({', '.join(f'{x:g}' for x in c.monopoly_margins)}) | "
            f"{c.user_utility:.4f} ({c.truthful_user_utility:.4f}) | {c.payment:.4f} |"
            + (f" {c.note}" if c.note else "")
        )
    return lines + [""]
