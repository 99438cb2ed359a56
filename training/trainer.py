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
import functools
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList

from agents.learned import ALGORITHMS, SHARED, LearnedPolicy, load_weights, make_manifest
from agents.policy import LEVERS, LeverMask, Policy
from agents.registry import make_strategy
from agents.scripted import DEVIATIONS, scripted_levers
from agents.spec import policies_from_spec
from envs.batched import BatchedMarket
from envs.config import ConfigError, Layer, dump_yaml, from_dict, load_yaml, to_dict
from envs.files import atomic_write
from envs.market import check_overrides, make_batched
from evaluation.rollout import play_profiles
from evaluation.statistics import mean_ci
from training.callbacks import Checkpointer, GainEvaluator, MarketLogger, measured_gains, run_logger
from training.checkpoint import checkpoints, restore_pending_log, resume_from_newest, save_checkpoint
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
    """Policies for ``agents`` from ``--opponents``: a strategy name or run dir for all, or ``agent=spec,...`` pairs
    (:func:`agents.spec.policies_from_spec`)."""
    return policies_from_spec(spec, market, agents, seed)


# ---------------------------------------------------------------------------------------------------- training


@dataclass
class Stage:
    """One learn() call: ``learners`` train for ``steps`` against ``fixed`` (resolved when the stage starts)."""

    name: str
    learners: list[str]
    steps: int  # the model's total step count when the stage ends


def stage_opponents(
    cfg: TrainConfig, learners: list[str], agents: list[str], configured: dict[str, Policy], current: dict[str, Policy]
) -> dict[str, Policy]:
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


def learned_policy(cfg: TrainConfig, model: BaseAlgorithm) -> Policy:
    """The model as a policy, restricted to the run's levers (the others play honest, as in training)."""
    policy = LearnedPolicy(model)
    return policy if set(cfg.levers) == set(LEVERS) else LeverMask(policy, tuple(cfg.levers))


