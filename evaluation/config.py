"""What an evaluation runs: :class:`EvalConfig` (the user's settings: YAML files under ``configs/evaluate/`` and the
flags of ``evaluate.py``), the :class:`Setting` grid it spans (mechanism x billing x horizon) and :class:`EvalSpec`
(the resolved markets, profiles and seeds)."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import mechanisms
from agents.registry import strategy_names
from agents.scripted import DEVIATIONS
from envs.batched import BatchedMarket
from envs.config import ConfigError, check_fields
from envs.market import make_batched, parallel_env, raw_env

Billing = Literal["per_query", "per_token"]
BackendName = Literal["process", "ray"]
LIST_PRICE = "list_price"  # the billing of mechanisms that name no price (second_best bills list prices)
MAX_DECISION_SEEDS = 4_999  # seeds 0..4998 stay below the learners' selection seeds (training.config.SELECTION_SEED)


@dataclass
class EvalConfig:
    """Settings of an evaluation; the same keys work in YAML (``--config``) and as flags.

    Attributes:
        scenario: scenario preset or YAML path.
        mechanisms: mechanisms to evaluate (``all``: every registered one).
        overrides: scenario fields and mechanism parameters (``--set KEY=VALUE``).
        billings: how the user pays a bid-based mechanism's winner: ``per_query`` and/or ``per_token`` (a price per
            reported output token, where padding tokens can pay); each is a separate market.
        horizons: rounds per episode at which every mechanism is judged; an exploit significant at the longest is
            persistent, one that vanishes there transient.
        strategies: scripted deviations, each played by every provider in turn.
        levers: also play every deviation with one lever at a time (bid, substitution, inflation), to name the lever
            that pays.
        run_dirs: train.py run dirs whose learned policies are evaluated (each in its own mechanism's market).
        seeds: independent seeds to start with (the unit of the confidence intervals).
        max_seeds: a deviation (with its lever variants) plays more seeds (doubling) up to this many until each of
            its gains' family-wise CI half-width is at most ``target_half_width``.
        target_half_width: the family-wise CI half-width of a gain (money per round) that stops adding seeds.
        decision_seeds: a deviation a decision of the verdict turns on (exploited, the levers that pay, persistence)
            plays on more seeds (doubling) while its family-wise lower bound does not clear the tolerance and its
            95% confidence interval reaches above it, up to this many
            (:func:`evaluation.runner.resolve_undecided`; at most 4,999, below the learners' selection seeds).
        episodes: episodes per seed.
        out: output directory of the report.
        train: first train best-response learners for every mechanism and billing (in ``out/runs/``).
        train_timesteps: the most transitions one learner seed trains (it stops once it matches the best scripted
            deviation on the selection seeds).
        train_seeds: learner seeds per mechanism, billing and provider; the strongest on the selection seeds is
            evaluated.
        train_learners: agents that learn when training (``all``: every provider, each against truthful others).
        train_horizon: the horizon learners train at (default: the first of ``horizons`` at which the mechanism's
            schedule is not degenerate).
        selection_episodes: markets of each learner's gain measurements on the selection seeds.
        train_chunk: learner steps between those measurements (where a learner may stop early) and between its
            checkpoints (where a killed evaluation resumes it).
        workers: jobs run at once: the size of the process pool, or the CPUs of a local Ray.
        backend: where the jobs run (each setting: mechanism x billing x horizon with every profile and seed of it,
            and each learner seed of ``train``): ``process``, a local pool of ``workers`` processes, or ``ray``, one
            Ray task each on a local Ray or the cluster at ``address`` (the optional extra: pip install -e '.[ray]').
            Both give the same report.
        address: the Ray cluster to run on (``auto``: the one ``ray start`` started on this node; or the head's
            ``<ip>:6379``); only with ``backend`` ray. The nodes must share the working directory at the same path.
        tolerance: gain per round the family-wise lower bound must exceed to count as exploitation.
        seed: shifts every seed of the run (evaluation, selection and learner seeds): two runs with different seeds
            are independent replications.
        collusion: add the collusion column: simultaneous PPO learners per mechanism and their collusion index
            Delta (:func:`training.simultaneous.collusion_delta`; off by default: it trains per mechanism).
        collusion_timesteps: transitions per learner of those runs (default: ``train_timesteps``).
    """

    scenario: str = "capitals"
    mechanisms: list[str] = field(default_factory=lambda: list(mechanisms.DEFAULT_MECHANISMS))
    overrides: dict[str, Any] = field(default_factory=dict)
    billings: list[Billing] = field(default_factory=lambda: ["per_query", "per_token"])
    horizons: list[int] = field(default_factory=lambda: [256, 4096])
    strategies: list[str] = field(default_factory=lambda: list(DEVIATIONS))
    levers: bool = True
    run_dirs: list[str] = field(default_factory=list)
    seeds: int = 20
    max_seeds: int = 80
    target_half_width: float = 0.01
    decision_seeds: int = 1_280
    episodes: int = 1
    out: str = "reports/latest"
    train: bool = False
    train_timesteps: int = 300_000
    train_seeds: int = 3
    train_learners: list[str] = field(default_factory=lambda: ["all"])
    train_horizon: int | None = None
    selection_episodes: int = 16
    train_chunk: int = 50_000
    workers: int = 2
    backend: BackendName = "process"
    address: str | None = None
    tolerance: float = 0.0
    seed: int = 0
    collusion: bool = False
    collusion_timesteps: int | None = None

    def __post_init__(self) -> None:
        check_fields(self, "evaluate config")
        if self.mechanisms == ["all"]:
            self.mechanisms = sorted(mechanisms.REGISTRY)
        unknown = [m for m in self.mechanisms if m not in mechanisms.REGISTRY]
        if unknown or not self.mechanisms:
            raise ConfigError(
                f"evaluate config: field 'mechanisms': unknown mechanism(s) {unknown or '(none given)'}; "
                f"choose from {sorted(mechanisms.REGISTRY)} or 'all'"
            )
        unknown = [s for s in self.strategies if s not in strategy_names()]
        if unknown:
            raise ConfigError(
                f"evaluate config: field 'strategies': unknown strategy(s) {unknown}; choose from {strategy_names()}"
            )
        if not (self.strategies or self.run_dirs or self.train):
            raise ConfigError(
                "evaluate config: field 'strategies' is empty and there are no run dirs and no "
                "training: nothing to evaluate"
            )
        if not self.train_learners:
            raise ConfigError("evaluate config: field 'train_learners': expected agent ids or 'all', got []")
        for name in (
            "seeds",
            "max_seeds",
            "episodes",
            "train_timesteps",
            "train_seeds",
            "selection_episodes",
            "train_chunk",
            "workers",
            "train_horizon",
            "collusion_timesteps",
        ):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"evaluate config: field {name!r} must be >= 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise ConfigError(f"evaluate config: field 'seed' must be >= 0, got {self.seed}")
        if self.max_seeds < self.seeds:
            raise ConfigError(
                f"evaluate config: field 'max_seeds' ({self.max_seeds}) must be >= 'seeds' ({self.seeds})"
            )
        if not self.max_seeds <= self.decision_seeds <= MAX_DECISION_SEEDS:
            raise ConfigError(
                f"evaluate config: field 'decision_seeds' ({self.decision_seeds}) must be between 'max_seeds' "
                f"({self.max_seeds}) and {MAX_DECISION_SEEDS} (seed k's markets are seeded base + 1000 k; the "
                f"learners' selection seeds start 4,999,000 above the base)"
            )
        if not self.horizons or min(self.horizons) < 1:
            raise ConfigError(f"evaluate config: field 'horizons' must list positive integers, got {self.horizons}")
        if not self.billings:
            raise ConfigError("evaluate config: field 'billings' must name per_query and/or per_token")
        for name in ("tolerance", "target_half_width"):
            if getattr(self, name) < 0:
                raise ConfigError(
                    f"evaluate config: field {name!r} must be a finite number >= 0, got {getattr(self, name)!r}"
                )
        if self.backend not in typing.get_args(BackendName):
            raise ConfigError(
                f"evaluate config: field 'backend' must be one of {list(typing.get_args(BackendName))}, "
                f"got {self.backend!r}"
            )
        if self.address is not None and (self.backend != "ray" or not self.address.strip()):
            raise ConfigError(
                f"evaluate config: field 'address' ({self.address!r}) names a Ray cluster: it needs "
                f"backend 'ray' (--backend ray) and a non-empty address"
            )


@dataclass(frozen=True)
class Setting:
    """One market an evaluation judges a mechanism in: its billing and its horizon."""

    mechanism: str
    billing: str
    horizon: int

    @property
    def market_key(self) -> tuple[str, str]:
        """The (mechanism, billing) a learner is trained for (it is evaluated at every horizon)."""
        return self.mechanism, self.billing

    @property
    def label(self) -> str:
        return f"{self.mechanism}/{self.billing}/T={self.horizon}"


def billing_of(mechanism: str, billing: str) -> str:
    """The billing a mechanism is played under: ``list_price`` for mechanisms that name no price, else ``billing``."""
    return LIST_PRICE if mechanisms.REGISTRY[mechanism].billing == LIST_PRICE else billing


@dataclass
class EvalSpec:
    """What to evaluate: the market, the mechanisms, billings and horizons, the profiles and the seeds.

    ``run_dirs`` maps (mechanism, billing) to train.py run dirs whose policies are evaluated in that market.
    """

    scenario: str
    mechanisms: list[str]
    overrides: dict[str, Any] = field(default_factory=dict)
    strategies: list[str] = field(default_factory=lambda: list(DEVIATIONS))
    run_dirs: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    billings: list[str] = field(default_factory=lambda: ["per_query"])
    horizons: list[int] = field(default_factory=lambda: [256])
    levers: bool = True
    seeds: int = 10
    max_seeds: int | None = None
    target_half_width: float = 0.0
    decision_seeds: int | None = None
    episodes: int = 1
    base_seed: int = 1_000

    @staticmethod
    def base_seed_of(seed: int) -> int:
        """The first market seed of a run with ``EvalConfig.seed``: runs with different seeds share no market."""
        return 1_000 + 10_000_000 * seed

    @property
    def looks(self) -> int:
        """How many times a verdict may look at the runs: once, plus every doubling from ``seeds`` up to
        ``decision_seeds`` (:func:`evaluation.runner.resolve_undecided`); the family-wise test counts each look."""
        if not self.decision_seeds or self.decision_seeds <= self.seeds:
            return 1
        return 1 + math.ceil(math.log2(self.decision_seeds / self.seeds))

    def settings(self) -> list[Setting]:
        """Every (mechanism, billing, horizon) to judge, mechanisms that bill list prices once per horizon."""
        out: list[Setting] = []
        for m in self.mechanisms:
            for billing in dict.fromkeys(billing_of(m, b) for b in self.billings):
                out += [Setting(m, billing, T) for T in self.horizons]
        return out

    def _overrides(self, setting: Setting) -> dict[str, Any]:
        over = {**self.overrides, "horizon": setting.horizon}
        if setting.billing != LIST_PRICE:
            over["billing"] = setting.billing
        return over

    def market(self, setting: Setting, n_markets: int) -> BatchedMarket:
        """``n_markets`` markets of a setting."""
        return make_batched(self.scenario, setting.mechanism, n_markets, **self._overrides(setting))

    def single_market(self, setting: Setting) -> raw_env:
        """The PettingZoo env of a setting (one market)."""
        return parallel_env(self.scenario, setting.mechanism, **self._overrides(setting))

    def seed_list(self, seed_index: int) -> list[int]:
        """The episode seeds of one independent seed (the unit of the confidence intervals)."""
        return [self.base_seed + 1000 * seed_index + e for e in range(self.episodes)]

    def seeds_between(self, first: int, stop: int) -> list[int]:
        """Every market's seed for independent seeds ``first .. stop - 1``, seed-major (market k * episodes + e plays
        episode e of seed k)."""
        return [s for k in range(first, stop) for s in self.seed_list(k)]
