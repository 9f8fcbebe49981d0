"""Pure checks on process data: limits, cgroup pids, systemd restarts, CPU hogs, zombies.

No I/O: ``ddx.probes.system.procs`` reads the files and commands and feeds them
here; tests feed samples. Each function documents the rule it applies and
where its default threshold comes from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ddx.probes.parsers.proctable import CpuTimes, Proc, ProcTable, StatInfo
from ddx.probes.parsers.sockets import parse_proc_net_tcp, parse_proc_net_unix
from ddx.units import duration

__all__ = [
    "CgroupPids",
    "Hog",
    "LimitUse",
    "cgroup_child_names",
    "child_changes",
    "cpu_hogs",
    "cpu_users",
    "limit_uses",
    "parse_listen_inodes",
    "parse_pids_events",
    "parse_pids_max",
    "parse_systemctl_show",
    "pick_hogs",
    "persistent_zombies",
    "replaced_children",
    "unit_loop_reason",
    "young_supervised",
]


# --- limits: pid_max, threads-max, RLIMIT_NPROC, cgroup pids.max ---------------------


@dataclass(frozen=True)
class LimitUse:
    """One count against one limit."""

    name: str  # "kernel.pid_max", "RLIMIT_NPROC uid 1000", "cgroup /system.slice/x pids.max"
    used: int
    limit: int
    source: str
    detail: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.limit if self.limit > 0 else 0.0

    def row(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.name}: {self.used} of {self.limit} ({self.percent:.0f}%){tail}"


def limit_uses(
    tasks: int,
    pid_max: int | None,
    threads_max: int | None,
    table: ProcTable,
    nproc_limits: Mapping[int, tuple[int, int]],
) -> list[LimitUse]:
    """The system-wide and per-user counts against their limits.

    ``tasks`` counts processes *and* threads (each takes a pid, and each counts
    against threads-max and RLIMIT_NPROC). ``nproc_limits`` maps a uid to the
    lowest soft ``Max processes`` among its processes and the pid that has it.
    RLIMIT_NPROC counts the tasks of a real uid; uid 0 is left out because
    root (CAP_SYS_RESOURCE/CAP_SYS_ADMIN) is not held to it."""
    out: list[LimitUse] = []
    if pid_max:
        out.append(LimitUse("kernel.pid_max", tasks, pid_max, "/proc/loadavg, /proc/sys/kernel/pid_max"))
    if threads_max:
        out.append(LimitUse("kernel.threads-max", tasks, threads_max, "/proc/loadavg, /proc/sys/kernel/threads-max"))
    per_uid: dict[int, int] = {}
    for p in table.user_procs():
        if p.uid > 0:
            per_uid[p.uid] = per_uid.get(p.uid, 0) + max(1, p.threads)
    for uid, used in sorted(per_uid.items()):
        lim = nproc_limits.get(uid)
        if lim is None:
            continue
        limit, pid = lim
        out.append(
            LimitUse(
                f"RLIMIT_NPROC uid {uid}", used, limit, f"/proc/{pid}/limits", f"soft 'Max processes' of pid {pid}"
            )
        )
    return out


@dataclass(frozen=True)
class CgroupPids:
    """The pids controller of one cgroup. ``limit`` None: ``max`` (no limit)."""

    path: str  # as shown: "/system.slice/x.service" under the hierarchy root
    current: int
    limit: int | None
    events_max: int  # fork/clone failures because pids.max was reached
    source: str = ""


def parse_pids_max(text: str) -> int | None:
    t = text.strip()
    if t == "max":
        return None
    try:
        return int(t)
    except ValueError:
        raise ValueError(f"pids.max: unexpected content {t[:40]!r}") from None


def parse_pids_events(text: str) -> int:
    """The ``max`` counter of ``pids.events`` (v1 and v2): how many times a
    fork or clone in this cgroup failed because pids.max was reached."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "max":
            try:
                return int(parts[1])
            except ValueError:
                break
    return 0


