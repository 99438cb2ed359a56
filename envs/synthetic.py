"""Synthetic response caches generated in code (provenance ``generated``), by scenario ``cache`` name.

``uniform``: the textbook market of MECHANISMS.md §8: one query, one perfect model using exactly one token, so a
per-token cost c is a per-query cost c and every answer is worth value_scale.

``second_best_toy``: the toy game of seed 003 (Cao et al., MECHANISMS.md §6) as a canonical cache, so the market env
can play it: 3 providers x (good, mid, weak) models named ``p1-good`` ... ``p3-weak``. Per query, input tokens
round(|N(500, 50)|) shared by all models; per model, score clip(|N(mu, 0.05)|, 0, 1) and output tokens
clip(round(|N(mu_tok, 50)|), 50, L) with L = 5000 - the same draw functions (:func:`mechanisms.second_best.toy_draw`)
the batch simulator uses, from a fixed seed, so the cache is deterministic. List prices are stored in USD per 1M
tokens as the canonical format wants (0.0005 per token = 500 per 1M; the scenario's ``list_price_scale`` of 1e-6
turns them back into money per token).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from envs.data import ResponseCache
from mechanisms.second_best import TOY, toy_draw, toy_input_draw

SECOND_BEST_TOY = "second_best_toy"


def uniform_cache() -> ResponseCache:
    """The cache of the textbook uniform market (see the module docstring)."""
    one = np.ones((1, 1))
    return ResponseCache(
        name="uniform",
        provenance="generated",
        source="synthetic (MECHANISMS.md §8)",
        description="textbook reverse auction: every answer correct, one output token",
        models=["ideal"],
        price_in=np.zeros(1),
        price_out=np.ones(1) * 1e3,
        query_ids=["q0"],
        texts=["any query"],
        domains=["uniform"],
        context={},
        context_field=None,
        score=one.copy(),
        input_tokens=np.zeros((1, 1), dtype=np.int64),
        output_tokens=np.ones((1, 1), dtype=np.int64),
        latency_ms=np.full((1, 1), np.nan),
    )


def second_best_toy_cache(n_queries: int = 4096, seed: int = 0) -> ResponseCache:
    """The toy game of MECHANISMS.md §6 as a deterministic cache of ``n_queries`` queries."""
    rng = np.random.default_rng(seed)
    models, price, score_cols, token_cols = [], [], [], []
    tin = toy_input_draw(rng, n_queries, TOY.input_mu, TOY.input_sd).astype(np.int64)
    for i, (_, scores) in enumerate(TOY.providers):
        for name, mu, mu_tok, p in zip(TOY.model_names(i), scores, TOY.tokens, TOY.prices):
            s, tok = toy_draw(rng, mu, mu_tok, n_queries, TOY.L, TOY.score_sd, TOY.tokens_sd, TOY.min_tokens)
            models.append(name)
            price.append(p * 1e6)
            score_cols.append(s)
            token_cols.append(tok.astype(np.int64))
    M = len(models)
    return ResponseCache(
        name=SECOND_BEST_TOY,
        provenance="generated",
        source="synthetic: the toy game of Cao et al., arXiv 2511.00847 (MECHANISMS.md §6), seed "
        f"{seed}, {n_queries} queries",
        description="3 providers x (good, mid, weak) models; score clip(|N(mu, 0.05)|, 0, 1), output tokens "
        "clip(round(|N(mu_tok, 50)|), 50, 5000), input tokens round(|N(500, 50)|) per query",
        models=models,
        price_in=np.array(price),
        price_out=np.array(price),
        query_ids=[f"toy{q}" for q in range(n_queries)],
        texts=["toy query"] * n_queries,
        domains=["toy"] * n_queries,
        context={},
        context_field=None,
        score=np.stack(score_cols, axis=1),
        input_tokens=np.repeat(tin[:, None], M, axis=1),
        output_tokens=np.stack(token_cols, axis=1),
        latency_ms=np.full((n_queries, M), np.nan),
    )


GENERATED: dict[str, Callable[[], ResponseCache]] = {"uniform": uniform_cache, SECOND_BEST_TOY: second_best_toy_cache}

__all__ = ["GENERATED", "SECOND_BEST_TOY", "uniform_cache", "second_best_toy_cache"]
