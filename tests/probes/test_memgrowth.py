"""The memory-growth probe: a process growing over the window, a pool whose workers grow with age."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ddx.config import Config
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.system.memgrowth import growing_now, grown_with_age, rank_correlation

MB = 1 << 20


def test_rank_correlation() -> None:
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert rank_correlation([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    assert rank_correlation([1, 2, 3], [5, 5, 5]) == 0.0  # no spread
    assert rank_correlation([1, 2], [1, 2]) == 0.0  # too few


def test_growing_now_needs_a_rise_at_every_read_and_a_real_rate() -> None:
    steady = {1: [(0.0, 100 * MB), (0.5, 130 * MB), (1.0, 160 * MB)]}
    assert [g.pid for g in growing_now(steady, {}, 1 * MB, 4 * MB)] == [1]
    churn = {2: [(0.0, 100 * MB), (0.5, 140 * MB), (1.0, 120 * MB)]}  # a runtime allocating and freeing
    slow = {3: [(0.0, 100 * MB), (0.5, 100 * MB + 4096), (1.0, 100 * MB + 8192)]}
    assert growing_now({**churn, **slow}, {}, 1 * MB, 4 * MB) == []


def test_workers_that_grow_with_age_against_a_healthy_pool() -> None:
    leaky = {"app": [(3600.0, 400 * MB, 11), (1800.0, 260 * MB, 12), (600.0, 150 * MB, 13), (60.0, 90 * MB, 14)]}
    healthy = {"web": [(3600.0, 95 * MB, 21), (1800.0, 101 * MB, 22), (600.0, 98 * MB, 23), (60.0, 96 * MB, 24)]}
    same_age = {"new": [(60.0, 400 * MB, 31), (59.0, 200 * MB, 32), (58.0, 100 * MB, 33)]}
    found = grown_with_age({**leaky, **healthy, **same_age}, 0.8, 1.5, 64 * MB)
    assert [p.title for p in found] == ["app"]
    assert found[0].members[-1] == (3600.0, 400 * MB, 11)


GROWER = """
import sys, time
chunks = []
print("ready", flush=True)
for _ in range(200):
    chunks.append(bytearray(2 << 20))  # 2 MB, touched: resident
    time.sleep(0.05)
"""

POOL = """
import os, sys, time
# workers forked one after another, each older one bigger: a leaky pool
kids = []
for mb in (48, 36, 24, 12):
    pid = os.fork()
    if pid == 0:
        data = bytearray(mb << 20)
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
    time.sleep(0.6)
print("ready", flush=True)
time.sleep(60)
"""


@contextmanager
def python(code: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield proc
    finally:
        try:
            os.killpg(proc.pid, 9)
        except ProcessLookupError:
            pass
        proc.wait(5)


def probe(options: dict[str, object], window: float = 1.0):  # type: ignore[no-untyped-def]
    col = run_probes(LiveHost(), Config(probes={"memgrowth": options}), only=["memgrowth"], window=window)
    (res,) = col.results
    return res, {f.id: f for f in col.findings}


def test_a_long_running_process_growing_during_the_window_is_a_leak_and_a_young_one_is_not() -> None:
    with python(GROWER) as proc:
        time.sleep(0.2)
        res, found = probe({"min_age_s": 0.0})  # as if it had run for hours
        assert res.status == "ok", res.reason
        f = found["memory.process_rss_growing"]
        assert f.state is State.PRESENT
        assert any(f"pid {proc.pid} " in e.summary and "rising at every read" in e.summary for e in f.evidence), f.evidence
        # with the default, a process seconds old that balloons is a workload, not a leak
        res, found = probe({})
        assert res.status == "ok" and not any(f"pid {proc.pid} " in e.summary for f in found.values()
                                              for e in f.evidence)


def test_a_pool_whose_older_workers_are_larger_is_seen_and_a_quiet_host_says_nothing() -> None:
    with python(POOL) as proc:
        res, found = probe({"age_min_mb": 32.0}, window=0.3)
    assert res.status == "ok", res.reason
    f = found["memory.process_rss_growing"]
    assert f.state is State.PRESENT
    assert any(f"ppid {proc.pid}" in e.summary and "the older the larger" in e.summary for e in f.evidence), f.evidence
    # nothing grows: no finding, never "absent" (a slow leak does not show in seconds)
    res, found = probe({"age_min_mb": 1e6}, window=0.3)
    assert res.status == "ok" and "memory.process_rss_growing" not in found, found
