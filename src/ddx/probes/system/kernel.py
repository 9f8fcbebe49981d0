"""Kernel log: what the kernel said about hardware, disks, memory and crashes lately.

Reads the kernel log (``dmesg -r``, else ``journalctl -k``) and counts the
messages of a recent window by the finding they are evidence of (the patterns
live in ``ddx.probes.parsers.kmsg``).

Why a window: the ring buffer keeps lines from boot on, and an OOM kill of
last week says nothing about today's incident. The default window is the last
``lookback_hours`` = 6 hours: someone diagnosing an incident an hour or two
after it began still sees its onset, while yesterday's one-off crash does not
count. ``since`` (epoch seconds) replaces the window with an explicit start:
"since the incident began", or a test that only wants lines written after it
started (other programs write to the same log).

What "absent" means here: the kernel logs the event whenever it happens, so
no line in the window is evidence it did not happen, with three exceptions
where "not seen" stays unknown instead of absent:

- ``procs.segfault`` / ``procs.segfaults_multiple_binaries`` when
  ``debug.exception-trace`` is 0: the kernel then does not log crashes;
- ``procs.fork_failures``: the kernel logs only the pids-controller refusal,
  once per cgroup, never RLIMIT_NPROC or threads-max failures;
- ``time.jump``: only leap seconds are always logged; a clock set by ``date``
  or stepped by a time daemon leaves no kernel line.

The last two are reported when seen, never as absent.
``procs.segfaults_multiple_binaries`` needs two different programs crashing
within ``MULTI_CRASH_GAP`` (10 min) of each other: unrelated programs crashing
hours apart are two stories, not one machine going bad.
``memory.oom_kills_repeated`` (one program OOM-killed again and again, a new
process each time, within minutes) is judged only when there were OOM kills.

Known limits: the kernel warns about a SYN flood once per listening socket
and about hung tasks at most ``kernel.hung_task_warnings`` (10) times per
boot, so a flood or hang that began before the window may show no line in
it; ``net_ratelimit`` suppresses repeats, so counts are lower bounds; the
ring buffer may have overwritten old lines (the evidence says how far back it
reaches), and lines of an earlier boot are gone.

Reading ``/dev/kmsg`` directly would need a non-blocking read the Host
interface does not offer (a plain read blocks at the end of the buffer), so
the probe runs ``dmesg``; where ``kernel.dmesg_restrict`` forbids it (non-root)
it tries ``journalctl -k`` (allowed to the adm/systemd-journal groups), and
when both are refused the probe is ``denied`` and its findings stay unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ddx.errors import ProbeError
from ddx.host import Host
from ddx.model import Evidence, Finding, event_times
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.kmsg import (
    KernelEvent,
    KernelLine,
    boot_epoch,
    classify,
    parse_dmesg_raw,
    parse_journal_short_unix,
    program_key,
)
from ddx.probes.parsers.mounts import parse_mountinfo
from ddx.units import duration, iso

__all__ = ["KernelLog", "judge", "kernel", "read_kernel_log"]

FINDINGS = (
    "kernel.hardware_error",
    "disk.io_errors",
    "disk.readonly_remount",
    "memory.oom_kill",
    "memory.oom_kills_repeated",
    "procs.segfault",
    "procs.segfaults_multiple_binaries",
    "kernel.hung_task",
    "kernel.oops",
    "kernel.syn_flood_warning",
    "kernel.conntrack_full",
    "time.jump",
    "procs.fork_failures",
)
PRESENT_ONLY = frozenset({"procs.fork_failures", "time.jump"})
SEGFAULT_FINDINGS = frozenset({"procs.segfault", "procs.segfaults_multiple_binaries"})

_WHAT = {
    "kernel.hardware_error": "hardware-error (machine check, EDAC, PCIe AER) lines",
    "disk.io_errors": "block I/O error or disk command timeout lines",
    "disk.readonly_remount": "read-only remounts",
    "memory.oom_kill": "OOM kills",
    "procs.segfault": "program crashes (segfault, trap, bus error)",
    "kernel.hung_task": "hung-task reports",
    "kernel.oops": "kernel bugs (oops, BUG, soft or hard lockup, RCU stall, panic)",
    "kernel.syn_flood_warning": "SYN flooding warnings",
    "kernel.conntrack_full": "'conntrack table full' lines",
    "time.jump": "clock step or leap-second lines",
    "procs.fork_failures": "forks refused by the pids controller",
}
MAX_SAMPLES = 3
MAX_SAMPLE_CHARS = 300
# The same program OOM-killed this many times (different pids) within this many seconds
# runs out of memory again soon after each start: its workload does not fit, it is no
# slow leak (a leak that took hours to fill memory takes hours again after a restart).
OOM_REPEAT_KILLS = 3
OOM_REPEAT_SECONDS = 600.0
DMESG_TIMEOUT = 4.0  # dmesg copies a ring buffer of at most a few MB
JOURNAL_TIMEOUT = 4.0  # journalctl -k --since on a large journal


@dataclass(frozen=True)
class KernelLog:
    """The kernel log as read: its lines and where they came from.
    ``complete`` is False for a source that starts at the window (journalctl
    --since), so the oldest line says nothing about lost history."""

    lines: tuple[KernelLine, ...]
    source: str
    complete: bool = True
    boot: float | None = None  # boot time (epoch) where known


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _is_denial(text: str) -> bool:
    low = text.lower()
    return "not permitted" in low or "permission denied" in low or "not seeing messages" in low


def read_kernel_log(host: Host, since: float) -> KernelLog:
    """The kernel log from the first source that works. Raises
    PermissionError when every source refused, ProbeError when none exists."""
    problems: list[str] = []
    denied = False
    try:
        r = host.run(["dmesg", "-r"], timeout=DMESG_TIMEOUT)
    except FileNotFoundError:
        problems.append("dmesg: not installed")
    else:
        if r.returncode == 0:
            uptime = host.read_text("/proc/uptime")
            boot = boot_epoch(uptime, host.time())
            lines = parse_dmesg_raw(r.stdout, boot)
            if not lines:
                raise ProbeError("dmesg -r: the kernel ring buffer is empty (cleared with dmesg -C?)")
            return KernelLog(tuple(lines), "dmesg -r", boot=boot)
        why = _first_line(r.stderr).removeprefix("dmesg: ") or f"exit status {r.returncode}"
        denied |= _is_denial(why)
        problems.append(f"dmesg: {why}")
    argv = ["journalctl", "-k", "-o", "short-unix", "--no-pager", f"--since=@{int(since)}"]
    try:
        r = host.run(argv, timeout=JOURNAL_TIMEOUT)
    except FileNotFoundError:
        problems.append("journalctl: not installed")
    else:
        both = r.stdout + "\n" + r.stderr
        if r.returncode != 0:
            why = _first_line(r.stderr).removeprefix("journalctl: ") or f"exit status {r.returncode}"
            denied |= _is_denial(why)
            problems.append(f"journalctl -k: {why}")
        elif "No journal files were found" in both:
            problems.append("journalctl -k: no journal on this host")
        elif _is_denial(r.stderr):
            denied = True
            problems.append(f"journalctl -k: {_first_line(r.stderr)}")
        else:
            return KernelLog(tuple(parse_journal_short_unix(r.stdout)), "journalctl -k", complete=False)
    msg = "kernel log unreadable: " + "; ".join(problems)
    if denied:
        raise PermissionError(msg)
    raise ProbeError(msg)


def _segfaults_logged(host: Host) -> bool:
    """Does the kernel log crashes? ``debug.exception-trace`` (x86, arm64;
    default 1) switches the "segfault at" lines on and off."""
    try:
        return host.read_text("/proc/sys/debug/exception-trace").strip() != "0"
    except (FileNotFoundError, PermissionError, LookupError):
        return True


def _sample(line: KernelLine) -> str:
    text = line.text if len(line.text) <= MAX_SAMPLE_CHARS else line.text[: MAX_SAMPLE_CHARS - 1] + "…"
    return f"{iso(line.time)} {text}" if line.time is not None else text


def _pick_samples(hits: Sequence[tuple[KernelLine, KernelEvent]], by_subject: bool) -> tuple[str, ...]:
    """Up to MAX_SAMPLES lines: one per distinct subject first (so two crashing
    programs both show), then the most recent others."""
    chosen: list[int] = []
    if by_subject:
        seen: set[str] = set()
        for i, (_, ev) in enumerate(hits):
            key = program_key(ev.subject)
            if key not in seen:
                seen.add(key)
                chosen.append(i)
            if len(chosen) == MAX_SAMPLES:
                break
    if not chosen:
        chosen.append(0)
    for i in range(len(hits) - 1, -1, -1):
        if len(chosen) >= MAX_SAMPLES:
            break
        if i not in chosen:
            chosen.append(i)
    return tuple(_sample(hits[i][0]) for i in sorted(chosen))


def _tally(names: Sequence[str]) -> str:
    counts: dict[str, int] = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    parts = [f"{n} x{c}" if c > 1 else n for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ", ".join(parts[:6]) + (f", and {len(parts) - 6} more" if len(parts) > 6 else "")


def _present_evidence(fid: str, hits: list[tuple[KernelLine, KernelEvent]], source: str) -> Evidence:
    times = [ln.time for ln, _ in hits if ln.time is not None]
    subjects = [ev.subject for _, ev in hits if ev.subject]
    what = _WHAT[fid]
    summary = f"{len(hits)} {what}"
    if fid == "memory.oom_kill" and subjects:
        summary += f" (killed: {_tally(subjects)})"
    elif fid == "procs.segfault" and subjects:
        summary += f": {_tally(subjects)}"
    elif fid in ("disk.io_errors", "disk.readonly_remount") and subjects:
        summary += f" (devices: {_tally(subjects)})"
    elif fid == "kernel.hung_task" and subjects:
        summary += f" (tasks: {_tally(subjects)})"
    elif fid == "kernel.syn_flood_warning" and subjects:
        summary += f" (ports: {_tally(subjects)})"
    elif fid == "procs.fork_failures" and subjects:
        summary += f" (cgroups: {_tally(subjects)})"
    return Evidence(
        source=source,
        summary=summary,
        value=len(hits),
        samples=_pick_samples(hits, by_subject=bool(subjects)),
        first_seen=iso(min(times)) if times else None,
        last_seen=iso(max(times)) if times else None,
        count=len(hits),
        times=event_times(times),
    )


def _in_use(device: str, devices: frozenset[str] | None) -> bool:
    """Does ``device`` (``sda``, ``vda1``, ``fd0``) back something this host uses? Unknown
    device or unknown usage: yes."""
    if not device or devices is None:
        return True
    return any(device == d or d.startswith(device) or device.startswith(d) for d in devices)


def judge(
    log: KernelLog, since: float, *, segfaults_logged: bool = True, devices: frozenset[str] | None = None
) -> list[tuple[str, bool, Evidence]]:
    """The findings the log's lines at or after ``since`` support, as
    (finding id, present, evidence). Pure: tests feed it parsed samples.
    ``devices`` are the block devices that back a mounted filesystem or swap
    (None: unknown); I/O errors of other devices (a virtual floppy, an empty
    CD drive probed at boot) are not this host's storage failing."""
    recent = [ln for ln in log.lines if ln.time is not None and ln.time >= since]
    hits: dict[str, list[tuple[KernelLine, KernelEvent]]] = {fid: [] for fid in FINDINGS}
    crashes: set[tuple[str, int | None]] = set()
    unused: list[str] = []
    for ln in recent:
        for ev in classify(ln.text):
            if ev.finding == "disk.io_errors" and not _in_use(ev.subject, devices):
                unused.append(ev.subject)
                continue
            if ev.finding == "procs.segfault":
                # one crash can show as a segfault line, a fatal-signal line and an audit record
                key = (program_key(ev.subject), ev.pid)
                if key in crashes:
                    continue
                crashes.add(key)
            hits[ev.finding].append((ln, ev))

    times = [ln.time for ln in log.lines if ln.time is not None]
    scope = f"{len(recent)} kernel-log lines since {iso(since)}"
    if log.complete and times and min(times) > since + 60:
        if log.boot is not None and min(times) - log.boot < 60:
            scope += f"; the host booted at {iso(log.boot)}, the previous boot's log is not in the ring buffer"
        else:
            scope += f"; the ring buffer reaches back only to {iso(min(times))}, older lines were overwritten"

    out: list[tuple[str, bool, Evidence]] = []
    for fid in FINDINGS:
        if fid in ("procs.segfaults_multiple_binaries", "memory.oom_kills_repeated"):
            continue  # judged from the others' hits below
        found = hits[fid]
        aside = (f"; {len(unused)} I/O error line(s) of devices that back no mounted filesystem or swap "
                 f"({_tally(unused)}) not counted") if fid == "disk.io_errors" and unused else ""
        if found:
            pev = _present_evidence(fid, found, log.source)
            out.append((fid, True, replace(pev, summary=pev.summary + aside)))
        elif fid in PRESENT_ONLY or (fid in SEGFAULT_FINDINGS and not segfaults_logged):
            continue  # not seeing it proves nothing: unknown
        else:
            out.append((fid, False, Evidence(source=log.source, summary=f"no {_WHAT[fid]} in {scope}{aside}",
                                             count=0)))

    rep = _oom_repeats(hits["memory.oom_kill"], log.source)
    if rep is not None:
        out.append(rep)

    crashes_found = hits["procs.segfault"]
    programs = sorted({program_key(ev.subject) for _, ev in crashes_found})
    multi = "procs.segfaults_multiple_binaries"
    cluster = _crash_cluster(crashes_found)
    if cluster:
        progs = sorted({program_key(ev.subject) for _, ev in cluster})
        times_c = [ln.time for ln, _ in cluster if ln.time is not None]
        span = f" within {duration(max(times_c) - min(times_c))}" if len(times_c) > 1 else ""
        out.append((multi, True, Evidence(
            source=log.source,
            summary=f"{len(progs)} different programs crashed{span}: {', '.join(progs[:8])}",
            value=len(progs),
            threshold=2,
            samples=_pick_samples(cluster, by_subject=True),
            first_seen=iso(min(times_c)) if times_c else None,
            last_seen=iso(max(times_c)) if times_c else None,
            count=len(cluster),
            times=event_times(times_c),
        )))
    elif programs and segfaults_logged:
        what = (f"only one program crashed ({programs[0]}, {len(crashes_found)} time(s))" if len(programs) == 1
                else f"{len(programs)} programs crashed, never two within {MULTI_CRASH_GAP / 60:g} min of each other")
        out.append((multi, False, Evidence(
            source=log.source,
            summary=f"{what} in {scope}",
            value=1,
            threshold=2,
            count=len(crashes_found),
        )))
    elif segfaults_logged:
        out.append((multi, False, Evidence(source=log.source, summary=f"no program crashes in {scope}", count=0)))
    return out


