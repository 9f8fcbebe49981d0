"""The processes probe: worker pools, orphans, zombies, crash loops, limits, CPU hogs.

One pass over ``/proc`` builds the process table (``stat``, ``status``,
``cmdline`` of every process; ``limits`` of non-root ones), then the probe
sleeps the sampling window and reads every ``/proc/PID/stat`` again: the two
reads give CPU time per process, zombies that stay, and supervised services
restarted during the window. While it sleeps, it reads the children of each
process supervisor (runsv, supervisord, ...; ``supervisors``) ten times over
the window: a service that dies within a second of each start under a
supervisor that waits a second before restarting it is mostly *between* lives
at any one read, but is seen exiting or starting while watched. A supervised
child younger than ``crash_young_seconds`` that started well after its
supervisor (``crash_restart_gap_seconds``) was restarted. Around them it reads the kernel's pid and thread
limits, the cgroup pids controllers and, on a systemd host, the restart
counters of services.

The rules live in pure modules: ``proctable`` (parsing, grouping), ``workers``
(managers, orphans, pool sizes), ``procchecks`` (limits, restarts, hogs,
zombies). Reads of one process that vanish mid-scan are skipped; a command
line that cannot be read within a short timeout (a process stuck in the
kernel holding its memory lock) is left empty and counted in the evidence;
after two such, the command lines of other processes in state D are not
waited for.

The CPU hog is one process that over the window used at least
``hog_core_percent`` of one CPU *and* ``hog_share_percent`` of all the busy
CPU time of the host; ddx's own process (``/proc/self``) is left out, since
other probes work during the window.

Where the CPU goes (``cpu.busy_outside_services``), judged only while the CPUs are
at least ``outside_busy_percent`` busy: the biggest CPU users (up to 90% of the
CPU time processes used, at most 20 of them) are sorted into services, processes
holding a listening TCP or unix socket of their own network namespace (or whose
parent, the same program, does: a PostgreSQL backend), and the rest. Present when
the rest used ``outside_share_percent`` of it: batch jobs, scripts and runaway tools,
not traffic. UDP servers are not recognised as services.

``memory.process_rss_growing`` is not declared: a leak is a trend over
minutes, which one sampling window cannot show honestly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from ddx.errors import ConfigError
from ddx.host import Host, redact_cmdline
from ddx.inventory.processes import ProcScan, pid_list, read_proc_table, read_stats
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.mounts import cgroup_roots
from ddx.probes.parsers.proctable import (
    Proc,
    ProcTable,
    StatInfo,
    argv_words,
    group_processes,
    parse_cpu_times,
    parse_limits,
    parse_loadavg_tasks,
)
from ddx.probes.system.procchecks import (
    CgroupPids,
    Hog,
    LimitUse,
    cgroup_child_names,
    child_changes,
    cpu_users,
    limit_uses,
    parse_listen_inodes,
    parse_pids_events,
    parse_pids_max,
    parse_systemctl_show,
    persistent_zombies,
    pick_hogs,
    replaced_children,
    unit_loop_reason,
    young_supervised,
)
from ddx.probes.system.workers import (
    DEFAULT_SESSION_PROGRAMS,
    DEFAULT_WORKER_TITLE,
    Excess,
    Pool,
    countable_workers,
    find_excess,
    find_managers,
    find_orphans,
    nginx_conf_path,
    nginx_worker_processes,
    parse_pools,
    pool_excess,
    size_from_cmdline,
)
from ddx.units import duration, iso

__all__ = ["procs", "read_cgroup_pids"]

log = logging.getLogger(__name__)


FINDINGS = (
    "cpu.busy_outside_services",
    "cpu.single_process_hog",
    "procs.count_excess",
    "procs.crash_loop",
    "procs.fork_failures",
    "procs.limit_near",
    "procs.orphaned_workers",
    "procs.zombies",
)

_GONE = (FileNotFoundError, ProcessLookupError, LookupError)
MAX_SAMPLES = 8
MAX_CLASSIFIED = 20  # biggest CPU users whose sockets are read for cpu.busy_outside_services



def _title(p: Proc, limit: int = 100) -> str:
    """A process's command line with secrets hidden, for evidence."""
    if not p.argv:
        return f"[{p.comm}]"
    text = " ".join(" ".join(redact_cmdline(argv_words(p.argv))).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _row(t: ProcTable, p: Proc, extra: str = "") -> str:
    tail = f" {extra}" if extra else ""
    return f"pid {p.pid} ppid {p.ppid} age {duration(t.age(p))} {_title(p)}{tail}"


# --- findings ------------------------------------------------------------------------


def _options(ctx: ProbeContext) -> tuple[list[Pool], re.Pattern[str]]:
    """The options that are more than a number, checked before any reading:
    a bad one is the person's error (ConfigError), named by key."""
    try:
        pools = parse_pools(ctx.opt("pools"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        title_re = re.compile(str(ctx.opt("worker_title")))
    except re.error as exc:
        raise ConfigError(f"[probe.procs] worker_title: not a valid regular expression: {exc}") from None
    return pools, title_re


def _orphans_and_excess(ctx: ProbeContext, scan: ProcScan, ncpu: int) -> list[Finding]:
    t = scan.table
    session = [str(s) for s in ctx.opt("session_programs")]
    pools, title_re = _options(ctx)
    managers = find_managers(t, session)
    orphans = find_orphans(t, managers, session, title_re)
    source = "/proc/*/stat, /proc/*/cmdline"
    notes = scan.notes()
    note = f" Not read: {notes}." if notes else ""
    out: list[Finding] = []

    rows = [
        _row(
            t,
            o.proc,
            f"<- {o.reason}"
            if o.manager is None
            else f"<- manager now pid {o.manager.pid} (age {duration(t.age(o.manager))})",
        )
        for o in orphans
    ]
    if orphans:
        starts = [t.start_epoch(o.proc) for o in orphans]
        ev = Evidence(
            source,
            f"{len(orphans)} worker process(es) without their manager: adopted by init or a subreaper, "
            f"started before the manager now running or with their process group leader gone.{note}",
            value=len(orphans),
            threshold=1,
            unit="processes",
            samples=tuple(rows[:MAX_SAMPLES]),
            count=len(orphans),
            first_seen=iso(min(s for s in starts if s is not None)) if all(s is not None for s in starts) else None,
        )
    else:
        ev = Evidence(
            source,
            f"No orphaned workers among {len(t.user_procs())} processes ({len(managers)} managers with workers)."
            + note,
            value=0,
            threshold=1,
            unit="processes",
            samples=tuple(
                _row(t, m.proc, f"-> {len(m.workers)} worker(s)") for m in managers[:MAX_SAMPLES]
            ),
        )
    out.append(ctx.finding("procs.orphaned_workers", bool(orphans), ev))

    sizes: dict[int, tuple[int, str]] = {}
    for m in managers:
        size = size_from_cmdline(m.proc)
        if size is None and m.proc.program == "nginx":
            size = _nginx_size(ctx.host, m.proc, ncpu)
        if size is not None:
            sizes[m.proc.pid] = size
    excesses: list[Excess] = []
    checked: list[str] = []
    for m, exc in find_excess(t, managers, orphans, sizes):
        if exc is not None:
            excesses.append(exc)
        else:
            n = len(countable_workers(m))
            exp, basis = sizes.get(m.proc.pid, (n, "live children"))
            checked.append(_row(t, m.proc, f"-> {n} worker(s), expected {exp} ({basis})"))
    for pool, exc in pool_excess(t, pools):
        if exc.count > pool.expected:
            excesses.append(exc)
        else:
            checked.append(f"pool {pool.name!r} /{pool.pattern.pattern}/: {exc.count} of expected {pool.expected}")
    if excesses:
        rows = []
        for e in excesses:
            rows.append(f"{e.name}: {e.count} processes, expected {e.expected} ({e.basis})")
            rows.extend("  " + _row(t, p) for p in e.members[:4])
        worst = max(excesses, key=lambda e: e.count - e.expected)
        ev = Evidence(
            source,
            f"{len(excesses)} worker group(s) larger than expected; largest excess: {worst.name} has "
            f"{worst.count}, expected {worst.expected} ({worst.basis}).{note}",
            value=worst.count,
            threshold=worst.expected,
            unit="processes",
            samples=tuple(rows[: MAX_SAMPLES * 2]),
            count=len(excesses),
        )
    else:
        # The largest groups by program and command line, for a person to judge sizes at a glance.
        largest = [g.row() for g in group_processes(t)[:3] if g.count > 1]
        ev = Evidence(
            source,
            f"No worker group larger than expected ({len(checked)} groups checked"
            f"{', ' + str(len(pools)) + ' configured pools' if pools else ', no pools configured'}).{note}",
            value=0,
            unit="groups",
            samples=tuple(checked[:MAX_SAMPLES] + largest),
        )
    out.append(ctx.finding("procs.count_excess", bool(excesses), ev))
    return out


def _nginx_size(host: Host, master: Proc, ncpu: int) -> tuple[int, str] | None:
    path = nginx_conf_path(master)
    try:
        text = host.read_text(path, max_bytes=256 << 10)
    except (OSError, LookupError, TimeoutError):
        return None
    n = nginx_worker_processes(text, ncpu)
    return None if n is None else (n, f"worker_processes in {path}")




def _zombies(ctx: ProbeContext, t: ProcTable, later: dict[int, StatInfo] | None) -> Finding:
    zs = persistent_zombies(t, later)
    minimum = int(ctx.opt("zombies_min"))
    by_parent: dict[int, int] = {}
    for z in zs:
        by_parent[z.ppid] = by_parent.get(z.ppid, 0) + 1
    rows = []
    for ppid, n in sorted(by_parent.items(), key=lambda kv: -kv[1]):
        parent = t.get(ppid)
        rows.append(f"parent pid {ppid} ({_title(parent) if parent else 'gone'}) has {n} zombie(s)")
    rows.extend(_row(t, z, "<defunct>") for z in zs[:MAX_SAMPLES])
    window = f"through the {ctx.window:g}s window" if later is not None else "at one read"
    ev = Evidence(
        "/proc/*/stat (state Z)",
        f"{len(zs)} zombie process(es) {window}; threshold {minimum}.",
        value=len(zs),
        threshold=minimum,
        unit="processes",
        samples=tuple(rows[: MAX_SAMPLES + 4]),
        count=len(zs),
    )
    return ctx.finding("procs.zombies", len(zs) >= minimum, ev)


def _read_int(host: Host, path: str) -> int | None:
    try:
        return int(host.read_text(path).split()[0])
    except (OSError, ValueError, IndexError, LookupError, TimeoutError):
        return None


def _nproc_limits(host: Host, t: ProcTable) -> dict[int, tuple[int, int]]:
    """Per non-root uid: the lowest soft 'Max processes' among its processes."""
    out: dict[int, tuple[int, int]] = {}
    reads = 0
    for p in t.user_procs():
        if p.uid <= 0 or p.zombie or reads >= 2000:
            continue
        reads += 1
        try:
            lim = parse_limits(host.read_text(f"/proc/{p.pid}/limits")).get("Max processes")
        except (OSError, LookupError, TimeoutError, ValueError):
            continue
        if lim is None or lim.soft is None:
            continue
        if p.uid not in out or lim.soft < out[p.uid][0]:
            out[p.uid] = (lim.soft, p.pid)
    return out


# --- cgroups -------------------------------------------------------------------------


def _pids_roots(host: Host) -> list[tuple[str, bool]]:
    """Mount points of the pids controller: (path, is_v2)."""
    return cgroup_roots(host.read_text("/proc/mounts"), "pids")


def read_cgroup_pids(host: Host, max_cgroups: int) -> tuple[list[CgroupPids], bool]:
    """Every cgroup with a pids controller (v2: descending only where a
    parent's ``cgroup.subtree_control`` enables pids; v1: the whole pids
    hierarchy), at most ``max_cgroups``. Returns (cgroups, truncated)."""
    out: list[CgroupPids] = []
    visited = 0
    truncated = False
    for root, v2 in _pids_roots(host):
        stack = [root]
        while stack:
            d = stack.pop()
            visited += 1
            if visited > max_cgroups:
                truncated = True
                break
            if v2:
                try:
                    if "pids" not in host.read_text(f"{d}/cgroup.subtree_control").split():
                        continue
                except (OSError, LookupError, TimeoutError):
                    continue
            try:
                names = host.listdir(d)
            except (OSError, LookupError, TimeoutError):
                continue
            for name in cgroup_child_names(names):
                child = f"{d.rstrip('/')}/{name}"
                try:
                    limit = parse_pids_max(host.read_text(f"{child}/pids.max"))
                    current = int(host.read_text(f"{child}/pids.current").split()[0])
                except (OSError, LookupError, TimeoutError, ValueError, IndexError):
                    continue  # not a directory, or no pids controller here
                try:
                    events = parse_pids_events(host.read_text(f"{child}/pids.events"))
                except (OSError, LookupError, TimeoutError):
                    events = 0
                rel = child[len(root.rstrip("/")) :] or "/"
                out.append(CgroupPids(rel, current, limit, events, f"{child}/pids.*"))
                stack.append(child)
    return out, truncated


def _events_now(host: Host, cgroups: list[CgroupPids]) -> dict[str, int]:
    out = {}
    for c in cgroups:
        try:
            out[c.path] = parse_pids_events(host.read_text(c.source.replace("pids.*", "pids.events")))
        except (OSError, LookupError, TimeoutError):
            continue
    return out


def _limits_finding(
    ctx: ProbeContext, t: ProcTable, cgroups: list[CgroupPids] | None, truncated: bool
) -> Finding | None:
    host = ctx.host
    pct = float(ctx.opt("limit_percent"))
    tasks = parse_loadavg_tasks(host.read_text("/proc/loadavg"))
    pid_max = _read_int(host, "/proc/sys/kernel/pid_max")
    threads_max = _read_int(host, "/proc/sys/kernel/threads-max")
    uses = limit_uses(tasks, pid_max, threads_max, t, _nproc_limits(host, t))
    for c in cgroups or ():
        if c.limit is not None:
            uses.append(LimitUse(f"cgroup {c.path} pids.max", c.current, c.limit, c.source))
    if not uses:
        return None
    near = [u for u in uses if u.percent >= pct]
    shown = sorted(near or uses, key=lambda u: -u.percent)
    top = shown[0]
    cg = "" if cgroups is None else f"; {len(cgroups)} cgroups with a pids controller" + (
        " (walk truncated)" if truncated else ""
    )
    ev = Evidence(
        "/proc/loadavg, /proc/sys/kernel/{pid_max,threads-max}, /proc/*/limits, cgroup pids.max/pids.current",
        (
            f"{len(near)} count(s) at or above {pct:g}% of their limit; highest {top.row()}{cg}."
            if near
            else f"No process or thread count near a limit (highest {top.row()}){cg}."
        ),
        value=round(top.percent, 1),
        threshold=pct,
        unit="%",
        samples=tuple(u.row() for u in shown[:MAX_SAMPLES]),
        count=len(near),
    )
    return ctx.finding("procs.limit_near", bool(near), ev)


def _fork_finding(
    ctx: ProbeContext, cgroups: list[CgroupPids], later: dict[str, int] | None
) -> Finding | None:
    if not cgroups:
        return None  # no pids controller in use: nothing direct to read
    hit = [c for c in cgroups if c.events_max > 0 or (later or {}).get(c.path, 0) > c.events_max]
    rows = []
    for c in sorted(hit, key=lambda c: -max(c.events_max, (later or {}).get(c.path, 0))):
        after = (later or {}).get(c.path, c.events_max)
        rose = f", +{after - c.events_max} during the window" if after > c.events_max else ""
        lim = "max" if c.limit is None else str(c.limit)
        rows.append(f"cgroup {c.path}: {after} fork failure(s) at pids.max {lim} (pids.current {c.current}){rose}")
    total = sum(max(c.events_max, (later or {}).get(c.path, 0)) for c in hit)
    ev = Evidence(
        "pids.events of cgroups with a pids controller",
        (
            f"{total} fork/clone failure(s) because a cgroup reached pids.max, in {len(hit)} cgroup(s) "
            "(counted since each cgroup was created)."
            if hit
            else f"No fork failures counted by the pids controller ({len(cgroups)} cgroups)."
        ),
        value=total,
        threshold=1,
        unit="failures",
        samples=tuple(rows[:MAX_SAMPLES]),
        count=len(hit),
    )
    return ctx.finding("procs.fork_failures", bool(hit), ev)


# --- crash loops ---------------------------------------------------------------------

_SHOW_PROPS = "Id,NRestarts,ActiveState,SubState,Result,ExecMainStartTimestampMonotonic,ExecMainPID"


def _systemd_loops(ctx: ProbeContext, uptime: float) -> tuple[list[str], int] | None:
    """Crash-looping units (rows) and the number of units examined; None when
    systemd does not run here or could not be asked."""
    host = ctx.host
    try:
        host.stat("/run/systemd/system")
    except (OSError, LookupError):
        return None
    try:
        res = host.run(["systemctl", "show", "--no-pager", "-p", _SHOW_PROPS, "*.service"], timeout=3.0)
    except (OSError, TimeoutError, LookupError) as exc:
        log.warning("procs: systemctl show failed: %s", exc)
        return None
    if res.returncode != 0:
        log.warning("procs: systemctl show exited %s: %s", res.returncode, res.stderr.strip()[:200])
        return None
    units = parse_systemctl_show(res.stdout)
    now_us = int(uptime * 1e6)
    rows = []
    for u in units:
        why = unit_loop_reason(
            u, now_us, int(ctx.opt("crash_restarts_min")), float(ctx.opt("crash_recent_seconds"))
        )
        if why:
            rows.append(f"{u.get('Id', '?')}: {why} (NRestarts={u.get('NRestarts', '?')})")
    return rows, len(units)


def _children(host: Host, pid: int) -> frozenset[int] | None:
    try:
        return frozenset(int(x) for x in host.read_text(f"/proc/{pid}/task/{pid}/children").split())
    except (OSError, LookupError, TimeoutError, ValueError):
        return None


def watch_supervised(host: Host, supervisors: list[int], window: float, step: float = 0.1) -> dict[int, list[frozenset[int]]]:
    """Sleep the window while reading the children of each supervisor every
    ``step`` seconds (``/proc/PID/task/PID/children``: a few bytes each): a
    service that dies and is restarted within a second or two is seen doing it,
    where two reads a window apart mostly fall between its short lives.
    Supervisors whose children cannot be read this way are left out."""
    samples: dict[int, list[frozenset[int]]] = {}
    for pid in supervisors:
        first = _children(host, pid)
        if first is not None:
            samples[pid] = [first]
    if not samples:
        host.sleep(window)
        return {}
    n = max(1, round(window / step))
    for _ in range(n):
        host.sleep(window / n)
        for pid in list(samples):
            kids = _children(host, pid)
            if kids is not None:
                samples[pid].append(kids)
    return samples


def _crash_finding(
    ctx: ProbeContext, t: ProcTable, later: dict[int, StatInfo] | None,
    watched: dict[int, list[frozenset[int]]] | None = None,
) -> Finding | None:
    sysd = _systemd_loops(ctx, t.uptime)
    sups = [str(s) for s in ctx.opt("supervisors")]
    rows: list[str] = []
    if sysd is not None:
        rows.extend(sysd[0])
    for s, gone, new in replaced_children(t, later or {}, sups) if later is not None else ():
        rows.append(f"{_row(t, s)}: child {pid_list(gone)} replaced by {pid_list(new)} during the {ctx.window:g}s window")
    seen = {s.pid for s, _g, _n in replaced_children(t, later or {}, sups)} if later is not None else set()
    for pid, samples in sorted((watched or {}).items()):
        exited, started = child_changes(samples)
        sup = t.get(pid)
        if sup is None or pid in seen or not (exited or started):
            continue
        seen.add(pid)
        both = [p for p in started if p in exited]  # lived less than the window
        exited = [p for p in exited if p not in both]
        started = [p for p in started if p not in both]
        what = [f"child {pid_list(x)} {verb}" for x, verb in ((exited, "exited"), (both, "started and exited"),
                                                           (started, "started")) if x]
        rows.append(f"{_row(t, sup)}: {' and '.join(what)} during the {ctx.window:g}s window")
    young = float(ctx.opt("crash_young_seconds"))
    for s, c in young_supervised(t, sups, young, float(ctx.opt("crash_restart_gap_seconds"))):
        if s.pid not in seen:
            rows.append(f"{_row(t, s)}: supervised child is {duration(t.age(c))} old, started "
                        f"{duration((c.starttime - s.starttime) / t.hz)} after its supervisor: {_row(t, c)}")
    looked = sysd is not None or later is not None or any(p.program in sups for p in t.user_procs())
    if not rows and not looked:
        return None
    parts = []
    if sysd is not None:
        parts.append(f"{sysd[1]} systemd services")
    else:
        parts.append("no systemd")
    nsup = sum(1 for p in t.user_procs() if p.program in sups)
    parts.append(f"{nsup} process supervisors")
    ev = Evidence(
        "systemctl show NRestarts/SubState/Result; supervisors' children in /proc",
        (f"{len(rows)} crash-looping service(s)" if rows else "No crash-looping service")
        + f" ({', '.join(parts)} examined).",
        value=len(rows),
        threshold=1,
        unit="services",
        samples=tuple(rows[:MAX_SAMPLES]),
        count=len(rows),
    )
    return ctx.finding("procs.crash_loop", bool(rows), ev)


def _cpu_users(ctx: ProbeContext, t: ProcTable, later: dict[int, StatInfo], cpu_before: Any,
               cpu_after: Any) -> list[Hog]:
    """CPU use per process over the window, most first, for both CPU findings; ddx's own
    process is left out (its other probes parse logs during the window: not the host's work)."""
    if cpu_after.total <= cpu_before.total:
        return []
    try:
        me = int(ctx.host.readlink("/proc/self"))
    except (OSError, LookupError, TimeoutError, ValueError):
        me = None
    return [h for h in cpu_users(t, later, cpu_before, cpu_after) if h.proc.pid != me]


def _hog_finding(ctx: ProbeContext, t: ProcTable, users: list[Hog], cpu_before: Any, cpu_after: Any) -> Finding | None:
    core, share = float(ctx.opt("hog_core_percent")), float(ctx.opt("hog_share_percent"))
    if cpu_after.total <= cpu_before.total:
        return None
    hogs, top = pick_hogs(users, core, share)
    shown = hogs or top
    rows = [
        _row(t, h.proc, f"-> {h.core_percent:.0f}% of one CPU, {min(h.share_percent, 100):.0f}% of busy CPU")
        for h in shown
    ]
    first = shown[0] if shown else None
    ev = Evidence(
        "/proc/*/stat utime+stime and /proc/stat, two reads",
        (
            f"pid {first.proc.pid} used {first.core_percent:.0f}% of one CPU and "
            f"{min(first.share_percent, 100):.0f}% of the host's busy CPU time over {ctx.window:g}s."
            if hogs and first
            else f"No process used {core:g}% of a CPU and {share:g}% of the busy CPU time over {ctx.window:g}s "
            f"({cpu_after.ncpu} CPUs)."
        ),
        value=round(first.core_percent, 1) if first else 0,
        threshold=core,
        unit="% of one CPU",
        samples=tuple(rows[:MAX_SAMPLES]),
        count=len(hogs),
    )
    return ctx.finding("cpu.single_process_hog", bool(hogs), ev)


class _Serving:
    """Whether a process accepts connections: it holds a listening TCP or unix socket
    of its own network namespace (read from ``/proc/PID/net``, so containers count).
    At most ``MAX_FDS`` descriptors of a process are looked at."""

    MAX_FDS = 1024  # listening sockets are opened at start-up: low descriptors

    def __init__(self, host: Host) -> None:
        self.host = host
        self.by_ns: dict[str, set[int]] = {}

    def _listening(self, pid: int) -> set[int]:
        ns = self.host.readlink(f"/proc/{pid}/ns/net")
        if ns not in self.by_ns:
            texts = {}
            for name in ("tcp", "tcp6", "unix"):
                try:
                    texts[name] = self.host.read_text(f"/proc/{pid}/net/{name}")
                except FileNotFoundError:
                    texts[name] = ""
            self.by_ns[ns] = parse_listen_inodes(texts["tcp"] + "\n" + texts["tcp6"], texts["unix"])
        return self.by_ns[ns]

    def serves(self, pid: int) -> bool | None:
        """True or False; None when its descriptors cannot be read (gone, not ours)."""
        try:
            listening = self._listening(pid)
            for fd in self.host.listdir(f"/proc/{pid}/fd")[: self.MAX_FDS]:
                try:
                    link = self.host.readlink(f"/proc/{pid}/fd/{fd}")
                except _GONE:
                    continue
                if link.startswith("socket:[") and link[8:-1].isdigit() and int(link[8:-1]) in listening:
                    return True
        except (OSError, LookupError, TimeoutError):
            return None
        return False


def _outside_finding(
    ctx: ProbeContext, t: ProcTable, users: list[Hog], cpu_before: Any, cpu_after: Any
) -> Finding | None:
    """``cpu.busy_outside_services``: on a busy host, does the CPU go to the services
    (processes that accept connections, or whose parent, the same program, does: a
    PostgreSQL backend under its postmaster) or to work that serves nobody (batch jobs,
    scripts, a runaway tool)? What ``top`` answers for an on-call engineer; a traffic
    surge spends its CPU in the services. Unknown while the CPU is not busy, or when
    the processes that used most of it could not be read."""
    total = cpu_after.total - cpu_before.total
    if total <= 0:
        return None
    busy = 100.0 * (cpu_after.busy - cpu_before.busy) / total
    if busy < float(ctx.opt("outside_busy_percent")):
        return None
    used = sum(h.core_percent for h in users)
    if used <= 0:
        return None
    who = _Serving(ctx.host)
    outside, serving = [], []
    seen = 0.0
    for h in users[:MAX_CLASSIFIED]:
        if seen >= 0.9 * used:
            break
        seen += h.core_percent
        verdict = who.serves(h.proc.pid)
        parent = t.procs.get(h.proc.ppid)
        if not verdict and parent is not None and parent.pid > 1 and parent.program == h.proc.program:
            verdict = who.serves(parent.pid) or verdict
        if verdict is True:
            serving.append(h)
        elif verdict is False:
            outside.append(h)
    out_pct = 100.0 * sum(h.core_percent for h in outside) / used
    srv_pct = 100.0 * sum(h.core_percent for h in serving) / used
    share = float(ctx.opt("outside_share_percent"))
    if out_pct < share and srv_pct <= 100.0 - share:
        return None  # the processes that decide it could not be read
    rows = [_row(t, h.proc, f"-> {h.core_percent:.0f}% of one CPU, serves nobody") for h in outside[:4]]
    rows += [_row(t, h.proc, f"-> {h.core_percent:.0f}% of one CPU, accepts connections") for h in serving[:2]]
    ev = Evidence(
        "/proc/*/stat utime+stime, /proc/PID/fd and /proc/PID/net/{tcp,tcp6,unix} (listening sockets)",
        f"CPUs {busy:.0f}% busy over {ctx.window:g}s: {out_pct:.0f}% of the CPU time processes used went to "
        f"{len(outside)} that accept no connections (nor does their parent), {srv_pct:.0f}% to "
        f"{len(serving)} that do (the services).",
        value=round(out_pct, 1),
        threshold=share,
        unit="% of process CPU time",
        samples=tuple(rows[:MAX_SAMPLES]),
        count=len(outside),
    )
    return ctx.finding("cpu.busy_outside_services", out_pct >= share, ev)


def _guard(name: str, fn: Callable[[], Any], errors: list[str]) -> Any:
    """One finding's computation: a failure leaves that finding unknown and
    the others standing."""
    try:
        return fn()
    except ConfigError:
        raise  # the person's error: it must be seen, not hidden as an unknown
    except Exception as exc:  # noqa: BLE001
        errors.append(f"{name}: {type(exc).__name__}: {exc}")
        log.warning("procs: %s could not be computed: %s", name, exc)
        return None


@probe(
    "procs",
    findings=FINDINGS,
    timeout=4.0,
    options={
        # Pools whose size you know: [{name = "app", match = "gunicorn: worker \\[app\\]", expected = 8}]
        # (match: regex on the command line; more members than expected is an excess).
        "pools": [],
        # Children of these outlive a parent's restart by design (login sessions, cron jobs,
        # shells, container shims): never managers or orphans.
        "session_programs": list(DEFAULT_SESSION_PROGRAMS),
        # A title that marks a process as some manager's worker: used for workers whose manager is gone.
        "worker_title": DEFAULT_WORKER_TITLE,
        # Zombies that stay through the window before "accumulate" is said; a single long-lived zombie
        # of a sloppy daemon is common and harmless, several mean a parent stopped reaping.
        "zombies_min": 5,
        # Percent of a limit (pid_max, threads-max, RLIMIT_NPROC, pids.max) that counts as near:
        # the last 10% of pids go in minutes when something forks in a loop.
        "limit_percent": 90.0,
        # systemd: a unit restarted automatically at least this often (NRestarts) whose main process
        # started recently is looping; one restart is an incident, two a loop.
        "crash_restarts_min": 2,
        # systemd: "recently" for the rule above: 15 minutes, the span of an incident's first look.
        "crash_recent_seconds": 900.0,
        # Process supervisors whose child being replaced during the window, or very young while the
        # supervisor is old, means the service was just restarted.
        "supervisors": ["runsv", "s6-supervise", "supervise", "supervisord", "circusd", "PM2", "forever", "monit"],
        # "Very young" for a supervised child: runit restarts after 1 s, supervisord backs off a few
        # seconds, so a looping service's child is almost always younger than 30 s.
        "crash_young_seconds": 30.0,
        # ...and started at least this long after its supervisor: a supervisor starts its service at
        # once (within a second), so a later start is a restart (runit waits 1 s before restarting).
        "crash_restart_gap_seconds": 2.0,
        # A process using at least this % of one CPU over the window is pegging a core (top's view).
        "hog_core_percent": 80.0,
        # ...and at least this share of all busy CPU time on the host: "most" of the work.
        "hog_share_percent": 50.0,
        # cpu.busy_outside_services is judged when the CPUs are at least this busy over the window
        # (below, who uses the CPU is not a question: there is CPU to spare)...
        "outside_busy_percent": 75.0,
        # ...and present when processes that accept no connections used at least this share of it.
        "outside_share_percent": 50.0,
        # Processes read at most: about 0.2 ms each (three small reads), so 10,000 fit the probe's
        # timeout with room for the rest.
        "max_pids": 10000,
        # Cgroup directories visited at most when looking for pids limits (systemd hosts have hundreds).
        "max_cgroups": 2000,
    },
)
def procs(ctx: ProbeContext) -> list[Finding]:
    """Process table: worker pools against their managers, orphaned workers,
    zombies, crash loops, pid/thread limits and pids-cgroup fork failures, the
    process using most CPU over the window, and whether the services or other
    work keep a busy CPU busy."""
    host = ctx.host
    errors: list[str] = []
    _options(ctx)
    cpu_before = parse_cpu_times(host.read_text("/proc/stat"))
    scan = read_proc_table(host, int(ctx.opt("max_pids")))
    t = scan.table
    if cpu_before.btime is not None:
        t = ProcTable(t.procs, t.uptime, t.hz, cpu_before.btime)
        scan.table = t
    if not t.procs:
        raise PermissionError("no process in /proc could be read")
    if 1 not in t.procs:
        # init is always listed, unless /proc hides other users' processes (hidepid) from us:
        # then every "none found" would be a guess.
        raise PermissionError("/proc hides other users' processes (hidepid): pid 1 is not visible")
    cg = _guard("cgroups", lambda: read_cgroup_pids(host, int(ctx.opt("max_cgroups"))), errors)
    cgroups, truncated = cg if cg is not None else (None, False)

    later: dict[int, StatInfo] | None = None
    events_later: dict[str, int] | None = None
    cpu_after = None
    watched: dict[int, list[frozenset[int]]] | None = None
    if ctx.window > 0:
        sups = frozenset(str(x) for x in ctx.opt("supervisors"))
        watched = watch_supervised(host, [p.pid for p in t.user_procs() if p.program in sups], ctx.window)
        later = read_stats(host)
        cpu_after = parse_cpu_times(host.read_text("/proc/stat"))
        if cgroups:
            events_later = _events_now(host, cgroups)

    out: list[Finding | None] = []
    out.extend(_guard("orphans/excess", lambda: _orphans_and_excess(ctx, scan, cpu_before.ncpu), errors) or [])
    out.append(_guard("zombies", lambda: _zombies(ctx, t, later), errors))
    out.append(_guard("limits", lambda: _limits_finding(ctx, t, cgroups, truncated), errors))
    if cgroups is not None:
        out.append(_guard("fork failures", lambda: _fork_finding(ctx, cgroups, events_later), errors))
    out.append(_guard("crash loops", lambda: _crash_finding(ctx, t, later, watched), errors))
    if later is not None and cpu_after is not None:
        users = _guard("cpu use", lambda: _cpu_users(ctx, t, later, cpu_before, cpu_after), errors)
        if users is not None:
            out.append(_guard("cpu hog", lambda: _hog_finding(ctx, t, users, cpu_before, cpu_after), errors))
            out.append(_guard("cpu outside services", lambda: _outside_finding(ctx, t, users, cpu_before, cpu_after),
                              errors))
    found = [f for f in out if f is not None]
    if errors and not found:
        raise RuntimeError("; ".join(errors))
    return found
