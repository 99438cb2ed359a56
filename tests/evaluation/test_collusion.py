"""Collusion: the index, the grid stage game's benchmarks, and Banchio and Skrzypacz's qualitative result reproduced by
Q-learners stepping the market (first price: collusive; second price: competitive)."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from agents.qlearning import QConfig, banchio_skrzypacz_grid
from evaluation.collusion import collusion_index, stage_game, summarize_sessions

DUOPOLY = {"cost_low": 0.0, "cost_high": 0.0, "n_providers": 2}
GRID = np.array(banchio_skrzypacz_grid())


def test_collusion_index_formula():
    assert collusion_index(0.25, 0.025, 0.475) == pytest.approx(0.5)
    assert collusion_index(0.025, 0.025, 0.475) == pytest.approx(0.0)
    assert collusion_index(0.475, 0.025, 0.475) == pytest.approx(1.0)
    np.testing.assert_allclose(collusion_index(np.array([0.0, 0.7]), 0.1, 0.5), [-0.25, 1.5])
    with pytest.raises(ValueError, match="undefined"):
        collusion_index(0.3, 0.4, 0.4)


@pytest.fixture(scope="module")
def games():
    return {
        m: stage_game("uniform", m, GRID, periods=400, n_seeds=2, overrides=DUOPOLY)
        for m in ("first_price", "second_price")
    }


def test_stage_game_benchmarks(games):
    lo, hi = np.minimum.outer(GRID, GRID), np.maximum.outer(GRID, GRID)
    fp, sp = games["first_price"], games["second_price"]
    np.testing.assert_allclose(fp.payment, lo, atol=1e-9)  # pay-as-ask: the lower ask
    np.testing.assert_allclose(sp.payment, hi, atol=1e-9)  # paid the other's ask: the higher one
    for g in (fp, sp):
        assert g.competitive_ask == 0 and g.competitive_price == pytest.approx(0.05)
        assert g.competitive_profit == pytest.approx(0.025, abs=2e-3)
        assert g.monopoly_profit == pytest.approx(0.475, abs=1e-2)
        assert (0, 0) in g.pure_equilibria
    assert sp.pure_equilibria == [(0, 0)]  # second price: both at the lowest profitable ask, only
    assert all(i == j and i <= 1 for i, j in fp.pure_equilibria)  # first price: (0.05, 0.05) and (0.10, 0.10)


def _session_run(job):
    from training.tabular import run_sessions

    mechanism, sessions, periods = job
    return run_sessions("uniform", mechanism, sessions, periods, QConfig(), seed=0, overrides=DUOPOLY, progress=False)


@pytest.fixture(scope="module")
def quick_runs():
    """The paper's learners (alpha 0.05, gamma 0.99, eps_t = 0.025 exp(-0.0002 t), optimistic start) on the cost-0
    duopoly, fewer sessions: first price for 100k periods (its sessions lock in by then), second price for 400k (its
    optimistic values must decay to the competitive level's, ~350k periods), in two processes."""
    jobs = [("first_price", 16, 100_000), ("second_price", 8, 400_000)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        return dict(zip(["first_price", "second_price"], pool.map(_session_run, jobs)))


@pytest.mark.slow
def test_first_price_learners_collude(quick_runs, games):
    s = summarize_sessions(quick_runs["first_price"], games["first_price"])
    assert s.converged_share >= 0.9
    assert s.collusive_share >= 0.75  # a clear majority converge above the competitive ask
    assert s.mean_payment > 0.3 and s.delta > 0.3


@pytest.mark.slow
def test_second_price_learners_compete(quick_runs, games):
    s = summarize_sessions(quick_runs["second_price"], games["second_price"])
    assert s.converged_share >= 0.75
    assert s.competitive_share_of_converged >= 0.75  # converged at the competitive price 0.05
    assert s.mean_payment < 0.2 and s.delta < 0.2


def test_policy_collusion_of_truthful_play_is_zero_and_reaches_the_report(tmp_path):
    import json

    from agents import make_strategy
    from envs import make_batched
    from evaluation import EvalConfig, evaluate_all, write_report
    from evaluation.collusion import policy_collusion

    over = {"horizon": 40}
    lay = make_batched("capitals", "first_price", 1, **over).layout
    truthful = {a: make_strategy("truthful", lay) for a in ("provider_0", "provider_1")}
    c = policy_collusion("capitals", "first_price", truthful, seeds=[1, 2, 3], overrides=over)
    assert c.delta == pytest.approx(0.0, abs=1e-12)  # truthful play is the competitive benchmark itself
    assert c.monopoly_profit > c.competitive_profit and max(c.monopoly_margins) > 0
    cfg = EvalConfig(
        scenario="capitals",
        mechanisms=["first_price"],
        strategies=["markup"],
        seeds=2,
        horizons=[40],
        billings=["per_query"],
        out=str(tmp_path),
        workers=1,
    )
    header, results, summaries, analytic = evaluate_all(cfg, {}, progress=False)
    table = write_report(tmp_path, header, results, summaries, analytic, collusion={"first_price": c})
    assert "collusion Delta (simultaneous PPO)" in table and "+0.00" in table
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["collusion"]["first_price"]["delta"] == pytest.approx(0.0, abs=1e-12)
    assert "## Collusion of simultaneous learners" in (tmp_path / "report.md").read_text()
