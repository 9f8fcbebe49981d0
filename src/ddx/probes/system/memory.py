"""memory: available memory, swap use, swapping rate, OOM kills seen live.

- ``memory.available_low``: MemAvailable (the kernel's estimate of memory new
  work can get without swapping) against MemTotal.
- ``memory.swap_used_high``: share of swap in use. No swap at all: absent.
- ``memory.swapping_active``: pswpin/pswpout from /proc/vmstat read twice over
  the window; PSI memory "full" as supporting evidence (time all non-idle
  tasks were stalled on memory).
- ``memory.oom_kill``: the vmstat ``oom_kill`` counter counts kills since boot,
  so a non-zero value is not "recent". The probe reports the finding present
  only when the counter rises during the window, and otherwise returns nothing
  for it: the kernel probe judges OOM kills from the kernel log, with times.

Memory limits of cgroups (containers, systemd units with MemoryMax=, the
memory.limit_in_bytes of a v1 hierarchy): a process in a cgroup runs out of
memory at the cgroup's limit, however much the host has free. Every cgroup with
a limit below the host's RAM is read (v2 ``memory.current``/``memory.max``/
``memory.events``; v1 ``memory.usage_in_bytes``/``memory.limit_in_bytes``/
``memory.failcnt``/``memory.oom_control``), at most ``max_cgroups`` of them:

- its *working set* is the usage less the inactive file cache the kernel
  reclaims first (what cAdvisor and the kubelet call working set: page cache
  fills any cgroup up to its limit, so raw usage at the limit says nothing);
  less than ``cgroup_available_low_percent`` of the limit left at either read
  (before and after the window), a v1 cgroup ``under_oom``, or an OOM kill in
  it during the window (it reached its limit then: the kill freed what the
  second read sees) makes ``memory.available_low`` present, with that cgroup
  named;
- its ``oom_kill`` counter rising during the window makes ``memory.oom_kill``
  present (a counter that did not move is history, as for vmstat).

No swap configured: the swap findings cannot occur on this host whatever the
cause, so they are left unknown (a note says why) rather than absent, which
would count against every cause that often swaps.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddx.host import Host
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.mounts import cgroup_roots
from ddx.probes.parsers.psi import read_psi

__all__ = [
    "CGROUP_V1_FILES",
    "CGROUP_V2_FILES",
    "CgroupMemory",
    "cgroup_memory",
    "memory",
    "memory_roots",
    "parse_memory_limit",
    "parse_meminfo",
    "parse_vmstat",
    "read_cgroup_memory",
    "short_cgroups",
]


def parse_meminfo(text: str) -> dict[str, int]:
    """Parse /proc/meminfo into bytes (``MemTotal:  16316412 kB`` ->
    ``{"MemTotal": 16707805888}``; unit-less counters such as HugePages_Total
    stay counts)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        f = rest.split()
        if not f:
            continue
        try:
            n = int(f[0])
        except ValueError:
            continue
        if len(f) > 1 and f[1].lower() == "kb":
            n *= 1024
        out[key.strip()] = n
    return out


def parse_vmstat(text: str) -> dict[str, int]:
    """Parse /proc/vmstat (``name value`` per line)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 2:
            try:
                out[f[0]] = int(f[1])
            except ValueError:
                continue
    return out


# A v1 "no limit" is PAGE_COUNTER_MAX pages (9223372036854771712 with 4 KiB pages); anything
# this large is no limit on any host.
_NO_LIMIT = 1 << 60


def parse_memory_limit(text: str) -> int | None:
    """``memory.max`` (v2: bytes or ``max``) or ``memory.limit_in_bytes`` (v1: bytes,
    huge when unlimited); None when there is no limit."""
    t = text.strip()
    if t == "max":
        return None
    try:
        n = int(t)
    except ValueError:
        raise ValueError(f"cgroup memory limit: unexpected content {t[:40]!r}") from None
    return None if n >= _NO_LIMIT else n


@dataclass(frozen=True)
class CgroupMemory:
    """One cgroup's memory against its limit, from one read of its files."""

    path: str  # under its hierarchy's root, e.g. "/system.slice/app.service"
    usage: int
    limit: int
    inactive_file: int
    oom_kills: int | None  # counted since the cgroup was created; None where the kernel does not say
    under_oom: bool = False  # v1: tasks wait in the cgroup's OOM handler now
    source: str = ""

    @property
    def working_set(self) -> int:
        return max(0, self.usage - self.inactive_file)

    @property
    def available_percent(self) -> float:
        return 100.0 * max(0, self.limit - self.working_set) / self.limit if self.limit > 0 else 0.0

    def row(self) -> str:
        oom = " (in OOM now)" if self.under_oom else ""
        return (f"cgroup {self.path}: {_gb(self.working_set)} working set of a {_gb(self.limit)} limit, "
                f"{self.available_percent:.1f}% left{oom}")


