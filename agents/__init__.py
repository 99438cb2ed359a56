"""Provider strategies behind one :class:`agents.policy.Policy` interface: scripted ones by name, learned ones from
training runs."""

from agents.policy import Policy, act_all
from agents.scripted import RandomPolicy, ScriptedPolicy, make_strategy, register_strategy, strategy_names
import agents.delegation  # noqa: E402,F401  (registers the sb_* strategies of seed 003)

__all__ = ["Policy", "act_all", "ScriptedPolicy", "RandomPolicy", "make_strategy", "register_strategy",
           "strategy_names"]
