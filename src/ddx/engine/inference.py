"""Rank conditions given findings: single-fault Bayes with leak probabilities.

The model. Exactly one root cause is behind an incident: one of the knowledge
base's conditions, or "something not in the knowledge base" (the unlisted
hypothesis). Findings are conditionally independent given the cause. For a
condition C and a finding f:

- ``P(f present | C)`` is C's listed likelihood, or f's leak (``fp_rate``) when
  C does not list f;
- ``P(f present | unlisted)`` is the prior-weighted mean of ``P(f present | C)``
  over the conditions: a cause the knowledge base does not know looks like an
  incident of some cause, with the symptoms incidents have, not like a cause
  that shows nothing.

So evidence that one condition explains raises that condition far above the
unlisted hypothesis (its likelihoods beat an average), while evidence that no
single condition explains (a symptom of one, another of a second, a third of a
third) leaves each condition with leaks for most of it and the unlisted
hypothesis with averages: its share rises when nothing fits well. A finding no
condition lists weighs the same for all.

Explanations. The weight of a finding for C is its log-likelihood ratio
against a cause that does not list it, in decibans (10·log10):
``P(f|C)/leak(f)`` when present, ``(1-P(f|C))/(1-leak(f))`` when absent.
Positive weights argue for C, negative against; unknown findings weigh
nothing.

Temperature. Each finding's log-likelihood is divided by the knowledge base's
``temperature`` (1 by default; fitted on the incident corpus): findings that
come together (5xx and gateway errors, crashes and a crash loop) are not
independent, and counting them as if they were makes the posterior too sure.

Implied findings. A finding may imply others (``FindingDef.implies``: several
programs crashing implies a program crashing); when it is present (with a
strength above 0.5), the findings it implies are not counted again, present,
for they add nothing.

Soft findings. A finding may carry a strength ``s`` in [0.5, 1] (see
``ddx.model``): how firmly its state holds for this incident. It enters as
Jeffrey's virtual evidence, ``P(obs | H) = s P(state | H) + (1 - s) P(other
state | H)``: 1 is the plain observation, 0.5 tells nothing. An absence read in
part of the places it would show, or a change hours before the symptoms, moves
the ranking less than a plain one.

Invariants (tested with hypothesis): unknown findings change nothing, nor do
findings of strength 0.5;
probabilities lie in [0, 1] and sum with the unlisted share to 1; a present
finding that C predicts more often than the conditions' average raises C's odds
against the unlisted hypothesis and never lowers C's probability unless a rival predicts
the finding more strongly still (the rival then explains it better, which is
what a normalised differential must do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ddx.kb.model import KnowledgeBase
from ddx.model import State

__all__ = [
    "UNLISTED",
    "Posterior",
    "Weight",
    "implied_by_present",
    "likelihood_row",
    "posterior",
    "unlisted_likelihood",
    "weights",
]

UNLISTED = "(unlisted)"
DB = 10.0 / math.log(10.0)  # natural log to decibans


@dataclass(frozen=True)
class Weight:
    finding: str
    state: State
    decibans: float


@dataclass(frozen=True)
class Posterior:
    """Probabilities over the conditions (by id) and the unlisted share."""

    probs: Mapping[str, float]
    unlisted: float

    def ranked(self) -> list[tuple[str, float]]:
        """Conditions by probability, ties broken by id (deterministic)."""
        return sorted(self.probs.items(), key=lambda kv: (-kv[1], kv[0]))

    def as_vector(self, order: list[str]) -> list[float]:
        return [self.probs[c] for c in order] + [self.unlisted]


def likelihood_row(kb: KnowledgeBase, finding: str, order: list[str]) -> list[float]:
    """P(finding present | h) for every condition in ``order``, then the unlisted
    hypothesis (the prior-weighted mean over all the knowledge base's conditions)."""
    leak = kb.findings[finding].fp_rate
    row = [kb.conditions[c].likelihoods.get(finding, leak) for c in order]
    return row + [unlisted_likelihood(kb, finding)]


def unlisted_likelihood(kb: KnowledgeBase, finding: str) -> float:
    """P(finding present | a cause not in the knowledge base): the prior-weighted
    mean of P(finding present | C) over the conditions."""
    leak = kb.findings[finding].fp_rate
    total = sum(c.prior for c in kb.conditions.values())
    if not total:
        return leak
    return sum(c.prior * c.likelihoods.get(finding, leak) for c in kb.conditions.values()) / total


def _log_state(p: float, state: State, strength: float = 1.0) -> float:
    """log P(obs | H) for a finding H predicts present with probability ``p``."""
    if strength >= 1.0:
        return math.log(p) if state is State.PRESENT else math.log1p(-p)
    same = p if state is State.PRESENT else 1.0 - p
    return math.log(strength * same + (1.0 - strength) * (1.0 - same))


def implied_by_present(
    kb: KnowledgeBase, observed: Mapping[str, State], strengths: Mapping[str, float] | None = None
) -> set[str]:
    """Present findings implied by another present finding: they add nothing. A
    finding of strength 0.5 tells nothing, so it implies nothing either."""
    out: set[str] = set()
    for fid, state in observed.items():
        if state is State.PRESENT and fid in kb.findings and (strengths or {}).get(fid, 1.0) > 0.5:
            out.update(g for g in kb.findings[fid].implies if observed.get(g) is State.PRESENT)
    return out


def posterior(
    kb: KnowledgeBase, observed: Mapping[str, State], strengths: Mapping[str, float] | None = None
) -> Posterior:
    """Posterior over conditions and the unlisted hypothesis.

    ``observed`` maps finding ids to states; unknown states and ids the
    knowledge base does not define are ignored (callers validate ids first).
    ``strengths`` gives the strength of the soft ones (1 when not listed).
    """
    order = sorted(kb.conditions)
    total_prior = sum(kb.conditions[c].prior for c in order)
    scale = (1.0 - kb.unlisted_prior) / total_prior if total_prior else 0.0
    logs = [math.log(kb.conditions[c].prior * scale) for c in order] + [math.log(kb.unlisted_prior)]
    implied = implied_by_present(kb, observed, strengths)
    for fid in sorted(observed):
        state = observed[fid]
        if state is State.UNKNOWN or fid not in kb.findings or fid in implied:
            continue
        row = likelihood_row(kb, fid, order)
        strength = (strengths or {}).get(fid, 1.0)
        for i, p in enumerate(row):
            logs[i] += _log_state(p, state, strength) / kb.temperature
    top = max(logs)
    exps = [math.exp(x - top) for x in logs]
    z = sum(exps)
    probs = {c: exps[i] / z for i, c in enumerate(order)}
    return Posterior(probs=probs, unlisted=exps[-1] / z)


def weights(
    kb: KnowledgeBase, condition: str, observed: Mapping[str, State], strengths: Mapping[str, float] | None = None
) -> list[Weight]:
    """Each known finding's weight of evidence for ``condition`` (decibans against
    the unlisted hypothesis), strongest first; zero weights are left out."""
    out: list[Weight] = []
    likes = kb.conditions[condition].likelihoods
    implied = implied_by_present(kb, observed, strengths)
    for fid in sorted(observed):
        state = observed[fid]
        if state is State.UNKNOWN or fid not in likes or fid in implied:
            continue
        p, leak = likes[fid], kb.findings[fid].fp_rate
        strength = (strengths or {}).get(fid, 1.0)
        w = DB * (_log_state(p, state, strength) - _log_state(leak, state, strength)) / kb.temperature
        if abs(w) >= 0.05:
            out.append(Weight(fid, state, w))
    out.sort(key=lambda w: (-abs(w.decibans), w.finding))
    return out


def entropy(dist: Iterable[float]) -> float:
    """Shannon entropy in bits."""
    return -sum(p * math.log2(p) for p in dist if p > 0.0)
