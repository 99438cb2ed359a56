"""The one interface every mechanism implements, and the public facts it may use.

A mechanism is the platform's rulebook (MECHANISMS.md §1): each round it sees the providers' bids, their declared
models and the query's public context - never their costs, served models or true tokens - picks at most one winner
and names the payment; once the outcome is observed (score S and *reported* tokens) it updates its own state. It knows
nothing of learning agents: the market calls it, and policies only see its ``public_state``.

Every mechanism runs E independent markets at once: its state arrays carry a leading market axis, and ``allocate`` /
``update`` / ``public_state`` take and return arrays over markets ([E] or [E, N]). A single market is E = 1. Markets
never share state; the randomness a mechanism uses per round is the ``noise`` the market hands it (``noise_dim``
uniforms per market and round, drawn from each market's own stream whatever the actions), so a market's rounds do not
depend on which other markets run beside it, and profiles played on the same seeds see the same draws. A mechanism
whose only coin breaks ties of the winner's score (first and second price: a tie has probability zero with continuous
costs) draws it only when a market ties, from that market's own generator (``rngs``; :func:`argmax_drawing_ties`), so
that markets do not draw coins they almost never use; profiles then share their coins up to their first tie.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

Billing = Literal["auction", "list_price"]
# The array types of the game's interfaces: money, scores and tokens are float64, indices intp, masks bool.
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]
BoolArray = NDArray[np.bool_]
ScalarT = TypeVar("ScalarT", bound=np.generic)
NO_WINNER = -1


@dataclass(frozen=True)
class MarketInfo:
    """Public, static facts about a market, handed to a mechanism at reset.

    Attributes:
        n_providers: N.
        context_dim: length of the per-query context feature vector.
        n_groups: number of query groups (domain / subject); ``group`` indexes quality estimates.
        value_scale: money value of a perfect answer (V = value_scale * S).
        bid_scale: the money range of meaningful per-query bids (the action scaling).
        prior_quality: [N, n_groups] advertised mean score of each provider's declared model per group (public
            benchmark results), the starting point of quality estimates.
        cost_range: [N, 2] range of per-query costs a provider can have (the known prior of §4), in money: over
            every model on its menu and every type, at mean token counts.
        price_in, price_out: [N] list price per token of each provider's declared model (per-token billing).
        max_output_tokens: L, the cap on reported output tokens.
        horizon: T, rounds per episode.
    """

    n_providers: int
    context_dim: int
    n_groups: int
    value_scale: float
    bid_scale: float
    prior_quality: FloatArray
    cost_range: FloatArray
    price_in: FloatArray
    price_out: FloatArray
    max_output_tokens: int
    horizon: int


@dataclass
class Outcome:
    """What the platform observes after a round, per market ([E] arrays): the winner (``NO_WINNER`` where nobody was
    served), the score S of the answer, its input and *reported* output tokens, the payment, and the query's public
    context and group. Never the served model or the true output tokens."""

    winner: IntArray
    score: FloatArray
    input_tokens: IntArray
    reported_tokens: IntArray
    payment: FloatArray
    context: FloatArray
    group: IntArray

    @classmethod
    def one(
        cls,
        winner: int,
        score: float,
        input_tokens: int,
        reported_tokens: int,
        payment: float,
        context: FloatArray,
        group: int,
    ) -> Outcome:
        """The outcome of a single market's round (E = 1), from the arguments of :meth:`Mechanism.update_one`."""
        return cls(
            np.array([winner]),
            np.array([score]),
            np.array([input_tokens]),
            np.array([reported_tokens]),
            np.array([payment]),
            context[None],
            np.array([group]),
        )

    @property
    def served(self) -> BoolArray:
        """[E] bool: markets where someone was served."""
        served: BoolArray = self.winner != NO_WINNER
        return served


