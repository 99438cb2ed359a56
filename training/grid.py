"""The learners of the main job: best responses for every mechanism of an evaluation, trained in parallel processes
before the evaluation plays them."""

from __future__ import annotations

from pathlib import Path

from evaluation.config import EvalConfig
from evaluation.runner import process_pool
from training.config import TrainConfig
from training.trainer import train


def _train_job(job: tuple[dict, bool]) -> str:
    fields, progress = job
    return str(train(TrainConfig(**fields), progress=progress).run_dir)


def train_learners(cfg: EvalConfig, progress: bool = True) -> dict[str, list[str]]:
    """Best-response learners (each provider against truthful others) for every mechanism of an evaluation, one run
    dir each under ``<out>/runs/``; runs that already finished are reused."""
    jobs = []
    for m in cfg.mechanisms:
        run_dir = Path(cfg.out) / "runs" / m
        if (run_dir / "manifest.json").is_file():
            print(f"reusing trained learners in {run_dir}")
            continue
        jobs.append(({"scenario": cfg.scenario, "mechanism": m, "overrides": cfg.overrides,
                      "learners": cfg.train_learners, "opponents": "truthful", "timesteps": cfg.train_timesteps,
                      "run_dir": str(run_dir), "eval_every": 0, "checkpoint_every": 0, "eval_episodes": 4}, progress))
    if jobs:
        with process_pool(max(1, cfg.workers)) as pool:
            list(pool.map(_train_job, jobs))
    return {m: [str(Path(cfg.out) / "runs" / m)] for m in cfg.mechanisms}
