"""Does a mechanism hold up against manipulation? Paired evaluation of strategy profiles in every setting (billing x
horizon), family-wise verdicts with the lever that pays (MECHANISMS.md §9), and the robustness report. The game
(``envs``, ``mechanisms``) and the strategies (``agents``) know nothing of it.

>>> from evaluation import EvalSpec, Setting, evaluate_setting, judge
>>> spec = EvalSpec(scenario="uniform", mechanisms=["second_price"], strategies=["markup"], seeds=4, horizons=[50])
>>> judge([evaluate_setting(spec, Setting("second_price", "per_query", 50))], tolerance=0.0).exploited
False
"""

from evaluation.config import EvalConfig, EvalSpec, Setting
from evaluation.profiles import Profile, learned_profiles, lever_variants, scripted_profiles
from evaluation.report import write_report
from evaluation.results import (
    DeviationRecord,
    Exploit,
    MarketRecord,
    MechanismVerdict,
    ProfileRuns,
    ReportHeader,
    SettingResult,
)
from evaluation.runner import (
    analytic_checks,
    evaluate_all,
    evaluate_setting,
    run_dirs_by_market,
    run_evaluation,
    verdicts,
)
from evaluation.statistics import mean_ci
from evaluation.summary import judge

__all__ = [
    "EvalConfig",
    "EvalSpec",
    "Setting",
    "Profile",
    "scripted_profiles",
    "learned_profiles",
    "lever_variants",
    "write_report",
    "DeviationRecord",
    "Exploit",
    "MarketRecord",
    "MechanismVerdict",
    "ProfileRuns",
    "ReportHeader",
    "SettingResult",
    "analytic_checks",
    "evaluate_all",
    "evaluate_setting",
    "run_dirs_by_market",
    "run_evaluation",
    "verdicts",
    "mean_ci",
    "judge",
]
