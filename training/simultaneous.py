"""Simultaneous learning: every learner learns at the same time in the same markets (``--mode simultaneous``).

Unlike iterated best response (``independent``: one learner trains while the others are frozen), here all learners
act in every round of one :class:`envs.batched.BatchedMarket` and all update on the same schedule, each from its own
rewards - the setting in which learning algorithms can drift into tacit collusion (the repeated game's history - the
last clearing price, the provider's own last bid, whether it won, its win rate - is in every observation, so a
learner can condition on its rivals' past play). Non-learners play fixed strategies (``opponents``).

Algorithms:
- ``ppo``: one SB3 PPO model per learner, stepped in lockstep: each rollout of ``n_steps`` market rounds fills every
  model's own rollout buffer (the same arithmetic as SB3's ``collect_rollouts``, including bootstrapping the value
  at the horizon, which is a truncation), then every model runs its PPO update. Saved as SB3 zips in
  ``policies/<agent>.zip``, loadable like any other run (:func:`agents.learned.load_policies`).
- ``qlearning``: stateless tabular Q-learners on an ask grid (:mod:`agents.qlearning`; parameters from
  ``algo_kwargs``: grid, alpha, gamma, eps0, beta, q0, basis; Banchio and Skrzypacz's by default), one session per
  market (``n_envs`` sessions of ``timesteps`` periods, a single episode each). Saved as ``policies/<agent>.npz``
  (one Q table per session); loaded, they play their greedy asks.

The run dir has the usual ``config.yaml``, ``manifest.json`` (mode ``simultaneous``), ``policies/``, ``tb/<agent>/``
and ``summary.json``: each learner's profit against honest play with the others' learned policies fixed (its
unilateral gain), and the joint profit against all-truthful play.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger, configure
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn
from tqdm.auto import tqdm

from agents.learned import LearnedPolicy, make_manifest
from agents.policy import Policy
from agents.qlearning import QConfig, QLearningPolicy
from agents.registry import make_strategy
from envs.config import ConfigError
from envs.metrics import EpisodeStats
from evaluation.parallel import Backend, ProcessBackend
from evaluation.rollout import play
from evaluation.statistics import mean_ci
from training.config import TrainConfig
from training.tabular import config_record, run_sessions, save_tables

if TYPE_CHECKING:  # the functions import these lazily (import cycles)
    from evaluation.collusion import PolicyCollusion
    from training.trainer import TrainResult


class _Slots(VecEnv):
    """The spaces and slot count a PPO model is built for; never reset or stepped (the lockstep loop feeds the
    model's rollout buffer itself)."""

    def __init__(
        self, n: int, observation_space: gymnasium.spaces.Space[Any], action_space: gymnasium.spaces.Space[Any]
    ) -> None:
        super().__init__(n, observation_space, action_space)

    def reset(self) -> VecEnvObs:
        raise RuntimeError("the lockstep loop steps the market itself")

    def step_async(self, actions: np.ndarray) -> None:
        raise RuntimeError("the lockstep loop steps the market itself")

    def step_wait(self) -> VecEnvStepReturn:
        raise RuntimeError("the lockstep loop steps the market itself")

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [None] * self.num_envs

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        pass

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        return [None] * self.num_envs

    def env_is_wrapped(self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False] * self.num_envs


def simultaneous_ppo(
    cfg: TrainConfig,
    learners: list[str] | None = None,
    fixed: dict[str, Policy] | None = None,
    log_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, PPO]:
    """Train one PPO model per learner, all at the same time in the same ``cfg.n_envs`` markets.

    Every market round, each learner's model acts (stochastically, as in SB3's rollouts) on its own observations,
    fixed providers play ``fixed``, the market steps once, and each learner's transition goes to its own rollout
    buffer; after ``cfg.n_steps`` rounds every model runs its PPO update. ``cfg.timesteps`` counts transitions per
    learner. The market, the network and the PPO settings are the config's (as for every other mode); learner k's
    model is seeded ``cfg.seed + 1000 k`` and market e's first episode ``cfg.seed + e``.

    Args:
        cfg: the run's settings (``mode``, ``learners`` and ``opponents`` are not read: see the next two).
        learners: providers that learn (default: all not in ``fixed``).
        fixed: policies of the providers that do not learn.
        log_dir: TensorBoard / CSV logs in ``log_dir/<agent>`` (none when None).
        progress: show a progress bar.

    Returns:
        The trained models by agent.
    """
    from envs.market import make_batched
    from training.trainer import algo_kwargs, model_policy_kwargs, torch_setup

    torch_setup(cfg.torch_threads)
    fixed = dict(fixed or {})
    n_envs, seed, timesteps, n_steps = cfg.n_envs, cfg.seed, cfg.timesteps, cfg.n_steps
    mechanism = cfg.mechanism
    market = make_batched(cfg.scenario, mechanism, n_envs, seeds=[seed + e for e in range(n_envs)], **cfg.overrides)
    agents = market.possible_agents
    learners = list(learners) if learners else [a for a in agents if a not in fixed]
    unknown = [a for a in [*learners, *fixed] if a not in agents]
    if unknown or set(learners) & set(fixed) or set(learners) | set(fixed) != set(agents):
        raise ConfigError(
            f"simultaneous: every provider needs exactly one source of actions; learners {learners}, "
            f"fixed {sorted(fixed)}, market {agents}"
        )
    index = {a: i for i, a in enumerate(agents)}
    obs_space, act_space = market.observation_space(agents[0]), market.action_space(agents[0])
    kwargs = {k: v for k, v in algo_kwargs(cfg).items() if k != "seed"}
    models: dict[str, PPO] = {}
    for k, a in enumerate(learners):
        model = PPO(
            "MlpPolicy",
            _Slots(n_envs, obs_space, act_space),
            policy_kwargs=model_policy_kwargs(cfg),
            device="cpu",
            seed=seed + 1000 * k,
            **kwargs,
        )
        if log_dir is not None:
            model.set_logger(configure(str(Path(log_dir) / a), ["tensorboard", "csv"]))
        else:
            model.set_logger(Logger(folder=None, output_formats=[]))
        model.num_timesteps = 0
        model._num_timesteps_at_start = 0
        model._total_timesteps = timesteps
        model.start_time = time.time_ns()
        model.ep_info_buffer = deque(maxlen=100)
        model.ep_success_buffer = deque(maxlen=100)
        models[a] = model
    rows = {a: index[a] for a in learners}
    low, high = act_space.low, act_space.high
    stats = EpisodeStats(agents, n_envs)
    joint = np.zeros((n_envs, len(agents), 3), dtype=np.float32)
    returns = np.zeros((n_envs, len(agents)))
    obs = market.reset().copy()
    starts = np.ones(n_envs, dtype=bool)
    rounds = -(-timesteps // n_envs)  # market rounds, so every learner gets >= timesteps transitions
    bar = tqdm(
        total=rounds * n_envs,
        desc=f"simultaneous ppo {mechanism}",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
    )
    done_rounds = 0
    episode_metrics: dict[str, float] = {}
    while done_rounds < rounds:
        for model in models.values():
            model.policy.set_training_mode(False)
            model.rollout_buffer.reset()
        for _ in range(n_steps):
            step_out: dict[str, tuple[np.ndarray, torch.Tensor, torch.Tensor]] = {}
            for a, model in models.items():
                with torch.no_grad():
                    actions, values, log_probs = model.policy(obs_as_tensor(obs[:, rows[a]], model.device))
                actions = actions.cpu().numpy()
                step_out[a] = (actions, values, log_probs)
                joint[:, rows[a]] = np.clip(actions, low, high)
            for a, policy in fixed.items():
                joint[:, index[a]] = policy.act(obs[:, index[a]])
            new_obs, rewards, done = market.step(joint)
            new_obs = new_obs.copy()
            stats.add(market.played())
            returns += rewards
            rewards = rewards.astype(np.float32)
            if done.all():
                summary = stats.summary(market.mechanism.diagnostics())
                episode_metrics = {k: float(v.mean()) for k, v in summary.items()}
                for a, model in models.items():  # the horizon truncates: bootstrap with the terminal value
                    with torch.no_grad():
                        terminal = model.policy.predict_values(obs_as_tensor(new_obs[:, rows[a]], model.device))
                    rewards[:, rows[a]] += model.gamma * terminal.cpu().numpy().reshape(-1)
                    assert model.ep_info_buffer is not None  # set up with the model above
                    model.ep_info_buffer.extend({"r": float(r), "l": stats.rounds} for r in returns[:, rows[a]])
                    model._episode_num += n_envs
                new_obs = market.reset().copy()
                stats.reset()
                returns[:] = 0.0
            for a, model in models.items():
                actions, values, log_probs = step_out[a]
                model.rollout_buffer.add(obs[:, rows[a]], actions, rewards[:, rows[a]], starts, values, log_probs)
                model.num_timesteps += n_envs
            obs, starts = new_obs, np.full(n_envs, bool(done.all()))
            done_rounds += 1
            bar.update(n_envs)
        for a, model in models.items():
            with torch.no_grad():
                values = model.policy.predict_values(obs_as_tensor(obs[:, rows[a]], model.device))
            model.rollout_buffer.compute_returns_and_advantage(last_values=values, dones=starts)
            model._update_current_progress_remaining(model.num_timesteps, rounds * n_envs)
            for key, value in episode_metrics.items():
                model.logger.record(key, value)
            model.train()
            model.dump_logs()
    bar.close()
    return models


def train_simultaneous(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run ``--mode simultaneous`` (see the module docstring) and write the run dir; returns a
    :class:`training.trainer.TrainResult`."""
    from training.trainer import (
        TrainResult,
        _write_run_files,
        check_run_dir,
        gain_against_honest,
        make_market,
        opponent_policies,
        policy_kwargs,
        resolve_learners,
    )

    if resume:
        raise ConfigError("--resume: simultaneous runs are not checkpointed; start a new run dir")
    run_dir = Path(cfg.run_dir)
    check_run_dir(run_dir, resume)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)  # noqa: NPY002 - SB3 draws from numpy's global generator: seed it
    torch.manual_seed(cfg.seed)
    market = make_market(cfg)
    agents = market.possible_agents
    learners = resolve_learners(cfg, agents)
    fixed_agents = [a for a in agents if a not in learners]
    if cfg.algo == "qlearning" and fixed_agents:
        raise ConfigError("simultaneous qlearning: every provider learns (learners: all)")
    fixed = opponent_policies(cfg.opponents, market, fixed_agents, cfg.seed) if fixed_agents else {}
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_run_files(cfg, run_dir, market, learners)
    extra: dict[str, Any] = {
        "overrides": cfg.overrides,
        "learners": learners,
        "opponents": cfg.opponents,
        "non_learners": fixed_agents,
        "timesteps": cfg.timesteps,
        "seed": cfg.seed,
    }
    if cfg.algo == "qlearning":
        qcfg = QConfig(**cfg.algo_kwargs)  # checked with the config (training.config.check_algo_kwargs)
        result = run_sessions(
            cfg.scenario,
            cfg.mechanism,
            cfg.n_envs,
            cfg.timesteps,
            qcfg,
            seed=cfg.seed,
            window=min(1000, cfg.timesteps),
            overrides=cfg.overrides,
            progress=progress,
        )
        files = save_tables(run_dir, result)
        policies: dict[str, Policy] = {
            a: QLearningPolicy(market.layout, config=qcfg, learning=False, tables=result.tables[:, i])
            for i, a in enumerate(agents)
        }
        extra.update(
            {"policy_kwargs": {}, "qlearning": config_record(qcfg), "converged_share": float(result.converged.mean())}
        )
    elif cfg.algo == "ppo":
        models = simultaneous_ppo(cfg, learners, fixed, run_dir / "tb", progress)
        (run_dir / "policies").mkdir(exist_ok=True)
        files = {}
        for a, model in models.items():
            model.save(run_dir / "policies" / f"{a}.zip")
            files[a] = f"{a}.zip"
        policies = {a: LearnedPolicy(m, name=f"learned:{run_dir.name}") for a, m in models.items()}
        extra["policy_kwargs"] = policy_kwargs(cfg)
    else:
        raise ConfigError(f"simultaneous mode supports algo 'ppo' or 'qlearning', got {cfg.algo!r}")
    manifest = make_manifest(market, cfg.mechanism, cfg.algo, "simultaneous", files, extra)
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    everyone = {**fixed, **policies}
    summary: dict[str, dict[str, float]] = {}
    for a in learners:
        others = {o: p for o, p in everyone.items() if o != a}
        summary[a] = gain_against_honest(cfg, a, everyone[a], others, cfg.eval_episodes)
    summary["joint"] = joint_against_truthful(cfg, everyone)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return TrainResult(run_dir, summary, {a: policies[a] for a in learners})


def joint_against_truthful(cfg: TrainConfig, policies: dict[str, Policy]) -> dict[str, float]:
    """Joint profit per round of the learned profile and of all-truthful play, paired on the evaluation seeds."""
    from training.trainer import make_market

    seeds = [cfg.seed + 10_000 + e for e in range(cfg.eval_episodes)]
    market = make_market(cfg, len(seeds))
    agents = market.possible_agents
    learned = play(market, policies, seeds)
    truthful = play(market, {a: make_strategy("truthful", market.layout) for a in agents}, seeds)
    joint = np.array([sum(r[f"{a}/profit"] for a in agents) for r in learned])
    base = np.array([sum(r[f"{a}/profit"] for a in agents) for r in truthful])
    gain, half = mean_ci(joint - base)
    return {
        "profit": float(joint.mean()),
        "honest_profit": float(base.mean()),
        "manipulation_gain": gain,
        "gain_ci_low": gain - half,
        "gain_ci_high": gain + half,
    }


def collusion_delta(
    scenario: str,
    mechanism: str,
    overrides: dict[str, Any] | None = None,
    timesteps: int = 100_000,
    seeds: list[int] | None = None,
    seed: int = 0,
    progress: bool = False,
    **train_fields: Any,
) -> PolicyCollusion:
    """The collusion column of the robustness report: train simultaneous PPO learners (every provider, lockstep; PPO
    settings from :class:`training.config.TrainConfig`, overridden by ``train_fields``) in ``scenario`` under
    ``mechanism`` and measure their collusion index on ``seeds`` (:func:`evaluation.collusion.policy_collusion`:
    learned joint profit against all-truthful play and the best constant-margin cartel, paired on the same seeds).
    Returns a :class:`evaluation.collusion.PolicyCollusion`."""
    from evaluation.collusion import policy_collusion

    cfg = TrainConfig(
        scenario=scenario,
        mechanism=mechanism,
        overrides=dict(overrides or {}),
        mode="simultaneous",
        learners=["all"],
        timesteps=timesteps,
        seed=seed,
        **train_fields,
    )
    models = simultaneous_ppo(cfg, progress=progress)
    policies = {a: LearnedPolicy(m, name="simultaneous") for a, m in models.items()}
    return policy_collusion(scenario, mechanism, policies, seeds or [1000 + 1000 * k for k in range(10)], overrides)


def _collusion_job(job: tuple[str, str, dict[str, Any], int, list[int] | None, int]) -> PolicyCollusion:
    scenario, mechanism, overrides, timesteps, seeds, seed = job
    return collusion_delta(scenario, mechanism, overrides, timesteps, seeds, seed)


def collusion_column(
    scenario: str,
    mechanisms: list[str],
    overrides: dict[str, Any] | None = None,
    timesteps: int = 100_000,
    seeds: list[int] | None = None,
    seed: int = 0,
    backend: Backend | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """:func:`collusion_delta` for every mechanism, one job each on ``backend`` (:mod:`evaluation.parallel`; default:
    in this process): mechanism -> :class:`evaluation.collusion.PolicyCollusion`."""
    jobs = [(scenario, m, dict(overrides or {}), timesteps, seeds, seed) for m in mechanisms]
    return dict(
        zip(mechanisms, (backend or ProcessBackend()).map(_collusion_job, jobs, desc="collusion", progress=progress))
    )