def policy_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The network of the policies (recorded in the manifest, which is how they are rebuilt for loading)."""
    out: dict[str, Any] = {"net_arch": list(cfg.net_arch)}
    if cfg.algo == "ppo":
        out["log_std_init"] = cfg.log_std_init
    return out


def model_policy_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """:func:`policy_kwargs` and the optimizer's settings, for a model that trains: Adam's ``foreach`` kernels (on
    CPU torch defaults to a loop over the parameter tensors, a tenth of PPO's time here; the updates are bit for bit
    the same). Giving optimizer kwargs replaces SB3's own, so PPO's ``eps`` of 1e-5 is restated."""
    optimizer: dict[str, Any] = {"foreach": True, **({"eps": 1e-5} if cfg.algo == "ppo" else {})}
    return {**policy_kwargs(cfg), "optimizer_kwargs": optimizer}


def torch_setup(threads: int) -> None:
    """This process's torch for training: ``threads`` CPU threads (one is fastest for these small networks on two
    cores), and no argument checks in ``torch.distributions``: SB3 builds a Normal at every policy call and the check
    costs more than the network itself, while it can only catch non-finite actions, which the market refuses."""
    torch.set_num_threads(threads)
    torch.distributions.Distribution.set_default_validate_args(False)


def algo_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    common = {
        "learning_rate": cfg.learning_rate,
        "gamma": cfg.gamma,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "verbose": 0,
    }
    kwargs: dict[str, Any]
    if cfg.algo == "ppo":
        kwargs = {**common, "n_steps": cfg.n_steps, "n_epochs": cfg.n_epochs, "ent_coef": cfg.ent_coef}
    else:
        kwargs = {**common, "learning_starts": min(1_000, cfg.timesteps // 4), "ent_coef": "auto"}
    return {**kwargs, **cfg.algo_kwargs}


def new_model(cfg: TrainConfig, env: MarketVecEnv) -> BaseAlgorithm:
    return ALGORITHMS[cfg.algo](
        "MlpPolicy", env, policy_kwargs=model_policy_kwargs(cfg), device="cpu", **algo_kwargs(cfg)
    )


def resume_model(cfg: TrainConfig, env: MarketVecEnv, file: Path, steps: int) -> BaseAlgorithm:
    """A model that continues from ``file`` (weights and optimizer state, read without unpickling) at ``steps``."""
    model = load_weights(
        file, cfg.algo, env.observation_space, env.action_space, model_policy_kwargs(cfg), env=env, **algo_kwargs(cfg)
    )
    model.num_timesteps = steps
    return model


def selection_seeds(cfg: TrainConfig, episodes: int) -> list[int]:
    """The seeds of every gain measurement of a run (disjoint from the evaluation's, see ``selection_seed``)."""
    return [cfg.selection_seed + e for e in range(episodes)]


def _gains(
    cfg: TrainConfig, learner: str, policies: list[Policy], others: dict[str, Policy], episodes: int
) -> list[dict[str, float]]:
    """:func:`gain_against_honest` of each of ``policies``, all played at once with the honest baseline in one batched
    market (one market per policy and selection seed; common random numbers, so the gains are paired)."""
    seeds = selection_seeds(cfg, episodes)
    market = make_market(cfg, (len(policies) + 1) * episodes)
    honest = make_strategy("truthful", market.layout)
    rows, _ = play_profiles(market, [{**others, learner: p} for p in [honest, *policies]], seeds)
    key = f"{learner}/profit"
    baseline = [e[key] for e in rows[0]]
    out = []
    for played in rows[1:]:
        gain, half = mean_ci(np.array([e[key] for e in played]) - np.array(baseline))
        out.append(
            {
                "profit": float(np.mean([e[key] for e in played])),
                "honest_profit": float(np.mean(baseline)),
                "manipulation_gain": gain,
                "gain_ci_low": gain - half,
                "gain_ci_high": gain + half,
            }
        )
    return out


def gain_against_honest(
    cfg: TrainConfig, learner: str, policy: Policy, others: dict[str, Policy], episodes: int
) -> dict[str, float]:
    """Mean profit per round of ``learner`` playing ``policy`` and playing truthful, paired on the selection seeds
    (one market per episode and policy, all played at once)."""
    return _gains(cfg, learner, [policy], others, episodes)[0]


def best_scripted_gain(cfg: TrainConfig, learner: str, others: dict[str, Policy]) -> tuple[str, float]:
    """The scripted deviation of the learner's lever family with the largest gain on the selection seeds, and that
    gain (``("truthful", 0.0)`` when none gains); every deviation plays at once, against one honest baseline."""
    market = make_market(cfg)
    names = [name for name in DEVIATIONS if set(scripted_levers(name)) <= set(cfg.levers)]
    strategies = [make_strategy(name, market.layout) for name in names]
    best = ("truthful", 0.0)
    for name, result in zip(names, _gains(cfg, learner, strategies, others, cfg.eval_episodes)):
        if result["manipulation_gain"] > best[1]:
            best = (name, result["manipulation_gain"])
    return best


def scripted_target(cfg: TrainConfig, learner: str) -> tuple[str, float]:
    """:func:`best_scripted_gain` of a best-response learner against the configured opponents: the target of every
    seed of that learner (it depends on the selection seeds and the opponents, not on the learner's seed when the
    opponents are deterministic strategies, as the training grid's truthful ones are)."""
    market = make_market(cfg)
    configured = opponent_policies(cfg.opponents, market, market.possible_agents, cfg.seed)  # as train() makes them
    return best_scripted_gain(cfg, learner, stage_opponents(cfg, [learner], market.possible_agents, configured, {}))


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, dict[str, float]]
    policies: dict[str, Policy]


RUN_EXTRAS = ("resolved_scenario", "seeds", "learners_resolved")  # config.yaml's keys beside TrainConfig's fields
RESUMABLE_CHANGES = ("timesteps",)  # config.yaml fields a resumed run may change (the run then goes further)


