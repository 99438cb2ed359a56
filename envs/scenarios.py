"""Scenarios: who the providers are, what they can run, what it costs them, and which queries arrive.

A scenario is a typed :class:`ScenarioConfig` (presets in ``configs/scenarios/<name>.yaml``, every field
overridable) compiled into a :class:`Market`: dense numpy arrays the env indexes in its hot path.

Presets (MECHANISMS.md §1, §8):
- ``capitals``: seed 001. provider_0 declares Llama-3.2-3B and may secretly serve 1B; provider_1 runs Llama-3.2-1B.
  Private per-token costs in the seed's 6:1 ratio; value scale chosen so both trade profitably and substitution
  tempts. Values from the embedded calibrated cache.
- ``llama``: five providers declaring the five Llama models of the real imported cache, each able to substitute any
  cheaper model of its menu; context = benchmark / subject. Needs ``cache_dir`` or ``LLM_ARENA_LLAMA_DIR``.
- ``uniform``: the textbook reverse auction: n providers, private cost i.i.d. U[0, 1] per query, value 1, every
  answer correct.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np

from envs.config import ConfigError, Layer, build_layered, check_fields, from_dict, load_yaml
from envs.data import ResponseCache, embedded_cache_path, load_cache, load_llama_cascades
from envs.data.llama_cascades import llama_cache_dir
from envs.synthetic import GENERATED

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
SCENARIO_DIR = CONFIG_DIR / "scenarios"


@dataclass
class ProviderSpec:
    """One provider: the model it declares (advertises and is billed as), the models it can secretly run instead,
    and its private base cost per token of each (money units; the realised cost is this times a random type)."""

    declared: str
    cost_per_token: dict[str, float]
    menu: list[str] | None = None
    price_in: float | None = None
    price_out: float | None = None

    def models(self) -> list[str]:
        menu = list(self.menu) if self.menu else [self.declared]
        return menu if self.declared in menu else [self.declared, *menu]


@dataclass
class ScenarioConfig:
    """Every knob of a market (MECHANISMS.md §1).

    Attributes:
        name: scenario label.
        cache: ``capitals`` (embedded), ``llama`` (real cache via ``cache_dir``), a generated cache (``uniform``,
            ``second_best_toy``: :mod:`envs.synthetic`), or a path to a cache directory in the canonical format.
        cache_dir: folder of the llama-cascades files (for ``cache: llama``; else ``LLM_ARENA_LLAMA_DIR``).
        domains: keep only queries of these domains (``None``: all).
        providers: provider specs; with ``n_providers`` larger than the list, the list is cycled.
        n_providers: N (default: number of specs).
        value_scale: money value of a perfect answer; V = value_scale * S.
        eta: provider's share of the payment; profit = eta * P - cost.
        horizon: T, rounds per episode (truncation).
        cost_low, cost_high: a provider's type multiplies its base costs by U[cost_low, cost_high].
        cost_resample: draw the type once per ``episode`` or anew every ``query``.
        list_price_scale: cache list prices (USD per 1M tokens) times this = money units per token.
        max_output_tokens: L, cap on reported output tokens (default: the cache's largest output).
        max_inflation: largest inflation iota (reported = ceil(true * (1 + iota))).
        bid_scale: money units per unit of the bid action (default: value_scale).
        action_mode: out-of-range actions are ``clip``ped to the Box or raise (``strict``).
        max_context_groups: above this many query groups, context features keep only the domain.
        billing: how the user pays a bid-based mechanism's winner: ``per_query`` (the ask is a price for the
            query) or ``per_token`` (the ask is a price per output token, the mechanism ranks expected payments, and
            the user pays the price times the *reported* output tokens, as LLM APIs bill; MECHANISMS.md §1).
    """

    name: str = "custom"
    cache: str = "capitals"
    cache_dir: str | None = None
    domains: list[str] | None = None
    providers: list[ProviderSpec] = field(default_factory=list)
    n_providers: int | None = None
    value_scale: float = 1.0
    eta: float = 1.0
    horizon: int = 256
    cost_low: float = 1.0
    cost_high: float = 1.0
    cost_resample: Literal["episode", "query"] = "query"
    list_price_scale: float = 1e-3
    max_output_tokens: int | None = None
    max_inflation: float = 1.0
    bid_scale: float | None = None
    action_mode: Literal["clip", "strict"] = "clip"
    max_context_groups: int = 128
    billing: Literal["per_query", "per_token"] = "per_query"

    def __post_init__(self) -> None:
        check_fields(self, f"scenario {self.name!r}")

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"scenario {self.name!r}: {what}")

        need(len(self.providers) > 0, "field 'providers': at least one provider is required")
        need(self.n_providers is None or self.n_providers >= 1, "field 'n_providers' must be >= 1")
        need(self.value_scale > 0, "field 'value_scale' must be > 0")
        need(0 < self.eta <= 1, "field 'eta' must be in (0, 1]")
        need(self.horizon >= 1, "field 'horizon' must be >= 1")
        need(0 <= self.cost_low <= self.cost_high, "fields 'cost_low' <= 'cost_high' must hold, both >= 0")
        need(self.max_inflation >= 0, "field 'max_inflation' must be >= 0")
        need(self.bid_scale is None or self.bid_scale > 0, "field 'bid_scale' must be > 0")
        need(self.max_output_tokens is None or self.max_output_tokens >= 1, "field 'max_output_tokens' must be >= 1")
        need(self.list_price_scale >= 0, "field 'list_price_scale' must be >= 0")
        need(self.max_context_groups >= 1, "field 'max_context_groups' must be >= 1")
        for k, p in enumerate(self.providers):
            need(
                all(price is None or price >= 0 for price in (p.price_in, p.price_out)),
                f"field 'providers[{k}]': list prices must be >= 0",
            )
            for m in p.models():
                c = p.cost_per_token.get(m)
                need(
                    c is not None and c >= 0,
                    f"field 'providers[{k}].cost_per_token': model {m!r} of its menu needs a cost >= 0",
                )

    @property
    def n(self) -> int:
        return self.n_providers or len(self.providers)

    def provider(self, i: int) -> ProviderSpec:
        return self.providers[i % len(self.providers)]


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario(
    scenario: str | Path | ScenarioConfig | dict, overrides: dict[str, Any] | Sequence[Layer] | None = None
) -> ScenarioConfig:
    """A scenario by preset name, YAML path, mapping or config, with field overrides applied and validated.

    ``overrides`` is a mapping (keyword overrides) or :class:`envs.config.Layer` s (a config file's, then ``--set``'s):
    an error caused by an override names it (``--set bid_scale=nan``), not the preset it was applied to."""
    if isinstance(scenario, ScenarioConfig):
        base, source = {f.name: getattr(scenario, f.name) for f in fields(scenario)}, f"scenario {scenario.name!r}"
    elif isinstance(scenario, dict):
        base, source = dict(scenario), "scenario mapping"
    else:
        if not isinstance(scenario, (str, Path)) or not str(scenario):
            raise ConfigError(f"scenario: expected a preset name or a YAML path, got {scenario!r}")
        path = Path(scenario)
        if path.suffix not in (".yaml", ".yml"):
            path = SCENARIO_DIR / f"{scenario}.yaml"
            if not path.is_file():
                raise ConfigError(f"unknown scenario {scenario!r}; presets: {scenario_names()} (or a YAML path)")
        base, source = load_yaml(path), str(path)
    layers = [Layer.pairs(overrides, "override")] if isinstance(overrides, dict) else list(overrides or [])
    return build_layered(lambda data: from_dict(ScenarioConfig, data), [Layer(base, source), *layers])


# ----------------------------------------------------------------------------------------------- compiled market


@dataclass(frozen=True)
class Market:
    """A scenario compiled to arrays (Q queries, M models the scenario uses, N providers, G query groups).

    Money is in the scenario's units throughout; tokens are counts.
    """

    config: ScenarioConfig
    cache_name: str
    provenance: str
    models: list[str]
    score: np.ndarray  # [Q, M]
    input_tokens: np.ndarray  # [Q, M] int
    output_tokens: np.ndarray  # [Q, M] int
    expected_output_tokens: np.ndarray  # [Q, M] mean output tokens of the model on the query's group
    group: np.ndarray  # [Q] int
    group_names: list[str]
    context: np.ndarray  # [Q, d] float32 public features
    declared: np.ndarray  # [N] model index
    menu: np.ndarray  # [N, M] bool
    base_cost: np.ndarray  # [N, M] money per token (0 off-menu)
    substitutes: np.ndarray  # [N, A] model indices of cheaper menu models, closest first; -1 padding
    n_substitutes: np.ndarray  # [N]
    price_in: np.ndarray  # [N] list price per input token of the declared model (money)
    price_out: np.ndarray  # [N]
    prior_quality: np.ndarray  # [N, G] advertised mean score of the declared model per group
    max_output_tokens: int
    bid_scale: float
    mean_output_tokens: float  # over all queries and models (scales per-token asks)

    @property
    def n_queries(self) -> int:
        return self.score.shape[0]

    @property
    def n_models(self) -> int:
        return len(self.models)


@functools.lru_cache(maxsize=8)
def _load_cache_cached(kind: str, location: str) -> ResponseCache:
    if kind in GENERATED:
        return GENERATED[kind]()
    if kind == "llama":
        return load_llama_cascades(location)
    return load_cache(location)


def resolve_cache(config: ScenarioConfig) -> ResponseCache:
    """Load (once per process) the response cache a scenario names."""
    if config.cache in GENERATED:
        return _load_cache_cached(config.cache, "")
    if config.cache == "llama":
        return _load_cache_cached("llama", str(llama_cache_dir(config.cache_dir)))
    if config.cache == "capitals":
        return _load_cache_cached("path", str(embedded_cache_path("capitals")))
    return _load_cache_cached("path", str(Path(config.cache).resolve()))


def build_market(config: ScenarioConfig) -> Market:
    """Compile a scenario: load its cache, check every provider's models exist, and lay out the arrays."""
    cache = resolve_cache(config)
    if config.domains:
        unknown = sorted(set(config.domains) - set(cache.domains))
        if unknown:
            raise ConfigError(
                f"scenario {config.name!r}: field 'domains': {unknown} not in cache "
                f"{cache.name!r} (it has {sorted(set(cache.domains))})"
            )
        cache = cache.subset(np.isin(cache.domains, config.domains))
    N = config.n
    used: list[str] = []
    for i in range(N):
        for m in config.provider(i).models():
            if m not in cache.models:
                raise ConfigError(
                    f"scenario {config.name!r}: provider_{i} names model {m!r}, "
                    f"not in cache {cache.name!r} (models: {cache.models})"
                )
            if m not in used:
                used.append(m)
    models = [m for m in cache.models if m in used]
    cols = np.array([cache.models.index(m) for m in models])
    score = cache.score[:, cols]
    if np.isnan(score).any():
        q, m = np.argwhere(np.isnan(score))[0]
        raise ConfigError(f"cache {cache.name!r}: query {cache.query_ids[q]!r} has no result for model {models[m]!r}")
    tin, tout = cache.input_tokens[:, cols], cache.output_tokens[:, cols]

    group, names = cache.groups()
    G = len(names)
    counts = np.bincount(group, minlength=G).astype(float)
    group_mean = lambda x: np.stack([np.bincount(group, x[:, m], G) for m in range(x.shape[1])], 1) / counts[:, None]  # noqa: E731
    quality = group_mean(score)  # [G, M]
    exp_out = group_mean(tout.astype(float))[group]

    domain_names = sorted(set(cache.domains))
    domain = np.array([domain_names.index(d) for d in cache.domains])
    blocks = [np.ones((cache.n_queries, 1)), np.eye(len(domain_names))[domain]]
    if 1 < G <= config.max_context_groups and len(domain_names) != G:
        blocks.append(np.eye(G)[group])
    context = np.concatenate(blocks, axis=1).astype(np.float32)

    M = len(models)
    declared = np.array([models.index(config.provider(i).declared) for i in range(N)])
    menu = np.zeros((N, M), dtype=bool)
    base_cost = np.zeros((N, M))
    subs = []
    for i in range(N):
        spec = config.provider(i)
        for m in spec.models():
            menu[i, models.index(m)] = True
            base_cost[i, models.index(m)] = spec.cost_per_token[m]
        d = declared[i]
        cheaper = [k for k in np.flatnonzero(menu[i]) if k != d and base_cost[i, k] < base_cost[i, d]]
        subs.append(sorted(cheaper, key=lambda k: -base_cost[i, k]))
    A = max(1, max(len(s) for s in subs))
    substitutes = np.full((N, A), -1, dtype=np.int64)
    for i, s in enumerate(subs):
        substitutes[i, : len(s)] = s
    list_in = cache.price_in[cols][declared] * config.list_price_scale
    list_out = cache.price_out[cols][declared] * config.list_price_scale
    price_in = np.array(
        [config.provider(i).price_in if config.provider(i).price_in is not None else list_in[i] for i in range(N)]
    )
    price_out = np.array(
        [config.provider(i).price_out if config.provider(i).price_out is not None else list_out[i] for i in range(N)]
    )
    return Market(
        config=config,
        cache_name=cache.name,
        provenance=cache.provenance,
        models=models,
        score=score,
        input_tokens=tin,
        output_tokens=tout,
        expected_output_tokens=exp_out,
        group=group,
        group_names=names,
        context=context,
        declared=declared,
        menu=menu,
        base_cost=base_cost,
        substitutes=substitutes,
        n_substitutes=np.array([len(s) for s in subs]),
        price_in=price_in,
        price_out=price_out,
        prior_quality=quality[:, declared].T.copy(),
        max_output_tokens=int(config.max_output_tokens or max(1, tout.max())),
        bid_scale=float(config.bid_scale or config.value_scale),
        mean_output_tokens=float(max(1.0, tout.mean())),
    )


ALIASES = {"max_cycles": "horizon"}  # PettingZoo's name for the episode length


def scenario_fields() -> list[str]:
    """The names of every :class:`ScenarioConfig` field (each is a keyword override)."""
    return [f.name for f in fields(ScenarioConfig)]


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``--set`` overrides into scenario fields and the rest (mechanism parameters).

    ``max_cycles`` (PettingZoo's name for the episode length) is an alias of the field ``horizon``; giving both with
    different values is a ConfigError.
    """
    names = set(scenario_fields())
    overrides = dict(overrides)
    for alias, name in ALIASES.items():
        if alias in overrides:
            value = overrides.pop(alias)
            if name in overrides and overrides[name] != value:
                raise ConfigError(
                    f"{alias}={value!r} and {name}={overrides[name]!r} disagree: {alias} is an alias "
                    f"of the scenario field {name!r}; give one of them"
                )
            overrides[name] = value
    scen = {k: v for k, v in overrides.items() if k in names}
    return scen, {k: v for k, v in overrides.items() if k not in names}


__all__ = [
    "ProviderSpec",
    "ScenarioConfig",
    "Market",
    "load_scenario",
    "build_market",
    "scenario_names",
    "split_overrides",
    "scenario_fields",
    "ALIASES",
]