def cgroup_memory(path: str, v2: bool, files: dict[str, str], source: str = "") -> CgroupMemory | None:
    """A cgroup's memory from the text of its files (``memory.max``,
    ``memory.current``, ``memory.stat``, ``memory.events`` for v2;
    ``memory.limit_in_bytes``, ``memory.usage_in_bytes``, ``memory.stat``,
    ``memory.oom_control`` for v1). None when it has no limit."""
    limit = parse_memory_limit(files["memory.max" if v2 else "memory.limit_in_bytes"])
    if limit is None:
        return None
    usage = int(files["memory.current" if v2 else "memory.usage_in_bytes"].split()[0])
    stat = parse_vmstat(files.get("memory.stat", ""))
    inactive = stat.get("inactive_file", 0) if v2 else stat.get("total_inactive_file", stat.get("inactive_file", 0))
    events = parse_vmstat(files.get("memory.events" if v2 else "memory.oom_control", ""))
    return CgroupMemory(path, usage, limit, inactive, events.get("oom_kill"), events.get("under_oom", 0) > 0, source)


def memory_roots(mounts_text: str) -> list[tuple[str, bool]]:
    """Mount points that hold memory limits: (path, is_v2)."""
    return cgroup_roots(mounts_text, "memory")


# The files a cgroup's memory is read from (``cgroup_memory``), its limit first.
CGROUP_V2_FILES = ("memory.max", "memory.current", "memory.stat", "memory.events")
CGROUP_V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes", "memory.stat", "memory.oom_control")
_READ_ERRORS = (OSError, LookupError, TimeoutError, ValueError, IndexError)


def _child_cgroups(host: Host, d: str) -> list[str]:
    from ddx.probes.system.procchecks import cgroup_child_names

    try:
        return [f"{d.rstrip('/')}/{n}" for n in cgroup_child_names(host.listdir(d))]
    except _READ_ERRORS:
        return []


def read_cgroup_memory(host: Host, max_cgroups: int, ram: int) -> tuple[list[CgroupMemory], bool]:
    """Every cgroup with a memory limit below ``ram`` (a larger one is no limit in
    practice), at most ``max_cgroups`` directories visited. v2: only where the
    parent's ``cgroup.subtree_control`` enables memory. Returns (cgroups, truncated)."""
    try:
        roots = memory_roots(host.read_text("/proc/mounts"))
    except _READ_ERRORS:
        return [], False
    out: list[CgroupMemory] = []
    visited = 0
    for root, v2 in roots:
        stack = [root]
        while stack:
            d = stack.pop()
            visited += 1
            if visited > max_cgroups:
                return out, True
            if v2:
                try:
                    if "memory" not in host.read_text(f"{d}/cgroup.subtree_control").split():
                        continue
                except _READ_ERRORS:
                    continue
            for child in _child_cgroups(host, d):
                names = CGROUP_V2_FILES if v2 else CGROUP_V1_FILES
                try:
                    limit = parse_memory_limit(host.read_text(f"{child}/{names[0]}"))
                except _READ_ERRORS:
                    continue  # not a cgroup directory, or no memory controller here
                stack.append(child)
                if limit is None or (ram > 0 and limit >= ram):
                    continue
                files: dict[str, str] = {}
                try:
                    for n in names:
                        files[n] = host.read_text(f"{child}/{n}", max_bytes=65536)
                    cg = cgroup_memory(child[len(root.rstrip("/")):] or "/", v2, files, f"{child}/memory.*")
                except _READ_ERRORS:
                    continue  # the cgroup went away between reads
                if cg is not None:
                    out.append(cg)
    return out, False


def available_bytes(mem: dict[str, int]) -> int | None:
    """MemAvailable, or its estimate on kernels before 3.14."""
    if "MemAvailable" in mem:
        return mem["MemAvailable"]
    if "MemFree" in mem:
        return mem["MemFree"] + mem.get("Buffers", 0) + mem.get("Cached", 0)
    return None


def _gb(n: float) -> str:
    return f"{n / (1 << 30):.1f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"


