"""Log template mining: which messages are new, which surged, and what they say.

Public API (the submodules load on first use, so ``import ddx.logs`` is free)::

    summarize(lines, *, baseline_until=None, since=None, source="<lines>") -> LogSummary
        Mine an in-memory list of log lines (e.g. the tail a probe read); the
        header format is detected from the lines themselves.
    summarize_many({source: lines, ...}, *, baseline_until=None, since=None) -> LogSummary
        Several in-memory logs in one summary (one header format per source).
    summarize_files(paths, *, baseline_until=None, since=None) -> LogSummary
        The same over files (plain, .gz, "-" for stdin), one header format per
        file; unreadable files become notes in ``skipped`` unless all fail.
    log_findings(summary, *, source) -> list[Finding]
        ``logs.new_error_signature`` and ``logs.error_burst`` with the
        templates as evidence (present, absent, or left out when unknown).

``LogSummary`` (``ddx.logs.summary``) has ``templates`` (``TemplateStats``:
id, template, count, level, first/last epoch seconds or None, sample line,
baseline and incident counts), ``errors``, ``new``, ``new_errors``, ``bursts``
(``Burst``: template or level, counts and factor), ``skipped`` notes, the line
counts of both parts and the split used. Times: ``baseline_until`` and
``since`` are epoch seconds. Without ``baseline_until`` the baseline is the
first three quarters of the time span, or of the lines when no line has a
timestamp. The algorithm: ``ddx.logs.miner``; headers: ``ddx.logs.headers``;
file reading: ``ddx.logs.reader``; see docs/logs.md.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing costs milliseconds
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from ddx.logs.summary import LogSummary
    from ddx.model import Finding

__all__ = [
    "Burst",
    "LogSummary",
    "TemplateMiner",
    "TemplateStats",
    "log_findings",
    "summarize",
    "summarize_files",
    "summarize_many",
    "template_id",
]

_LAZY = {
    "Burst": "ddx.logs.summary",
    "LogSummary": "ddx.logs.summary",
    "TemplateStats": "ddx.logs.summary",
    "TemplateMiner": "ddx.logs.miner",
    "template_id": "ddx.logs.miner",
}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'ddx.logs' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(mod), name)


def summarize(
    lines: Iterable[str],
    *,
    baseline_until: float | None = None,
    since: float | None = None,
    source: str = "<lines>",
    reference_time: float | None = None,
) -> LogSummary:
    """Summarise log lines (strings without newlines) from one source."""
    from ddx.logs.summary import SummaryBuilder

    b = SummaryBuilder(baseline_until=baseline_until, since=since, reference_time=reference_time)
    b.add_lines(lines, source)
    return b.build()


def summarize_many(
    sources: Mapping[str, Iterable[str]],
    *,
    baseline_until: float | None = None,
    since: float | None = None,
    reference_time: float | None = None,
) -> LogSummary:
    """Summarise several in-memory logs together, e.g. the tails a probe read."""
    from ddx.logs.summary import SummaryBuilder

    b = SummaryBuilder(baseline_until=baseline_until, since=since, reference_time=reference_time)
    for source, lines in sources.items():
        b.add_lines(lines, source)
    return b.build()


def summarize_files(
    paths: Iterable[str],
    *,
    baseline_until: float | None = None,
    since: float | None = None,
) -> LogSummary:
    """Summarise log files together; each file gets its own header format."""
    import os

    from ddx.errors import UsageError
    from ddx.logs.reader import ReadNotes, read_lines
    from ddx.logs.summary import SummaryBuilder

    paths = list(paths)
    b = SummaryBuilder(baseline_until=baseline_until, since=since)
    failed: list[str] = []
    for path in paths:
        notes = ReadNotes(path)
        ref = None
        if path != "-":
            try:
                ref = os.stat(path).st_mtime  # a log's lines are older than its last write
            except OSError:
                ref = None
        b.time_parser.set_reference(ref)
        try:
            b.add_lines(read_lines(path, notes), path)
        except UsageError as exc:
            failed.append(str(exc))
            continue
        b.skipped.extend(notes.notes())
    if failed and len(failed) == len(paths):
        raise UsageError("; ".join(failed))
    b.skipped.extend(failed)
    return b.build()


def log_findings(summary: LogSummary, *, source: str) -> list[Finding]:
    from ddx.logs.findings import log_findings as _impl

    return _impl(summary, source=source)
