"""Does a mechanism hold up against manipulation? Paired evaluation of strategy profiles (MECHANISMS.md §9) and the
robustness report. The game (``envs``, ``mechanisms``) and the strategies (``agents``) know nothing of it.

>>> from evaluation import EvalSpec, evaluate_mechanism, summarize
>>> spec = EvalSpec(scenario="uniform", mechanisms=["second_price"], strategies=["markup"], seeds=3, horizon=50)
>>> summarize(evaluate_mechanism(spec, "second_price"), tolerance=0.0).exploited
False
"""

from evaluation.config import EvalConfig, EvalSpec
from evaluation.profiles import DEFAULT_STRATEGIES, Profile, learned_profiles, scripted_profiles
from evaluation.report import write_report
from evaluation.results import (DeviationRecord, ICRegret, MarketRecord, MechanismResult, MechanismSummary,
                                ProfileRuns, ReportHeader)
from evaluation.runner import analytic_checks, evaluate_all, evaluate_mechanism, run_evaluation
from evaluation.statistics import mean_ci
from evaluation.summary import summarize

__all__ = [
    "EvalConfig", "EvalSpec", "DEFAULT_STRATEGIES", "Profile", "scripted_profiles", "learned_profiles",
    "write_report", "DeviationRecord", "ICRegret", "MarketRecord", "MechanismResult", "MechanismSummary",
    "ProfileRuns", "ReportHeader", "analytic_checks", "evaluate_all", "evaluate_mechanism", "run_evaluation",
    "mean_ci", "summarize",
]
