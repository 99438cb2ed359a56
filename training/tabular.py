"""Simultaneous tabular Q-learners playing the market: many independent sessions, every provider learning at once.

:func:`run_sessions` is the experiment of the algorithmic-collusion literature (Banchio and Skrzypacz 2022) run through
the market itself: one :class:`envs.batched.BatchedMarket` whose E markets are E independent sessions, stepped
period by period under any registered mechanism, with every provider a stateless Q-learner
(:class:`agents.qlearning.TabularQ`) learning from the market's rewards. A session has *converged* when its greedy
ask profile has not changed over its last ``window`` periods. What the session earned over that final window (profit
per provider, payment, user utility) is recorded, with the greedy asks and the Q tables.

:func:`save_tables` stores the learned tables in a run dir (``policies/<agent>.npz``), which is how
``train.py --mode simultaneous --algo qlearning`` saves them; :func:`agents.learned.load_policies` loads them.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from agents.qlearning import QConfig, TabularQ, ask_actions
from envs.batched import BatchedMarket
from envs.layout import ACTION_DIM, BID
from envs.market import make_batched
from mechanisms.base import Mechanism


@dataclass
class SessionsResult:
    """Outcome of E sessions of simultaneous Q-learners (arrays over sessions [E] and providers [E, N]).

    Attributes:
        scenario, mechanism: what was played. agents: provider names.
        config: the learners' parameters. grid: [A] the asks.
        periods: T, periods per session. window: the convergence window. seeds: each session's seed.
        greedy: [E, N] grid index of every learner's greedy ask at the end.
        stable_for: [E] periods since the session's greedy profile last changed (T if never).
        converged: [E] stable_for >= window.
        profit: [E, N] mean profit per period over the final window. payment: [E] mean payment per period (0 when
        unserved) over it; price: [E] mean payment per served period; user_utility: [E]; unserved: [E] share.
        tables: [E, N, A] the final Q tables.
        history_t: [K] period at the end of each recorded chunk; history_payment: [K] mean payment per period over
        the chunk and the sessions; history_greedy: [K, N] mean greedy ask per provider at the chunk's end;
        history_changing: [K] share of sessions whose greedy profile changed during the chunk.
        seconds: wall time of the learning loop; cpu_seconds: its CPU time (the machine may be shared).
    """

    scenario: str
    mechanism: str
    agents: list[str]
    config: QConfig
    grid: np.ndarray
    periods: int
    window: int
    seeds: list[int]
    greedy: np.ndarray
    stable_for: np.ndarray
    converged: np.ndarray
    profit: np.ndarray
    payment: np.ndarray
    price: np.ndarray
    user_utility: np.ndarray
    unserved: np.ndarray
    tables: np.ndarray
    history_t: np.ndarray
    history_payment: np.ndarray
    history_greedy: np.ndarray
    history_changing: np.ndarray
    seconds: float
    cpu_seconds: float = float("nan")

    @property
    def n_sessions(self) -> int:
        return len(self.seeds)

    @property
    def greedy_asks(self) -> np.ndarray:
        """[E, N] the greedy asks (the ask's unit)."""
        return self.grid[self.greedy]


def session_market(
    scenario: str | dict,
    mechanism: str | Mechanism,
    seeds: Sequence[int],
    periods: int,
    overrides: dict[str, Any] | None = None,
) -> BatchedMarket:
    """One market per session, seeded by the sessions' seeds, whose single episode lasts all ``periods`` (the
    mechanism's state - quality estimates, bid histories - carries over the whole run, as in a repeated game)."""
    return make_batched(
        scenario, mechanism, len(seeds), seeds=list(seeds), **{**(overrides or {}), "horizon": int(periods)}
    )


def run_sessions(
    scenario: str | dict,
    mechanism: str | Mechanism,
    n_sessions: int,
    periods: int,
    config: QConfig | None = None,
    seed: int = 0,
    window: int = 1000,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    n_records: int = 200,
) -> SessionsResult:
    """Run ``n_sessions`` independent sessions of ``periods`` periods in which every provider is a Q-learner.

    Each period every learner picks an ask (eps_t-greedy on its table), the asks go through the market's action codec
    and :meth:`BatchedMarket.step` (so any registered mechanism can be played), and every learner updates the ask it
    played with its own profit. Session e is seeded ``seed + e`` (its market and its learners), so its result does not
    depend on how many sessions run beside it.

    Args:
        scenario: scenario preset, YAML path or mapping (e.g. ``"uniform"`` with ``overrides`` ``cost_low=0,
            cost_high=0, n_providers=2``: Banchio and Skrzypacz's duopoly with cost 0 and value 1).
        mechanism: registry name or instance.
        n_sessions: E.
        periods: T (>= window).
        config: the learners' parameters (default: Banchio and Skrzypacz's).
        seed: session e uses seed + e.
        window: a session is converged when its greedy profile is unchanged over its last ``window`` periods; the
            recorded outcomes are the means over those periods.
        overrides: scenario fields and mechanism parameters.
        progress: show a progress bar.
        n_records: chunks of the recorded history.
    """
    config = config or QConfig()
    if periods < 1 or window < 1 or periods < window:
        raise ValueError(f"run_sessions: need periods >= window >= 1, got periods={periods}, window={window}")
    seeds = [seed + e for e in range(n_sessions)]
    market = session_market(scenario, mechanism, seeds, periods, overrides)
    lay, E, N = market.layout, n_sessions, market.n_providers
    grid = np.asarray(config.grid)
    learners = TabularQ(E, N, config, seeds, market.config.value_scale)
    actions = np.zeros((E, N, ACTION_DIM))
    last_change = np.zeros(E, dtype=np.int64)
    previous = np.full((E, N), -1)
    profit, payment, served, user = np.zeros((E, N)), np.zeros(E), np.zeros(E), np.zeros(E)
    chunk = max(1, periods // max(1, n_records))
    hist_t, hist_pay, hist_greedy, hist_changing = [], [], [], []
    chunk_pay, chunk_changed = np.zeros(E), np.zeros(E, dtype=bool)
    window_start = periods - window
    obs = market.reset()
    bar = tqdm(
        total=periods,
        desc=f"q-learning {market.mechanism.name}",
        unit="period",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    for t in range(periods):
        idx = learners.choose()
        greedy = learners.last_greedy
        changed = (greedy != previous).any(axis=1)
        if changed.any():
            last_change[changed] = t
            chunk_changed |= changed
            previous = greedy
        actions[:, :, BID] = ask_actions(lay, obs, grid[idx], config.basis)
        obs, rewards, _ = market.step(actions)
        learners.update(idx, rewards)
        r = market.played()
        chunk_pay += r.payment
        if t >= window_start:
            profit += rewards
            payment += r.payment
            served += ~r.unserved
            user += r.user_utility
        if (t + 1) % chunk == 0 or t + 1 == periods:
            n = (t % chunk) + 1
            hist_t.append(t + 1)
            hist_pay.append(float(chunk_pay.mean()) / n)
            hist_greedy.append(grid[learners.greedy()].mean(axis=0))
            hist_changing.append(float(chunk_changed.mean()))
            chunk_pay, chunk_changed = np.zeros(E), np.zeros(E, dtype=bool)
        if (t + 1) % 1000 == 0:
            bar.update(1000)
    bar.update(periods - bar.n)
    bar.close()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    final = learners.greedy()
    last_change[(final != previous).any(axis=1)] = periods
    stable_for = periods - last_change
    return SessionsResult(
        scenario=market.config.name,
        mechanism=market.mechanism.name,
        agents=list(market.possible_agents),
        config=config,
        grid=grid,
        periods=periods,
        window=window,
        seeds=seeds,
        greedy=final,
        stable_for=stable_for,
        converged=stable_for >= window,
        profit=profit / window,
        payment=payment / window,
        price=np.divide(payment, served, out=np.zeros(E), where=served > 0),
        user_utility=user / window,
        unserved=1.0 - served / window,
        tables=learners.Q.copy(),
        history_t=np.array(hist_t),
        history_payment=np.array(hist_pay),
        history_greedy=np.array(hist_greedy),
        history_changing=np.array(hist_changing),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
    )


# ------------------------------------------------------------------------------------------- saved Q tables


def save_tables(run_dir: str | Path, result: SessionsResult) -> dict[str, str]:
    """Write every provider's learned tables ([E, A], one row per session) to ``run_dir/policies/<agent>.npz``;
    returns the manifest's ``policies`` mapping."""
    folder = Path(run_dir) / "policies"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, agent in enumerate(result.agents):
        np.savez(folder / f"{agent}.npz", tables=result.tables[:, i], grid=result.grid)
        out[agent] = f"{agent}.npz"
    return out


def config_record(config: QConfig) -> dict[str, Any]:
    """The learner's parameters as JSON-friendly data (for manifests and reports)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
