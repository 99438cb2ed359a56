"""The cache builder's openai path against a local OpenAI-compatible server on 127.0.0.1 that also answers with 500s,
rate limits, slow or dripping replies, malformed bodies and impossible replies: the builder retries, cuts every attempt
off at its deadline, reports what still failed or was invalid, resumes without redoing finished queries, and never
replaces a valid cache with a truncated or invalid one."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from envs.data import make_capitals as mc
from envs.data.__main__ import main as cli
from envs.data.backends import Completion, OpenAIBackend, _DeadlineConnection, _retry_after
from envs.data.build import JOURNAL_NAME, CapitalsTask, ModelRun, build_cache, default_model_name
from envs.data.cache import load_cache

MODEL_ID = "meta-llama/Llama-3.2-3B-Instruct"
SUBSET = ["ARG", "FRA", "DEU", "JPN", "BRA", "AUS"]
CACHE_FILES = ("meta.json", "queries.csv.gz", "responses.csv.gz")
TRUTH = {c.name: c for c in mc.load_countries()}


class FakeOpenAI:
    """A loopback ``/v1/chat/completions`` server. ``script[country]`` lists what the next requests for that
    country get ("500", "429", "slow", "malformed", "400", "drip-headers", "drip-body"; then normal replies);
    ``always[country]`` is what every request gets. Normal replies are right for most countries; ``replies[country]``
    overrides the text and ``usage[country]`` the (prompt, completion) token counts. "drip-*" sends the response one
    byte every ``drip_s`` seconds from its first byte or from the body on."""

    def __init__(
        self,
        script: dict[str, list[str]] | None = None,
        always: dict[str, str] | None = None,
        replies: dict[str, str] | None = None,
        usage: dict[str, tuple] | None = None,
        slow_s: float = 0.6,
        drip_s: float = 0.05,
    ) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.always = dict(always or {})
        self.replies = dict(replies or {})
        self.usage = dict(usage or {})
        self.slow_s, self.drip_s = slow_s, drip_s
        self.requests: Counter = Counter()
        self.models: Counter = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _drip(self, body: bytes, from_body: bool) -> None:
                data = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode() + body
                start = len(data) - len(body) if from_body else 0
                try:
                    self.wfile.write(data[:start])
                    for k in range(start, len(data)):
                        self.wfile.write(data[k : k + 1])
                        time.sleep(outer.drip_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what this test wants
                self.close_connection = True

            def do_POST(self) -> None:
                if self.path != "/v1/chat/completions":
                    return self._send(404, b'{"error": "not found"}')
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert request["temperature"] == 0 and request["max_tokens"] == 256
                user = request["messages"][-1]["content"]
                country = user.split(": ", 1)[1]
                with outer.lock:
                    outer.requests[country] += 1
                    outer.models[request["model"]] += 1
                    plan = outer.script.get(country)
                    action = outer.always.get(country) or (plan.pop(0) if plan else "ok")
                if action == "500":
                    return self._send(500, b'{"error": "internal"}')
                if action == "429":
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": "0"})
                if action == "400":
                    return self._send(400, b'{"error": "bad request: context too long"}')
                if action == "malformed":
                    return self._send(200, b'{"choices": [{"message": {"content": "trunc')
                if action == "slow":
                    time.sleep(outer.slow_s)
                text = outer.replies.get(country) or json.dumps(
                    {
                        "Capital City": TRUTH[country].capital,
                        "Continent": TRUTH[country].continent,
                        "Latitude": mc.format_coordinate(TRUTH[country].latitude, "N", "S"),
                        "Longitude": mc.format_coordinate(TRUTH[country].longitude, "E", "W"),
                    },
                    ensure_ascii=False,
                )
                prompt_tokens, completion_tokens = outer.usage.get(country, (90 + len(country), 30))
                body = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": request["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
                }
                if action.startswith("drip-"):
                    return self._drip(json.dumps(body).encode(), from_body=action == "drip-body")
                self._send(200, json.dumps(body).encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def total(self) -> int:
        return sum(self.requests.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator:
    servers: list[FakeOpenAI] = []

    def start(**kwargs) -> FakeOpenAI:
        servers.append(FakeOpenAI(**kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def backend(server: FakeOpenAI, model: str = MODEL_ID, **kwargs) -> OpenAIBackend:
    options = dict(timeout=0.25, max_retries=3, backoff=0.01, max_backoff=0.05, concurrency=3)
    return OpenAIBackend(model, base_url=server.url, api_key="test-key", **{**options, **kwargs})


def run(server: FakeOpenAI, out: Path, **kwargs):
    runs = [ModelRun(default_model_name(MODEL_ID), backend(server))]
    return build_cache(CapitalsTask(), runs, out, query_ids=SUBSET, progress=False, **kwargs)


def name_of(code: str) -> str:
    return next(c.name for c in TRUTH.values() if c.code == code)


# ------------------------------------------------------------------------------------------------------------ tests


def test_a_build_retries_through_server_errors(serve, tmp_path: Path) -> None:
    server = serve(
        script={"Argentina": ["500"], "France": ["429"], "Germany": ["slow"], "Japan": ["malformed"]},
        replies={
            "Brazil": 'Here you go: {"Capital City": "Brasilia", "Continent": "Americas", '
            '"Latitude": "-15.79", "Longitude": "-47.88"} Enjoy!',
            "Australia": "I am not sure, sorry.",
        },
    )
    report = run(server, tmp_path / "cache")
    assert report.ok and report.written, report.summary()
    stats = report.backend_stats["llama-3.2-3b-instruct"]
    assert stats["retry: HTTP 500"] == 1 and stats["retry: HTTP 429"] == 1
    assert stats["retry: timeout"] == 1 and stats["retry: malformed body"] == 1
    assert server.requests == Counter(
        {"Argentina": 2, "France": 2, "Germany": 2, "Japan": 2, "Brazil": 1, "Australia": 1}
    )
    assert server.models == Counter({MODEL_ID: 10})

    cache = load_cache(tmp_path / "cache", required_models=["llama-3.2-3b-instruct"])
    assert cache.provenance == "generated" and cache.name == "capitals"
    assert cache.query_ids == sorted(SUBSET, key=name_of)
    build = cache.meta["build"]
    assert build["prompt_hash"].startswith("sha256:") and build["date"][:4].isdigit()
    assert build["models"]["llama-3.2-3b-instruct"]["backend"] == "openai"
    assert build["models"]["llama-3.2-3b-instruct"]["model_id"] == MODEL_ID
    assert cache.meta["system_prompt"] == mc.SYSTEM_PROMPT
    score = dict(zip(cache.query_ids, cache.score[:, 0]))
    assert score == {"ARG": 1.0, "FRA": 1.0, "DEU": 1.0, "JPN": 1.0, "BRA": 1.0, "AUS": 0.0}
    q = cache.query_ids.index("AUS")
    assert cache.extra["answer"][q, 0] == "I am not sure, sorry."
    assert cache.extra["parse_ok"][q, 0] == "0" and cache.extra["correct_capital"][q, 0] == "0"
    assert cache.input_tokens[cache.query_ids.index("ARG"), 0] == 90 + len("Argentina")
    assert (cache.output_tokens == 30).all() and (cache.latency_ms > 0).all()
    assert set(cache.extra) >= {
        "answer",
        "parse_ok",
        "correct_capital",
        "correct_continent",
        "correct_latitude",
        "correct_longitude",
    }

    # A rerun asks nothing and rewrites the same cache; a new tolerance re-grades without new requests.
    before = server.total()
    again = build_cache(
        CapitalsTask(tolerance_deg=0.0),
        [ModelRun("llama-3.2-3b-instruct", backend(server))],
        tmp_path / "cache",
        query_ids=SUBSET,
        progress=False,
    )
    assert again.ok and server.total() == before and again.resumed == {"llama-3.2-3b-instruct": 6}
    assert load_cache(tmp_path / "cache").meta["grader"]["tolerance_deg"] == 0.0


def test_permanent_failures_are_reported_and_a_rerun_resumes(serve, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "cache"
    broken = serve(always={"Japan": "500", "France": "400"})
    monkeypatch.setenv("OPENAI_BASE_URL", broken.url)
    args = [
        "build",
        "--backend",
        "openai",
        "--model",
        MODEL_ID,
        "--model",
        "meta-llama/Llama-3.2-1B-Instruct",
        "--out",
        str(out),
        "--queries",
        ",".join(SUBSET),
        "--no-progress",
        "--timeout",
        "0.5",
        "--max-retries",
        "2",
        "--backoff",
        "0.01",
        "--price",
        "llama-3.2-1b-instruct=0.05,0.08",
    ]
    with pytest.raises(SystemExit) as exit_info:
        cli(args)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "4 queries failed (errors after retries, or invalid replies)" in err
    assert "rerun the same command to resume" in err
    assert "HTTP 400" in err and "HTTP 500" in err and "llama-3.2-1b-instruct / JPN" in err
    # 400 is not retried, 500 is (3 attempts); two models.
    assert broken.requests["France"] == 2 and broken.requests["Japan"] == 6
    assert not any((out / f).exists() for f in CACHE_FILES)
    journal = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]
    assert Counter(r["type"] for r in journal) == Counter({"result": 8, "failure": 4})

    healthy = serve()
    monkeypatch.setenv("OPENAI_BASE_URL", healthy.url)
    assert cli(args) == 0
    assert healthy.requests == Counter({"France": 2, "Japan": 2})  # only the failed ones, per model
    cache = load_cache(out, required_models=["llama-3.2-3b-instruct", "llama-3.2-1b-instruct"])
    assert (cache.score == 1.0).all()
    assert cache.meta["models"] == {
        "llama-3.2-3b-instruct": {"price_in": 0.1, "price_out": 0.1},
        "llama-3.2-1b-instruct": {"price_in": 0.05, "price_out": 0.08},
    }
    assert "wrote" in capsys.readouterr().out


class Killed(RuntimeError):
    pass


class KilledAfter:
    """Wraps a backend and dies (as a killed process would stop) after ``n`` completions."""

    def __init__(self, inner: OpenAIBackend, n: int) -> None:
        self.inner, self.n = inner, n
        self.name, self.model_id = inner.name, inner.model_id

    def generation_key(self) -> dict:
        return self.inner.generation_key()

    def describe(self) -> dict:
        return self.inner.describe()

    def stats(self) -> dict:
        return self.inner.stats()

    def generate(self, batch) -> Iterator[Completion]:
        for k, c in enumerate(self.inner.generate(batch)):
            if k == self.n:
                raise Killed("killed mid-build")
            yield c


def test_a_killed_build_leaves_no_cache_and_resumes(serve, tmp_path: Path) -> None:
    server = serve()
    out = tmp_path / "cache"
    runs = [ModelRun("llama-3.2-3b-instruct", KilledAfter(backend(server), 2))]
    with pytest.raises(Killed):
        build_cache(CapitalsTask(), runs, out, query_ids=SUBSET, progress=False)
    assert not any((out / f).exists() for f in CACHE_FILES)
    assert not list(out.glob(".*.tmp"))
    assert len((out / JOURNAL_NAME).read_text().splitlines()) == 2
    # A build killed while writing a journal line leaves half a line: dropped on resume.
    with open(out / JOURNAL_NAME, "ab") as fh:
        fh.write(b'{"type": "result", "key": "abc", "te')
    fresh = serve()  # requests of the killed build may still be in flight on the first server
    report = run(fresh, out)
    assert report.ok and report.resumed == {"llama-3.2-3b-instruct": 2}
    assert fresh.total() == 4
    assert all(json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines())
    assert load_cache(out).n_queries == 6


def test_a_killed_rebuild_keeps_the_previous_cache(serve, tmp_path: Path) -> None:
    server = serve()
    out = tmp_path / "cache"
    assert run(server, out, limit=3).written
    previous = {f: (out / f).read_bytes() for f in CACHE_FILES}
    runs = [ModelRun("llama-3.2-3b-instruct", KilledAfter(backend(server), 1))]
    with pytest.raises(Killed):
        build_cache(CapitalsTask(), runs, out, query_ids=SUBSET, progress=False)
    assert {f: (out / f).read_bytes() for f in CACHE_FILES} == previous
    assert load_cache(out).n_queries == 3
    report = run(server, out)
    assert report.ok and report.resumed == {"llama-3.2-3b-instruct": 4}
    assert load_cache(out).n_queries == 6


def test_model_names_and_retry_after() -> None:
    assert default_model_name("meta-llama/Llama-3.2-3B-Instruct") == "llama-3.2-3b-instruct"
    assert default_model_name("/models/Llama-3.2-1B-Instruct/") == "llama-3.2-1b-instruct"
    assert default_model_name("llama3.2:3b") == "llama3.2-3b"
    assert _retry_after("2") == 2.0 and _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_the_capitals_scenario_runs_on_a_generated_cache(serve, tmp_path: Path) -> None:
    """Ollama-style ids named after the scenario's models; the env takes the cache by path."""
    from envs import parallel_env

    server = serve(
        replies={
            "France": '{"Capital City": "Lyon", "Continent": "Europe", "Latitude": "45.76N", "Longitude": "4.84E"}'
        }
    )
    runs = [
        ModelRun("llama-3.2-3b-instruct", backend(server, "llama3.2:3b")),
        ModelRun("llama-3.2-1b-instruct", backend(server, "llama3.2:1b")),
    ]
    out = tmp_path / "cache"
    assert build_cache(CapitalsTask(), runs, out, query_ids=SUBSET, progress=False).written
    assert server.models == Counter({"llama3.2:3b": 6, "llama3.2:1b": 6})
    market = parallel_env("capitals", "second_price", seed=0, cache=str(out), horizon=4)
    assert market.market.provenance == "generated" and market.market.n_queries == len(SUBSET)
    market.reset(seed=0)
    while market.agents:
        _, rewards, _, _, _ = market.step(
            {a: np.zeros(market.action_space(a).shape, np.float32) for a in market.agents}
        )
    assert set(rewards) == {"provider_0", "provider_1"}