class Mechanism(ABC):
    """Allocation and payment rule of the platform, for E markets at once.

    Lifecycle per episode: ``reset(info, n_markets, rngs)``; then every round ``public_state`` for the coming query,
    ``allocate(...)`` and ``update(outcome)``.

    Class attributes:
        name: registry name.
        reference: where the rules are defined (``MECHANISMS.md §k``); orders the registry.
        billing: ``"auction"`` (the mechanism's payment is the price: of the query, or of its expected output tokens
            under the scenario's per-token billing, MECHANISMS.md §1) or ``"list_price"`` (list prices of the declared
            model times the *reported* tokens, §6; the mechanism names no price).
        uses_bids: False for mechanisms that delegate without an auction (second_best).
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    billing: ClassVar[Billing] = "auction"
    uses_bids: ClassVar[bool] = True
    # Rebuilt at reset or owned by the market (envs.snapshot.capture skips them): the public facts and the streams.
    TRANSIENT: ClassVar[tuple[str, ...]] = ("info", "rngs")

    def reset(self, info: MarketInfo, n_markets: int, rngs: list[np.random.Generator]) -> None:
        """Start a new episode in ``n_markets`` markets: forget all history. ``rngs`` (one per market) serve draws a
        mechanism makes once per episode, and coins it draws only when a market needs one (a tie); per-round
        randomness comes as ``noise``."""
        self.info = info
        self.n_markets = n_markets
        self.rngs = rngs
        self._markets = np.arange(n_markets)

    @property
    def noise_dim(self) -> int:
        """Uniforms in [0, 1) the mechanism consumes per market and round (the ``noise`` of ``allocate``)."""
        return 0

    @abstractmethod
    def allocate(
        self, bids: FloatArray, context: FloatArray, group: IntArray, noise: FloatArray
    ) -> tuple[IntArray, FloatArray]:
        """Pick each market's winner of this round and its payment.

        Args:
            bids: [E, N] per-query price asks (money units), non-negative.
            context: [E, d] the query's public context features.
            group: [E] the query's group index.
            noise: [E, noise_dim] uniforms of this round.

        Returns:
            ``(winner [E] int, payment [E] float)``: winner index or ``NO_WINNER`` (-1) for an unserved round;
            payment from the user to the winner (money units; 0 where unserved; ignored under per-token billing).
        """

    def update(self, outcome: Outcome) -> None:
        """Learn from the observed outcome of the round (score and *reported* tokens; never the served model)."""

    # One market with Python scalars: the PettingZoo env's per-step path. The defaults run the batched rule with
    # E = 1; a mechanism may override them with the same rule on scalars for speed (tests/envs/test_batched.py holds
    # both paths to identical rounds). To stay identical to the bit, a scalar rule does the batched rule's arithmetic
    # in the same order (a sum of floats term by term, as numpy's cumsum and column loops do), takes exp, log and
    # power from numpy's ufuncs (elementwise, whereas Python's math may round differently), and leaves reductions that
    # numpy or BLAS order their own way (matmul, einsum) to numpy on E = 1 arrays (rosa's LinUCB).

    def allocate_one(self, bids: list[float], context: FloatArray, group: int, noise: list[float]) -> tuple[int, float]:
        """:meth:`allocate` for a single market (E = 1): ``(winner, payment)`` as Python numbers."""
        w, p = self.allocate(np.array([bids]), context[None], np.array([group]), np.array([noise]))
        return int(w[0]), float(p[0])

    def public_state_one(self, context: FloatArray, group: int) -> list[float]:
        """:meth:`public_state` of a single market (E = 1): public_state_dim floats (read only: it may be the
        mechanism's own list)."""
        state: list[float] = self.public_state(context[None], np.array([group]))[0].tolist()
        return state

    def update_one(
        self,
        winner: int,
        score: float,
        input_tokens: int,
        reported_tokens: int,
        payment: float,
        context: FloatArray,
        group: int,
    ) -> None:
        """:meth:`update` for a single market (E = 1)."""
        self.update(Outcome.one(winner, score, input_tokens, reported_tokens, payment, context, group))

    @property
    def public_state_dim(self) -> int:
        """Length of :meth:`public_state` (fixed for an episode's N)."""
        return 0

    def public_state(self, context: FloatArray, group: IntArray) -> FloatArray:
        """[E, public_state_dim] public information providers see before bidding on the next query."""
        return np.zeros((context.shape[0], 0))

    def diagnostics(self) -> dict[str, FloatArray]:
        """Mechanism-specific running statistics per market ([E] arrays), for infos and TensorBoard
        (``mechanism/<key>``)."""
        return {}

    @classmethod
    def degenerate(cls, diagnostics: dict[str, float]) -> str | None:
        """Why the mechanism's rules do not really run in a market with these (episode-mean) diagnostics, or None: a
        verdict is not judged where the mechanism is degenerate (second_best's schedule at a short horizon)."""
        return None

    def diagnostics_one(self) -> dict[str, float]:
        """:meth:`diagnostics` of a single market (E = 1), as floats."""
        return {k: float(v[0]) for k, v in self.diagnostics().items()}


@functools.lru_cache(maxsize=64)
def row_offsets(n_rows: int, n_cols: int) -> IntArray:
    """[n_rows] the start of every row of a flattened [n_rows, n_cols] array (read-only, cached)."""
    out = np.arange(n_rows) * n_cols
    out.flags.writeable = False
    return out


def pick(x: NDArray[ScalarT], index: IntArray) -> NDArray[ScalarT]:
    """x[e, index[e]] for every row e of a contiguous array x [E, N, ...]: one flat ``take``, several times faster
    than fancy indexing ``x[arange(E), index]``."""
    E, N = x.shape[:2]
    return x.reshape(E * N, *x.shape[2:]).take(row_offsets(E, N) + index, axis=0)


# Reductions over the short provider axis run column by column: numpy's row reductions over a last axis of two or
# three entries are some fifty times slower than elementwise operations on the columns.


def row_max(x: NDArray[Any]) -> NDArray[Any]:
    """[E] the largest entry of each row of ``x`` [E, N]."""
    if x.dtype == bool:
        out = np.array(x[:, 0], dtype=np.result_type(x.dtype, np.float64))
        first = 1
    else:  # the first two columns into a new array at once (copying the first column out costs a pass)
        out = np.maximum(x[:, 0], x[:, 1]) if x.shape[1] > 1 else x[:, 0].copy()
        first = 2
    for i in range(first, x.shape[1]):
        np.maximum(out, x[:, i], out=out)
    return out


def row_min(x: NDArray[Any]) -> NDArray[Any]:
    """[E] the smallest entry of each row of ``x`` [E, N]."""
    return -row_max(-x)


def row_any(x: BoolArray) -> BoolArray:
    """[E] whether any entry of each row of the boolean ``x`` [E, N] is set."""
    out = x[:, 0].copy()
    for i in range(1, x.shape[1]):
        out |= x[:, i]
    return out


def argmax_random_ties(values: FloatArray, noise: FloatArray) -> IntArray:
    """[E] index of each row's maximum of ``values`` [E, N], ties broken uniformly at random by ``noise`` [E, N]
    (the tied entry with the largest noise wins; noise in [0, 1)). Column by column, on strided views (copying the
    columns out first costs more than it saves)."""
    if values.shape[1] == 2:
        return _argmax_random_ties_pair(values, noise)
    best = row_max(values)
    top = np.where(values[:, 0] == best, noise[:, 0], -1.0)
    winner = np.zeros(values.shape[0], dtype=np.int64)
    last = values.shape[1] - 1
    for i in range(1, last + 1):
        key = np.where(values[:, i] == best, noise[:, i], -1.0)
        winner = np.where(key > top, i, winner)
        if i < last:
            np.maximum(top, key, out=top)
    return winner


def _argmax_random_ties_pair(values: FloatArray, noise: FloatArray) -> IntArray:
    """:func:`argmax_random_ties` of two columns: the second wins where it is larger, or equal with larger noise
    (the general rule's outcome, NaN rows included: they go to the first; a fraction of its passes)."""
    second = values[:, 1] > values[:, 0]
    tie = values[:, 1] == values[:, 0]
    if tie.any():  # ties are rare: the noise is compared only when there is one
        tie &= noise[:, 1] > noise[:, 0]
        second |= tie
    return second.astype(np.int64)


def argmax_drawing_ties(values: FloatArray, rngs: list[np.random.Generator]) -> IntArray:
    """:func:`argmax_random_ties` with the noise drawn only where a row's maximum is tied: row e then draws its N
    uniforms from ``rngs[e]``; the other rows draw nothing and go to their maximum (NaN rows to the first entry)."""
    E, N = values.shape
    if N == 2:
        tie = values[:, 1] == values[:, 0]
        if not tie.any():  # the common case: the larger wins (NaN rows the first), as the rule gives, without noise
            return (values[:, 1] > values[:, 0]).astype(np.int64)
    else:
        best = row_max(values)
        count = np.zeros(E, dtype=np.int64)
        for i in range(N):
            count += values[:, i] == best
        tie = count > 1
    noise = np.zeros((E, N))  # a unique maximum wins whatever its noise (> -1)
    for e in np.flatnonzero(tie):  # rare: one market's generator each
        noise[e] = rngs[e].random(N)
    return argmax_random_ties(values, noise)


def argmax_drawing_ties_one(values: list[float], rng: np.random.Generator) -> int:
    """:func:`argmax_drawing_ties` of one market, on a Python list (the same draws)."""
    best = max(values)
    if values.count(best) == 1:
        return values.index(best)
    return argmax_random_ties_one(values, rng.random(len(values)).tolist())


def argmax_random_ties_one(values: list[float], noise: list[float]) -> int:
    """:func:`argmax_random_ties` of one market, on Python lists (the tied entry with the largest noise, the first of
    those on a tie in the noise too)."""
    best = max(values)
    if values.count(best) == 1:  # no tie, the common case: the loop below would pick the same entry
        return values.index(best)
    w, top = -1, -1.0
    for i, v in enumerate(values):
        if v == best and noise[i] > top:
            w, top = i, noise[i]
    return w


def best_other(values: FloatArray, winner: IntArray) -> FloatArray:
    """[E] the largest entry of each row of ``values`` [E, N] other than column ``winner`` [E] (-inf when N = 1)."""
    E, N = values.shape
    if N == 1:
        return np.full(E, -np.inf)
    if N == 2:  # the other column (what the masked maximum below gives, NaN and -inf included)
        return pick(values, 1 - winner)
    masked = np.array(values, dtype=np.float64)
    masked.reshape(-1)[row_offsets(E, N) + winner] = -np.inf  # index assignment: several times faster than put
    return row_max(masked)
