"""Tabular Q-learning providers over a discrete ask grid: the learner of the algorithmic-collusion literature
(Calvano, Calzolari, Denicolo and Pastorello 2020; Banchio and Skrzypacz 2022), vectorized over independent sessions.

The learner. Provider i of session e keeps one value Q[e, i, a] per ask a of a finite grid. It is *stateless* (the
baseline of Banchio and Skrzypacz): each period it asks the greedy ask argmax_a Q with probability 1 - eps_t and a
uniformly random grid ask with probability eps_t = eps0 exp(-beta t); after the round it updates only the ask it
played, with its own profit r of the round (the market's reward: eta * payment - cost if it won, 0 otherwise):

    Q[a] <- (1 - alpha) Q[a] + alpha (r + gamma max_b Q[b])          (max over the table *before* the update)

i.e. Q-learning in a one-state MDP, whose greedy policy is the learner's current "price". Nothing in the rule refers
to the rival, yet two such learners can sustain prices above the competitive level: an ask that was abandoned keeps
its stale (high) value, and under first price the incentive to undercut by exactly one grid step lets the pair
re-coordinate on high asks after an experiment (Banchio and Skrzypacz's explanation).

Initial values are optimistic: Q0 = q0 for every ask, by default value_scale / (1 - gamma) - no ask can earn more than
the user's value per period in expectation under the mechanisms here (a user never pays more than a perfect answer is
worth, in expectation), so every ask starts at least as attractive as it can ever be and is tried. The ties of this
flat start are broken uniformly at random by a seeded jitter of relative size 1e-9 (which ask a session tries first);
later exact ties (measure zero) go to the lowest ask.

Sessions. ``E`` sessions are independent copies of the experiment (one market of a
:class:`envs.batched.BatchedMarket` each). Session e's exploration coins and random asks come from its own generator
(seeded from the session's seed, on a stream disjoint from the market's three), drawn in blocks that are
chunk-invariant, so a session's trajectory depends on its seed only: not on how many sessions run beside it.

Asks and actions. The grid is in the ask's unit (money per query under per-query billing). ``basis="absolute"`` asks
the grid value itself (Banchio and Skrzypacz's bids; in the uniform duopoly with cost 0 and ``bid_scale`` 1 the action
is a[0] = ask); ``basis="margin"`` asks the honest ask (the expected cost) plus the grid value, for markets whose costs
vary by query. The action is the market's codec (:meth:`envs.layout.ObservationLayout.bid_action`); an ask the action
box cannot express is an error, never silently clipped.

Two faces:
- :class:`TabularQ`, the arrays and the update, driven by :mod:`training.tabular` through the market's own rewards;
- :class:`QLearningPolicy`, the same learner behind the :class:`agents.policy.Policy` interface, registered as the
  strategy ``qlearning``. It learns online from the observation alone: its profit of the last round is
  last_won * (last_price - its own expected cost of that round's query), which the observation carries (the repeated
  game's history: last clearing price, own last bid, whether it won). This equals the market's reward when eta = 1
  and the realised cost is the expected one (``uniform``); elsewhere it is the expected profit. With
  ``learning=False`` (or loaded from a train.py run) it plays its greedy asks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from agents.policy import Policy
from agents.registry import register_strategy
from envs.layout import BID, ObservationLayout

Basis = Literal["absolute", "margin"]
BLOCK = 256  # periods of exploration draws per session generated at once (speed only: draws are chunk-invariant)
LEARNER_STREAM = 3  # child of the session seed's SeedSequence used by the learner (the market uses children 0-2)
TIE_JITTER = 1e-9  # relative size of the seeded jitter that breaks the ties of the flat optimistic start


def banchio_skrzypacz_grid() -> tuple[float, ...]:
    """The ask grid 0.05, 0.10, ..., 0.95 (19 asks): Banchio and Skrzypacz's bid grid mirrored as a reverse auction."""
    return tuple(round(0.05 * k, 2) for k in range(1, 20))


