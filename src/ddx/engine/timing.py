"""Evidence in time: when the trouble began, and how much each dated finding belongs to it.

**The onset.** Every present symptom is a point in time: each dated event it
counts (a log line, a kernel message; ``Evidence.times``, else its first and
last times), and "now" for a state seen at the time of looking (a full disk, a
service down). The points closer than ``EPISODE_GAP`` to the next form one
episode; a state seen now continues a dated run that ended within ``LOOK_GAP``
of the look (it began some time before ddx looked, and people look minutes
after the alert); the onset is the start of the last episode, the trouble that is going
on (or, when nothing is going on now, the last burst of it). A symptom that
comes with a rhythm (a crash every two minutes) is one run from its first
event only when nothing in the episode comes densely; beside errors that began
a minute ago it is background, and only its last events join the episode.

**Relevance.** A dated finding weighs by its time against the onset, as the
strength of a soft finding (``ddx.model``):

- a symptom whose last event falls in the episode (at or after the onset less
  ``ONSET_SLACK``) counts fully; one that stopped before decays towards "tells
  nothing" (0.5) with ``EVENT_TAU``: an MCE burst an hour before a disk filled
  up says little about the full disk, and nothing against it;
- a count since a service's start (``Evidence.since``: "8 sets refused since
  memcached started") happened some time in that span: fully relevant when the
  service started within ``SINCE_FULL``, less the longer ago it started
  (``SINCE_TAU``), never below "tells nothing";
- a change (deploy, upgrade, configuration, failover) is a suspect when it came
  shortly before the onset: within ``CHANGE_FULL`` it counts fully, earlier it
  decays with ``CHANGE_TAU`` towards ``CHANGE_FLOOR``, below "tells nothing": a
  package installed hours before the first error and followed by none is
  context, and the finding ("changed shortly before the incident") becomes an
  absence. A change after the onset is a response, not a cause
  (``CHANGE_AFTER``);
- "errors began right after a change" (``change.errors_began_after_*``) is
  dated by the errors it aligns, not by the change: it counts fully when
  those errors belong to the episode, and decays like a symptom when they
  stopped before it.

The numbers are judgement: most regressions show within minutes of the change
reaching traffic, and the events of one fault come together, within a minute;
a minute and a half of quiet between an event and the errors makes them two.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ddx.kb.model import KnowledgeBase
from ddx.model import Finding, State
from ddx.units import duration, iso

__all__ = [
    "CHANGE_AFTER",
    "CHANGE_FLOOR",
    "CHANGE_FULL",
    "CHANGE_TAU",
    "EPISODE_GAP",
    "EVENT_TAU",
    "LOOK_GAP",
    "ONSET_SLACK",
    "SPARSE_MAX_GAP",
    "SPARSE_MIN_GAPS",
    "Onset",
    "change_relevance",
    "estimate_onset",
    "event_relevance",
    "finding_spans",
    "finding_times",
    "since_relevance",
    "weigh_by_time",
]

EPISODE_GAP = 60.0  # seconds between symptoms of one episode at most
LOOK_GAP = 300.0  # a state seen at the time of looking continues an episode that ended this recently
ONSET_SLACK = 30.0  # how early a symptom may stop before the onset and still count as part of it
SPARSE_MIN_GAPS = 4  # a symptom's events are "sparse but one run" only with a rhythm of this many gaps
SPARSE_MAX_GAP = 600.0  # ... and never more than ten minutes apart
DENSE_EVENTS = 3  # a symptom with this many events within a minute of each other comes densely
DENSE_SPAN = 10.0  # ... or one whose events (a burst) span this many seconds
EVENT_TAU = 120.0  # an event this long before that keeps e^-1 of its weight above "tells nothing"
CHANGE_FULL = 120.0  # a change this close before the onset (or after it, within the slack) counts fully
CHANGE_TAU = 900.0  # ... earlier, its weight falls by e^-1 every 15 minutes
CHANGE_FLOOR = 0.15  # towards this strength: "nothing changed shortly before"
CHANGE_AFTER = 0.2  # a change after the onset (beyond the slack): a response, not a cause
FULL = 0.97  # the strength of a dated finding that clearly belongs to the episode
SINCE_FULL = 3600.0  # a count since a start less than an hour ago belongs to this incident
SINCE_TAU = 6 * 3600.0  # ... one since longer ago, less: e^-1 of its weight six hours later
ALIGNED = "change.errors_began_after"  # findings that date a change against the errors it started


@dataclass(frozen=True)
class Onset:
    """When the trouble began (epoch seconds; None when nothing is dated) and why ddx thinks so."""

    time: float | None
    basis: str
    ongoing: bool = False  # a symptom is still there at the time of looking

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"basis": self.basis, "ongoing": self.ongoing}
        if self.time is not None:
            out["time"] = iso(self.time)
        return out


def _parse(ts: str | None) -> float | None:
    if not ts:
        return None
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def finding_spans(f: Finding) -> list[tuple[float, float]]:
    """The events of a finding's evidence as (start, end) spans, sorted: each of its
    ``times`` (a burst ``START/END`` as a span, an event as a point), else its first
    to last seen as one span (events between them, times not kept)."""
    out: list[tuple[float, float]] = []
    for ev in f.evidence:
        spans = []
        for x in ev.times:
            a, _, b = x.partition("/")
            start, end = _parse(a), _parse(b) if b else _parse(a)
            if start is not None and end is not None:
                spans.append((start, max(start, end)))
        if not spans:
            seen = [t for t in (_parse(ev.first_seen), _parse(ev.last_seen)) if t is not None]
            if seen:
                spans.append((min(seen), max(seen)))
        out.extend(spans)
    return sorted(out)


def finding_times(f: Finding) -> list[float]:
    """The event times of a finding's evidence (``finding_spans``' starts and ends), sorted."""
    return sorted({t for span in finding_spans(f) for t in span})


def _dated(f: Finding) -> bool:
    return any(ev.times or ev.first_seen or ev.last_seen for ev in f.evidence)


def _since(f: Finding) -> float | None:
    """The earliest start of the counts a finding's evidence gives (None when it has none)."""
    starts = [t for t in (_parse(ev.since) for ev in f.evidence) if t is not None]
    return min(starts) if starts else None


