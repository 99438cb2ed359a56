"""What an evaluation produces, as typed records: the raw per-seed runs of every profile
(:class:`MechanismResult`) and their summary (:class:`MechanismSummary`: per profile x provider a
:class:`DeviationRecord`, per profile a :class:`MarketRecord`, the IC regret and the verdict). ``report.json`` and
``metrics.csv`` are these records as plain data (:func:`dataclasses.asdict`, field order kept)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Runs = list[dict[str, float]]  # one flat metrics dict per seed (envs.metrics.EpisodeStats.summary keys)


@dataclass
class ProfileRuns:
    """One profile played over every seed: its metrics per seed, the paired honest baseline's, a trace of its
    first episode (for plots), and who deviated against whom."""

    kind: str
    deviators: list[str]
    others: tuple[str, ...]
    runs: Runs
    trace: dict[str, np.ndarray]
    baseline: Runs = field(default_factory=list)


@dataclass
class MechanismResult:
    """Every profile of one mechanism (``profiles["honest"]`` is all-honest play)."""

    mechanism: str
    scenario: str
    agents: list[str]
    value_scale: float
    profiles: dict[str, ProfileRuns]


@dataclass
class DeviationRecord:
    """One provider in one profile: means with 95% CI half-widths over seeds, and its paired gain over honest play
    (``gain_se`` is the gain's standard error); the market figures of the profile ride along."""

    mechanism: str
    profile: str
    kind: str
    provider: str
    deviator: bool
    profit: float
    profit_ci: float
    win_rate: float
    win_rate_ci: float
    bid_markup: float
    bid_markup_ci: float
    substitution_rate: float
    substitution_rate_ci: float
    mean_inflation: float
    mean_inflation_ci: float
    payment: float
    payment_ci: float
    gain: float
    gain_ci_low: float
    gain_ci_high: float
    gain_se: float
    user_utility: float
    user_utility_ratio: float
    full_info_ratio: float
    allocative_efficiency: float
    unserved_share: float
    market_payment: float


@dataclass
class MarketRecord:
    """The market under one profile: means with 95% CI half-widths over seeds, the user's utility relative to
    all-honest play and to the full-information benchmark, and the mechanism's own diagnostics (means)."""

    mechanism: str
    profile: str
    kind: str
    user_utility: float
    user_utility_ci: float
    payment: float
    payment_ci: float
    value: float
    value_ci: float
    welfare: float
    welfare_ci: float
    allocative_efficiency: float
    allocative_efficiency_ci: float
    unserved_share: float
    unserved_share_ci: float
    full_info_utility: float
    full_info_utility_ci: float
    user_utility_ratio: float
    full_info_ratio: float
    mechanism_events: dict[str, float]


@dataclass
class ICRegret:
    """The largest gain found: who, by which profile, and its 95% CI (a lower bound on exploitability)."""

    provider: str
    profile: str
    gain: float
    gain_ci_low: float
    gain_ci_high: float


@dataclass
class MechanismSummary:
    """One mechanism's records, IC regret and verdict."""

    mechanism: str
    records: list[DeviationRecord]
    market: list[MarketRecord]
    ic_regret: ICRegret | None
    verdict: str
    exploited: bool
    deviations_tested: int
    z_family: float


@dataclass
class ReportHeader:
    """What was evaluated, as the report states it."""

    scenario: str
    mechanisms: list[str]
    seeds: int
    episodes: int
    horizon: int
    n_providers: int
    strategies: list[str]
    run_dirs: dict[str, list[str]]
    tolerance: float
    overrides: dict[str, Any]


PROVIDER_KEYS = ("profit", "win_rate", "bid_markup", "substitution_rate", "mean_inflation", "payment")
MARKET_KEYS = ("user_utility", "payment", "value", "welfare", "allocative_efficiency", "unserved_share",
               "full_info_utility")