@dataclass
class QConfig:
    """Parameters of a tabular Q-learner (defaults: Banchio and Skrzypacz's experiment).

    Attributes:
        grid: the asks (the ask's unit, money per query under per-query billing), increasing.
        alpha: learning rate.
        gamma: discount factor.
        eps0: exploration probability at t = 0.
        beta: exploration decay, eps_t = eps0 exp(-beta t).
        q0: initial value of every ask (default: value_scale / (1 - gamma), optimistic).
        basis: ``absolute`` (ask = grid value) or ``margin`` (ask = honest ask + grid value).
    """

    grid: tuple[float, ...] = field(default_factory=banchio_skrzypacz_grid)
    alpha: float = 0.05
    gamma: float = 0.99
    eps0: float = 0.025
    beta: float = 2e-4
    q0: float | None = None
    basis: Basis = "absolute"

    def __post_init__(self) -> None:
        self.grid = tuple(float(a) for a in self.grid)
        g = np.asarray(self.grid)
        if g.size < 1 or not np.all(np.isfinite(g)) or np.any(np.diff(g) <= 0):
            raise ValueError(f"q-learning: grid must be a non-empty increasing list of finite asks, got {self.grid}")
        if self.basis == "absolute" and g[0] < 0:
            raise ValueError(f"q-learning: absolute asks must be >= 0, got {self.grid}")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"q-learning: alpha must be in (0, 1], got {self.alpha!r}")
        if not 0.0 <= self.gamma < 1.0:
            raise ValueError(f"q-learning: gamma must be in [0, 1), got {self.gamma!r}")
        if not (0.0 <= self.eps0 <= 1.0 and self.beta >= 0.0 and np.isfinite(self.beta)):
            raise ValueError(
                f"q-learning: need 0 <= eps0 <= 1 and a finite beta >= 0, got {self.eps0!r}, {self.beta!r}"
            )
        if self.q0 is not None and not np.isfinite(self.q0):
            raise ValueError(f"q-learning: q0 must be finite, got {self.q0!r}")
        if self.basis not in ("absolute", "margin"):
            raise ValueError(f"q-learning: basis must be 'absolute' or 'margin', got {self.basis!r}")

    @property
    def n_asks(self) -> int:
        return len(self.grid)

    def initial_value(self, value_scale: float) -> float:
        """Q0: ``q0`` or the optimistic default value_scale / (1 - gamma)."""
        return float(self.q0) if self.q0 is not None else float(value_scale) / (1.0 - self.gamma)

    def epsilon(self, t: int) -> float:
        """Exploration probability of period t (0-based)."""
        return self.eps0 * float(np.exp(-self.beta * t))


