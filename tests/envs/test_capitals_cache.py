"""The embedded ``capitals`` cache: calibrated exactly to seed 001's published counts, internally consistent, and
reproducible byte for byte from ``envs/data/make_capitals.py``."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest

from envs.data import make_capitals as mc
from envs.data.cache import ResponseCache, load_cache

CACHE_DIR = Path(mc.__file__).resolve().parent / "capitals"


@pytest.fixture(scope="module")
def cache() -> ResponseCache:
    return load_cache(CACHE_DIR, required_models=mc.MODELS)


def correct_matrix(cache: ResponseCache, field: str) -> np.ndarray:
    return cache.extra[f"correct_{field}"].astype(int)


def test_meta_describes_a_calibrated_cache(cache: ResponseCache) -> None:
    assert cache.provenance == "calibrated"
    assert cache.name == "capitals"
    assert cache.context_field == "continent"
    assert cache.meta["score_weights"] == {"capital": 10, "continent": 10, "latitude": 25, "longitude": 25}
    assert cache.meta["published_correct"] == mc.PUBLISHED_CORRECT
    assert cache.meta["n_published"] == 196
    assert cache.meta["seed_cost_per_token"] == {"llama-3.2-3b-instruct": 0.6, "llama-3.2-1b-instruct": 0.1}
    assert list(cache.models) == list(mc.MODELS)
    np.testing.assert_allclose(cache.price_in, 0.10)
    np.testing.assert_allclose(cache.price_out, 0.10)


def test_queries_are_the_196_countries_with_continent_context(cache: ResponseCache) -> None:
    assert cache.n_queries == cache.meta["n_published"] == 196
    assert set(cache.domains) == {"capitals"}
    assert set(cache.context["continent"]) == set(mc.CONTINENTS)
    _, groups = cache.groups()  # only the continent groups queries, not the ground-truth columns
    assert groups == sorted(f"capitals/{c}" for c in mc.CONTINENTS)
    names = [t.removeprefix("Provide the geographical data for: ") for t in cache.texts]
    assert all(t.startswith("Provide the geographical data for: ") for t in cache.texts)
    assert len(set(names)) == 196 and "France" in names and "Eswatini" in names
    lat = np.array(cache.context["latitude"], dtype=float)
    lon = np.array(cache.context["longitude"], dtype=float)
    assert np.all(np.abs(lat) <= 90) and np.all(np.abs(lon) <= 180)
    paris = cache.query_ids.index("FRA")
    assert cache.context["capital"][paris] == "Paris" and abs(lat[paris] - 48.86) < 0.05


@pytest.mark.parametrize("model", mc.MODELS)
@pytest.mark.parametrize("field", mc.FIELDS)
def test_correct_counts_equal_the_published_ones(cache: ResponseCache, model: str, field: str) -> None:
    scale = cache.n_queries / cache.meta["n_published"]
    expected = round(cache.meta["published_correct"][model][field] * scale)
    assert correct_matrix(cache, field)[:, cache.model_index(model)].sum() == expected


def test_score_is_the_weighted_field_correctness(cache: ResponseCache) -> None:
    weights = cache.meta["score_weights"]
    expected = sum(weights[f] * correct_matrix(cache, f) for f in mc.FIELDS) / sum(weights.values())
    np.testing.assert_allclose(cache.score, expected, atol=1e-12)


def test_answers_grade_as_their_correctness_under_the_seed_rules(cache: ResponseCache) -> None:
    for q in range(cache.n_queries):
        lat, lon = float(cache.context["latitude"][q]), float(cache.context["longitude"][q])
        truth = {
            "capital": cache.context["capital"][q],
            "continent": cache.context["continent"][q],
            "latitude": mc.format_coordinate(lat, "N", "S"),
            "longitude": mc.format_coordinate(lon, "E", "W"),
        }
        for m in range(len(cache.models)):
            answer = cache.extra["answer"][q, m]
            assert set(json.loads(answer)) == set(mc.JSON_KEYS.values())
            graded = mc.seed_grade(answer, truth)
            assert graded == {f: bool(correct_matrix(cache, f)[q, m]) for f in mc.FIELDS}, (cache.query_ids[q], answer)


def test_tokens_are_plausible_and_input_is_shared(cache: ResponseCache) -> None:
    # Same prompt for both models, so the same input count; the system prompt alone is ~80 Llama-3 tokens.
    np.testing.assert_array_equal(cache.input_tokens[:, 0], cache.input_tokens[:, 1])
    assert cache.input_tokens.min() >= 100 and cache.input_tokens.max() <= 160
    # A four-field JSON object plus <|eot_id|>.
    assert cache.output_tokens.min() >= 20 and cache.output_tokens.max() <= 60
    assert np.isnan(cache.latency_ms).all()


def test_models_fail_on_the_same_countries(cache: ResponseCache) -> None:
    big, small = cache.model_index("llama-3.2-3b-instruct"), cache.model_index("llama-3.2-1b-instruct")
    assert np.corrcoef(cache.score[:, big], cache.score[:, small])[0, 1] > 0.3
    assert cache.score[:, big].mean() > cache.score[:, small].mean()


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    pytest.importorskip("countryinfo")
    pytest.importorskip("tokenizers")
    try:
        importlib.metadata.distribution(mc.TOKENIZER_DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{mc.TOKENIZER_DIST} (the Llama-3.2 tokenizer) is not installed")
    seed = json.loads((CACHE_DIR / "meta.json").read_text(encoding="utf-8"))["calibration"]["seed"]
    assert mc.main(["--out", str(tmp_path), "--seed", str(seed)]) == 0
    for name in mc.CACHE_FILES:
        assert (tmp_path / name).read_bytes() == (CACHE_DIR / name).read_bytes(), name
