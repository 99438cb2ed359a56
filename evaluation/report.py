"""The robustness report: verdict table, records, CSV, plots and TensorBoard summaries of an evaluation."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from agents.analytic import bne_bid  # noqa: E402
from evaluation.collusion import collusion_section, format_delta  # noqa: E402
from evaluation.results import MechanismResult, MechanismSummary, ReportHeader  # noqa: E402


def verdict_table(summaries: list[MechanismSummary], collusion: dict[str, Any] | None = None) -> str:
    """Markdown table: per mechanism the verdict, the IC regret with its CI and the user's utility (and, when given,
    the collusion index of simultaneous learners, :mod:`evaluation.collusion`)."""
    lines = ["| mechanism | verdict | IC regret (gain per round, 95% CI) | user utility (honest) | "
             "worst user utility ratio |", "|---|---|---|---|---|"]
    if collusion is not None:
        lines = [lines[0] + " collusion Delta (simultaneous PPO) |", lines[1] + "---|"]
    for s in summaries:
        honest = next(m for m in s.market if m.profile == "honest")
        worst = min(s.market, key=lambda m: m.user_utility_ratio if np.isfinite(m.user_utility_ratio)
                    else np.inf)
        r = s.ic_regret
        regret = "n/a" if r is None else (f"{r.gain:+.4f} [{r.gain_ci_low:+.4f}, {r.gain_ci_high:+.4f}] "
                                          f"({r.provider}, {r.profile})")
        verdict = "holds" if not s.exploited else "**exploited**"
        lines.append(f"| {s.mechanism} | {verdict} | {regret} | {honest.user_utility:.4f} | "
                     f"{worst.user_utility_ratio:.3f} ({worst.profile}) |")
        if collusion is not None:
            lines[-1] += f" {format_delta(collusion.get(s.mechanism))} |"
    return "\n".join(lines)


def _profile_table(s: MechanismSummary) -> str:
    lines = ["| profile | provider | profit | gain [95% CI] | markup | substitution | inflation | win rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in s.records:
        if r.profile != "honest" and not r.deviator:
            continue
        lines.append(f"| {r.profile} | {r.provider} | {r.profit:.4f} | {r.gain:+.4f} "
                     f"[{r.gain_ci_low:+.4f}, {r.gain_ci_high:+.4f}] | {r.bid_markup:.3f} | "
                     f"{r.substitution_rate:.3f} | {r.mean_inflation:.3f} | {r.win_rate:.3f} |")
    lines += ["", "| profile | user utility | vs honest | vs full information | payment | efficiency | unserved |",
              "|---|---|---|---|---|---|---|"]
    for m in s.market:
        lines.append(f"| {m.profile} | {m.user_utility:.4f} ± {m.user_utility_ci:.4f} | "
                     f"{m.user_utility_ratio:.3f} | {m.full_info_ratio:.3f} | {m.payment:.4f} | "
                     f"{m.allocative_efficiency:.3f} | {m.unserved_share:.3f} |")
    return "\n".join(lines)


def plot_gains(summaries: list[MechanismSummary], path: Path) -> plt.Figure:
    """Manipulation gain with 95% CI of every deviation, one panel per mechanism."""
    cols = min(4, len(summaries))
    rows_ = -(-len(summaries) // cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(4.2 * cols, 4.0 * rows_), squeeze=False)
    for ax in axes.flat[len(summaries):]:
        ax.set_visible(False)
    for ax, s in zip(axes.flat, summaries):
        rows = [r for r in s.records if r.deviator]
        labels = [f"{r.profile.split('@')[0]}@{r.provider.split('_')[-1]}" for r in rows]
        gains = np.array([r.gain for r in rows])
        err = np.array([[r.gain - r.gain_ci_low for r in rows], [r.gain_ci_high - r.gain for r in rows]])
        colors = ["tab:red" if r.gain_ci_low > 0 else "tab:gray" for r in rows]
        ax.barh(np.arange(len(rows)), gains, xerr=err, color=colors, capsize=3)
        ax.set_yticks(np.arange(len(rows)), labels, fontsize=8)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(s.mechanism)
        ax.set_xlabel("gain per round vs honest")
    fig.suptitle("Manipulation gain per round, 95% CI (red: CI above 0; verdicts use family-wise confidence)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_bids(result: MechanismResult, path: Path, equilibrium_n: int | None) -> plt.Figure:
    """Bid against own cost for each deviating profile, beside honest bids (and the equilibrium when known)."""
    agents = result.agents
    fig, axes = plt.subplots(1, len(agents), figsize=(4.5 * len(agents), 4), squeeze=False)
    for i, (ax, agent) in enumerate(zip(axes[0], agents)):
        hi = 0.0
        for name, rec in result.profiles.items():
            tr = rec.trace
            if not tr["cost"].size or (name != "honest" and agent not in rec.deviators):
                continue
            ax.scatter(tr["cost"][:, i], tr["bid"][:, i], s=6, alpha=0.5, label=name)
            hi = max(hi, float(tr["cost"][:, i].max()))
        grid = np.linspace(0, 1.1 * hi or 1.0, 50)
        ax.set_xlim(0, grid[-1])
        ax.plot(grid, grid, "k--", lw=0.8, label="bid = cost")
        if equilibrium_n:
            ax.plot(grid, bne_bid(grid, equilibrium_n), "g-", lw=1.2, label="first-price equilibrium")
        ax.set_title(f"{result.mechanism}: {agent}")
        ax.set_xlabel("own expected cost")
        ax.set_ylabel("bid")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_user_utility(result: MechanismResult, path: Path) -> plt.Figure:
    """Running mean of the user's utility over the first evaluation episode, per profile."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rec in result.profiles.items():
        u = rec.trace["user_utility"]
        if u.size:
            ax.plot(np.cumsum(u) / np.arange(1, u.size + 1), label=name, lw=1)
    ax.set_xlabel("round")
    ax.set_ylabel("mean user utility so far")
    ax.set_title(f"{result.mechanism}: user utility over the episode")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def write_report(out: Path, header: ReportHeader, results: list[MechanismResult], summaries: list[MechanismSummary],
                 analytic: dict[str, Any], collusion: dict[str, Any] | None = None) -> str:
    """Write report.md, report.json, metrics.csv, plots/*.png and tb/; return the verdict table. ``collusion``
    (mechanism -> :class:`evaluation.collusion.PolicyCollusion`) adds the collusion column and section."""
    from torch.utils.tensorboard import SummaryWriter

    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    table = verdict_table(summaries, collusion)
    writer = SummaryWriter(str(out / "tb"))
    figures = {"manipulation_gain": plot_gains(summaries, out / "plots" / "manipulation_gain.png")}
    eq_n = header.n_providers if header.scenario == "uniform" else None
    for result in results:
        m = result.mechanism
        figures[f"bids_{m}"] = plot_bids(result, out / "plots" / f"bids_{m}.png",
                                         eq_n if m == "first_price" else None)
        figures[f"user_utility_{m}"] = plot_user_utility(result, out / "plots" / f"user_utility_{m}.png")
    for s in summaries:
        m = s.mechanism
        if s.ic_regret:
            writer.add_scalar(f"eval/{m}/ic_regret", s.ic_regret.gain)
        for r in s.records:
            writer.add_scalar(f"eval/{m}/{r.profile}/{r.provider}/profit", r.profit)
            if r.deviator:
                writer.add_scalar(f"eval/{m}/{r.profile}/{r.provider}/gain", r.gain)
        for row in s.market:
            for key in ("user_utility", "user_utility_ratio", "allocative_efficiency", "payment"):
                writer.add_scalar(f"eval/{m}/{row.profile}/{key}", getattr(row, key))
    for name, fig in figures.items():
        writer.add_figure(f"plots/{name}", fig)
        plt.close(fig)
    writer.close()

    md = [f"# Robustness report: {header.scenario}", "",
          f"{header.seeds} seeds x {header.episodes} episode(s) x {header.horizon} rounds per profile; "
          f"profiles are paired on the same queries and costs. Gains are per round, relative to the same profile "
          f"with the deviator(s) honest; brackets are 95% CIs over seeds. 'exploited' means the largest gain "
          f"exceeds {header.tolerance:g} with family-wise 95% confidence (Bonferroni over the deviations tested "
          f"for that mechanism).", "", table, ""]
    for s in summaries:
        md += [f"## {s.mechanism}", "", f"Verdict: {s.verdict}", "", _profile_table(s), "",
               f"![gains](plots/manipulation_gain.png) ![bids](plots/bids_{s.mechanism}.png) "
               f"![user utility](plots/user_utility_{s.mechanism}.png)", ""]
    if analytic:
        md += ["## Analytic checks (MECHANISMS.md §8)", "", "```", json.dumps(analytic, indent=2), "```", ""]
    if collusion is not None:
        md += collusion_section(collusion)
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")

    records = [asdict(r) for s in summaries for r in s.records]
    report = {"header": asdict(header), "records": records,
              "market": [asdict(m) for s in summaries for m in s.market],
              "ic_regret": {s.mechanism: None if s.ic_regret is None else asdict(s.ic_regret) for s in summaries},
              "verdicts": {s.mechanism: s.verdict for s in summaries}, "analytic": analytic}
    if collusion is not None:
        report["collusion"] = {m: asdict(c) for m, c in collusion.items()}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")
    with open(out / "metrics.csv", "w", newline="", encoding="utf-8") as fh:
        writer_csv = csv.DictWriter(fh, fieldnames=list(records[0]))
        writer_csv.writeheader()
        writer_csv.writerows(records)
    return table