def _write_run_files(cfg: TrainConfig, run_dir: Path, market: BatchedMarket, learners: list[str]) -> None:
    resolved = to_dict(cfg)
    resolved["resolved_scenario"] = to_dict(market.config)
    resolved["seeds"] = {
        "numpy_torch": cfg.seed,
        "markets": [cfg.seed + k for k in range(cfg.n_envs)],
        "selection": selection_seeds(cfg, cfg.eval_episodes),
    }
    resolved["learners_resolved"] = learners
    atomic_write(run_dir / "config.yaml", dump_yaml(resolved))


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse a run dir that is a file, or (for a new run) one that already holds a run, before anything is
    written."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run dir {run_dir} is a file, not a directory")
    if not resume and any((run_dir / name).exists() for name in ("config.yaml", "checkpoints", "manifest.json")):
        raise ConfigError(f"run dir {run_dir} already holds a run; pass --resume to continue it or choose another")


def read_run_config(run_dir: Path) -> TrainConfig:
    """The TrainConfig of a run dir (config.yaml), every key checked: an unknown key is an error, not dropped; the
    overrides are checked against the scenario and mechanism too (an error names config.yaml)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"--resume: {run_dir} has no config.yaml; nothing to resume")
    saved = load_yaml(path)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(saved) - fields - set(RUN_EXTRAS), key=str)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key(s) {unknown}; a run's config.yaml holds TrainConfig fields and {list(RUN_EXTRAS)}"
        )
    cfg = from_dict(TrainConfig, {k: v for k, v in saved.items() if k in fields}, str(path))
    check_overrides(cfg.scenario, cfg.mechanism, [Layer(cfg.overrides, f"{path}: field 'overrides'")])
    return cfg


def _check_unchanged(cfg: TrainConfig, started: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume a run whose config.yaml was edited since it started (but for :data:`RESUMABLE_CHANGES`)."""
    now = to_dict(cfg)
    if now["timesteps"] != started.get("timesteps", now["timesteps"]):
        if now["timesteps"] < started["timesteps"]:
            raise ConfigError(
                f"{run_dir / 'config.yaml'}: timesteps {started['timesteps']} -> {now['timesteps']}; "
                f"a resumed run can go further, not back: start a new run dir"
            )
        if cfg.mode == "independent" and cfg.rounds > 1:
            raise ConfigError(
                f"{run_dir / 'config.yaml'}: timesteps changed in independent mode with {cfg.rounds} "
                f"rounds; every round's length would change: start a new run dir"
            )
    changed = sorted(k for k in now if k not in RESUMABLE_CHANGES and k in started and now[k] != started[k])
    if changed:
        raise ConfigError(
            f"{run_dir / 'config.yaml'}: field(s) {changed} changed since the run started "
            f"({', '.join(f'{k}: {started[k]!r} -> {now[k]!r}' for k in changed)}); a resumed run "
            f"continues the same training (only {list(RESUMABLE_CHANGES)} may change): restore them or "
            f"start a new run dir"
        )


@dataclass
class RunState:
    """The fields of a run's ``checkpoints/state.json`` (what its finished stages left), checked on resume.

    Attributes:
        completed_stages: how many of ``stages`` are done.
        stages: [name, steps] of every stage of the run.
        model_steps: each model's step count.
        targets: each learner's target gain.
        config: the config the run started with (an edited config.yaml is refused).
    """

    completed_stages: int = 0
    stages: list[list[Any]] = dataclasses.field(default_factory=list)
    model_steps: dict[str, int] = dataclasses.field(default_factory=dict)
    targets: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


def read_state(path: Path) -> dict[str, Any]:
    """A run's ``checkpoints/state.json`` (empty before its first stage ends), every field checked against
    :class:`RunState`: a damaged or edited file is a ConfigError naming it and the field."""
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    from_dict(RunState, state, str(path))
    return state


