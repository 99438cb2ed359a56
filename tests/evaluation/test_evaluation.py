"""The robustness report: paired gains, confidence intervals, verdicts and clear errors (MECHANISMS.md §9)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import evaluate as evaluate_cli
from evaluation import EvalSpec, evaluate_mechanism, summarize
from training import TrainConfig, train
from envs.metrics import MARKET_METRICS


def summary(mechanism, strategies=("markup",), seeds=6, scenario="uniform", horizon=200, **over):
    spec = EvalSpec(scenario=scenario, mechanisms=[mechanism], strategies=list(strategies), seeds=seeds,
                    horizon=horizon, overrides=over)
    return summarize(evaluate_mechanism(spec, mechanism), tolerance=0.0)


def deviation(s, profile, provider="provider_0"):
    return next(r for r in s.records if r.profile == profile and r.provider == provider)


def test_honest_against_honest_gains_exactly_zero():
    s = summary("first_price", seeds=3)
    for r in s.records:
        if r.profile == "honest":
            assert r.gain == 0.0 and r.gain_ci_low == 0.0 == r.gain_ci_high


def test_first_price_markup_gains_second_price_markup_does_not():
    fp = deviation(summary("first_price", n_providers=3), "markup@provider_0")
    sp = deviation(summary("second_price", n_providers=3), "markup@provider_0")
    assert fp.gain_ci_low > 0.0, fp
    assert sp.gain_ci_high < 0.005 and sp.gain <= 1e-9, sp  # a markup can only lose rounds under 2nd price


def test_confidence_intervals_use_student_t():
    """20 seeds: the 95% half-width is t_{0.975, 19} = 2.093 standard errors, not the normal 1.96."""
    from evaluation.statistics import mean_ci

    x = np.random.default_rng(0).normal(size=20)
    mean, half = mean_ci(x)
    se = x.std(ddof=1) / np.sqrt(20)
    assert mean == pytest.approx(x.mean())
    assert half / se == pytest.approx(2.0930, abs=1e-4)
    assert mean_ci(x[:2])[1] / (x[:2].std(ddof=1) / np.sqrt(2)) == pytest.approx(12.706, abs=1e-3)


def test_confidence_intervals_shrink_with_seeds():
    widths = []
    for seeds in (4, 16):
        r = deviation(summary("first_price", seeds=seeds, horizon=100), "markup@provider_0")
        widths.append(r.gain_ci_high - r.gain_ci_low)
    assert widths[1] < 0.75 * widths[0], widths


def test_report_carries_every_metric(tmp_path):
    out = tmp_path / "report"
    code = evaluate_cli.main(["--scenario", "capitals", "--mechanism", "first_price,second_price", "--seeds", "2",
                              "--horizon", "40", "--out", str(out), "--workers", "1", "--no-progress"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    record_keys = {"mechanism", "profile", "provider", "profit", "gain", "gain_ci_low", "gain_ci_high", "bid_markup",
                   "substitution_rate", "mean_inflation", "win_rate", "user_utility", "user_utility_ratio",
                   "full_info_ratio", "allocative_efficiency", "unserved_share", "market_payment"}
    assert record_keys <= set(report["records"][0])
    assert all(set(MARKET_METRICS) <= set(row) for row in report["market"])
    assert set(report["ic_regret"]) == {"first_price", "second_price"}
    assert "unserved_rate" in report["market"][0]["mechanism_events"]
    for name in ("report.md", "metrics.csv", "plots/manipulation_gain.png", "plots/bids_first_price.png",
                 "plots/user_utility_second_price.png"):
        assert (out / name).is_file(), name
    assert list((out / "tb").glob("events.out.tfevents*"))
    assert "| first_price |" in (out / "report.md").read_text()


def test_learned_run_is_evaluated_and_mismatches_are_clear_errors(tmp_path, capsys):
    run = tmp_path / "run"
    train(TrainConfig(scenario="capitals", mechanism="first_price", timesteps=512, n_envs=2, n_steps=64,
                      batch_size=64, n_epochs=1, eval_every=0, checkpoint_every=0, eval_episodes=1,
                      run_dir=str(run)), progress=False)
    out = tmp_path / "out"
    assert evaluate_cli.main(["--mechanism", "first_price", "--run-dir", str(run), "--seeds", "2", "--horizon", "30",
                              "--strategies", "markup", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    profiles = {r["profile"] for r in json.loads((out / "report.json").read_text())["records"]}
    assert "learned@provider_0:run" in profiles
    capsys.readouterr()
    assert evaluate_cli.main(["--scenario", "uniform", "--set", "n_providers=3", "--mechanism", "first_price",
                              "--run-dir", str(run), "--out", str(out), "--no-progress"]) == 2
    assert "does not match this market" in capsys.readouterr().err
    assert evaluate_cli.main(["--run-dir", str(tmp_path / "missing"), "--out", str(out), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert evaluate_cli.main(["--mechanism", "second_price", "--run-dir", str(run), "--out", str(out),
                              "--no-progress"]) == 2
    assert "not evaluated" in capsys.readouterr().err


def test_uniform_revenue_equivalence_in_the_analytic_checks(tmp_path):
    from evaluation import analytic_checks
    spec = EvalSpec(scenario="uniform", mechanisms=["first_price", "second_price"], seeds=8, horizon=250,
                    overrides={"n_providers": 3})
    check = analytic_checks(spec)["revenue_equivalence"]
    assert abs(check["difference"]) < max(2.5 * check["difference_ci"], 0.02)
    assert check["first_price_bne_payment"] == pytest.approx(2 / 4, abs=0.03)
    assert np.isfinite(check["second_price_truthful_payment"])
