"""Learned strategies: SB3 models behind the :class:`agents.policy.Policy` interface, saved with a manifest.

A run directory's ``manifest.json`` says what its policies were trained on - scenario, mechanism, agent ids, the
observation layout and action encoding, library versions - and :func:`check_manifest` refuses to load a policy into
a market whose observation or action layout differs (a silent mismatch would make a policy act on the wrong inputs).
Policies are stored in SB3's own zip format (``policies/<agent>.zip`` or ``policies/shared.zip``). Loading never
unpickles anything from the file: the model is rebuilt from the manifest's algorithm and ``policy_kwargs`` and the
market's spaces, and only its weights are read (SB3's ``set_parameters``, i.e. ``torch.load(weights_only=True)``);
the zip's cloudpickled ``data`` entry is never opened.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecEnv

from agents.policy import LEVERS, LeverMask, Policy
from envs.batched import BatchedMarket
from envs.layout import ACTION_DIM
from envs.market import raw_env

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
MANIFEST = "manifest.json"
SHARED = "shared"


class RunDirError(ValueError):
    """A run directory is missing, incomplete or does not match the market it is used in."""


class _SpacesOnly(gymnasium.Env):
    """Carries the spaces a model is built for; it is never reset or stepped."""

    def __init__(self, observation_space: gymnasium.Space, action_space: gymnasium.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        raise RuntimeError("a model rebuilt for loading weights has no environment")

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        raise RuntimeError("a model rebuilt for loading weights has no environment")


def load_weights(file: str | Path, algo: str, observation_space: gymnasium.Space, action_space: gymnasium.Space,
                 policy_kwargs: dict[str, Any], env: gymnasium.Env | VecEnv | None = None,
                 **algo_kwargs: Any) -> BaseAlgorithm:
    """A model of ``algo`` with ``policy_kwargs`` whose weights (and optimizer state) are read from an SB3 zip
    without unpickling anything from it. ``env`` (default: none) is the environment it will train on."""
    if algo not in ALGORITHMS:
        raise RunDirError(f"{file}: unknown algo {algo!r}; known: {sorted(ALGORITHMS)}")
    if env is None:
        env = _SpacesOnly(observation_space, action_space)
        if algo == "sac":
            algo_kwargs.setdefault("buffer_size", 1)  # acting only: no replay memory
    model = ALGORITHMS[algo]("MlpPolicy", env, policy_kwargs=policy_kwargs, device="cpu", **algo_kwargs)
    try:
        model.set_parameters(str(file), device="cpu")
    except (ValueError, RuntimeError, KeyError, OSError) as exc:
        raise RunDirError(f"{file}: cannot read the policy weights: {exc}") from exc
    return model


class LearnedPolicy(Policy):
    """A trained SB3 model acting deterministically (its mean action)."""

    def __init__(self, model: BaseAlgorithm, name: str = "learned"):
        self.model = model
        self.name = name

    def act(self, obs: np.ndarray) -> np.ndarray:
        action, _ = self.model.predict(np.asarray(obs, dtype=np.float32), deterministic=True)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def key(self) -> object:
        return ("learned", id(self.model))


def versions() -> dict[str, str]:
    names = ("llm-market-arena", "stable-baselines3", "torch", "numpy", "pettingzoo", "gymnasium")
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "unknown"
    return out


def make_manifest(market: raw_env | BatchedMarket, mechanism: str, algo: str, mode: str, policies: dict[str, str],
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Manifest of a run: ``policies`` maps agent ids to policy file names under ``policies/``."""
    return {
        "env": market.metadata["name"],
        "scenario": market.config.name,
        "mechanism": mechanism,
        "agents": market.possible_agents,
        "policies": policies,
        "algo": algo,
        "mode": mode,
        "observation_layout": market.layout.record(),
        "action": {"dim": ACTION_DIM, "encoding": ["bid", "substitution", "inflation"], "low": -1.0, "high": 1.0},
        "versions": versions(),
        **(extra or {}),
    }


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not run_dir.is_dir():
        raise RunDirError(f"run dir {run_dir} does not exist")
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no {MANIFEST}; is this a finished train.py run dir?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON: {exc}") from exc
    for key in ("env", "agents", "policies", "algo", "observation_layout", "action"):
        if key not in manifest:
            raise RunDirError(f"{path}: missing field {key!r}")
    return manifest