def test_usage_errors_and_a_locked_journal(tmp_path: Path, capsys) -> None:
    from envs.data.build import BuildError, Journal

    out = tmp_path / "cache"
    base = ["build", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--out", str(out), "--no-progress"]
    for extra, message in (
        (["--model", MODEL_ID, "--queries", "XXX"], "unknown query id"),
        (["--model", MODEL_ID, "--price", "other=1"], "--price names unknown model"),
        (["--model", "a/m", "--model", "b/m"], "model names must be distinct"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            cli(base + extra)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
    out.mkdir()
    held = Journal(out / JOURNAL_NAME)
    try:
        with pytest.raises(BuildError, match="another build"):
            Journal(out / JOURNAL_NAME)
    finally:
        held.close()


# ---------------------------------------------------------------------------------------- deadlines and bad replies


@pytest.mark.parametrize("where", ["headers", "body"])
def test_a_dripping_server_is_cut_off_at_the_deadline(serve, where: str) -> None:
    """One byte every 50 ms never trips a per-read timeout of 0.4 s; the per-attempt deadline cuts it off (the full
    reply would take ~10 s), counts it as a timeout and retries."""
    server = serve(always={"France": f"drip-{where}"})
    dripping = backend(server, timeout=0.4, max_retries=1, backoff=0.01)
    fine = backend(server, timeout=0.4)
    task = CapitalsTask()
    france = next(q for q in task.queries() if q["query_id"] == "FRA")
    argentina = next(q for q in task.queries() if q["query_id"] == "ARG")
    t0 = time.monotonic()
    [completion] = list(dripping.generate([task.messages(france)]))
    elapsed = time.monotonic() - t0
    assert completion.error is not None and "no complete reply within 0.4 s" in completion.error, completion
    assert completion.attempts == 2 and dripping.stats()["retry: timeout"] == 1
    assert 0.8 <= elapsed < 2.5, elapsed
    assert server.requests["France"] == 2
    [ok] = list(fine.generate([task.messages(argentina)]))  # the same server answers a normal request in time
    assert ok.error is None and ok.output_tokens == 30


def test_a_silent_tls_server_is_cut_off_at_the_deadline() -> None:
    """An https endpoint that accepts the connection and never answers the TLS handshake: the deadline covers the
    handshake too (and an https URL without a port means 443)."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        silent = OpenAIBackend(MODEL_ID, base_url=f"https://127.0.0.1:{port}/v1", timeout=0.3, max_retries=0)
        t0 = time.monotonic()
        [completion] = list(silent.generate([[{"role": "user", "content": "Provide the geographical data for: X"}]]))
        elapsed = time.monotonic() - t0
    finally:
        listener.close()
    assert completion.error is not None and "no complete reply within 0.3 s" in completion.error, completion
    assert 0.25 <= elapsed < 1.5, elapsed
    assert _DeadlineConnection("example.org", None, 0.0, ssl.create_default_context()).port == 443
    assert _DeadlineConnection("example.org", None, 0.0, None).port == 80


def test_impossible_replies_never_replace_a_valid_cache(serve, tmp_path: Path, monkeypatch, capsys) -> None:
    """A server that reports negative or astronomic token counts or sends a 300 kB reply: those replies are reported,
    not journaled, the previous cache stays byte for byte, and once the server is fixed the same command asks just
    those again and completes."""
    out = tmp_path / "cache"
    good = serve()
    monkeypatch.setenv("OPENAI_BASE_URL", good.url)
    base = [
        "build",
        "--backend",
        "openai",
        "--out",
        str(out),
        "--queries",
        ",".join(SUBSET),
        "--no-progress",
        "--timeout",
        "2",
        "--max-retries",
        "0",
    ]
    assert cli(base + ["--model", MODEL_ID]) == 0
    previous = {f: (out / f).read_bytes() for f in CACHE_FILES}
    capsys.readouterr()

    bad = serve(usage={"Argentina": (-5, 30), "France": (90, 10**30)}, replies={"Japan": "x" * 300_000})
    monkeypatch.setenv("OPENAI_BASE_URL", bad.url)
    both = base + ["--model", MODEL_ID, "--model", "meta-llama/Llama-3.2-1B-Instruct"]
    with pytest.raises(SystemExit) as exit_info:
        cli(both)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "llama-3.2-1b-instruct / ARG: invalid reply: input_tokens is -5, expected an integer in [0, " in err
    assert f"llama-3.2-1b-instruct / FRA: invalid reply: output_tokens is {10**30}" in err
    assert "llama-3.2-1b-instruct / JPN: invalid reply: the reply has 300000 characters" in err
    assert {f: (out / f).read_bytes() for f in CACHE_FILES} == previous
    journal = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]
    assert {(r["model"], r["query_id"]) for r in journal if r["model"] == "llama-3.2-1b-instruct"} == {
        ("llama-3.2-1b-instruct", q) for q in ("DEU", "BRA", "AUS")
    }
    assert bad.requests["Japan"] == 1  # the 3B's replies came from the journal

    fixed = serve()
    monkeypatch.setenv("OPENAI_BASE_URL", fixed.url)
    assert cli(both) == 0
    assert fixed.requests == Counter({"Argentina": 1, "France": 1, "Japan": 1})
    cache = load_cache(out, required_models=["llama-3.2-3b-instruct", "llama-3.2-1b-instruct"])
    assert cache.input_tokens.max() < 200 and cache.output_tokens.max() == 30


def test_invalid_replies_in_an_old_journal_are_asked_again(serve, tmp_path: Path) -> None:
    """A journal written by an older builder may hold impossible replies; they are ignored (and said so) instead of
    failing every rerun."""
    server = serve()
    out = tmp_path / "cache"
    assert run(server, out).written
    records = [json.loads(line) for line in (out / JOURNAL_NAME).read_text().splitlines()]
    poison = {
        "ARG": {"input_tokens": -5},
        "FRA": {"output_tokens": 10**30},
        "JPN": {"text": "x" * 300_000},
        "DEU": {"latency_ms": float("nan")},
    }
    with open(out / JOURNAL_NAME, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps({**record, **poison.get(record["query_id"], {})}) + "\n")
    fresh = serve()
    report = run(fresh, out, cache_name="again")
    assert report.ok and report.written, report.summary()
    assert fresh.requests == Counter({"Argentina": 1, "France": 1, "Japan": 1, "Germany": 1})
    assert {q for q, _ in report.invalid_journaled} == set(poison)
    assert "ignored 4 invalid replies in the journal" in report.summary()
    cache = load_cache(out)
    assert cache.name == "again" and cache.output_tokens.max() == 30
