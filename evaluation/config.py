"""What an evaluation runs: :class:`EvalConfig` (the user's settings: YAML files under ``configs/evaluate/`` and the
flags of ``evaluate.py``) and :class:`EvalSpec` (the resolved market, mechanisms, profiles and seeds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import mechanisms
from envs.config import ConfigError
from envs.batched import BatchedMarket
from envs.market import make_batched, parallel_env, raw_env
from evaluation.profiles import DEFAULT_STRATEGIES


@dataclass
class EvalConfig:
    """Settings of an evaluation; the same keys work in YAML (``--config``) and as flags.

    Attributes:
        scenario: scenario preset or YAML path.
        mechanisms: mechanisms to evaluate (``all``: every registered one).
        overrides: scenario fields and mechanism parameters (``--set KEY=VALUE``).
        strategies: scripted deviations, each played by every provider in turn.
        run_dirs: train.py run dirs whose learned policies are evaluated (each on its own mechanism).
        seeds: independent seeds, the unit of the confidence intervals.
        episodes: episodes per seed.
        horizon: rounds per episode (default: the scenario's).
        out: output directory of the report.
        train: first train best-response learners for every mechanism (in ``out/runs/<mechanism>``).
        train_timesteps: transitions per learner when training.
        train_learners: agents that learn when training (``all``: every provider, each in turn).
        workers: parallel processes.
        tolerance: gain per round the family-wise lower bound must exceed to count as exploitation.
        collusion: add the collusion column: simultaneous PPO learners per mechanism and their collusion index
            Delta (:func:`training.simultaneous.collusion_delta`; off by default: it trains per mechanism).
        collusion_timesteps: transitions per learner of those runs (default: ``train_timesteps``).
    """

    scenario: str = "capitals"
    mechanisms: list[str] = field(default_factory=lambda: list(mechanisms.DEFAULT_MECHANISMS))
    overrides: dict[str, Any] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    run_dirs: list[str] = field(default_factory=list)
    seeds: int = 20
    episodes: int = 1
    horizon: int | None = None
    out: str = "reports/latest"
    train: bool = False
    train_timesteps: int = 100_000
    train_learners: list[str] = field(default_factory=lambda: ["all"])
    workers: int = 2
    tolerance: float = 0.0
    collusion: bool = False
    collusion_timesteps: int | None = None

    def __post_init__(self) -> None:
        if self.mechanisms == ["all"]:
            self.mechanisms = sorted(mechanisms.REGISTRY)
        unknown = [m for m in self.mechanisms if m not in mechanisms.REGISTRY]
        if unknown:
            raise ConfigError(f"unknown mechanism(s) {unknown}; choose from {sorted(mechanisms.REGISTRY)} or 'all'")


@dataclass
class EvalSpec:
    """What to evaluate: the market, the mechanisms, the profiles and the seeds."""

    scenario: str
    mechanisms: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: list(DEFAULT_STRATEGIES))
    run_dirs: dict[str, list[str]] = field(default_factory=dict)  # mechanism -> run dirs
    seeds: int = 10
    episodes: int = 1
    horizon: int | None = None
    base_seed: int = 1_000

    def market(self, mechanism: str) -> BatchedMarket:
        """One market per (seed, episode) of this evaluation, under ``mechanism``."""
        over = dict(self.overrides)
        if self.horizon is not None:
            over["horizon"] = self.horizon
        return make_batched(self.scenario, mechanism, self.seeds * self.episodes, **over)

    def single_market(self, mechanism: str) -> raw_env:
        """The PettingZoo env of this evaluation's market under ``mechanism`` (one market)."""
        over = dict(self.overrides)
        if self.horizon is not None:
            over["horizon"] = self.horizon
        return parallel_env(self.scenario, mechanism, **over)

    def seed_list(self, seed_index: int) -> list[int]:
        """The episode seeds of one independent seed (the unit of the confidence intervals)."""
        return [self.base_seed + 1000 * seed_index + e for e in range(self.episodes)]

    def all_seeds(self) -> list[int]:
        """Every market's seed, seed-major: market k * episodes + e plays episode e of seed k."""
        return [s for k in range(self.seeds) for s in self.seed_list(k)]


