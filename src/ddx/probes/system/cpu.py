"""cpu: saturation, hypervisor steal, and an idle host (``load.low``).

/proc/stat is read twice over the sampling window; the shares below are of
that window, over all online CPUs:

- ``cpu.saturated``: CPUs busy (not idle, not iowait) at least
  ``saturated_busy_percent`` AND a run queue at least the core count (1-minute
  load per core, which also says it has lasted) or PSI cpu "some" high (tasks
  waiting for a CPU).
- ``cpu.steal_high``: steal time share.
- ``load.low``: the host is mostly idle: load well under the core count, CPUs
  mostly idle, little iowait, no memory or I/O pressure (PSI), memory
  available (also in every cgroup with a memory limit: a container at its
  limit is out of memory however idle the host). It tells "the service fails
  while the machine has nothing to do" (a lock, a dependency, a limit) from
  resource exhaustion.

PSI for saturation is judged over the window itself, from the growth of its
stall totals (``total=``, microseconds), where both reads have them: the
``avg10`` figures lag by tens of seconds. For ``load.low`` the lower of the two
counts: the window's includes the waits of ddx's own concurrent probes, while
``avg10`` still holds a load that ended just before ddx looked. Without totals,
``avg10`` is used.

The core count is the number of online CPUs in /proc/stat; a container's CPU
quota (cgroup cpu.max) is not taken into account.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddx.host import Host
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.parsers.psi import held_pressure, read_psi, window_pressure
from ddx.probes.system.memory import (
    available_bytes,
    parse_meminfo,
    read_cgroup_memory,
    short_cgroups,
)

__all__ = ["CpuTimes", "LoadAvg", "cpu", "cpu_shares", "parse_loadavg", "parse_stat"]


@dataclass(frozen=True)
class CpuTimes:
    """Jiffies from the aggregate ``cpu`` line of /proc/stat."""

    user: int = 0
    nice: int = 0
    system: int = 0
    idle: int = 0
    iowait: int = 0
    irq: int = 0
    softirq: int = 0
    steal: int = 0

    @property
    def total(self) -> int:
        # guest and guest_nice are already counted in user and nice.
        return self.user + self.nice + self.system + self.idle + self.iowait + self.irq + self.softirq + self.steal


@dataclass(frozen=True)
class LoadAvg:
    load1: float
    load5: float
    load15: float
    runnable: int  # tasks runnable right now (includes the reader)
    tasks: int


def parse_stat(text: str) -> tuple[CpuTimes, int]:
    """Parse /proc/stat: the aggregate CPU times and the number of online CPUs
    (``cpuN`` lines). Raises ValueError when there is no ``cpu`` line."""
    agg: CpuTimes | None = None
    cores = 0
    for line in text.splitlines():
        if not line.startswith("cpu"):
            continue
        f = line.split()
        if f[0] == "cpu":
            nums = [int(x) for x in f[1:9]]
            nums += [0] * (8 - len(nums))
            agg = CpuTimes(*nums)
        elif f[0][3:].isdigit():
            cores += 1
    if agg is None:
        raise ValueError("no aggregate 'cpu' line in /proc/stat")
    return agg, max(cores, 1)


def parse_loadavg(text: str) -> LoadAvg:
    """Parse /proc/loadavg (``0.52 0.58 0.59 2/1234 5678``)."""
    f = text.split()
    if len(f) < 4 or "/" not in f[3]:
        raise ValueError(f"unexpected /proc/loadavg: {text.strip()[:80]!r}")
    run, _, tasks = f[3].partition("/")
    return LoadAvg(float(f[0]), float(f[1]), float(f[2]), int(run), int(tasks))


def own_ticks(text: str) -> int:
    """CPU time (clock ticks) a process and its waited-for children used, from
    /proc/PID/stat: utime + stime + cutime + cstime."""
    fields = text[text.rindex(")") + 2:].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14))


def cpu_shares(a: CpuTimes, b: CpuTimes, own: int = 0) -> dict[str, float] | None:
    """Percent of CPU time between two samples: busy, idle, iowait, steal.
    ``own`` ticks (ddx's own probes and the commands they ran) are not counted
    as busy: ddx must not see itself as load. None when no time passed."""
    dt = b.total - a.total
    if dt <= 0:
        return None
    idle = b.idle - a.idle
    iowait = b.iowait - a.iowait
    steal = b.steal - a.steal
    busy = max(0, dt - idle - iowait - steal - max(0, own))
    return {
        "busy": 100.0 * busy / dt,
        "idle": 100.0 * idle / dt,
        "iowait": 100.0 * iowait / dt,
        "steal": 100.0 * steal / dt,
    }


def _own(host: Host) -> int | None:
    """ddx's own CPU ticks so far (None where /proc/self cannot be read)."""
    try:
        return own_ticks(host.read_text("/proc/self/stat", max_bytes=4096))
    except (OSError, LookupError, ValueError, IndexError):
        return None


@probe(
    "cpu",
    findings=("cpu.saturated", "cpu.steal_high", "load.low"),
    options={
        # findings.yaml: "all CPUs are busy"; 90% leaves room for the probe's own sampling.
        "saturated_busy_percent": 90.0,
        # findings.yaml: "a run queue longer than the number of cores": 1-minute load per core.
        "saturated_load_per_core": 1.0,
        # PSI cpu "some" over the window (avg10 without totals): tasks waited for a CPU this share of it.
        "saturated_psi_some_percent": 40.0,
        # Steal above 10% is where cloud providers' own guidance says the VM is starved.
        "steal_high_percent": 10.0,
        # "well under core count": half of the cores or less. Used only where PSI is missing:
        # the load average lags by a minute and counts tasks blocked on I/O.
        "low_load_per_core": 0.5,
        # PSI cpu "some" over the window at most this: tasks seldom wait for a CPU (preferred to the load;
        # saturation starts at 40%, and ddx's own concurrent probes add a few percent on 2 cores).
        "low_cpu_pressure_percent": 20.0,
        # "CPU idle high": at most this share busy.
        "low_busy_percent": 30.0,
        # "disk mostly idle": iowait share of CPU time at most this.
        "low_iowait_percent": 5.0,
        # PSI memory/io "some" over the window at most this: no pressure.
        "low_pressure_percent": 5.0,
        # "memory mostly idle": at least this share of RAM available.
        "low_available_percent": 20.0,
        # ...and no cgroup with a memory limit (a container, a service with MemoryMax) that has less than
        # this share of its limit left: the memory probe's "available low" for cgroups.
        "low_cgroup_available_percent": 5.0,
        # Cgroup directories visited at most when looking for memory limits.
        "max_cgroups": 2000,
    },
)
def cpu(ctx: ProbeContext) -> list[Finding]:
    """CPU saturation and steal over the window; whether the host is idle."""
    host = ctx.host
    if ctx.window <= 0:
        raise NotApplicable("CPU shares need a sampling window > 0 (--window 0 given)")
    own0 = _own(host)
    # cgroups with a memory limit, read around the window like the CPU times (an OOM kill
    # between the reads means the cgroup was at its limit)
    try:
        ram = parse_meminfo(host.read_text("/proc/meminfo", max_bytes=65536)).get("MemTotal", 0)
    except (OSError, LookupError):
        ram = 0
    cg0 = read_cgroup_memory(host, int(ctx.opt("max_cgroups")), ram)[0] if ram else []
    psi0 = {r: read_psi(host, r) for r in ("cpu", "memory", "io")}
    s0, cores = parse_stat(host.read_text("/proc/stat", max_bytes=1 << 20))
    t0 = host.time()
    host.sleep(ctx.window)
    s1, cores = parse_stat(host.read_text("/proc/stat", max_bytes=1 << 20))
    own1 = _own(host)
    own = own1 - own0 if own0 is not None and own1 is not None else 0
    dt = host.time() - t0
    if dt <= 0:
        dt = ctx.window
    load = parse_loadavg(host.read_text("/proc/loadavg", max_bytes=4096))
    shares = cpu_shares(s0, s1)  # all of it: on a saturated host ddx only displaces other work
    mine = cpu_shares(s0, s1, own)  # without ddx's own ticks: an idle host stays idle while ddx looks
    if shares is None:
        raise ValueError("/proc/stat did not advance during the window")
    psi_cpu = read_psi(host, "cpu")
    psi_mem = read_psi(host, "memory")
    psi_io = read_psi(host, "io")
    # Pressure during the window itself (from the stall totals), where both reads have it:
    # avg10 lags by tens of seconds, so a load that ended just before ddx looked still shows.
    p_cpu, p_mem, p_io = (window_pressure(psi0[r], p, dt) for r, p in
                          (("cpu", psi_cpu), ("memory", psi_mem), ("io", psi_io)))
    per_core = load.load1 / cores
    busy, steal, iowait = shares["busy"], shares["steal"], shares["iowait"]
    others = mine["busy"] if mine else busy
    out: list[Finding] = []

    stat_ev = Evidence(
        "/proc/stat",
        f"CPUs {busy:.0f}% busy ({others:.0f}% without ddx itself), {iowait:.0f}% iowait, {steal:.0f}% steal "
        f"over {dt:.1f}s on {cores} cores",
        value=round(busy, 1),
        threshold=float(ctx.opt("saturated_busy_percent")),
        unit="% busy",
    )
    load_ev = Evidence(
        "/proc/loadavg",
        f"load {load.load1:.2f} {load.load5:.2f} {load.load15:.2f} on {cores} cores ({per_core:.2f} per core)",
        value=round(per_core, 2),
        threshold=float(ctx.opt("saturated_load_per_core")),
        unit="load per core",
    )
    cpu_some = p_cpu if p_cpu is not None else (psi_cpu.get("some", {}).get("avg10", 0.0) if psi_cpu else None)
    over = f"the {dt:.1f}s window" if p_cpu is not None else "the last 10 s"
    queued = per_core >= float(ctx.opt("saturated_load_per_core")) or (
        cpu_some is not None and cpu_some >= float(ctx.opt("saturated_psi_some_percent"))
    )
    sat_ev = [stat_ev, load_ev]
    if cpu_some is not None:
        sat_ev.append(
            Evidence(
                "/proc/pressure/cpu",
                f"tasks waited for a CPU {cpu_some:.1f}% of {over}",
                value=round(cpu_some, 2),
                threshold=float(ctx.opt("saturated_psi_some_percent")),
                unit="%",
            )
        )
    out.append(ctx.finding("cpu.saturated", busy >= float(ctx.opt("saturated_busy_percent")) and queued, *sat_ev))

    thr = float(ctx.opt("steal_high_percent"))
    out.append(
        ctx.finding(
            "cpu.steal_high",
            steal >= thr,
            Evidence("/proc/stat", f"steal {steal:.1f}% of CPU time over {dt:.1f}s", value=round(steal, 1), threshold=thr, unit="%"),
        )
    )

    # load.low: every sign of idleness must hold; the first that fails is the reason.
    try:
        mem = parse_meminfo(host.read_text("/proc/meminfo", max_bytes=65536))
        avail = available_bytes(mem)
        avail_pct = 100.0 * avail / mem["MemTotal"] if avail is not None and mem.get("MemTotal") else None
    except (OSError, LookupError):
        avail_pct = None
    press = float(ctx.opt("low_pressure_percent"))
    cpu_some = held_pressure(psi_cpu, p_cpu)
    if cpu_some is not None:
        load_check = (cpu_some <= float(ctx.opt("low_cpu_pressure_percent")),
                      f"CPU pressure {cpu_some:.1f}% (load {load.load1:.2f} on {cores} cores)")
    else:
        load_check = (per_core <= float(ctx.opt("low_load_per_core")), f"load {load.load1:.2f} on {cores} cores")
    checks: list[tuple[bool, str]] = [
        load_check,
        (others <= float(ctx.opt("low_busy_percent")), f"CPUs {others:.0f}% busy without ddx"),
        (iowait <= float(ctx.opt("low_iowait_percent")), f"iowait {iowait:.0f}%"),
    ]
    for name, psi, now in (("memory", psi_mem, p_mem), ("I/O", psi_io, p_io)):
        v = held_pressure(psi, now)
        if v is not None:
            checks.append((v <= press, f"{name} pressure {v:.1f}%"))
    if avail_pct is not None:
        checks.append((avail_pct >= float(ctx.opt("low_available_percent")), f"{avail_pct:.0f}% of RAM available"))
        if cg0:
            cg1 = read_cgroup_memory(host, int(ctx.opt("max_cgroups")), ram)[0]
            short = short_cgroups(cg0, cg1, float(ctx.opt("low_cgroup_available_percent")))
            if short:
                checks.append((False, f"cgroup {short[0].path} at its memory limit "
                                      f"({short[0].available_percent:.1f}% of it available)"))
            else:
                checks.append((True, f"{len(cg0)} cgroup(s) with a memory limit, none at it"))
    idle = all(ok for ok, _ in checks)
    if idle:
        summary = "host mostly idle: " + ", ".join(text for _, text in checks)
    else:
        summary = "host not idle: " + ", ".join(text for ok, text in checks if not ok)
    out.append(
        ctx.finding(
            "load.low",
            idle,
            Evidence(
                "/proc/loadavg, /proc/stat, /proc/pressure",
                summary,
                value=round(per_core, 2),
                threshold=float(ctx.opt("low_load_per_core")),
                unit="load per core",
            ),
        )
    )
    return out