@probe(
    "memory",
    findings=("memory.available_low", "memory.swap_used_high", "memory.swapping_active", "memory.oom_kill"),
    options={
        # findings.yaml: "less than 5% of RAM is available to new work".
        "available_low_percent": 5.0,
        # findings.yaml: "more than half of swap is in use".
        "swap_used_high_percent": 50.0,
        # Pages swapped in+out per second that make swapping "active": 256 pages of
        # 4 KiB = 1 MiB/s, well above the trickle of a kernel paging out idle memory.
        "swap_pages_per_second": 256.0,
        # PSI memory "full" avg10: with any swapping in the window, tasks stalled on
        # memory this share of the time means thrashing.
        "memory_psi_full_percent": 10.0,
        # A cgroup with a memory limit has "little available" when its working set leaves less
        # than this share of the limit: the same 5% as for the host's RAM.
        "cgroup_available_low_percent": 5.0,
        # Cgroup directories visited at most when looking for memory limits (systemd hosts have hundreds).
        "max_cgroups": 2000,
    },
)
def memory(ctx: ProbeContext) -> list[Finding]:
    """RAM available, swap use and rate, OOM kills during the window; the same for
    every cgroup with a memory limit (containers, services with MemoryMax)."""
    host = ctx.host
    mem = parse_meminfo(host.read_text("/proc/meminfo", max_bytes=65536))
    out: list[Finding] = []
    total = mem.get("MemTotal", 0)
    avail = available_bytes(mem)
    max_cgroups = int(ctx.opt("max_cgroups"))
    cgroups, truncated = read_cgroup_memory(host, max_cgroups, total)
    cg_thr = float(ctx.opt("cgroup_available_low_percent"))
    host_low: tuple[bool, Evidence] | None = None
    if total > 0 and avail is not None:
        pct = 100.0 * avail / total
        thr = float(ctx.opt("available_low_percent"))
        host_low = (pct < thr, Evidence(
            "/proc/meminfo",
            f"{_gb(avail)} of {_gb(total)} available ({pct:.1f}%)",
            value=round(pct, 1),
            threshold=thr,
            unit="% available",
        ))

    swap_total = mem.get("SwapTotal")
    if swap_total == 0:
        ctx.note("no swap configured: swap use and swapping cannot occur here, so they say nothing")
    elif swap_total is not None:
        thr = float(ctx.opt("swap_used_high_percent"))
        used = swap_total - mem.get("SwapFree", swap_total)
        pct = 100.0 * used / swap_total
        ev = Evidence(
            "/proc/meminfo",
            f"{_gb(used)} of {_gb(swap_total)} swap in use ({pct:.1f}%)",
            value=round(pct, 1),
            threshold=thr,
            unit="% used",
        )
        out.append(ctx.finding("memory.swap_used_high", pct > thr, ev))

    if ctx.window <= 0:
        if host_low is not None:
            out.insert(0, _available_finding(ctx, host_low, cgroups, {}, cg_thr, truncated))
        return out
    v0 = parse_vmstat(host.read_text("/proc/vmstat", max_bytes=65536))
    t0 = host.time()
    host.sleep(ctx.window)
    v1 = parse_vmstat(host.read_text("/proc/vmstat", max_bytes=65536))
    dt = host.time() - t0
    if dt <= 0:
        dt = ctx.window
    psi = read_psi(host, "memory")
    if swap_total != 0:
        out.extend(_swapping(ctx, v0, v1, dt, psi, swap_total))
    kills: list[Evidence] = []
    if "oom_kill" in v0 and "oom_kill" in v1 and v1["oom_kill"] > v0["oom_kill"]:
        n = v1["oom_kill"] - v0["oom_kill"]
        kills.append(Evidence(
            "/proc/vmstat",
            f"the OOM killer killed {n} process(es) during the {dt:.1f}s window ({v1['oom_kill']} since boot)",
            value=n,
            count=n,
        ))
    later: dict[str, CgroupMemory] = {}
    if cgroups:
        later = {c.path: c for c in read_cgroup_memory(host, max_cgroups, total)[0]}
        rows = []
        for c in cgroups:
            after = later.get(c.path)
            if c.oom_kills is not None and after is not None and (after.oom_kills or 0) > c.oom_kills:
                rows.append(f"cgroup {c.path}: {(after.oom_kills or 0) - c.oom_kills} OOM kill(s) at its "
                            f"{_gb(c.limit)} limit during the window")
        if rows:
            kills.append(Evidence("memory.events / memory.oom_control of cgroups with a memory limit",
                                  f"the OOM killer acted in {len(rows)} cgroup(s) at their memory limit during "
                                  f"the {dt:.1f}s window", value=len(rows), count=len(rows), samples=tuple(rows[:8])))
    if host_low is not None:
        out.insert(0, _available_finding(ctx, host_low, cgroups, later, cg_thr, truncated))
    if kills:
        out.append(ctx.finding("memory.oom_kill", True, *kills))
    return out


