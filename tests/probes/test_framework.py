"""The probe runner and the live host: concurrency, timeouts, failures,
permissions, abandoned calls."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.host import LiveHost, call_timeout, parallel_map, probe_scope
from ddx.model import Evidence, State
from ddx.probes import PROBE_MODULES, import_probe_modules, load_probes
from ddx.probes.base import NotApplicable, ProbeContext, probe, registry
from ddx.probes.runner import run_probes


@pytest.fixture
def make_probe() -> Iterator:
    """Register throw-away probes under unique names; unregister afterwards."""
    names: list[str] = []

    def make(func, findings=("disk.space_low",), timeout=2.0, options=None) -> str:  # type: ignore[no-untyped-def]
        name = f"t_{uuid.uuid4().hex[:8]}"
        probe(name, findings=tuple(findings), timeout=timeout, options=options)(func)
        names.append(name)
        return name

    yield make
    for n in names:
        registry.pop(n, None)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event hung probes wait on; set at teardown so their threads end."""
    ev = threading.Event()
    yield ev
    ev.set()


def _present(ctx: ProbeContext) -> list:
    return [ctx.finding("disk.space_low", True, Evidence("test", "seen"))]


def test_probes_run_concurrently(make_probe) -> None:  # type: ignore[no-untyped-def]
    # Each probe waits for the other at a barrier: run one after the other,
    # the barrier breaks and both fail.
    barrier = threading.Barrier(2, timeout=3)

    def meet(ctx: ProbeContext) -> list:
        barrier.wait()
        return _present(ctx)

    a, b = make_probe(meet), make_probe(meet)
    c = run_probes(LiveHost(), Config(), only=[a, b], window=0, timeout=5)
    assert [r.status for r in c.results] == ["ok", "ok"], [r.to_dict() for r in c.results]
    assert [f.id for f in c.findings] == ["disk.space_low"]
    assert c.findings[0].state is State.PRESENT


def test_probe_past_its_timeout_is_reported_and_run_returns(make_probe, release) -> None:  # type: ignore[no-untyped-def]
    def hang(ctx: ProbeContext) -> list:
        release.wait(60)
        return _present(ctx)

    slow = make_probe(hang, timeout=0.3)
    fast = make_probe(_present, findings=("disk.space_exhausted", "disk.space_low"))
    t0 = time.monotonic()
    c = run_probes(LiveHost(), Config(), only=[slow, fast], window=0, budget=5)
    assert time.monotonic() - t0 < 5  # within the budget, not the hung probe's 60 s
    by = {r.name: r for r in c.results}
    assert by[slow].status == "timeout" and "0.3" in by[slow].reason
    assert by[fast].status == "ok"
    assert [f.source for f in c.findings] == [f"probe:{fast}"]


def test_budget_bounds_the_whole_run(make_probe, release) -> None:  # type: ignore[no-untyped-def]
    def hang(ctx: ProbeContext) -> list:
        release.wait(60)
        return []

    names = [make_probe(hang, timeout=30) for _ in range(3)]
    c = run_probes(LiveHost(), Config(), only=names, window=0, budget=0.4)
    assert c.seconds < 5
    assert {r.status for r in c.results} == {"timeout"}
    assert all("budget" in r.reason for r in c.results)


def test_failing_probe_does_not_hide_others(make_probe) -> None:  # type: ignore[no-untyped-def]
    def boom(ctx: ProbeContext) -> list:
        raise RuntimeError("parser exploded on line 3")

    bad, good = make_probe(boom), make_probe(_present)
    c = run_probes(LiveHost(), Config(), only=[bad, good], window=0)
    by = {r.name: r for r in c.results}
    assert by[bad].status == "failed"
    assert "RuntimeError" in by[bad].reason and "line 3" in by[bad].reason
    assert by[good].status == "ok"
    assert [f.id for f in c.findings] == ["disk.space_low"]
    assert c.failed() == (by[bad],)


