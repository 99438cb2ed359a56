"""What a provider of seed 003's game can do (MECHANISMS.md §6): its ranked menu of models, the behaviours (which
model it runs, how many tokens it adds) and the paper's six strategies (one behaviour per phase)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from mechanisms.base import FloatArray

BEHAVIOURS = ("honest", "lie_model", "lie_token", "lie_all", "lie_ours", "lie_second_best")

# The paper's six strategies, behaviours in phases 1 / 2 / 3 (bonus and incentive) / 4, in the order of the authors'
# STRATEGY list (the published T1000000.0_eps0.3/<i>-<j>-<k> runs index it).
STRATEGIES: dict[str, tuple[str, str, str, str]] = {
    "ours": ("honest", "lie_ours", "lie_all", "lie_all"),
    "honest": ("honest", "honest", "honest", "honest"),
    "dishonest-model": ("honest", "lie_model", "lie_all", "lie_all"),
    "dishonest-length": ("honest", "lie_token", "lie_all", "lie_all"),
    "dishonest-all": ("lie_all", "lie_all", "lie_all", "lie_all"),
    "ours-honest-length": ("honest", "lie_second_best", "lie_all", "lie_all"),
}
STRATEGY_NAMES = tuple(STRATEGIES)


@dataclass(frozen=True)
class Menu:
    """One provider's models in rank order: model 0 is the one it claims and is billed as.

    Attributes:
        names: model names.
        score: mean score per model (in [0, 1]).
        tokens: mean output tokens per model.
        price_in, price_out: list price per input / output token of each model (money units).
        input_tokens: mean input tokens per query (the input-token terms of lie_ours and lie_second_best).
    """

    names: tuple[str, ...]
    score: FloatArray
    tokens: FloatArray
    price_in: FloatArray
    price_out: FloatArray
    input_tokens: float = 0.0

    @staticmethod
    def ranked(
        names: Sequence[str],
        score: Sequence[float],
        tokens: Sequence[float],
        price_in: Sequence[float],
        price_out: Sequence[float],
        b: float,
        input_tokens: float = 0.0,
        keep_first: bool = False,
    ) -> Menu:
        """The menu sorted by mu_u(m) = b * score - tokens * p_out (descending, stable); ``keep_first`` pins the given
        first model as model 0 (a market whose declared model is fixed) and ranks only the rest."""
        s, t = np.asarray(score, np.float64), np.asarray(tokens, np.float64)
        p_in, p_out = np.asarray(price_in, np.float64), np.asarray(price_out, np.float64)
        mu = b * s - t * p_out
        if keep_first:
            order = np.concatenate([[0], 1 + np.argsort(-mu[1:], kind="stable")])
        else:
            order = np.argsort(-mu, kind="stable")
        return Menu(tuple(names[k] for k in order), s[order], t[order], p_in[order], p_out[order], float(input_tokens))

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def p_max(self) -> float:
        """Output price of model 0 (what every reported output token is billed at)."""
        return float(self.price_out[0])

    @property
    def p_in_max(self) -> float:
        return float(self.price_in[0])

    def user_utility(self, b: float) -> FloatArray:
        """mu_u(m) = b * mean score - mean output tokens * p_out(m), the ranking key."""
        return b * self.score - self.tokens * self.price_out


class Behaviour(NamedTuple):
    """What a provider does on one query: the model it runs (menu index) and the output tokens it adds to the true
    count (reported = min(true + add, L); lie_token's add = L reports exactly L)."""

    model: int
    add: int


def resolve_behaviour(name: str, menu: Menu, u_second: float | None, b: float, L: int) -> Behaviour:
    """The model and padding of a behaviour of MECHANISMS.md §6 for a provider, given u' (None before it is known).

    - honest: model 0, true tokens. lie_model: the last-ranked model. lie_token: model 0, add L.
      lie_all: last-ranked model, add L.
    - lie_ours: among models with mu_u(m) >= u', add(m) = max(0, int((b score(m) - u' - n_in p_in(0)) / p_max -
      tokens(m))) and the model maximizing the expected margin p_max min(tokens(m) + add(m), L) - tokens(m) p_out(m)
      + n_in (p_in(0) - p_in(m)) (n_in = mean input tokens; the input terms vanish when input is not billed).
    - lie_second_best: among models with mu_u(m) >= u', the one maximizing p_max tokens(m) - tokens(m) p_out(m)
      + n_in (p_in(0) - p_in(m)), true tokens.
    For the last two, as in the authors' code, a model must beat a strictly positive margin to replace model 0.
    """
    last = menu.n - 1
    if name == "honest":
        return Behaviour(0, 0)
    if name == "lie_model":
        return Behaviour(last, 0)
    if name == "lie_token":
        return Behaviour(0, int(L))
    if name == "lie_all":
        return Behaviour(last, int(L))
    if name not in ("lie_ours", "lie_second_best"):
        raise ValueError(f"unknown behaviour {name!r}; choose one of {BEHAVIOURS}")
    if u_second is None:
        raise ValueError(f"behaviour {name!r} needs u' (the second-best utility), known only after exploration")
    mu = menu.user_utility(b)
    n_in = menu.input_tokens
    input_margin = n_in * (menu.p_in_max - menu.price_in)
    best, best_margin, best_add = 0, 0.0, 0
    for m in range(menu.n):
        if mu[m] < u_second:
            continue
        if name == "lie_ours":
            add = (b * menu.score[m] - u_second - n_in * menu.p_in_max) / menu.p_max - menu.tokens[m]
            add = max(0, int(add))
            value = menu.p_max * min(L, menu.tokens[m] + add) - menu.tokens[m] * menu.price_out[m] + input_margin[m]
        else:
            add = 0
            value = menu.p_max * menu.tokens[m] - menu.tokens[m] * menu.price_out[m] + input_margin[m]
        if value > best_margin:
            best, best_margin, best_add = m, value, add
    return Behaviour(best, best_add)
