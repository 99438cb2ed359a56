"""The llama-cascades importer: safe unpickling, strict validation, and the real data against its published table.

Tests that take the ``llama_dir`` fixture (``tests/conftest.py``) read the llama-cascades folder (real results of five
Llama models on four benchmarks, not part of this repository: ``$LLM_ARENA_LLAMA_DIR`` or ``shared/data/llama-cascades``
beside the repo) and are skipped when it is absent. The rest build small synthetic pickles in a temporary folder.
"""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from envs.data.__main__ import main
from envs.data.cache import CacheError, load_cache
from envs.data.llama_cascades import (
    ENV_VAR,
    MODELS,
    InertChainResponse,
    llama_cache_dir,
    load_llama_cascades,
    safe_load,
)

# The published table (README of the data folder; Zellinger & Thomson, arXiv 2501.09345): questions and accuracy of
# llama3.2-1b / 3.2-3b / 3.1-8b / 3.1-70b / 3.1-405b per benchmark and split.
PUBLISHED = {
    ("mmlu", "test"): (1531, (0.425, 0.572, 0.634, 0.815, 0.852)),
    ("mmlu", "train"): (285, (0.411, 0.579, 0.625, 0.786, 0.814)),
    ("medmcqa", "test"): (1000, (0.345, 0.531, 0.518, 0.726, 0.757)),
    ("medmcqa", "train"): (300, (0.423, 0.663, 0.680, 0.897, 0.913)),
    ("triviaqa", "test"): (1000, (0.372, 0.633, 0.787, 0.928, 0.949)),
    ("triviaqa", "train"): (300, (0.323, 0.620, 0.803, 0.943, 0.970)),
    ("truthfulqa", "test"): (517, (0.358, 0.433, 0.503, 0.594, 0.692)),
    ("truthfulqa", "train"): (300, (0.383, 0.390, 0.520, 0.623, 0.720)),
}


# ----------------------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_cache(llama_dir):
    return load_llama_cascades(llama_dir)


def test_real_accuracy_and_counts_match_published_table(real_cache) -> None:
    assert real_cache.models == list(MODELS)
    assert real_cache.n_queries == sum(n for n, _ in PUBLISHED.values())
    domains = np.array(real_cache.domains)
    splits = np.array(real_cache.context["split"])
    for (bench, split), (n, accuracy) in PUBLISHED.items():
        rows = real_cache.score[(domains == bench) & (splits == split)]
        assert len(rows) == n, (bench, split)
        for model, expected, got in zip(MODELS, accuracy, rows.mean(axis=0)):
            assert abs(got - expected) <= 0.0006, (bench, split, model, got, expected)


def test_real_cache_shape_and_fields(real_cache) -> None:
    assert real_cache.provenance == "real" and real_cache.name == "llama-cascades"
    assert "2501.09345" in real_cache.source and "0d9c8610de48960420ec2352855555a8c1e2c52f" in real_cache.source
    assert list(real_cache.price_in) == [0.10, 0.10, 0.20, 0.90, 3.00]
    assert list(real_cache.price_out) == list(real_cache.price_in)
    assert set(np.unique(real_cache.score)) == {0.0, 1.0}
    assert (real_cache.input_tokens > 0).all() and (real_cache.output_tokens >= 0).all()
    assert np.isfinite(real_cache.latency_ms).all()
    assert real_cache.context_field == "subject" and list(real_cache.context) == ["subject", "split"]
    assert real_cache.query_ids[0] == "mmlu/test/0" and len(set(real_cache.query_ids)) == real_cache.n_queries
    subjects = dict(zip(real_cache.query_ids, real_cache.context["subject"]))
    assert subjects["mmlu/test/0"] == "abstract_algebra" and subjects["triviaqa/train/5"] == "trivia"
    texts = dict(zip(real_cache.query_ids, real_cache.texts))
    assert not texts["triviaqa/test/0"].startswith("Correctly answer") and "Answer:" not in texts["triviaqa/test/0"]
    assert real_cache.extra["answer"].shape == real_cache.score.shape
    _, groups = real_cache.groups()
    assert "mmlu/abstract_algebra" in groups and "triviaqa/trivia" in groups