def since_relevance(start: float, now: float) -> float:
    """How much a count since ``start`` belongs to what is happening at ``now``."""
    span = max(0.0, now - start)
    if span <= SINCE_FULL:
        return FULL
    return 0.5 + (FULL - 0.5) * math.exp(-(span - SINCE_FULL) / SINCE_TAU)


def _run(spans: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """(start, end) of the last run of a finding's events (spans, a burst being one): back
    from its last event while the quiet gaps between them stay within ``EPISODE_GAP``, or within four times its usual gap for a
    symptom that comes sparsely (an error every few minutes on a quiet site). A rhythm
    takes ``SPARSE_MIN_GAPS`` gaps to show, and "every few minutes" is at most
    ``SPARSE_MAX_GAP`` apart: two crashes half an hour apart are two episodes."""
    spans = list(spans)
    gaps = sorted(max(0.0, b[0] - a[1]) for a, b in zip(spans, spans[1:]))
    usual = gaps[(len(gaps) - 1) // 2] if len(gaps) >= SPARSE_MIN_GAPS else 0.0
    limit = max(EPISODE_GAP, min(SPARSE_MAX_GAP, 4.0 * usual))
    end = max(s[1] for s in spans)
    return _back(spans, limit), end


def _back(spans: Sequence[tuple[float, float]], limit: float) -> float:
    """The start of the last run of spans whose gaps stay within ``limit``."""
    i = len(spans) - 1
    while i > 0 and spans[i][0] - spans[i - 1][1] <= limit:
        i -= 1
    return spans[i][0]


def estimate_onset(findings: Iterable[Finding], kb: KnowledgeBase, now: float) -> Onset:
    """The start of the last episode of present symptoms (see the module docstring):
    each symptom's last run of events, and "now" for one seen at the time of looking;
    runs that overlap or come within ``EPISODE_GAP`` of each other are one episode."""
    runs: list[tuple[float, float, str]] = []
    tight: list[tuple[float, float, str]] = []  # the same runs, each from its last dense stretch
    dense: set[str] = set()  # symptoms whose last run is several events close together, not a rhythm
    current: list[str] = []
    for f in findings:
        fd = kb.findings.get(f.id)
        if f.state is not State.PRESENT or fd is None or fd.kind != "symptom":
            continue
        spans = [s for s in finding_spans(f) if s[0] <= now + 60]
        if spans:
            start, end = _run(spans)
            near = _back(spans, EPISODE_GAP)
            runs.append((start, end, f.id))
            tight.append((near, end, f.id))
            stretch = [sp for sp in spans if sp[0] >= near]
            if start == near and (len(stretch) >= DENSE_EVENTS or end - near >= DENSE_SPAN):
                dense.add(f.id)
        elif _since(f) is None:  # a count since a start dates nothing
            current.append(f.id)
    if current:
        # A state seen now began some time before the look, and people look minutes after the
        # alert: it continues the last dated run that ended within LOOK_GAP, not an episode of its own.
        recent = [r[1] for r in runs if now - LOOK_GAP <= r[1] <= now]
        begun = min(now, max(recent) + EPISODE_GAP) if recent else now
        runs.append((begun, now, current[0]))
        tight.append((begun, now, current[0]))
    if not runs:
        return Onset(None, "no symptom with a time: judged against the time of looking")
    runs = _episode_runs(runs, tight, dense)
    runs.sort(key=lambda r: r[1])
    start, _end, fid = runs[-1]
    for s0, e0, f0 in reversed(runs[:-1]):
        if e0 >= start - EPISODE_GAP:
            if s0 < start:
                start, fid = s0, f0
        else:
            break
    ongoing = bool(current) or now - runs[-1][1] <= EPISODE_GAP
    if start >= now - 1 and current:
        return Onset(start, f"{', '.join(current[:3])} seen at the time of looking; no symptom with a time "
                            f"came before", ongoing)
    before = [e for s0, e, _f in runs if e < start]
    quiet = f", after {duration(start - max(before))} without any" if before else ""
    return Onset(start, f"the first {fid} symptom ({iso(start)}){quiet}", ongoing)


def _episode_runs(runs: list[tuple[float, float, str]], tight: list[tuple[float, float, str]],
                  dense: set[str]) -> list[tuple[float, float, str]]:
    """The runs the onset is taken from. A symptom that comes with a rhythm (a crash every two
    minutes) reaches back to its first event only when no symptom of the last episode comes
    densely (``dense``: several events, or a burst, within a minute of each other): beside
    errors that began a minute ago, a program that has crashed every few minutes for an hour
    is background going on, not the start of this trouble."""
    last_end = max(r[1] for r in tight)
    if any(t[2] in dense and t[1] >= last_end - EPISODE_GAP for t in tight):
        return tight
    return runs


def event_relevance(last: float, onset: float) -> float:
    """How much a symptom whose last event was at ``last`` belongs to the episode begun at ``onset``."""
    if last >= onset - ONSET_SLACK:
        return FULL
    gap = onset - ONSET_SLACK - last
    return 0.5 + (FULL - 0.5) * math.exp(-gap / EVENT_TAU)


def change_relevance(times: Sequence[float], onset: float) -> tuple[float, float | None]:
    """(strength, time of the change judged) for changes at ``times`` against the onset: the
    most suspicious one, the latest before the onset (allowing the onset's slack)."""
    before = [t for t in times if t <= onset + ONSET_SLACK]
    if not before:
        return CHANGE_AFTER, (min(times) if times else None)
    t = max(before)
    gap = onset - t
    if gap <= CHANGE_FULL:
        return FULL, t
    return CHANGE_FLOOR + (FULL - CHANGE_FLOOR) * math.exp(-(gap - CHANGE_FULL) / CHANGE_TAU), t


def _note_event(last: float, ref: float, onset: Onset) -> str:
    began = f"the trouble began ({iso(ref)})" if onset.time is not None else f"ddx looked ({iso(ref)})"
    return f"last seen {duration(ref - last)} before {began}: it may not belong to it"


def weigh_by_time(findings: Sequence[Finding], kb: KnowledgeBase, now: float) -> tuple[list[Finding], Onset]:
    """Findings with strengths set by their times against the onset, and the onset.
    Findings of a person (``cli``) or a case file are taken as said."""
    onset = estimate_onset(findings, kb, now)
    ref = onset.time if onset.time is not None else now
    out: list[Finding] = []
    for f in findings:
        fd = kb.findings.get(f.id)
        if fd is None or f.state is not State.PRESENT or f.source == "cli" or f.source.startswith("case:"):
            out.append(f)
            continue
        ts = finding_times(f) if _dated(f) else []
        start = _since(f) if not ts else None
        if start is not None and fd.kind == "symptom":
            r = since_relevance(start, now)
            out.append(f if r >= FULL else replace(
                f, strength=min(f.strength, r),
                note=f"counted since a start {duration(now - start)} ago ({iso(start)}): not necessarily now"))
            continue
        if not ts:
            out.append(f)
            continue
        if f.id.startswith(ALIGNED):
            # The finding already aligned a change with the errors that began right after it: it
            # belongs to the trouble when those errors do, wherever the onset was put (a rhythm of
            # unrelated crashes may have dated it earlier than the change).
            r = event_relevance(ts[-1], ref)
            out.append(f if r >= FULL else replace(
                f, strength=min(f.strength, r),
                note=f"the errors it aligns began {duration(ref - ts[-1])} before the trouble began: "
                     f"they may not belong to it"))
            continue
        if f.id.startswith("change.") and fd.kind == "context":
            r, t = change_relevance(ts, ref)
            if r >= FULL:
                out.append(f)
                continue
            when = "after the trouble began" if t is not None and t > ref + ONSET_SLACK else (
                f"{duration(ref - t)} before the trouble began" if t is not None else "")
            if r < 0.5:
                note = (f"the last change came {when} ({iso(ref)}), followed by none closer: "
                        f"context, not a suspect")
                out.append(replace(f, state=State.ABSENT, strength=min(f.strength, 1.0 - r), note=note))
            else:
                out.append(replace(f, strength=min(f.strength, r), note=f"the last change came {when}"))
            continue
        if fd.kind == "symptom":
            r = event_relevance(ts[-1], ref)
            if r < FULL:
                out.append(replace(f, strength=min(f.strength, r), note=_note_event(ts[-1], ref, onset)))
                continue
        out.append(f)
    return out, onset
