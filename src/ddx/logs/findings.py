"""Findings for ``ddx diagnose`` from a log summary.

``logs.new_error_signature`` is present when error-level templates appear in
the incident part that the baseline part never showed, absent when the
baseline part is large enough (:data:`MIN_BASELINE` lines) and none appeared,
and left out (unknown) otherwise. ``logs.error_burst`` is present when the rate
of error lines, all together or of one error-level template, rose at least
``BURST_FACTOR`` times, with the same rule for absent. The evidence carries the
templates: id and text, counts, first/last time and a sample line.
"""

from __future__ import annotations

from ddx.logs.summary import Burst, LogSummary, TemplateStats
from ddx.model import Evidence, Finding, State
from ddx.units import iso_or_none

__all__ = ["MIN_BASELINE", "MAX_EVIDENCE", "log_findings"]

MIN_BASELINE = 20
MAX_EVIDENCE = 5




def _template_evidence(source: str, t: TemplateStats) -> Evidence:
    return Evidence(
        source=source,
        summary=f"new error template {t.id}: {t.template}",
        value=t.incident_count,
        unit="lines",
        samples=(t.sample,) if t.sample else (),
        first_seen=iso_or_none(t.first),
        last_seen=iso_or_none(t.last),
        count=t.incident_count,
    )


def _burst_evidence(source: str, b: Burst) -> Evidence:
    what = f"template {b.id}: {b.template}" if b.template else f"all {b.level} lines"
    return Evidence(
        source=source,
        summary=f"{what}: {b.incident_count} lines in the incident part, rate x{b.factor:.1f} over the baseline",
        value=round(b.factor, 1),
        threshold=5.0,
        unit="x baseline rate",
        samples=(b.sample,) if b.sample else (),
        count=b.incident_count,
    )


def log_findings(summary: LogSummary, *, source: str) -> list[Finding]:
    """The two log-mining findings for one summary (a list of zero to two)."""
    origin = f"probe:{source}" if not source.startswith("probe:") else source
    known = summary.baseline_lines >= MIN_BASELINE and summary.incident_lines > 0
    out: list[Finding] = []
    if summary.new_errors:
        ev = tuple(_template_evidence(source, t) for t in summary.new_errors[:MAX_EVIDENCE])
        out.append(Finding("logs.new_error_signature", State.PRESENT, origin, ev))
    elif known:
        ev = (Evidence(source, f"no new error template in {summary.incident_lines} incident lines", count=0),)
        out.append(Finding("logs.new_error_signature", State.ABSENT, origin, ev))
    bursts = [b for b in summary.bursts if b.level == "error"]
    if bursts:
        ev = tuple(_burst_evidence(source, b) for b in bursts[:MAX_EVIDENCE])
        out.append(Finding("logs.error_burst", State.PRESENT, origin, ev))
    elif known:
        ev = (Evidence(source, "error line rate did not rise against the baseline", count=0),)
        out.append(Finding("logs.error_burst", State.ABSENT, origin, ev))
    return out