def test_selection_of_benchmarks_and_splits(llama_dir) -> None:
    cache = load_llama_cascades(llama_dir, benchmarks=["triviaqa"], splits=("train",))
    assert cache.n_queries == 300 and set(cache.domains) == {"triviaqa"}
    assert cache.meta["benchmarks"] == ["triviaqa"] and cache.meta["splits"] == ["train"]
    with pytest.raises(CacheError, match=r"missing gsm8k_llama_test\.pkl"):
        load_llama_cascades(llama_dir, benchmarks=["gsm8k"])
    with pytest.raises(CacheError, match=r"mmlu_llama_dev\.pkl"):
        load_llama_cascades(llama_dir, benchmarks=["mmlu"], splits=("dev",))


def test_convert_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str], llama_dir) -> None:
    out = tmp_path / "mmlu"
    assert main(["convert-llama", str(llama_dir), str(out), "--benchmarks", "mmlu", "--splits", "train,test"]) == 0
    printed = capsys.readouterr().out
    assert "llama3.1-405b" in printed and "accuracy" in printed
    direct = load_llama_cascades(llama_dir, benchmarks=["mmlu"], splits=("train", "test"))
    loaded = load_cache(out, required_models=MODELS)
    assert loaded.meta == direct.meta
    for attr in (
        "name",
        "provenance",
        "source",
        "description",
        "models",
        "query_ids",
        "texts",
        "domains",
        "context",
        "context_field",
    ):
        assert getattr(loaded, attr) == getattr(direct, attr), attr
    for attr in ("price_in", "price_out", "score", "input_tokens", "output_tokens", "latency_ms"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(direct, attr), err_msg=attr)
    assert loaded.extra.keys() == direct.extra.keys() == {"answer"}
    np.testing.assert_array_equal(loaded.extra["answer"], direct.extra["answer"])

    assert main(["validate", str(out)]) == 0
    assert "1816 queries" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------- unpickling safety


class _Pwn:
    """Unpickling this would run a shell command."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    (tmp_path / "mmlu_llama_test.pkl").write_bytes(pickle.dumps({"user_prompts": [_Pwn(f"touch {pwned}")]}))
    with pytest.raises(CacheError) as info:
        load_llama_cascades(tmp_path)
    message = str(info.value)
    assert "mmlu_llama_test.pkl" in message
    assert "posix.system" in message or "os.system" in message or "nt.system" in message
    assert not pwned.exists()


@pytest.mark.parametrize("payload", [eval, getattr, __import__, Path, pickle.loads])
def test_other_globals_are_refused(tmp_path: Path, payload) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(CacheError, match=r"x\.pkl: refused to load global"):
        safe_load(path)


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    class Persisting(pickle.Pickler):
        def persistent_id(self, obj):
            return "ref" if obj == "secret" else None

    path = tmp_path / "p.pkl"
    with path.open("wb") as fh:
        Persisting(fh).dump(["secret"])
    with pytest.raises(CacheError, match=r"p\.pkl: refused persistent id"):
        safe_load(path)


def test_numpy_scalars_dtypes_and_chain_responses_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hcma_chain = types.ModuleType("hcma.chain")

    class ChainResponse:
        def __init__(self) -> None:
            self.answer, self.conf = "A", np.float64(-0.5)

    ChainResponse.__module__, ChainResponse.__qualname__ = "hcma.chain", "ChainResponse"
    hcma_chain.ChainResponse = ChainResponse
    monkeypatch.setitem(sys.modules, "hcma", types.ModuleType("hcma"))
    monkeypatch.setitem(sys.modules, "hcma.chain", hcma_chain)
    path = tmp_path / "ok.pkl"
    path.write_bytes(
        pickle.dumps(
            {"x": np.float64(1.5), "k": np.int32(7), "d": np.dtype("f8"), "chain": [ChainResponse(), ChainResponse()]}
        )
    )
    monkeypatch.delitem(sys.modules, "hcma.chain")
    obj = safe_load(path)
    assert obj["x"] == 1.5 and isinstance(obj["x"], np.float64) and obj["k"] == 7 and obj["d"] == np.dtype("f8")
    assert all(isinstance(c, InertChainResponse) for c in obj["chain"])


@pytest.mark.parametrize("content", [b"", b"\x80\x04not a pickle", pickle.dumps(list(range(100)))[:-5]])
def test_broken_pickles_name_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.pkl"
    path.write_bytes(content)
    with pytest.raises(CacheError, match=r"broken\.pkl"):
        safe_load(path)


def test_missing_pickle_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"missing\.pkl: cannot read"):
        safe_load(tmp_path / "missing.pkl")


# ---------------------------------------------------------------------------------------- validation of the pickles


def _results(n: int, correct=lambda i, k: (i + k) % 2 == 0) -> dict:
    """A synthetic, valid results dict of ``n`` questions in the llama-cascades layout; ``correct(i, k)`` says whether
    model ``k`` answered question ``i`` right."""
    per_model = lambda f: {m: [f(i, k) for i in range(n)] for k, m in enumerate(MODELS)}  # noqa: E731
    return {
        "chain": "Chain(...)",
        "system_prompts": ["Answer with A, B, C or D."] * n,
        "user_prompts": [f"Question: q{i}?\n\nAnswer: " for i in range(n)],
        "model_correctness": per_model(correct),
        "model_answers": per_model(lambda i, k: "ABCD"[(i + k) % 4]),
        "model_tokens": per_model(lambda i, k: {"in": 100 + i, "out": 1 + k}),
        "model_costs": per_model(lambda i, k: 1e-5),
        "model_latencies": per_model(lambda i, k: 100.0 + i + k),
        "raw_confidences": per_model(lambda i, k: np.float64(-0.1 * i)),
        "eval_audits": per_model(lambda i, k: "N/A"),
    }


def _published_like(bench: str, split: str) -> dict:
    """Synthetic results with the published table's question count and (to its rounding) accuracies."""
    n, accuracy = PUBLISHED[bench, split]
    return _results(n, lambda i, k: i < round(accuracy[k] * n))


