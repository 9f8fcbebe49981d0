"""The file-descriptor probe: processes at their open-file limit, and the system file table.

Counting a process's open files means listing ``/proc/PID/fd``: costly for a
process with 100,000 sockets, and done for every process it would be the
slowest read of a run on exactly the hosts that need ddx. The probe first
reads two small files per process: ``status`` (``FDSize``, the size of the
process's fd table, which is always at least the number of open fds) and
``limits`` (the soft ``Max open files``). Only a process whose fd table is
large enough to hold ``percent`` of its limit can be near it, so only those
are counted, the fullest tables first, at most ``max_fd_scans`` of them. The
evidence says how many were counted and how many could not be read (other
users' fd directories need root).

A share alone misses small limits: a worker started with ``ulimit -n 16`` that
holds 14 descriptors sits at 88% between requests, yet every request (one
accepted socket, one file) fails with EMFILE. So a process with at most
``min_free`` descriptors left under its soft limit counts as exhausted too,
whatever the share.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddx.host import Host, redact_cmdline
from ddx.host.batch import parsed, read_each
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.proctable import (
    StatusInfo,
    argv_words,
    parse_cmdline,
    parse_file_nr,
    parse_limits,
    parse_status,
)

__all__ = ["FdUse", "fds", "fd_candidates", "read_fd_uses"]


MAX_SAMPLES = 8


@dataclass(frozen=True)
class FdUse:
    pid: int
    name: str
    uid: int
    fdsize: int
    soft: int
    open: int | None = None  # counted fds; None: not counted

    @property
    def percent(self) -> float:
        return 100.0 * (self.open or 0) / self.soft if self.soft > 0 else 0.0

    @property
    def free(self) -> int:
        return self.soft - (self.open or 0)

    def exhausted(self, percent: float, min_free: int) -> bool:
        """At ``percent`` of the soft limit, or with at most ``min_free`` descriptors left."""
        return self.open is not None and (self.percent >= percent or self.free <= min_free)


def _near(u: FdUse, percent: float, min_free: int) -> float:
    """The fd table size from which ``u`` can be exhausted: the fewer of the share and
    the limit less ``min_free``."""
    return min(percent / 100.0 * u.soft, u.soft - min_free)


def fd_candidates(uses: list[FdUse], percent: float, min_free: int = 0) -> list[FdUse]:
    """Processes that *can* be at ``percent`` of their limit (or within ``min_free`` of
    it): fd table size (an upper bound of open fds) at least that much; fullest first."""
    cands = [u for u in uses if u.soft > 0 and u.fdsize >= _near(u, percent, min_free)]
    cands.sort(key=lambda u: (-u.fdsize / u.soft, u.pid))
    return cands


@dataclass
class FdScan:
    uses: list[FdUse]  # every process with a finite soft limit
    counted: list[FdUse]  # candidates with their open count
    denied: list[int]  # candidates whose fd directory could not be read
    capped: int = 0  # candidates not counted (over max_fd_scans)
    vanished: int = 0


def read_fd_uses(host: Host, percent: float, max_scans: int, max_pids: int, min_free: int = 0) -> FdScan:
    """Read status and limits of every process, count fds of the candidates."""
    pids = sorted(int(n) for n in host.listdir("/proc") if n.isdigit())[:max_pids]
    uses: list[FdUse] = []
    vanished = 0
    statuses: dict[int, StatusInfo] = {}
    for pid, text in zip(pids, read_each(host, [f"/proc/{pid}/status" for pid in pids])):  # batched: ddx.host.batch
        st = parsed(parse_status, text)
        if st is None:
            vanished += 1
        elif not st.kernel_thread and st.fdsize > 0:
            statuses[pid] = st
    for pid, text in zip(statuses, read_each(host, [f"/proc/{pid}/limits" for pid in statuses])):
        limits = parsed(parse_limits, text)
        if limits is None:
            vanished += 1
            continue
        lim = limits.get("Max open files")
        if lim is None or lim.soft is None or lim.soft <= 0:
            continue
        st = statuses[pid]
        uses.append(FdUse(pid, st.name, st.uid, st.fdsize, lim.soft))
    cands = fd_candidates(uses, percent, min_free)
    counted: list[FdUse] = []
    denied: list[int] = []
    for u in cands[:max_scans]:
        try:
            n = len(host.listdir(f"/proc/{u.pid}/fd"))
        except PermissionError:
            denied.append(u.pid)
            continue
        except (OSError, LookupError, TimeoutError):
            vanished += 1
            continue
        counted.append(FdUse(u.pid, u.name, u.uid, u.fdsize, u.soft, n))
    return FdScan(uses, counted, denied, max(0, len(cands) - max_scans), vanished)


def _cmd(host: Host, pid: int) -> str:
    try:
        text = host.read_text(f"/proc/{pid}/cmdline", max_bytes=4096)
    except (OSError, LookupError, TimeoutError):
        return ""
    words = " ".join(" ".join(redact_cmdline(argv_words(parse_cmdline(text)))).split())
    return words if len(words) <= 90 else words[:89] + "…"


@probe(
    "fds",
    findings=("fd.exhausted",),
    timeout=3.0,
    options={
        # Open fds at this share of RLIMIT_NOFILE (soft) count as exhausted: at 95% a server that
        # accepts a burst of connections gets EMFILE within the burst.
        "percent": 95.0,
        # A process with at most this many descriptors left under its soft limit is exhausted
        # whatever the share: with a small limit (ulimit -n 16), one accepted connection and one
        # file take the rest.
        "min_free": 2,
        # Allocated file handles at this share of fs.file-max: the whole system is out (ENFILE).
        "file_max_percent": 95.0,
        # Processes whose fd directory is listed at most (the fullest tables first): listing one
        # with 100,000 sockets takes tens of ms.
        "max_fd_scans": 200,
        # Processes looked at (two small reads each, ~0.15 ms): 10,000 fit the probe's timeout.
        "max_pids": 10000,
    },
)
def fds(ctx: ProbeContext) -> list[Finding]:
    """Open file descriptors: any process at its RLIMIT_NOFILE, and the system
    file table (file-nr) against fs.file-max."""
    host = ctx.host
    pct = float(ctx.opt("percent"))
    min_free = int(ctx.opt("min_free"))
    fpct = float(ctx.opt("file_max_percent"))
    allocated, file_max = parse_file_nr(host.read_text("/proc/sys/fs/file-nr"))
    scan = read_fd_uses(host, pct, int(ctx.opt("max_fd_scans")), int(ctx.opt("max_pids")), min_free)
    full = sorted((u for u in scan.counted if u.exhausted(pct, min_free)), key=lambda u: (-u.percent, u.pid))
    system_full = file_max > 0 and allocated >= fpct / 100.0 * file_max
    if not full and not system_full and scan.denied:
        raise PermissionError(
            f"cannot count open fds of {len(scan.denied)} process(es) whose fd table is near their limit "
            f"(pids {', '.join(map(str, scan.denied[:6]))}): /proc/PID/fd needs root"
        )
    rows = [
        f"pid {u.pid} {_cmd(host, u.pid) or u.name}: {u.open} open fds of soft limit {u.soft} ({u.percent:.0f}%"
        f"{f', {max(u.free, 0)} left' if u.percent < pct else ''})"
        for u in full[:MAX_SAMPLES]
    ]
    sys_pct = 100.0 * allocated / file_max if file_max > 0 else 0.0
    sys_row = f"system: {allocated} file handles allocated of fs.file-max {file_max} ({sys_pct:.1f}%)"
    notes = [f"{len(scan.uses)} processes checked by fd table size, {len(scan.counted)} counted"]
    if scan.capped:
        notes.append(f"{scan.capped} candidates not counted (over max_fd_scans)")
    if scan.denied:
        notes.append(f"{len(scan.denied)} unreadable without root (pids {', '.join(map(str, scan.denied[:6]))})")
    if scan.vanished:
        notes.append(f"{scan.vanished} exited during the scan")
    note = "; ".join(notes)
    if full:
        top = full[0]
        summary = (
            f"{len(full)} process(es) at or above {pct:g}% of their open-file limit or with at most {min_free} "
            f"descriptor(s) left; pid {top.pid} has {top.open} of {top.soft}. ({note})"
        )
        value, threshold = round(top.percent, 1), pct
    elif system_full:
        summary = f"The system file table is at {sys_pct:.1f}% of fs.file-max. ({note})"
        value, threshold = round(sys_pct, 1), fpct
    else:
        near = max(scan.counted, key=lambda u: u.percent, default=None)
        summary = f"No process near its open-file limit (highest {near.percent:.0f}%, pid {near.pid})" if near else (
            "No process near its open-file limit"
        )
        summary += f"; system file table at {sys_pct:.1f}% of fs.file-max. ({note})"
        value, threshold = (round(near.percent, 1) if near else 0), pct
    ev = Evidence(
        "/proc/PID/status FDSize, /proc/PID/limits, /proc/PID/fd, /proc/sys/fs/file-nr",
        summary,
        value=value,
        threshold=threshold,
        unit="%",
        samples=tuple([*rows, sys_row]),
        count=len(full) + (1 if system_full else 0),
    )
    return [ctx.finding("fd.exhausted", bool(full) or system_full, ev)]
