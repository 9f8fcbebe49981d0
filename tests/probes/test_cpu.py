"""cpu: parsers on samples, the probe on recorded incidents and on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddx.host import BundleHost, LiveHost, build_bundle
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.system.cpu import CpuTimes, cpu, cpu_shares, parse_loadavg, parse_stat

STAT = """\
cpu  {user} 0 {system} {idle} {iowait} 0 0 {steal} 0 0
cpu0 1 0 1 1 0 0 0 0 0 0
cpu1 1 0 1 1 0 0 0 0 0 0
intr 123 0 0
ctxt 456
"""
MEMINFO = "MemTotal: 1000000 kB\nMemAvailable: 800000 kB\n"
PSI0 = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def stat(user: int, system: int, idle: int, iowait: int = 0, steal: int = 0) -> str:
    return STAT.format(user=user, system=system, idle=idle, iowait=iowait, steal=steal)


def test_parse_stat_and_loadavg() -> None:
    times, cores = parse_stat(stat(100, 50, 800, 30, 20))
    assert cores == 2
    assert times == CpuTimes(user=100, system=50, idle=800, iowait=30, steal=20)
    assert times.total == 1000
    la = parse_loadavg("0.52 0.58 0.59 3/1234 5678\n")
    assert (la.load1, la.runnable, la.tasks) == (0.52, 3, 1234)
    with pytest.raises(ValueError):
        parse_stat("intr 1\n")
    with pytest.raises(ValueError):
        parse_loadavg("garbage")


def test_cpu_shares() -> None:
    a, _ = parse_stat(stat(100, 0, 100))
    b, _ = parse_stat(stat(170, 10, 110, iowait=5, steal=5))
    s = cpu_shares(a, b)
    assert s == {"busy": 80.0, "idle": 10.0, "iowait": 5.0, "steal": 5.0}
    assert cpu_shares(a, a) is None


def _run(tmp_path: Path, stats: list[str], loadavg: str, psi_cpu: str | list[str] = PSI0,
         psi_io: str | list[str] = PSI0,
         meminfo: str = MEMINFO, extra: dict[str, object] | None = None,
         listdirs: dict[str, object] | None = None) -> dict[str, Finding]:  # fmt: skip
    path = build_bundle(
        str(tmp_path / "b"),
        files={
            "/proc/stat": stats,
            "/proc/loadavg": loadavg,
            "/proc/meminfo": meminfo,
            "/proc/pressure/cpu": psi_cpu,
            "/proc/pressure/io": psi_io,
            "/proc/pressure/memory": PSI0,
            **(extra or {}),
        },
        listdirs=listdirs,
        times=[10.0, 11.0],
    )
    ctx = ProbeContext(BundleHost(path), dict(registry["cpu"].options), 1.0, "cpu")
    return {f.id: f for f in cpu(ctx)}


def test_saturated_host(tmp_path: Path) -> None:
    got = _run(tmp_path, [stat(0, 0, 0), stat(170, 25, 5)], "5.10 4.80 3.00 6/300 99\n",
               psi_cpu="some avg10=70.00 avg60=60.00 avg300=40.00 total=1\n")  # fmt: skip
    sat = got["cpu.saturated"]
    assert sat.state is State.PRESENT
    assert sat.evidence[0].value == 97.5
    assert "2 cores" in sat.evidence[1].summary
    assert got["load.low"].state is State.ABSENT
    assert got["cpu.steal_high"].state is State.ABSENT


def test_busy_but_no_queue_is_not_saturated(tmp_path: Path) -> None:
    # A short burst: CPUs busy now, but the 1-minute load is under the core count and nothing waits.
    got = _run(tmp_path, [stat(0, 0, 0), stat(190, 5, 5)], "0.40 0.20 0.10 1/300 99\n")
    assert got["cpu.saturated"].state is State.ABSENT


def test_steal(tmp_path: Path) -> None:
    got = _run(tmp_path, [stat(0, 0, 0), stat(50, 10, 110, steal=30)], "1.0 1.0 1.0 1/100 9\n")
    st = got["cpu.steal_high"]
    assert st.state is State.PRESENT and st.evidence[0].value == 15.0


def test_idle_host_is_load_low(tmp_path: Path) -> None:
    got = _run(tmp_path, [stat(0, 0, 0), stat(5, 3, 192)], "0.05 0.03 0.01 1/120 7\n")
    low = got["load.low"]
    assert low.state is State.PRESENT and "mostly idle" in low.evidence[0].summary
    assert got["cpu.saturated"].state is State.ABSENT


def psi(avg10: float, total: int) -> str:
    return f"some avg10={avg10:.2f} avg60=0.00 avg300=0.00 total={total}\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"


def test_a_load_that_ended_before_the_window_leaves_the_host_idle(tmp_path: Path) -> None:
    # avg10 and the 1-minute load still hold a CPU burst that ended seconds ago; over the
    # window the CPUs idle and nothing waits (the stall total does not grow).
    got = _run(tmp_path, [stat(0, 0, 0), stat(3, 2, 195)], "3.89 4.01 3.09 1/120 7\n",
               psi_cpu=[psi(88.8, 5_000_000), psi(88.8, 5_000_000)])
    low = got["load.low"]
    assert low.state is State.PRESENT and "CPU pressure 0.0%" in low.evidence[0].summary
    assert got["cpu.saturated"].state is State.ABSENT


def test_ddx_own_waits_in_the_window_do_not_make_an_idle_host_busy(tmp_path: Path) -> None:
    # ddx's concurrent probes wait for a CPU a fifth of the window; the 10 s average is low.
    got = _run(tmp_path, [stat(0, 0, 0), stat(5, 3, 192)], "0.30 0.20 0.10 1/120 7\n",
               psi_cpu=[psi(3.0, 1_000_000), psi(3.0, 1_200_000)])
    assert got["load.low"].state is State.PRESENT, got["load.low"].evidence[0].summary


def test_saturation_that_began_seconds_ago_is_seen_in_the_window(tmp_path: Path) -> None:
    # The 1-minute load and avg10 have not caught up; over the window tasks wait 70% of the time.
    got = _run(tmp_path, [stat(0, 0, 0), stat(180, 15, 5)], "0.60 0.20 0.10 6/300 99\n",
               psi_cpu=[psi(12.0, 1_000_000), psi(14.0, 1_700_000)])
    sat = got["cpu.saturated"]
    assert sat.state is State.PRESENT
    assert "70.0% of the 1.0s window" in sat.evidence[2].summary and sat.evidence[2].value == 70.0


def test_idle_host_with_a_cgroup_at_its_memory_limit_is_not_load_low(tmp_path: Path) -> None:
    base = "/sys/fs/cgroup/memory/app"
    extra = {
        "/proc/mounts": "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n",
        f"{base}/memory.limit_in_bytes": f"{256 << 20}\n",
        f"{base}/memory.usage_in_bytes": f"{255 << 20}\n",
        f"{base}/memory.stat": "total_inactive_file 0\n",
        f"{base}/memory.oom_control": "under_oom 0\noom_kill 3\n",
    }
    got = _run(tmp_path, [stat(0, 0, 0), stat(5, 3, 192)], "0.05 0.03 0.01 1/120 7\n", extra=extra,
               listdirs={"/sys/fs/cgroup/memory": ["app"], base: []})
    low = got["load.low"]
    assert low.state is State.ABSENT and "cgroup /app" in low.evidence[0].summary


@pytest.mark.parametrize(
    ("psi_io", "meminfo", "iowait", "why"),
    [
        (["some avg10=30.00 avg60=0 avg300=0 total=1000000\nfull avg10=20.00 avg60=0 avg300=0 total=1\n",
          "some avg10=30.00 avg60=0 avg300=0 total=1300000\nfull avg10=20.00 avg60=0 avg300=0 total=1\n"],
         MEMINFO, 0, "I/O pressure 30.0%"),
        (PSI0, "MemTotal: 1000000 kB\nMemAvailable: 50000 kB\n", 0, "RAM available"),
        (PSI0, MEMINFO, 40, "iowait"),
    ],
)
def test_idle_cpu_but_pressure_elsewhere_is_not_load_low(
    tmp_path: Path, psi_io: str | list[str], meminfo: str, iowait: int, why: str
) -> None:
    got = _run(tmp_path, [stat(0, 0, 0), stat(5, 3, 192 - iowait, iowait=iowait)], "0.05 0.03 0.01 1/120 7\n",
               psi_io=psi_io, meminfo=meminfo)  # fmt: skip
    low = got["load.low"]
    assert low.state is State.ABSENT and why in low.evidence[0].summary


def test_kernel_without_psi(tmp_path: Path) -> None:
    path = build_bundle(
        str(tmp_path / "b"),
        files={
            "/proc/stat": [stat(0, 0, 0), stat(5, 3, 192)],
            "/proc/loadavg": "0.05 0.03 0.01 1/120 7\n",
            "/proc/meminfo": MEMINFO,
            "/proc/pressure/cpu": FileNotFoundError(2, "No such file or directory", "/proc/pressure/cpu"),
            "/proc/pressure/io": FileNotFoundError(2, "No such file or directory", "/proc/pressure/io"),
            "/proc/pressure/memory": FileNotFoundError(2, "No such file or directory", "/proc/pressure/memory"),
        },
    )
    ctx = ProbeContext(BundleHost(path), dict(registry["cpu"].options), 1.0, "cpu")
    got = {f.id: f for f in cpu(ctx)}
    assert got["load.low"].state is State.PRESENT
    assert len(got["cpu.saturated"].evidence) == 2  # no PSI evidence


def test_this_host() -> None:
    ctx = ProbeContext(LiveHost(), dict(registry["cpu"].options), 0.3, "cpu")
    got = {f.id: f for f in cpu(ctx)}
    assert set(got) == {"cpu.saturated", "cpu.steal_high", "load.low"}
    assert all(f.state in (State.PRESENT, State.ABSENT) for f in got.values())


def test_zero_window_is_not_applicable() -> None:
    from ddx.probes.base import NotApplicable

    ctx = ProbeContext(LiveHost(), dict(registry["cpu"].options), 0.0, "cpu")
    with pytest.raises(NotApplicable, match="window"):
        cpu(ctx)


def _psi_some_avg10() -> float | None:
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    return float(line.split("avg10=")[1].split()[0])


@pytest.mark.slow
def test_live_burst_that_just_ended_leaves_the_host_idle_and_a_running_one_saturates() -> None:
    """Real CPU hogs, one more than the cores: saturation while they run (the window
    sees tasks waiting); once they are killed the host is idle at once, although PSI's
    10 s average still shows the burst."""
    import os
    import subprocess
    import sys
    import time

    if _psi_some_avg10() is None:
        pytest.skip("no PSI on this kernel")
    n = (os.cpu_count() or 1) + 1
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        deadline = time.monotonic() + 30
        while (_psi_some_avg10() or 0.0) < 40.0 and time.monotonic() < deadline:
            time.sleep(0.5)
        busy = {f.id: f for f in cpu(ProbeContext(LiveHost(), dict(registry["cpu"].options), 1.0, "cpu"))}
        assert busy["cpu.saturated"].state is State.PRESENT, [e.summary for e in busy["cpu.saturated"].evidence]
    finally:
        for h in hogs:
            h.kill()
            h.wait(timeout=10)
    time.sleep(0.3)
    assert (_psi_some_avg10() or 0.0) > 20.0  # the 10 s average still holds the burst
    idle = {f.id: f for f in cpu(ProbeContext(LiveHost(), dict(registry["cpu"].options), 1.0, "cpu"))}
    assert idle["load.low"].state is State.PRESENT, idle["load.low"].evidence[0].summary
