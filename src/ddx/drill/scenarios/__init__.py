"""The drill's scenarios: one real fault each, injected into a running sandbox stack.

A scenario names the condition a correct diagnosis ranks first (``expected``;
empty for the healthy control), may adjust the stack before it starts
(``prepare``), and breaks it (``inject``). ``inject`` returns once the fault is
in place; the runner then diagnoses until ddx's top cause is right or the time
budget is spent. Faults reach only what the sandbox created; a scenario that must
touch something shared (the kernel log) says so in ``host_effects`` and runs only
when the user allows it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ddx.drill.stack import Stack, StackOptions

__all__ = ["SCENARIO_MODULES", "Scenario", "all_scenarios", "register"]

# Modules that register scenarios, in the order `ddx drill list` shows them.
SCENARIO_MODULES = ("healthy", "host", "capacity", "web", "db")


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: str  # condition id ranked first by a correct diagnosis; "" for the healthy control
    summary: str  # what breaks, in a sentence
    inject: Callable[[Stack], None]
    prepare: Callable[[StackOptions], None] | None = None
    needs: Callable[[], list[str]] | None = None  # extra preconditions: what is missing, with how to get it
    host_effects: str = ""  # non-empty: what the fault leaves outside the sandbox (needs --allow-host-effects)
    config: str = ""  # extra ddx.toml lines for this scenario's diagnosis


_REGISTRY: dict[str, Scenario] = {}


def register(s: Scenario) -> Scenario:
    if s.name in _REGISTRY:
        raise ValueError(f"scenario {s.name!r} registered twice")
    _REGISTRY[s.name] = s
    return s


def _module_rank(s: Scenario) -> int:
    mod = getattr(s.inject, "__module__", "").rpartition(".")[2]
    return SCENARIO_MODULES.index(mod) if mod in SCENARIO_MODULES else len(SCENARIO_MODULES)


def all_scenarios() -> dict[str, Scenario]:
    """Every scenario, in the order of SCENARIO_MODULES and, within a module, of
    registration, whichever module happened to be imported first."""
    for mod in SCENARIO_MODULES:
        importlib.import_module(f"ddx.drill.scenarios.{mod}")
    ordered = sorted(enumerate(_REGISTRY.values()), key=lambda kv: (_module_rank(kv[1]), kv[0]))
    return {s.name: s for _, s in ordered}
