"""A PPO best response to given opponents (any :class:`agents.policy.Policy`, e.g. a meta-game mixture): the oracle of
PSRO (:mod:`evaluation.metagame`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from stable_baselines3.common.logger import Logger, configure

from agents.learned import LearnedPolicy
from agents.policy import Policy
from envs.market import make_batched
from training.config import TrainConfig
from training.trainer import new_model, torch_setup
from training.vec_env import MarketVecEnv

if TYPE_CHECKING:  # evaluation.metagame is imported by who uses the oracle, not here
    from evaluation.metagame import BestResponse, MetaSpec


def ppo_best_response(
    scenario: str,
    mechanism: str,
    learner: str,
    opponents: dict[str, Policy],
    overrides: dict[str, Any] | None = None,
    timesteps: int = 300_000,
    seed: int = 0,
    log_dir: str | Path | None = None,
    save_to: str | Path | None = None,
    **train_fields: Any,
) -> LearnedPolicy:
    """Train ``learner`` with PPO against fixed ``opponents`` (every other provider) and return its policy.

    The market, network and PPO settings are those of :class:`training.config.TrainConfig` (``train_fields``
    override them: ``n_envs``, ``learning_rate``, ``gamma``, ...); market e's first episode is seeded ``seed + e``.
    ``log_dir``: TensorBoard/CSV logs; ``save_to``: the model's SB3 zip.
    """
    cfg = TrainConfig(
        scenario=scenario,
        mechanism=mechanism,
        overrides=dict(overrides or {}),
        learners=[learner],
        timesteps=timesteps,
        seed=seed,
        **train_fields,
    )
    torch_setup(cfg.torch_threads)
    market = make_batched(scenario, mechanism, cfg.n_envs, **cfg.overrides)
    env = MarketVecEnv(market, [learner], opponents, seed=seed)
    model = new_model(cfg, env)
    model.set_logger(
        configure(str(log_dir), ["tensorboard", "csv"])
        if log_dir is not None
        else Logger(folder=None, output_formats=[])
    )
    model.learn(timesteps, progress_bar=False)
    if save_to is not None:
        Path(save_to).parent.mkdir(parents=True, exist_ok=True)
        model.save(save_to)
    env.close()
    return LearnedPolicy(model, name=f"br:{learner}")


def ppo_oracle(timesteps: int = 300_000, log_root: str | Path | None = None, **train_fields: Any) -> BestResponse:
    """The PSRO oracle of :func:`evaluation.metagame.psro`: ``oracle(spec, learner, opponents, seed)`` trains a PPO
    best response in the spec's market (logs under ``log_root/<mechanism>/<learner>_<seed>`` when given)."""

    def oracle(spec: MetaSpec, learner: str, opponents: dict[str, Policy], seed: int) -> Policy:
        log_dir = None if log_root is None else Path(log_root) / spec.mechanism / f"{learner}_{seed}"
        return ppo_best_response(
            spec.scenario,
            spec.mechanism,
            learner,
            opponents,
            spec.overrides,
            timesteps,
            seed,
            log_dir=log_dir,
            **train_fields,
        )

    return oracle
