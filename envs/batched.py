"""The market core: E independent markets stepped by one call, vectorized over markets and providers.

Each market has its own seed, query stream, private costs and mechanism state; :meth:`BatchedMarket.step` takes the
joint actions of every provider in every market [E, N, 3] and returns observations [E, N, D], rewards [E, N], done [E]
and the round as a :class:`Round` of arrays. The PettingZoo env (:mod:`envs.market`) is this core with E = 1; the
trainers' vectorized env and the evaluation drive it with many markets at once.

The economics of a round are those of MECHANISMS.md §1 (see :mod:`envs.market` for the table). Randomness: market e's
seed starts three streams of its own - queries, private cost types, and the mechanism's per-round noise - drawn in
blocks that never cross an episode's end, with chunk-invariant draws, so a market's rounds do not depend on how many
markets run beside it, and do not depend on the actions (two profiles played on the same seeds face the same queries,
costs and mechanism coins: common random numbers). Markets run in lockstep: all start and end their episodes together.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np
from numpy.typing import ArrayLike, NDArray

from envs.layout import ACTION_DIM, ASK_DECADES, BID, INFLATION, SUBSTITUTION, ObservationLayout, StateLayout
from envs.scenarios import Market, ScenarioConfig, build_market
from envs.snapshot import SnapshotError, capture, restore
from mechanisms.base import NO_WINNER, BoolArray, FloatArray, IntArray, MarketInfo, Mechanism, Outcome, row_max

# Observations and states are float32 (the spaces' dtype); actions come in as anything array-like.
ObsArray = NDArray[np.float32]

ENV_NAME = "llm_market_v1"  # bumped whenever the market's behaviour changes
BLOCK = 256  # rounds of queries, costs and noise drawn at once per market (speed only: draws are chunk-invariant)
SLAB = 64  # markets whose block of draws is made and transposed together, in cache (speed only)


@dataclass
class Round:
    """One round of E markets (arrays over markets [E] and providers [E, N]); fresh arrays every round.

    Per provider: ``bids`` (the per-query bids the mechanism ranked), ``asks`` (in the billing's unit), ``honest_bids``
    (expected cost of the declared model), ``rewards`` (profit: eta * payment - cost for the winner, 0 otherwise),
    ``served`` (model each would serve), ``substituted``, ``inflation``. Per market: the ``query``, ``winner``
    (``NO_WINNER`` where unserved), ``score``, ``value`` = value_scale * S, ``payment`` (user -> winner), ``cost``,
    ``input_tokens``, ``true_tokens`` and ``reported_tokens`` (output), ``user_utility`` = value - payment,
    ``welfare`` = value - cost, ``best_welfare`` (the best provider serving its declared model at its cost, >= 0) and
    ``unserved``; ``t`` is the round number (1-based).
    """

    t: int
    query: IntArray
    bids: FloatArray
    asks: FloatArray
    honest_bids: FloatArray
    rewards: FloatArray
    served: IntArray
    substituted: BoolArray
    inflation: FloatArray
    winner: IntArray
    score: FloatArray
    value: FloatArray
    payment: FloatArray
    cost: FloatArray
    input_tokens: IntArray
    true_tokens: IntArray
    reported_tokens: IntArray
    user_utility: FloatArray
    welfare: FloatArray
    best_welfare: FloatArray
    unserved: BoolArray


@dataclass(slots=True)
class SingleRound:
    """One round of a single market as Python numbers (the per-step path of the PettingZoo env); :meth:`batched`
    gives it as a :class:`Round` of one market."""

    t: int
    query: int
    bids: list[float]
    asks: list[float]
    honest_bids: list[float]
    rewards: list[float]
    served: list[int]
    substituted: list[bool]
    inflation: list[float]
    winner: int
    score: float
    value: float
    payment: float
    cost: float
    input_tokens: int
    true_tokens: int
    reported_tokens: int
    best_welfare: float

    def batched(self) -> Round:
        def one(x: Any, dtype: Any = None) -> NDArray[Any]:
            return np.array([x], dtype=dtype)

        return Round(
            t=self.t,
            query=one(self.query),
            bids=one(self.bids),
            asks=one(self.asks),
            honest_bids=one(self.honest_bids),
            rewards=one(self.rewards),
            served=one(self.served),
            substituted=one(self.substituted),
            inflation=one(self.inflation),
            winner=one(self.winner),
            score=one(self.score),
            value=one(self.value),
            payment=one(self.payment),
            cost=one(self.cost),
            input_tokens=one(self.input_tokens),
            true_tokens=one(self.true_tokens),
            reported_tokens=one(self.reported_tokens),
            user_utility=one(self.value - self.payment),
            welfare=one(self.value - self.cost),
            best_welfare=one(self.best_welfare),
            unserved=one(self.winner < 0),
        )


class BatchedMarket:
    """E markets of one scenario under one mechanism, stepped together.

    It carries the per-market description the PettingZoo env has (``possible_agents``, ``metadata``,
    ``observation_space(agent)``, ``action_space(agent)``, ``layout``), so policies and manifests treat both alike.

    Args:
        config: the compiled scenario's config (see :func:`envs.scenarios.load_scenario`).
        mechanism: a mechanism instance; it holds the state of all E markets.
        n_markets: E.
        seeds: default seed of each market's first reset (``None``: fresh entropy).
        market: the compiled scenario, when the caller has it already.
    """

    def __init__(
        self,
        config: ScenarioConfig,
        mechanism: Mechanism,
        n_markets: int,
        seeds: Sequence[int | None] | None = None,
        market: Market | None = None,
    ):
        if n_markets < 1:
            raise ValueError(f"n_markets must be >= 1, got {n_markets}")
        self.config = config
        self.mechanism = mechanism
        self.market = market if market is not None else build_market(config)
        self.n_markets = E = n_markets
        mk, cfg = self.market, config
        N, M = cfg.n, mk.n_models
        self.n_providers = N
        self._default_seeds = list(seeds) if seeds is not None else [None] * E
        if len(self._default_seeds) != E:
            raise ValueError(f"{len(self._default_seeds)} seeds given for {E} markets")
        self.info = MarketInfo(
            n_providers=N,
            context_dim=mk.context.shape[1],
            n_groups=len(mk.group_names),
            value_scale=cfg.value_scale,
            bid_scale=mk.bid_scale,
            prior_quality=mk.prior_quality,
            cost_range=cost_range(mk),
            price_in=mk.price_in,
            price_out=mk.price_out,
            max_output_tokens=mk.max_output_tokens,
            horizon=cfg.horizon,
        )
        self.mechanism.reset(self.info, 1, [np.random.default_rng(0)])  # sizes the public state
        L = mk.max_output_tokens
        ask_scale = mk.bid_scale if cfg.billing == "per_query" else mk.bid_scale / mk.mean_output_tokens
        self.layout = ObservationLayout.build(
            mk.context.shape[1],
            M,
            self.mechanism.public_state_dim,
            N,
            value_scale=cfg.value_scale,
            bid_scale=mk.bid_scale,
            max_inflation=cfg.max_inflation,
            max_output_tokens=L,
            billing=cfg.billing,
            ask_scale=ask_scale,
            substitutes=tuple(tuple(int(m) for m in row[:n]) for row, n in zip(mk.substitutes, mk.n_substitutes)),
        )
        self.state_layout = StateLayout.build(self.layout)
        self.possible_agents = [f"provider_{i}" for i in range(N)]
        self._observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.layout.size,), np.float32)
        self._action_space = gymnasium.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
        self._rows = np.arange(E)
        self._providers = np.arange(N)
        self._offsets = self._rows * N  # row starts of a flattened [E, N] array
        self._declared_rows = np.broadcast_to(mk.declared, (E, N))
        self._no_noise = np.zeros((E, 0))
        # Per-query tables, gathered each round with one ``take`` per table (fancy indexing is several times slower).
        expected_tokens = (mk.input_tokens + mk.expected_output_tokens).astype(np.float64)  # [Q, M]
        self._declared_base = mk.base_cost[self._providers, mk.declared]  # [N]
        self._honest_unit = self._declared_base * expected_tokens[:, mk.declared]  # [Q, N] expected cost at type 1
        self._declared_exp_out = mk.expected_output_tokens[:, mk.declared].astype(np.float64)  # [Q, N]
        self._declared_value = cfg.value_scale * mk.score[:, mk.declared]  # [Q, N]
        self._declared_cost_unit = self._declared_base * (mk.input_tokens + mk.output_tokens)[:, mk.declared]
        self._score_flat = mk.score.astype(np.float64).ravel()  # [Q * M]
        self._input_flat = mk.input_tokens.astype(np.int64).ravel()
        self._output_flat = mk.output_tokens.astype(np.int64).ravel()
        self._base_flat = mk.base_cost.ravel()  # [N * M]
        lay = self.layout
        self._n_query_features = mk.context.shape[1] + 2 * M
        # Everything in an observation but the provider's cost type and the market's history: the query's context and
        # expected tokens, the expected cost of each model at type 1, menu, declared model, agent id.
        template = np.zeros((mk.n_queries, N, lay.size), dtype=np.float32)
        template[:, :, : self._n_query_features] = np.concatenate(
            [mk.context, mk.input_tokens / L, mk.expected_output_tokens / L], axis=1
        )[:, None, :]
        template[:, :, lay.expected_cost] = mk.base_cost[None] * expected_tokens[:, None, :] / cfg.value_scale
        template[:, :, lay.menu] = mk.menu
        template[:, :, lay.declared] = np.eye(M)[mk.declared]
        template[:, :, lay.agent_id] = np.eye(N)
        self._template = template
        self.obs = np.zeros((E, N, lay.size), dtype=np.float32)  # replaced by every observation
        self.t = 0
        self._streams: list[tuple[np.random.Generator, ...]] | None = None
        self._scratch: list[FloatArray] = []  # a slab's draws of a block, per stream (see _slab_scratch)
        self.last_round: Round | None = None

    metadata: ClassVar[dict[str, Any]] = {"name": ENV_NAME}
    render_mode = None  # batched markets do not render; the PettingZoo env does

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        """Every provider's observation space (one Box of the layout's size)."""
        self._check_agent(agent)
        return self._observation_space

    def action_space(self, agent: str) -> gymnasium.spaces.Box:
        """Every provider's action space: Box(-1, 1, (3,))."""
        self._check_agent(agent)
        return self._action_space

    def state(self) -> ObsArray:
        """[E, S] every market's public global state before its coming round (:class:`envs.layout.StateLayout`; a
        new array). After the last round of an episode it is the state before that round."""
        if self._streams is None:
            raise RuntimeError("state() called before reset()")
        return self.state_layout.of(self.obs)

    def _check_agent(self, agent: str) -> None:
        if agent not in self.possible_agents:
            raise ValueError(f"unknown agent {agent!r}; agents are {self.possible_agents}")

    # --------------------------------------------------------------------------------------------------- state

    # What changes while markets play (the rest is rebuilt from the config); see envs.snapshot.
    STATE = (
        "t",
        "wins",
        "last_price",
        "last_bids",
        "last_won",
        "_queries",
        "_types",
        "_noise",
        "_episode_types",
        "_pos",
        "q",
        "_honest",
        "obs",
        "_noise_dim",
        "_wins_one",
        "_last_price_one",
        "_last_bids_one",
        "_last_winner_one",
    )

    def state_dict(self) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        """Everything a market built from the same config needs to continue exactly where this one is: arrays
        (save with ``numpy.savez``) and JSON-able values, the streams' generator states and the mechanism's state
        included."""
        if self._streams is None:
            raise SnapshotError("a market that was never reset has no state to save")
        arrays: dict[str, NDArray[Any]] = {}
        meta: dict[str, Any] = {"streams": [[g.bit_generator.state for g in s] for s in self._streams]}
        for name in self.STATE:
            if hasattr(self, name):
                value = getattr(self, name)
                if isinstance(value, np.ndarray):
                    arrays[name] = value
                else:
                    meta[name] = value.item() if isinstance(value, np.generic) else value
        capture(self.mechanism, "mechanism.", arrays, meta)
        return arrays, meta

    def load_state_dict(self, arrays: dict[str, NDArray[Any]], meta: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` snapshot of a market built from the same config and size."""
        streams = meta["streams"]
        if len(streams) != self.n_markets:
            raise SnapshotError(f"the snapshot holds {len(streams)} markets, this batch {self.n_markets}")
        if self._streams is None:
            self.reset()
        assert self._streams is not None
        for gens, states in zip(self._streams, streams):
            for g, state in zip(gens, states):
                g.bit_generator.state = state
        for name in self.STATE:
            if name in arrays:
                setattr(self, name, np.array(arrays[name], copy=True))
            elif name in meta:
                setattr(self, name, meta[name])
        restore(self.mechanism, arrays, meta, "mechanism.")
        self._gather_query(self.q)
        if self.n_markets == 1:
            self._prepare_single_block()
        self.last_round = None

    # ------------------------------------------------------------------------------------------------ episodes

    def reset(self, seeds: Sequence[int | None] | None = None) -> ObsArray:
        """Start an episode in every market. ``seeds`` (one per market) restart the markets' streams; without them
        the streams go on (the first reset uses the constructor's seeds). Returns the observations [E, N, D] (the
        market's own buffer: copy to keep)."""
        if seeds is not None or self._streams is None:
            seeds = list(seeds) if seeds is not None else self._default_seeds
            if len(seeds) != self.n_markets:
                raise ValueError(f"{len(seeds)} seeds given for {self.n_markets} markets")
            # Per market: queries, cost types, mechanism (its per-round noise and once-per-episode draws).
            self._streams = [
                tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)) for seed in seeds
            ]
        cfg, E, N = self.config, self.n_markets, self.n_providers
        self.mechanism.reset(self.info, E, [s[2] for s in self._streams])
        self._noise_dim = self.mechanism.noise_dim
        if cfg.cost_resample == "episode":
            u = np.stack([s[1].random(N) for s in self._streams])
            self._episode_types = cfg.cost_low + (cfg.cost_high - cfg.cost_low) * u
        self.t = 0
        self.wins = np.zeros((E, N))
        self.last_price = np.zeros(E)
        self.last_bids = np.zeros((E, N))
        self.last_won = np.zeros((E, N))
        # The single-market path's copies (E = 1): wins, last price, last bids, last winner.
        self._wins_one, self._last_price_one, self._last_bids_one, self._last_winner_one = [0.0] * N, 0.0, [0.0] * N, -1
        self.last_round = None
        self._draw_block()
        self._observe()
        return self.obs

    def _draw_block(self) -> None:
        """The next block of queries, cost types and mechanism noise of every market (never past the episode), stored
        round-major ([k, E, ...]) so each round reads contiguous slices. Each market's generators fill their own rows
        (``Generator.random`` is chunk-invariant: the same draws whatever the block size), a slab of markets at a
        time, and the slab is transposed into the round-major blocks while its draws are still in cache."""
        cfg, mk = self.config, self.market
        E, N = self.n_markets, self.n_providers
        k = min(BLOCK, cfg.horizon - self.t)
        per_query = cfg.cost_resample == "query"
        # Numbers per round drawn from each of a market's streams (queries, cost types, mechanism noise); a stream
        # that draws nothing per round is not called.
        widths = (1, N if per_query else 0, self._noise_dim)
        streams = [j for j, width in enumerate(widths) if width]
        blocks = [np.empty((k, E, widths[j])) for j in streams]
        scratch = self._slab_scratch(k, tuple(widths[j] for j in streams))
        rows = [tuple(x[r] for x in scratch) for r in range(SLAB)]  # each slab row's view of every stream's scratch
        assert self._streams is not None, "reset() first"
        for e in range(0, E, SLAB):
            n = min(SLAB, E - e)
            for gens, views in zip(self._streams[e : e + n], rows):
                for j, view in zip(streams, views):
                    gens[j].random(out=view)
            for x, block in zip(scratch, blocks):
                transpose_slab(x[:n], block, e)
        queries = blocks[0][:, :, 0]
        queries *= mk.n_queries
        self._queries = queries.astype(np.int64)  # [k, E] floor(n_queries u): truncation, as u >= 0 (floor is slower)
        if per_query:  # low + (high - low) u, as Generator.uniform computes it
            self._types = blocks[1]  # [k, E, N]
            self._types *= cfg.cost_high - cfg.cost_low
            self._types += cfg.cost_low
        if self._noise_dim:
            self._noise = blocks[-1]  # [k, E, U]
        self._pos = 0
        if E == 1:
            self._prepare_single_block()

    def _slab_scratch(self, k: int, widths: tuple[int, ...]) -> list[FloatArray]:
        """Per stream, the [SLAB, k * width] scratch a slab of markets draws a block into (kept between blocks)."""
        if [x.shape for x in self._scratch] != [(SLAB, k * w) for w in widths]:
            self._scratch = [np.empty((SLAB, k * w)) for w in widths]
        return self._scratch

    def _round_types(self) -> FloatArray:
        return self._types[self._pos] if self.config.cost_resample == "query" else self._episode_types

    def _observe(self) -> None:
        """The coming query (``q``, its context and group) and its honest bids, and every provider's observation of it
        (``self.obs``, a fresh array)."""
        lay, cfg = self.layout, self.config
        self._gather_query(self._queries[self._pos])
        types = self._round_types()  # [E, N]
        self._honest = self._honest_unit.take(self.q, axis=0) * types  # [E, N] expected cost of the declared model
        obs = self._template.take(self.q, axis=0)
        scale_expected_costs(obs, lay.expected_cost, types)
        # Column by column, each one strided pass over the rows of every (market, provider) (a write into the
        # [E, N] columns of a [E, N, D] array runs an inner loop per market, several times slower).
        rows = obs.reshape(-1, lay.size)
        rows[:, lay.last_bid] = (self.last_bids / cfg.value_scale).reshape(-1)
        rows[:, lay.last_won] = self.last_won.reshape(-1)
        rows[:, lay.win_rate] = (self.wins / max(1, self.t)).reshape(-1)
        rows[:, lay.time_left] = 1.0 - self.t / cfg.horizon
        last_price = self.last_price / cfg.value_scale
        public = self.mechanism.public_state(self._context, self._group)  # [E, public_state_dim]
        for i in range(self.n_providers):  # the market's public numbers, in every provider's observation
            obs[:, i, lay.last_price] = last_price
        write_columns(obs, lay.mechanism, public)
        self.obs = obs

    def _gather_query(self, q: IntArray) -> None:
        """Make ``q`` [E] the coming round's queries: their context and group (``_context``, ``_group``)."""
        self.q = q
        self._context, self._group = self.market.context.take(q, axis=0), self.market.group.take(q)

    # ------------------------------------------------------------------------------------- one market, per step

    def _prepare_single_block(self) -> None:
        mk, lay = self.market, self.layout
        self._block = _SingleBlock(self)
        self._declared_list = mk.declared.tolist()
        self._base_list = mk.base_cost.tolist()
        self._price_lists = mk.price_in.tolist(), mk.price_out.tolist()
        self._substitutes = [list(s) for s in lay.substitutes]
        # The history and the mechanism's state, contiguous in each provider's row of the float32 observations:
        # written by one ``pack_into`` per row into the block's bytes (assigning nested lists to an array slice costs
        # several times more), at these offsets from the round's first byte.
        self._pack_dynamic = struct.Struct(f"{lay.time_left - lay.last_price}f").pack_into
        itemsize = np.dtype(np.float32).itemsize
        self._dynamic_offsets = [(i * lay.size + lay.last_price) * itemsize for i in range(self.n_providers)]
        self._round_bytes = self.n_providers * lay.size * itemsize

    def _observe_one(self) -> None:
        """:meth:`_observe` of a single market after a round, completing the precomputed block's observations of
        the round (``self.obs``, a view of them: fresh memory, as no other round writes there and every block is a
        new array)."""
        block, pos, t = self._block, self._pos, self.t  # t >= 1: the win rate's max(1, t) is t
        vs, pack, buffer, winner = self.config.value_scale, self._pack_dynamic, block.obs_bytes, self._last_winner_one
        start = pos * self._round_bytes
        last_price = self._last_price_one / vs
        public = self.mechanism.public_state_one(block.context[pos], block.groups[pos])
        for i, (offset, bid, wins) in enumerate(zip(self._dynamic_offsets, self._last_bids_one, self._wins_one)):
            # last price, own last bid, last won (never for NO_WINNER), win rate, the mechanism's state
            pack(buffer, start + offset, last_price, bid / vs, 1.0 if i == winner else 0.0, wins / t, *public)
        self.obs = block.obs[pos : pos + 1]

    def step_one(self, actions: list[list[float]]) -> tuple[ObsArray, list[float], bool]:
        """:meth:`step` of a single market (E = 1) with Python arithmetic: the PettingZoo env's per-step path.

        Args:
            actions: N joint actions of 3 floats, already validated (finite; out-of-range values are clipped).

        Returns:
            ``(observations [N, D], rewards, done)``; the observations are the market's own buffer, as in :meth:`step`
            (a fresh array every round but the last, which returns the previous round's); ``self.last_single`` holds
            the round.
        """
        if self._streams is None or self.t >= self.config.horizon:
            raise RuntimeError("step() called on a finished episode; call reset()")
        mk, cfg, lay, mech = self.market, self.config, self.layout, self.mechanism
        block, pos, N = self._block, self._pos, self.n_providers
        row = pos * N  # round pos's entries of the block's per-provider lists
        honest, exp_out = block.honest[row : row + N], block.expected_output[row : row + N]
        declared = self._declared_list
        scale, max_infl, L = lay.ask_scale, lay.max_inflation, mk.max_output_tokens
        decades = ASK_DECADES
        per_token = cfg.billing == "per_token"
        bids, served, inflation, substituted = [0.0] * N, list(declared), [0.0] * N, [False] * N
        asks = [0.0] * N if per_token else bids  # per query, the asks are the bids (as in step)
        # Clipped to [-1, 1] and decoded as in ObservationLayout, with max and min written out: a call of either
        # builtin costs more than the arithmetic.
        for i, (a_bid, a_sub, a_infl) in enumerate(actions):
            a_bid = -1.0 if a_bid < -1.0 else 1.0 if a_bid > 1.0 else a_bid
            if per_token:
                h = honest[i] / exp_out[i]
                asks[i] = ask = h + a_bid * scale if a_bid >= 0.0 else h * 10.0 ** (decades * a_bid)
                bids[i] = ask * exp_out[i]
            else:
                bids[i] = honest[i] + a_bid * scale if a_bid >= 0.0 else honest[i] * 10.0 ** (decades * a_bid)
            if a_sub > 0.0:
                subs = self._substitutes[i]
                k = math.ceil((1.0 if a_sub > 1.0 else a_sub) * len(subs))
                if k > 0 and subs:
                    served[i] = model = subs[k - 1]
                    substituted[i] = model != declared[i]
            inflation[i] = (0.0 if a_infl < 0.0 else 1.0 if a_infl > 1.0 else a_infl) * max_infl
        context, group = block.context[pos], block.groups[pos]
        U = self._noise_dim
        w, payment = mech.allocate_one(bids, context, group, block.noise[pos * U : pos * U + U])
        rewards = [0.0] * N
        score = value = cost_w = 0.0
        tau_in = tau_out = reported = 0
        if w != NO_WINNER:
            s = served[w]
            cell = pos * block.n_models + s  # round pos's entry of model s in the block's per-model lists
            score = block.score[cell]
            tau_in, tau_out = block.input_tokens[cell], block.output_tokens[cell]
            reported = math.ceil(tau_out * (1.0 + inflation[w]))
            reported = L if reported > L else reported
            if mech.billing == "list_price":
                price_in, price_out = self._price_lists
                payment = price_in[w] * tau_in + price_out[w] * reported
            elif per_token:
                payment = payment / exp_out[w] * reported
            value = cfg.value_scale * score
            cost_w = self._base_list[w][s] * block.types[row + w] * (tau_in + tau_out)
            rewards[w] = cfg.eta * payment - cost_w
            self._wins_one[w] += 1.0
            self._last_price_one = payment
        else:
            payment = 0.0
        mech.update_one(w, score, tau_in, reported, payment, context, group)
        self._last_bids_one, self._last_winner_one = bids, w
        self.t += 1
        # Positional, in field order: keywords cost three times as much.
        self.last_single = SingleRound(
            self.t, block.queries[pos], bids, asks, honest, rewards, served, substituted, inflation,
            w, score, value, payment, cost_w, tau_in, tau_out, reported, block.best_welfare[pos],
        )  # fmt: skip
        self.last_round = None
        done = self.t >= cfg.horizon
        if not done:
            self._pos += 1
            if self._pos == len(block.queries):
                self._draw_block()
            self._observe_one()
        return self.obs[0], rewards, done

    # --------------------------------------------------------------------------------------------------- rounds

    def played(self) -> Round:
        """The round just played (:attr:`last_round`); a RuntimeError before the first step of an episode."""
        if self.last_round is None:
            raise RuntimeError("no round played yet in this episode: call step() first")
        return self.last_round

    def check_actions(self, actions: ArrayLike) -> FloatArray:
        """The joint actions [E, N, 3] as float64, clipped (``action_mode="clip"``) or rejected (``"strict"``);
        NaN or inf always raise a ValueError naming the market and provider; so do actions that are not numbers."""
        try:
            acts = np.asarray(actions)
        except ValueError as exc:  # a ragged nesting of lists
            raise ValueError(
                f"joint actions must be an array of numbers of shape "
                f"{(self.n_markets, self.n_providers, ACTION_DIM)}: {exc}"
            ) from None
        if acts.dtype.kind not in "biuf":
            raise ValueError(f"joint actions must be numbers (bid, substitution, inflation), got dtype {acts.dtype}")
        if acts.shape != (self.n_markets, self.n_providers, ACTION_DIM):
            raise ValueError(
                f"joint actions must have shape {(self.n_markets, self.n_providers, ACTION_DIM)} "
                f"(markets x providers x (bid, substitution, inflation)), got {acts.shape}"
            )
        # Two reductions, no temporary (false for NaN too), on the actions as given: float32 ones are read faster.
        in_range = acts.max() <= 1.0 and acts.min() >= -1.0
        acts = acts.astype(np.float64, copy=False)
        if not in_range:
            bad = ~np.isfinite(acts).all(axis=2)
            if bad.any():
                e, i = np.argwhere(bad)[0]
                raise ValueError(f"market {e}, provider_{i}: action contains NaN or inf: {acts[e, i].tolist()}")
            if self.config.action_mode == "strict":
                e, i = np.argwhere(np.abs(acts).max(axis=2) > 1.0)[0]
                raise ValueError(
                    f"market {e}, provider_{i}: action {acts[e, i].tolist()} outside [-1, 1] "
                    f"(action_mode='strict'; use 'clip' to clip)"
                )
            acts = np.clip(acts, -1.0, 1.0)
        return acts

    def step(self, actions: ArrayLike) -> tuple[ObsArray, FloatArray, BoolArray]:
        """Play one round in every market.

        Args:
            actions: [E, N, 3] joint actions (validated and clipped per ``action_mode``).

        Returns:
            ``(observations [E, N, D], rewards [E, N], done [E])``; the observations are the market's own buffer,
            valid until the next step (copy to keep); ``self.last_round`` holds the :class:`Round`. When done, the
            observations are the last round's: call :meth:`reset`.
        """
        if self._streams is None or self.t >= self.config.horizon:
            raise RuntimeError("step() called on a finished episode; call reset()")
        acts = self.check_actions(actions)
        mk, cfg, lay, mech = self.market, self.config, self.layout, self.mechanism
        q, E, N, M = self.q, self.n_markets, self.n_providers, mk.n_models
        per_token = cfg.billing == "per_token"

        honest = self._honest
        if per_token:
            exp_out = np.maximum(self._declared_exp_out.take(q, axis=0), 1.0)  # [E, N] expected output tokens, >= 1
            asks = lay.decode_asks(acts[:, :, BID], honest / exp_out)
            bids = asks * exp_out  # the mechanism ranks expected payments per query
        else:
            asks = bids = lay.decode_asks(acts[:, :, BID], honest)
        # One strided pass down the flat column (an [E, N] view is walked a market at a time); actions are finite.
        substituting = bool(acts.reshape(-1, ACTION_DIM)[:, SUBSTITUTION].max() > 0.0)
        served = lay.decode_served(acts[:, :, SUBSTITUTION], mk.declared) if substituting else self._declared_rows
        inflation = lay.decode_inflation(acts[:, :, INFLATION])

        context, group = self._context, self._group
        noise = self._noise[self._pos] if self._noise_dim else self._no_noise
        winner, payment = mech.allocate(bids, context, group, noise)
        won = winner != NO_WINNER
        # Every market served is the common case: the masks of unserved markets are skipped (same numbers).
        all_won = bool(won.all())
        w = winner if all_won else np.where(won, winner, 0)
        flat_w = self._offsets + w  # index of (market, winner) in a flattened [E, N] array
        s = served.reshape(-1).take(flat_w) if substituting else mk.declared.take(w)  # the model the winner serves
        flat_qs = q * M + s
        score = self._score_flat.take(flat_qs)
        tau_in = self._input_flat.take(flat_qs)
        tau_out = self._output_flat.take(flat_qs)
        if not all_won:
            score, tau_in, tau_out = np.where(won, score, 0.0), np.where(won, tau_in, 0), np.where(won, tau_out, 0)
        if inflation.max() > 0.0:
            reported_f = inflation.reshape(-1).take(flat_w)  # min(ceil(tau_out (1 + iota)), L), in place
            reported_f += 1.0
            reported_f *= tau_out
            np.ceil(reported_f, out=reported_f)
            reported = np.minimum(reported_f, mk.max_output_tokens, out=reported_f).astype(np.int64)
        else:  # nobody inflates (honest play): iota = 0, the true tokens capped at L (the same numbers)
            reported = np.minimum(tau_out, mk.max_output_tokens)
        if mech.billing == "list_price":  # list prices of the declared model, on reported tokens
            payment = mk.price_in.take(w) * tau_in + mk.price_out.take(w) * reported
        elif per_token:  # the mechanism's price per expected output token, on reported tokens
            payment = payment / exp_out.reshape(-1).take(flat_w) * reported
        if not all_won:
            payment = np.where(won, payment, 0.0)
        value = cfg.value_scale * score
        types = self._round_types()
        # The served model's cost per token, times the winner's type.
        cost = self._base_flat.take(w * M + s) if substituting else self._declared_base.take(w)
        cost *= types.reshape(-1).take(flat_w)
        cost *= tau_in + tau_out
        if not all_won:
            cost = np.where(won, cost, 0.0)
        gain = cfg.eta * payment - cost
        winners = flat_w if all_won else flat_w[won]  # flat indices of the served markets' winners
        rewards = np.zeros((E, N))
        rewards.reshape(-1)[winners] = gain if all_won else gain[won]
        self.last_won = np.empty((E, N))
        for i in range(N):  # a compare per provider: half the cost of zeroing [E, N] and assigning by index
            self.last_won[:, i] = winner == i  # NO_WINNER is none of them
        self.wins += self.last_won
        self.last_price = payment.copy() if all_won else np.where(won, payment, self.last_price)
        self.last_bids = bids
        mech.update(Outcome(winner, score, tau_in, reported, payment, context, group))

        # Best achievable welfare: the best provider serving its declared model at its true cost.
        welfare = self._declared_value.take(q, axis=0)
        welfare -= self._declared_cost_unit.take(q, axis=0) * types
        best_welfare = row_max(welfare)
        np.maximum(0.0, best_welfare, out=best_welfare)
        self.t += 1
        self.last_round = Round(
            t=self.t,
            query=q,
            bids=bids,
            asks=asks,
            honest_bids=honest,
            rewards=rewards,
            served=served,
            substituted=served != mk.declared if substituting else np.zeros((E, N), dtype=bool),
            inflation=inflation,
            winner=winner,
            score=score,
            value=value,
            payment=payment,
            cost=cost,
            input_tokens=tau_in,
            true_tokens=tau_out,
            reported_tokens=reported,
            user_utility=value - payment,
            welfare=value - cost,
            best_welfare=best_welfare,
            unserved=~won,
        )
        done = self.t >= cfg.horizon
        if not done:
            self._pos += 1
            if self._pos == self._queries.shape[0]:
                self._draw_block()
            self._observe()
        return self.obs, rewards, np.full(E, done)


class _SingleBlock:
    """A block of one market's rounds precomputed for :meth:`step_one` (the same formulas as
    :meth:`BatchedMarket._observe` and :meth:`BatchedMarket.step`, so both paths agree to the bit): per-round numbers
    as flat Python lists, round r's entries at [r * N, (r + 1) * N) of a per-provider list and [r * M, (r + 1) * M)
    of a per-model one (a nested list costs a list object per round to build, and wakes the garbage collector), and
    each round's observations but for the history and the mechanism's state (which :meth:`BatchedMarket._observe_one`
    writes in place)."""

    def __init__(self, market: BatchedMarket):
        m, mk, cfg = market, market.market, market.config
        q = m._queries[:, 0]
        types = (
            m._types[:, 0]
            if cfg.cost_resample == "query"
            else np.broadcast_to(m._episode_types[0], (q.shape[0], m.n_providers))
        )
        self.queries = q.tolist()
        self.n_models = mk.n_models
        self.groups = mk.group.take(q).tolist()
        self.context = list(mk.context.take(q, axis=0))  # each round's row, a view made once
        self.score = mk.score.take(q, axis=0).ravel().tolist()  # every model's answer
        self.input_tokens = mk.input_tokens.take(q, axis=0).ravel().tolist()
        self.output_tokens = mk.output_tokens.take(q, axis=0).ravel().tolist()
        self.types = types.ravel().tolist()
        self.obs = m._template.take(q, axis=0)  # [k, N, D]
        scale_expected_costs(self.obs, m.layout.expected_cost, types)
        rounds = m.t - m._pos + np.arange(q.shape[0])  # the rounds played before each of the block's
        self.obs[:, :, m.layout.time_left] = (1.0 - rounds / cfg.horizon)[:, None]
        self.obs_bytes = self.obs.data.cast("B")  # the observations' bytes, for struct's pack_into
        self.honest = (m._honest_unit.take(q, axis=0) * types).ravel().tolist()
        self.expected_output = np.maximum(m._declared_exp_out.take(q, axis=0), 1.0).ravel().tolist()
        declared_cost = m._declared_cost_unit.take(q, axis=0) * types
        self.best_welfare = np.maximum(0.0, row_max(m._declared_value.take(q, axis=0) - declared_cost)).tolist()
        self.noise = m._noise[:, 0].ravel().tolist() if m._noise_dim else []  # noise_dim per round


def transpose_slab(draws: FloatArray, block: FloatArray, start: int) -> None:
    """Write the draws of markets start, start + 1, ... [n, k * width] (each market's k rounds of ``width`` numbers,
    market-major) into their columns of the round-major ``block`` [k, E, width] (C-contiguous): a round's numbers are
    moved as one item (a strided copy of floats is two to three times slower)."""
    k, E, width = block.shape
    item = np.dtype((np.void, draws.itemsize * width))
    block.reshape(k, E * width).view(item)[:, start : start + draws.shape[0]] = draws.view(item).T


def write_columns(obs: ObsArray, columns: slice, values: FloatArray) -> None:
    """Write each market's numbers ``values`` [E, k] into ``columns`` of every provider's observation [E, N, D]
    (float32): a row's k numbers are moved as one item per provider (k strided column writes cost about half as much
    again)."""
    k = columns.stop - columns.start
    if k == 0:
        return
    item = np.dtype((np.void, k * obs.itemsize))
    row_items = values.astype(obs.dtype).view(item)[:, 0]  # contiguous [E, k] -> [E] items
    for i in range(obs.shape[1]):
        obs[:, i, columns].view(item)[:, 0] = row_items


def scale_expected_costs(obs: ObsArray, columns: slice, types: FloatArray) -> None:
    """Multiply the expected-cost columns of observations [..., N, D] (C-contiguous, at type 1) by the providers' types
    [..., N], in float32, one model column at a time over every row (a broadcast over the short model or provider axis
    is several times slower)."""
    assert obs.flags.c_contiguous, "scaled in place through a flat view"
    rows = obs.reshape(-1, obs.shape[-1])
    t32 = types.astype(np.float32).reshape(-1)
    for c in range(columns.start, columns.stop):
        rows[:, c] *= t32


def cost_range(mk: Market) -> FloatArray:
    """[N, 2] the public range of each provider's per-query cost at mean token counts, over every model on its menu
    (a provider that may serve a cheaper model may have that model's cost) and every type."""
    cfg = mk.config
    mean_tokens = (mk.input_tokens + mk.output_tokens).mean(axis=0)  # [M]
    per_query = np.where(mk.menu, mk.base_cost * mean_tokens, np.nan)  # [N, M]
    return np.stack([np.nanmin(per_query, 1) * cfg.cost_low, np.nanmax(per_query, 1) * cfg.cost_high], axis=1)
