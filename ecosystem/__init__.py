"""The market as a citizen of the RL ecosystem, beyond its PettingZoo API (:mod:`envs`):

- :class:`ecosystem.single_agent.SingleAgentMarket`: one learner against fixed opponents as a single-agent Gymnasium
  environment, registered as ``LLMMarket-v1`` when this package is imported
  (``gymnasium.make("ecosystem:LLMMarket-v1", ...)`` imports it), for Stable-Baselines3, CleanRL-style scripts and
  any single-agent RL code.

TorchRL needs no adapter: ``PettingZooWrapper(env=envs.parallel_env(..., info_format="flat"), return_state=True)``
(the flat infos are numbers only; see :mod:`envs.market`).
"""

from ecosystem.single_agent import ENV_ID, SingleAgentMarket, gymnasium_id, register

register()

__all__ = ["SingleAgentMarket", "ENV_ID", "gymnasium_id", "register"]