def check_manifest(manifest: dict[str, Any], market: raw_env | BatchedMarket, source: str) -> None:
    """Raise RunDirError naming what differs between a run's manifest and the target market."""
    problems = []
    if manifest["env"] != market.metadata["name"]:
        problems.append(f"env {manifest['env']!r} != {market.metadata['name']!r}")
    if manifest["agents"] != market.possible_agents:
        problems.append(f"agents {manifest['agents']} != {market.possible_agents}")
    if manifest["action"].get("dim") != ACTION_DIM:
        problems.append(f"action dim {manifest['action'].get('dim')} != {ACTION_DIM}")
    want = market.layout.record()
    have = manifest["observation_layout"]
    diffs = [k for k in want if have.get(k) != want[k]]
    if diffs:
        problems.append("observation layout differs in " + ", ".join(f"{k} ({have.get(k)} != {want[k]})"
                                                                       for k in diffs))
    if problems:
        raise RunDirError(f"{source}: trained for scenario {manifest.get('scenario')!r} / mechanism "
                          f"{manifest.get('mechanism')!r}, which does not match this market: " + "; ".join(problems))


def load_policies(run_dir: str | Path, market: raw_env | BatchedMarket,
                  agents: list[str] | None = None) -> dict[str, Policy]:
    """The learned policies of a run dir, checked against ``market``; ``agents`` selects some (default: all)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    check_manifest(manifest, market, str(run_dir))
    if manifest["algo"] == "qlearning":  # tabular Q-learners (train.py --mode simultaneous --algo qlearning)
        return _load_qtables(run_dir, manifest, market, agents)
    if manifest["algo"] not in ALGORITHMS:
        raise RunDirError(f"{run_dir / MANIFEST}: unknown algo {manifest['algo']!r}; known: {sorted(ALGORITHMS)}")
    if "policy_kwargs" not in manifest:
        raise RunDirError(f"{run_dir / MANIFEST}: missing field 'policy_kwargs' (the network the policies were built "
                          f"with)")
    wanted = agents or list(manifest["policies"])
    missing = [a for a in wanted if a not in manifest["policies"]]
    if missing:
        raise RunDirError(f"{run_dir}: no learned policy for {missing}; it has {sorted(manifest['policies'])}")
    loaded: dict[str, BaseAlgorithm] = {}
    out: dict[str, Policy] = {}
    for agent in wanted:
        file = run_dir / "policies" / manifest["policies"][agent]
        if not file.is_file():
            raise RunDirError(f"{run_dir}: policy file {file} listed in the manifest is missing")
        if file not in loaded:
            loaded[file] = load_weights(file, manifest["algo"], market.observation_space(agent),
                                        market.action_space(agent), manifest["policy_kwargs"])
        policy: Policy = LearnedPolicy(loaded[file], name=f"learned:{run_dir.name}")
        levers = tuple(manifest.get("levers", LEVERS))
        out[agent] = policy if set(levers) == set(LEVERS) else LeverMask(policy, levers)
    return out


def _load_qtables(run_dir: Path, manifest: dict[str, Any], market: raw_env | BatchedMarket,
                  agents: list[str] | None) -> dict[str, Policy]:
    """Greedy tabular Q-learners of a run dir (``policies/<agent>.npz``: one table per session; market row b plays
    session b mod S)."""
    from agents.qlearning import QConfig, QLearningPolicy

    try:
        config = QConfig(**manifest.get("qlearning", {}))
    except (TypeError, ValueError) as exc:
        raise RunDirError(f"{run_dir / MANIFEST}: field 'qlearning' is not a Q-learner's config: {exc}") from None
    wanted = agents or list(manifest["policies"])
    missing = [a for a in wanted if a not in manifest["policies"]]
    if missing:
        raise RunDirError(f"{run_dir}: no learned policy for {missing}; it has {sorted(manifest['policies'])}")
    out: dict[str, Policy] = {}
    for agent in wanted:
        file = run_dir / "policies" / manifest["policies"][agent]
        if not file.is_file():
            raise RunDirError(f"{run_dir}: policy file {file} listed in the manifest is missing")
        try:
            with np.load(file, allow_pickle=False) as data:
                tables, grid = np.asarray(data["tables"], dtype=np.float64), np.asarray(data["grid"])
        except (OSError, KeyError, ValueError) as exc:
            raise RunDirError(f"{file}: cannot read the Q tables: {exc}") from exc
        if not np.allclose(grid, config.grid):
            raise RunDirError(f"{file}: its ask grid differs from the manifest's")
        policy = QLearningPolicy(market.layout, config=config, learning=False, tables=tables)
        policy.name = f"learned:{run_dir.name}"
        out[agent] = policy
    return out
