"""Likelihoods learned from incidents, with the hand-set ones as the expert's prior.

Each likelihood ``P(finding present | condition)`` set by hand in a condition
file (or the finding's leak, ``fp_rate``, where the condition does not list the
finding) is the mean of a Beta prior worth ``n0`` incidents: ``n_listed`` for a
value the expert wrote down, ``n_unlisted`` for a leak the condition only
inherits. The incidents of the corpus whose true cause is the condition, and in
which the finding was observed, update it::

    learned = (n0 * hand + present) / (n0 + present + absent)

An incident that says nothing of a finding (unknown) changes nothing. The
learned values live in ``kb/data/learned.yaml`` beside the hand-set ones they
came from (the condition files keep the hand-set values, readable), with the
counts behind them and the temperature (``KnowledgeBase.temperature``); the
loader applies them unless told not to. ``bench/kb/fit.py`` fits them and
measures them with leave-one-out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from ddx.kb.model import Condition, KnowledgeBase
from ddx.model import State

__all__ = ["Learned", "LearnedValue", "apply_learned", "fit", "learned_from_dict", "learned_to_dict"]

P_MIN, P_MAX = 0.005, 0.995  # a learned likelihood never says "never" or "always"


@dataclass(frozen=True)
class LearnedValue:
    hand: float  # the hand-set likelihood (or the finding's leak when the condition does not list it)
    learned: float
    present: int  # incidents of this condition in which the finding was seen
    absent: int  # ... and in which it was looked for and not seen


@dataclass(frozen=True)
class Learned:
    values: Mapping[str, Mapping[str, LearnedValue]]  # condition id -> finding id -> value
    temperature: float = 1.0
    n_listed: float = 8.0
    n_unlisted: float = 4.0
    cases: int = 0


def fit(kb: KnowledgeBase, incidents: Iterable[tuple[str, Mapping[str, State]]], *,
        n_listed: float = 8.0, n_unlisted: float = 4.0, temperature: float = 1.0) -> Learned:
    """Update the hand-set likelihoods of ``kb`` with ``incidents`` ((true cause, observed
    findings) pairs; causes the knowledge base does not know are skipped)."""
    counts: dict[str, dict[str, list[int]]] = {}
    n = 0
    for cause, observed in incidents:
        n += 1
        if cause not in kb.conditions:
            continue
        row = counts.setdefault(cause, {})
        for fid, state in observed.items():
            if state is State.UNKNOWN or fid not in kb.findings:
                continue
            c = row.setdefault(fid, [0, 0])
            c[0 if state is State.PRESENT else 1] += 1
    values: dict[str, dict[str, LearnedValue]] = {}
    for cid, row in sorted(counts.items()):
        listed = kb.conditions[cid].likelihoods
        for fid, (a, b) in sorted(row.items()):
            hand = kb.likelihood(cid, fid)
            n0 = n_listed if fid in listed else n_unlisted
            p = min(P_MAX, max(P_MIN, (n0 * hand + a) / (n0 + a + b)))
            values.setdefault(cid, {})[fid] = LearnedValue(hand, round(p, 4), a, b)
    return Learned(values, temperature, n_listed, n_unlisted, n)


def apply_learned(kb: KnowledgeBase, learned: Learned) -> KnowledgeBase:
    """``kb`` with the learned likelihoods and temperature. A learned value whose hand-set
    value no longer matches the knowledge base (the condition file was edited since the
    fit) is left out: the edit wins until the next fit."""
    conditions: dict[str, Condition] = dict(kb.conditions)
    for cid, row in learned.values.items():
        cond = conditions.get(cid)
        if cond is None:
            continue
        likes = dict(cond.likelihoods)
        for fid, v in row.items():
            if fid in kb.findings and abs(kb.likelihood(cid, fid) - v.hand) < 1e-9:
                likes[fid] = v.learned
        conditions[cid] = replace(cond, likelihoods=likes)
    return replace(kb, conditions=conditions, temperature=learned.temperature)


def learned_to_dict(learned: Learned) -> dict[str, object]:
    return {
        "cases": learned.cases,
        "pseudo_counts": {"listed": learned.n_listed, "unlisted": learned.n_unlisted},
        "temperature": learned.temperature,
        "conditions": {cid: {fid: {"hand": v.hand, "learned": v.learned, "present": v.present, "absent": v.absent}
                             for fid, v in row.items()} for cid, row in learned.values.items()},
    }


def learned_from_dict(data: Mapping[str, object], where: str | Path = "learned.yaml") -> Learned:
    """The inverse of ``learned_to_dict``; raises ValueError naming the field at fault."""
    def num(x: object, field: str, lo: float, hi: float) -> float:
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not lo <= float(x) <= hi:
            raise ValueError(f"{where}: {field}: expected a number in [{lo}, {hi}], got {x!r}")
        return float(x)

    conds = data.get("conditions") or {}
    if not isinstance(conds, Mapping):
        raise ValueError(f"{where}: conditions: expected a mapping")
    values: dict[str, dict[str, LearnedValue]] = {}
    for cid, row in conds.items():
        if not isinstance(row, Mapping):
            raise ValueError(f"{where}: conditions.{cid}: expected a mapping")
        for fid, v in row.items():
            field = f"conditions.{cid}.{fid}"
            if not isinstance(v, Mapping):
                raise ValueError(f"{where}: {field}: expected a mapping")
            values.setdefault(str(cid), {})[str(fid)] = LearnedValue(
                num(v.get("hand"), f"{field}.hand", 0.0, 1.0), num(v.get("learned"), f"{field}.learned", P_MIN, P_MAX),
                int(num(v.get("present", 0), f"{field}.present", 0, 1e6)),
                int(num(v.get("absent", 0), f"{field}.absent", 0, 1e6)))
    pc = data.get("pseudo_counts") or {}
    if not isinstance(pc, Mapping):
        raise ValueError(f"{where}: pseudo_counts: expected a mapping")
    return Learned(values, num(data.get("temperature", 1.0), "temperature", 0.1, 10.0),
                   num(pc.get("listed", 8.0), "pseudo_counts.listed", 0.0, 1e6),
                   num(pc.get("unlisted", 4.0), "pseudo_counts.unlisted", 0.0, 1e6),
                   int(num(data.get("cases", 0), "cases", 0, 1e9)))
