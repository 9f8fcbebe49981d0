"""From findings to a diagnosis: the ranked differential and the next checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddx.engine.checks import CheckAdvice, rank_checks
from ddx.engine.facts import Facts
from ddx.engine.inference import Weight, posterior, weights
from ddx.kb.model import KnowledgeBase
from ddx.model import Finding, State

__all__ = ["Diagnosis", "Hypothesis", "diagnose", "LIKELY"]

LIKELY = 0.5  # above this a hypothesis is called likely; "nothing looks wrong" needs all below it
FIRM = 0.75  # a present symptom this firm is "something is wrong"; softer ones (long before the trouble) are not


@dataclass(frozen=True)
class Hypothesis:
    id: str
    name: str
    probability: float
    prior: float
    support: tuple[Weight, ...]  # findings that argue for it, strongest first
    against: tuple[Weight, ...]  # findings that argue against it, strongest first


@dataclass(frozen=True)
class Diagnosis:
    hypotheses: tuple[Hypothesis, ...]  # every condition, most probable first
    unlisted: float  # share for "a cause not in the knowledge base"
    next_checks: tuple[CheckAdvice, ...]
    findings: tuple[Finding, ...]  # the known findings used, sorted by id
    symptoms: tuple[str, ...]  # present findings of kind "symptom", of strength FIRM or more
    meta: Mapping[str, Any] = field(default_factory=dict)  # title, source, story, host, probes...

    def not_looked_at(self) -> list[tuple[str, tuple[str, ...]]]:
        """What was not looked at, each with the findings it leaves softer or unknown:
        sources a finding's coverage misses (a service whose logs were not found), and
        probes that could not run. "Looked and not there" is an absent finding;
        this is the rest."""
        gaps: dict[str, list[str]] = {}
        for f in self.findings:
            if f.coverage is not None:
                for m in f.coverage.missing:
                    gaps.setdefault(m, []).append(f.id)
        for p in self.meta.get("probes", []):
            if p.get("status") in ("failed", "timeout", "denied"):
                gaps.setdefault(f"could not run probe {p['name']}: {p.get('status')}: {p.get('reason', '')}".rstrip(": "), [])
        return [(k, tuple(v)) for k, v in gaps.items()]

    @property
    def nothing_wrong(self) -> bool:
        """No symptom is present and no condition is likely."""
        return not self.symptoms and all(h.probability <= LIKELY for h in self.hypotheses)


def diagnose(
    kb: KnowledgeBase,
    findings: Sequence[Finding],
    *,
    meta: Mapping[str, Any] | None = None,
    checks: int = 3,
    facts: Facts | None = None,
) -> Diagnosis:
    """Rank every condition of ``kb`` for ``findings`` (ids must be in the vocabulary)."""
    known = [f for f in findings if f.state is not State.UNKNOWN]
    observed: dict[str, State] = {f.id: f.state for f in known}
    strengths = {f.id: max(0.5, min(1.0, f.strength)) for f in known if f.strength < 1.0}
    post = posterior(kb, observed, strengths)
    hyps = []
    for cid, prob in post.ranked():
        cond = kb.conditions[cid]
        ws = weights(kb, cid, observed, strengths)
        hyps.append(
            Hypothesis(
                id=cid,
                name=cond.name,
                probability=prob,
                prior=cond.prior,
                support=tuple(w for w in ws if w.decibans > 0),
                against=tuple(w for w in ws if w.decibans < 0),
            )
        )
    advice = rank_checks(kb, observed, post, limit=checks, facts=facts)
    symptoms = tuple(
        f.id for f in sorted(known, key=lambda f: f.id)
        if f.state is State.PRESENT and kb.findings[f.id].kind == "symptom" and f.strength >= FIRM
    )
    return Diagnosis(
        hypotheses=tuple(hyps),
        unlisted=post.unlisted,
        next_checks=tuple(advice),
        findings=tuple(sorted(known, key=lambda f: f.id)),
        symptoms=symptoms,
        meta=dict(meta or {}),
    )
