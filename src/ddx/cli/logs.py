"""``ddx logs``: mine log templates (``parse``) and say what changed (``summary``).

The library is imported inside the command functions only, so that building
the parser for ``ddx --help`` or ``ddx diagnose`` costs nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddx.cli._common import add_command, count_arg

LOGS_DESCRIPTION = """\
Turn log lines into templates (the message with its variable parts as <*>)
with stable ids, and summarise which templates are new or surging.

Headers (syslog, ISO timestamps, nginx, Apache, Python logging, logcat,
journald export, JSON lines) are detected per file and split from the message.
"""

LOGS_EXAMPLES = """\
  ddx logs parse /var/log/syslog --csv > templates.csv
  ddx logs summary /var/log/nginx/error.log /var/log/syslog
  ddx logs summary app.log --baseline-until 2024-05-01T14:00 --json
"""

PARSE_DESCRIPTION = """\
Print, for every input line in order, its line number, template id and
template. A file is read twice (learn the templates, then label each line), so
every line of a template gets the template's final id; stdin, or --stream,
labels each line as it arrives, with the template as it was then (ids of early
lines may differ from later ones when a template generalised).

Lines that cannot be mined (over 1 MiB, binary files) are left out, with a
note on stderr; line numbers always count every physical line. A pipe, a FIFO
or a device is read once, as stdin is. Control characters in the output are
shown as escapes (\x1b); a CSV cell that a spreadsheet would run as a formula
(=, +, -, @ first) starts with a quote.
"""

PARSE_EXAMPLES = """\
  ddx logs parse app.log                      line, id and template, tab-separated
  ddx logs parse app.log.gz --csv             CSV with a header row
  journalctl -o export | ddx logs parse - --csv
  tail -f app.log | ddx logs parse -          streaming
"""

SUMMARY_DESCRIPTION = """\
Summarise one or more log files: templates by count, the error-level ones,
templates that are new compared with the baseline part of the logs, and
templates (or all error lines) whose rate surged, each with first/last time
and a sample line.

The baseline part is the lines before --baseline-until; by default the first
three quarters of the time the logs cover (or of the lines, when they carry no
timestamps). Lines before --since are ignored.
TIME is ISO-8601 (2024-05-01T14:30, local time unless it has a zone), epoch
seconds, or a duration before now (30m, 2h, 1d).
"""

SUMMARY_EXAMPLES = """\
  ddx logs summary /var/log/syslog
  ddx logs summary app.log app.log.1.gz --since 6h --baseline-until 30m
  ddx logs summary app.log --json | jq '.new_errors'
