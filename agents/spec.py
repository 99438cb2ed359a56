"""Policies for some providers from a short spec, the form train.py's ``--opponents`` and the single-agent
environment take: a scripted strategy name or a train.py run dir for all of them (``truthful``, ``runs/fp``), or
``agent=spec`` pairs separated by commas (``provider_1=markup,provider_2=runs/fp``). A mapping of agent to a spec
string or a ready :class:`agents.policy.Policy` is accepted too."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents.learned import load_policies
from agents.policy import Policy
from agents.registry import make_strategy, strategy_names
from envs.config import ConfigError

PolicySpec = str | Mapping[str, "str | Policy"]
"""A strategy name or run dir for every agent, ``agent=spec,...`` pairs, or a mapping agent -> spec or Policy."""


def parse_spec(spec: PolicySpec, agents: Sequence[str], known: Sequence[str] | None = None) -> dict[str, str | Policy]:
    """Each of ``agents`` mapped to its source (a strategy name, a run dir or a Policy) according to ``spec``.

    Pairs may name other agents of the market (a learner's own entry, say): they are ignored. Raises ConfigError for
    a malformed pair, a pair naming an agent outside ``known`` (the market's agents, when given), or an agent of
    ``agents`` without a source."""
    if isinstance(spec, Mapping):
        pairs: dict[str, str | Policy] = dict(spec)
    elif not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"opponents {spec!r}: give a strategy name, a run dir, or agent=spec pairs")
    elif "=" in spec:
        pairs = {}
        for part in spec.split(","):
            agent, sep, source = part.partition("=")
            if not sep or not agent.strip() or not source.strip():
                raise ConfigError(f"opponents {spec!r}: {part!r} is not an agent=spec pair")
            pairs[agent.strip()] = source.strip()
    else:
        pairs = dict.fromkeys(agents, spec.strip())
    unknown = [a for a in [*agents, *pairs] if known is not None and a not in known]
    if unknown:
        raise ConfigError(f"opponents {_show(spec)}: unknown agent(s) {unknown}; the market has {list(known or [])}")
    missing = [a for a in agents if a not in pairs]
    if missing:
        raise ConfigError(f"opponents {_show(spec)}: no strategy given for {', '.join(missing)}")
    return {a: pairs[a] for a in agents}


def policies_from_spec(spec: PolicySpec, market: Any, agents: Sequence[str], seed: int | None = 0) -> dict[str, Policy]:
    """The policies of ``agents`` in ``market`` (a PettingZoo env or a batched market) from ``spec``.

    Args:
        spec: see the module docstring.
        market: the market they will play in (its layout builds scripted strategies; run dirs are checked against
            it, see :func:`agents.learned.load_policies`).
        agents: the agents that need a policy.
        seed: the k-th agent's scripted strategy is seeded with ``seed + k`` (``None``: fresh entropy).

    Raises:
        ConfigError: a malformed spec, an agent without a strategy, a pair naming an unknown agent, or a source that
            is neither a registered strategy nor a run dir. ``agents.learned.RunDirError`` for a run dir that does
            not fit the market.
    """
    out: dict[str, Policy] = {}
    for k, (agent, source) in enumerate(parse_spec(spec, agents, market.possible_agents).items()):
        if isinstance(source, Policy):
            out[agent] = source
        elif not isinstance(source, str):
            raise ConfigError(
                f"opponents {_show(spec)}: {agent}'s source must be a strategy name, a run dir or a "
                f"Policy, got {type(source).__name__}"
            )
        elif Path(source).is_dir():
            out.update(load_policies(source, market, [agent]))
        elif source in strategy_names():
            out[agent] = make_strategy(source, market.layout, seed=None if seed is None else seed + k)
        else:
            raise ConfigError(
                f"opponents {_show(spec)}: {agent}: {source!r} is neither a strategy (one of "
                f"{strategy_names()}) nor a run dir"
            )
    return out


def _show(spec: PolicySpec) -> str:
    return (
        repr(spec)
        if isinstance(spec, str)
        else repr({a: getattr(s, "name", s) or type(s).__name__ for a, s in spec.items()})
    )


__all__ = ["PolicySpec", "parse_spec", "policies_from_spec"]
