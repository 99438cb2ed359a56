"""Shared fixtures: the real Llama results (skipped with a reason when absent) and the registries the conformance
tests loop over, as PettingZoo's own tests loop over ``all_environments``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import mechanisms
from envs import scenario_names

SHARED_LLAMA = Path(__file__).resolve().parents[2] / "shared" / "data" / "llama-cascades"
LLAMA_DIR = Path(os.environ.get("LLM_ARENA_LLAMA_DIR", str(SHARED_LLAMA)))
LLAMA_MISSING = f"real Llama results not found at {LLAMA_DIR} (set LLM_ARENA_LLAMA_DIR; ../shared is absent)"


@pytest.fixture(scope="session")
def llama_dir() -> str:
    """The llama-cascades folder; tests that ask for it skip when it is absent."""
    if not LLAMA_DIR.is_dir():
        pytest.skip(LLAMA_MISSING)
    return str(LLAMA_DIR)


def _scenario_param(name: str):
    marks = [pytest.mark.skipif(not LLAMA_DIR.is_dir(), reason=LLAMA_MISSING)] if name == "llama" else []
    return pytest.param(name, marks=marks, id=name)


@pytest.fixture(params=list(mechanisms.REGISTRY))
def mechanism_name(request) -> str:
    """Every registered mechanism."""
    return request.param


@pytest.fixture(params=[_scenario_param(s) for s in scenario_names()])
def scenario_name(request) -> str:
    """Every scenario preset (``llama`` skipped when its data is absent)."""
    return request.param


@pytest.fixture
def scenario_overrides(scenario_name) -> dict:
    """What a scenario needs to be built in tests: the Llama data folder for ``llama``."""
    return {"cache_dir": str(LLAMA_DIR)} if scenario_name == "llama" else {}
