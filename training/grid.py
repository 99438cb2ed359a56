"""The learners of an evaluation: best responses for every mechanism, billing and provider, several seeds each,
trained as parallel jobs (on the evaluation's backend: a local process pool or Ray) until they match the best
scripted deviation; the strongest seed, chosen on selection seeds disjoint from the evaluation's, is the one the
evaluation plays.

Each (mechanism, billing, provider, seed) is one train.py run dir ``<out>/runs/<mechanism>-<billing>/<provider>-s<k>``
(one learner against truthful others, ``target: best_scripted``). Reruns are crash-safe: a run dir that holds a
summary is reused, one that holds a started run (``config.yaml``) is resumed to the same result an uninterrupted run
gives (checkpoints every ``train_chunk`` steps), and either is refused if its ``config.yaml`` disagrees with the job.
The selection (every seed's gain on the selection seeds, its target and steps) is written to
``<out>/runs/selection.json`` and returned for the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mechanisms
from agents.registry import make_strategy
from envs.config import ConfigError, to_dict
from envs.files import atomic_write
from evaluation.config import LIST_PRICE, EvalConfig, EvalSpec, Setting
from evaluation.parallel import make_backend
from evaluation.rollout import play
from training.config import SELECTION_SEED, TrainConfig
from training.trainer import read_run_config, scripted_target, train


def _train_job(job: tuple[list[tuple[dict[str, Any], bool]], bool]) -> None:
    """Train one learner's pending seeds (TrainConfig fields, resume) in turn against their common target, the best
    scripted deviation, measured once."""
    runs, progress = job
    first = TrainConfig(**runs[0][0])
    targets = {first.learners[0]: scripted_target(first, first.learners[0])}
    for fields, resume in runs:
        train(TrainConfig(**fields), resume=resume, progress=progress, scripted_targets=targets)


def _started(run_dir: Path, fields: dict[str, Any]) -> bool:
    """Whether ``run_dir`` holds a run already (started or finished); an error if it was trained otherwise."""
    if not (run_dir / "config.yaml").is_file():
        return False
    saved, wanted = to_dict(read_run_config(run_dir)), to_dict(TrainConfig(**fields))
    differ = sorted(k for k in wanted if k != "run_dir" and saved[k] != wanted[k])
    if differ:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: this learner was trained with other settings "
            f"({', '.join(f'{k}: {saved[k]!r}, now {wanted[k]!r}' for k in differ)}); delete the run "
            f"dir or evaluate into another --out"
        )
    return True


def train_horizon(cfg: EvalConfig, mechanism: str, billing: str) -> int:
    """The horizon a mechanism's learners train at: ``cfg.train_horizon``, else the first of ``cfg.horizons`` at
    which the mechanism is not degenerate (in one honest episode)."""
    if cfg.train_horizon is not None:
        return cfg.train_horizon
    spec = EvalSpec(scenario=cfg.scenario, mechanisms=[mechanism], overrides=cfg.overrides)
    for horizon in sorted(cfg.horizons):
        market = spec.market(Setting(mechanism, billing, horizon), 1)
        honest = {a: make_strategy("truthful", market.layout) for a in market.possible_agents}
        row = play(market, honest, [cfg.selection_episodes])[0]
        diagnostics = {k.split("/", 1)[1]: v for k, v in row.items() if k.startswith("mechanism/")}
        if mechanisms.REGISTRY[mechanism].degenerate(diagnostics) is None:
            return horizon
    return max(cfg.horizons)


def learner_runs(cfg: EvalConfig) -> list[tuple[tuple[str, str], dict[str, Any]]]:
    """Every learner's (mechanism, billing) and TrainConfig fields: one per (mechanism, billing, provider, seed)."""
    spec = EvalSpec(
        scenario=cfg.scenario, mechanisms=cfg.mechanisms, overrides=cfg.overrides, billings=list(cfg.billings)
    )
    jobs = []
    for mechanism, billing in dict.fromkeys(s.market_key for s in spec.settings()):
        horizon = train_horizon(cfg, mechanism, billing)
        agents = spec.market(Setting(mechanism, billing, horizon), 1).possible_agents
        learners = agents if cfg.train_learners in (["all"], []) else cfg.train_learners
        overrides = {**cfg.overrides, "horizon": horizon, **({} if billing == LIST_PRICE else {"billing": billing})}
        # At least four episodes of every market within the step cap: fewer markets at long horizons, each rollout
        # then longer, so that an update still averages at least a batch of TrainConfig.batch_size transitions.
        n_envs = max(8, min(TrainConfig.n_envs, cfg.train_timesteps // (4 * horizon)))
        n_steps = max(TrainConfig.n_steps, -(-TrainConfig.batch_size // n_envs))
        rollout = n_envs * n_steps
        batch = TrainConfig.batch_size if rollout % TrainConfig.batch_size == 0 else rollout  # whole minibatches
        for provider in learners:
            for k in range(cfg.train_seeds):
                run_dir = Path(cfg.out) / "runs" / f"{mechanism}-{billing}" / f"{provider}-s{k}"
                jobs.append(
                    (
                        (mechanism, billing),
                        {
                            "scenario": cfg.scenario,
                            "mechanism": mechanism,
                            "overrides": overrides,
                            "learners": [provider],
                            "opponents": "truthful",
                            "timesteps": cfg.train_timesteps,
                            "target": "best_scripted",
                            "eval_every": cfg.train_chunk,
                            "eval_episodes": cfg.selection_episodes,
                            "seed": 100 * cfg.seed + k,
                            "selection_seed": SELECTION_SEED + 10_000_000 * cfg.seed,
                            "n_envs": n_envs,
                            "n_steps": n_steps,
                            "batch_size": batch,
                            "checkpoint_every": cfg.train_chunk,
                            "run_dir": str(run_dir),
                        },
                    )
                )
    return jobs


def train_learners(
    cfg: EvalConfig, progress: bool = True
) -> tuple[dict[tuple[str, str], list[str]], list[dict[str, Any]]]:
    """Train (or reuse) every learner seed, then pick per (mechanism, billing, provider) the seed with the largest
    gain on the selection seeds. Returns the chosen run dirs by (mechanism, billing) and every seed's record."""
    plan = learner_runs(cfg)
    # Each job's own progress bar in a local pool; on Ray, which forwards a worker's output line by line, the grid's.
    per_job = progress and cfg.backend == "process"
    pending: dict[tuple[str, str, str], list[tuple[dict[str, Any], bool]]] = {}  # seeds by learner
    by_market: dict[tuple[str, str], list[Path]] = {}
    for key, fields in plan:
        run_dir = Path(fields["run_dir"])
        started = _started(run_dir, fields)  # also checks that a finished run was trained with these settings
        if not (run_dir / "summary.json").is_file():
            pending.setdefault((*key, fields["learners"][0]), []).append((fields, started))
        by_market.setdefault(key, []).append(run_dir)
    jobs = [(runs, per_job) for runs in pending.values()]

    def cost(job: tuple[list[tuple[dict[str, Any], bool]], bool]) -> float:
        # Long-horizon learners (fewer markets, so more updates per step) take longest: they start first.
        return job[0][0][0]["overrides"]["horizon"] * len(job[0])

    make_backend(cfg, inline=False).map_longest_first(_train_job, jobs, cost, "train", progress and not per_job)
    records: list[dict[str, Any]] = []
    chosen: dict[tuple[str, str], list[str]] = {}
    runs = Path(cfg.out) / "runs"
    for (mechanism, billing), run_dirs in by_market.items():
        seeds: dict[str, list[dict[str, Any]]] = {}
        for run_dir in run_dirs:
            summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
            for provider, s in summary.items():
                seeds.setdefault(provider, []).append(
                    {"mechanism": mechanism, "billing": billing, "provider": provider, "run_dir": str(run_dir), **s}
                )
        for group in seeds.values():
            best = max(group, key=lambda r: r["manipulation_gain"])
            for r in group:
                r["chosen"] = r is best
            records += group
            chosen.setdefault((mechanism, billing), []).append(best["run_dir"])
    runs.mkdir(parents=True, exist_ok=True)
    atomic_write(runs / "selection.json", json.dumps(records, indent=2))
    return chosen, records
