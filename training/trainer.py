"""Training provider agents with Stable-Baselines3 (PPO or SAC, torch on CPU), logged to TensorBoard.

Modes:
- ``best-response``: each learner trains alone while every other provider plays a fixed strategy (a scripted one by
  name, or a saved policy). The learner's gain over honest play measures how exploitable the mechanism is.
- ``independent``: every learner learns, in R alternating rounds; in each, each learner trains K steps against the
  others' latest frozen policies (iterated best response).
- ``shared``: one policy for all providers (parameter sharing; the agent id is in the observation), trained on every
  agent's experience.
- ``simultaneous``: every learner learns at the same time in the same markets (PPO in lockstep, or tabular
  Q-learning); see :mod:`training.simultaneous`.

A run directory holds ``config.yaml`` (the resolved config and seeds), ``manifest.json``, ``policies/``,
``checkpoints/`` (every ``checkpoint_every`` steps and on Ctrl-C; ``resume`` continues to the same total step count),
``tb/<learner>/`` (TensorBoard) and ``summary.json`` (each learner's profit against its honest baseline).
Timesteps count SB3 transitions: one per learner-round (in ``shared`` mode, one per provider-round).
"""

from __future__ import annotations

import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import configure

from agents.learned import ALGORITHMS, SHARED, LearnedPolicy, load_policies, load_weights, make_manifest
from agents.policy import Policy
from agents.registry import make_strategy
from envs.config import ConfigError, from_dict, to_dict
from envs.batched import BatchedMarket
from envs.market import make_batched
from evaluation.rollout import play
from evaluation.statistics import mean_ci
from training.callbacks import Checkpointer, GainEvaluator, MarketLogger, latest_checkpoint, save_checkpoint
from training.config import TrainConfig
from training.vec_env import MarketVecEnv


# ------------------------------------------------------------------------------------------------ the run's market


def make_market(cfg: TrainConfig, n_markets: int = 1) -> BatchedMarket:
    """``n_markets`` markets of the run's scenario and mechanism."""
    return make_batched(cfg.scenario, cfg.mechanism, n_markets, **cfg.overrides)


def resolve_learners(cfg: TrainConfig, agents: list[str]) -> list[str]:
    learners = list(agents) if cfg.learners in (["all"], []) or cfg.mode == "shared" else list(cfg.learners)
    unknown = [a for a in learners if a not in agents]
    if unknown:
        raise ConfigError(f"train config: field 'learners': unknown agent(s) {unknown}; the market has {agents}")
    return learners


def opponent_policies(spec: str, market: BatchedMarket, agents: list[str], seed: int) -> dict[str, Policy]:
    """Policies for ``agents`` from a spec: a strategy name or run dir for all, or ``agent=spec,...`` pairs."""
    pairs = dict(p.split("=", 1) for p in spec.split(",")) if "=" in spec else {a: spec for a in agents}
    out: dict[str, Policy] = {}
    for k, agent in enumerate(agents):
        if agent not in pairs:
            raise ConfigError(f"opponents {spec!r}: no strategy given for {agent}")
        source = pairs[agent].strip()
        if Path(source).is_dir():
            out.update(load_policies(source, market, [agent]))
        else:
            out[agent] = make_strategy(source, market.layout, seed=seed + k)
    return out


# ---------------------------------------------------------------------------------------------------- training


@dataclass
class Stage:
    """One learn() call: ``learners`` train for ``steps`` against ``fixed`` (resolved when the stage starts)."""

    name: str
    learners: list[str]
    steps: int  # the model's total step count when the stage ends


def stage_opponents(cfg: TrainConfig, learners: list[str], agents: list[str], configured: dict[str, Policy],
                    current: dict[str, Policy]) -> dict[str, Policy]:
    """What everyone but ``learners`` plays while they train and in their honest baseline.

    ``best-response``: the configured opponents, always - a later learner never faces an earlier learner's learned
    policy (each learner answers "can I gain by lying against these opponents?"). ``independent``: the latest policy
    of every other provider (iterated best response). ``shared``: nobody is fixed."""
    others = [a for a in agents if a not in learners]
    source = configured if cfg.mode == "best-response" else current
    return {a: source[a] for a in others}


