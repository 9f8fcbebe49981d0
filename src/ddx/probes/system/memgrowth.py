"""Memory growth per process: a leak as one look at a host can show it.

A leak is growth over time, and one look lasts seconds, so the probe reads the
two signs a single look can see:

- **Growing now**: the resident memory (``VmRSS``) of the largest processes,
  read ``SAMPLES`` times over the window. A process that has run for at least
  ``min_age_s`` (an hour) and whose RSS rose at every read, by at least
  ``growth_mb_per_s`` MB/s and ``growth_min_mb`` MB in all, is leaking: a leak
  lives in a long-running process. A young process that balloons is a workload
  taking the memory (memory exhaustion), not a leak, and is not reported. The
  evidence says how long the available memory lasts at that rate.
- **Grown with age**: workers of one pool (three or more processes of one
  program under one parent) whose memory rises with their age: the rank
  correlation of age and RSS at least ``age_rho``, the oldest worker at least
  ``age_ratio`` times the youngest and ``age_min_mb`` MB. Healthy workers of a
  pool are about the same size whatever their age; leaking ones grow with
  every request served, which is why pools have a max-requests setting.
  This is also the "memory freed by a restart came back" of a leak, seen in
  the pool itself: the young workers are the restarted ones.

Neither sign can rule a leak out (a slow leak grows by kilobytes in a
window; a single process has no peers), so the finding is reported when seen
and otherwise left unknown, never absent.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ddx.host import Host
from ddx.host.batch import parsed, read_each
from ddx.inventory.processes import read_proc_table
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.proctable import Proc, ProcTable, parse_status
from ddx.units import duration, size

__all__ = ["FINDING", "grown_with_age", "growing_now", "memgrowth", "rank_correlation"]

FINDING = "memory.process_rss_growing"
SAMPLES = 4


def rss_bytes(host: Host, pids: list[int]) -> dict[int, int]:
    """``VmRSS`` in bytes of each process of ``pids`` that has one (gone, unreadable
    and kernel threads are left out), read in one batched call (``ddx.host.batch``)."""
    out: dict[int, int] = {}
    for pid, text in zip(pids, read_each(host, [f"/proc/{pid}/status" for pid in pids], max_bytes=8192)):
        r = parsed(lambda t: parse_status(t).rss, text)
        if r:
            out[pid] = r
    return out


def _available(host: Host) -> int | None:
    try:
        for line in host.read_text("/proc/meminfo").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def rank_correlation(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (ties get their mean rank); 0 for fewer than 3 pairs or no spread."""
    n = len(xs)
    if n < 3 or n != len(ys):
        return 0.0

    def ranks(v: list[float]) -> list[float]:
        order = sorted(range(n), key=lambda i: v[i])
        r = [0.0] * n
        i = 0
        while i < n:
            j = i
            while j + 1 < n and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2.0
            i = j + 1
        return r

    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return cov / (vx * vy) ** 0.5 if vx and vy else 0.0


@dataclass(frozen=True)
class Growth:
    pid: int
    title: str
    first: int  # bytes
    last: int
    seconds: float

    @property
    def rate(self) -> float:
        return (self.last - self.first) / self.seconds if self.seconds > 0 else 0.0


def growing_now(series: dict[int, list[tuple[float, int]]], titles: dict[int, str], min_rate: float,
                min_growth: int) -> list[Growth]:
    """Processes whose RSS rose at every read, by ``min_rate`` bytes/s and ``min_growth`` bytes in all. Pure."""
    out = []
    for pid, s in series.items():
        if len(s) < 3:
            continue
        rising = all(b[1] > a[1] for a, b in zip(s, s[1:]))
        g = Growth(pid, titles.get(pid, str(pid)), s[0][1], s[-1][1], s[-1][0] - s[0][0])
        if rising and g.last - g.first >= min_growth and g.rate >= min_rate:
            out.append(g)
    return sorted(out, key=lambda g: -g.rate)


@dataclass(frozen=True)
class AgedPool:
    title: str
    rho: float
    members: list[tuple[float, int, int]]  # (age s, rss bytes, pid), youngest first


def grown_with_age(pools: dict[str, list[tuple[float, int, int]]], rho_min: float, ratio_min: float,
                   min_bytes: int) -> list[AgedPool]:
    """Pools whose members' RSS rises with their age. Pure: ``pools`` maps a
    title to its members' (age, rss, pid)."""
    out = []
    for title, members in pools.items():
        if len(members) < 3:
            continue
        members = sorted(members)
        ages = [float(a) for a, _, _ in members]
        rss = [float(r) for _, r, _ in members]
        if ages[-1] < 2 * max(ages[0], 1.0):
            continue  # all of an age: nothing to compare
        rho = rank_correlation(ages, rss)
        oldest, youngest = members[-1][1], members[0][1]
        if rho >= rho_min and oldest >= ratio_min * max(youngest, 1) and oldest >= min_bytes:
            out.append(AgedPool(title, rho, members))
    return out


