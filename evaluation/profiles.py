"""Strategy profiles: who deviates, how, with which levers, and against whom (MECHANISMS.md §9).

A profile is a unilateral deviation: one or more *deviators* play a scripted manipulation or a learned policy while
the others keep their strategy (truthful unless a training run says otherwise); its baseline is the same profile with
the deviators playing truthful. Every deviation is also played with one lever at a time (its ``lever`` variants:
bid, substitution or inflation alone, the other action dimensions honest), which tells which lever pays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from agents.learned import load_policies, read_manifest
from agents.policy import LEVER_SETS, LEVERS, LeverMask, Policy
from agents.registry import make_strategy
from agents.scripted import PRESETS, scripted_levers
from envs.batched import BatchedMarket

Factory = Callable[[BatchedMarket], Policy]


@dataclass
class Profile:
    """A named strategy profile: ``deviators`` (agent -> policy factory) against ``others`` (default truthful), the
    deviators restricted to the levers of ``lever`` (``all``, ``bid``, ``substitution`` or ``inflation``)."""

    deviation: str
    deviators: dict[str, Factory]
    others: dict[str, Factory] = field(default_factory=dict)
    kind: str = "scripted"
    lever: str = "all"
    alias_of: str | None = None  # a profile that plays exactly the same actions (evaluated once, counted once)

    @property
    def name(self) -> str:
        return self.deviation if self.lever == "all" else f"{self.deviation}[{self.lever}]"

    def policies(self, market: BatchedMarket, honest_deviators: bool = False) -> dict[str, Policy]:
        out: dict[str, Policy] = {}
        for a in market.possible_agents:
            if a in self.deviators and not honest_deviators:
                policy = self.deviators[a](market)
                out[a] = policy if self.lever == "all" else LeverMask(policy, LEVER_SETS[self.lever])
            elif a in self.others:
                out[a] = self.others[a](market)
            else:
                out[a] = make_strategy("truthful", market.layout)
        return out


def _scripted(name: str, seed: int, market: BatchedMarket) -> Policy:
    """Scripted strategy ``name`` for ``market``, seeded ``seed`` (a profile's policy factory)."""
    return make_strategy(name, market.layout, seed=seed)


def lever_variants(profile: Profile, used: tuple[str, ...] = LEVERS) -> list[Profile]:
    """The profile with all its levers, then with each lever it uses alone (a deviation of one lever is its own
    single-lever variant)."""
    singles = [replace(profile, lever=lever) for lever in LEVERS if lever in used and len(used) > 1]
    return [profile, *singles]


# The one-lever preset a scripted deviation restricted to one lever plays exactly (the substitution and inflation
# actions of every preset are those of ``substitute`` and ``inflate``; a bid rule on the declared model's cost is
# ``markup``'s when the rule is a markup).
SINGLE_LEVER = {"substitution": "substitute", "inflation": "inflate", "bid": "markup"}


def _alias(strategy: str, lever: str, strategies: list[str]) -> str | None:
    """The one-lever preset that ``strategy`` restricted to ``lever`` plays exactly, if it is evaluated too."""
    single = SINGLE_LEVER[lever]
    preset = PRESETS.get(strategy, {})
    if single not in strategies or (
        lever == "bid" and (preset.get("cost_of") == "served" or preset.get("bid") != PRESETS[single]["bid"])
    ):
        return None
    return single


def scripted_profiles(market: BatchedMarket, strategies: list[str], levers: bool = True) -> list[Profile]:
    """One profile per (strategy, provider): that provider plays the strategy, everyone else truthful; with
    ``levers``, every multi-lever strategy also with each of its levers alone (an alias of the one-lever preset it
    then plays exactly, when that is evaluated too).

    Deviations that need a cheaper model are skipped for providers with nothing cheaper on their menu (they would be
    honest play, or another deviation under a new name)."""
    can_substitute = market.market.n_substitutes > 0
    out: list[Profile] = []
    for s in strategies:
        if s == "truthful":
            continue
        used = scripted_levers(s) if s in PRESETS else LEVERS
        for k, a in enumerate(market.possible_agents):
            if "substitution" in used and not can_substitute[k]:
                continue
            profile = Profile(f"{s}@{a}", {a: functools.partial(_scripted, s, k)})
            for variant in lever_variants(profile, used) if levers else [profile]:
                single = _alias(s, variant.lever, strategies) if variant.lever != "all" else None
                out.append(replace(variant, alias_of=f"{single}@{a}") if single else variant)
    return out


def learned_profiles(run_dir: str | Path, market: BatchedMarket, levers: bool = True) -> list[Profile]:
    """Profiles of a train.py run, checked against ``market`` first.

    A best-response run gives one unilateral profile per learner, ``learned@<agent>:<run>``: that learner's policy
    against the strategy it trained against (a scripted opponents spec; truthful otherwise). Independent and shared
    runs give one joint profile, ``learned:<run>``, in which all learners play their policies at once (its gains are
    against all of them honest). With ``levers``, each also with one lever at a time.
    """
    manifest = read_manifest(run_dir)
    load_policies(run_dir, market)  # checks the manifest against this market before anything runs
    learners = list(manifest["policies"])
    run = Path(run_dir).name
    used = tuple(manifest.get("levers", LEVERS))
    cache: dict[str, Policy] = {}

    def learned(agent: str) -> Factory:
        def build(m: BatchedMarket) -> Policy:
            if agent not in cache:
                cache.update(load_policies(run_dir, m))
            return cache[agent]

        return build

    if manifest.get("mode") != "best-response":
        profiles = [Profile(f"learned:{run}", {a: learned(a) for a in learners}, kind="learned")]
    else:
        spec = manifest.get("opponents", "truthful")
        # Others default to truthful (and then share the all-honest baseline); a scripted opponent spec is kept.
        scripted = spec != "truthful" and "=" not in spec and not Path(spec).is_dir()
        others = (
            {a: (lambda m, _s=spec: make_strategy(_s, m.layout)) for a in market.possible_agents} if scripted else {}
        )
        profiles = [
            Profile(f"learned@{a}:{run}", {a: learned(a)}, {o: f for o, f in others.items() if o != a}, kind="learned")
            for a in learners
        ]
    return [v for p in profiles for v in (lever_variants(p, used) if levers else [p])]
