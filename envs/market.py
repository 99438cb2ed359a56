"""LLM provider market: providers bid for user queries, may secretly substitute models and pad tokens.

| Import             | ``from envs import parallel_env, env``                                   |
|--------------------|--------------------------------------------------------------------------|
| Parallel API       | yes (``env()`` gives the AEC version)                                    |
| Agents             | ``provider_0 .. provider_{N-1}``                                         |
| Action shape       | ``Box(-1, 1, (3,), float32)``: bid, substitution, inflation              |
| Observation shape  | ``Box(-inf, inf, (D,), float32)``, layout in :class:`ObservationLayout`  |
| State shape        | ``Box((S,), float32)`` (public only), layout in :class:`StateLayout`     |
| Reward             | the provider's profit this round, eta * payment - cost (money units)     |
| Name               | ``llm_market_v1``                                                        |

Each round one user query q arrives (drawn uniformly, with replacement, from the scenario's response cache). Every
provider i privately knows its cost per token c_{i,m} of each model it can run; it asks a price (bid), chooses the
model it will actually serve (it is billed as its *declared* model d_i) and how much to inflate the output tokens it
reports. The platform's mechanism sees bids, declared models and the query's context only; it picks a winner w and
the payment P_w. The outcome comes from the cache: score S = score(q, s_w), true tokens tau = tokens(q, s_w) and
reported output tokens tau' = min(ceil(tau_out (1 + iota_w)), L). With ``billing: per_token`` the ask is a price per
output token and the user pays it times tau'; the list-price mechanism (second_best) bills p_in(d_w) tau_in +
p_out(d_w) tau'. User value V = value_scale * S; user utility V - P_w; winner's profit eta P_w - c_{w,s_w}
(tau_in + tau_out); welfare V - cost. Losers earn 0. (MECHANISMS.md §1.)

Action (per provider, all in [-1, 1]; the all-zero action is honest play, exactly; decoding in
:mod:`envs.layout`):
    a[0] bid:           ask = honest_ask + a[0] * ask_scale for a[0] >= 0, honest_ask * 10 ** (3 a[0]) below;
                        honest_ask = expected cost of serving q with the declared model (true input tokens, group-mean
                        output tokens) at the provider's current cost, per query or per expected output token.
    a[1] substitution:  a[1] <= 0 serves the declared model; a[1] > 0 serves the k-th cheaper menu model,
                        k = ceil(a[1] * n_substitutes) (closest in cost first; a[1] = 1 is the cheapest).
    a[2] inflation:     iota = max(0, a[2]) * max_inflation.
Out-of-range values are clipped (``action_mode="clip"``, the default, as RL libraries clip anyway) or rejected
(``"strict"``); NaN, inf, a wrong shape or an unknown agent name always raise ValueError naming the agent.

Observation (per provider; see ``env.layout`` for the slices): the query's public context features; own expected
input and output tokens per model / L; the provider's own expected cost of serving q with each model / value_scale
(0 off its menu); menu mask; declared model one-hot; the repeated game's history (last clearing price / value_scale,
own last bid / value_scale, whether it won the last round, own win rate so far); the mechanism's public state; time
left (fraction of the horizon); agent id one-hot.

Infos per provider (numbers only, the same keys at reset, zeros there): won, bid, honest_bid, payment, cost, profit,
declared and served model (indices into ``env.market.models``), substituted, inflation, true and reported output
tokens; ``market``: the round's query, winner, score, value, payment, cost, user utility, welfare, the best
achievable welfare, unserved, and ``mechanism``: the mechanism's diagnostics. With ``info_format="flat"`` the nested
dicts are flattened into the provider's dict, their keys joined by ``_`` along the path
(``infos[a]["market"]["winner"]`` becomes ``infos[a]["market_winner"]``, ``infos[a]["market"]["mechanism"][k]`` becomes
``infos[a]["market_mechanism_" + k]``): every info value is then a number, as TorchRL's ``PettingZooWrapper`` needs (it
cannot hold a nested dict).

State (``env.state()``, ``env.state_space``, for centralized critics): the public global state before the coming round,
laid out by :class:`envs.layout.StateLayout`: the query's public features, the mechanism's public state, the last
clearing price, the last winner (one-hot), every provider's win rate and the time left; never a private cost, menu,
served model or (sealed) bid.

Episode length: the scenario's ``horizon``; ``max_cycles`` (PettingZoo's keyword) is an alias of it. A keyword that is
neither a scenario field nor a parameter of the mechanism is a ConfigError that lists both.

``env.last_round`` holds the round just played (:class:`envs.batched.Round`, arrays over one market); the market
itself is :class:`envs.batched.BatchedMarket` with E = 1, the same core the trainers and the evaluation step with many
markets at once.

Version history: v1 - the batched core: per-market streams of queries, costs and mechanism noise (new random draws
for a seed), random tie-breaking, numeric infos, ``billing``; later, without a change to observations, actions,
rewards or the default infos: ``state()`` / ``state_space``, the ``max_cycles`` alias and ``info_format="flat"``;
v0 - initial release.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar, Literal

import gymnasium
import numpy as np
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

import mechanisms
from envs.batched import ENV_NAME, BatchedMarket, ObsArray, Round, SingleRound
from envs.config import ConfigError, Layer, build_layered
from envs.layout import ACTION_DIM, BID, INFLATION, SUBSTITUTION, ObservationLayout
from envs.scenarios import ALIASES, ScenarioConfig, load_scenario, scenario_fields, split_overrides
from mechanisms.base import NO_WINNER, Mechanism

PROVIDER_INFO = (
    "won",
    "bid",
    "honest_bid",
    "payment",
    "cost",
    "profit",
    "declared",
    "served",
    "substituted",
    "inflation",
    "true_tokens",
    "reported_tokens",
)
MARKET_INFO = (
    "t",
    "query",
    "winner",
    "score",
    "value",
    "payment",
    "cost",
    "user_utility",
    "welfare",
    "best_welfare",
    "unserved",
)
InfoFormat = Literal["nested", "flat"]
INFO_FORMATS = ("nested", "flat")


def flatten_info(info: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested info dict as one flat dict, keys joined by ``_`` along the path (``{"market": {"winner": 1}}`` ->
    ``{"market_winner": 1}``)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        if isinstance(value, dict):
            out.update(flatten_info(value, f"{prefix}{key}_"))
        else:
            out[prefix + key] = value
    return out


def make_mechanism(mechanism: str | Mechanism, params: dict[str, Any]) -> Mechanism:
    """A mechanism by registry name with ``params``, or the given instance (which then takes no parameters)."""
    if isinstance(mechanism, Mechanism):
        if params:
            raise ConfigError(f"parameters {sorted(params)} given with a mechanism instance; set them on it")
        return mechanism
    return mechanisms.make(mechanism, **params)


def check_keywords(mechanism: str | Mechanism, params: dict[str, Any]) -> None:
    """Raise the ConfigError naming the keywords of ``params`` (what is left of the overrides once the scenario fields
    are taken) that the mechanism does not accept either, listing the scenario fields and the mechanism's parameters.
    An unknown mechanism name is left to :func:`mechanisms.make`, which lists the registered ones."""
    if isinstance(mechanism, Mechanism):
        whose, accepted = f"the given {type(mechanism).__name__} instance (set its parameters on it)", []
    elif mechanism in mechanisms.REGISTRY:
        whose, accepted = f"mechanism {mechanism!r}", mechanisms.parameters(mechanism)
    else:
        return
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        aliases = ", ".join(f"{a} (alias of {f})" for a, f in ALIASES.items())
        raise ConfigError(
            f"unknown parameter(s) {unknown}: neither a scenario field nor a parameter of {whose}. "
            f"Scenario fields: {scenario_fields()}, and {aliases}; parameters of {whose}: {accepted}"
        )


def check_overrides(
    scenario: str | ScenarioConfig | dict[str, Any], mechanism: str | Mechanism, layers: Sequence[Layer]
) -> tuple[ScenarioConfig, Mechanism]:
    """The scenario config and the mechanism of a market with the overrides of ``layers`` applied (a config file's,
    then ``--set``'s: :func:`envs.config.override_layers`), without loading any data, so the CLIs check overrides
    before anything runs. Scenario fields go to the scenario (``max_cycles`` is an alias of ``horizon``), the rest to
    the mechanism; a keyword neither accepts, a value of the wrong type or out of range, NaN or an infinity is a
    ConfigError naming the override at fault (``--set reserve=nan: ...``)."""
    split = [(layer, split_overrides(layer.data)) for layer in layers]
    config = load_scenario(scenario, [replace(layer, data=scen) for layer, (scen, _) in split])

    def build(params: dict[str, Any]) -> Mechanism:
        check_keywords(mechanism, params)
        return make_mechanism(mechanism, params)

    return config, build_layered(build, [replace(layer, data=mech) for layer, (_, mech) in split])


def make_batched(
    scenario: str | ScenarioConfig | dict[str, Any],
    mechanism: str | Mechanism,
    n_markets: int,
    seeds: Sequence[int | None] | None = None,
    **overrides: Any,
) -> BatchedMarket:
    """E markets of a scenario under a mechanism; ``overrides`` are scenario fields (``max_cycles`` is an alias of
    ``horizon``) or mechanism parameters, and any other keyword is a ConfigError naming both lists."""
    config, mech = check_overrides(scenario, mechanism, [Layer.pairs(overrides, "override")])
    return BatchedMarket(config, mech, n_markets, seeds)


class raw_env(ParallelEnv):  # type: ignore[misc]  # PettingZoo ships no type information: its classes are Any
    """The market as a PettingZoo ParallelEnv; build it with :func:`parallel_env`."""

    metadata: ClassVar[dict[str, Any]] = {
        "name": ENV_NAME,
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        scenario: str | ScenarioConfig | dict[str, Any] = "capitals",
        mechanism: str | Mechanism = "first_price",
        seed: int | None = None,
        render_mode: str | None = None,
        mechanism_params: dict[str, Any] | None = None,
        info_format: InfoFormat = "nested",
        **overrides: Any,
    ):
        """
        Args:
            scenario: preset name (``capitals``, ``llama``, ``uniform``, ...), YAML path, mapping or config.
            mechanism: registry name or a Mechanism instance.
            seed: seed of the first ``reset`` when it is called without one.
            render_mode: ``"ansi"`` (render returns the round table) or ``"human"`` (prints it).
            mechanism_params: keyword arguments of the mechanism.
            info_format: ``"nested"`` (infos carry ``market`` and ``market["mechanism"]`` dicts) or ``"flat"`` (the
                same numbers under flattened keys such as ``market_winner``; see the module docstring).
            **overrides: scenario fields (``n_providers=3``; ``max_cycles`` is an alias of ``horizon``); other keys
                go to the mechanism, and a key neither accepts is a ConfigError.
        """
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if info_format not in INFO_FORMATS:
            raise ValueError(f"info_format must be one of {list(INFO_FORMATS)}, got {info_format!r}")
        self.info_format = info_format
        self.core = make_batched(scenario, mechanism, 1, [seed], **(mechanism_params or {}), **overrides)
        self.config, self.market, self.mechanism = self.core.config, self.core.market, self.core.mechanism
        self.info, self.layout = self.core.info, self.core.layout
        self.render_mode = render_mode
        self.possible_agents = [f"provider_{i}" for i in range(self.config.n)]
        self.agents: list[str] = []
        self._agent_index = {a: i for i, a in enumerate(self.possible_agents)}
        self._observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.layout.size,), np.float32)
        self._action_space = gymnasium.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self.state_layout = self.core.state_layout
        self.state_space = gymnasium.spaces.Box(*self.state_layout.bounds(), (self.state_layout.size,), np.float32)
        self._declared = self.market.declared.tolist()
        self._single: SingleRound | None = None
        self._round: Round | None = None

    # -------------------------------------------------------------------------------------------------- spaces

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        self._index(agent)
        return self._observation_space

    def action_space(self, agent: str) -> gymnasium.spaces.Box:
        self._index(agent)
        return self._action_space

    def state(self) -> ObsArray:
        """The public global state before the coming round ([S] float32, in ``state_space``; laid out by
        ``self.state_layout``): the query's public features, the mechanism's public state, the last price and winner,
        every provider's win rate, the time left. No private cost, menu, served model or bid."""
        state: ObsArray = self.core.state()[0]
        return state

    def _index(self, agent: str) -> int:
        try:
            return self._agent_index[agent]
        except (KeyError, TypeError):
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}") from None

    # ---------------------------------------------------------------------------------------------- dynamics

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, ObsArray], dict[str, dict[str, Any]]]:
        obs = self.core.reset(None if seed is None else [seed])
        self.agents = list(self.possible_agents)
        self._single = self._round = None
        zeros = dict.fromkeys(PROVIDER_INFO, 0)
        market = {
            **dict.fromkeys(MARKET_INFO, 0),
            "winner": NO_WINNER,
            "mechanism": dict.fromkeys(self.mechanism.diagnostics_one(), 0.0),
        }
        infos = {
            a: {**zeros, "declared": self._declared[i], "served": self._declared[i], "market": market}
            for i, a in enumerate(self.agents)
        }
        if self.info_format == "flat":
            infos = {a: flatten_info(info) for a, info in infos.items()}
        return dict(zip(self.agents, obs[0].copy())), infos

    def _decode(self, actions: dict[str, Any]) -> list[list[float]]:
        """The joint action (N lists of 3 floats) of a dict of per-agent actions, or the ValueError that names what
        is wrong (not a mapping, not numbers, not finite, wrong shape, unknown or missing agents; out of range in
        ``strict`` mode)."""
        if not isinstance(actions, dict) and not isinstance(actions, Mapping):  # dict first: the ABC's check is slower
            raise ValueError(
                f"actions must be a dict of agent -> action (3 numbers) for {self.agents}, got {type(actions).__name__}"
            )
        if len(actions) != len(self.agents):
            self._explain_bad_actions(actions)
        joint = []
        isfinite = math.isfinite
        try:
            for a in self.agents:
                act = actions[a]
                # ValueError for a wrong length, TypeError for non-numbers (isfinite takes numbers only)
                bid, substitution, inflation = act.tolist() if isinstance(act, np.ndarray) else act
                # A finite sum has finite terms (NaN and inf propagate); a sum that overflows checks them one by one.
                if not isfinite(bid + substitution + inflation) and not (
                    isfinite(bid) and isfinite(substitution) and isfinite(inflation)
                ):
                    raise ValueError
                joint.append([float(bid), float(substitution), float(inflation)])
        except (KeyError, ValueError, TypeError):
            self._explain_bad_actions(actions)
        if self.config.action_mode == "strict":
            for a, values in zip(self.agents, joint):
                if max(map(abs, values)) > 1.0:
                    raise ValueError(f"{a}: action {values} outside [-1, 1] (action_mode='strict'; use 'clip' to clip)")
        return joint

    def _explain_bad_actions(self, actions: dict[str, Any]) -> None:
        """Raise the ValueError that names what is wrong with a joint action (the slow path of ``_decode``)."""
        unknown = [a for a in actions if a not in self._agent_index]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown}; agents are {self.agents}")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"missing action(s) for {missing}; every live agent acts each round")
        for a in self.agents:
            try:
                numbers = np.asarray(actions[a]).dtype.kind in "biuf"
                shape = np.asarray(actions[a], dtype=np.float64).shape
            except (ValueError, TypeError):
                numbers = False
            if not numbers:
                raise ValueError(f"{a}: action must be 3 numbers (bid, substitution, inflation), got {actions[a]!r}")
            if shape != (ACTION_DIM,):
                raise ValueError(
                    f"{a}: action must have shape ({ACTION_DIM},) (bid, substitution, inflation), got shape {shape}"
                )
            if not np.isfinite(np.asarray(actions[a], dtype=np.float64)).all():
                raise ValueError(f"{a}: action contains NaN or inf: {np.asarray(actions[a]).tolist()}")
        raise ValueError(f"malformed joint action {actions!r}")

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[dict[str, ObsArray], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]]:
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset()")
        obs, rewards, done = self.core.step_one(self._decode(actions))
        self._single = r = self.core.last_single
        self._round = None
        agents = self.agents
        infos = self._infos(r)
        reward_dict = dict(zip(agents, rewards))
        terminations = dict.fromkeys(agents, False)
        truncations = dict.fromkeys(agents, done)
        # Callers may keep what they were given: the core's observations are fresh but for the last round's.
        obs_dict = dict(zip(agents, obs.copy() if done else obs))
        if done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs_dict, reward_dict, terminations, truncations, infos

    @property
    def last_round(self) -> Round | None:
        """The round just played, as a :class:`envs.batched.Round` of one market (None before the first)."""
        if self._round is None and self._single is not None:
            self._round = self._single.batched()
        return self._round

    def _infos(self, r: SingleRound) -> dict[str, dict[str, Any]]:
        """Per-provider infos of the round ``r`` (see the module docstring)."""
        winner, value, payment, cost = r.winner, r.value, r.payment, r.cost
        market = {
            "t": r.t,
            "query": r.query,
            "winner": winner,
            "score": r.score,
            "value": value,
            "payment": payment,
            "cost": cost,
            "user_utility": value - payment,
            "welfare": value - cost,
            "best_welfare": r.best_welfare,
            "unserved": winner < 0,
            "mechanism": self.mechanism.diagnostics_one(),
        }
        bids, honest, profits, declared = r.bids, r.honest_bids, r.rewards, self._declared
        served, substituted, inflation = r.served, r.substituted, r.inflation
        infos = {}
        for i, a in enumerate(self.possible_agents):  # two literals, the winner's and the others': no conditionals
            if i == winner:
                infos[a] = {
                    "won": True, "bid": bids[i], "honest_bid": honest[i], "payment": payment, "cost": cost,
                    "profit": profits[i], "declared": declared[i], "served": served[i], "substituted": substituted[i],
                    "inflation": inflation[i], "true_tokens": r.true_tokens, "reported_tokens": r.reported_tokens,
                    "market": market,
                }  # fmt: skip
            else:
                infos[a] = {
                    "won": False, "bid": bids[i], "honest_bid": honest[i], "payment": 0.0, "cost": 0.0,
                    "profit": profits[i], "declared": declared[i], "served": served[i], "substituted": substituted[i],
                    "inflation": inflation[i], "true_tokens": 0, "reported_tokens": 0,
                    "market": market,
                }  # fmt: skip
        if self.info_format == "flat":
            flat_market = flatten_info(market, "market_")
            for a in self.possible_agents:
                infos[a].pop("market")
                infos[a].update(flat_market)
        return infos

    # --------------------------------------------------------------------------------------------- rendering

    def render(self) -> str | None:
        """The last round as a table: one line per provider, then the market line."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'")
            return None
        r, mk = self.last_round, self.market
        if r is None:
            text = f"{self.metadata['name']}: {self.config.name} / {self.mechanism.name}, no round played yet"
        else:
            lines = [
                (
                    f"round {r.t}/{self.config.horizon}  query {mk.group_names[mk.group[r.query[0]]]}"
                    f"#{r.query[0]}  mechanism {self.mechanism.name}"
                ),
                f"{'provider':<12}{'bid':>10}{'declared':>24}{'served':>24}{'inflation':>10}  won",
            ]
            for i, a in enumerate(self.possible_agents):
                won = "*" if i == r.winner[0] else ""
                lines.append(
                    f"{a:<12}{r.bids[0, i]:>10.4f}{mk.models[mk.declared[i]]:>24}"
                    f"{mk.models[r.served[0, i]]:>24}{r.inflation[0, i]:>10.2f}  {won}"
                )
            lines.append(
                f"value {r.value[0]:.4f}  payment {r.payment[0]:.4f}  user utility {r.user_utility[0]:.4f}"
                f"  welfare {r.welfare[0]:.4f}{'  (unserved)' if r.unserved[0] else ''}"
            )
            text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


def parallel_env(
    scenario: str | ScenarioConfig | dict[str, Any] = "capitals",
    mechanism: str | Mechanism = "first_price",
    seed: int | None = None,
    render_mode: str | None = None,
    **overrides: Any,
) -> raw_env:
    """The market as a PettingZoo ParallelEnv (see the module docstring for spaces, rewards, infos and state);
    ``overrides`` are scenario fields (``max_cycles`` is an alias of ``horizon``), mechanism parameters,
    ``mechanism_params`` or ``info_format``."""
    return raw_env(scenario=scenario, mechanism=mechanism, seed=seed, render_mode=render_mode, **overrides)


def env(
    scenario: str | ScenarioConfig | dict[str, Any] = "capitals",
    mechanism: str | Mechanism = "first_price",
    seed: int | None = None,
    render_mode: str | None = None,
    **overrides: Any,
) -> AECEnv:
    """The market as a PettingZoo AEC env (providers act in turn; the round resolves when all have acted); the
    keywords are those of :func:`parallel_env`."""
    aec = parallel_to_aec(parallel_env(scenario, mechanism, seed, render_mode, **overrides))
    return wrappers.OrderEnforcingWrapper(aec)


__all__ = [
    "raw_env",
    "parallel_env",
    "env",
    "make_batched",
    "make_mechanism",
    "check_keywords",
    "check_overrides",
    "flatten_info",
    "ObservationLayout",
    "ACTION_DIM",
    "BID",
    "SUBSTITUTION",
    "INFLATION",
    "PROVIDER_INFO",
    "MARKET_INFO",
    "INFO_FORMATS",
]