def plan_stages(cfg: TrainConfig, learners: list[str]) -> list[Stage]:
    if cfg.mode == "shared":
        return [Stage(SHARED, learners, cfg.timesteps)]
    if cfg.mode == "best-response":
        return [Stage(a, [a], cfg.timesteps) for a in learners]
    per_round = max(1, cfg.timesteps // cfg.rounds)
    return [Stage(f"round{r}_{a}", [a], per_round * (r + 1)) for r in range(cfg.rounds) for a in learners]


def policy_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The network of the policies (recorded in the manifest, which is how they are rebuilt for loading)."""
    out: dict[str, Any] = {"net_arch": list(cfg.net_arch)}
    if cfg.algo == "ppo":
        out["log_std_init"] = cfg.log_std_init
    return out


def algo_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    common = {"learning_rate": cfg.learning_rate, "gamma": cfg.gamma, "batch_size": cfg.batch_size,
              "seed": cfg.seed, "verbose": 0}
    if cfg.algo == "ppo":
        kwargs = {**common, "n_steps": cfg.n_steps, "n_epochs": cfg.n_epochs, "ent_coef": cfg.ent_coef}
    else:
        kwargs = {**common, "learning_starts": min(1_000, cfg.timesteps // 4), "ent_coef": "auto"}
    return {**kwargs, **cfg.algo_kwargs}


def new_model(cfg: TrainConfig, env: MarketVecEnv) -> BaseAlgorithm:
    return ALGORITHMS[cfg.algo]("MlpPolicy", env, policy_kwargs=policy_kwargs(cfg), device="cpu",
                                **algo_kwargs(cfg))


def resume_model(cfg: TrainConfig, env: MarketVecEnv, file: Path, steps: int) -> BaseAlgorithm:
    """A model that continues from ``file`` (weights and optimizer state, read without unpickling) at ``steps``."""
    model = load_weights(file, cfg.algo, env.observation_space, env.action_space, policy_kwargs(cfg), env=env,
                         **algo_kwargs(cfg))
    model.num_timesteps = steps
    return model


def gain_against_honest(cfg: TrainConfig, learner: str, policy: Policy, others: dict[str, Policy],
                        episodes: int) -> dict[str, float]:
    """Mean profit per round of ``learner`` playing ``policy`` and playing truthful, paired on the same seeds (one
    market per episode, all played at once)."""
    seeds = [cfg.seed + 10_000 + e for e in range(episodes)]
    market = make_market(cfg, episodes)
    honest = make_strategy("truthful", market.layout)
    learned = play(market, {**others, learner: policy}, seeds)
    baseline = play(market, {**others, learner: honest}, seeds)
    key = f"{learner}/profit"
    gains = np.array([a[key] - b[key] for a, b in zip(learned, baseline)])
    gain, half = mean_ci(gains)
    return {"profit": float(np.mean([e[key] for e in learned])),
            "honest_profit": float(np.mean([e[key] for e in baseline])),
            "manipulation_gain": gain, "gain_ci_low": gain - half, "gain_ci_high": gain + half}


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, dict[str, float]]
    policies: dict[str, Policy]


def _write_run_files(cfg: TrainConfig, run_dir: Path, market: BatchedMarket, learners: list[str]) -> None:
    resolved = to_dict(cfg)
    resolved["resolved_scenario"] = to_dict(market.config)
    resolved["seeds"] = {"numpy_torch": cfg.seed, "markets": [cfg.seed + k for k in range(cfg.n_envs)],
                         "evaluation": [cfg.seed + 10_000 + e for e in range(cfg.eval_episodes)]}
    resolved["learners_resolved"] = learners
    (run_dir / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False), encoding="utf-8")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> TrainResult:
    """Run the training a config describes (or continue it with ``resume``) and write the run dir."""
    if cfg.mode == "simultaneous":  # every learner at once: its own loop (training/simultaneous.py)
        from training.simultaneous import train_simultaneous

        return train_simultaneous(cfg, resume, progress)
    run_dir = Path(cfg.run_dir)
    state_path = run_dir / "checkpoints" / "state.json"
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"--resume: {run_dir} has no config.yaml; nothing to resume")
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        saved_cfg = {k: v for k, v in saved.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
        cfg = from_dict(TrainConfig, saved_cfg, str(run_dir / "config.yaml"))
    elif (run_dir / "manifest.json").exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(f"run dir {run_dir} already holds a run; pass --resume to continue it or choose another")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)

    market = make_market(cfg)
    agents = market.possible_agents
    learners = resolve_learners(cfg, agents)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_run_files(cfg, run_dir, market, learners)
    state = json.loads(state_path.read_text()) if state_path.is_file() else {}
    done_stages = state.get("completed_stages", 0)
    model_steps: dict[str, int] = dict(state.get("model_steps", {}))

    non_learners = [a for a in agents if a not in learners]
    base_opponents = opponent_policies(cfg.opponents, market, agents, cfg.seed) if cfg.mode != "shared" else {}
    current: dict[str, Policy] = dict(base_opponents)
    saved_policies: dict[str, str] = {}
    for a in learners:  # policies finished by earlier stages (resume, later rounds of independent mode)
        file = run_dir / "policies" / f"{SHARED if cfg.mode == 'shared' else a}.zip"
        if file.is_file():
            current[a] = LearnedPolicy(load_weights(file, cfg.algo, market.observation_space(a),
                                                    market.action_space(a), policy_kwargs(cfg)))
            saved_policies[a] = file.name

    hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in to_dict(cfg).items()}
    stages = plan_stages(cfg, learners)
    for index, stage in enumerate(stages):
        if index < done_stages:
            continue
        fixed = stage_opponents(cfg, stage.learners, agents, base_opponents, current)
        env = MarketVecEnv(make_market(cfg, cfg.n_envs), stage.learners, fixed, seed=cfg.seed + 97 * index)
        owner = SHARED if cfg.mode == "shared" else stage.learners[0]
        checkpoint = latest_checkpoint(run_dir / "checkpoints", stage.name)
        previous = run_dir / "policies" / f"{owner}.zip"
        if checkpoint is not None:
            model = resume_model(cfg, env, *checkpoint)
        elif previous.is_file():  # independent mode: keep improving the learner's own model
            model = resume_model(cfg, env, previous, model_steps[owner])
        else:
            model = new_model(cfg, env)
        model.set_logger(configure(str(run_dir / "tb" / owner), ["tensorboard", "csv"]))

        def evaluate(m: BaseAlgorithm, _learner=stage.learners[0], _fixed=fixed) -> dict[str, float]:
            # In shared mode the others play the same (current) policy; otherwise the stage's fixed strategies.
            others = dict(_fixed) if cfg.mode != "shared" else {a: LearnedPolicy(m) for a in agents if a != _learner}
            return gain_against_honest(cfg, _learner, LearnedPolicy(m), others, cfg.eval_episodes)

        remaining = stage.steps - model.num_timesteps
        callbacks = CallbackList([
            MarketLogger(stage.steps, hparams, stage.name, progress),
            GainEvaluator(cfg.eval_every, evaluate),
            Checkpointer(cfg.checkpoint_every, run_dir / "checkpoints", stage.name),
        ])
        try:
            if remaining > 0:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=False, progress_bar=False)
        except KeyboardInterrupt:
            path = save_checkpoint(model, run_dir / "checkpoints", stage.name)
            print(f"\ninterrupted: checkpoint {path}; continue with --resume --run-dir {run_dir}")
            raise
        (run_dir / "policies").mkdir(exist_ok=True)
        model.save(run_dir / "policies" / f"{owner}.zip")
        for a in stage.learners:
            current[a] = LearnedPolicy(model)
            saved_policies[a] = f"{owner}.zip"
        state_path.parent.mkdir(parents=True, exist_ok=True)
        model_steps[owner] = model.num_timesteps
        state_path.write_text(json.dumps({"completed_stages": index + 1, "stages": [s.name for s in stages],
                                          "model_steps": model_steps}))
        manifest = make_manifest(market, cfg.mechanism, cfg.algo, cfg.mode, dict(saved_policies),
                                 {"policy_kwargs": policy_kwargs(cfg), "overrides": cfg.overrides,
                                  "learners": learners, "opponents": cfg.opponents,
                                  "non_learners": non_learners, "timesteps": cfg.timesteps, "seed": cfg.seed})
        (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        env.close()

    summary = {}
    for a in learners:
        others = stage_opponents(cfg, [a], agents, base_opponents, current)
        summary[a] = gain_against_honest(cfg, a, current[a], others, cfg.eval_episodes)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return TrainResult(run_dir, summary, {a: current[a] for a in learners})


def format_summary(summary: dict[str, dict[str, float]]) -> str:
    """The end-of-run table: each learner's profit per round against its honest baseline."""
    lines = [f"{'learner':<14}{'profit':>10}{'honest':>10}{'gain':>10}  95% CI"]
    for a, s in summary.items():
        lines.append(f"{a:<14}{s['profit']:>10.4f}{s['honest_profit']:>10.4f}{s['manipulation_gain']:>10.4f}"
                     f"  [{s['gain_ci_low']:.4f}, {s['gain_ci_high']:.4f}]")
    return "\n".join(lines)
