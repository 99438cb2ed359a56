"""Learned strategies: SB3 models behind the :class:`agents.policy.Policy` interface, saved with a manifest.

A run directory's ``manifest.json`` says what its policies were trained on - scenario, mechanism, agent ids, the
observation layout and action encoding, library versions - and :func:`check_manifest` refuses to load a policy into
a market whose observation or action layout differs (a silent mismatch would make a policy act on the wrong inputs).
Policies are stored in SB3's own zip format (``policies/<agent>.zip`` or ``policies/shared.zip``). Loading never
unpickles anything from the file: the model is rebuilt from the manifest's algorithm and ``policy_kwargs`` and the
market's spaces, and only its weights are read (SB3's ``set_parameters``, i.e. ``torch.load(weights_only=True)``);
the zip's cloudpickled ``data`` entry is never opened.

A run dir is untrusted input: :func:`read_manifest` checks every field of ``manifest.json`` against
:class:`Manifest` (types, known algorithms, modes and levers, policy files inside ``policies/``) and against the
run's ``config.yaml`` when there is one (the labels both hold must agree), and every problem is a
:class:`RunDirError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import pickle
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn

import mechanisms
from agents.policy import LEVERS, Lever, LeverMask, Policy
from envs.batched import BatchedMarket
from envs.config import ConfigError, from_dict, load_yaml
from envs.layout import ACTION_DIM, BID_CODEC
from envs.market import raw_env

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
Mode = Literal["best-response", "independent", "shared", "simultaneous"]  # how a run's learners trained
MANIFEST = "manifest.json"
CONFIG = "config.yaml"
SHARED = "shared"
# What a damaged or hostile policy file can raise while its weights are read (nothing in it is executed).
UNREADABLE = (
    ValueError,
    RuntimeError,
    KeyError,
    OSError,
    EOFError,
    TypeError,
    AttributeError,
    IndexError,
    zipfile.BadZipFile,
    zlib.error,
    pickle.UnpicklingError,
)


class RunDirError(ValueError):
    """A run directory is missing, incomplete, malformed or does not match the market it is used in."""


@dataclass
class PolicyKwargs:
    """The network a manifest's policies were built with (``policy_kwargs``; empty for Q tables).

    Attributes:
        net_arch: hidden layer sizes.
        log_std_init: PPO's initial log standard deviation.
    """

    net_arch: list[int] | None = None
    log_std_init: float | None = None

    def __post_init__(self) -> None:
        if self.net_arch is not None and (not self.net_arch or min(self.net_arch) < 1):
            raise ValueError(f"field 'net_arch': expected hidden layer sizes >= 1, got {self.net_arch}")


@dataclass
class Manifest:
    """The fields of ``manifest.json`` (written by :func:`make_manifest`), each checked by :func:`read_manifest`.

    Attributes:
        env, scenario, mechanism: the environment's name and version, the scenario's name, the mechanism.
        agents: the market's agents.
        policies: agent -> policy file under ``policies/`` (a plain name: no absolute path, no ``..``).
        algo, mode: the algorithm and the training mode.
        observation_layout, action: the observation layout and action encoding the policies act on.
        versions: library versions.
        policy_kwargs: the policies' network (:class:`PolicyKwargs`).
        overrides, learners, opponents, non_learners, timesteps, seed, levers: the training run's settings.
        qlearning, converged_share: a tabular run's Q-learning parameters and share of converged sessions.
    """

    env: str
    scenario: str
    mechanism: str
    agents: list[str]
    policies: dict[str, str]
    algo: Literal["ppo", "sac", "qlearning"]
    mode: Mode
    observation_layout: dict[str, Any]
    action: dict[str, Any]
    versions: dict[str, str]
    policy_kwargs: PolicyKwargs | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    learners: list[str] = field(default_factory=list)
    opponents: str = "truthful"
    non_learners: list[str] = field(default_factory=list)
    timesteps: int | None = None
    seed: int | None = None
    levers: list[Lever] = field(default_factory=lambda: list(LEVERS))
    qlearning: dict[str, Any] | None = None
    converged_share: float | None = None

    def __post_init__(self) -> None:
        if self.mechanism not in mechanisms.REGISTRY:
            raise ValueError(
                f"field 'mechanism': unknown mechanism {self.mechanism!r}; known: {sorted(mechanisms.REGISTRY)}"
            )
        for name in ("policies", "learners", "non_learners"):
            strangers = [a for a in getattr(self, name) if a not in self.agents]
            if strangers:
                raise ValueError(f"field {name!r}: agent(s) {strangers} are not among the field 'agents' {self.agents}")
        for agent, name in self.policies.items():
            if not name or Path(name).is_absolute() or ".." in Path(name).parts:
                raise ValueError(
                    f"field 'policies': {agent}'s file {name!r} must be a file name under policies/ "
                    f"(no absolute path, no '..')"
                )
        if not self.levers:
            raise ValueError(f"field 'levers': expected a non-empty subset of {list(LEVERS)}, got []")
        if not isinstance(self.action.get("dim"), int):
            raise ValueError(f"field 'action': expected an integer 'dim', got {self.action.get('dim')!r}")


class _SpacesOnly(gymnasium.Env):
    """Carries the spaces a model is built for; it is never reset or stepped."""

    def __init__(self, observation_space: gymnasium.Space, action_space: gymnasium.Space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        raise RuntimeError("a model rebuilt for loading weights has no environment")

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        raise RuntimeError("a model rebuilt for loading weights has no environment")


def load_weights(
    file: str | Path,
    algo: str,
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
    policy_kwargs: dict[str, Any],
    env: gymnasium.Env | VecEnv | None = None,
    **algo_kwargs: Any,
) -> BaseAlgorithm:
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
    except UNREADABLE as exc:
        raise RunDirError(f"{file}: cannot read the policy weights: {type(exc).__name__}: {exc}") from exc
    return model


_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.Tanh: np.tanh,
    nn.ReLU: lambda x: np.maximum(x, 0.0),
}


def _actor_layers(model: BaseAlgorithm) -> list[tuple[torch.Tensor, torch.Tensor, Callable[[np.ndarray], np.ndarray]]]:
    """A PPO actor's mean action as a chain of (weight, bias, activation), read from the live parameters (so the
    chain follows the model while it trains); empty when the policy is not a plain flatten-MLP-Gaussian actor."""
    policy = model.policy
    if not (
        isinstance(model, PPO)
        and isinstance(policy, ActorCriticPolicy)
        and isinstance(policy.pi_features_extractor, FlattenExtractor)
        and isinstance(policy.action_dist, DiagGaussianDistribution)
        and isinstance(policy.action_net, nn.Linear)
    ):
        return []
    layers: list[tuple[torch.Tensor, torch.Tensor, Callable[[np.ndarray], np.ndarray]]] = []
    modules = list(policy.mlp_extractor.policy_net)
    for i, module in enumerate(modules):
        if isinstance(module, nn.Linear):
            activation = _ACTIVATIONS.get(type(modules[i + 1])) if i + 1 < len(modules) else None
            if activation is None:
                return []
            layers.append((module.weight, module.bias, activation))
        elif type(module) not in _ACTIVATIONS:
            return []
    layers.append((policy.action_net.weight, policy.action_net.bias, lambda x: x))
    return layers


class LearnedPolicy(Policy):
    """A trained SB3 model acting deterministically (its mean action).

    A PPO actor (flattened observation, MLP, Gaussian mean) is evaluated in numpy straight from its parameters:
    the same arithmetic as SB3's ``predict(deterministic=True)`` in float32, without its per-call torch machinery
    (mode switches, distribution objects), which cost 20x the arithmetic in evaluation rollouts. Other models go
    through ``predict``.
    """

    def __init__(self, model: BaseAlgorithm, name: str = "learned"):
        self.model = model
        self.name = name
        self._layers = _actor_layers(model)

    def act(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        if not self._layers:
            action, _ = self.model.predict(x, deterministic=True)
            return np.clip(action, -1.0, 1.0).astype(np.float32)
        for weight, bias, activation in self._layers:
            x = activation(x @ weight.detach().numpy().T + bias.detach().numpy())
        return np.clip(x, -1.0, 1.0).astype(np.float32)

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


def make_manifest(
    market: raw_env | BatchedMarket,
    mechanism: str,
    algo: str,
    mode: str,
    policies: dict[str, str],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
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
        "action": {
            "dim": ACTION_DIM,
            "encoding": ["bid", "substitution", "inflation"],
            "bid_codec": BID_CODEC,
            "low": -1.0,
            "high": 1.0,
        },
        "versions": versions(),
        **(extra or {}),
    }


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """A run dir's manifest, every field checked (:class:`Manifest`) and its labels checked against the run's
    ``config.yaml`` when it has one; a RunDirError names the file and the field of the first problem."""
    run_dir = Path(run_dir)
    path = run_dir / MANIFEST
    if not run_dir.exists():
        raise RunDirError(f"run dir {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunDirError(f"run dir {run_dir} is a file, not a directory")
    if not path.is_file():
        raise RunDirError(f"{run_dir}: no {MANIFEST}; is this a finished train.py run dir?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise RunDirError(f"{path}: not UTF-8 text: {exc}") from None
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
        raise RunDirError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise RunDirError(f"{path}: expected a JSON object of manifest fields, got {type(manifest).__name__}")
    missing = [
        f.name
        for f in dataclasses.fields(Manifest)
        if f.name not in manifest and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise RunDirError(f"{path}: missing field(s) {missing}")
    try:
        from_dict(Manifest, manifest, str(path))
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None
    _check_against_config(run_dir, manifest)
    return manifest


def _check_against_config(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Raise the RunDirError naming a label of ``manifest.json`` that disagrees with the run's ``config.yaml`` (the
    resolved config train.py wrote when the run started); a run dir without config.yaml is not checked."""
    path = run_dir / CONFIG
    if not path.exists():
        return
    try:
        config = load_yaml(path)
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None
    resolved = config.get("resolved_scenario")
    labels = {
        key: config[key]
        for key in ("mechanism", "algo", "mode", "overrides", "opponents", "levers", "seed", "timesteps")
        if key in config
    }
    if isinstance(resolved, dict) and "name" in resolved:
        labels["scenario"] = resolved["name"]
    for key, value in labels.items():
        if key in manifest and manifest[key] != value:
            raise RunDirError(
                f"{run_dir / MANIFEST}: field {key!r} is {manifest[key]!r} but {path} says {value!r}; "
                f"the run dir was edited or mixed up with another run"
            )


