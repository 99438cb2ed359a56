"""Stable-Baselines3 callbacks of a training run: TensorBoard metrics and progress, periodic evaluation of the
manipulation gain, checkpoints."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import CSVOutputFormat, HParam, Logger, TensorBoardOutputFormat
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from envs.metrics import MARKET_METRICS, PROVIDER_METRICS
from training.vec_env import MarketVecEnv


def custom_scalar_layout(agents: list[str]) -> dict[str, dict[str, list]]:
    """TensorBoard's Custom Scalars page: one chart per metric with every provider's curve on it."""
    return {
        "providers": {m: ["Multiline", [rf"{a}/{m}$" for a in agents]] for m in PROVIDER_METRICS},
        "market": {m: ["Multiline", [rf"market/{m}$"]] for m in MARKET_METRICS},
        "evaluation": {
            "manipulation gain": ["Multiline", [r"eval/manipulation_gain", r"eval/gain_ci_.*"]],
            "profit vs honest": ["Multiline", [r"eval/profit", r"eval/honest_profit"]],
        },
        "mechanism": {"diagnostics": ["Multiline", [r"mechanism/.*"]]},
    }


class MarketLogger(BaseCallback):
    """Logs episode metrics (provider_<i>/..., market/..., mechanism/...; means over the markets of every finished
    episode, from :class:`training.vec_env.MarketVecEnv`), steps per second, a progress bar, hparams and the
    custom-scalars layout."""

    def __init__(self, total: int, hparams: dict[str, Any], label: str, progress: bool = True):
        super().__init__()
        self.total, self.hparams, self.label, self.progress = total, hparams, label, progress
        self.env_time = 0.0

    @property
    def market_env(self) -> MarketVecEnv:
        """The training env: a :class:`training.vec_env.MarketVecEnv` (its episode counters and metrics)."""
        return cast(MarketVecEnv, self.training_env)

    def _on_training_start(self) -> None:
        self.bar = tqdm(
            total=self.total,
            initial=self.model.num_timesteps,
            desc=self.label,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
        )
        self.start_steps, self.start_time = self.model.num_timesteps, time.perf_counter()
        env = self.market_env
        self._seen_episodes = env.episodes_done
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_custom_scalars(custom_scalar_layout(env.agents))
        self.logger.record(
            "hparams",
            HParam(self.hparams, {"rollout/ep_rew_mean": 0.0, "eval/manipulation_gain": 0.0}),
            exclude=("stdout", "log", "json", "csv"),
        )

    def _on_step(self) -> bool:
        env = self.market_env
        self.bar.update(env.num_envs)
        if env.episodes_done != self._seen_episodes:  # episodes ended in every market this step
            self._seen_episodes = env.episodes_done
            for key, value in env.episode_metrics.items():
                self.logger.record_mean(key, value)
        return True

    def _on_rollout_end(self) -> None:
        elapsed = time.perf_counter() - self.start_time
        self.logger.record("time/sps", (self.model.num_timesteps - self.start_steps) / max(elapsed, 1e-9))

    def _on_training_end(self) -> None:
        self.bar.close()


PINNED_MEASUREMENTS = 3  # equal gains in a row that stop a learner whose play no longer changes


class GainEvaluator(BaseCallback):
    """Every ``every`` steps: the learner's mean profit per round and its gain over honest play on the same seeds.

    With a target ``stop_at``, training stops once the gain reaches it, or once the last
    :data:`PINNED_MEASUREMENTS` measurements are exactly equal while the learner wins rounds (non-zero profit): its
    deterministic play on the selection seeds has not changed in that many measurements, which happens when every
    action is pinned at a bound (a continuous bid that wins moves the profit with any change); PPO's exploration
    around such a mean rarely reaches back inside, so further steps buy nothing (e.g. second_price learners,
    unchanged from 50k to 300k steps). A learner priced out of every round also measures equal gains, but its
    exploration still finds wins: it trains on. An infinite target (no scripted deviation to match) only stops a
    pinned learner. ``history``: the (gain, profit) measured before a resume, so a resumed run stops where an
    uninterrupted one does.
    """

    def __init__(
        self,
        every: int,
        evaluate: Callable[[BaseAlgorithm], dict[str, float]],
        stop_at: float | None = None,
        history: list[tuple[float, float]] | None = None,
    ):
        super().__init__()
        self.every, self.evaluate, self.next_at, self.stop_at = every, evaluate, every, stop_at
        self.history = list(history or [])

    def _on_training_start(self) -> None:  # a resumed run measures at the same steps as an uninterrupted one
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every if self.every else 0

    def _on_step(self) -> bool:
        if self.every and self.model.num_timesteps >= self.next_at:
            self.next_at += self.every
            result = self.evaluate(self.model)
            for key, value in result.items():
                self.logger.record(f"eval/{key}", value)
            self.history.append((result["manipulation_gain"], result["profit"]))
            if self.stop_at is not None:
                if math.isfinite(self.stop_at):
                    self.logger.record("eval/target_gain", self.stop_at)
                recent = self.history[-PINNED_MEASUREMENTS:]
                pinned = len(recent) == PINNED_MEASUREMENTS and len(set(recent)) == 1 and recent[0][1] != 0.0
                return result["manipulation_gain"] < self.stop_at and not pinned
        return True


def measured_gains(folder: Path) -> list[tuple[float, float]]:
    """The (gain, profit) measurements a run logged to ``folder/progress.csv`` so far, in order (the history of a
    resumed run)."""
    path = folder / "progress.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            (float(r["eval/manipulation_gain"]), float(r["eval/profit"]))
            for r in csv.DictReader(fh)
            if r.get("eval/manipulation_gain")
        ]


class Checkpointer(BaseCallback):
    """Saves an exact checkpoint (:mod:`training.checkpoint`) every ``every`` steps, between two iterations."""

    def __init__(self, every: int, directory: Path, stage: str, save: Callable[[], Path]):
        super().__init__()
        self.every, self.directory, self.stage, self.save = every, directory, stage, save
        self.next_at = 0

    def _on_training_start(self) -> None:
        self.next_at = (self.model.num_timesteps // self.every + 1) * self.every if self.every else 0

    def _on_rollout_start(self) -> None:
        # After the previous iteration's update and before the next rollout: the state an exact resume needs.
        if self.every and self.model.num_timesteps >= self.next_at:
            self.next_at = (self.model.num_timesteps // self.every + 1) * self.every
            self.save()

    def _on_step(self) -> bool:
        return True


def run_logger(folder: Path, resume_at: int | None = None) -> Logger:
    """SB3's logger writing TensorBoard events and ``progress.csv`` into ``folder``. Resuming from a checkpoint at
    ``resume_at`` steps, progress.csv keeps its rows up to that step (the rest is written again by the resumed run)
    and TensorBoard drops the earlier run's events after it (``purge_step``), so the history is whole and single."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "progress.csv"
    kept: list[dict[str, str]] = []
    if resume_at is not None and csv_path.is_file():
        with open(csv_path, newline="", encoding="utf-8") as fh:
            kept = [r for r in csv.DictReader(fh) if float(r.get("time/total_timesteps") or 0) <= resume_at]
    csv_format = CSVOutputFormat(str(csv_path))
    for row in kept:
        values = {k: v for k, v in row.items() if v != ""}
        csv_format.write(values, dict.fromkeys(values, ()))
    tensorboard = TensorBoardOutputFormat(str(folder))
    if resume_at is not None:
        tensorboard.writer.close()
        tensorboard.writer = SummaryWriter(str(folder), purge_step=resume_at + 1)
    return Logger(folder=str(folder), output_formats=[tensorboard, csv_format])
