#!/usr/bin/env python
"""Tacit collusion of Q-learning providers: Banchio and Skrzypacz's experiment ("Artificial Intelligence and Auction
Design", arXiv 2202.05947) mirrored as our reverse auction, under any registered mechanism.

Setting: the ``uniform`` scenario with cost_low = cost_high = 0 and 2 providers - a duopoly with cost 0 and user value
1, every answer correct; asks on the grid 0.05, 0.10, ..., 0.95; ties broken at random by the mechanism. Both
providers are stateless Q-learners (learning rate 0.05, discount 0.99, exploration eps_t = 0.025 exp(-0.0002 t),
optimistic initial values 1 / (1 - 0.99) = 100) stepping the market (:func:`training.tabular.run_sessions`), in
1,000 independent sessions of 1,000,000 periods by default. A session has converged when its greedy ask pair is
unchanged over its last 1,000 periods.

Printed per mechanism (definitions in :mod:`evaluation.collusion`): the share of converged sessions, the
distribution of converged ask pairs, the mean payment, the share of collusive sessions (price above the competitive
level: 0.05 = the lowest profitable ask, under first *and* second price), and the collusion index
Delta = (profit - competitive profit) / (monopoly profit - competitive profit), the benchmarks measured through the
same mechanism. Plots (converged-pair heat maps, price histograms, the mean payment over time), ``collusion.json``
and each mechanism's raw session outcomes (``sessions_<mechanism>.npz``) go to ``--out``; the run ends with one JSON
line per mechanism.

    python benchmarks/collusion.py                         # first and second price, 1000 sessions x 1M periods
    python benchmarks/collusion.py --quick                 # 50 sessions x 400k periods
    python benchmarks/collusion.py --quick --mechanism all --workers 2
    python benchmarks/collusion.py --sessions 200 --periods 500000 --mechanism first_price,rosa

``ucb_myerson`` (seed 001 as published) ends every session with one incumbent asking 0.05 that wins every period and
is paid its rival's ask: with two providers the payment min(r, second-lowest bid) is the *higher* of the two asks.
0.05 is absorbing: it cannot be undercut (a rival at 0.05 has the same virtual cost, about 0.05 at that bin edge, and
loses on the UCB mean of V - P, which is stale for a provider that stopped winning: it won at higher prices, and its
bonus c sqrt(ln t / n_i) grows only like sqrt(ln t)), and by then exploration has died out (eps_t < 1e-6 after 50k
periods), so the incumbent never tries a higher ask again. The rival earns 0 at every ask, so its Q-values fall
together and its greedy ask changes every period, cycling through the whole grid. Hence price = the rival's ask, mean
payment = the grid mean 0.50 in every session (0.05 in the periods when both ask 0.05), profit ~0.5 for the incumbent
and 0 for the rival, and no session "converges" (a final greedy pair (0.05, 0.05) is a snapshot of the rival's cycle).
This is the published rule at work, not a measurement artefact (pinned in tests/mechanisms/test_auctions.py and
tests/agents/test_qlearning.py).

``myerson`` needs a cost prior with room in it: with costs identically 0 its default prior (the range of costs) is a
point, so here the platform's prior is U[0, 1] (the textbook prior of MECHANISMS.md §8; reserve 1/2).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import mechanisms  # noqa: E402
from agents.qlearning import QConfig  # noqa: E402
from evaluation.collusion import SessionsSummary, stage_game, summarize_sessions  # noqa: E402
from mechanisms.base import Mechanism  # noqa: E402
from mechanisms.myerson import Myerson, UniformPrior  # noqa: E402
from training.tabular import SessionsResult, run_sessions  # noqa: E402

DUOPOLY = {"cost_low": 0.0, "cost_high": 0.0, "n_providers": 2}
DEFAULT = {"sessions": 1000, "periods": 1_000_000}
QUICK = {"sessions": 50, "periods": 400_000}


def mechanism_for(name: str) -> str | Mechanism:
    """The mechanism as played on the cost-0 duopoly (myerson with a U[0, 1] prior, see the module docstring)."""
    if name == "myerson":
        return Myerson(priors=UniformPrior(0.0, 1.0))
    return name


def _run(job: tuple[str, int, int, int, int, bool, str]) -> tuple[SessionsResult, object]:
    name, sessions, periods, seed, window, progress, out = job
    result = run_sessions(
        "uniform",
        mechanism_for(name),
        sessions,
        periods,
        QConfig(),
        seed=seed,
        window=window,
        overrides=DUOPOLY,
        progress=progress,
    )
    np.savez(
        Path(out) / f"sessions_{name}.npz",
        greedy=result.greedy,
        stable_for=result.stable_for,
        profit=result.profit,
        payment=result.payment,
        price=result.price,
        user_utility=result.user_utility,
        tables=result.tables,
        history_t=result.history_t,
        history_payment=result.history_payment,
        history_greedy=result.history_greedy,
        history_changing=result.history_changing,
        seconds=result.seconds,
        cpu_seconds=result.cpu_seconds,
    )  # the raw outcome, kept before anything else runs
    game = stage_game(
        "uniform", lambda: mechanism_for(name), QConfig().grid, periods=5000, n_seeds=4, overrides=DUOPOLY
    )
    return result, game


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def print_summary(s: SessionsSummary, game) -> None:
    g = game.grid
    print(
        f"\n== {s.mechanism}: {s.sessions} sessions x {s.periods:,} periods ({s.seconds:.0f} s wall, "
        f"{s.cpu_seconds:.0f} s CPU: {s.cpu_seconds / s.periods * 1e6:.0f} us of CPU per period)"
    )
    print(
        f"converged {s.converged_share:.1%}; mean payment {s.mean_payment:.4f} ± {s.mean_payment_ci:.4f}; "
        f"price per sale {s.mean_price:.4f}; user utility {s.user_utility:.4f}"
    )
    print(
        f"competitive: both ask {s.competitive_ask:.2f} -> price {s.competitive_price:.4f}, profit "
        f"{s.competitive_profit:.4f} each; monopoly: asks {s.monopoly_asks} -> profit {s.monopoly_profit:.4f} each"
    )
    print(
        f"collusive sessions {s.collusive_share:.1%} ({s.collusive_share_of_converged:.1%} of converged; "
        f"competitive {s.competitive_share_of_converged:.1%} of converged); mean profit {s.mean_profit:.4f}; "
        f"Delta {fmt(s.delta)} ± {fmt(s.delta_ci)} (converged only {fmt(s.delta_converged)}) {s.note}"
    )
    more = " ..." if len(s.stage_equilibria) > 8 else ""
    print(f"pure equilibria of the grid stage game: {s.stage_equilibria[:8]}{more}")
    counts = np.array(s.pair_counts)
    top = np.argsort(counts.ravel())[::-1][:8]
    pairs = [f"({g[k // g.size]:.2f}, {g[k % g.size]:.2f}): {counts.ravel()[k]}" for k in top if counts.ravel()[k]]
    print("most frequent converged ask pairs: " + ", ".join(pairs))


def plot_all(out: Path, runs: list[tuple[SessionsResult, object, SessionsSummary]]) -> None:
    n = len(runs)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 8), squeeze=False)
    for k, (res, game, s) in enumerate(runs):
        g = game.grid
        counts = np.array(s.pair_counts, dtype=float)
        ax = axes[0, k]
        im = ax.imshow(
            counts.T, origin="lower", cmap="viridis", extent=(g[0] - 0.025, g[-1] + 0.025, g[0] - 0.025, g[-1] + 0.025)
        )
        ax.set_title(f"{s.mechanism}: converged ask pairs\n({s.converged_share:.0%} converged)", fontsize=9)
        ax.set_xlabel("provider_0 ask")
        ax.set_ylabel("provider_1 ask")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax = axes[1, k]
        ax.hist(res.price[res.converged], bins=np.arange(0.0, 1.05, 0.025), color="tab:blue", alpha=0.8)
        ax.axvline(s.competitive_price, color="tab:green", ls="--", label="competitive price")
        ax.axvline(np.mean(res.price), color="tab:red", label="mean price")
        ax.set_title(f"price per sale (converged); Delta {fmt(s.delta, 2)}", fontsize=9)
        ax.set_xlabel("payment per sale over the final window")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "collusion_pairs.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    for res, _, s in runs:
        ax.plot(res.history_t, res.history_payment, label=s.mechanism)
    ax.set_xscale("log")
    ax.set_xlabel("period")
    ax.set_ylabel("mean payment per period (over sessions)")
    ax.set_title("Q-learning duopoly: payment over time")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "collusion_payment_over_time.png", dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--mechanism",
        default="first_price,second_price",
        help="comma-separated registry names, or 'all' (default: first_price,second_price)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK['sessions']} sessions x {QUICK['periods']:,} periods (second price needs ~350k to converge)",
    )
    p.add_argument("--sessions", type=int, help=f"sessions per mechanism (default {DEFAULT['sessions']})")
    p.add_argument("--periods", type=int, help=f"periods per session (default {DEFAULT['periods']:,})")
    p.add_argument("--window", type=int, default=1000, help="convergence window (periods)")
    p.add_argument("--seed", type=int, default=0, help="session e uses seed + e")
    p.add_argument("--workers", type=int, default=1, help="mechanisms run in parallel processes")
    p.add_argument("--out", default="reports/collusion", help="output directory (plots, collusion.json)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    size = dict(QUICK if args.quick else DEFAULT)
    if args.sessions:
        size["sessions"] = args.sessions
    if args.periods:
        size["periods"] = args.periods
    names = list(mechanisms.REGISTRY) if args.mechanism == "all" else [m.strip() for m in args.mechanism.split(",")]
    unknown = [m for m in names if m not in mechanisms.REGISTRY]
    if unknown:
        print(
            f"error: unknown mechanism(s) {unknown}; choose from {list(mechanisms.REGISTRY)} or 'all'", file=sys.stderr
        )
        return 2
    if size["periods"] < args.window:
        print(f"error: --periods {size['periods']} is shorter than the window {args.window}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (m, size["sessions"], size["periods"], args.seed, args.window, not args.no_progress, str(out)) for m in names
    ]
    start = time.perf_counter()
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(
            max_workers=args.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_thread
        ) as pool:
            outcomes = list(pool.map(_run, jobs))
    else:
        outcomes = [_run(j) for j in jobs]
    runs = []
    for result, game in outcomes:
        summary = summarize_sessions(result, game)
        print_summary(summary, game)
        runs.append((result, game, summary))
    plot_all(out, runs)
    records = [dict(s.record(), pair_counts=s.pair_counts) for _, _, s in runs]
    (out / "collusion.json").write_text(
        json.dumps(
            {
                "setting": {
                    "scenario": "uniform",
                    **DUOPOLY,
                    **size,
                    "window": args.window,
                    "seed": args.seed,
                    "learner": QConfig().__dict__,
                },
                "mechanisms": records,
            },
            indent=2,
            default=float,
        )
    )
    print(f"\nplots and collusion.json in {out}  ({time.perf_counter() - start:.0f} s)")
    for _, _, s in runs:
        r = s.record()
        line = {
            k: r[k]
            for k in (
                "mechanism",
                "sessions",
                "periods",
                "converged_share",
                "mean_payment",
                "collusive_share",
                "collusive_share_of_converged",
                "delta",
                "delta_ci",
                "competitive_price",
                "competitive_profit",
                "monopoly_profit",
                "seconds",
                "cpu_seconds",
            )
        }
        print(json.dumps(line, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
