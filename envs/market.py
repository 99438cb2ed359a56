"""LLM provider market: providers bid for user queries, may secretly substitute models and pad tokens.

| Import             | ``from envs import parallel_env, env``                                   |
|--------------------|--------------------------------------------------------------------------|
| Parallel API       | yes (``env()`` gives the AEC version)                                    |
| Agents             | ``provider_0 .. provider_{N-1}``                                         |
| Action shape       | ``Box(-1, 1, (3,), float32)``: bid, substitution, inflation              |
| Observation shape  | ``Box(-inf, inf, (D,), float32)``, layout in :class:`ObservationLayout`  |
| Reward             | the provider's profit this round, eta * payment - cost (money units)     |
| Name               | ``llm_market_v0``                                                        |

Each round one user query q arrives (drawn uniformly, with replacement, from the scenario's response cache). Every
provider i privately knows its cost per token c_{i,m} of each model it can run; it asks a price (bid), chooses the
model it will actually serve (it is billed as its *declared* model d_i) and how much to inflate the output tokens it
reports. The platform's mechanism sees bids, declared models and the query's context only; it picks a winner w and
the payment P_w. The outcome comes from the cache: score S = score(q, s_w), true tokens tau = tokens(q, s_w) and
reported output tokens tau' = min(ceil(tau_out (1 + iota_w)), L). Under per-token billing P_w = p_in(d_w) tau_in +
p_out(d_w) tau'_out. User value V = value_scale * S; user utility V - P_w; winner's profit eta P_w - c_{w,s_w}
(tau_in + tau_out); welfare V - cost. Losers earn 0. (MECHANISMS.md §1.)

Action (per provider, all in [-1, 1]; the all-zero action is honest play, exactly):
    a[0] bid:           b = max(0, honest_bid + a[0] * bid_scale), honest_bid = expected cost of serving q with the
                        declared model (true input tokens, group-mean output tokens) at the provider's current cost.
    a[1] substitution:  a[1] <= 0 serves the declared model; a[1] > 0 serves the k-th cheaper menu model,
                        k = ceil(a[1] * n_substitutes) (closest in cost first; a[1] = 1 is the cheapest).
    a[2] inflation:     iota = max(0, a[2]) * max_inflation.
Out-of-range values are clipped (``action_mode="clip"``, the default, as RL libraries clip anyway) or rejected
(``"strict"``); NaN, inf, a wrong shape or an unknown agent name always raise ValueError naming the agent.

Observation (per provider; see ``env.layout`` for the slices): the query's public context features; the provider's
own expected cost of serving q with each model / value_scale (0 off its menu); own expected input and output tokens
per model / L; menu mask; declared model one-hot; last clearing price / value_scale; own win rate so far; the
mechanism's public state; time left (fraction of the horizon); agent id one-hot.

Infos per provider: won, bid, payment, cost, profit, declared and served model, substituted, inflation, true and
reported output tokens; ``market``: the round's query, winner, value, user utility, welfare, payment, the best
achievable welfare and the mechanism's diagnostics.

``env.last_round`` holds the round just played as arrays over providers (bids, honest bids, rewards, served models,
inflation) plus the market fields, valid until the next step; ``env.step_arrays(actions[N, 3])`` plays a round from a
joint action array without building the per-agent dicts (what the trainers' vectorized env uses).

Version history: v0 - initial release.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils import parallel_to_aec, wrappers

import mechanisms
from envs.config import ConfigError
from envs.scenarios import Market, ScenarioConfig, build_market, load_scenario, split_overrides
from mechanisms.base import NO_WINNER, MarketInfo, Mechanism

ACTION_DIM = 3
BID, SUBSTITUTION, INFLATION = range(ACTION_DIM)
MARKET_FIELDS = ("t", "query", "winner", "score", "value", "payment", "cost", "user_utility", "welfare",
                 "best_welfare", "unserved", "mechanism")
REWARD, BIDS, HONEST = range(3)  # rows of ``last_round["per_provider"]``


@dataclass(frozen=True)
class ObservationLayout:
    """Named slices of the observation vector, so policies read it by meaning, not by index."""

    context: slice
    expected_input_tokens: slice
    expected_output_tokens: slice
    expected_cost: slice
    menu: slice
    declared: slice
    last_price: int
    win_rate: int
    mechanism: slice
    time_left: int
    agent_id: slice
    size: int
    n_models: int
    value_scale: float
    bid_scale: float
    max_inflation: float
    max_output_tokens: int

    @staticmethod
    def build(context_dim: int, n_models: int, mechanism_dim: int, n_agents: int, value_scale: float,
              bid_scale: float, max_inflation: float, max_output_tokens: int) -> "ObservationLayout":
        # Per-query public features first, as one contiguous block the env copies in a single assignment.
        sizes = [("context", context_dim), ("expected_input_tokens", n_models), ("expected_output_tokens", n_models),
                 ("expected_cost", n_models), ("menu", n_models), ("declared", n_models),
                 ("last_price", 1), ("win_rate", 1), ("mechanism", mechanism_dim), ("time_left", 1),
                 ("agent_id", n_agents)]
        out: dict[str, Any] = {}
        start = 0
        for name, n in sizes:
            out[name] = start if name in ("last_price", "win_rate", "time_left") else slice(start, start + n)
            start += n
        return ObservationLayout(**out, size=start, n_models=n_models, value_scale=value_scale,
                                 bid_scale=bid_scale, max_inflation=max_inflation,
                                 max_output_tokens=max_output_tokens)

    def honest_bid(self, obs: np.ndarray) -> np.ndarray:
        """Expected cost of the declared model (money), read from observations [..., D]."""
        # The declared slot is one-hot, so a dot product picks the declared model's cost.
        cost = (obs[..., self.expected_cost] * obs[..., self.declared]).sum(-1, dtype=np.float64)
        return cost * self.value_scale

    def bid_action(self, obs: np.ndarray, bid: np.ndarray) -> np.ndarray:
        """The a[0] that asks ``bid`` (money) given observations; the inverse of the env's bid decoding."""
        return (np.asarray(bid, dtype=np.float64) - self.honest_bid(obs)) / self.bid_scale