# Control files of cgroup v1 and v2 start with these words followed by a dot;
# anything else in a cgroup directory is a child cgroup.
_CONTROL_PREFIXES = frozenset(
    {
        "cgroup",
        "cpu",
        "cpuacct",
        "cpuset",
        "io",
        "blkio",
        "memory",
        "pids",
        "hugetlb",
        "rdma",
        "misc",
        "irq",
        "perf_event",
        "freezer",
        "devices",
        "net_cls",
        "net_prio",
    }
)
_CONTROL_FILES = frozenset({"tasks", "notify_on_release", "release_agent"})


def cgroup_child_names(names: Iterable[str]) -> list[str]:
    """The entries of a cgroup directory that are child cgroups (not control
    files), without a stat per entry."""
    out = []
    for n in names:
        if n in _CONTROL_FILES:
            continue
        head, dot, _ = n.partition(".")
        if dot and head in _CONTROL_PREFIXES:
            continue
        out.append(n)
    return out


# --- systemd -------------------------------------------------------------------------


def parse_systemctl_show(text: str) -> list[dict[str, str]]:
    """``systemctl show -p A,B UNIT...``: one ``Key=Value`` block per unit,
    blocks separated by blank lines."""
    units: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                units.append(cur)
                cur = {}
            continue
        key, sep, value = line.partition("=")
        if sep:
            cur[key.strip()] = value.strip()
    if cur:
        units.append(cur)
    return units


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def unit_loop_reason(
    props: Mapping[str, str], now_monotonic_us: int, restarts_min: int, recent_seconds: float
) -> str | None:
    """Why a systemd unit is crash-looping, or None.

    A loop is: systemd gave up restarting it (``Result=start-limit-hit`` after
    restarts); or it died and waits for its next automatic restart
    (``SubState=auto-restart``) after at least one restart already; or it has
    been restarted ``restarts_min`` times (NRestarts) and the last start of its
    main process is less than ``recent_seconds`` old. One restart long ago is
    history, not a loop. Times are CLOCK_MONOTONIC microseconds, compared with
    ``/proc/uptime`` (which also counts suspended time: on a server, the same)."""
    n = _int(props.get("NRestarts"))
    sub = props.get("SubState", "")
    result = props.get("Result", "")
    if result == "start-limit-hit" and n >= 1:
        return f"gave up after {n} restarts (Result=start-limit-hit, state {props.get('ActiveState', '?')})"
    if sub == "auto-restart" and n >= 1:
        return f"dead, waiting for automatic restart #{n + 1} (SubState=auto-restart, Result={result or '?'})"
    start = _int(props.get("ExecMainStartTimestampMonotonic"))
    if n >= restarts_min and start > 0:
        age = (now_monotonic_us - start) / 1e6
        if 0 <= age <= recent_seconds:
            return f"{n} automatic restarts, main process started {duration(age)} ago"
    return None


# --- supervisors: a supervised child replaced, or very young ---------------------------


def replaced_children(
    table: ProcTable, later: Mapping[int, StatInfo], supervisors: Iterable[str]
) -> list[tuple[Proc, list[int], list[int]]]:
    """Supervisors (by program) whose children changed between the table and
    a later read of ``/proc/*/stat``: (supervisor, gone pids, new pids), both
    non-empty. A supervisor's child exiting and a new one taking its place
    within the sampling window is a restart seen as it happens."""
    names = frozenset(supervisors)
    out = []
    for s in table.user_procs():
        if s.program not in names or s.pid not in later:
            continue
        before = {c.pid: c.starttime for c in table.children(s.pid) if not c.zombie}
        after = {pid: st.starttime for pid, st in later.items() if st.ppid == s.pid and st.state != "Z"}
        gone = sorted(pid for pid, t in before.items() if after.get(pid) != t)
        new = sorted(pid for pid, t in after.items() if before.get(pid) != t)
        if gone and new:
            out.append((s, gone, new))
    return out


def young_supervised(
    table: ProcTable, supervisors: Iterable[str], young_seconds: float, min_gap_seconds: float
) -> list[tuple[Proc, Proc]]:
    """(supervisor, child) where a supervisor's child is very young and started
    at least ``min_gap_seconds`` after the supervisor itself: not the first
    start, a restart moments ago (a crash-looping service under runit or
    supervisord always has a child a few seconds old). A supervisor starts its
    services at once (runsv, supervisord), so a later start is a restart."""
    names = frozenset(supervisors)
    out = []
    for s in table.user_procs():
        if s.program not in names:
            continue
        for c in table.children(s.pid):
            if not c.zombie and table.age(c) < young_seconds and c.starttime - s.starttime >= min_gap_seconds * table.hz:
                out.append((s, c))
    return out


