"""What an evaluation produces, as typed records: the raw per-seed runs of every profile in every setting
(:class:`SettingResult`) and their summary per mechanism and billing (:class:`MechanismVerdict`: per profile,
provider and horizon a :class:`DeviationRecord`, per profile and horizon a :class:`MarketRecord`, the IC regret, the
paying lever and the verdict). ``report.json`` and ``metrics.csv`` are these records as plain data
(:func:`dataclasses.asdict`, field order kept)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Runs = list[dict[str, float]]  # one flat metrics dict per seed (envs.metrics.EpisodeStats.summary keys)


@dataclass
class ProfileRuns:
    """One profile played over every seed: its metrics per seed, the paired honest baseline's, a trace of its
    first episode (for plots), who deviated against whom, and with which levers."""

    deviation: str
    lever: str
    kind: str
    deviators: list[str]
    others: tuple[str, ...]
    runs: Runs
    trace: dict[str, np.ndarray]
    baseline: Runs = field(default_factory=list)
    alias_of: str | None = None  # the profile whose runs these are (the same actions, tested once)


@dataclass
class SettingResult:
    """Every profile of one mechanism in one market (billing, horizon); ``profiles["honest"]`` is all-honest play.
    ``note`` says why the setting does not count towards the verdict (a degenerate schedule), if it does not."""

    mechanism: str
    billing: str
    horizon: int
    scenario: str
    agents: list[str]
    value_scale: float
    profiles: dict[str, ProfileRuns]
    note: str | None = None

    @property
    def n_seeds(self) -> int:
        return len(self.profiles["honest"].runs)


@dataclass
class DeviationRecord:
    """One provider in one profile at one horizon: means with 95% CI half-widths over seeds, its paired gain over
    honest play (Student-t 95% CI; ``gain_se`` the standard error), the family-wise lower bound the verdict tests
    (``gain_lower``) and the smallest gain the test detects with 80% power (``detectable``); the market figures of
    the profile ride along. A one-lever variant of a deviation also carries its paired ``shortfall``: how much more
    the whole deviation earns on the same seeds (NaN for whole deviations)."""

    mechanism: str
    billing: str
    horizon: int
    profile: str
    deviation: str
    lever: str
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
    gain_lower: float
    detectable: float
    n_seeds: int
    user_utility: float
    user_utility_ratio: float
    full_info_ratio: float
    allocative_efficiency: float
    unserved_share: float
    market_payment: float
    shortfall: float = float("nan")  # a one-lever variant: the paired gain its whole deviation earns beyond it
    shortfall_se: float = float("nan")


@dataclass
class MarketRecord:
    """The market under one profile at one horizon: means with 95% CI half-widths over seeds, the user's utility
    relative to all-honest play and to the full-information benchmark, and the mechanism's diagnostics (means)."""

    mechanism: str
    billing: str
    horizon: int
    profile: str
    deviation: str
    lever: str
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
class Exploit:
    """A deviation whose gain clears the tolerance with family-wise confidence: who, how (profile and lever), where
    (horizon), how much (point estimate, 95% CI and the family-wise lower bound), and the lever that pays (the
    single-lever variant with the largest lower bound, or the deviation's own lever)."""

    provider: str
    profile: str
    deviation: str
    lever: str
    horizon: int
    gain: float
    gain_ci_low: float
    gain_ci_high: float
    gain_lower: float
    paying_lever: str


@dataclass
class MechanismVerdict:
    """One mechanism under one billing, judged over every horizon.

    ``ic_regret``: the deviation with the largest family-wise lower bound (a lower bound on exploitability), whether
    or not it clears the tolerance. ``persistence``: ``persistent`` when some exploit survives at the longest judged
    horizon, ``transient`` when every exploit vanishes there. ``detectable``: the largest gain the test could miss
    with 80% power at the longest judged horizon (its power). ``paying_lever``: the levers that pay (every single
    lever that earns an exploit on its own at the longest judged horizon - any horizon when none persists - else
    every smallest combination that does; comma-separated; then ``; undecided:`` and the levers whose one-lever
    deviations are still undecided at the seed cap, if any).
    ``notes``: horizons not judged and why, learners that stayed weaker than the best scripted deviation, deviations
    left undecided. ``undecided``: (horizon, profile) of the deviations whose family-wise lower bound does not clear
    the tolerance while their 95% CI reaches above it, where a decision turns on them
    (:func:`evaluation.summary.judge`).
    ``t_family``: the family's Student-t quantile at the first seeds (a deviation played on more seeds has its own,
    smaller one).
    """

    mechanism: str
    billing: str
    horizons: list[int]
    records: list[DeviationRecord]
    market: list[MarketRecord]
    exploited: bool
    verdict: str
    ic_regret: Exploit | None
    exploits: list[Exploit]
    persistence: str | None
    paying_lever: str | None
    deviations_tested: int
    t_family: float
    detectable: float
    notes: list[str] = field(default_factory=list)
    undecided: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ReportHeader:
    """What was evaluated, as the report states it."""

    scenario: str
    mechanisms: list[str]
    billings: list[str]
    horizons: list[int]
    seeds: int
    max_seeds: int
    target_half_width: float
    decision_seeds: int
    episodes: int
    n_providers: int
    strategies: list[str]
    run_dirs: dict[str, list[str]]
    tolerance: float
    overrides: dict[str, Any]
    learners: list[dict[str, Any]] = field(default_factory=list)


PROVIDER_KEYS = ("profit", "win_rate", "bid_markup", "substitution_rate", "mean_inflation", "payment")
MARKET_KEYS = (
    "user_utility",
    "payment",
    "value",
    "welfare",
    "allocative_efficiency",
    "unserved_share",
    "full_info_utility",
)
