"""Who holds the memory when it runs short: a newcomer that took it at once, or old processes.

Memory exhaustion and a memory leak look alike in one look (little available,
OOM kills); what sets them apart is how the memory came to be held. A leak
grows slowly in a process that has run for hours; a workload too big for the
memory (a batch job, an import, a query loading a data set) takes it within
minutes of its start. So where memory is short, the probe looks at the
processes holding it:

- the *scope* is the host when its MemAvailable is below
  ``available_low_percent`` of RAM, and each memory cgroup (a container, a
  service with MemoryMax=) that holds one of the ``largest`` processes and is
  near its limit now (less than ``cgroup_near_percent`` of it left, or a v1
  cgroup in OOM);
- ``memory.young_process_holds_most`` is present when, in a scope, the largest
  process started less than ``young_s`` ago, after most of the scope's processes
  (younger than half their median age), and holds what makes the memory short:
  without it the scope would have ``cgroup_near_percent`` of its memory (RAM or
  the limit) available, and it holds at least ``min_share_percent`` of it: a
  newcomer that took the memory at once (in a scope of one or two processes, a
  container's job, its age alone decides);
- it is absent when memory is short and the largest holders there have all
  run ``old_s`` or longer: the memory took its time to be held;
- otherwise (memory not short, or holders of middle age) it is left unknown.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from ddx.host import Host
from ddx.host.batch import parsed, read_each
from ddx.inventory.processes import read_proc_table
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.proctable import Proc, ProcTable
from ddx.probes.system.memgrowth import rss_bytes
from ddx.probes.system.memory import (
    CGROUP_V1_FILES,
    CGROUP_V2_FILES,
    CgroupMemory,
    available_bytes,
    cgroup_memory,
    memory_roots,
    parse_meminfo,
    parse_memory_limit,
)
from ddx.units import duration, size

__all__ = ["FINDING", "Scope", "memholders", "memory_cgroup_path", "newcomer", "old_holders"]

FINDING = "memory.young_process_holds_most"


@dataclass(frozen=True)
class Scope:
    """Where memory is short: the host, or a cgroup near its limit, with the processes in it."""

    name: str
    total: int  # bytes: RAM, or the cgroup's limit
    available: int  # bytes: MemAvailable, or the limit less the working set
    pids: frozenset[int]


def memory_cgroup_path(text: str, v2: bool) -> str | None:
    """The memory cgroup of a process from its ``/proc/PID/cgroup``: the v2 line
    (``0::/path``) or the v1 line whose controllers include memory."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if v2 and parts[0] == "0" and parts[1] == "":
            return parts[2].strip() or "/"
        if not v2 and "memory" in parts[1].split(","):
            return parts[2].strip() or "/"
    return None


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> [``/a/b/c``, ``/a/b``, ``/a``] (the root itself is no limit)."""
    out = []
    p = path.rstrip("/")
    while p:
        out.append(p)
        p = p.rsplit("/", 1)[0]
    return out


def newcomer(table: ProcTable, rss: dict[int, int], scope: Scope, young_s: float, near: float, min_share: float
             ) -> tuple[Proc, int] | None:
    """The largest process of ``scope`` when it makes its memory short (without it, ``near`` of
    the memory would be available; and at least ``min_share`` of it) and started less than
    ``young_s`` ago, after most of the scope's processes (younger than half their median age; in a scope
    of one or two processes, a container's job, its age alone decides). Pure."""
    procs = [p for pid in scope.pids if (p := table.get(pid)) is not None and pid in rss]
    if not procs or scope.total <= 0:
        return None
    median_age = statistics.median(table.age(p) for p in procs)
    enough = max(min_share * scope.total, near * scope.total - scope.available)
    p = max(procs, key=lambda p: (rss[p.pid], -p.pid))  # the largest holder, and only it
    age = table.age(p)
    if rss[p.pid] >= enough and age < young_s and (len(procs) < 3 or age < median_age / 2):
        return p, rss[p.pid]
    return None


def old_holders(table: ProcTable, rss: dict[int, int], scope: Scope, old_s: float, top: int = 3) -> list[Proc] | None:
    """The ``top`` largest processes of ``scope`` when every one of them has run ``old_s`` or
    longer; None otherwise. Pure."""
    procs = sorted((p for pid in scope.pids if (p := table.get(pid)) is not None and pid in rss),
                   key=lambda p: -rss[p.pid])[:top]
    if not procs or any(table.age(p) < old_s for p in procs):
        return None
    return procs


