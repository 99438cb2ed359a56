"""The training run's settings: one typed dataclass, loadable from YAML (``configs/train/*.yaml``) and flags."""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agents.learned import ALGORITHMS, Mode
from agents.policy import LEVERS
from agents.qlearning import QConfig
from envs.config import ConfigError, check_fields, check_finite, from_dict, load_config

SELECTION_SEED = 5_000_000
"""The first selection seed (:attr:`TrainConfig.selection_seed`), above every evaluation seed of a run
(``evaluation.config.MAX_DECISION_SEEDS``)."""

# Keywords of an SB3 algorithm the trainer sets itself: the policy class, its network, the environment, the device.
SET_BY_TRAINER = ("policy", "env", "policy_kwargs", "device")


def algo_parameters(algo: str) -> list[str]:
    """The keys ``algo_kwargs`` may hold for ``algo``: the parameters of the SB3 class's constructor (but those
    of :data:`SET_BY_TRAINER`), or the fields of :class:`agents.qlearning.QConfig` for ``qlearning``."""
    if algo == "qlearning":
        return [f.name for f in dataclasses.fields(QConfig)]
    parameters = inspect.signature(ALGORITHMS[algo].__init__).parameters
    return [p for p in parameters if p != "self" and p not in SET_BY_TRAINER and not p.startswith("_")]


def check_algo_kwargs(algo: str, kwargs: dict[str, Any]) -> None:
    """Raise the ConfigError naming ``algo_kwargs`` for a key the algorithm does not accept (listing those it does),
    a number that is NaN or infinite, or (``qlearning``) a value QConfig refuses; before anything is trained or
    written."""
    where = "train config: field 'algo_kwargs'"
    accepted = algo_parameters(algo)
    unknown = sorted(set(kwargs) - set(accepted), key=str)
    if unknown:
        owner = "QConfig" if algo == "qlearning" else ALGORITHMS[algo].__name__
        raise ConfigError(f"{where}: unknown key(s) {unknown} for algo {algo!r}; {owner} accepts {accepted}")
    check_finite(kwargs, where)
    if algo == "qlearning":
        from_dict(QConfig, kwargs, where)


