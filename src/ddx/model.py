"""The values ddx makes: findings with their evidence.

A finding is one fact of the vocabulary (``kb/data/findings.yaml``) in one of
three states. ``unknown`` is the default: a finding nobody looked at, or that a
probe could not read, is unknown, never absent.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Evidence", "Finding", "State", "merge_findings"]


class State(str, enum.Enum):
    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Evidence:
    """What was measured and where: the raw material behind a finding.

    ``value`` and ``threshold`` are numbers or short strings (``"97.2%"``);
    ``source`` is the file or command that was read; ``samples`` holds a few
    raw lines (log lines, table rows); ``first_seen``/``last_seen`` are ISO-8601
    times when the evidence has them.
    """

    source: str
    summary: str
    value: float | int | str | None = None
    threshold: float | int | str | None = None
    unit: str = ""
    samples: tuple[str, ...] = ()
    first_seen: str | None = None
    last_seen: str | None = None
    count: int | None = None

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"source": self.source, "summary": self.summary}
        for key in ("value", "threshold", "unit", "first_seen", "last_seen", "count"):
            val = getattr(self, key)
            if val not in (None, ""):
                out[key] = val
        if self.samples:
            out["samples"] = list(self.samples)
        return out


@dataclass(frozen=True)
class Finding:
    """One finding id in one state, with who said so and why.

    ``source`` names the origin: ``probe:disk``, ``case:FILE``, ``cli`` (a
    person's --saw/--ruled-out), ``check:ID``. The first evidence item is the one
    that decided the state (the terminal report shows it alone); the rest adds context.
    """

    id: str
    state: State
    source: str
    evidence: tuple[Evidence, ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "state": self.state.value, "source": self.source}
        if self.evidence:
            out["evidence"] = [e.to_dict() for e in self.evidence]
        return out


def _rank(source: str) -> int:
    """Whose word counts most: a person on the command line, then a case file, then probes."""
    if source == "cli":
        return 2
    if source.startswith("case:"):
        return 1
    return 0


def merge_findings(*groups: list[Finding] | tuple[Finding, ...]) -> list[Finding]:
    """Merge findings from several sources into one per id, sorted by id.

    Rules: a person's word (``cli`` over ``case:``) wins over probes; between
    sources of the same rank a present finding wins over an absent one (seeing
    something beats not seeing it elsewhere) and evidence of the same state is
    pooled; unknown never overrides a known state.
    """
    by_id: dict[str, Finding] = {}
    for group in groups:
        for f in group:
            if f.state is State.UNKNOWN:
                continue
            cur = by_id.get(f.id)
            if cur is None:
                by_id[f.id] = f
                continue
            cur_rank, new_rank = _rank(cur.source.split(",")[0]), _rank(f.source)
            if new_rank > cur_rank:
                by_id[f.id] = f
            elif new_rank < cur_rank:
                continue
            elif cur.state == f.state:
                sources = cur.source if f.source in cur.source.split(",") else f"{cur.source},{f.source}"
                by_id[f.id] = Finding(f.id, cur.state, sources, cur.evidence + f.evidence)
            elif f.state is State.PRESENT:
                by_id[f.id] = f
    return [by_id[k] for k in sorted(by_id)]