class raw_env(ParallelEnv):
    """The market as a PettingZoo ParallelEnv; build it with :func:`parallel_env`."""

    metadata = {"name": "llm_market_v0", "render_modes": ["ansi", "human"], "is_parallelizable": True}

    def __init__(self, scenario: str | ScenarioConfig | dict = "capitals", mechanism: str | Mechanism = "first_price",
                 seed: int | None = None, render_mode: str | None = None,
                 mechanism_params: dict[str, Any] | None = None, **overrides: Any):
        """
        Args:
            scenario: preset name (``capitals``, ``llama``, ``uniform``, ...), YAML path, mapping or config.
            mechanism: registry name or a Mechanism instance.
            seed: seed of the first ``reset`` when it is called without one.
            render_mode: ``"ansi"`` (render returns the round table) or ``"human"`` (prints it).
            mechanism_params: keyword arguments of the mechanism.
            **overrides: scenario fields (``n_providers=3``); other keys go to the mechanism.
        """
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        scen_over, mech_over = split_overrides(overrides)
        self.config = load_scenario(scenario, scen_over)
        params = {**(mechanism_params or {}), **mech_over}
        if isinstance(mechanism, Mechanism):
            if params:
                raise ConfigError(f"parameters {sorted(params)} given with a mechanism instance; set them on it")
            self.mechanism = mechanism
        else:
            self.mechanism = mechanisms.make(mechanism, **params)
        self.market: Market = build_market(self.config)
        self.render_mode = render_mode
        self._default_seed = seed

        mk, cfg = self.market, self.config
        N, M = cfg.n, mk.n_models
        self.possible_agents = [f"provider_{i}" for i in range(N)]
        self.agents: list[str] = []
        self._agent_index = {a: i for i, a in enumerate(self.possible_agents)}
        self.info = MarketInfo(
            n_providers=N, context_dim=mk.context.shape[1], n_groups=len(mk.group_names),
            value_scale=cfg.value_scale, bid_scale=mk.bid_scale, prior_quality=mk.prior_quality,
            cost_range=self._cost_range(), price_in=mk.price_in, price_out=mk.price_out,
            max_output_tokens=mk.max_output_tokens, horizon=cfg.horizon,
        )
        self.mechanism.reset(self.info, np.random.default_rng(0))  # sizes the public state
        self.layout = ObservationLayout.build(
            mk.context.shape[1], M, self.mechanism.public_state_dim, N, cfg.value_scale, mk.bid_scale,
            cfg.max_inflation, mk.max_output_tokens)
        self._observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.layout.size,), np.float32)
        self._action_space = gymnasium.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

        # Preallocated per-round state: the hot path writes into these.
        self._obs = np.zeros((N, self.layout.size), dtype=np.float32)
        self._actions = np.zeros((N, ACTION_DIM))
        self._expected_tokens = (mk.input_tokens + mk.expected_output_tokens).astype(np.float64)  # [Q, M]
        self._rows = np.arange(N)
        self._declared_flat = self._rows * M + mk.declared  # flat index of each declared model in an [N, M] array
        self._per_provider = np.zeros((3, N))
        # Per query, what each provider's declared model yields: value and true tokens (best-welfare benchmark).
        self._declared_value = cfg.value_scale * mk.score[:, mk.declared]  # [Q, N]
        self._declared_tokens = (mk.input_tokens + mk.output_tokens)[:, mk.declared].astype(np.float64)  # [Q, N]
        self._honest_served = mk.declared.copy()
        self._declared_names = [mk.models[d] for d in mk.declared]
        self._no_inflation = np.zeros(N)
        L = mk.max_output_tokens
        self._obs[:, self.layout.menu] = mk.menu
        self._obs[:, self.layout.declared] = np.eye(M)[mk.declared]
        self._obs[:, self.layout.agent_id] = np.eye(N)
        # Context and expected tokens per query do not depend on the round: one table, one copy per step.
        self._query_block = np.concatenate(
            [mk.context, mk.input_tokens / L, mk.expected_output_tokens / L], axis=1).astype(np.float32)
        self._query_slice = slice(0, self._query_block.shape[1])
        self._inv_value_scale = 1.0 / cfg.value_scale
        self._rng: np.random.Generator | None = None

    # -------------------------------------------------------------------------------------------------- spaces

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        self._index(agent)
        return self._observation_space

    def action_space(self, agent: str) -> gymnasium.spaces.Box:
        self._index(agent)
        return self._action_space

    def _index(self, agent: str) -> int:
        try:
            return self._agent_index[agent]
        except (KeyError, TypeError):
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}") from None

    # ---------------------------------------------------------------------------------------------- dynamics

    def _cost_range(self) -> np.ndarray:
        """[N, 2] the public range of each provider's per-query cost at mean token counts, over every model on its
        menu (a provider that may serve a cheaper model may have that model's cost) and every type."""
        mk, cfg = self.market, self.config
        mean_tokens = (mk.input_tokens + mk.output_tokens).mean(axis=0)  # [M]
        per_query = np.where(mk.menu, mk.base_cost * mean_tokens, np.nan)  # [N, M]
        return np.stack([np.nanmin(per_query, 1) * cfg.cost_low, np.nanmax(per_query, 1) * cfg.cost_high], axis=1)

    def _draw_block(self) -> None:
        """Draw the next block of queries (and per-query types) and lay out their costs as arrays, so a round only
        takes views: realised cost per token [k, N, M], expected cost of serving each query [k, N, M] and the
        declared models' costs [k, N]."""
        cfg, mk = self.config, self.market
        k = min(cfg.seed_queries_per_draw, cfg.horizon)
        self._qbuf = self._rng.integers(0, mk.n_queries, k)
        if cfg.cost_resample == "query":
            types = self._rng.uniform(cfg.cost_low, cfg.cost_high, (k, cfg.n))
        else:
            types = np.broadcast_to(self._episode_types, (k, cfg.n))
        self._cost_block = mk.base_cost[None] * types[:, :, None]
        self._exp_cost_block = self._cost_block * self._expected_tokens[self._qbuf][:, None, :]
        self._declared_cost_block = self._cost_block[:, self._rows, mk.declared]
        self._exp_cost_obs_block = (self._exp_cost_block * self._inv_value_scale).astype(np.float32)
        self._qpos = 0

    def _next_query(self) -> None:
        if self._qpos == self._qbuf.shape[0]:
            self._draw_block()
        pos = self._qpos
        self.q = int(self._qbuf[pos])
        self._cost = self._cost_block[pos]
        self._exp_cost = self._exp_cost_block[pos]
        self._declared_cost = self._declared_cost_block[pos]
        self._qpos += 1

    def _fill_observation(self) -> None:
        """Write every provider's observation of the coming query into the reused buffer ``self._obs``."""
        mk, lay, o = self.market, self.layout, self._obs
        q = self.q
        o[:, self._query_slice] = self._query_block[q]
        o[:, lay.expected_cost] = self._exp_cost_obs_block[self._qpos - 1]
        o[:, lay.last_price] = self.last_price * self._inv_value_scale
        o[:, lay.win_rate] = self.wins / max(1, self.t)
        o[:, lay.mechanism] = self.mechanism.public_state(mk.context[q], int(mk.group[q]))
        o[:, lay.time_left] = 1.0 - self.t / self.config.horizon

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is None and self._rng is None:
            seed = self._default_seed
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self.mechanism.reset(self.info, self._rng.spawn(1)[0])
        self.t = 0
        self.wins = np.zeros(self.config.n)
        self.last_price = 0.0
        self.last_round: dict[str, Any] | None = None
        self._qbuf = np.empty(0, dtype=np.int64)
        self._qpos = 0
        if self.config.cost_resample == "episode":
            self._episode_types = self._rng.uniform(self.config.cost_low, self.config.cost_high, self.config.n)
        self._next_query()
        self._fill_observation()
        return dict(zip(self.agents, self._obs.copy())), {a: {} for a in self.agents}

    def _decode(self, actions: dict[str, Any]) -> np.ndarray:
        """Validate the joint action and write it into ``self._actions`` (clipped per ``action_mode``)."""
        try:
            joint = np.array([actions[a] for a in self.agents], dtype=np.float64)
        except (KeyError, ValueError, TypeError):
            joint = None
        if joint is None or joint.shape != self._actions.shape or len(actions) != len(self.agents):
            self._explain_bad_actions(actions)
        self._actions[:] = joint
        return self._check_range(self._actions)

    def _check_range(self, acts: np.ndarray) -> np.ndarray:
        """Reject NaN and inf, and out-of-range values in strict mode; clip in place otherwise."""
        if not np.abs(acts).max() <= 1.0:  # also true for NaN: one pass instead of per-element checks
            if not np.isfinite(acts).all():
                bad = self.possible_agents[int(np.flatnonzero(~np.isfinite(acts).all(1))[0])]
                raise ValueError(f"{bad}: action contains NaN or inf: {acts[self._agent_index[bad]].tolist()}")
            if self.config.action_mode == "strict":
                bad = self.possible_agents[int(np.flatnonzero(np.abs(acts).max(1) > 1.0)[0])]
                raise ValueError(f"{bad}: action {acts[self._agent_index[bad]].tolist()} outside [-1, 1] "
                                 f"(action_mode='strict'; use 'clip' to clip)")
            np.clip(acts, -1.0, 1.0, out=acts)
        return acts

    def _agent_infos(self, r: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Per-provider infos of the round ``r`` (see the module docstring)."""
        names, winner = self.market.models, r["winner"]
        market = {k: r[k] for k in MARKET_FIELDS}
        bid_l, honest_l, reward_l = r["bids"].tolist(), r["honest_bid"].tolist(), r["rewards"].tolist()
        served_l, subst_l, infl_l = r["served"].tolist(), r["substituted"].tolist(), r["inflation"].tolist()
        infos = {}
        for i, a in enumerate(self.possible_agents):
            won = i == winner
            infos[a] = {
                "won": won, "bid": bid_l[i], "honest_bid": honest_l[i],
                "payment": r["payment"] if won else 0.0, "cost": r["cost"] if won else 0.0, "profit": reward_l[i],
                "declared": self._declared_names[i], "served": names[served_l[i]],
                "substituted": subst_l[i], "inflation": infl_l[i],
                "true_tokens": r["true_tokens"] if won else 0, "reported_tokens": r["reported_tokens"] if won else 0,
                "market": market,
            }
        return infos

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
                shape = np.asarray(actions[a], dtype=np.float64).shape
            except (ValueError, TypeError):
                raise ValueError(f"{a}: action must be 3 numbers (bid, substitution, inflation), "
                                 f"got {actions[a]!r}") from None
            if shape != (ACTION_DIM,):
                raise ValueError(f"{a}: action must have shape ({ACTION_DIM},) (bid, substitution, inflation), "
                                 f"got shape {shape}")
        raise ValueError(f"malformed joint action {actions!r}")

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("step() called on a finished episode; call reset()")
        agents = self.agents
        done = self._play_round(self._decode(actions))
        r = self.last_round
        infos = self._agent_infos(r)
        reward_dict = dict(zip(agents, r["rewards"].tolist()))
        terminations = {a: False for a in agents}
        truncations = {a: done for a in agents}
        obs = dict(zip(agents, self._obs.copy()))  # one copy: callers may keep what they were given
        if done:
            self.agents = []
        if self.render_mode == "human":
            self.render()
        return obs, reward_dict, terminations, truncations, infos

    def step_arrays(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """The round of :meth:`step` without the per-agent dicts, for vectorized trainers.

        Args:
            actions: [N, 3] joint action in agent order (validated and clipped as in :meth:`step`).

        Returns:
            ``(observations [N, D], rewards [N], done)``: views of the env's own buffers, valid until the next step
            (copy them to keep them). When ``done`` the observations are the final ones; call :meth:`reset`.
        """
        if not self.agents:
            raise RuntimeError("step_arrays() called on a finished episode; call reset()")
        acts = np.asarray(actions, dtype=np.float64)
        if acts.shape != self._actions.shape:
            raise ValueError(f"joint action must have shape {self._actions.shape} (agents x (bid, substitution, "
                             f"inflation)), got {acts.shape}")
        self._actions[:] = acts
        done = self._play_round(self._check_range(self._actions))
        if done:
            self.agents = []
        return self._obs, self.last_round["rewards"], done

    def _play_round(self, acts: np.ndarray) -> bool:
        """Resolve one round from a validated [N, 3] joint action, record it in ``last_round`` and, unless the
        episode is over, draw the next query and fill the observation buffer. Returns whether the episode ended."""
        mk, cfg, mech = self.market, self.config, self.mechanism
        q, rows = self.q, self._rows
        group = int(mk.group[q])
        context = mk.context[q]

        # Per-provider results of the round live in one reused [3, N] array (rewards, bids, honest bids), which
        # EpisodeStats adds up in one operation.
        per = self._per_provider
        rewards, bids, honest_bid = per[REWARD], per[BIDS], per[HONEST]
        rewards.fill(0.0)
        np.take(self._exp_cost.ravel(), self._declared_flat, out=honest_bid)
        np.multiply(acts[:, BID], mk.bid_scale, out=bids)
        bids += honest_bid
        np.maximum(bids, 0.0, out=bids)
        manipulates = acts[:, SUBSTITUTION:].max() > 0.0  # honest play skips the decoding below
        if manipulates and acts[:, SUBSTITUTION].max() > 0.0:
            k = np.ceil(acts[:, SUBSTITUTION] * mk.n_substitutes).astype(np.int64)
            substitute = (k > 0) & (mk.n_substitutes > 0)
            served = np.where(substitute, mk.substitutes[rows, np.maximum(k, 1) - 1], mk.declared)
        else:
            served = self._honest_served
        substitute = served != mk.declared
        if manipulates and acts[:, INFLATION].max() > 0.0:
            inflation = np.maximum(acts[:, INFLATION], 0.0) * cfg.max_inflation
        else:
            inflation = self._no_inflation

        winner, payment = mech.allocate(bids, context, group)
        # Best achievable welfare this round: the best provider serving its declared model at its true cost.
        welfare_each = self._declared_value[q] - self._declared_cost * self._declared_tokens[q]
        best_welfare = max(0.0, float(welfare_each.max()))
        if winner == NO_WINNER:
            value = payment = cost = 0.0
            tau_in = tau_out = reported = 0
            score = 0.0
        else:
            s = int(served[winner])
            score = float(mk.score[q, s])
            tau_in, tau_out = int(mk.input_tokens[q, s]), int(mk.output_tokens[q, s])
            reported = min(int(np.ceil(tau_out * (1.0 + inflation[winner]))), mk.max_output_tokens)
            if mech.billing == "per_token":  # list prices of the declared model, on reported tokens
                payment = float(mk.price_in[winner] * tau_in + mk.price_out[winner] * reported)
            value = cfg.value_scale * score
            cost = float(self._cost[winner, s] * (tau_in + tau_out))
            rewards[winner] = cfg.eta * payment - cost
            self.wins[winner] += 1
            self.last_price = payment
            mech.update(winner, score, tau_in, reported, payment, context, group)

        self.t += 1
        # The round: arrays over providers (valid until the next round) and the market's MARKET_FIELDS; infos,
        # rendering and EpisodeStats read it.
        self.last_round = {
            "per_provider": per, "bids": bids, "honest_bid": honest_bid, "served": served, "substituted": substitute,
            "inflation": inflation, "rewards": rewards, "true_tokens": tau_out, "reported_tokens": reported,
            "t": self.t, "query": q, "winner": winner, "score": score, "value": value, "payment": payment,
            "cost": cost, "user_utility": value - payment, "welfare": value - cost, "best_welfare": best_welfare,
            "unserved": winner == NO_WINNER, "mechanism": mech.diagnostics(),
        }

        done = self.t >= cfg.horizon
        if not done:
            self._next_query()
            self._fill_observation()
        return done

    # --------------------------------------------------------------------------------------------- rendering

    def render(self) -> str | None:
        """The last round as a table: one line per provider, then the market line."""
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'")
            return None
        r, mk = self.last_round, self.market
        if r is None:
            return f"{self.metadata['name']}: {self.config.name} / {self.mechanism.name}, no round played yet"
        lines = [f"round {r['t']}/{self.config.horizon}  query {mk.group_names[mk.group[r['query']]]}"
                 f"#{r['query']}  mechanism {self.mechanism.name}",
                 f"{'provider':<12}{'bid':>10}{'declared':>24}{'served':>24}{'inflation':>10}  won"]
        for i, a in enumerate(self.possible_agents):
            won = "*" if i == r["winner"] else ""
            lines.append(f"{a:<12}{r['bids'][i]:>10.4f}{mk.models[mk.declared[i]]:>24}"
                         f"{mk.models[r['served'][i]]:>24}{r['inflation'][i]:>10.2f}  {won}")
        lines.append(f"value {r['value']:.4f}  payment {r['payment']:.4f}  user utility {r['user_utility']:.4f}  "
                     f"welfare {r['welfare']:.4f}{'  (unserved)' if r['unserved'] else ''}")
        text = "\n".join(lines)
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def close(self) -> None:
        pass


def parallel_env(scenario: str | ScenarioConfig | dict = "capitals", mechanism: str | Mechanism = "first_price",
                 seed: int | None = None, render_mode: str | None = None, **overrides: Any) -> raw_env:
    """The market as a PettingZoo ParallelEnv (see the module docstring for spaces, rewards and infos)."""
    return raw_env(scenario=scenario, mechanism=mechanism, seed=seed, render_mode=render_mode, **overrides)


def env(scenario: str | ScenarioConfig | dict = "capitals", mechanism: str | Mechanism = "first_price",
        seed: int | None = None, render_mode: str | None = None, **overrides: Any):
    """The market as a PettingZoo AEC env (providers act in turn; the round resolves when all have acted)."""
    aec = parallel_to_aec(parallel_env(scenario, mechanism, seed, render_mode, **overrides))
    return wrappers.OrderEnforcingWrapper(aec)
