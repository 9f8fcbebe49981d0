"""memory: parsers on samples, the probe on recorded incidents and on this host."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddx.host import BundleHost, LiveHost, build_bundle
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.system.memory import (
    available_bytes,
    cgroup_memory,
    memory,
    parse_meminfo,
    parse_memory_limit,
    parse_vmstat,
)

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


def test_no_swap_leaves_swap_findings_unknown(tmp_path: Path) -> None:
    # Without swap, neither finding can occur under any cause: absent would count against
    # every cause that often swaps, so they stay unknown and a note says why.
    no_swap = MEMINFO_OK.replace("SwapTotal:       2097148 kB", "SwapTotal:       0 kB").replace(
        "SwapFree:        2000000 kB", "SwapFree:        0 kB"
    )
    path = build_bundle(
        str(tmp_path / "b"),
        files={"/proc/meminfo": no_swap, "/proc/vmstat": [VMSTAT.format(pin=0, pout=0, oom=0)] * 2,
               "/proc/pressure/memory": PSI_CALM},
        times=[500.0, 501.0],
    )
    ctx = ProbeContext(BundleHost(path), dict(registry["memory"].options), 1.0, "memory")
    got = {f.id: f for f in memory(ctx)}
    assert "memory.swap_used_high" not in got and "memory.swapping_active" not in got
    assert got["memory.available_low"].state is State.ABSENT
    assert any("no swap" in n for n in ctx.notes)


V1_MOUNTS = (
    "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n"
    "cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n"
)
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
V1_STAT = "cache 1000\nrss 2000\ntotal_inactive_file {inactive}\ntotal_active_file 0\n"
V1_OOM = "oom_kill_disable 0\nunder_oom {under}\noom_kill {kills}\n"
MiB = 1 << 20


def _v1_cgroup(usage_mib: int, limit: int | str, inactive_mib: int = 0, kills: int | list[int] = 0,
               under: int = 0, base: str = "/sys/fs/cgroup/memory/app") -> dict[str, object]:
    oom = [V1_OOM.format(under=under, kills=k) for k in kills] if isinstance(kills, list) else \
        V1_OOM.format(under=under, kills=kills)
    return {
        f"{base}/memory.limit_in_bytes": str(limit) + "\n",
        f"{base}/memory.usage_in_bytes": f"{usage_mib * MiB}\n",
        f"{base}/memory.stat": V1_STAT.format(inactive=inactive_mib * MiB),
        f"{base}/memory.oom_control": oom,
    }


def _run_cgroups(tmp_path: Path, files: dict[str, object], listdirs: dict[str, object],
                 vm: list[str] | None = None) -> dict[str, Finding]:
    path = build_bundle(
        str(tmp_path / "b"),
        files={"/proc/meminfo": MEMINFO_OK, "/proc/vmstat": vm or [VMSTAT.format(pin=0, pout=0, oom=0)] * 2,
               "/proc/pressure/memory": PSI_CALM, **files},
        listdirs=listdirs,
        times=[500.0, 501.0],
    )
    ctx = ProbeContext(BundleHost(path), dict(registry["memory"].options), 1.0, "memory")
    return {f.id: f for f in memory(ctx)}


def test_parse_memory_limit() -> None:
    assert parse_memory_limit("max\n") is None
    assert parse_memory_limit("9223372036854771712\n") is None  # v1 "unlimited"
    assert parse_memory_limit("536870912\n") == 512 * MiB
    with pytest.raises(ValueError, match="unexpected"):
        parse_memory_limit("lots")


def test_cgroup_memory_v2_working_set_and_kills() -> None:
    cg = cgroup_memory("/system.slice/app.service", True, {
        "memory.max": f"{100 * MiB}\n",
        "memory.current": f"{99 * MiB}\n",
        "memory.stat": f"anon {60 * MiB}\ninactive_file {30 * MiB}\nactive_file {9 * MiB}\n",
        "memory.events": "low 0\nhigh 0\nmax 812\noom 3\noom_kill 2\n",
    })
    assert cg is not None
    assert cg.working_set == 69 * MiB and round(cg.available_percent) == 31  # page cache is not a shortage
    assert cg.oom_kills == 2 and not cg.under_oom
    assert cgroup_memory("/x", True, {"memory.max": "max\n", "memory.current": "1\n"}) is None


def test_cgroup_at_its_limit_makes_memory_short_while_the_host_has_plenty(tmp_path: Path) -> None:
    files = {"/proc/mounts": V1_MOUNTS, **_v1_cgroup(250, 256 * MiB, inactive_mib=2, kills=[4, 5]),
             **_v1_cgroup(10, 9223372036854771712, base="/sys/fs/cgroup/memory/other"),
             **_v1_cgroup(50, 1 << 40, base="/sys/fs/cgroup/memory/huge")}
    listdirs = {"/sys/fs/cgroup/memory": ["app", "cgroup.procs", "huge", "memory.limit_in_bytes", "other", "tasks"],
                "/sys/fs/cgroup/memory/app": ["cgroup.procs", "memory.stat"],
                "/sys/fs/cgroup/memory/other": [], "/sys/fs/cgroup/memory/huge": []}
    got = _run_cgroups(tmp_path, files, listdirs)
    low = got["memory.available_low"]
    assert low.state is State.PRESENT
    assert low.evidence[1].value > 40  # the host itself is fine: the cgroup that decided comes first
    cg = low.evidence[0]
    assert cg.count == 1 and "cgroup /app" in cg.summary and "/huge" not in cg.summary  # 1 TiB: no limit here
    oom = got["memory.oom_kill"]
    assert oom.state is State.PRESENT and "cgroup /app: 1 OOM kill" in oom.evidence[0].samples[0]


def test_cgroup_with_room_or_old_kills_says_nothing_wrong(tmp_path: Path) -> None:
    files = {"/proc/mounts": V1_MOUNTS, **_v1_cgroup(250, 256 * MiB, inactive_mib=100, kills=7)}
    listdirs = {"/sys/fs/cgroup/memory": ["app"], "/sys/fs/cgroup/memory/app": []}
    got = _run_cgroups(tmp_path, files, listdirs)
    low = got["memory.available_low"]
    assert low.state is State.ABSENT and "none near it" in low.evidence[1].summary
    assert "memory.oom_kill" not in got  # 7 kills since the cgroup was made, none now


def test_cgroup_whose_oom_kill_freed_memory_during_the_window_is_short(tmp_path: Path) -> None:
    # At its limit before the window, the OOM killer frees 150 MB: the second read alone looks roomy.
    base = "/sys/fs/cgroup/memory/app"
    files: dict[str, object] = {"/proc/mounts": V1_MOUNTS, **_v1_cgroup(100, 256 * MiB, kills=[0, 1])}
    files[f"{base}/memory.usage_in_bytes"] = [f"{100 * MiB}\n", f"{100 * MiB}\n"]
    listdirs = {"/sys/fs/cgroup/memory": ["app"], base: []}
    got = _run_cgroups(tmp_path, files, listdirs)
    assert got["memory.available_low"].state is State.PRESENT
    assert "OOM kill in it during the window" in got["memory.available_low"].evidence[0].summary
    assert got["memory.oom_kill"].state is State.PRESENT


def test_v1_cgroup_in_oom_now_is_short(tmp_path: Path) -> None:
    files = {"/proc/mounts": V1_MOUNTS, **_v1_cgroup(100, 256 * MiB, under=1)}
    listdirs = {"/sys/fs/cgroup/memory": ["app"], "/sys/fs/cgroup/memory/app": []}
    assert _run_cgroups(tmp_path, files, listdirs)["memory.available_low"].state is State.PRESENT


def test_v2_descends_only_where_memory_is_delegated(tmp_path: Path) -> None:
    def v2(base: str, current: int) -> dict[str, object]:
        return {f"{base}/memory.max": f"{100 * MiB}\n", f"{base}/memory.current": f"{current * MiB}\n",
                f"{base}/memory.stat": "inactive_file 0\n", f"{base}/memory.events": "oom_kill 0\n"}

    files = {"/proc/mounts": V2_MOUNTS, "/sys/fs/cgroup/cgroup.subtree_control": "cpu memory pids\n",
             "/sys/fs/cgroup/a.slice/cgroup.subtree_control": "pids\n",
             **v2("/sys/fs/cgroup/a.slice", 10), **v2("/sys/fs/cgroup/a.slice/full.service", 99)}
    listdirs = {"/sys/fs/cgroup": ["a.slice", "cgroup.procs", "memory.stat"],
                "/sys/fs/cgroup/a.slice": ["full.service", "memory.max"]}
    got = _run_cgroups(tmp_path, files, listdirs)
    low = got["memory.available_low"]
    # full.service sits below a parent that does not delegate memory: its files are not a limit of its own
    assert low.state is State.ABSENT and low.evidence[1].samples == ("cgroup /a.slice: 10 MB working set of a "
                                                                      "100 MB limit, 90.0% left",)


def test_without_mounts_cgroups_are_skipped(tmp_path: Path) -> None:
    got = _run_cgroups(tmp_path, {}, {})
    assert len(got["memory.available_low"].evidence) == 1


def test_without_window_rates_stay_unknown(tmp_path: Path) -> None:
    got = _run(tmp_path, MEMINFO_OK, [VMSTAT.format(pin=0, pout=0, oom=0)], window=0)
    assert set(got) == {"memory.available_low", "memory.swap_used_high"}  # no window: no rates, no kills


def test_unreadable_meminfo_fails_the_probe(tmp_path: Path) -> None:
    path = build_bundle(str(tmp_path / "b"), files={"/proc/meminfo": PermissionError(13, "Permission denied", "/proc/meminfo")})
    with pytest.raises(PermissionError):
        memory(ProbeContext(BundleHost(path), dict(registry["memory"].options), 0, "memory"))


def test_this_host() -> None:
    ctx = ProbeContext(LiveHost(), dict(registry["memory"].options), 0.2, "memory")
    got = {f.id: f for f in memory(ctx)}
    assert "memory.available_low" in got
    for f in got.values():
        assert f.evidence and f.evidence[0].source.startswith("/proc/")
