"""Log files: error signatures of the recent window, and logs cut off or stopped.

Which logs: the globs of the ``paths`` option; then, with ``discover``, the
logs of every service the inventory found (named in its configuration, held
open by it, or written lately in /var/log or its own folders; access logs are
the http probe's) and the usual places (``DEFAULT_LOGS``: syslog/messages,
nginx and Apache/httpd error logs, PHP-FPM, PostgreSQL, MySQL/MariaDB, Redis,
supervisor's program logs). The
journal (``journalctl``) is read when no syslog file is (``journal = "auto"``):
on hosts with rsyslog the two hold the same messages, and counting each twice
would double every count.

How much: only the tail, ``max_bytes`` per file (1 MiB by default), read
with a seek, so a 10 GB log costs what a small one does; a file not written in
the window gets only ``STALE_TAIL_BYTES`` (for the checks below). At most
``max_files`` files and ``max_total_bytes`` in all (matching costs about 0.1 s
of CPU per MiB, and the whole run has a budget of seconds). The rotated ``NAME.1`` is read too, like any log (the
window may begin before the last rotation, and a writer that never reopened
its log after rotation still writes there).

Which lines: those of the window, the last ``lookback_hours`` (6 h: an
incident that began an hour or two before someone started diagnosing still
shows its onset; yesterday's resolved errors do not count) or from ``since``
(epoch seconds) when that is set. A line without a timestamp takes the time of
the last stamped line above it (tracebacks, continuation lines); in a file
without timestamps every line counts when the file was written in the window.

What they say: the signature table of ``ddx.probes.parsers.signatures``. A finding is
present when one of its signatures has at least its ``min_count`` lines in the
window across all logs read, and absent when logs were read and none does.
When no log at all can be read the probe raises, so the findings stay unknown.

Coverage: an absence says which services' logs were read and which were not
(a service whose log was not found, a log that could not be read; a service
run by systemd is covered by the journal or syslog when those were read). An
absence read in part of the services is a softer absence (``ddx.model``).

``logs.truncated_lines``, two ways:

- the last record is cut: no newline at the end and the last line is
  incomplete compared with the file's other records (an unparseable JSON
  record in a JSON-lines log, unbalanced quotes or brackets where the other
  lines are balanced, much shorter than every other record), in a file
  written in the window or still held open by a writer, and not written in
  the last ``SETTLE_SECONDS`` (a writer with a block-buffered stdio, or
  supervisord copying a child's pipe, writes 4 KiB blocks that end mid-line
  until the next block follows);
- the log stopped while its writer runs: not written for ``stale_minutes``,
  while before that it was written steadily (the silence is at least
  ``STALL_FACTOR`` times the usual gap between its records), and a process
  still holds it, or its rotated ``.1`` or its deleted inode, open for
  writing (``/proc/PID/fd`` links whose ``/proc/PID/fdinfo`` flags have
  O_WRONLY or O_RDWR; the scan is bounded by ``max_procs`` and
  ``max_fd_links``). A log that is merely quiet (nginx's error log on a good
  day) has no steady rate before the silence and does not count.

``config.path_permissions_deny_service``: the paths named in the window's
permission errors (``ddx.logs.permissions``), checked against the users of the
processes holding that log open for writing (found as for stopped logs; root
writers skipped): present when the mode bits of the path or a folder on its way
refuse it to such a user (the deploy that chowned a cache folder to root),
absent when every path named is usable by them now, unknown when no path or no
such writer was found.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import os
import re
import stat as stat_mod
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ddx.errors import ProbeError
from ddx.host import Host, redact_text
from ddx.inventory.files import expand_glob
from ddx.inventory.model import Inventory
from ddx.model import Coverage, Evidence, Finding, absent_strength, event_times
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.logtime import TimeParser, local_zone, zone_named
from ddx.probes.parsers.signatures import (
    SIGNATURES,
    Signature,
    candidate_lines,
    match_line,
    signature_findings,
)
from ddx.units import duration, iso, size

__all__ = [
    "DEFAULT_LOGS",
    "FINDINGS",
    "LogChunk",
    "PERMS",
    "SignatureHits",
    "TextScan",
    "collect_logs",
    "cut_record",
    "host_zone",
    "judge_signatures",
    "logfiles",
    "open_writers",
    "parse_fdinfo_flags",
    "read_log",
    "scan_text",
    "stall",
    "typical_gap",
]

MINED = ("logs.new_error_signature", "logs.error_burst")  # from template mining (ddx.logs)
PERMS = "config.path_permissions_deny_service"  # permission errors checked against the file system
FINDINGS: tuple[str, ...] = (*signature_findings(), "logs.truncated_lines", *MINED, PERMS)

DEFAULT_LOGS: tuple[str, ...] = (
    "/var/log/syslog",
    "/var/log/messages",
    "/var/log/nginx/*error*.log",
    "/var/log/apache2/*error*.log",
    "/var/log/httpd/*error_log",
    "/var/log/httpd/*error.log",
    "/var/log/php*-fpm.log",
    "/var/log/php-fpm/*error*.log",
    "/var/log/postgresql/*.log",
    "/var/log/mysql/error.log",
    "/var/log/mysqld.log",
    "/var/log/mariadb/*.log",
    "/var/log/redis/*.log",
    "/var/log/supervisor/*.log",
)
SYSLOGS = frozenset({"/var/log/syslog", "/var/log/messages"})

STALE_TAIL_BYTES = 64 << 10  # a file not written in the window: enough for the cut-record and rate checks
SETTLE_SECONDS = 60.0  # a line without its newline younger than this may be half-way through a buffered write
STALL_FACTOR = 20.0  # silence / usual gap between records above which a log "stopped"
SAMPLE_CHARS = 400  # a sample line longer than this is cut (with an ellipsis)
_BACKTRACK_LINES = 200  # how far up to look for the timestamp of a continuation line


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogChunk:
    """The tail of one log as read: ``bytes_read`` of its ``size``; when the
    read began mid-file, the first line is a fragment (``partial_head``)."""

    path: str
    text: str
    size: int
    mtime: float
    bytes_read: int
    partial_head: bool


def read_log(host: Host, path: str, max_bytes: int) -> LogChunk:
    """Read the last ``max_bytes`` of a regular file (raises OSError as the
    host does, IsADirectoryError for a non-regular file)."""
    st = host.stat(path)
    if not stat_mod.S_ISREG(st.mode):
        raise IsADirectoryError(21, "not a regular file", path)
    text = host.read_text(path, max_bytes=max_bytes, tail=True)
    got = min(len(text.encode("utf-8", "surrogatepass")), max_bytes)
    return LogChunk(path, text, st.size, st.mtime, got, st.size > got)




def host_zone(host: Host) -> _dt.tzinfo:
    """The host's time zone, for log times written without one: /etc/timezone
    (Debian), else the /etc/localtime link, else this process's zone."""
    try:
        zone = zone_named(host.read_text("/etc/timezone", max_bytes=256).strip())
        if zone is not None:
            return zone
    except (OSError, LookupError, TimeoutError):
        pass
    try:
        target = host.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            zone = zone_named(target.split("zoneinfo/", 1)[1])
            if zone is not None:
                return zone
    except (OSError, LookupError, TimeoutError):
        pass
    return local_zone()


