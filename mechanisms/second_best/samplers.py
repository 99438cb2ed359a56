"""Per-query outcomes of a provider's model for the batch simulator: the paper's Gaussian toy distributions, or
queries drawn from a response cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mechanisms.base import FloatArray
from mechanisms.second_best.behaviours import Menu


class Sampler(Protocol):
    """Per-query outcomes of a provider's model: ``draw(provider, model, n, rng) -> (score, input_tokens,
    output_tokens)``, arrays of length n (``model`` indexes the provider's ranked :class:`Menu`)."""

    def draw(
        self, provider: int, model: int, n: int, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, FloatArray]: ...


def toy_draw(
    rng: np.random.Generator,
    score_mu: float,
    tokens_mu: float,
    n: int,
    L: int,
    score_sd: float = 0.05,
    tokens_sd: float = 50.0,
    min_tokens: int = 50,
) -> tuple[FloatArray, FloatArray]:
    """The toy game's per-model draws: score ~ clip(|N(mu, sd)|, 0, 1), output tokens ~ clip(round(|N(mu_tok,
    sd_tok)|), 50, L)."""
    score = np.clip(np.abs(rng.normal(score_mu, score_sd, n)), 0.0, 1.0)
    tokens = np.clip(np.rint(np.abs(rng.normal(tokens_mu, tokens_sd, n))), min_tokens, L)
    return score, tokens


def toy_input_draw(rng: np.random.Generator, n: int, mu: float = 500.0, sd: float = 50.0) -> FloatArray:
    """The toy game's input tokens per query: round(|N(500, 50)|)."""
    return np.rint(np.abs(rng.normal(mu, sd, n)))


@dataclass
class GaussianSampler:
    """The paper's toy-game distributions (MECHANISMS.md §6) for ranked menus (``score_mu[i][m]``,
    ``tokens_mu[i][m]`` in each provider's rank order)."""

    score_mu: Sequence[Sequence[float]] | Sequence[FloatArray]
    tokens_mu: Sequence[Sequence[float]] | Sequence[FloatArray]
    L: int
    input_mu: float = 500.0
    input_sd: float = 50.0
    score_sd: float = 0.05
    tokens_sd: float = 50.0
    min_tokens: int = 50

    @staticmethod
    def for_menus(menus: Sequence[Menu], L: int, **kw: Any) -> GaussianSampler:
        return GaussianSampler([m.score for m in menus], [m.tokens for m in menus], L, **kw)

    def draw(
        self, provider: int, model: int, n: int, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        tin = toy_input_draw(rng, n, self.input_mu, self.input_sd)
        score, tout = toy_draw(
            rng,
            self.score_mu[provider][model],
            self.tokens_mu[provider][model],
            n,
            self.L,
            self.score_sd,
            self.tokens_sd,
            self.min_tokens,
        )
        return score, tin, tout


@dataclass
class CacheSampler:
    """Queries drawn uniformly with replacement from a response cache: ``score``, ``input_tokens``, ``output_tokens``
    are [Q, M] arrays and ``columns[i][m]`` is the column of provider i's m-th ranked model."""

    score: FloatArray
    input_tokens: FloatArray
    output_tokens: FloatArray
    columns: Sequence[Sequence[int]]

    def draw(
        self, provider: int, model: int, n: int, rng: np.random.Generator
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        q = rng.integers(0, self.score.shape[0], n)
        c = self.columns[provider][model]
        return (
            self.score[q, c].astype(np.float64),
            self.input_tokens[q, c].astype(np.float64),
            self.output_tokens[q, c].astype(np.float64),
        )
