"""Who holds the memory where it is short: a newcomer that took it at once, or old processes.

The live tests fill a real memory cgroup (made by the drill's sandbox, removed after) with a
process that loads most of its limit right after two older ones started."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from ddx.config import Config
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.parsers.proctable import Proc, ProcTable
from ddx.probes.runner import run_probes
from ddx.probes.system.memholders import (
    FINDING,
    Scope,
    memory_cgroup_path,
    newcomer,
    old_holders,
)

MB = 1 << 20
HZ = 100


def table(*procs: tuple[int, float]) -> ProcTable:
    """Processes (pid, age in seconds) on a host up for a day."""
    up = 86400.0
    return ProcTable({pid: Proc(pid, 1, pid, pid, f"p{pid}", "S", 0, 1, 0, 0, int((up - age) * HZ))
                      for pid, age in procs}, up, HZ)


def test_memory_cgroup_path_v1_and_v2() -> None:
    v1 = "12:pids:/system.slice/app.service\n4:cpu,cpuacct:/x\n7:memory:/system.slice/app.service\n0::/u\n"
    assert memory_cgroup_path(v1, v2=False) == "/system.slice/app.service"
    assert memory_cgroup_path(v1, v2=True) == "/u"
    assert memory_cgroup_path("0::/\n", v2=True) == "/"
    assert memory_cgroup_path("garbage\n", v2=True) is None


def test_a_newcomer_holding_much_of_a_short_scope_against_old_holders() -> None:
    t = table((1, 86000.0), (2, 86000.0), (3, 7200.0), (4, 120.0))
    rss = {1: 100 * MB, 2: 50 * MB, 3: 30 * MB, 4: 400 * MB}
    scope = Scope("the host", 1000 * MB, 30 * MB, frozenset(rss))
    assert newcomer(t, rss, scope, 600.0, 0.1, 0.05) == (t.get(4), 400 * MB)
    # it must hold what makes memory short: without it, 10% would be available
    assert newcomer(t, rss, Scope("the host", 1000 * MB, 30 * MB, frozenset({1, 2, 3})), 600.0, 0.1, 0.05) is None
    assert newcomer(t, {**rss, 4: 60 * MB}, scope, 600.0, 0.1, 0.05) is None  # 3% + 6%: still short without it
    assert newcomer(t, {**rss, 1: 70 * MB, 4: 80 * MB}, scope, 600.0, 0.1, 0.05) == (t.get(4), 80 * MB)
    # only the largest holder counts: an old process holding more is what holds the memory
    assert newcomer(t, {**rss, 1: 90 * MB, 4: 80 * MB}, scope, 600.0, 0.1, 0.05) is None
    assert newcomer(t, rss, scope, 60.0, 0.1, 0.05) is None  # two minutes is not "young" here
    assert old_holders(t, rss, scope, 3600.0) is None  # the largest is the newcomer
    old = {1: 600 * MB, 2: 200 * MB, 3: 100 * MB, 4: 10 * MB}
    assert old_holders(t, old, scope, 3600.0) == [t.get(1), t.get(2), t.get(3)]
    assert newcomer(t, old, scope, 600.0, 0.1, 0.05) is None


def test_everyone_young_is_no_newcomer_but_a_lone_job_is() -> None:
    """Leftover workers of a stack that started a minute ago are as young as the rest: not a
    newcomer. A container running one job: its age alone decides."""
    t = table((1, 70.0), (2, 65.0), (3, 60.0), (4, 60.0))
    rss = {1: 20 * MB, 2: 20 * MB, 3: 300 * MB, 4: 20 * MB}
    assert newcomer(t, rss, Scope("cgroup /s", 400 * MB, 10 * MB, frozenset(rss)), 600.0, 0.1, 0.05) is None
    lone = table((9, 30.0))
    assert newcomer(lone, {9: 200 * MB}, Scope("cgroup /job", 256 * MB, 4 * MB, frozenset({9})), 600.0, 0.1, 0.05)


SLEEPER = "import time\nprint('ready', flush=True)\ntime.sleep(120)\n"
LOADER = """
import sys, time
held = bytearray(int(sys.argv[1]) << 20)  # touched: resident
for i in range(0, len(held), 4096):
    held[i] = 1
print("ready", flush=True)
time.sleep(120)
"""


@contextmanager
def squeezed_cgroup(limit_mb: int, load_mb: int) -> Iterator[tuple[int, str]]:
    """A memory cgroup of ``limit_mb`` with two sleepers and, a second later, a process
    loading ``load_mb``; yields (the loader's pid, the cgroup's path)."""
    if os.geteuid() != 0:
        pytest.skip("making a memory cgroup needs root")
    from ddx.drill.sandbox import Sandbox, SandboxError
    from ddx.drill.scenarios.capacity import set_memory_limit
    try:
        sb = Sandbox("memholders-test")
    except SandboxError as exc:
        pytest.skip(f"no sandbox here: {exc}")
    with sb:
        if sb.memory_cgroup is None:
            pytest.skip("no memory cgroup on this host")
        set_memory_limit(sb.memory_cgroup, limit_mb * MB)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for argv in ([sys.executable, "-c", SLEEPER], [sys.executable, "-c", SLEEPER]):
                procs.append(sb.spawn(argv, stdin=subprocess.DEVNULL))
            time.sleep(1.5)
            loader = sb.spawn([sys.executable, "-c", LOADER, str(load_mb)])
            procs.append(loader)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with open(f"/proc/{loader.pid}/status") as f:
                    rss = next(int(x.split()[1]) for x in f if x.startswith("VmRSS:")) * 1024
                if rss >= (load_mb - 2) * MB:
                    break
                time.sleep(0.1)
            yield loader.pid, str(sb.memory_cgroup)
        finally:
            for p in procs:
                p.kill()
                p.wait()


def probe(options: dict[str, object]):  # type: ignore[no-untyped-def]
    col = run_probes(LiveHost(), Config(probes={"memholders": {"largest": 100000, **options}}), only=["memholders"],
                     window=0.2)
    (res,) = col.results
    return res, {f.id: f for f in col.findings}


def test_a_job_that_loads_most_of_a_cgroup_limit_is_seen_and_old_holders_say_absent() -> None:
    with squeezed_cgroup(160, 148) as (pid, path):
        name = path.rsplit("/", 1)[-1]
        res, found = probe({})
        assert res.status == "ok", res.reason
        f = found[FINDING]
        assert f.state is State.PRESENT, (f, res.reason)
        assert f"pid {pid} " in f.evidence[0].summary and name in f.evidence[0].summary, f.evidence
        # as if every holder there had run for hours: the memory took its time
        res, found = probe({"young_s": 0.0, "old_s": 0.0})
        assert res.status == "ok", res.reason
        f = found[FINDING]
        assert f.state is State.ABSENT and f"pid {pid} " in f.evidence[0].summary, f
    # the cgroup is gone: nothing short of memory any more that this test made
    res, found = probe({})
    assert res.status == "ok"
    assert not any(name in e.summary for f in found.values() for e in f.evidence)


def test_room_in_the_limit_says_nothing() -> None:
    with squeezed_cgroup(512, 64) as (pid, _path):
        res, found = probe({})
        assert res.status == "ok", res.reason
        assert not any(f"pid {pid} " in e.summary for f in found.values() for e in f.evidence), found