def short_cgroups(before: list[CgroupMemory], after: list[CgroupMemory], thr: float) -> list[CgroupMemory]:
    """Cgroups at their memory limit over a window read at both ends: less than ``thr``%
    of the limit left at either read, in OOM (v1 ``under_oom``), or an OOM kill between
    the reads (the kill freed what the second read sees). Tightest first, each as its
    tighter read."""
    later = {c.path: c for c in after}
    out: list[CgroupMemory] = []
    for c in before:
        a = later.get(c.path)
        killed = a is not None and c.oom_kills is not None and (a.oom_kills or 0) > c.oom_kills
        worst = min((x for x in (c, a) if x is not None), key=lambda x: x.available_percent)
        if worst.available_percent < thr or c.under_oom or (a is not None and a.under_oom) or killed:
            out.append(worst)
    return sorted(out, key=lambda c: c.available_percent)


def _available_finding(ctx: ProbeContext, host_low: tuple[bool, Evidence], cgroups: list[CgroupMemory],
                       later: dict[str, CgroupMemory], thr: float, truncated: bool) -> Finding:
    """``memory.available_low`` from the host's RAM and every limited cgroup. A cgroup
    counts as short when it had less than ``thr``% of its limit left at either read, or
    when the OOM killer acted in it between the reads (it reached its limit then)."""
    tight = short_cgroups(cgroups, list(later.values()), thr)
    evs = [host_low[1]]
    if cgroups:
        evs.append(_cgroups_evidence(cgroups, tight, thr, truncated))
    if tight and not host_low[0]:  # what made it present comes first: the host has plenty
        evs.reverse()
    return ctx.finding("memory.available_low", host_low[0] or bool(tight), *evs)


def _cgroups_evidence(cgroups: list[CgroupMemory], tight: list[CgroupMemory], thr: float,
                      truncated: bool) -> Evidence:
    more = " (walk truncated at max_cgroups)" if truncated else ""
    if tight:
        worst = tight[0]
        summary = (f"{len(tight)} of {len(cgroups)} cgroup(s) with a memory limit are at it (less than {thr:g}% "
                   f"left at a read, or an OOM kill in it during the window); tightest: {worst.row()}{more}")
        shown = tight
    else:
        worst = min(cgroups, key=lambda c: c.available_percent)
        summary = f"{len(cgroups)} cgroup(s) with a memory limit, none near it; tightest: {worst.row()}{more}"
        shown = sorted(cgroups, key=lambda c: c.available_percent)
    return Evidence(
        "cgroup memory.current/memory.max (v2), memory.usage_in_bytes/memory.limit_in_bytes (v1), less inactive file",
        summary,
        value=round(worst.available_percent, 1),
        threshold=thr,
        unit="% of limit available",
        samples=tuple(c.row() for c in shown[:8]),
        count=len(tight),
    )


def _swapping(
    ctx: ProbeContext,
    v0: dict[str, int],
    v1: dict[str, int],
    dt: float,
    psi: dict[str, dict[str, float]] | None,
    swap_total: int | None,
) -> list[Finding]:
    if "pswpin" not in v0 or "pswpin" not in v1:
        return []
    d_in = v1["pswpin"] - v0["pswpin"]
    d_out = v1.get("pswpout", 0) - v0.get("pswpout", 0)
    if d_in < 0 or d_out < 0:
        return []
    rate = (d_in + d_out) / dt
    thr = float(ctx.opt("swap_pages_per_second"))
    psi_thr = float(ctx.opt("memory_psi_full_percent"))
    full10 = psi.get("full", {}).get("avg10", 0.0) if psi else 0.0
    evidence = [
        Evidence(
            "/proc/vmstat",
            f"{d_in} pages swapped in, {d_out} out in {dt:.1f}s ({rate:.0f} pages/s)",
            value=round(rate, 1),
            threshold=thr,
            unit="pages/s",
        )
    ]
    if psi is not None:
        evidence.append(
            Evidence(
                "/proc/pressure/memory",
                f"all non-idle tasks stalled on memory {full10:.1f}% of the last 10 s",
                value=full10,
                threshold=psi_thr,
                unit="%",
            )
        )
    present = (rate >= thr and d_in > 0) or (d_in + d_out > 0 and full10 >= psi_thr)
    return [ctx.finding("memory.swapping_active", present, *evidence)]
