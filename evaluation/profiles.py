"""Strategy profiles: who deviates, how, and against whom (MECHANISMS.md §9).

A profile is a unilateral deviation: one or more *deviators* play a scripted manipulation or a learned policy while
the others keep their strategy (truthful unless a training run says otherwise); its baseline is the same profile with
the deviators playing truthful.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from agents.learned import load_policies, read_manifest
from agents.policy import Policy
from agents.registry import make_strategy
from envs.batched import BatchedMarket

DEFAULT_STRATEGIES = ("markup", "substitute", "inflate")


@dataclass
class Profile:
    """A named strategy profile: ``deviators`` (agent -> policy factory) against ``others`` (default truthful)."""

    name: str
    deviators: dict[str, Callable[[BatchedMarket], Policy]]
    others: dict[str, Callable[[BatchedMarket], Policy]] = field(default_factory=dict)
    kind: str = "scripted"

    def policies(self, market: BatchedMarket, honest_deviators: bool = False) -> dict[str, Policy]:
        out = {}
        for a in market.possible_agents:
            if a in self.deviators and not honest_deviators:
                out[a] = self.deviators[a](market)
            elif a in self.others:
                out[a] = self.others[a](market)
            else:
                out[a] = make_strategy("truthful", market.layout)
        return out


def scripted_profiles(market: BatchedMarket, strategies: list[str]) -> list[Profile]:
    """One profile per (strategy, provider): that provider plays the strategy, everyone else truthful.

    ``substitute`` is skipped for providers with nothing cheaper on their menu (it would be honest play)."""
    can_substitute = market.market.n_substitutes > 0
    return [Profile(f"{s}@{a}", {a: (lambda m, _s=s, _k=k: make_strategy(_s, m.layout, seed=_k))})
            for s in strategies if s != "truthful" for k, a in enumerate(market.possible_agents)
            if s != "substitute" or can_substitute[k]]


def learned_profiles(run_dir: str | Path, market: BatchedMarket) -> list[Profile]:
    """Profiles of a train.py run, checked against ``market`` first.

    A best-response run gives one unilateral profile per learner, ``learned@<agent>:<run>``: that learner's policy
    against the strategy it trained against (a scripted opponents spec; truthful otherwise). Independent and shared
    runs give one joint profile, ``learned:<run>``, in which all learners play their policies at once (its gains are
    against all of them honest).
    """
    manifest = read_manifest(run_dir)
    load_policies(run_dir, market)  # checks the manifest against this market before anything runs
    learners = list(manifest["policies"])
    run = Path(run_dir).name
    cache: dict[str, Policy] = {}

    def learned(agent: str) -> Callable[[BatchedMarket], Policy]:
        def build(m: BatchedMarket) -> Policy:
            if agent not in cache:
                cache.update(load_policies(run_dir, m))
            return cache[agent]
        return build

    if manifest.get("mode") != "best-response":
        return [Profile(f"learned:{run}", {a: learned(a) for a in learners}, kind="learned")]
    spec = manifest.get("opponents", "truthful")
    # Others default to truthful (and then share the all-honest baseline); a scripted opponent spec is kept.
    scripted = spec != "truthful" and "=" not in spec and not Path(spec).is_dir()
    others = {a: (lambda m, _s=spec: make_strategy(_s, m.layout)) for a in market.possible_agents} if scripted else {}
    return [Profile(f"learned@{a}:{run}", {a: learned(a)}, {o: f for o, f in others.items() if o != a},
                    kind="learned") for a in learners]
