"""memory: parsers on samples, the probe on recorded incidents and on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddx.host import BundleHost, LiveHost, build_bundle
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.memory import available_bytes, memory, parse_meminfo, parse_vmstat

MEMINFO_OK = """\
MemTotal:       16316412 kB
MemFree:         1010000 kB
MemAvailable:    8000000 kB
Buffers:          200000 kB
Cached:          6000000 kB
SwapTotal:       2097148 kB
SwapFree:        2000000 kB
HugePages_Total:       0
"""

MEMINFO_TIGHT = """\
MemTotal:       16000000 kB
MemFree:          100000 kB
MemAvailable:     400000 kB
SwapTotal:       4000000 kB
SwapFree:         500000 kB
"""

MEMINFO_OLD_KERNEL = """\
MemTotal:       1000 kB
MemFree:         100 kB
Buffers:          10 kB
Cached:           20 kB
"""

VMSTAT = "nr_free_pages 1000\npswpin {pin}\npswpout {pout}\noom_kill {oom}\n"
PSI_CALM = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
PSI_THRASH = "some avg10=60.00 avg60=40.00 avg300=20.00 total=9\nfull avg10=35.00 avg60=20.00 avg300=9.00 total=9\n"


def test_parse_meminfo_in_bytes() -> None:
    m = parse_meminfo(MEMINFO_OK + "Broken line\nWeird:  x kB\n")
    assert m["MemTotal"] == 16316412 * 1024
    assert m["HugePages_Total"] == 0
    assert "Weird" not in m
    assert available_bytes(m) == 8000000 * 1024
    assert available_bytes(parse_meminfo(MEMINFO_OLD_KERNEL)) == 130 * 1024


def test_parse_vmstat() -> None:
    assert parse_vmstat("pswpin 5\npswpout 7\nbad\nx y\n") == {"pswpin": 5, "pswpout": 7}


def _run(tmp_path: Path, meminfo: str, vm: list[str], psi: str = PSI_CALM, window: float = 1.0) -> dict[str, Finding]:
    path = build_bundle(
        str(tmp_path / "b"),
        files={"/proc/meminfo": meminfo, "/proc/vmstat": vm, "/proc/pressure/memory": psi},
        times=[500.0, 501.0],
    )
    ctx = ProbeContext(BundleHost(path), dict(registry["memory"].options), window, "memory")
    return {f.id: f for f in memory(ctx)}


def test_healthy_memory(tmp_path: Path) -> None:
    got = _run(tmp_path, MEMINFO_OK, [VMSTAT.format(pin=10, pout=20, oom=3)] * 2)
    assert got["memory.available_low"].state is State.ABSENT
    assert got["memory.swap_used_high"].state is State.ABSENT
    assert got["memory.swapping_active"].state is State.ABSENT
    # 3 OOM kills since boot, none during the window: not this probe's to judge.
    assert "memory.oom_kill" not in got


def test_tight_memory_thrashing_and_a_kill_during_the_window(tmp_path: Path) -> None:
    got = _run(
        tmp_path,
        MEMINFO_TIGHT,
        [VMSTAT.format(pin=1000, pout=5000, oom=3), VMSTAT.format(pin=3000, pout=9000, oom=4)],
        PSI_THRASH,
    )
    low = got["memory.available_low"]
    assert low.state is State.PRESENT and low.evidence[0].value == 2.5 and low.evidence[0].threshold == 5.0
    assert got["memory.swap_used_high"].state is State.PRESENT
    swap = got["memory.swapping_active"]
    assert swap.state is State.PRESENT and swap.evidence[0].value == 6000.0  # pages/s over 1 s
    oom = got["memory.oom_kill"]
    assert oom.state is State.PRESENT and oom.evidence[0].count == 1


def test_swap_out_trickle_is_not_active_swapping(tmp_path: Path) -> None:
    got = _run(tmp_path, MEMINFO_OK, [VMSTAT.format(pin=0, pout=100, oom=0), VMSTAT.format(pin=0, pout=140, oom=0)])
    assert got["memory.swapping_active"].state is State.ABSENT


def test_no_swap_means_swap_findings_absent(tmp_path: Path) -> None:
    no_swap = MEMINFO_OK.replace("SwapTotal:       2097148 kB", "SwapTotal:       0 kB").replace(
        "SwapFree:        2000000 kB", "SwapFree:        0 kB"
    )
    got = _run(tmp_path, no_swap, [VMSTAT.format(pin=0, pout=0, oom=0)] * 2)
    assert got["memory.swap_used_high"].state is State.ABSENT
    assert got["memory.swapping_active"].state is State.ABSENT
    assert "no swap" in got["memory.swap_used_high"].evidence[0].summary


def test_without_window_rates_stay_unknown(tmp_path: Path) -> None:
    got = _run(tmp_path, MEMINFO_OK, [VMSTAT.format(pin=0, pout=0, oom=0)], window=0)
    assert set(got) == {"memory.available_low", "memory.swap_used_high"}


def test_unreadable_meminfo_fails_the_probe(tmp_path: Path) -> None:
    path = build_bundle(str(tmp_path / "b"), files={"/proc/meminfo": PermissionError(13, "Permission denied", "/proc/meminfo")})
    with pytest.raises(PermissionError):
        memory(ProbeContext(BundleHost(path), dict(registry["memory"].options), 0, "memory"))


def test_this_host() -> None:
    ctx = ProbeContext(LiveHost(), dict(registry["memory"].options), 0.2, "memory")
    got = {f.id: f for f in memory(ctx)}
    assert {"memory.available_low", "memory.swap_used_high"} <= set(got)
    for f in got.values():
        assert f.evidence and f.evidence[0].source.startswith("/proc/")
