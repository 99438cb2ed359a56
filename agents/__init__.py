"""Provider strategies behind one :class:`agents.policy.Policy` interface: scripted ones by name (the registry,
:func:`make_strategy`), the delegation strategies of seed 003, analytic bid functions, and learned ones from training
runs (:mod:`agents.learned`). A policy knows the observation layout, nothing of the mechanism's internals."""

from agents.policy import Policy, act_all
from agents.registry import make_strategy, register_strategy, strategy_names
from agents.scripted import RandomPolicy, ScriptedPolicy

__all__ = [
    "Policy",
    "act_all",
    "ScriptedPolicy",
    "RandomPolicy",
    "make_strategy",
    "register_strategy",
    "strategy_names",
]
