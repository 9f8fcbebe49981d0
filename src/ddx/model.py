"""The values ddx makes: findings with their evidence.

A finding is one fact of the vocabulary (``kb/data/findings.yaml``) in one of
three states. ``unknown`` is the default: a finding nobody looked at, or that a
probe could not read, is unknown, never absent.

Two qualifiers make a known state softer than "seen" or "looked everywhere":

- ``coverage``: what was looked at and what was not (a log-sourced finding
  read the logs of three services of four). An absent finding whose sources
  were not all read says so, and its ``strength`` follows its coverage.
- ``strength``: how firmly the state holds *for this incident*, in [0.5, 1].
  1 is a plain observation; 0.5 says nothing (as unknown). The engine treats it
  as Jeffrey's virtual evidence: ``P(obs | H) = s P(state | H) + (1 - s) P(other
  state | H)``. The timing stage lowers it for a change or a kernel line long
  before the symptoms began; partial coverage lowers it for an absence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

__all__ = ["MAX_TIMES", "Coverage", "Evidence", "Finding", "State", "absent_strength", "event_times", "merge_findings"]


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
    times when the evidence has them; ``times`` the ISO-8601 times of the events
    it counts (log lines, kernel messages, changes), oldest first, at most
    ``MAX_TIMES``. ``since`` is the start of what a counter counts (a service's
    start: "8 sets refused since memcached started") when the evidence is a
    total rather than lines with their own times.
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
    since: str | None = None
    times: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Evidence quotes what a host showed (log lines, queries, command lines, URLs): no
        # password, token or key in it goes any further (output, JSON, bundles).
        from ddx.host.redact import redact_text

        for key in ("source", "summary"):
            text = getattr(self, key)
            if isinstance(text, str) and text:
                object.__setattr__(self, key, redact_text(text))
        if self.samples:
            object.__setattr__(self, "samples", tuple(redact_text(s) if isinstance(s, str) else s for s in self.samples))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"source": self.source, "summary": self.summary}
        for key in ("value", "threshold", "unit", "first_seen", "last_seen", "count", "since"):
            val = getattr(self, key)
            if val not in (None, ""):
                out[key] = val
        if self.samples:
            out["samples"] = list(self.samples)
        if self.times:
            out["times"] = list(self.times)
        return out


MAX_TIMES = 50  # event times kept per evidence item
BURST_GAP = 60.0  # seconds: events closer than this are one burst, kept as its first and last time


def event_times(times: list[float] | tuple[float, ...]) -> tuple[str, ...]:
    """ISO-8601 times of events for ``Evidence.times``: all of them when few, else
    each burst (events less than ``BURST_GAP`` apart) as an ISO-8601 interval
    ``START/END`` (a single event as its time), so that every quiet stretch
    longer than that is kept and a burst reads as continuous; the most recent
    bursts when there are too many."""
    from ddx.units import iso

    ts = sorted(times)
    if len(ts) <= MAX_TIMES:
        return tuple(iso(t) for t in ts)
    bursts: list[list[float]] = []
    for t in ts:
        if bursts and t - bursts[-1][-1] <= BURST_GAP:
            bursts[-1][1:] = [t]
        else:
            bursts.append([t])
    return tuple(iso(b[0]) if len(b) == 1 else f"{iso(b[0])}/{iso(b[1])}" for b in bursts[-MAX_TIMES:])


@dataclass(frozen=True)
class Coverage:
    """Where a finding's evidence would show, and what of that was read.

    ``read`` lists the sources read (log files, "journal", services probed);
    ``missing`` the ones that would show it but were not read, each with the
    reason (``"app (pid 812): no log found"``); ``share`` is the part of the
    places it would show that was read, in [0, 1]."""

    read: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    share: float = 1.0

    @property
    def complete(self) -> bool:
        return not self.missing and self.share >= 1.0

    def to_dict(self) -> dict[str, object]:
        return {"read": list(self.read), "missing": list(self.missing), "share": round(self.share, 3)}


def absent_strength(share: float) -> float:
    """The strength of an absence looked for in ``share`` of the places the finding
    would show: ``1 / (2 - share)``. With it the engine's Jeffrey form equals, up to a
    factor common to every cause, ``P(not seen | H) = 1 - share * P(present | H)``:
    what not seeing it in that part means. 1 for a full look, 0.5 for none."""
    share = min(1.0, max(0.0, share))
    return 1.0 / (2.0 - share)


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
    coverage: Coverage | None = None
    strength: float = 1.0
    note: str = ""  # why the strength is below 1 ("a change 6 h before the errors began")

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"id": self.id, "state": self.state.value, "source": self.source}
        if self.strength < 1.0:
            out["strength"] = round(self.strength, 3)
        if self.note:
            out["note"] = self.note
        if self.coverage is not None:
            out["coverage"] = self.coverage.to_dict()
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
    pooled, with the strength (and coverage) of the firmer one; unknown never
    overrides a known state.
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
                firm = cur if cur.strength >= f.strength else f
                by_id[f.id] = replace(firm, source=sources, evidence=cur.evidence + f.evidence)
            elif f.state is State.PRESENT:
                by_id[f.id] = f
    return [by_id[k] for k in sorted(by_id)]