def child_changes(samples: list[frozenset[int]]) -> tuple[list[int], list[int]]:
    """(exited, started): child pids of one process that left, or came, between
    successive reads of its children over the window, in order seen. A
    supervised service that exits or starts while ddx watches was just
    (re)started or has just died."""
    exited: list[int] = []
    started: list[int] = []
    for a, b in zip(samples, samples[1:]):
        exited.extend(sorted(a - b))
        started.extend(sorted(b - a))
    return exited, started


# --- zombies -------------------------------------------------------------------------


def persistent_zombies(table: ProcTable, later: Mapping[int, StatInfo] | None) -> list[Proc]:
    """Zombies of the table still zombies (same pid and start time) in the
    later read; every zombie of the table when there is no later read. A
    zombie that is reaped within the window is a parent doing its job."""
    zs = [p for p in table.procs.values() if p.zombie]
    if later is None:
        return sorted(zs, key=lambda p: p.pid)
    keep = []
    for z in zs:
        st = later.get(z.pid)
        if st is not None and st.state == "Z" and st.starttime == z.starttime:
            keep.append(z)
    return sorted(keep, key=lambda p: p.pid)


# --- one process using most of the CPU -------------------------------------------------


@dataclass(frozen=True)
class Hog:
    proc: Proc
    core_percent: float  # of one CPU over the window
    share_percent: float  # of all busy CPU time on the host over the window


def cpu_hogs(
    table: ProcTable,
    later: Mapping[int, StatInfo],
    cpu_before: CpuTimes,
    cpu_after: CpuTimes,
    core_percent: float,
    share_percent: float,
) -> tuple[list[Hog], list[Hog]]:
    """(hogs, top users): processes whose CPU time over the window is at
    least ``core_percent`` of one CPU and at least ``share_percent`` of the
    busy CPU time of the whole host. One CPU's time over the window is the
    host's total tick delta divided by the CPU count, so no clock rate or
    wall-clock interval is needed. The host interval brackets each process's
    interval, so shares err low, never high."""
    return pick_hogs(cpu_users(table, later, cpu_before, cpu_after), core_percent, share_percent)


def pick_hogs(users: list[Hog], core_percent: float, share_percent: float) -> tuple[list[Hog], list[Hog]]:
    """``cpu_hogs``' rule on CPU users already measured (most first)."""
    hogs = [h for h in users if h.core_percent >= core_percent and h.share_percent >= share_percent]
    return hogs, users[:3]


def cpu_users(table: ProcTable, later: Mapping[int, StatInfo], cpu_before: CpuTimes,
              cpu_after: CpuTimes) -> list[Hog]:
    """Every user process that used CPU over the window (the same process in both
    reads: same pid and start time), most first."""
    total = cpu_after.total - cpu_before.total
    busy = cpu_after.busy - cpu_before.busy
    if total <= 0:
        return []
    per_cpu = total / max(1, cpu_after.ncpu)
    users = []
    for p in table.procs.values():
        st = later.get(p.pid)
        if st is None or st.starttime != p.starttime or p.kernel_thread:
            continue
        d = (st.utime + st.stime) - (p.utime + p.stime)
        if d <= 0:
            continue
        users.append(Hog(p, 100.0 * d / per_cpu, 100.0 * d / busy if busy > 0 else 0.0))
    users.sort(key=lambda h: -h.core_percent)
    return users


# --- who serves: listening sockets ----------------------------------------------------


def parse_listen_inodes(tcp: str = "", unix: str = "") -> set[int]:
    """Socket inodes that accept connections: LISTEN rows of ``/proc/net/tcp`` or
    ``tcp6``, and rows of ``/proc/net/unix`` whose flags carry ``__SO_ACCEPTCON``
    (a listening socket: a gunicorn or php-fpm behind nginx)."""
    socks = parse_proc_net_tcp(tcp) + parse_proc_net_unix(unix)
    return {s.inode for s in socks if s.listening and s.inode}
