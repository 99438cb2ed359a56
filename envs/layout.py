"""The interface between the market and its providers: the observation layout and the one action codec.

Every policy (scripted, analytic, delegation, learned) and the market itself read observations through
:class:`ObservationLayout` slices and turn actions into asks, served models and inflation (and back) through its
codec methods, so the decoding rules of the market's docstring are written once, here.

Action (per provider, all in [-1, 1]; the all-zero action is honest play, exactly):
    a[0] bid:           ask = honest_ask + a[0] * ask_scale for a[0] >= 0 (a markup, in money), and
                        ask = honest_ask * 10 ** (ASK_DECADES * a[0]) for a[0] < 0 (a fraction of the honest ask, on
                        a log scale: a[0] = -1/3 asks a tenth of it, -1 a thousandth). Per-query billing: the ask is
                        a price for the query and honest_ask the expected cost of serving it with the declared model;
                        per-token billing: the ask is a price per reported output token and honest_ask the break-even
                        price, expected cost / expected output tokens of the declared model.
                        Every a[0] is a different ask, and a given factor below the honest ask (a cheaper model's
                        cost, a rival's ask) is as far from honest play for every provider, whatever its costs.
                        (An additive rule clipped at 0 mapped nearly half the box, every a[0] < -honest_ask /
                        ask_scale, to the ask 0, where a gradient learner feels nothing, and squeezed the asks between
                        a substitute's cost and the honest ask into a sliver: learners that substituted sank into the
                        floor. A linear fraction, honest_ask * (1 + a[0]), put those asks at a[0] of about -0.85, out
                        of reach of exploration from honest play under some mechanisms.)
    a[1] substitution:  a[1] <= 0 serves the declared model; a[1] > 0 serves the k-th cheaper menu model,
                        k = ceil(a[1] * n_substitutes) (closest in cost first; a[1] = 1 is the cheapest).
    a[2] inflation:     iota = max(0, a[2]) * max_inflation; reported output tokens min(ceil(tau (1 + iota)), L).

The public global state (PettingZoo's ``state()``, for centralized critics) is laid out by :class:`StateLayout`: what
any observer of the platform knows before the coming round, and nothing private (no costs, menus or served models).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

ACTION_DIM = 3
BID, SUBSTITUTION, INFLATION = range(ACTION_DIM)
ASK_DECADES = 3.0  # a[0] in [-1, 0) spans this many decades of asks below the honest ask
BID_CODEC = "ask = honest_ask * 10 ** (3 a) for a < 0, honest_ask + a * ask_scale for a >= 0"  # in learned manifests
SCALAR_FIELDS = ("last_price", "last_bid", "last_won", "win_rate", "time_left")  # one entry of the observation


@dataclass(frozen=True)
class ObservationLayout:
    """Named slices of the observation vector, so policies read it by meaning, not by index, and the action codec.

    Attributes (slices or indices into the observation vector of length ``size``):
        context: the query's public context features.
        expected_input_tokens, expected_output_tokens: per model, / L (the output's group mean).
        expected_cost: the provider's own expected cost of serving the query with each model / value_scale (0 off
            its menu).
        menu: menu mask. declared: declared model one-hot.
        last_price: last round's price / value_scale (the clearing price; 0 before any sale; unchanged by an unserved
            round). last_bid: own last per-query bid / value_scale. last_won: 1 if the provider won the last round.
            win_rate: own win rate so far. (The repeated game's public history: what a provider needs to condition
            on its rivals' past play, as tacit collusion requires.)
        mechanism: the mechanism's public state. time_left: fraction of the horizon. agent_id: one-hot.
    Scalars: n_models, value_scale, bid_scale (money per unit of a[0] for per-query asks), max_inflation,
    max_output_tokens (L), billing (``per_query`` or ``per_token``), ask_scale (money per unit of a[0] in the
    ask's unit), substitutes (per provider, the market indices of its cheaper menu models, closest in cost first).
    """

    context: slice
    expected_input_tokens: slice
    expected_output_tokens: slice
    expected_cost: slice
    menu: slice
    declared: slice
    last_price: int
    last_bid: int
    last_won: int
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
    billing: str
    ask_scale: float
    substitutes: tuple[tuple[int, ...], ...]

    @staticmethod
    def build(context_dim: int, n_models: int, mechanism_dim: int, n_agents: int, **scalars: Any) -> ObservationLayout:
        """The layout of a market (per-query public features first, as one contiguous block)."""
        sizes = [
            ("context", context_dim),
            ("expected_input_tokens", n_models),
            ("expected_output_tokens", n_models),
            ("expected_cost", n_models),
            ("menu", n_models),
            ("declared", n_models),
            ("last_price", 1),
            ("last_bid", 1),
            ("last_won", 1),
            ("win_rate", 1),
            ("mechanism", mechanism_dim),
            ("time_left", 1),
            ("agent_id", n_agents),
        ]
        out: dict[str, Any] = {}
        start = 0
        for name, n in sizes:
            out[name] = start if name in SCALAR_FIELDS else slice(start, start + n)
            start += n
        return ObservationLayout(**out, size=start, n_models=n_models, **scalars)

    @property
    def n_agents(self) -> int:
        return self.agent_id.stop - self.agent_id.start

    # ----------------------------------------------------------------------------------------------- reading

    def agent_index(self, obs: np.ndarray) -> np.ndarray:
        """Which provider each observation [..., D] belongs to."""
        return obs[..., self.agent_id].argmax(-1)

    def declared_model(self, obs: np.ndarray) -> np.ndarray:
        return obs[..., self.declared].argmax(-1)

    def honest_bid(self, obs: np.ndarray) -> np.ndarray:
        """Expected cost of serving the query with the declared model (money), from observations [..., D]."""
        # The declared slot is one-hot, so a dot product picks the declared model's cost.
        cost = (obs[..., self.expected_cost] * obs[..., self.declared]).sum(-1, dtype=np.float64)
        return cost * self.value_scale

    def expected_output_tokens_declared(self, obs: np.ndarray) -> np.ndarray:
        """Expected output tokens of the declared model on the query (its group mean)."""
        tokens = (obs[..., self.expected_output_tokens] * obs[..., self.declared]).sum(-1, dtype=np.float64)
        return tokens * self.max_output_tokens

    def honest_ask(self, obs: np.ndarray) -> np.ndarray:
        """The honest ask in the billing's unit: the expected cost (per query) or the break-even price per expected
        output token (per token)."""
        cost = self.honest_bid(obs)
        if self.billing == "per_token":
            return cost / np.maximum(self.expected_output_tokens_declared(obs), 1.0)
        return cost

    # ------------------------------------------------------------------------------------------ the codec

    def decode_asks(self, a_bid: np.ndarray, honest_ask: np.ndarray) -> np.ndarray:
        """Asks from a[0] in [-1, 1] and the honest asks (the ask's unit): markups above, fractions below."""
        asks = honest_ask + np.maximum(a_bid, 0.0) * self.ask_scale
        if np.min(a_bid) < 0.0:  # the power only where it is needed (honest play, the common case, has none)
            asks = np.where(a_bid < 0.0, honest_ask * 10.0 ** (ASK_DECADES * np.minimum(a_bid, 0.0)), asks)
        return asks

    def bid_action(self, obs: np.ndarray, ask: np.ndarray, honest: np.ndarray | None = None) -> np.ndarray:
        """The a[0] that asks ``ask`` (in the billing's unit) given observations (and their :meth:`honest_ask`, when
        the caller has it); the inverse of :meth:`decode_asks` for asks > 0 (unclipped: values outside [-1, 1] are
        not reachable; an ask of 0 gives -inf). An honest ask of 0 takes any ask >= 0 as a markup."""
        honest = np.asarray(self.honest_ask(obs) if honest is None else honest, dtype=np.float64)
        ask = np.asarray(ask, dtype=np.float64)
        markup = (ask - honest) / self.ask_scale
        below = ask < honest  # so honest > 0
        with np.errstate(divide="ignore"):
            fraction = np.log10(np.where(below, ask, 1.0) / np.where(below, honest, 1.0)) / ASK_DECADES
        return np.where(below, fraction, markup)

    @functools.cached_property
    def _substitute_table(self) -> tuple[np.ndarray, np.ndarray]:
        n = np.array([len(s) for s in self.substitutes], dtype=np.int64)
        table = np.full((len(self.substitutes), max(1, int(n.max(initial=0)))), -1, dtype=np.int64)
        for i, s in enumerate(self.substitutes):
            table[i, : len(s)] = s
        return table, n

    def decode_served(self, a_sub: np.ndarray, declared: np.ndarray) -> np.ndarray:
        """[E, N] the model each provider serves, from a[1] [E, N] and the declared models [N]."""
        return self._served(np.arange(a_sub.shape[-1]), a_sub, declared)

    def served_model(self, obs: np.ndarray, a_sub: np.ndarray | float) -> np.ndarray:
        """The model the provider each observation [..., D] belongs to would serve with a[1] = ``a_sub``."""
        return self._served(self.agent_index(obs), np.asarray(a_sub, dtype=np.float64), self.declared_model(obs))

    def _served(self, provider: np.ndarray, a_sub: np.ndarray, declared: np.ndarray) -> np.ndarray:
        table, n = self._substitute_table
        n_i = n[provider]
        k = np.ceil(a_sub * n_i).astype(np.int64)  # the k-th cheaper substitute; <= 0 keeps the declared model
        return np.where((k > 0) & (n_i > 0), table[provider, np.clip(k, 1, None) - 1], declared)

    def substitution_action(self, provider: int, model: int, declared: int) -> float | None:
        """The a[1] that makes ``provider`` serve market model ``model`` (0.0 for its declared model; None if it is not
        one of its cheaper substitutes): (k - 1/2) / n_substitutes for the k-th substitute."""
        if model == declared:
            return 0.0
        subs = self.substitutes[provider]
        if model not in subs:
            return None
        return (subs.index(model) + 0.5) / len(subs)

    def decode_inflation(self, a_infl: np.ndarray) -> np.ndarray:
        """iota = max(0, a[2]) * max_inflation."""
        return np.maximum(a_infl, 0.0) * self.max_inflation

    def inflation_action(self, iota: np.ndarray | float) -> np.ndarray:
        """The a[2] that reports (1 + iota) times the true output tokens (clipped to [0, 1])."""
        if self.max_inflation <= 0:
            return np.zeros_like(np.asarray(iota, dtype=np.float64))
        return np.clip(np.asarray(iota, dtype=np.float64) / self.max_inflation, 0.0, 1.0)

    def record(self) -> dict[str, Any]:
        """The layout as JSON-friendly data (slices as [start, stop]), for manifests."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            v = getattr(self, name)
            out[name] = (
                [v.start, v.stop] if isinstance(v, slice) else ([list(s) for s in v] if name == "substitutes" else v)
            )
        return out


@dataclass(frozen=True)
class StateLayout:
    """Named slices of the market's public global state (``env.state()``, ``BatchedMarket.state()``): what the platform
    makes public before the coming round, for centralized critics. Never a provider's private cost, menu, served model
    or bid (bids are sealed).

    Attributes (slices or indices into the state vector of length ``size``):
        query: the coming query's public features: its context, then every model's expected input and output tokens
            / L (the observation's first ``query.stop`` entries).
        mechanism: the mechanism's public state for the coming query.
        last_price: the last clearing price / value_scale (0 before any sale; unchanged by an unserved round).
        last_winner: one-hot of the last round's winner over the N providers (all zero before the first round and
            after an unserved one): the platform announces who served, as it announces the price.
        win_rate: every provider's share of the rounds won so far.
        time_left: fraction of the horizon left.
    The values are read off the providers' observations (:meth:`of`), so the state and the observations never
    disagree.
    """

    query: slice
    mechanism: slice
    last_price: int
    last_winner: slice
    win_rate: slice
    time_left: int
    size: int
    observation: ObservationLayout

    @staticmethod
    def build(obs: ObservationLayout) -> StateLayout:
        """The state layout of a market whose observations have layout ``obs``."""
        n_query = obs.expected_output_tokens.stop  # context, expected input tokens, expected output tokens
        n_mech = obs.mechanism.stop - obs.mechanism.start
        N = obs.n_agents
        mechanism = slice(n_query, n_query + n_mech)
        last_price = mechanism.stop
        last_winner = slice(last_price + 1, last_price + 1 + N)
        win_rate = slice(last_winner.stop, last_winner.stop + N)
        time_left = win_rate.stop
        return StateLayout(
            query=slice(0, n_query),
            mechanism=mechanism,
            last_price=last_price,
            last_winner=last_winner,
            win_rate=win_rate,
            time_left=time_left,
            size=time_left + 1,
            observation=obs,
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` [size] float32 bounds of the state: [0, 1] for the winner, win rates and time left,
        [0, inf) for the price, unbounded for the query's features and the mechanism's state."""
        low = np.full(self.size, -np.inf, dtype=np.float32)
        high = np.full(self.size, np.inf, dtype=np.float32)
        for part in (self.last_winner, self.win_rate, slice(self.time_left, self.time_left + 1)):
            low[part], high[part] = 0.0, 1.0
        low[self.last_price] = 0.0
        return low, high

    def of(self, observations: np.ndarray) -> np.ndarray:
        """The state [..., size] (float32, a new array) from every provider's observation [..., N, D]."""
        obs, lay = np.asarray(observations), self.observation
        out = np.empty(obs.shape[:-2] + (self.size,), dtype=np.float32)
        first = obs[..., 0, :]  # the public entries are the same in every provider's observation
        out[..., self.query] = first[..., self.query]
        out[..., self.mechanism] = first[..., lay.mechanism]
        out[..., self.last_price] = first[..., lay.last_price]
        out[..., self.last_winner] = obs[..., :, lay.last_won]
        out[..., self.win_rate] = obs[..., :, lay.win_rate]
        out[..., self.time_left] = first[..., lay.time_left]
        return out