def policy_file(run_dir: Path, name: str) -> Path:
    """The policy file ``name`` of a run's manifest: under ``run_dir/policies/``, which it may not leave (through an
    absolute path, ``..`` or a link pointing elsewhere), and present."""
    file = run_dir / "policies" / name
    if not file.resolve().is_relative_to(run_dir.resolve() / "policies"):
        raise RunDirError(f"{run_dir / MANIFEST}: field 'policies': {name!r} leads outside {run_dir / 'policies'}")
    if not file.is_file():
        raise RunDirError(f"{run_dir}: policy file {file} listed in the manifest is missing or not a file")
    return file


def check_manifest(manifest: dict[str, Any], market: raw_env | BatchedMarket, source: str) -> None:
    """Raise RunDirError naming what differs between a run's manifest and the target market."""
    problems = []
    if manifest["env"] != market.metadata["name"]:
        problems.append(f"env {manifest['env']!r} != {market.metadata['name']!r}")
    if manifest["agents"] != market.possible_agents:
        problems.append(f"agents {manifest['agents']} != {market.possible_agents}")
    if manifest["action"].get("dim") != ACTION_DIM:
        problems.append(f"action dim {manifest['action'].get('dim')} != {ACTION_DIM}")
    if manifest["action"].get("bid_codec") != BID_CODEC:  # absent: the additive codec clipped at 0 (before 2026-12)
        problems.append(
            f"bid codec {manifest['action'].get('bid_codec', 'max(0, honest_ask + a * ask_scale)')!r} != "
            f"{BID_CODEC!r} (retrain the policy)"
        )
    want = market.layout.record()
    have = manifest["observation_layout"]
    diffs = [k for k in want if have.get(k) != want[k]]
    if diffs:
        problems.append(
            "observation layout differs in " + ", ".join(f"{k} ({have.get(k)} != {want[k]})" for k in diffs)
        )
    if problems:
        raise RunDirError(
            f"{source}: trained for scenario {manifest.get('scenario')!r} / mechanism "
            f"{manifest.get('mechanism')!r}, which does not match this market: " + "; ".join(problems)
        )