def session_generator(seed: int | None) -> np.random.Generator:
    """The learner's generator of the session seeded ``seed``: child ``LEARNER_STREAM`` of its SeedSequence, disjoint
    from the market's streams (children 0-2 of the same seed)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(LEARNER_STREAM + 1)[LEARNER_STREAM])


class TabularQ:
    """Stateless Q-learners for ``n_learners`` providers in each of ``n_sessions`` sessions ([E, N, A] tables).

    Per period: :meth:`choose` (the asks' grid indices [E, N]: greedy, or random with probability eps_t), then
    :meth:`update` with the profits of the round. ``t`` counts periods.

    Args:
        n_sessions: E.
        n_learners: N (learners per session).
        config: the learner's parameters.
        seeds: one seed per session (its exploration stream and its tie-breaking jitter).
        value_scale: the market's value of a perfect answer (sets the optimistic default q0).
    """

    def __init__(
        self, n_sessions: int, n_learners: int, config: QConfig, seeds: Sequence[int | None], value_scale: float = 1.0
    ):
        if n_sessions < 1 or n_learners < 1:
            raise ValueError(f"q-learning: need >= 1 session and learner, got {n_sessions}, {n_learners}")
        if len(seeds) != n_sessions:
            raise ValueError(f"q-learning: {len(seeds)} seeds given for {n_sessions} sessions")
        self.config = config
        self.n_sessions, self.n_learners = E, N = n_sessions, n_learners
        A = config.n_asks
        self.q0 = config.initial_value(value_scale)
        self._streams = [session_generator(s) for s in seeds]
        jitter = np.empty((E, N * A))
        for row, rng in zip(jitter, self._streams):
            rng.random(out=row)
        self.Q = self.q0 + TIE_JITTER * abs(self.q0) * jitter.reshape(E, N, A)
        self._cells = np.arange(E * N).reshape(E, N) * A  # flat index of every (session, learner) table's ask 0
        self.t = 0
        self._block_start = 0
        self._coins = self._picks = np.empty((0, E, N))
        self._greedy: np.ndarray | None = None
        self._best: np.ndarray | None = None

    # -------------------------------------------------------------------------------------------------- acting

    def _draw_block(self) -> None:
        """The next BLOCK periods of exploration coins and random asks of every session, round-major."""
        E, N = self.n_sessions, self.n_learners
        draws = np.empty((E, BLOCK * N * 2))
        for row, rng in zip(draws, self._streams):
            rng.random(out=row)
        rounds = np.ascontiguousarray(draws.reshape(E, BLOCK, 2, N).transpose(1, 2, 0, 3))  # [k, 2, E, N]
        self._coins, self._picks = rounds[:, 0], rounds[:, 1]
        self._block_start = self.t

    def greedy(self) -> np.ndarray:
        """[E, N] the greedy ask index of every learner (the lowest ask among exact ties)."""
        return self.Q.argmax(axis=-1)

    def choose(self) -> np.ndarray:
        """[E, N] grid indices of this period's asks (eps_t-greedy)."""
        k = self.t - self._block_start
        if k >= self._coins.shape[0]:
            self._draw_block()
            k = 0
        greedy = self.greedy()
        self._greedy = greedy
        self._best = self.Q.reshape(-1).take(self._cells + greedy)  # max_b Q[b] before this period's update
        eps = self.config.epsilon(self.t)
        if eps <= 0.0:
            return greedy
        explore = self._coins[k] < eps
        if not explore.any():
            return greedy
        random_ask = np.minimum((self._picks[k] * self.config.n_asks).astype(np.int64), self.config.n_asks - 1)
        return np.where(explore, random_ask, greedy)

    @property
    def last_greedy(self) -> np.ndarray:
        """[E, N] the greedy asks of the period just chosen (before its update)."""
        if self._greedy is None:
            raise RuntimeError("no period chosen yet")
        return self._greedy

    # ------------------------------------------------------------------------------------------------ learning

    def update(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        """Q[a] <- (1 - alpha) Q[a] + alpha (r + gamma max_b Q[b]) for the ask a each learner played.

        Args:
            actions: [E, N] grid indices played this period (from :meth:`choose`).
            rewards: [E, N] each learner's profit of the round.
        """
        if self._best is None:
            raise RuntimeError("update() before choose()")
        cfg = self.config
        cells = self._cells + np.asarray(actions, dtype=np.int64)
        flat = self.Q.reshape(-1)
        q = flat.take(cells)
        flat.put(cells, q + cfg.alpha * (np.asarray(rewards, dtype=np.float64) + cfg.gamma * self._best - q))
        self._best = None
        self.t += 1

    def skip(self) -> None:
        """End the chosen period without learning from it (its reward is unknown)."""
        self._best = None
        self.t += 1


def update_rule(q: np.ndarray, action: int, reward: float, alpha: float, gamma: float) -> np.ndarray:
    """One stateless Q-learning update of a single table (the reference the vectorized :class:`TabularQ` follows):
    a copy of ``q`` with q[action] <- (1 - alpha) q[action] + alpha (reward + gamma max q)."""
    out = np.array(q, dtype=np.float64)
    out[action] = (1.0 - alpha) * out[action] + alpha * (reward + gamma * out.max())
    return out


# ------------------------------------------------------------------------------------------------- the codec


def ask_actions(layout: ObservationLayout, obs: np.ndarray, asks: np.ndarray, basis: Basis) -> np.ndarray:
    """a[0] for asks in the ask's unit ([...] like ``obs[..., 0]``); raises if an ask is outside the action box."""
    if basis == "margin":  # a margin >= 0 is the markup a[0] * ask_scale itself; below, a fraction of the honest ask
        margin = np.asarray(asks, dtype=np.float64)
        honest = layout.honest_ask(obs)
        a = np.where(margin >= 0.0, margin / layout.ask_scale, layout.bid_action(obs, honest + margin, honest))
    else:
        a = layout.bid_action(obs, asks)
    if not np.abs(a).max(initial=0.0) <= 1.0 + 1e-9:
        raise ValueError(
            f"q-learning: an ask of the grid is outside the action box (a[0] = {np.abs(a).max():.3f}; "
            f"asks reach 0 to the honest ask + ask_scale = {layout.ask_scale:g}): use a smaller grid, "
            f"basis='margin' or a larger bid_scale"
        )
    return np.clip(a, -1.0, 1.0)


class QLearningPolicy(Policy):
    """A tabular Q-learner behind the Policy interface (the strategy ``qlearning``), vectorized over the rows of its
    observation batch: row b is session b (one market of a batched market; a single observation is one session).

    Each :meth:`act` first learns from the round just played - its profit reconstructed from the observation,
    last_won * (last_price - own expected cost of the previous query) - then chooses the next ask. The first round of an
    episode (time_left = 1) carries no reward of this episode, so no update is made then. ``reset(seed)`` starts a
    fresh learner (evaluation plays call it once per play).

    Args:
        layout: the market's observation layout.
        seed: seed of the learner's sessions (session b uses seed + b).
        config: the learner's parameters (or its fields as keywords).
        learning: False to act greedily on fixed tables (``tables``) without exploring or updating.
        tables: [S, A] (or [A]) Q tables to start from (a trained learner's); rows beyond S reuse row b mod S.
    """

    name = "qlearning"

    def __init__(
        self,
        layout: ObservationLayout,
        seed: int | None = None,
        config: QConfig | None = None,
        learning: bool = True,
        tables: np.ndarray | None = None,
        **params: Any,
    ):
        if config is not None and params:
            raise ValueError(f"qlearning: give either config or its fields, not both ({sorted(params)})")
        self.layout = layout
        self.config = config or QConfig(**params)
        self.learning = bool(learning)
        self.tables = None if tables is None else np.atleast_2d(np.asarray(tables, dtype=np.float64))
        if self.tables is not None and self.tables.shape[1] != self.config.n_asks:
            raise ValueError(f"qlearning: tables have {self.tables.shape[1]} asks, the grid {self.config.n_asks}")
        if not self.learning and self.tables is None:
            raise ValueError("qlearning: a non-learning policy needs Q tables")
        self.grid = np.asarray(self.config.grid)
        self.seed = seed
        self.learner: TabularQ | None = None
        self._prev: tuple[np.ndarray, np.ndarray] | None = None  # (actions [B], own expected cost [B]) of last round

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.learner = None
        self._prev = None

    def _start(self, rows: int) -> TabularQ:
        base = 0 if self.seed is None else int(self.seed)
        learner = TabularQ(rows, 1, self.config, [base + b for b in range(rows)], self.layout.value_scale)
        if self.tables is not None:
            learner.Q[:, 0] = self.tables[np.arange(rows) % self.tables.shape[0]]
        return learner

    def observed_profit(self, obs: np.ndarray, own_cost: np.ndarray) -> np.ndarray:
        """[B] the profit of the round just played, read off the observations: last_won * (last_price - own cost of
        that round's query) (money; exact with eta = 1 and realised cost = expected cost)."""
        lay = self.layout
        price = obs[:, lay.last_price].astype(np.float64) * lay.value_scale
        return obs[:, lay.last_won].astype(np.float64) * (price - own_cost)

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs)
        single = obs.ndim == 1
        batch = obs[None] if single else obs.reshape(-1, obs.shape[-1])
        rows = batch.shape[0]
        if self.learner is None or self.learner.n_sessions != rows:
            self.learner, self._prev = self._start(rows), None
        learner = self.learner
        new_episode = bool(batch[0, self.layout.time_left] >= 1.0)
        if not self.learning:
            idx = learner.greedy()[:, 0]
        else:
            if self._prev is not None and not new_episode:
                actions, cost = self._prev
                if learner._best is None:  # choose() of the previous round primed the update
                    raise RuntimeError("qlearning: internal state out of step")
                learner.update(actions[:, None], self.observed_profit(batch, cost)[:, None])
            elif self._prev is not None:
                learner.skip()  # the last round of the previous episode is not seen: nothing to learn from
            idx = learner.choose()[:, 0]
            self._prev = (idx, self.layout.honest_bid(batch))
        asks = self.grid[idx]
        action = np.zeros((rows, 3), dtype=np.float32)
        action[:, BID] = ask_actions(self.layout, batch, asks, self.config.basis)
        return action[0] if single else action.reshape(*obs.shape[:-1], 3)


def _qlearning(layout: ObservationLayout, seed: int | None = None, **params: Any) -> Policy:
    """The strategy ``qlearning``: Banchio and Skrzypacz's learner with the grid in units of the market's value scale
    (asks 0.05 v, ..., 0.95 v; exactly their grid when v = 1)."""
    if "config" not in params and "grid" not in params:
        params["grid"] = tuple(round(layout.value_scale * a, 12) for a in banchio_skrzypacz_grid())
    return QLearningPolicy(layout, seed=seed, **params)


register_strategy("qlearning", _qlearning)
