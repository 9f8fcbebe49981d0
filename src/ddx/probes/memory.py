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
"""

from __future__ import annotations

from ddx.model import Evidence, Finding
from ddx.probes._procfs import read_psi
from ddx.probes.base import ProbeContext, probe

__all__ = ["memory", "parse_meminfo", "parse_vmstat"]


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
    },
)
def memory(ctx: ProbeContext) -> list[Finding]:
    """RAM available, swap use and rate, OOM kills during the window."""
    host = ctx.host
    mem = parse_meminfo(host.read_text("/proc/meminfo", max_bytes=65536))
    out: list[Finding] = []
    total = mem.get("MemTotal", 0)
    avail = available_bytes(mem)
    if total > 0 and avail is not None:
        pct = 100.0 * avail / total
        thr = float(ctx.opt("available_low_percent"))
        ev = Evidence(
            "/proc/meminfo",
            f"{_gb(avail)} of {_gb(total)} available ({pct:.1f}%)",
            value=round(pct, 1),
            threshold=thr,
            unit="% available",
        )
        out.append(ctx.finding("memory.available_low", pct < thr, ev))

    swap_total = mem.get("SwapTotal")
    if swap_total is not None:
        thr = float(ctx.opt("swap_used_high_percent"))
        if swap_total == 0:
            out.append(ctx.finding("memory.swap_used_high", False, Evidence("/proc/meminfo", "no swap configured")))
        else:
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
        return out
    v0 = parse_vmstat(host.read_text("/proc/vmstat", max_bytes=65536))
    t0 = host.time()
    host.sleep(ctx.window)
    v1 = parse_vmstat(host.read_text("/proc/vmstat", max_bytes=65536))
    dt = host.time() - t0
    if dt <= 0:
        dt = ctx.window
    psi = read_psi(host, "memory")
    out.extend(_swapping(ctx, v0, v1, dt, psi, swap_total))
    if "oom_kill" in v0 and "oom_kill" in v1 and v1["oom_kill"] > v0["oom_kill"]:
        n = v1["oom_kill"] - v0["oom_kill"]
        out.append(
            ctx.finding(
                "memory.oom_kill",
                True,
                Evidence(
                    "/proc/vmstat",
                    f"the OOM killer killed {n} process(es) during the {dt:.1f}s window ({v1['oom_kill']} since boot)",
                    value=n,
                    count=n,
                ),
            )
        )
    return out


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
    if not present and swap_total == 0:
        evidence = [Evidence("/proc/meminfo", "no swap configured")]
    return [ctx.finding("memory.swapping_active", present, *evidence)]
