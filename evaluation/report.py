"""The robustness report: verdict table, gains per lever, learners, records, CSV, plots and TensorBoard summaries of
an evaluation (``report.md``, ``report.json``, ``metrics.csv``, ``plots/*.png``, ``tb/``)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from agents.analytic import bne_bid
from agents.policy import LEVERS
from envs.files import atomic_write
from evaluation.collusion import collusion_section, format_delta
from evaluation.results import DeviationRecord, MechanismVerdict, ReportHeader, SettingResult

LEVER_COLUMNS = ("all", *LEVERS)
LEVER_COLORS = {"all": "black", "bid": "tab:blue", "substitution": "tab:orange", "inflation": "tab:green"}


def _ci(r: DeviationRecord) -> str:
    return f"{r.gain:+.4f} [{r.gain_ci_low:+.4f}, {r.gain_ci_high:+.4f}]"


def verdict_table(judged: list[MechanismVerdict], collusion: dict[str, Any] | None = None) -> str:
    """Markdown table: per mechanism and billing the verdict, the levers that pay, the IC regret and the test's power
    (and, when given, the collusion index of simultaneous learners per mechanism, :mod:`evaluation.collusion`)."""
    lines = [
        (
            "| mechanism | billing | verdict | levers that pay | IC regret: lower bound (gain [95% CI], who, how, T) | "
            "detectable gain | user utility (honest) |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    if collusion is not None:
        lines = [lines[0] + " collusion Delta (simultaneous PPO) |", lines[1] + "---|"]
    for v in judged:
        honest = next(m for m in v.market if m.profile == "honest")
        r = v.ic_regret
        regret = (
            "n/a"
            if r is None
            else (
                f"{r.gain_lower:+.4f} ({r.gain:+.4f} [{r.gain_ci_low:+.4f}, "
                f"{r.gain_ci_high:+.4f}], {r.provider}, {r.profile}, T={r.horizon})"
            )
        )
        verdict = f"**exploited** ({v.persistence})" if v.exploited else "holds"
        lines.append(
            f"| {v.mechanism} | {v.billing} | {verdict} | {v.paying_lever or '-'} | {regret} | "
            f"{v.detectable:.4f} | {honest.user_utility:.4f} |"
        )
        if collusion is not None:
            lines[-1] += f" {format_delta(collusion.get(v.mechanism))} |"
    return "\n".join(lines)


def lever_table(v: MechanismVerdict) -> str:
    """Gain per lever of every deviation at every horizon: all levers together, then each alone."""
    lines = ["| deviation | T | " + " | ".join(LEVER_COLUMNS) + " |", "|---|---|" + "---|" * len(LEVER_COLUMNS)]
    for (deviation, _provider, horizon), group in _by_deviation(v.records).items():  # deviation names its provider
        cells = []
        for lever in LEVER_COLUMNS:
            r = group.get(lever)
            mark = "**" if r is not None and r.gain_lower > 0 and r.gain > 0 else ""
            cells.append("-" if r is None else f"{mark}{_ci(r)}{mark}")
        lines.append(f"| {deviation} | {horizon} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _by_deviation(records: list[DeviationRecord]) -> dict[tuple[str, str, int], dict[str, DeviationRecord]]:
    """Deviator records grouped by (deviation, provider, horizon), keyed by lever."""
    out: dict[tuple[str, str, int], dict[str, DeviationRecord]] = {}
    for r in records:
        if r.deviator:
            out.setdefault((r.deviation, r.provider, r.horizon), {})[r.lever] = r
    return out


def _market_table(v: MechanismVerdict) -> str:
    lines = [
        "| profile | T | user utility | vs honest | vs full information | payment | efficiency | unserved |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in v.market:
        if m.lever != "all":
            continue
        lines.append(
            f"| {m.profile} | {m.horizon} | {m.user_utility:.4f} ± {m.user_utility_ci:.4f} | "
            f"{m.user_utility_ratio:.3f} | {m.full_info_ratio:.3f} | {m.payment:.4f} | "
            f"{m.allocative_efficiency:.3f} | {m.unserved_share:.3f} |"
        )
    return "\n".join(lines)


def _phases(v: MechanismVerdict) -> str:
    """What each phase of a phased mechanism (second_best) did in honest play, per horizon."""
    lines = []
    for m in v.market:
        events = m.mechanism_events
        if m.profile == "honest" and "delegated_exploration" in events:
            phases = ", ".join(f"{k.split('_', 1)[1]} {events[k]:.0f}" for k in events if k.startswith("delegated_"))
            lines.append(
                f"- T={m.horizon}: queries delegated per phase: {phases}; R = {events['R']:.0f}, "
                f"early stops {events['early_stopped']:.2f}"
            )
    return "\n".join(lines)


def learner_table(learners: list[dict[str, Any]]) -> str:
    """The training grid's seeds: gain on the selection seeds, the target (best scripted deviation), steps."""
    lines = [
        ("| mechanism | billing | provider | seed run | gain (selection seeds) | target | matched | steps | chosen |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in learners:
        lines.append(
            f"| {r['mechanism']} | {r['billing']} | {r['provider']} | {Path(r['run_dir']).name} | "
            f"{r['manipulation_gain']:+.4f} | {r.get('target', '-')} {r.get('target_gain', float('nan')):+.4f}"
            f" | {'yes' if r.get('matched') else 'no'} | {r.get('steps', 0)} | "
            f"{'**yes**' if r.get('chosen') else ''} |"
        )
    return "\n".join(lines)


def plot_levers(v: MechanismVerdict) -> plt.Figure:
    """Gain per round (95% CI) of every deviation with all its levers and with each alone, one panel per horizon."""
    groups = _by_deviation(v.records)
    horizons = sorted({h for _, _, h in groups})
    fig, axes = plt.subplots(1, len(horizons), figsize=(6.0 * len(horizons), 0.9 + 0.45 * len(groups)), squeeze=False)
    for ax, horizon in zip(axes[0], horizons):
        rows = [(dev, g) for (dev, _, h), g in groups.items() if h == horizon]
        width = 0.8 / len(LEVER_COLUMNS)
        for j, lever in enumerate(LEVER_COLUMNS):
            ys, xs, err = [], [], []
            for k, (_, g) in enumerate(rows):
                if lever in g:
                    r = g[lever]
                    ys.append(k + (j - 1.5) * width)
                    xs.append(r.gain)
                    err.append(r.gain - r.gain_ci_low)
            ax.barh(ys, xs, height=width, xerr=err, color=LEVER_COLORS[lever], label=lever, capsize=2)
        ax.set_yticks(range(len(rows)), [dev for dev, _ in rows], fontsize=7)
        ax.axvline(0.0, color="black", lw=0.8)
        ax.set_title(f"{v.mechanism} ({v.billing}), T={horizon}")
        ax.set_xlabel("gain per round vs honest (95% CI)")
        ax.legend(fontsize=7, title="levers")
    fig.tight_layout()
    return fig


def plot_bids(result: SettingResult, equilibrium_n: int | None) -> plt.Figure:
    """Bid against own cost for each deviating profile (all levers), beside honest bids (and the equilibrium when
    known)."""
    agents = result.agents
    fig, axes = plt.subplots(1, len(agents), figsize=(4.5 * len(agents), 4), squeeze=False)
    for i, (ax, agent) in enumerate(zip(axes[0], agents)):
        hi = 0.0
        for name, rec in result.profiles.items():
            tr = rec.trace
            if not tr["cost"].size or rec.lever != "all" or (name != "honest" and agent not in rec.deviators):
                continue
            ax.scatter(tr["cost"][:, i], tr["bid"][:, i], s=6, alpha=0.5, label=name)
            hi = max(hi, float(tr["cost"][:, i].max()))
        grid = np.linspace(0, 1.1 * hi or 1.0, 50)
        ax.set_xlim(0, grid[-1])
        ax.plot(grid, grid, "k--", lw=0.8, label="bid = cost")
        if equilibrium_n:
            ax.plot(grid, bne_bid(grid, equilibrium_n), "g-", lw=1.2, label="first-price equilibrium")
        ax.set_title(f"{result.mechanism} ({result.billing}, T={result.horizon}): {agent}")
        ax.set_xlabel("own expected cost")
        ax.set_ylabel("bid")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def plot_user_utility(result: SettingResult) -> plt.Figure:
    """Running mean of the user's utility over the first evaluation episode (its first 4,096 rounds), per
    profile (all levers)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rec in result.profiles.items():
        u = rec.trace["user_utility"]
        if u.size and rec.lever == "all":
            ax.plot(np.cumsum(u) / np.arange(1, u.size + 1), label=name, lw=1)
    ax.set_xlabel("round")
    ax.set_ylabel("mean user utility so far")
    ax.set_title(f"{result.mechanism} ({result.billing}, T={result.horizon}): user utility over the episode")
    ax.set_xscale("log")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    return fig


def _json_safe(x: Any) -> Any:
    """NaN and infinities as null (JSON has no such numbers)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def write_report(
    out: Path,
    header: ReportHeader,
    results: list[SettingResult],
    judged: list[MechanismVerdict],
    analytic: dict[str, Any],
    collusion: dict[str, Any] | None = None,
) -> str:
    """Write report.md, report.json, metrics.csv, plots/*.png and tb/; return the verdict table. ``collusion``
    (mechanism -> :class:`evaluation.collusion.PolicyCollusion`) adds the collusion column and section."""
    from torch.utils.tensorboard import SummaryWriter

    out.mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(exist_ok=True)
    table = verdict_table(judged, collusion)
    writer = SummaryWriter(str(out / "tb"))

    def figure(name: str, fig: plt.Figure) -> None:
        """plots/<name>.png and TensorBoard's image, from one rendering; then closed (one open figure at a time)."""
        fig.set_dpi(100)
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        atomic_write(out / "plots" / f"{name}.png", lambda tmp: plt.imsave(tmp, rgba, format="png"))
        writer.add_image(f"plots/{name}", rgba[..., :3], dataformats="HWC")
        plt.close(fig)

    eq_n = header.n_providers if header.scenario == "uniform" else None
    for v in judged:
        figure(f"levers_{v.mechanism}_{v.billing}", plot_levers(v))
    for r in results:
        tag = f"{r.mechanism}_{r.billing}_T{r.horizon}"
        figure(f"bids_{tag}", plot_bids(r, eq_n if r.mechanism == "first_price" else None))
        figure(f"user_utility_{tag}", plot_user_utility(r))
    for v in judged:
        prefix = f"eval/{v.mechanism}/{v.billing}"
        if v.ic_regret is not None:
            writer.add_scalar(f"{prefix}/ic_regret_lower", v.ic_regret.gain_lower)
            writer.add_scalar(f"{prefix}/ic_regret", v.ic_regret.gain)
        writer.add_scalar(f"{prefix}/exploited", float(v.exploited))
        for rec in v.records:
            if rec.deviator:
                writer.add_scalar(f"{prefix}/T{rec.horizon}/{rec.profile}/{rec.provider}/gain", rec.gain)
        for row in v.market:
            if row.lever == "all":
                writer.add_scalar(f"{prefix}/T{row.horizon}/{row.profile}/user_utility", row.user_utility)
    writer.close()

    seeds = (
        f"{header.seeds} seeds"
        + (
            f" (a deviation up to {header.max_seeds} while one of its gains' family-wise 95% CI half-width "
            f"exceeded {header.target_half_width:g})"
            if header.max_seeds > header.seeds
            else ""
        )
        + (
            f"; a deviation a decision turns on plays up to {header.decision_seeds} seeds while its family-wise "
            f"lower bound does not clear the tolerance and its 95% CI reaches above it"
            if header.decision_seeds > header.max_seeds
            else ""
        )
    )
    md = [
        f"# Robustness report: {header.scenario}",
        "",
        (
            f"Billings {', '.join(header.billings)}; horizons {', '.join(map(str, header.horizons))} rounds; {seeds} x "
            f"{header.episodes} episode(s) per profile. Every profile is a unilateral deviation, played on the same "
            f"queries, costs and mechanism coins as honest play (paired); gains are per round, with Student-t 95% CIs "
            f"over seeds. Every deviation is also played with one lever at a time. A mechanism is **exploited** when "
            f"any deviation's family-wise lower bound (Bonferroni over every deviation, lever and horizon tested for "
            f"that mechanism and billing, and over every look at the runs as seeds are added) exceeds "
            f"{header.tolerance:g}; an exploit is *persistent* when still "
            f"significant at the longest horizon judged, *transient* otherwise. The levers that pay are every single "
            f"lever that earns an exploit on its own at the longest horizon (any horizon if no exploit persists), "
            f"else every smallest combination of levers that does. "
            f"'Detectable gain' is the smallest gain the test finds with 80% power at that horizon."
        ),
        "",
        table,
        "",
    ]
    if header.learners:
        md += [
            "## Learners",
            "",
            (
                "Best responses (PPO) trained against truthful others until they matched the best "
                "scripted deviation of their levers on the selection seeds (disjoint from the evaluation's); the "
                "strongest seed is evaluated."
            ),
            "",
            learner_table(header.learners),
            "",
        ]
    for v in judged:
        md += [f"## {v.mechanism} ({v.billing})", "", f"Verdict: {v.verdict}", ""]
        if v.notes:
            md += [f"- {note}" for note in v.notes] + [""]
        phases = _phases(v)
        if phases:
            md += ["What each phase did (honest play):", "", phases, ""]
        md += [
            "Gain per lever (bold: family-wise significant):",
            "",
            lever_table(v),
            "",
            f"![levers](plots/levers_{v.mechanism}_{v.billing}.png)",
            "",
            _market_table(v),
            "",
        ]
    if analytic:
        md += ["## Analytic checks (MECHANISMS.md §8)", "", "```", json.dumps(analytic, indent=2), "```", ""]
    if collusion is not None:
        md += collusion_section(collusion)
    atomic_write(out / "report.md", "\n".join(md))

    records = [asdict(r) for v in judged for r in v.records]
    report = {
        "header": asdict(header),
        "verdicts": [
            {
                k: asdict(v)[k]
                for k in (
                    "mechanism",
                    "billing",
                    "horizons",
                    "exploited",
                    "verdict",
                    "persistence",
                    "paying_lever",
                    "ic_regret",
                    "exploits",
                    "deviations_tested",
                    "t_family",
                    "detectable",
                    "notes",
                )
            }
            for v in judged
        ],
        "records": records,
        "market": [asdict(m) for v in judged for m in v.market],
        "analytic": analytic,
    }
    if collusion is not None:
        report["collusion"] = {m: asdict(c) for m, c in collusion.items()}
    atomic_write(out / "report.json", json.dumps(_json_safe(report), indent=2))
    buffer = io.StringIO(newline="")
    writer_csv = csv.DictWriter(buffer, fieldnames=list(records[0]))
    writer_csv.writeheader()
    writer_csv.writerows(records)
    atomic_write(out / "metrics.csv", buffer.getvalue())
    return table
