"""Exact, crash-safe checkpoints of a training run.

A checkpoint is taken between two PPO iterations (after an update, before the next rollout), and holds everything
the run needs to continue as if it had never stopped: the model's weights and optimizer state (SB3's zip, read back
without unpickling), the model's place in its rollout (last observations, episode starts, step and update counts,
episode-info window), the random generators of torch, numpy and Python, and the markets' complete state
(:meth:`training.vec_env.MarketVecEnv.state_dict`: every market's streams, mechanism, statistics). A resumed run is
bitwise identical to an uninterrupted one (weights, summary, and the history in progress.csv and TensorBoard).

Files are never written in place: a checkpoint is built in a hidden temporary directory and renamed into
``checkpoints/<stage>_<steps>_steps/`` in one step, so a crash (kill -9, a double Ctrl-C) leaves either the complete
checkpoint or none; a checkpoint that does not load (a disk error, a tampered file) is reported and the one before it
is used. Only the newest ``KEEP`` checkpoints of a stage are kept.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import warnings
from collections import deque
from pathlib import Path

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from envs.files import fsync_dir
from training.vec_env import MarketVecEnv

KEEP = 2
_NAME = re.compile(r"^(?P<stage>.+)_(?P<steps>\d+)_steps$")


class CheckpointError(RuntimeError):
    """A checkpoint is incomplete or does not fit the run it is loaded into."""


def checkpoints(directory: Path, stage: str) -> list[tuple[int, Path]]:
    """The stage's checkpoints, newest first."""
    if not directory.is_dir():
        return []
    found = [
        (int(m["steps"]), p)
        for p in directory.iterdir()
        if p.is_dir() and (m := _NAME.match(p.name)) and m["stage"] == stage
    ]
    return sorted(found, reverse=True)


def save_checkpoint(model: BaseAlgorithm, env: MarketVecEnv, directory: Path, stage: str) -> Path:
    """Write a checkpoint of the model and its markets atomically; returns its directory."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"{stage}_{model.num_timesteps}_steps"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=directory))
    try:
        model.save(tmp / "model.zip")
        arrays, meta = env.state_dict()
        arrays["sb3.last_obs"] = np.asarray(model._last_obs)
        arrays["sb3.last_episode_starts"] = np.asarray(model._last_episode_starts)
        arrays["rng.torch"] = torch.get_rng_state().numpy()
        # SB3 and our seeding use numpy's global legacy generator, so its exact state is part of the checkpoint.
        state = np.random.get_state(legacy=True)  # noqa: NPY002
        assert isinstance(state, tuple)  # the legacy form: ("MT19937", keys, pos, has_gauss, cached)
        _, keys, pos, has_gauss, cached = state
        arrays["rng.numpy"] = keys
        meta["rng.numpy"] = [int(pos), int(has_gauss), float(cached)]
        version, internal, gauss = random.getstate()
        meta["rng.python"] = [version, list(internal), gauss]
        meta["sb3"] = {
            "num_timesteps": model.num_timesteps,
            "n_updates": model._n_updates,
            "ep_info_buffer": list(model.ep_info_buffer or []),
            "ep_success_buffer": list(model.ep_success_buffer or []),
        }
        # The last update's losses, recorded but dumped only with the next rollout's row of the history.
        logger = model.logger
        pending = {k: v for k, v in logger.name_to_value.items() if isinstance(v, (int, float, np.number))}
        meta["logger"] = {
            "values": {k: v.item() if isinstance(v, np.number) else v for k, v in pending.items()},
            "dtypes": {k: type(v).__name__ for k, v in pending.items()},
            "counts": {k: int(logger.name_to_count.get(k, 0)) for k in pending},
            "excluded": {k: list(logger.name_to_excluded.get(k, ())) for k in pending},
        }
        with open(tmp / "state.npz", "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle's bool
        (tmp / "state.json").write_text(json.dumps(meta), encoding="utf-8")
        for name in ("model.zip", "state.npz", "state.json"):
            with open(tmp / name, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        if final.exists():  # the same step count again (a resumed run re-reaching it): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in checkpoints(directory, stage)[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: BaseAlgorithm, env: MarketVecEnv) -> int:
    """Continue ``model`` and ``env`` (built from the run's config) from a checkpoint; returns its step count. The
    values the logger held (:func:`pending_log`) are restored by :func:`restore_pending_log` once the run's logger
    is set."""
    try:
        model.set_parameters(str(path / "model.zip"), device="cpu")
        with np.load(path / "state.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        env.load_state_dict(arrays, meta)
        sb3 = meta["sb3"]
        model._last_obs = arrays["sb3.last_obs"]
        model._last_episode_starts = arrays["sb3.last_episode_starts"]
        model.num_timesteps, model._n_updates = int(sb3["num_timesteps"]), int(sb3["n_updates"])
        model.ep_info_buffer = deque(sb3["ep_info_buffer"], maxlen=model._stats_window_size)
        model.ep_success_buffer = deque(sb3["ep_success_buffer"], maxlen=model._stats_window_size)
        torch.set_rng_state(torch.from_numpy(arrays["rng.torch"]))
        pos, has_gauss, cached = meta["rng.numpy"]
        np.random.set_state(("MT19937", arrays["rng.numpy"], pos, has_gauss, cached))  # noqa: NPY002 (see save_checkpoint)
        version, internal, gauss = meta["rng.python"]
        random.setstate((version, tuple(internal), gauss))
        model._pending_log = meta.get("logger")  # type: ignore[attr-defined]  # for restore_pending_log, once the logger exists
    except Exception as exc:  # any damage: the caller falls back to an older checkpoint
        raise CheckpointError(f"{path}: cannot load the checkpoint: {exc}") from exc
    return model.num_timesteps


def resume_from_newest(directory: Path, stage: str, model: BaseAlgorithm, env: MarketVecEnv) -> int | None:
    """Load the newest checkpoint of a stage that loads (warning about, and skipping, damaged ones); the step count
    resumed from, or None when there is none."""
    for _steps, path in checkpoints(directory, stage):
        try:
            return load_checkpoint(path, model, env)
        except CheckpointError as exc:
            warnings.warn(f"{exc}; trying an older checkpoint", stacklevel=2)
    return None


def restore_pending_log(model: BaseAlgorithm) -> None:
    """Give the run's (new) logger back the values recorded before the checkpoint but not yet written."""
    pending = getattr(model, "_pending_log", None)
    if pending:
        logger = model.logger
        logger.name_to_value.update(
            {
                k: getattr(np, pending["dtypes"][k])(v) if hasattr(np, pending["dtypes"][k]) else v
                for k, v in pending["values"].items()
            }
        )
        logger.name_to_count.update(pending["counts"])
        logger.name_to_excluded.update({k: tuple(v) for k, v in pending["excluded"].items()})