# --- matching -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureHits:
    """The lines of one source in the window that one signature counts."""

    signature: Signature
    source: str
    count: int
    times: tuple[float, ...]  # the stamped ones, ascending as written
    first: float | None
    last: float | None
    samples: tuple[str, ...]  # the first and the last two lines


@dataclass(frozen=True)
class TextScan:
    """What one log's tail showed: the signature hits of the window, whether
    its lines carry timestamps, and the times of its last records."""

    source: str
    hits: tuple[SignatureHits, ...]
    timestamped: bool
    tail_times: tuple[float, ...] = ()  # timestamps of the last records, ascending
    partial: bool = False  # only the tail of the log was read
    head_time: float | None = None  # time of the first stamped record read


@dataclass
class _Acc:
    sig: Signature
    count: int = 0
    times: list[float] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=2))


def _sample(line: str) -> str:
    line = redact_text(line.rstrip("\r"))
    return line if len(line) <= SAMPLE_CHARS else line[: SAMPLE_CHARS - 1] + "…"


def _lines(text: str, partial_head: bool) -> tuple[list[str], int]:
    """Lines of the text and the index of the first whole one."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines, 1 if partial_head and len(lines) > 1 else 0


def scan_text(
    text: str,
    *,
    source: str,
    parser: TimeParser,
    cutoff: float,
    mtime: float | None = None,
    partial_head: bool = False,
) -> TextScan:
    """Match the signature table against the lines of ``text`` that fall in
    the window (at or after ``cutoff``). Pure: ``parser`` knows the zone and
    the current time; ``mtime`` is the file's, used for files whose lines carry
    no timestamps."""
    lines, start = _lines(text, partial_head)
    times: dict[int, float | None] = {}

    def stamp(i: int) -> float | None:
        if i not in times:
            times[i] = parser.parse(lines[i]) if lines[i] else None
        return times[i]

    # Does this file stamp its lines? Look at a few from both ends.
    probe_idx = list(range(start, min(len(lines), start + 20))) + list(range(max(start, len(lines) - 20), len(lines)))
    timestamped = any(stamp(i) is not None for i in probe_idx)
    tail_times = tuple(t for i in range(max(start, len(lines) - 60), len(lines)) if (t := stamp(i)) is not None)
    head_time = next((t for i in probe_idx if (t := stamp(i)) is not None), None)
    if not timestamped and (mtime is None or mtime < cutoff):
        return TextScan(source, (), False, tail_times, partial_head, head_time)

    def line_time(i: int) -> float | None:
        for j in range(i, max(start, i - _BACKTRACK_LINES) - 1, -1):
            t = stamp(j)
            if t is not None:
                return t
        return None

    acc: dict[str, _Acc] = {}
    for i in candidate_lines(text):
        if i < start or i >= len(lines):
            continue
        sigs = match_line(lines[i])
        if not sigs:
            continue
        when: float | None = None
        if timestamped:
            when = line_time(i)
            if when is None or when < cutoff:
                continue
        for sig in sigs:
            a = acc.setdefault(sig.name, _Acc(sig))
            a.count += 1
            if when is not None:
                a.times.append(when)
            if not a.head:
                a.head.append(_sample(lines[i]))
            else:
                a.tail.append(_sample(lines[i]))
    hits = []
    for a in acc.values():
        samples = tuple(dict.fromkeys([*a.head, *a.tail]))
        hits.append(SignatureHits(a.sig, source, a.count, tuple(a.times), min(a.times, default=None),
                                  max(a.times, default=None) if a.times else (mtime if not timestamped else None),
                                  samples))
    return TextScan(source, tuple(hits), timestamped, tail_times, partial_head, head_time)


# --- cut records and stopped logs -----------------------------------------------------------


def _balanced(line: str) -> bool:
    if line.count('"') % 2:
        return False
    return line.count("[") == line.count("]") and line.count("{") == line.count("}") and (
        line.count("(") == line.count(")"))


def _is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def cut_record(text: str, *, partial_head: bool = False) -> str | None:
    """Why the last record of a log looks cut off mid-write, or None.

    Only a last line without its newline can be cut. It is judged against the
    file's other records (the last 50 whole lines): a JSON-lines log whose
    last line does not parse; a log whose lines all balance their quotes and
    brackets where the last does not; a last line shorter than half the
    shortest of the others. A plain message that merely lacks its newline is
    not enough."""
    if not text or text.endswith("\n"):
        return None
    lines, start = _lines(text, partial_head)
    if len(lines) - start < 2:
        return None
    last = lines[-1].rstrip("\r")
    if not last.strip():
        return None
    others = [ln.rstrip("\r") for ln in lines[max(start, len(lines) - 51):-1] if ln.strip()]
    if len(others) < 3:
        return None
    shown = last if len(last) <= 120 else last[:60] + "…" + last[-60:]
    if last.lstrip().startswith("{"):
        json_share = sum(1 for ln in others if _is_json(ln)) / len(others)
        if json_share >= 0.8 and not _is_json(last):
            return f"the last JSON record does not parse (no newline at the end): {shown!r}"
    if all(_balanced(ln) for ln in others) and not _balanced(last):
        return f"the last line has unbalanced quotes or brackets and no newline: {shown!r}"
    shortest = min(len(ln) for ln in others)
    if shortest >= 20 and len(last) < shortest / 2:
        return f"the last line ({len(last)} chars, no newline) is far shorter than every other record (>= {shortest})"
    return None


def typical_gap(times: Sequence[float]) -> float | None:
    """The median gap in seconds between successive records (None with fewer
    than 10 records), a measure of how steadily a log was written."""
    ts = sorted(times)
    if len(ts) < 10:
        return None
    gaps = sorted(b - a for a, b in zip(ts, ts[1:], strict=False))
    return gaps[len(gaps) // 2]


def stall(mtime: float, now: float, tail_times: Sequence[float], stale_seconds: float) -> str | None:
    """Why a log looks like it stopped (before knowing whether its writer
    runs), or None: not written for ``stale_seconds`` and the silence is at
    least ``STALL_FACTOR`` times the usual gap between its records."""
    silent = now - mtime
    if silent < stale_seconds:
        return None
    gap = typical_gap(tail_times)
    if gap is None:
        return None
    if silent < STALL_FACTOR * max(gap, 1.0):
        return None
    return (f"not written for {duration(silent)} although its records came every {gap:.0f} s "
            f"on average (median gap) before that")


def parse_fdinfo_flags(text: str) -> int | None:
    """The open flags (octal in ``/proc/PID/fdinfo/FD``) or None."""
    m = re.search(r"^flags:\s*([0-7]+)", text, re.M)
    return int(m.group(1), 8) if m else None


def _writes(flags: int) -> bool:
    return (flags & 0o3) in (os.O_WRONLY, os.O_RDWR)


def open_writers(host: Host, targets: Iterable[str], *, max_procs: int, max_links: int) -> dict[str, list[str]]:
    """Which processes hold each of ``targets`` open for writing, as
    ``path -> ["nginx[123]", ...]``. A target also matches its deleted inode
    (``PATH (deleted)``). Scans ``/proc/*/fd``, at most ``max_procs``
    processes and ``max_links`` fd links; processes that vanish or cannot be
    read are skipped."""
    wanted = {t: t for t in targets}
    wanted.update({f"{t} (deleted)": t for t in targets})
    out: dict[str, list[str]] = {}
    if not wanted:
        return out
    pids = [p for p in host.listdir("/proc") if p.isdigit()][:max_procs]
    links = 0
    for pid in pids:
        if links >= max_links:
            break
        try:
            fds = host.listdir(f"/proc/{pid}/fd")
        except (OSError, LookupError):
            continue
        for fd in fds:
            links += 1
            if links > max_links:
                break
            try:
                target = host.readlink(f"/proc/{pid}/fd/{fd}")
            except (OSError, LookupError):
                continue
            path = wanted.get(target)
            if path is None:
                continue
            try:
                flags = parse_fdinfo_flags(host.read_text(f"/proc/{pid}/fdinfo/{fd}", max_bytes=4096))
            except (OSError, LookupError):
                continue
            if flags is None or not _writes(flags):
                continue
            try:
                comm = host.read_text(f"/proc/{pid}/comm", max_bytes=256).strip()
            except (OSError, LookupError):
                comm = "?"
            who = f"{comm}[{pid}]" + (" (deleted file)" if target.endswith(" (deleted)") else "")
            out.setdefault(path, []).append(who)
    return out


# --- judging ---------------------------------------------------------------------------------




def _span(h: SignatureHits) -> str:
    if h.first is None:
        return "(lines without timestamps, file written in the window)"
    if h.last is None or h.first == h.last:
        return f"at {iso(h.first)}"
    return f"from {iso(h.first)} to {iso(h.last)}"


def judge_signatures(
    scans: Sequence[TextScan], *, cutoff: float, sources: Sequence[str], bytes_read: int,
    failed: Sequence[str] = (),
) -> list[tuple[str, bool, tuple[Evidence, ...]]]:
    """One (finding, present, evidence) per signature finding, from the scans
    of every log that was read (``sources``). Pure."""
    by_finding: dict[str, list[SignatureHits]] = {}
    for scan in scans:
        for h in scan.hits:
            by_finding.setdefault(h.signature.finding, []).append(h)
    scope = f"since {iso(cutoff)}"
    where = ", ".join(sources[:8]) + (f" and {len(sources) - 8} more" if len(sources) > 8 else "")
    unread = f"; could not read {'; '.join(failed[:3])}" if failed else ""
    out: list[tuple[str, bool, tuple[Evidence, ...]]] = []
    for fid in signature_findings():
        hits = by_finding.get(fid, [])
        totals: dict[str, int] = {}
        for h in hits:
            totals[h.signature.name] = totals.get(h.signature.name, 0) + h.count
        sigs = {s.name: s for s in SIGNATURES if s.finding == fid}
        reached = [n for n, c in totals.items() if c >= sigs[n].min_count]
        if not hits:
            out.append((fid, False, (Evidence(
                source=where,
                summary=f"no matching line {scope} in {len(sources)} log(s) ({size(bytes_read)} read){unread}",
                value=0, count=0),)))
            continue
        ranked = sorted(hits, key=lambda h: (h.signature.name not in reached, -h.count))
        evidence = []
        for h in ranked[:5]:
            below = "" if h.signature.name in reached else (
                f"; below the {h.signature.min_count} lines it takes to count "
                f"({totals[h.signature.name]} in all)")
            evidence.append(Evidence(
                source=h.source,
                summary=f"{h.count} line(s) matching '{h.signature.name}' {_span(h)}{below}",
                value=h.count,
                threshold=h.signature.min_count,
                unit="lines",
                samples=h.samples,
                first_seen=iso(h.first) if h.first is not None else None,
                last_seen=iso(h.last) if h.last is not None else None,
                times=event_times(list(h.times)),
                count=h.count,
            ))
        out.append((fid, bool(reached), tuple(evidence)))
    return out


def log_coverage(inv: Inventory, read: LogRead) -> Coverage:
    """Which services' logs were read. A service counts as read when one of its
    logs (other than access logs) was, or when it logs to the journal or syslog
    and that was read; a service whose logs were not found or not readable is
    missing, with the reason. ``share`` is the part of the services read (1 when
    the inventory found none: then the usual logs are all there is)."""
    sources = set(read.sources)
    system_read = "journalctl" in sources or bool(SYSLOGS & sources)
    failed = {f.split(": ", 1)[0]: f.split(": ", 1)[1] if ": " in f else f for f in read.failed}
    done: list[str] = []
    missing: list[str] = []
    for svc in inv.services:
        if svc.pid <= 0:
            continue
        logs = [lg.path for lg in svc.logs if lg.kind != "access"]
        hit = [p for p in logs if p in sources]
        if hit:
            done.append(f"{svc.name}: {', '.join(hit[:2])}" + (f" and {len(hit) - 2} more" if len(hit) > 2 else ""))
        elif svc.journal and system_read:
            done.append(f"{svc.name}: the journal")
        elif not logs:
            missing.append(f"{svc.label}: no log found" + (" (its journal was not read)" if svc.journal else ""))
        else:
            why = "; ".join(f"{p}: {failed[p]}" for p in logs if p in failed) or f"{logs[0]}: not read"
            missing.append(f"{svc.label}: {why}")
    total = len(done) + len(missing)
    return Coverage(tuple(done), tuple(missing), len(done) / total if total else 1.0)


# --- the probe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogRead:
    """Everything one pass over the logs gave (used by this probe and by the
    change probe, which aligns the first error time with change times)."""

    chunks: tuple[LogChunk, ...]
    scans: tuple[TextScan, ...]
    sources: tuple[str, ...]  # what was read (files, "journalctl")
    failed: tuple[str, ...]  # "path: why" for logs that exist but could not be read, configured paths not found
    bytes_read: int
    cutoff: float
    now: float


def _candidates(host: Host, patterns: Iterable[str], max_files: int) -> list[str]:
    out: list[str] = []
    for pat in patterns:
        pat = pat.strip()
        if not pat:
            continue
        for p in expand_glob(host, pat):
            if p not in out:
                out.append(p)
        if len(out) >= max_files * 2:
            break
    return out


def _journal(host: Host, cutoff: float, lines: int) -> str | None:
    """Journal text of the window (``short-iso``), or None when there is no
    readable journal."""
    argv = ["journalctl", "--no-pager", "-o", "short-iso", "--since", f"@{int(cutoff)}", "-n", str(lines)]
    try:
        res = host.run(argv, timeout=5.0)
    except (OSError, LookupError, TimeoutError):
        return None
    if res.returncode != 0 or "No journal files were found" in res.stderr:
        return None
    return res.stdout


def collect_logs(
    host: Host,
    *,
    cutoff: float,
    paths: Sequence[str] = (),
    found: Sequence[str] = (),
    discover: bool = True,
    journal: str = "auto",
    max_bytes: int = 1 << 20,
    max_files: int = 40,
    journal_lines: int = 20000,
    max_total_bytes: int = 16 << 20,
) -> LogRead:
    """Read and scan the logs (see the module docstring): ``paths`` named by a
    person, then ``found`` (the inventory's logs), then with ``discover`` the
    usual places. Never raises for one log; the caller decides what an empty
    result means."""
    now = host.time()
    tz = host_zone(host)
    patterns = [*paths, *found, *(DEFAULT_LOGS if discover else ())]
    chunks: list[LogChunk] = []
    scans: list[TextScan] = []
    failed: list[str] = []
    seen: set[tuple[int, int]] = set()
    total = 0
    queue = _candidates(host, patterns, max_files)
    i = 0
    while i < len(queue) and len(chunks) < max_files:
        path = queue[i]
        i += 1
        try:
            st = host.stat(path)
        except FileNotFoundError:
            continue
        except (OSError, LookupError, TimeoutError) as exc:
            failed.append(f"{path}: {_why(exc)}")
            continue
        if not stat_mod.S_ISREG(st.mode) or (st.ino and (st.ino, st.size) in seen):
            continue
        seen.add((st.ino, st.size))
        fresh = st.mtime >= cutoff
        left = max_total_bytes - total
        if left < 4096:
            failed.append(f"{path}: not read (read budget of {size(max_total_bytes)} used up)")
            continue
        try:
            chunk = read_log(host, path, min(left, max_bytes if fresh else min(max_bytes, STALE_TAIL_BYTES)))
        except (OSError, LookupError, TimeoutError) as exc:
            failed.append(f"{path}: {_why(exc)}")
            continue
        chunks.append(chunk)
        total += chunk.bytes_read
        scans.append(scan_text(chunk.text, source=path, parser=TimeParser(tz, now), cutoff=cutoff,
                               mtime=chunk.mtime, partial_head=chunk.partial_head))
        rotated = path + ".1"
        if not path.endswith(".1") and rotated not in queue:
            queue.insert(i, rotated)  # read like any log: the whole tail when written in the window
    sources = [c.path for c in chunks]
    for pat in (p.strip() for p in paths):  # the person named these: say so when they led nowhere
        if (pat and not any(fnmatch.fnmatchcase(src, pat) for src in sources)
                and not any(f.startswith(pat) for f in failed)):
            failed.append(f"{pat}: no such file")
    if journal == "always" or (journal == "auto" and not SYSLOGS.intersection(sources)):
        text = _journal(host, cutoff, journal_lines)
        if text is not None:
            sources.append("journalctl")
            total += len(text.encode("utf-8", "surrogatepass"))
            full = text.count("\n") >= journal_lines  # the oldest entries of the window were left out
            scans.append(scan_text(text, source="journalctl", parser=TimeParser(tz, now), cutoff=cutoff,
                                   partial_head=full))
    return LogRead(tuple(chunks), tuple(scans), tuple(sources), tuple(failed), total, cutoff, now)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _truncation(ctx: ProbeContext, read: LogRead) -> tuple[bool, tuple[Evidence, ...]]:
    """logs.truncated_lines from the logs read: cut last records, logs that
    stopped while a process still holds them open for writing (itself, its
    deleted inode, or its rotated ``.1`` that the writer never left)."""
    now, cutoff = read.now, read.cutoff
    stale_seconds = float(ctx.opt("stale_minutes")) * 60.0
    mtimes = {c.path: c.mtime for c in read.chunks}
    cut: dict[str, str] = {}
    stopped: dict[str, str] = {}
    rotated: dict[str, str] = {}
    scan_of = {scan.source: scan for scan in read.scans}
    for chunk in read.chunks:
        scan = scan_of[chunk.path]
        why = cut_record(chunk.text, partial_head=chunk.partial_head)
        if why and now - chunk.mtime >= SETTLE_SECONDS:
            cut[chunk.path] = why
        reason = stall(chunk.mtime, now, scan.tail_times, stale_seconds)
        if reason:
            stopped[chunk.path] = reason
        older = mtimes.get(chunk.path + ".1")
        if older is not None and older - chunk.mtime >= stale_seconds:
            rotated[chunk.path] = (f"its rotated {chunk.path}.1 was written {duration(older - chunk.mtime)} "
                                   f"after it (last write {iso(chunk.mtime)})")
    targets = set(stopped) | set(rotated) | {p + ".1" for p in rotated} | {p for p in cut if mtimes[p] < cutoff}
    writers: dict[str, list[str]] = {}
    note = ""
    if targets:
        try:
            writers = open_writers(ctx.host, targets, max_procs=int(ctx.opt("max_procs")),
                                   max_links=int(ctx.opt("max_fd_links")))
        except (OSError, LookupError, TimeoutError) as exc:
            note = f"; the open files of processes could not be scanned ({_why(exc)})"
    evidence: list[Evidence] = []
    for path, why in sorted(cut.items()):
        if mtimes[path] < cutoff and not writers.get(path):
            continue  # an old log cut long ago that nobody writes: not this incident
        held = f"; still open for writing by {', '.join(writers[path][:3])}" if writers.get(path) else ""
        evidence.append(Evidence(source=path, summary=f"{why}{held}", last_seen=iso(mtimes[path])))
    for path, why in sorted(stopped.items()):
        if writers.get(path):
            evidence.append(Evidence(
                source=path,
                summary=f"log stopped: {why}, while {', '.join(writers[path][:3])} still hold(s) it open for writing",
                value=round(now - mtimes[path]), threshold=round(stale_seconds), unit="s"))  # still so now
    for path, why in sorted(rotated.items()):
        moved = writers.get(path + ".1", [])
        if moved and not writers.get(path):
            evidence.append(Evidence(
                source=path,
                summary=f"log stopped after rotation: {why}; {', '.join(moved[:3])} still write(s) the rotated "
                        f"file and never reopened {path}",
                value=round(now - mtimes[path]), threshold=round(stale_seconds), unit="s"))  # still so now
    if evidence:
        return True, tuple(evidence)
    return False, (Evidence(
        source=", ".join(c.path for c in read.chunks[:8]) or "-",
        summary=f"none of {len(read.chunks)} log(s) read ends in a cut record or stopped while its writer runs{note}",
    ),)


@probe(
    "logfiles",
    findings=FINDINGS,
    timeout=10.0,  # up to 40 files of 1 MiB: tens of ms each on a healthy disk, more on a slow one
    options={
        # Extra log files or globs to read besides the usual ones ("/srv/app/log/*.log").
        "paths": [],
        # Also read the usual logs (DEFAULT_LOGS); false: only `paths` (and the journal).
        "discover": True,
        # "auto": the journal when no syslog file was read; "always"; "never".
        "journal": "auto",
        # Hours of log that count as recent (see the module docstring); same default as the kernel probe.
        "lookback_hours": 6.0,
        # Epoch seconds; when > 0, only lines at or after it count (replaces the lookback).
        "since": 0.0,
        # Bytes read from the end of each log: ~5,000-10,000 lines of a busy log.
        "max_bytes": 1 << 20,
        # Logs read at most (the defaults find a dozen on a typical web/db host).
        "max_files": 40,
        # Bytes read from all logs together: matching costs ~0.1 s per MiB, and the run has a budget.
        "max_total_bytes": 16 << 20,
        # Journal entries read at most.
        "journal_lines": 20000,
        # Minutes without a write after which a steadily written log counts as stopped.
        "stale_minutes": 10.0,
        # Processes whose /proc/PID/fd are scanned at most for writers of stopped logs.
        "max_procs": 4000,
        # Open-file links read at most in that scan (a few thousand on a typical server).
        "max_fd_links": 50000,
        # Template mining (new error messages, error bursts): the last minutes that form the
        # incident part; earlier lines of the tails read are the baseline. `since` overrides it.
        "incident_minutes": 30.0,
        # Lines mined at most over all logs (the miner does ~100k raw lines/s here).
        "mine_max_lines": 30000,
    },
)
def logfiles(ctx: ProbeContext) -> list[Finding]:
    """Error signatures in the recent lines of the usual logs (ENOSPC, EACCES,
    EMFILE, timeouts, refused connections, TLS, DNS, database limits...), and
    logs cut mid-record or stopped while their writer runs."""
    now = ctx.host.time()
    since = float(ctx.opt("since"))
    cutoff = ctx.window_start(now)
    journal = str(ctx.opt("journal"))
    if journal not in ("auto", "always", "never"):
        raise ProbeError(f"probe.logfiles journal must be 'auto', 'always' or 'never', got {journal!r}")
    discover = bool(ctx.opt("discover"))
    found = [lg.path for lg, _svc in ctx.inv.all_logs() if lg.kind != "access" and (discover or _svc is None)]
    read = collect_logs(
        ctx.host,
        cutoff=cutoff,
        paths=[str(p) for p in ctx.opt("paths")],
        found=found,
        discover=discover,
        journal=journal,
        max_bytes=int(ctx.opt("max_bytes")),
        max_files=int(ctx.opt("max_files")),
        journal_lines=int(ctx.opt("journal_lines")),
        max_total_bytes=int(ctx.opt("max_total_bytes")),
    )
    if not read.sources:
        tried = "; ".join(read.failed[:5]) if read.failed else "none of the usual logs exists"
        raise ProbeError(f"no log could be read ({tried}); name the logs with [probe.logfiles] paths")
    cov = log_coverage(ctx.inv, read)
    out = []
    for fid, present, ev in judge_signatures(read.scans, cutoff=cutoff, sources=read.sources,
                                             bytes_read=read.bytes_read, failed=read.failed):
        f = ctx.finding(fid, present, *ev)
        if not present and not cov.complete:
            f = replace(f, coverage=cov, strength=absent_strength(cov.share))
        out.append(f)
    present, ev = _truncation(ctx, read)
    out.append(ctx.finding("logs.truncated_lines", present, *ev))
    perms = _permission_check(ctx, read)
    if perms is not None:
        out.append(ctx.finding(PERMS, *perms))
    incident = since if since > 0 else now - float(ctx.opt("incident_minutes")) * 60.0
    out.extend(mined_findings(ctx, read, incident_start=incident, max_lines=int(ctx.opt("mine_max_lines"))))
    return out


MAX_DENIED_PATHS = 6  # paths from permission errors checked at most


def _writer_pids(who: Sequence[str]) -> list[int]:
    """The pids of ``open_writers`` labels (``comm[pid]``)."""
    out = []
    for w in who:
        m = re.search(r"\[(\d+)\]", w)
        if m:
            out.append(int(m.group(1)))
    return out


def _permission_check(ctx: ProbeContext, read: LogRead) -> tuple[bool, Evidence] | None:
    """config.path_permissions_deny_service: the paths named in the window's permission
    errors, checked against the users of the processes that write those logs (what an
    SRE does with ``namei -l`` and ``sudo -u USER test -w``). Present when the mode bits
    refuse a path to such a user; absent when every path named is usable by them now;
    None (unknown) when nothing could be checked: no such error, no path in it, or
    no process (other than root) holding the log open."""
    from ddx.logs.permissions import (
        Creds,
        access_problem,
        ancestors,
        denied_path,
        parse_creds,
        parse_names,
    )

    host = ctx.host
    paths: dict[str, list[tuple[str, str]]] = {}  # log -> [(path, line)]
    for scan in read.scans:
        for h in scan.hits:
            if h.signature.finding != "logs.permission_denied":
                continue
            for line in reversed(h.samples):  # the newest first
                path = denied_path(line)
                if path and all(path != p for p, _l in paths.get(h.source, [])):
                    paths.setdefault(h.source, []).append((path, line))
    logs = [p for p in paths if p.startswith("/")]
    if not logs:
        return None
    try:
        writers = open_writers(host, logs, max_procs=int(ctx.opt("max_procs")), max_links=int(ctx.opt("max_fd_links")))
    except (OSError, LookupError, TimeoutError):
        writers = {}
    for log in logs:  # a log opened per write has no holder: the service the inventory gives it writes it
        if not writers.get(log):
            svc = next((sv for sv in ctx.inv.services if log in sv.log_paths), None)
            if svc is not None:
                writers[log] = [f"{svc.program}[{pid}]" for pid in svc.pids[:4]]
    users: dict[int, str] = {}
    groups: dict[int, str] = {}
    for f, table in (("/etc/passwd", users), ("/etc/group", groups)):
        try:
            table.update(parse_names(host.read_text(f, max_bytes=1 << 20)))
        except (OSError, LookupError, TimeoutError):
            pass
    stats: dict[str, object] = {}

    def stat(p: str) -> object:
        if p not in stats:
            try:
                stats[p] = host.stat(p)
            except FileNotFoundError:
                stats[p] = None
            except (OSError, LookupError, TimeoutError):
                stats[p] = "?"
        return stats[p]

    problems: dict[str, Evidence] = {}  # one per refusal: many temp files in one folder are one problem
    fine: list[str] = []
    checked = 0
    for log in logs:
        creds: dict[Creds, list[int]] = {}
        for pid in _writer_pids(writers.get(log, [])):
            try:
                c = parse_creds(host.read_text(f"/proc/{pid}/status", max_bytes=16384))
            except (OSError, LookupError, TimeoutError, ValueError):
                continue
            if c.uid != 0:
                creds.setdefault(c, []).append(pid)
        for path, line in paths[log]:
            if checked >= MAX_DENIED_PATHS or not creds:
                break
            chain = {p: stat(p) for p in [*ancestors(path), path]}
            if any(v == "?" for v in chain.values()):
                continue
            checked += 1
            for c, pids in creds.items():
                why = access_problem(path, chain, c, users=users, groups=groups)  # type: ignore[arg-type]
                who = f"{users.get(c.uid, f'uid {c.uid}')} (uid {c.uid}, pid {', '.join(map(str, pids[:3]))})"
                if why and f"{c}{why}" not in problems:
                    problems[f"{c}{why}"] = Evidence(
                        source=log,
                        summary=f"{who}, which writes {log}, {why}",
                        samples=(_sample(line),),
                    )
                else:
                    fine.append(f"{path} is usable by {who}")
    if problems:
        found = list(problems.values())
        return True, found[0] if len(found) == 1 else Evidence(
            source=found[0].source,
            summary=f"{len(found)} refusals of paths named in permission errors; first: {found[0].summary}",
            samples=tuple(e.summary for e in found[:5]),
            count=len(found))
    if fine:
        return False, Evidence(
            source=", ".join(logs[:3]),
            summary="the paths named in permission errors are usable now by the users writing those logs "
                    f"(by their mode bits; ACLs, SELinux or AppArmor are not judged): {'; '.join(fine[:3])}",
        )
    return None


def mined_findings(ctx: ProbeContext, read: LogRead, *, incident_start: float, max_lines: int) -> list[Finding]:
    """logs.new_error_signature and logs.error_burst from the templates of the
    tails read: lines before ``incident_start`` are the baseline. Each log
    gives at most an equal share of ``max_lines`` (its newest lines)."""
    from ddx.logs import log_findings, summarize_many

    texts = [c for c in read.chunks if c.text]
    if not texts or max_lines <= 0:
        return []
    share = max(1, max_lines // len(texts))
    sources: dict[str, list[str]] = {}
    for c in texts:
        lines = c.text.splitlines()
        if c.partial_head and lines:
            lines = lines[1:]  # the read began mid-line
        sources[c.path] = lines[-share:]
    summary = summarize_many(sources, baseline_until=incident_start, reference_time=read.now)
    return [Finding(f.id, f.state, f"probe:{ctx.probe_name}", f.evidence) for f in log_findings(summary, source=ctx.probe_name)]