def test_permission_denied_names_the_path(make_probe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # /proc/sys files without read permission refuse even root.
    path = "/proc/sys/vm/compact_memory"
    if not os.path.exists(path):
        pytest.skip("no write-only sysctl to read here")

    def read(ctx: ProbeContext) -> list:
        ctx.host.read_text(path)
        return _present(ctx)

    name = make_probe(read)
    c = run_probes(LiveHost(), Config(), only=[name], window=0)
    r = c.results[0]
    assert r.status == "denied", r.to_dict()
    assert path in r.reason
    assert c.findings == ()


def test_not_applicable_is_not_a_failure(make_probe) -> None:  # type: ignore[no-untyped-def]
    def na(ctx: ProbeContext) -> list:
        raise NotApplicable("no nginx on this host")

    name = make_probe(na)
    c = run_probes(LiveHost(), Config(), only=[name], window=0)
    assert c.results[0].status == "not_applicable"
    assert c.results[0].reason == "no nginx on this host"
    assert c.failed() == ()


def test_undeclared_finding_is_dropped_with_a_reason(make_probe) -> None:  # type: ignore[no-untyped-def]
    def sloppy(ctx: ProbeContext) -> list:
        return [*_present(ctx), ctx.finding("cpu.saturated", True)]

    name = make_probe(sloppy)
    c = run_probes(LiveHost(), Config(), only=[name], window=0)
    assert [f.id for f in c.findings] == ["disk.space_low"]
    assert "cpu.saturated" in c.results[0].reason


def test_probe_timeout_from_host_call_on_fifo_is_abandoned(make_probe, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def read(ctx: ProbeContext) -> list:
        ctx.host.read_text(str(fifo))  # no writer: open() blocks forever
        return _present(ctx)

    name = make_probe(read, timeout=0.5)
    try:
        c = run_probes(LiveHost(default_timeout=0.3), Config(), only=[name], window=0)
        r = c.results[0]
        assert r.status == "timeout", r.to_dict()
        assert str(fifo) in r.reason
    finally:
        _release_readers(fifo)


def _release_readers(fifo: Path) -> None:
    """Open and close the write end while a reader waits, so an abandoned
    reader gets EOF and its worker thread ends."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: no reader left
            return
        time.sleep(0.01)


def test_results_are_sorted_and_deterministic(make_probe) -> None:  # type: ignore[no-untyped-def]
    names = [make_probe(_present) for _ in range(5)]
    c1 = run_probes(LiveHost(), Config(), only=names, window=0)
    c2 = run_probes(LiveHost(), Config(), only=list(reversed(names)), window=0)
    assert [r.name for r in c1.results] == sorted(names)
    assert [f.to_dict() for f in c1.findings] == [f.to_dict() for f in c2.findings]


def test_unknown_probe_in_only_is_a_usage_error() -> None:
    from ddx.errors import UsageError

    load_probes()
    with pytest.raises(UsageError, match="unknown probe 'dsk'.*disk"):
        run_probes(LiveHost(), Config(), only=["dsk"])


def test_disabled_probe_does_not_run(make_probe) -> None:  # type: ignore[no-untyped-def]
    ran = []

    def mark(ctx: ProbeContext) -> list:
        ran.append(1)
        return []

    name = make_probe(mark)
    c = run_probes(LiveHost(), Config(path="x.toml", disable=(name,)), window=0, budget=8)
    assert not ran
    assert {r.name: r.status for r in c.results}[name] == "not_applicable"


def test_probe_options_and_window_reach_the_probe(make_probe) -> None:  # type: ignore[no-untyped-def]
    seen = {}

    def look(ctx: ProbeContext) -> list:
        seen.update(limit=ctx.opt("limit"), window=ctx.window, name=ctx.probe_name)
        return []

    name = make_probe(look, options={"limit": 5})
    run_probes(LiveHost(), Config(probes={name: {"limit": 7}}), only=[name], window=0.25)
    assert seen == {"limit": 7, "window": 0.25, "name": name}


# --- module loading ------------------------------------------------------------


def test_probe_modules_list_includes_all_areas() -> None:
    for name in ("disk", "memory", "cpu", "procs", "fds", "kernel", "net", "clock", "changes", "logfiles"):
        assert any(m.rpartition(".")[2] == name for m in PROBE_MODULES)


def test_missing_and_broken_modules_reported(tmp_path: Path) -> None:
    import ddx.probes

    (tmp_path / "t_broken_mod.py").write_text("raise RuntimeError('half-written probe')\n")
    (tmp_path / "t_bad_dep.py").write_text("import ddx_no_such_dependency_xyz\n")
    ddx.probes.__path__.append(str(tmp_path))
    try:
        broken = import_probe_modules(["t_missing_mod", "t_broken_mod", "t_bad_dep"])
    finally:
        ddx.probes.__path__.remove(str(tmp_path))
        for m in ("ddx.probes.t_broken_mod", "ddx.probes.t_bad_dep"):
            sys.modules.pop(m, None)
    assert "No module named" in broken["t_missing_mod"]  # a missing module is a broken install, never skipped
    assert "half-written probe" in broken["t_broken_mod"]
    assert "ddx_no_such_dependency_xyz" in broken["t_bad_dep"]


# --- LiveHost ----------------------------------------------------------------------


def test_live_host_root_reads_a_fixture_tree(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "loadavg").write_text("0.50 0.40 0.30 1/100 42\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "hostname").write_text("fixture-host\n")
    h = LiveHost(root=str(tmp_path))
    assert h.name == "fixture-host"
    assert h.read_text("/proc/loadavg").startswith("0.50")
    assert h.listdir("/proc") == ["loadavg"]
    assert h.stat("/proc/loadavg").size == len("0.50 0.40 0.30 1/100 42\n")
    with pytest.raises(FileNotFoundError):
        h.read_text("/proc/meminfo")


def test_read_text_head_and_tail_of_a_huge_sparse_file(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    with open(big, "wb") as fh:
        fh.write(b"first line\n")
        fh.seek(10 << 30)  # 10 GB, sparse: costs nothing on disk
        fh.write(b"last line\n")
    h = LiveHost()
    assert h.read_text(str(big), max_bytes=5) == "first"
    assert h.read_text(str(big), max_bytes=10, tail=True) == "last line\n"


def test_read_text_tail_of_a_pseudo_file() -> None:
    h = LiveHost()
    # Pseudo files report size 0: the tail comes from streaming, not seeking.
    full = h.read_text("/proc/filesystems")
    assert os.stat("/proc/filesystems").st_size == 0 and len(full) > 64
    tail = h.read_text("/proc/filesystems", max_bytes=64, tail=True)
    assert tail == full.encode()[-64:].decode()


def test_run_kills_the_whole_process_group_on_timeout(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    # A shell whose child ignores nothing and would sleep for minutes.
    argv = ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"]
    h = LiveHost()
    with pytest.raises(TimeoutError, match="killed"):
        h.run(argv, timeout=0.5)
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_run_reports_output_and_missing_program() -> None:
    h = LiveHost()
    r = h.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    with pytest.raises(FileNotFoundError):
        h.run(["ddx-no-such-program-xyz"])


def test_call_timeout_and_probe_deadline_bound_host_calls(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    h = LiveHost(default_timeout=30)
    try:
        with call_timeout(0.2), pytest.raises(TimeoutError, match="abandoned"):
            h.read_text(str(fifo))
        with probe_scope("x", deadline=time.monotonic() - 1), pytest.raises(TimeoutError, match="deadline"):
            h.read_text("/proc/loadavg")
    finally:
        _release_readers(fifo)


def test_parallel_map_gives_up_on_hung_items_only(tmp_path: Path) -> None:
    gate = threading.Event()

    def work(x: int) -> int:
        if x == 2:
            gate.wait(30)
        return x * 10

    try:
        out = parallel_map(work, [1, 2, 3], timeout=0.3)
    finally:
        gate.set()
    assert out[0] == 10 and out[2] == 30
    assert isinstance(out[1], TimeoutError)


def test_whole_run_on_this_host_knows_its_probes() -> None:
    """Every registered probe gives a result; none crashes the run."""
    from ddx.config import load_config

    with tempfile.TemporaryDirectory() as d:
        cwd = os.getcwd()
        os.chdir(d)  # no ./ddx.toml from the working tree
        try:
            c = run_probes(LiveHost(), load_config(None), window=0.2)
        finally:
            os.chdir(cwd)
    names = {r.name for r in c.results}
    assert {"cpu", "memory", "disk"} <= names
    assert {r.name: r.status for r in c.results}["disk"] == "ok"


def test_notes_of_a_probe_that_worked_reach_the_result() -> None:
    """A probe that succeeds but could not do everything says so with ctx.note()."""
    from ddx.config import Config
    from ddx.model import Evidence
    from ddx.probes.base import probe, registry
    from ddx.probes.runner import run_probes

    name = "test-notes"
    registry.pop(name, None)

    @probe(name, findings=("svc.down",))
    def _p(ctx: ProbeContext):  # type: ignore[no-untyped-def]
        ctx.note("could not probe redis://:***@10.0.0.9:6379: timed out")
        return [ctx.finding("svc.down", False, Evidence("x", "answered"))]

    try:
        c = run_probes(LiveHost(), Config(), only=[name])
        (r,) = c.results
        assert r.status == "ok" and "could not probe redis://:***@10.0.0.9:6379" in r.reason
        assert [f.id for f in c.findings] == ["svc.down"]
    finally:
        registry.pop(name, None)