def _pools(t: ProcTable, rss: dict[int, int]) -> dict[str, list[tuple[float, int, int]]]:
    groups: dict[tuple[int, str], list[Proc]] = defaultdict(list)
    for p in t.user_procs():
        if p.pid in rss and p.ppid > 1:
            groups[(p.ppid, p.key)].append(p)
    out: dict[str, list[tuple[float, int, int]]] = {}
    for (ppid, _), members in groups.items():
        if len(members) >= 3:
            out[f"{members[0].title(60)} (ppid {ppid})"] = [(t.age(p), rss[p.pid], p.pid) for p in members]
    return out


@probe(
    "memgrowth",
    findings=(FINDING,),
    timeout=4.0,
    options={
        # Growing now: RSS rising at every read by at least this many MB per second...
        "growth_mb_per_s": 1.0,
        # ...and this many MB over the window in all.
        "growth_min_mb": 4.0,
        # How many of the largest processes are followed over the window.
        "watch_largest": 20,
        # Growing now counts for processes that have run at least this long (seconds): a leak
        # lives in a long-running process; a young one that balloons is a workload filling memory.
        "min_age_s": 3600.0,
        # Grown with age: rank correlation of age and RSS across a pool's workers...
        "age_rho": 0.8,
        # ...the oldest this many times the youngest...
        "age_ratio": 1.5,
        # ...and at least this many MB.
        "age_min_mb": 64.0,
        # Processes read at most (two small reads each).
        "max_pids": 10000,
    },
)
def memgrowth(ctx: ProbeContext) -> list[Finding]:
    """Processes whose memory grows over the window, and worker pools whose
    memory grows with their age (a leak)."""
    host = ctx.host
    t = read_proc_table(host, int(ctx.opt("max_pids"))).table
    if not t.procs:
        raise PermissionError("no process in /proc could be read")
    rss = {p.pid: p.rss for p in t.user_procs() if p.rss}  # the table read status already
    if not rss:
        raise PermissionError("no process's memory could be read")
    titles = {p.pid: p.title(80) for p in t.user_procs()}
    evidence: list[Evidence] = []

    mb = 1 << 20
    old_enough = {p.pid for p in t.user_procs() if t.age(p) >= float(ctx.opt("min_age_s"))}
    largest = sorted((pid for pid in rss if pid in old_enough), key=lambda pid: -rss[pid])[: int(ctx.opt("watch_largest"))]
    if ctx.window > 0:
        start = host.time()
        series: dict[int, list[tuple[float, int]]] = {pid: [(start, rss[pid])] for pid in largest}
        for _ in range(SAMPLES - 1):
            host.sleep(ctx.window / (SAMPLES - 1))
            now = host.time()
            for pid, r in rss_bytes(host, largest).items():
                series[pid].append((now, r))
        avail = _available(host)
        for g in growing_now(series, titles, float(ctx.opt("growth_mb_per_s")) * mb,
                             int(float(ctx.opt("growth_min_mb")) * mb))[:3]:
            fills = f"; at this rate the {size(avail)} still available last {duration(avail / g.rate)}" if avail else ""
            evidence.append(Evidence(
                source=f"/proc/{g.pid}/status VmRSS",
                summary=f"pid {g.pid} {g.title}: {size(g.first)} -> {size(g.last)} in {g.seconds:.1f}s, rising at "
                        f"every read ({g.rate / mb:.1f} MB/s){fills}",
                value=round(g.rate / mb, 2), threshold=float(ctx.opt("growth_mb_per_s")), unit="MB/s",
            ))

    for pool in grown_with_age(_pools(t, rss), float(ctx.opt("age_rho")), float(ctx.opt("age_ratio")),
                               int(float(ctx.opt("age_min_mb")) * mb))[:3]:
        (ya, yr, _), (oa, orss, opid) = pool.members[0], pool.members[-1]
        evidence.append(Evidence(
            source="/proc/PID/status VmRSS, /proc/PID/stat start time",
            summary=f"{pool.title}: {len(pool.members)} workers, the older the larger (rank correlation "
                    f"{pool.rho:.2f}): {size(orss)} at {duration(oa)} (pid {opid}) against {size(yr)} at "
                    f"{duration(ya)}",
            value=round(pool.rho, 2), threshold=float(ctx.opt("age_rho")), unit="rank correlation",
        ))
    if not evidence:
        ctx.note(f"no process grew over the window, no worker pool grows with age ({len(rss)} processes read); "
                 "a slow leak needs a longer look (memory graphs over hours)")
        return []
    return [ctx.finding(FINDING, True, *evidence)]
