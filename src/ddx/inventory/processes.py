"""The process table read through a Host: every process's stat, status and command line.

The inventory builds its services from it, and the process probes read it for
their own samples. Reads of one process that vanish mid-scan are skipped; a
command line that cannot be read within a short timeout (a process stuck in the
kernel holding its memory lock) is left empty and counted; after two such, the
command lines of other processes in state D are not waited for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ddx.host import Host, call_timeout
from ddx.host.batch import parsed, read_each
from ddx.probes.parsers.proctable import (
    Proc,
    ProcTable,
    StatInfo,
    StatusInfo,
    clk_tck,
    parse_cmdline,
    parse_cpu_times,
    parse_stat,
    parse_status,
    parse_uptime,
)

__all__ = ["CMDLINE_TIMEOUT", "ProcScan", "pid_list", "proc_pids", "read_proc_table", "read_stats"]

_GONE = (FileNotFoundError, ProcessLookupError, LookupError)
CMDLINE_TIMEOUT = 0.5  # a cmdline read blocks while the process holds its mm lock (stuck in D state)


@dataclass
class ProcScan:
    """The table and what could not be read while building it."""

    table: ProcTable
    vanished: int = 0
    denied: int = 0
    hung: list[int] = field(default_factory=list)
    skipped: int = 0  # pids beyond max_pids

    def notes(self) -> str:
        parts = []
        if self.vanished:
            parts.append(f"{self.vanished} exited during the scan")
        if self.denied:
            parts.append(f"{self.denied} unreadable (permission)")
        if self.hung:
            parts.append(f"{len(self.hung)} with a command line that hung (pids {pid_list(self.hung)})")
        if self.skipped:
            parts.append(f"{self.skipped} not scanned (over max_pids)")
        return "; ".join(parts)


def pid_list(pids: list[int], n: int = 6) -> str:
    """``1, 2, 3 and 4 more``: pids as a person reads them."""
    head = ", ".join(str(p) for p in pids[:n])
    return head + (f" and {len(pids) - n} more" if len(pids) > n else "")


def proc_pids(host: Host) -> list[int]:
    return sorted(int(n) for n in host.listdir("/proc") if n.isdigit())


def read_proc_table(host: Host, max_pids: int = 10000, *, boot_time: bool = False) -> ProcScan:
    """Read every process's stat, status and cmdline into a ``ProcTable``; with
    ``boot_time`` also /proc/stat's boot time, for start times as epoch seconds."""
    uptime = parse_uptime(host.read_text("/proc/uptime"))
    pids = proc_pids(host)
    scan = ProcScan(ProcTable({}, uptime, clk_tck()))
    if len(pids) > max_pids:
        scan.skipped = len(pids) - max_pids
        pids = pids[:max_pids]
    procs: dict[int, Proc] = {}
    # stat of every process, then status and cmdline of the ones that are not kernel
    # threads, each kind in one batched call (ddx.host.batch: one round trip over SSH)
    stats: dict[int, StatInfo] = {}
    for pid, text in zip(pids, read_each(host, [f"/proc/{pid}/stat" for pid in pids])):
        try:
            if isinstance(text, BaseException):
                raise text
            st = parse_stat(text)
        except _GONE:
            scan.vanished += 1
            continue
        except PermissionError:
            scan.denied += 1
            continue
        except TimeoutError:
            scan.hung.append(pid)
            continue
        except (OSError, ValueError):
            scan.vanished += 1
            continue
        if st.kernel_thread:
            procs[pid] = Proc.from_parts(st, None, ())
        else:
            stats[pid] = st
    users = list(stats)
    statuses: dict[int, StatusInfo | None] = {}
    for pid, text in zip(users, read_each(host, [f"/proc/{pid}/status" for pid in users])):
        if isinstance(text, _GONE):
            scan.vanished += 1
            continue
        statuses[pid] = parsed(parse_status, text)
    # A process stuck in the kernel (state D) may hang a read of its cmdline: those are
    # read one by one, and after two hung reads not at all; the rest in one batch.
    running = [pid for pid in statuses if stats[pid].state not in ("D", "Z")]
    with call_timeout(CMDLINE_TIMEOUT):
        argvs = dict(zip(running, read_each(host, [f"/proc/{pid}/cmdline" for pid in running], max_bytes=8192)))
    for pid in statuses:
        st = stats[pid]
        got: str | BaseException | None = argvs.get(pid)
        if st.state == "D":
            if len(scan.hung) >= 2:
                scan.hung.append(pid)  # more of the same stuck host: do not wait on each one
            else:
                try:
                    with call_timeout(CMDLINE_TIMEOUT):
                        got = host.read_text(f"/proc/{pid}/cmdline", max_bytes=8192)
                except (OSError, LookupError, TimeoutError) as exc:
                    got = exc
        argv: tuple[str, ...] = ()
        if isinstance(got, TimeoutError):
            scan.hung.append(pid)
        elif isinstance(got, _GONE):
            scan.vanished += 1
            continue
        elif isinstance(got, str):
            argv = parse_cmdline(got)
        procs[pid] = Proc.from_parts(st, statuses[pid], argv)
    btime = None
    if boot_time:
        try:
            btime = parse_cpu_times(host.read_text("/proc/stat")).btime
        except (OSError, LookupError, ValueError, TimeoutError):
            pass
    scan.table = ProcTable(procs, uptime, clk_tck(), btime)
    return scan


def read_stats(host: Host, pids: list[int] | None = None) -> dict[int, StatInfo]:
    """``/proc/PID/stat`` of every process now (or of ``pids``); vanished ones are left out."""
    out: dict[int, StatInfo] = {}
    pids = proc_pids(host) if pids is None else pids
    for pid, text in zip(pids, read_each(host, [f"/proc/{pid}/stat" for pid in pids])):
        st = parsed(parse_stat, text)
        if st is not None:
            out[pid] = st
    return out


