"""The LLM provider market (PettingZoo) and its data.

>>> from envs import parallel_env
>>> market = parallel_env(scenario="uniform", mechanism="second_price", seed=0, n_providers=3)
>>> obs, infos = market.reset()
>>> sorted(obs)
['provider_0', 'provider_1', 'provider_2']
"""

from envs.batched import BatchedMarket, Round
from envs.config import ConfigError
from envs.data import CacheError, load_cache, load_llama_cascades
from envs.layout import ACTION_DIM, ObservationLayout
from envs.market import env, make_batched, parallel_env, raw_env
from envs.scenarios import ScenarioConfig, build_market, load_scenario, scenario_names

__all__ = [
    "parallel_env",
    "env",
    "raw_env",
    "make_batched",
    "BatchedMarket",
    "Round",
    "ObservationLayout",
    "ACTION_DIM",
    "ScenarioConfig",
    "load_scenario",
    "build_market",
    "scenario_names",
    "load_cache",
    "load_llama_cascades",
    "CacheError",
    "ConfigError",
]