def _short_cgroups(host: Host, pids: list[int], ram: int, near: float) -> list[tuple[Scope, CgroupMemory]]:
    """The memory cgroups of ``pids`` (and their ancestors) with a limit below ``ram`` that are
    near it, each as a scope holding those of ``pids`` inside it."""
    try:
        roots = memory_roots(host.read_text("/proc/mounts"))
    except (OSError, ValueError, TimeoutError):
        return []
    if not roots:
        return []
    # A hybrid host keeps memory limits in its v1 memory hierarchy; its unified one has none.
    root, v2 = next(((r, v) for r, v in roots if not v), roots[0])
    texts = read_each(host, [f"/proc/{pid}/cgroup" for pid in pids], max_bytes=16384)
    member: dict[int, str] = {}
    for pid, text in zip(pids, texts):
        path = parsed(lambda t: memory_cgroup_path(t, v2), text)
        if path:
            member[pid] = path
    candidates = sorted({a for path in member.values() for a in _ancestors(path)})
    names = CGROUP_V2_FILES if v2 else CGROUP_V1_FILES
    base = root.rstrip("/")
    limits = read_each(host, [f"{base}{c}/{names[0]}" for c in candidates], max_bytes=256)
    limited = [c for c, text in zip(candidates, limits)
               if (lim := parsed(parse_memory_limit, text)) is not None and (ram <= 0 or lim < ram)]
    out: list[tuple[Scope, CgroupMemory]] = []
    for c in limited:
        reads = read_each(host, [f"{base}{c}/{n}" for n in names], max_bytes=65536)
        if any(isinstance(r, BaseException) for r in reads):
            continue  # gone between reads
        try:
            cg = cgroup_memory(c, v2, dict(zip(names, (str(r) for r in reads))), f"{base}{c}/memory.*")
        except (ValueError, IndexError):
            continue
        if cg is None or not (cg.available_percent < near or cg.under_oom):
            continue
        inside = frozenset(pid for pid, path in member.items() if path == c or path.startswith(c + "/"))
        out.append((Scope(f"cgroup {c}", cg.limit, max(0, cg.limit - cg.working_set), inside), cg))
    return out


@probe(
    "memholders",
    findings=(FINDING,),
    timeout=3.0,
    options={
        # The host is short of memory below this share of RAM available (as the memory probe).
        "available_low_percent": 5.0,
        # A cgroup is near its limit with less than this share of it left (or a v1 cgroup in OOM).
        "cgroup_near_percent": 10.0,
        # A newcomer holds what makes the memory short (without it, cgroup_near_percent of the
        # scope's memory would be available), and at least this share of it...
        "min_share_percent": 5.0,
        # ...and started less than this many seconds ago (and after most of its scope).
        "young_s": 600.0,
        # The holders are old when the largest have all run at least this long: memory that took its time.
        "old_s": 3600.0,
        # How many of the largest processes are placed in their cgroups.
        "largest": 20,
        # Processes read at most.
        "max_pids": 10000,
    },
)
def memholders(ctx: ProbeContext) -> list[Finding]:
    """Where memory is short (the host, or a cgroup near its limit): whether a process that
    started minutes ago holds much of it (a workload too big), or old processes hold it."""
    host = ctx.host
    mem = parse_meminfo(host.read_text("/proc/meminfo"))
    ram, avail = mem.get("MemTotal", 0), available_bytes(mem)
    pids = sorted(int(n) for n in host.listdir("/proc") if n.isdigit())[: int(ctx.opt("max_pids"))]
    rss = rss_bytes(host, pids)  # kernel threads have none
    if not rss:
        raise PermissionError("no process's memory could be read")
    scopes: list[tuple[Scope, str]] = []
    if ram and avail is not None and avail < float(ctx.opt("available_low_percent")) / 100.0 * ram:
        scopes.append((Scope("the host", ram, avail, frozenset(rss)), f"{size(avail)} of {size(ram)} RAM available"))
    largest = sorted(rss, key=lambda pid: -rss[pid])[: int(ctx.opt("largest"))]
    for scope, cg in _short_cgroups(host, largest, ram, float(ctx.opt("cgroup_near_percent"))):
        kills = f", {cg.oom_kills} OOM kill(s) counted in it" if cg.oom_kills else ""
        scopes.append((scope, f"{cg.row()}{kills}"))
    if not scopes:
        ctx.note("memory is not short on the host nor in a cgroup near its limit: who holds it tells nothing")
        return []
    t = read_proc_table(host, int(ctx.opt("max_pids"))).table  # ages, read only where memory is short
    young_s, old_s = float(ctx.opt("young_s")), float(ctx.opt("old_s"))
    near, min_share = float(ctx.opt("cgroup_near_percent")) / 100.0, float(ctx.opt("min_share_percent")) / 100.0
    for scope, state in scopes:
        hit = newcomer(t, rss, scope, young_s, near, min_share)
        if hit:
            p, held = hit
            return [ctx.finding(FINDING, True, Evidence(
                source="/proc/PID/stat start time, /proc/PID/status VmRSS",
                summary=f"{scope.name} is short ({state}); pid {p.pid} {p.title(80)} holds {size(held)} "
                        f"({100.0 * held / scope.total:.0f}% of {size(scope.total)}: without it "
                        f"{100.0 * (scope.available + held) / scope.total:.0f}% would be available) and started "
                        f"{duration(t.age(p))} ago, after most of the {len(scope.pids)} processes there",
                value=round(100.0 * held / scope.total, 1), unit="% of memory",
            ))]
    for scope, state in scopes:
        old = old_holders(t, rss, scope, old_s)
        if old:
            return [ctx.finding(FINDING, False, Evidence(
                source="/proc/PID/stat start time, /proc/PID/status VmRSS",
                summary=f"{scope.name} is short ({state}); its largest holders have all run "
                        f"{duration(old_s)} or longer: " + "; ".join(
                            f"pid {p.pid} {p.title(50)} {size(rss[p.pid])} for {duration(t.age(p))}" for p in old),
                samples=tuple(t.row(p, size(rss[p.pid])) for p in old),
            ))]
    ctx.note(f"memory is short in {', '.join(s.name for s, _ in scopes)}; its largest holders are neither "
             "newcomers nor all old: who holds it tells nothing")
    return []
