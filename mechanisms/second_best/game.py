"""A delegation game (ranked menus, an outcome sampler, b, eta, L) and the paper's toy game (MECHANISMS.md §6)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechanisms.second_best.behaviours import Menu
from mechanisms.second_best.samplers import GaussianSampler, Sampler
from mechanisms.second_best.schedule import delta_1


@dataclass
class Game:
    """A delegation game: ranked menus, the outcome sampler, reward scale b, providers' share eta, max tokens L."""

    menus: list[Menu]
    sampler: Sampler
    b: float
    eta: float
    L: int

    @property
    def K(self) -> int:
        return len(self.menus)

    def delta_1(self) -> float:
        """delta_1 over all models of all providers."""
        values = np.concatenate([self.b * m.score for m in self.menus])
        tokens = np.concatenate([m.tokens for m in self.menus])
        return delta_1(float(values.min()), float(tokens.max()), self.L)


# The toy game of the paper (MECHANISMS.md §6): per provider (mean score of good / mid / weak); every provider's
# models have the same mean output tokens and per-token prices (input = output price).
@dataclass(frozen=True)
class ToyGame:
    providers: tuple[tuple[str, tuple[float, float, float]], ...] = (
        ("p1", (0.9, 0.6, 0.5)),
        ("p2", (0.6, 0.5, 0.4)),
        ("p3", (0.7, 0.5, 0.4)),
    )
    tiers: tuple[str, str, str] = ("good", "mid", "weak")
    tokens: tuple[float, float, float] = (1000.0, 900.0, 800.0)
    prices: tuple[float, float, float] = (0.0005, 0.0004, 0.0003)
    T: int = 1_000_000
    epsilon: float = 0.3
    b: float = 5.0
    gamma: float = 2.0
    eta: float = 0.9
    L: int = 5000
    input_mu: float = 500.0
    input_sd: float = 50.0
    score_sd: float = 0.05
    tokens_sd: float = 50.0
    min_tokens: int = 50

    def model_names(self, i: int) -> list[str]:
        return [f"{self.providers[i][0]}-{tier}" for tier in self.tiers]


TOY = ToyGame()


def toy_game(toy: ToyGame = TOY) -> Game:
    """The paper's toy game as a :class:`Game` (Gaussian sampler, input tokens billed at model 0's input price)."""
    menus = [
        Menu.ranked(toy.model_names(i), scores, toy.tokens, toy.prices, toy.prices, toy.b, toy.input_mu)
        for i, (_, scores) in enumerate(toy.providers)
    ]
    sampler = GaussianSampler.for_menus(
        menus,
        toy.L,
        input_mu=toy.input_mu,
        input_sd=toy.input_sd,
        score_sd=toy.score_sd,
        tokens_sd=toy.tokens_sd,
        min_tokens=toy.min_tokens,
    )
    return Game(menus, sampler, toy.b, toy.eta, toy.L)
