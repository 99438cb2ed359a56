"""The one interface every mechanism implements, and the public facts it may use.

A mechanism is the platform's rulebook (MECHANISMS.md §1): each round it sees the providers' bids, their declared
models and the query's public context - never their costs, served models or true tokens - picks at most one winner
and names the payment; once the outcome is observed (score S and *reported* tokens) it updates its own state. It knows
nothing of learning agents: the market env calls it, and policies only see its ``public_state``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

Billing = Literal["per_query", "per_token"]
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
    prior_quality: np.ndarray
    cost_range: np.ndarray
    price_in: np.ndarray
    price_out: np.ndarray
    max_output_tokens: int
    horizon: int


class Mechanism(ABC):
    """Allocation and payment rule of the platform.

    Lifecycle per episode: ``reset(info, rng)``; then every round ``allocate(...)`` followed by
    ``update(...)`` with the observed outcome. ``public_state`` is what providers may observe before bidding.

    Class attributes:
        name: registry name.
        reference: where the rules are defined (``MECHANISMS.md §k``); orders the registry.
        billing: ``"per_query"`` (the mechanism's payment is the price of the query) or ``"per_token"`` (the market
            bills list prices of the declared model times the *reported* tokens, MECHANISMS.md §1, and the
            mechanism's ``payment`` is ignored).
        uses_bids: False for mechanisms that delegate without an auction (second_best).
    """

    name: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    billing: ClassVar[Billing] = "per_query"
    uses_bids: ClassVar[bool] = True

    def reset(self, info: MarketInfo, rng: np.random.Generator) -> None:
        """Start a new episode: forget all history."""
        self.info = info
        self.rng = rng

    @abstractmethod
    def allocate(self, bids: np.ndarray, context: np.ndarray, group: int) -> tuple[int, float]:
        """Pick the winner of this round and its payment.

        Args:
            bids: [N] per-query price asks (money units), non-negative.
            context: the query's public context features.
            group: the query's group index.

        Returns:
            ``(winner, payment)``: winner index or ``NO_WINNER`` (-1) for an unserved round; payment from the user
            to the winner (money units; ignored under per-token billing).
        """

    def update(self, winner: int, score: float, input_tokens: int, reported_output_tokens: int,
               payment: float, context: np.ndarray, group: int) -> None:
        """Learn from the observed outcome of the round (score and *reported* tokens; never the served model)."""

    @property
    def public_state_dim(self) -> int:
        """Length of :meth:`public_state` (fixed for an episode's N)."""
        return 0

    def public_state(self, context: np.ndarray, group: int) -> np.ndarray:
        """Public information providers see before bidding on the next query (fixed length)."""
        return np.zeros(0)

    def diagnostics(self) -> dict[str, float]:
        """Mechanism-specific running statistics for infos and TensorBoard (``mechanism/<key>``)."""
        return {}