def load_policies(
    run_dir: str | Path, market: raw_env | BatchedMarket, agents: list[str] | None = None
) -> dict[str, Policy]:
    """The learned policies of a run dir, checked against ``market``; ``agents`` selects some (default: all)."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    check_manifest(manifest, market, str(run_dir))
    if manifest["algo"] == "qlearning":  # tabular Q-learners (train.py --mode simultaneous --algo qlearning)
        return _load_qtables(run_dir, manifest, market, agents)
    if manifest.get("policy_kwargs") is None:
        raise RunDirError(
            f"{run_dir / MANIFEST}: missing field 'policy_kwargs' (the network the policies were built with)"
        )
    wanted = agents or list(manifest["policies"])
    missing = [a for a in wanted if a not in manifest["policies"]]
    if missing:
        raise RunDirError(f"{run_dir}: no learned policy for {missing}; it has {sorted(manifest['policies'])}")
    loaded: dict[Path, BaseAlgorithm] = {}
    out: dict[str, Policy] = {}
    for agent in wanted:
        file = policy_file(run_dir, manifest["policies"][agent])
        if file not in loaded:
            loaded[file] = load_weights(
                file,
                manifest["algo"],
                market.observation_space(agent),
                market.action_space(agent),
                manifest["policy_kwargs"],
            )
        policy: Policy = LearnedPolicy(loaded[file], name=f"learned:{run_dir.name}")
        levers = tuple(manifest.get("levers", LEVERS))
        out[agent] = policy if set(levers) == set(LEVERS) else LeverMask(policy, levers)
    return out


def _load_qtables(
    run_dir: Path, manifest: dict[str, Any], market: raw_env | BatchedMarket, agents: list[str] | None
) -> dict[str, Policy]:
    """Greedy tabular Q-learners of a run dir (``policies/<agent>.npz``: one table per session; market row b plays
    session b mod S)."""
    from agents.qlearning import QConfig, QLearningPolicy

    try:
        config = from_dict(QConfig, manifest.get("qlearning") or {}, f"{run_dir / MANIFEST}: field 'qlearning'")
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None
    wanted = agents or list(manifest["policies"])
    missing = [a for a in wanted if a not in manifest["policies"]]
    if missing:
        raise RunDirError(f"{run_dir}: no learned policy for {missing}; it has {sorted(manifest['policies'])}")
    out: dict[str, Policy] = {}
    for agent in wanted:
        file = policy_file(run_dir, manifest["policies"][agent])
        try:
            with np.load(file, allow_pickle=False) as data:
                tables, grid = np.asarray(data["tables"], dtype=np.float64), np.asarray(data["grid"], dtype=np.float64)
        except UNREADABLE as exc:
            raise RunDirError(f"{file}: cannot read the Q tables: {type(exc).__name__}: {exc}") from exc
        if grid.shape != (len(config.grid),) or not np.allclose(grid, config.grid):
            raise RunDirError(f"{file}: its ask grid differs from the manifest's")
        if tables.ndim not in (1, 2) or tables.shape[-1] != len(config.grid) or not np.isfinite(tables).all():
            raise RunDirError(
                f"{file}: 'tables' must be finite Q values, one column per ask of the grid "
                f"({len(config.grid)}), got shape {tables.shape}"
            )
        policy = QLearningPolicy(market.layout, config=config, learning=False, tables=tables)
        policy.name = f"learned:{run_dir.name}"
        out[agent] = policy
    return out