"""


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "logs",
        help="mine log templates; summarise new and surging messages",
        description=LOGS_DESCRIPTION,
        examples=LOGS_EXAMPLES,
        func=_logs_help,
    )
    parser.set_defaults(_logs_parser=parser)
    lsub = parser.add_subparsers(dest="logs_command", metavar="SUBCOMMAND")
    p = add_command(
        lsub,
        "parse",
        help="template id and template for every line",
        description=PARSE_DESCRIPTION,
        examples=PARSE_EXAMPLES,
        func=run_parse,
    )
    p.add_argument("file", metavar="FILE", help="log file (plain or .gz), or - for stdin")
    p.add_argument("--csv", action="store_true", help="CSV with a header row: line,template_id,template")
    p.add_argument("--stream", action="store_true", help="one pass: label lines as they arrive")
    s = add_command(
        lsub,
        "summary",
        help="new, surging and error-level templates",
        description=SUMMARY_DESCRIPTION,
        examples=SUMMARY_EXAMPLES,
        func=run_summary,
    )
    s.add_argument("files", metavar="FILE", nargs="+", help="log files (plain or .gz), or - for stdin")
    s.add_argument("--since", metavar="TIME", help="ignore lines before TIME")
    s.add_argument("--baseline-until", metavar="TIME", help="baseline part: lines before TIME")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.add_argument("--top", metavar="N", type=count_arg, default=10, help="templates to list per section (default 10)")


def _logs_help(args: argparse.Namespace) -> int:
    args._logs_parser.print_help()
    return 2


def _note(lines: list[str]) -> None:
    from ddx.render.safe import printable

    for n in lines:
        print(f"ddx: note: {printable(n)}", file=sys.stderr)



def run_parse(args: argparse.Namespace) -> int:
    import csv

    from ddx.logs.headers import records
    from ddx.logs.miner import TemplateMiner
    from ddx.logs.reader import ReadNotes, read_lines, rereadable
    from ddx.render.safe import csv_cell, printable

    path: str = args.file
    out = sys.stdout
    if args.csv:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(("line", "template_id", "template"))

        def emit(row: tuple[int, str, str]) -> None:
            w.writerow((row[0], row[1], csv_cell(printable(row[2]))))
    else:

        def emit(row: tuple[int, str, str]) -> None:
            out.write(f"{row[0]}\t{row[1]}\t{printable(row[2])}\n")

    miner = TemplateMiner()
    root = miner.root
    notes = ReadNotes(path)
    rec_notes: list[str] = []
    detected: list[Any] = []
    if args.stream or not rereadable(path):
        for rec in records(read_lines(path, notes), notes=rec_notes, detected=detected):
            c = miner.add(rec.message)
            emit((rec.line, c.template_id, c.template))
    else:
        for rec in records(read_lines(path, notes), notes=rec_notes, detected=detected):
            miner.add(rec.message)
        notes = ReadNotes(path)  # report what the labelling pass saw
        rec_notes = []
        fmt = detected[0] if detected else None
        for rec in records(read_lines(path, notes), fmt=fmt, notes=rec_notes):
            hit = miner.match(rec.message)
            c = root(hit) if hit is not None else miner.add(rec.message)
            emit((rec.line, c.template_id, c.template))
    out.flush()
    _note(notes.notes() + [f"{path}: {n}" for n in rec_notes])
    return 0


def run_summary(args: argparse.Namespace) -> int:
    from ddx.logs import summarize_files
    from ddx.logs.times import parse_time_arg
    from ddx.render.safe import json_text

    since = parse_time_arg(args.since, option="--since") if args.since else None
    until = parse_time_arg(args.baseline_until, option="--baseline-until") if args.baseline_until else None
    summary = summarize_files(args.files, baseline_until=until, since=since)
    if args.json:
        sys.stdout.write(json_text(summary.to_dict()) + "\n")
    else:
        sys.stdout.write(render_summary(summary, top=args.top))
    return 0


def render_summary(summary: Any, *, top: int = 10) -> str:
    """The text report of a ``LogSummary``; what came from the logs (templates,
    samples, file names) is shown with ``printable``."""
    from ddx.render.safe import printable
    from ddx.units import iso_or_none

    def when(t: float | None) -> str:
        return (iso_or_none(t) or "-").replace("T", " ")[:19]

    def row(t: Any, count: int) -> list[str]:
        lvl = t.level or "-"
        head = f"  {t.id}  {count:>7}  {lvl:<7}  {t.template}"
        out = [head]
        if t.first is not None:
            out.append(f"      first {when(t.first)}  last {when(t.last)}")
        if t.sample:
            sample = t.sample if len(t.sample) <= 200 else t.sample[:197] + "..."
            out.append(f"      sample: {sample}")
        return out

    lines = [
        f"{summary.lines} lines: baseline {summary.baseline_lines}, incident {summary.incident_lines}",
        f"  {summary.split}",
    ]
    if summary.formats:
        lines.append("  headers: " + ", ".join(f"{s} ({f})" for s, f in summary.formats))
    lines.append("")
    lines.append(f"New error-level templates ({len(summary.new_errors)}):")
    for t in summary.new_errors[:top]:
        lines += row(t, t.incident_count)
    lines.append("")
    lines.append(f"Surges ({len(summary.bursts)}):")
    for b in summary.bursts[:top]:
        what = f"{b.id}  {b.template}" if b.template else f"all {b.level} lines"
        lines.append(f"  x{b.factor:<6.1f} {b.baseline_count:>6} -> {b.incident_count:<6} {what}")
    others = [t for t in summary.new if t.level != "error"]
    lines.append("")
    lines.append(f"Other new templates ({len(others)}):")
    for t in others[:top]:
        lines += row(t, t.incident_count)
    errors = summary.errors
    lines.append("")
    lines.append(f"Error-level templates ({len(errors)}), by count:")
    for t in errors[:top]:
        lines += row(t, t.count)
    lines.append("")
    lines.append(f"Templates ({len(summary.templates)}), by count:")
    for t in summary.templates[:top]:
        lines.append(f"  {t.id}  {t.count:>7}  {(t.level or '-'):<7}  {t.template}")
    if summary.skipped:
        lines.append("")
        lines.append("Skipped:")
        lines += [f"  {s}" for s in summary.skipped]
    return "\n".join(printable(ln) for ln in lines) + "\n"