def _questions(n: int) -> list[dict]:
    return [
        {"question": f"q{i}?", "subject": "algebra" if i % 2 else "anatomy", "choices": list("wxyz"), "answer": 0}
        for i in range(n)
    ]


def _write_folder(
    folder: Path, results: dict, questions: list[dict] | None, bench: str = "toybench", split: str = "test"
) -> Path:
    (folder / f"{bench}_llama_{split}.pkl").write_bytes(pickle.dumps(results))
    if questions is not None:
        (folder / f"{bench}_questions_{split}.pkl").write_bytes(pickle.dumps(questions))
    return folder


def test_synthetic_folder_loads(tmp_path: Path) -> None:
    cache = load_llama_cascades(_write_folder(tmp_path, _results(4), _questions(4)), splits=("test",))
    assert cache.query_ids == ["toybench/test/0", "toybench/test/1", "toybench/test/2", "toybench/test/3"]
    assert cache.texts == ["q0?", "q1?", "q2?", "q3?"] and cache.domains == ["toybench"] * 4
    assert cache.context == {"subject": ["toybench"] * 4, "split": ["test"] * 4}
    assert cache.score[:, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert cache.input_tokens[:, 0].tolist() == [100, 101, 102, 103]
    assert cache.output_tokens[0].tolist() == [1, 2, 3, 4, 5]
    assert cache.extra["answer"][0].tolist() == ["A", "B", "C", "D", "A"]


def test_unknown_benchmarks_of_the_layout_load(tmp_path: Path) -> None:
    """gsm8k and xsum are not in the published table: any benchmark in the layout loads, with or without questions,
    next to known ones, and converts to a canonical cache that loads back the same."""
    _write_folder(
        tmp_path, _results(3), [{"question": f"Problem {i}", "answer": "#### 4"} for i in range(3)], bench="gsm8k"
    )
    results = _results(2)
    results["user_prompts"][1] = "Summarize the given source document: ..."
    _write_folder(tmp_path, results, None, bench="xsum")
    _write_folder(tmp_path, _published_like("mmlu", "train"), _questions(285), bench="mmlu", split="train")
    cache = load_llama_cascades(tmp_path, benchmarks=["gsm8k", "xsum"], splits="test")
    assert cache.query_ids == ["gsm8k/test/0", "gsm8k/test/1", "gsm8k/test/2", "xsum/test/0", "xsum/test/1"]
    assert cache.texts == ["Problem 0", "Problem 1", "Problem 2", "q0?", "Summarize the given source document: ..."]
    assert cache.context["subject"] == ["gsm8k"] * 3 + ["xsum"] * 2
    assert cache.meta["benchmarks"] == ["gsm8k", "xsum"] and "gsm8k" in cache.description
    # The default selection is every benchmark in the folder (known ones first), each with every split asked for.
    with pytest.raises(CacheError, match=r"missing gsm8k_llama_train\.pkl"):
        load_llama_cascades(tmp_path, splits="train")
    out = tmp_path / "canonical"
    assert main(["convert-llama", str(tmp_path), str(out), "--benchmarks", "gsm8k,xsum", "--splits", "test"]) == 0
    loaded = load_cache(out, required_models=MODELS)
    assert loaded.query_ids == cache.query_ids and loaded.texts == cache.texts
    np.testing.assert_array_equal(loaded.score, cache.score)


def test_known_benchmarks_take_subjects_and_are_checked_against_the_published_table(tmp_path: Path) -> None:
    _write_folder(tmp_path, _published_like("mmlu", "train"), _questions(285), bench="mmlu", split="train")
    cache = load_llama_cascades(tmp_path, splits="train")
    assert cache.context["subject"][:2] == ["anatomy", "algebra"] and cache.n_queries == 285
    np.testing.assert_allclose(cache.score.mean(axis=0), PUBLISHED["mmlu", "train"][1], atol=0.0006)

    wrong = _published_like("mmlu", "train")
    wrong["model_correctness"]["llama3.1-70b"][-1] = True  # one more right answer: 225/285 = .789, published .786
    _write_folder(tmp_path, wrong, _questions(285), bench="mmlu", split="train")
    with pytest.raises(
        CacheError,
        match=r"mmlu_llama_train\.pkl: field 'model_correctness', model 'llama3\.1-70b': "
        r"accuracy 0\.7895, the published table says 0\.786.*mmlu-rerun_llama_train",
    ):
        load_llama_cascades(tmp_path, splits="train")
    _write_folder(tmp_path, _results(4), _questions(4), bench="mmlu", split="train")
    with pytest.raises(
        CacheError,
        match=r"mmlu_llama_train\.pkl: has 4 questions, the published mmlu train split "
        r"has 285",
    ):
        load_llama_cascades(tmp_path, splits="train")
    # The same file under another name is another benchmark, loaded with the structural checks only.
    (tmp_path / "mmlu_llama_train.pkl").rename(tmp_path / "mmlu-rerun_llama_train.pkl")
    (tmp_path / "mmlu_questions_train.pkl").rename(tmp_path / "mmlu-rerun_questions_train.pkl")
    assert load_llama_cascades(tmp_path, splits="train").n_queries == 4


def test_triviaqa_question_is_cut_from_the_prompt(tmp_path: Path) -> None:
    results = _published_like("triviaqa", "train")
    results["user_prompts"][2] = "A prompt in another template"
    _write_folder(tmp_path, results, None, bench="triviaqa", split="train")
    cache = load_llama_cascades(tmp_path, splits="train")
    assert cache.texts[:3] == ["q0?", "q1?", "A prompt in another template"]
    assert cache.context["subject"] == ["trivia"] * 300


def _set(field: str, model: str, index: int, value):
    """A corruption that puts ``value`` at ``results[field][model][index]``."""
    return lambda r: r[field][model].__setitem__(index, value)


BAD_RESULTS = {
    "score out of range": (
        _set("model_correctness", "llama3.1-8b", 2, 1.5),
        r"field 'model_correctness', model 'llama3.1-8b', index 2",
    ),
    "score not a bool": (
        _set("model_correctness", "llama3.1-8b", 1, "yes"),
        r"field 'model_correctness', model 'llama3.1-8b', index 1",
    ),
    "negative tokens": (
        _set("model_tokens", "llama3.2-1b", 3, {"in": -1, "out": 1}),
        r"field 'model_tokens', model 'llama3.2-1b', index 3, key 'in'",
    ),
    "fractional tokens": (
        _set("model_tokens", "llama3.2-3b", 0, {"in": 5, "out": 1.5}),
        r"field 'model_tokens', model 'llama3.2-3b', index 0, key 'out'",
    ),
    "token key missing": (
        _set("model_tokens", "llama3.2-3b", 0, {"in": 5}),
        r"field 'model_tokens', model 'llama3.2-3b', index 0: missing key 'out'",
    ),
    "bad latency": (
        _set("model_latencies", "llama3.1-70b", 1, float("nan")),
        r"field 'model_latencies', model 'llama3.1-70b', index 1",
    ),
    "answer not a string": (
        _set("model_answers", "llama3.1-405b", 0, None),
        r"field 'model_answers', model 'llama3.1-405b', index 0",
    ),
    "misaligned list": (
        lambda r: r["model_latencies"]["llama3.1-8b"].pop(),
        r"field 'model_latencies', model 'llama3.1-8b': has 3 entries, expected 4",
    ),
    "model missing": (
        lambda r: r["model_answers"].pop("llama3.1-405b"),
        r"field 'model_answers': no results for model\(s\) \['llama3.1-405b'\]",
    ),
    "unknown model": (
        lambda r: r["model_tokens"].update({"gpt-x": []}),
        r"field 'model_tokens': unknown model\(s\) \['gpt-x'\]",
    ),
    "field missing": (lambda r: r.pop("model_correctness"), r"missing field 'model_correctness'"),
    "prompt not a string": (lambda r: r["user_prompts"].__setitem__(2, 3), r"field 'user_prompts', index 2"),
}


@pytest.mark.parametrize("case", list(BAD_RESULTS))
def test_malformed_results_name_file_field_and_index(tmp_path: Path, case: str) -> None:
    corrupt, pattern = BAD_RESULTS[case]
    results = _results(4)
    corrupt(results)
    _write_folder(tmp_path, results, _questions(4))
    with pytest.raises(CacheError, match=pattern) as info:
        load_llama_cascades(tmp_path, splits=("test",))
    assert "toybench_llama_test.pkl" in str(info.value)


def test_questions_file_must_match_the_results(tmp_path: Path) -> None:
    _write_folder(tmp_path, _results(4), _questions(3))
    with pytest.raises(
        CacheError,
        match=r"toybench_questions_test\.pkl: has 3 questions, but "
        r"toybench_llama_test\.pkl has 4",
    ):
        load_llama_cascades(tmp_path, splits=("test",))
    results = _published_like("mmlu", "train")
    questions = _questions(285)
    del questions[2]["subject"]
    (tmp_path / "toybench_llama_test.pkl").unlink()
    _write_folder(tmp_path, results, questions, bench="mmlu", split="train")
    with pytest.raises(CacheError, match=r"mmlu_questions_train\.pkl: .*missing field 'subject'"):
        load_llama_cascades(tmp_path, splits=("train",))
    (tmp_path / "mmlu_questions_train.pkl").unlink()
    with pytest.raises(CacheError, match=r"missing mmlu_questions_train\.pkl"):
        load_llama_cascades(tmp_path, splits=("train",))


def test_folder_without_results_files(tmp_path: Path) -> None:
    with pytest.raises(CacheError, match=r"no \*_llama_\*\.pkl files; point it at the llama-cascades folder"):
        load_llama_cascades(tmp_path)
    with pytest.raises(CacheError, match="not a directory"):
        load_llama_cascades(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------ locating the data


def test_llama_cache_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(CacheError, match=rf"cache_dir.*--set cache_dir=.*{ENV_VAR}"):
        llama_cache_dir(None)
    assert llama_cache_dir(tmp_path) == tmp_path
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert llama_cache_dir(None) == tmp_path / "env"
    assert llama_cache_dir(str(tmp_path / "arg")) == tmp_path / "arg"