def _stages_still_done(stages: list[Stage], state: dict[str, Any]) -> int:
    """How many of ``stages`` a resumed run may skip: those completed with the same length (a run resumed with more
    timesteps reopens its last stages and continues their models)."""
    recorded = state.get("stages", [])[: state.get("completed_stages", 0)]
    done = 0
    for stage, entry in zip(stages, recorded):
        if list(entry) != [stage.name, stage.steps]:
            break
        done += 1
    return done


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    scripted_targets: dict[str, tuple[str, float]] | None = None,
) -> TrainResult:
    """Run the training a config describes (or continue it with ``resume``) and write the run dir.

    ``scripted_targets``: for ``target: best_scripted`` in best-response mode, each learner's best scripted deviation
    and its gain when the caller has measured them already (:func:`scripted_target`; the training grid measures them
    once for all seeds of a learner); a learner without one is measured here.

    Everything the run writes is atomic (a crash leaves the old file or the new one); a resumed run continues from
    the newest checkpoint that loads and ends bitwise identical to an uninterrupted one (:mod:`training.checkpoint`).
    Simultaneous runs keep their own loop and are not checkpointed (``resume`` is refused for them).
    """
    if cfg.mode == "simultaneous":  # every learner at once: its own loop (training/simultaneous.py)
        from training.simultaneous import train_simultaneous

        return train_simultaneous(cfg, resume, progress)
    run_dir = Path(cfg.run_dir)
    check_run_dir(run_dir, resume)
    state_path = run_dir / "checkpoints" / "state.json"
    if resume:
        cfg = read_run_config(run_dir)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)  # noqa: NPY002 - SB3 draws from numpy's global generator: seed it
    torch.manual_seed(cfg.seed)
    torch_setup(cfg.torch_threads)

    market = make_market(cfg)
    agents = market.possible_agents
    learners = resolve_learners(cfg, agents)
    non_learners = [a for a in agents if a not in learners]
    base_opponents = opponent_policies(cfg.opponents, market, agents, cfg.seed) if cfg.mode != "shared" else {}
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        _write_run_files(cfg, run_dir, market, learners)
    state = read_state(state_path)
    if resume and "config" in state:
        _check_unchanged(cfg, state["config"], run_dir)
    stages = plan_stages(cfg, learners)
    done_stages = _stages_still_done(stages, state)
    model_steps: dict[str, int] = dict(state.get("model_steps", {}))

    current: dict[str, Policy] = dict(base_opponents)
    saved_policies: dict[str, str] = {}
    for a in learners:  # policies finished by earlier stages (resume, later rounds of independent mode)
        file = run_dir / "policies" / f"{SHARED if cfg.mode == 'shared' else a}.zip"
        if file.is_file() and done_stages:
            current[a] = learned_policy(
                cfg,
                load_weights(file, cfg.algo, market.observation_space(a), market.action_space(a), policy_kwargs(cfg)),
            )
            saved_policies[a] = file.name

    hparams = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in to_dict(cfg).items()}
    targets: dict[str, dict[str, Any]] = dict(state.get("targets", {}))
    checkpoint_dir = run_dir / "checkpoints"
    for index, stage in enumerate(stages):
        if index < done_stages:
            continue
        fixed = stage_opponents(cfg, stage.learners, agents, base_opponents, current)
        owner = SHARED if cfg.mode == "shared" else stage.learners[0]

        def build(
            stage: Stage = stage, fixed: dict[str, Policy] = fixed, index: int = index, owner: str = owner
        ) -> tuple[MarketVecEnv, BaseAlgorithm]:
            env = MarketVecEnv(
                make_market(cfg, cfg.n_envs), stage.learners, fixed, seed=cfg.seed + 97 * index, levers=cfg.levers
            )
            previous = run_dir / "policies" / f"{owner}.zip"
            if owner in model_steps and previous.is_file():  # independent mode: keep improving the learner's model
                return env, resume_model(cfg, env, previous, model_steps[owner])
            return env, new_model(cfg, env)

        env, model = build()
        resumed_at = resume_from_newest(checkpoint_dir, stage.name, model, env) if resume else None
        if resume and resumed_at is None and checkpoints(checkpoint_dir, stage.name):
            env, model = build()  # every checkpoint was damaged: start the stage afresh, from a clean model
        model.set_logger(run_logger(run_dir / "tb" / owner, resumed_at))
        restore_pending_log(model)

        def evaluate(
            m: BaseAlgorithm, _learner: str = stage.learners[0], _fixed: dict[str, Policy] = fixed
        ) -> dict[str, float]:
            # In shared mode the others play the same (current) policy; otherwise the stage's fixed strategies.
            policy = learned_policy(cfg, m)
            others = dict(_fixed) if cfg.mode != "shared" else {a: policy for a in agents if a != _learner}
            return gain_against_honest(cfg, _learner, policy, others, cfg.eval_episodes)

        stop_at = None
        if cfg.target is not None and cfg.mode == "best-response":
            if cfg.target != "best_scripted":
                name, stop_at = "given", float(cfg.target)
            elif scripted_targets and stage.learners[0] in scripted_targets:
                name, stop_at = scripted_targets[stage.learners[0]]
            else:
                name, stop_at = best_scripted_gain(cfg, stage.learners[0], fixed)
            targets[stage.learners[0]] = {"target": name, "target_gain": stop_at}
            if name == "truthful":  # no scripted deviation gains: nothing to match (a fresh policy, whose mean action
                stop_at = math.inf  # is about 0, honest play, would match 0 at once); it trains its whole budget
        remaining = stage.steps - model.num_timesteps
        callbacks = CallbackList(
            [
                MarketLogger(stage.steps, hparams, stage.name, progress),
                GainEvaluator(cfg.eval_every, evaluate, stop_at, measured_gains(run_dir / "tb" / owner)),
                Checkpointer(
                    cfg.checkpoint_every,
                    checkpoint_dir,
                    stage.name,
                    functools.partial(save_checkpoint, model, env, checkpoint_dir, stage.name),
                ),
            ]
        )
        try:
            if remaining > 0:
                model.learn(remaining, callback=callbacks, reset_num_timesteps=False, progress_bar=False)
        except KeyboardInterrupt:  # pragma: no cover - Ctrl-C at the terminal; test_faults kills runs with SIGKILL
            newest = checkpoints(checkpoint_dir, stage.name)
            print(
                f"\ninterrupted; --resume --run-dir {run_dir} continues from "
                f"{f'the checkpoint at {newest[0][0]} steps' if newest else 'the start of this stage'}"
            )
            raise
        atomic_write(run_dir / "policies" / f"{owner}.zip", model.save)
        for a in stage.learners:
            current[a] = learned_policy(cfg, model)
            saved_policies[a] = f"{owner}.zip"
        model_steps[owner] = model.num_timesteps
        atomic_write(
            state_path,
            json.dumps(
                {
                    "completed_stages": index + 1,
                    "stages": [[s.name, s.steps] for s in stages],
                    "model_steps": model_steps,
                    "targets": targets,
                    "config": to_dict(cfg),
                }
            ),
        )
        manifest = make_manifest(
            market,
            cfg.mechanism,
            cfg.algo,
            cfg.mode,
            dict(saved_policies),
            {
                "policy_kwargs": policy_kwargs(cfg),
                "overrides": cfg.overrides,
                "learners": learners,
                "opponents": cfg.opponents,
                "non_learners": non_learners,
                "timesteps": cfg.timesteps,
                "seed": cfg.seed,
                "levers": cfg.levers,
            },
        )
        atomic_write(run_dir / "manifest.json", json.dumps(manifest, indent=2))
        env.close()

    summary = {}
    for a in learners:
        others = stage_opponents(cfg, [a], agents, base_opponents, current)
        summary[a] = {
            **gain_against_honest(cfg, a, current[a], others, cfg.eval_episodes),
            "steps": model_steps.get(SHARED if cfg.mode == "shared" else a, 0),
            **targets.get(a, {}),
        }
        if "target_gain" in summary[a]:
            summary[a]["matched"] = summary[a]["manipulation_gain"] >= summary[a]["target_gain"]
    atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2))
    return TrainResult(run_dir, summary, {a: current[a] for a in learners})


def format_summary(summary: dict[str, dict[str, float]]) -> str:
    """The end-of-run table: each learner's profit per round against its honest baseline."""
    lines = [f"{'learner':<14}{'profit':>10}{'honest':>10}{'gain':>10}  95% CI"]
    for a, s in summary.items():
        lines.append(
            f"{a:<14}{s['profit']:>10.4f}{s['honest_profit']:>10.4f}{s['manipulation_gain']:>10.4f}"
            f"  [{s['gain_ci_low']:.4f}, {s['gain_ci_high']:.4f}]"
        )
    return "\n".join(lines)