MULTI_CRASH_GAP = 600.0  # crashes further apart than this are not "within a short time" of each other


def _crash_cluster(crashes: list[tuple[KernelLine, KernelEvent]]) -> list[tuple[KernelLine, KernelEvent]]:
    """The latest set of crashes within ``MULTI_CRASH_GAP`` of each other (a window of
    that length, not a chain of gaps) in which at least two different programs crashed
    ([] when none: unrelated programs crashing hours apart are two incidents, not one
    machine going bad). Crashes without a time are judged together."""
    timed = sorted((c for c in crashes if c[0].time is not None), key=lambda c: c[0].time or 0.0)
    untimed = [c for c in crashes if c[0].time is None]
    best: list[tuple[KernelLine, KernelEvent]] = []
    start = 0
    for end in range(len(timed)):
        t_end = timed[end][0].time or 0.0
        while (timed[start][0].time or 0.0) < t_end - MULTI_CRASH_GAP:
            start += 1
        window = timed[start:end + 1]
        if len({program_key(ev.subject) for _, ev in window}) >= 2:
            best = window
    if best:
        return best
    if len({program_key(ev.subject) for _, ev in untimed}) >= 2:
        return untimed
    return []


def _oom_repeats(kills: list[tuple[KernelLine, KernelEvent]], source: str) -> tuple[str, bool, Evidence] | None:
    """``memory.oom_kills_repeated``, judged only where the OOM killer acted (with no
    kill it says nothing): a program killed OOM_REPEAT_KILLS times, each a different
    process, within OOM_REPEAT_SECONDS."""
    if not kills:
        return None
    by_prog: dict[str, list[tuple[float, int | None, KernelLine]]] = {}
    for ln, ev in kills:
        if ln.time is None:
            continue
        seq = by_prog.setdefault(program_key(ev.subject) or "?", [])
        if not (seq and seq[-1][1] == ev.pid):  # one kill reported twice (cgroup and global lines)
            seq.append((ln.time, ev.pid, ln))
    worst: tuple[str, list[tuple[float, int | None, KernelLine]]] | None = None
    for prog, seq in by_prog.items():
        seq.sort(key=lambda x: x[0])
        start = 0
        for end in range(len(seq)):  # the most kills within OOM_REPEAT_SECONDS, one pass
            while seq[end][0] - seq[start][0] > OOM_REPEAT_SECONDS:
                start += 1
            n = end - start + 1
            if n >= OOM_REPEAT_KILLS and (worst is None or n > len(worst[1])):
                worst = (prog, seq[start:end + 1])
    if worst is None:
        counts = ", ".join(f"{p} x{len(q)}" for p, q in sorted(by_prog.items()))
        return ("memory.oom_kills_repeated", False, Evidence(
            source=source,
            summary=f"no program OOM-killed {OOM_REPEAT_KILLS} times within {OOM_REPEAT_SECONDS / 60:g} min "
                    f"(killed: {counts or 'no timestamps'})",
            count=0,
        ))
    prog, burst = worst
    span = burst[-1][0] - burst[0][0]
    return ("memory.oom_kills_repeated", True, Evidence(
        source=source,
        summary=f"{prog} OOM-killed {len(burst)} times in {span:.0f} s, each time a new process: it runs out of "
                f"memory again soon after each start",
        value=len(burst),
        threshold=OOM_REPEAT_KILLS,
        samples=tuple(_sample(ln) for _, _, ln in burst[:MAX_SAMPLES]),
        first_seen=iso(burst[0][0]),
        last_seen=iso(burst[-1][0]),
        count=len(burst),
        times=event_times([t for t, _p, _l in burst]),
    ))


