"""The knowledge base as values: finding definitions, conditions, checks."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Check", "Condition", "FindingDef", "KnowledgeBase", "Outcome"]


@dataclass(frozen=True)
class FindingDef:
    """One finding of the vocabulary.

    ``fp_rate`` is the leak: how often the finding shows up in an incident whose
    root cause is none of the conditions that list it. ``kind`` is ``symptom``
    (something is wrong) or ``context`` (a change, the scope, the load), so that
    ddx can tell "nothing looks wrong" from "something is wrong, cause unknown".
    ``implies``: findings that are always present when this one is (several
    programs crashing implies a program crashing); when this one is present they
    add nothing, and the engine does not count them again.
    """

    id: str
    description: str
    fp_rate: float
    kind: str = "symptom"
    seen_by: str = ""
    implies: tuple[str, ...] = ()

    @property
    def area(self) -> str:
        return self.id.split(".", 1)[0]


@dataclass(frozen=True)
class Outcome:
    seen: str
    means: str


@dataclass(frozen=True)
class Check:
    """Something a person (or ddx) can do to reveal findings."""

    id: str
    title: str
    run: tuple[str, ...]
    outcomes: tuple[Outcome, ...]
    cost: float  # seconds of an engineer's time
    auto: bool  # read-only and fast: ddx may run it itself
    reveals: tuple[str, ...]
    condition: str  # the condition file that defines it
    probe: str = ""  # the ddx probe that performs it, if any


@dataclass(frozen=True)
class Condition:
    id: str
    name: str
    summary: str
    prior: float
    likelihoods: Mapping[str, float]  # P(finding present | this condition is the root cause)
    checks: tuple[str, ...]  # check ids, own and borrowed
    remedies: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    file: str = ""


@dataclass(frozen=True)
class KnowledgeBase:
    findings: Mapping[str, FindingDef]
    conditions: Mapping[str, Condition]
    checks: Mapping[str, Check]
    unlisted_prior: float = 0.15  # share of incidents whose cause is not in the knowledge base
    sources: tuple[str, ...] = field(default=())
    # Evidence is counted as log-likelihood / temperature: above 1 the findings' weights are
    # shrunk (the naive-Bayes model counts correlated findings as independent and is too sure).
    # Fitted on the incident corpus with leave-one-out (bench/kb/fit.py, kb/data/learned.yaml).
    temperature: float = 1.0

    def likelihood(self, condition: str, finding: str) -> float:
        """P(finding present | condition), the finding's leak when the condition does not list it."""
        p = self.conditions[condition].likelihoods.get(finding)
        return self.findings[finding].fp_rate if p is None else p
