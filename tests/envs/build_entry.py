"""Test-only entry point of the fault-injection tests: ``python -m tests.envs.build_entry [--stop-at EVENT:K] ARGS``.

Runs ``python -m envs.data build ARGS`` with two substitutions that make builds reproducible byte for byte: every
model is answered by :class:`ScriptedBackend` (replies, token counts and latencies are functions of the model and
the question alone) and the clock of the journal and of ``meta.json`` is frozen at :data:`FROZEN_NOW`. With
``--stop-at EVENT:K`` the process prints ``STOPPED EVENT K`` at the K-th occurrence of EVENT and then waits, so a test
can kill -9 it exactly there:

    reply     the backend produced a reply (not yet journaled)
    fsync     an ``os.fsync`` returned: each journal line, each staged cache file, the staging and parent directories
    exchange  just before the atomic swap of the new cache for the old one
    swapped   just after the swap, before the old cache is deleted

Without ``--stop-at`` it prints ``EVENTS reply=N fsync=N exchange=N swapped=N`` when the build returns, which tells a
test the range of K.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from functools import lru_cache

from envs.data import build as build_module
from envs.data import cache as cache_module
from envs.data.__main__ import main as data_main
from envs.data.backends import Completion, Messages

FROZEN_NOW = "2025-01-01T00:00:00+00:00"
EVENTS = ("reply", "fsync", "exchange", "swapped")


@lru_cache(maxsize=1)
def _truth() -> dict:
    from envs.data import make_capitals as mc

    return {c.name: c for c in mc.load_countries()}


class ScriptedBackend:
    """A deterministic stand-in for an inference server: about one reply in four is wrong (a fixed function of the
    model and the country), the rest are the seed's JSON with the right answer."""

    name = "scripted"

    def __init__(self, model_id: str, max_new_tokens: int = 256) -> None:
        self.model_id, self.max_new_tokens = model_id, max_new_tokens
        self._requests = 0

    def generation_key(self) -> dict:
        return {"backend": self.name, "model_id": self.model_id, "max_new_tokens": self.max_new_tokens}

    def describe(self) -> dict:
        return self.generation_key()

    def stats(self) -> dict:
        return {"requests": self._requests}

    def reply(self, messages: Messages) -> tuple[str, int, int, float]:
        """Text, input and output tokens and latency of the reply to ``messages``."""
        country = messages[-1]["content"].split(": ", 1)[1]
        truth = _truth()[country]
        wrong = zlib.crc32(f"{self.model_id}/{country}".encode()) % 4 == 0
        text = json.dumps(
            {
                "Capital City": "Atlantis" if wrong else truth.capital,
                "Continent": truth.continent,
                "Latitude": f"{abs(truth.latitude):.2f}{'N' if truth.latitude >= 0 else 'S'}",
                "Longitude": f"{abs(truth.longitude):.2f}{'E' if truth.longitude >= 0 else 'W'}",
            },
            ensure_ascii=False,
        )
        return text, 90 + len(country), 20 + len(country) % 7, 100.0 + len(country)

    def generate(self, batch: Sequence[Messages]) -> Iterator[Completion]:
        for index, messages in enumerate(batch):
            self._requests += 1
            text, tin, tout, latency = self.reply(messages)
            _STOPPER.event("reply")
            yield Completion(index=index, text=text, input_tokens=tin, output_tokens=tout, latency_ms=latency)


class Stopper:
    """Counts events and blocks forever at the targeted one, after saying so on stdout."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.target: tuple[str, int] | None = None

    def event(self, name: str) -> None:
        self.counts[name] += 1
        if self.target == (name, self.counts[name]):
            print(f"STOPPED {name} {self.counts[name]}", flush=True)
            while True:
                time.sleep(60)


_STOPPER = Stopper()


def _install() -> None:
    real_fsync, real_exchange = os.fsync, cache_module._exchange

    def fsync(fd: int) -> None:
        real_fsync(fd)
        _STOPPER.event("fsync")

    def exchange(a, b) -> None:
        _STOPPER.event("exchange")
        real_exchange(a, b)
        _STOPPER.event("swapped")

    os.fsync = fsync
    cache_module._exchange = exchange
    build_module._now = lambda: FROZEN_NOW
    build_module.make_backend = lambda args, model_id: ScriptedBackend(model_id, args.max_new_tokens)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one scripted build; see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--stop-at"]:
        event, _, k = args[1].partition(":")
        if event not in EVENTS or not k.isdigit() or int(k) < 1:
            raise SystemExit(f"--stop-at: expected EVENT:K with EVENT in {EVENTS} and K >= 1, got {args[1]!r}")
        _STOPPER.target = (event, int(k))
        args = args[2:]
    _install()
    try:
        return data_main(["build", *args])
    finally:
        print("EVENTS " + " ".join(f"{e}={_STOPPER.counts[e]}" for e in EVENTS), flush=True)


if __name__ == "__main__":
    sys.exit(main())