@probe(
    "kernel",
    findings=FINDINGS,
    timeout=6.0,  # dmesg, then journalctl if dmesg is refused: each bounded at 4 s
    options={
        # Hours of kernel log that count as "recent": covers an incident's onset
        # when diagnosis starts an hour or two in, not yesterday's one-off.
        "lookback_hours": 6.0,
        # Epoch seconds; when > 0, only lines at or after it count (replaces the lookback).
        "since": 0.0,
    },
)
def kernel(ctx: ProbeContext) -> list[Finding]:
    """Kernel log of the recent window: hardware errors, block I/O errors,
    read-only remounts, OOM kills, program crashes, hung tasks, SYN floods,
    conntrack table full, clock steps, refused forks."""
    now = ctx.host.time()
    since = ctx.window_start(now)
    log = read_kernel_log(ctx.host, since)
    logged = _segfaults_logged(ctx.host)
    devices = devices_in_use(ctx.host)
    return [ctx.finding(fid, present, ev)
            for fid, present, ev in judge(log, since, segfaults_logged=logged, devices=devices)]


def devices_in_use(host: Host) -> frozenset[str] | None:
    """Block devices (``vda1``, ``dm-0``, ``sdb``) that back a mounted filesystem or swap,
    with what they are built on (``/sys/class/block/DEV/slaves``: the disks under a
    device-mapper or md device); None when the mounts cannot be read."""
    try:
        mounts = parse_mountinfo(host.read_text("/proc/self/mountinfo"))
    except (OSError, LookupError, TimeoutError):
        return None
    names = [m.source for m in mounts if m.source.startswith("/dev/")]
    try:
        names += [ln.split()[0] for ln in host.read_text("/proc/swaps").splitlines()[1:] if ln.startswith("/dev/")]
    except (OSError, LookupError, TimeoutError):
        pass
    todo: list[str] = []
    for n in names:
        dev = n.removeprefix("/dev/")
        if dev.startswith("mapper/"):
            try:
                dev = host.readlink(n).rsplit("/", 1)[-1]  # /dev/mapper/vg-root -> ../dm-0
            except (OSError, LookupError, TimeoutError):
                continue
        todo.append(dev)
    out: set[str] = set()
    while todo and len(out) < 256:
        dev = todo.pop()
        if dev in out:
            continue
        out.add(dev)
        try:
            todo += host.listdir(f"/sys/class/block/{dev}/slaves")
        except (OSError, LookupError, TimeoutError):
            continue
    return frozenset(out)