@dataclass
class TrainConfig:
    """Everything a training run needs; the same keys work in YAML (``configs/train/*.yaml``) and as flags.

    Attributes:
        scenario: scenario preset name or YAML path.
        mechanism: mechanism name.
        overrides: scenario fields and mechanism parameters (``--set KEY=VALUE``).
        mode: ``best-response``, ``independent``, ``shared`` or ``simultaneous`` (every learner learns at the same
            time in the same markets: :mod:`training.simultaneous`).
        learners: agents that learn (default: provider_0; ``all`` for every provider).
        opponents: strategy of the non-learners: a scripted strategy name (``truthful``), or a run dir whose saved
            policies they use; ``agent=spec`` pairs separated by commas set them per agent.
        algo: ``ppo`` or ``sac``; ``qlearning`` (tabular, on an ask grid) with mode ``simultaneous``.
        timesteps: transitions per learner (``best-response``, ``shared``) or in total per learner over all rounds
            (``independent``).
        rounds: R, rounds of ``independent`` mode (K = timesteps // rounds per learner per round).
        n_envs: markets stepped together (one batched market; each is an SB3 environment slot per learner).
        seed: seeds numpy, torch, the markets (copy k: seed + k) and evaluation (seed + 10_000 + episode).
        run_dir: where everything is written.
        checkpoint_every: save a checkpoint every this many learner transitions (0: only on Ctrl-C).
        eval_every: measure the gain over honest play every this many learner transitions (0: never).
        eval_episodes: episodes (one market each) of each gain measurement during training and of the final summary.
        selection_seed: episode e of every gain measurement is seeded ``selection_seed + e``: seeds disjoint from the
            evaluation's, so choosing the strongest of several learners on them does not bias its final evaluation.
        target: stop a learner once its gain over honest play (measured every ``eval_every`` steps on the selection
            seeds) reaches this many money units per round; ``best_scripted``: the best gain a scripted deviation of
            its lever family (``agents.scripted.DEVIATIONS`` using only ``levers``) makes on the same seeds (when
            none gains, there is nothing to match: the learner trains all ``timesteps``); null: train all
            ``timesteps`` (then a cap).
        levers: the action dimensions the learners control (``bid``, ``substitution``, ``inflation``); the others
            play honest.
        learning_rate: the optimizer's step size.
        n_steps: PPO rollout length per environment slot.
        batch_size: minibatch size (PPO and SAC).
        n_epochs: PPO epochs per rollout. 5 learns the n = 3 first-price equilibrium closer (bid distance 0.009-0.014
            over seeds 0-2 at 1M steps) and twice as fast as SB3's 10 (0.048 on seed 0), which overfits each rollout.
        gamma: discount factor.
        ent_coef: PPO entropy bonus.
        net_arch: hidden layer sizes of the policy and value networks.
        log_std_init: PPO's initial log standard deviation of the Gaussian policy.
        algo_kwargs: any other keyword of the SB3 algorithm.
        torch_threads: threads of torch's CPU kernels; one is fastest for these small networks (more threads
            contend for the two cores with the market and with parallel runs).
    """

    scenario: str = "capitals"
    mechanism: str = "first_price"
    overrides: dict[str, Any] = field(default_factory=dict)
    mode: Mode = "best-response"
    learners: list[str] = field(default_factory=lambda: ["provider_0"])
    opponents: str = "truthful"
    algo: Literal["ppo", "sac", "qlearning"] = "ppo"
    timesteps: int = 500_000
    rounds: int = 3
    n_envs: int = 256
    seed: int = 0
    run_dir: str = "runs/latest"
    checkpoint_every: int = 250_000
    eval_every: int = 100_000
    eval_episodes: int = 8
    selection_seed: int = SELECTION_SEED
    target: float | Literal["best_scripted"] | None = None
    levers: list[str] = field(default_factory=lambda: ["bid", "substitution", "inflation"])
    learning_rate: float = 1e-3
    n_steps: int = 16
    batch_size: int = 1024
    n_epochs: int = 5
    gamma: float = 0.9
    ent_coef: float = 0.0
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    log_std_init: float = -1.0
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    torch_threads: int = 1

    def __post_init__(self) -> None:
        check_fields(self, "train config")
        for name in (
            "timesteps",
            "n_envs",
            "rounds",
            "eval_episodes",
            "n_steps",
            "batch_size",
            "n_epochs",
            "torch_threads",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"train config: field {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "eval_every", "seed", "selection_seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train config: field {name!r} must be >= 0, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"train config: field 'learning_rate' must be > 0, got {self.learning_rate}")
        if not 0 <= self.gamma <= 1:
            raise ConfigError(f"train config: field 'gamma' must be in [0, 1], got {self.gamma}")
        if not self.learners:
            raise ConfigError("train config: field 'learners': expected agent ids or 'all', got []")
        if not self.net_arch or min(self.net_arch) < 1:
            raise ConfigError(f"train config: field 'net_arch': expected hidden layer sizes >= 1, got {self.net_arch}")
        bad = [lever for lever in self.levers if lever not in LEVERS]
        if bad or not self.levers:
            raise ConfigError(
                f"train config: field 'levers': expected a non-empty subset of {list(LEVERS)}, got {self.levers}"
            )
        if self.target is not None and not self.eval_every:
            raise ConfigError("train config: field 'target' needs eval_every > 0 (the gain is measured then)")
        if self.algo == "qlearning" and self.mode != "simultaneous":
            raise ConfigError("train config: algo 'qlearning' runs in mode 'simultaneous' only")
        if self.mode == "simultaneous" and self.algo == "sac":
            raise ConfigError("train config: mode 'simultaneous' supports algo 'ppo' or 'qlearning'")
        check_algo_kwargs(self.algo, self.algo_kwargs)


def load_train_config(path: str | Path | None = None, **fields: Any) -> TrainConfig:
    """A TrainConfig from an optional YAML file, with keyword fields on top (``None`` values are ignored)."""
    return load_config(TrainConfig, path, **fields)
