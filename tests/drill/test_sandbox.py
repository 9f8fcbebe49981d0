"""The drill's sandbox leaves nothing behind: after a normal end, a failing scenario,
SIGTERM in the middle of a run, and a drill process killed outright (then `ddx drill clean`)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.drill import sandbox as sbmod
from ddx.drill.runner import run_scenario
from ddx.drill.sandbox import Sandbox, SandboxError
from ddx.drill.scenarios import Scenario
from ddx.drill.stack import Stack

pytestmark = [pytest.mark.root]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def drill_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A drill root of the test's own (services running as postgres and nobody must reach it,
    so not under pytest's private tmp_path)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    base = Path(tempfile.mkdtemp(prefix="ddx-drill-test-"))
    os.chmod(base, 0o755)
    root = base / "drills"
    monkeypatch.setattr(sbmod, "DRILL_ROOT", root)
    try:
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of this test process counts as gone
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


ORPHAN = (
    "import os, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"  # leaves the process group: only the cgroup still knows it
    "    if os.fork() == 0:\n"
    "        open(os.environ['PIDFILE'], 'w').write(str(os.getpid())); time.sleep(600)\n"
    "    os._exit(0)\n"
    "time.sleep(600)\n"
)


def _assert_gone(manifest: dict, folder: Path, pids: list[int]) -> None:
    for m in manifest["mounts"]:
        assert not _mounted(m), m
    for c in manifest["cgroups"]:
        assert not Path(c).exists(), c
    for pid in pids:
        assert not _alive(pid), pid
    assert not folder.exists()


def test_close_removes_processes_orphans_mounts_cgroups_and_files(drill_root: Path) -> None:
    sb = Sandbox("unit")
    mnt = sb.mount_tmpfs(sb.dir / "data", "1m")
    (mnt / "f").write_text("x")
    pidfile = sb.dir / "orphan.pid"
    p = sb.spawn([sys.executable, "-c", ORPHAN], env={"PIDFILE": str(pidfile)})
    deadline = time.monotonic() + 10
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the orphan never started"
        time.sleep(0.05)
    orphan = int(pidfile.read_text())
    assert os.getpgid(orphan) != p.pid  # escaped the process group
    if sb.cgroup is not None:
        assert orphan in sb.pids()
    manifest = json.loads((sb.dir / "manifest.json").read_text())
    assert manifest["mounts"] == [str(mnt)] and manifest["pgroups"] == [p.pid]
    problems = sb.close()
    assert problems == []
    _assert_gone(manifest, sb.dir, [p.pid, orphan] if sb.cgroup is not None else [p.pid])


def test_mounts_only_inside_the_sandbox(drill_root: Path, tmp_path: Path) -> None:
    with Sandbox("unit") as sb, pytest.raises(SandboxError, match="outside the sandbox"):
        sb.mount_tmpfs(tmp_path / "elsewhere", "1m")


def test_a_scenario_that_raises_is_reported_and_cleaned_up(drill_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def start(self: Stack, timeout: float = 60.0) -> Stack:  # no services: this test is about clean-up
        self.sb.mount_tmpfs(self.cache_dir, "1m")
        seen["sandbox"] = self.sb.dir
        seen["manifest"] = json.loads((self.sb.dir / "manifest.json").read_text())
        return self

    def inject(stack: Stack) -> None:
        raise RuntimeError("the fault could not be made")

    monkeypatch.setattr(Stack, "start", start)
    res = run_scenario(Scenario("broken", "disk-full", "raises", inject), budget=1)
    assert "RuntimeError: the fault could not be made" in res.error
    assert not res.passed
    _assert_gone(seen["manifest"], seen["sandbox"], [])  # type: ignore[arg-type]


def test_refused_scenarios_say_why_and_build_nothing(drill_root: Path) -> None:
    host = Scenario("kmsg", "hardware-fault", "writes the kernel log", lambda s: None,
                    host_effects="writes to the kernel log")
    res = run_scenario(host)
    assert res.error.startswith("not run: it writes to the kernel log; allow it with --allow-host-effects")
    needy = Scenario("needy", "disk-full", "needs a tool", lambda s: None, needs=lambda: ["frobnicate (apt-get install frob)"])
    res = run_scenario(needy)
    assert res.error == "not run: missing frobnicate (apt-get install frob)"
    assert not drill_root.exists() or not any(drill_root.iterdir())


CRASHER = """
import os, sys, time
from pathlib import Path
from ddx.drill import sandbox as sbmod
sbmod.DRILL_ROOT = Path(sys.argv[1])
sb = sbmod.Sandbox("crash")
sb.mount_tmpfs(sb.dir / "data", "1m")
sb.spawn(["sleep", "600"])
print(sb.dir, flush=True)
time.sleep(600)
"""


def test_a_killed_drill_is_cleaned_by_ddx_drill_clean(drill_root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DDX_DRILL_ROOT": str(drill_root)}
    p = subprocess.Popen([sys.executable, "-c", CRASHER, str(drill_root)], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None
    folder = Path(p.stdout.readline().strip())
    manifest = json.loads((folder / "manifest.json").read_text())
    # while the drill runs, clean leaves it alone
    r = subprocess.run([sys.executable, "-m", "ddx", "drill", "clean"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0 and folder.exists() and _mounted(manifest["mounts"][0]), r.stdout + r.stderr
    p.kill()  # SIGKILL: no finally runs
    p.wait()
    assert folder.exists() and _mounted(manifest["mounts"][0])
    r = subprocess.run([sys.executable, "-m", "ddx", "drill", "clean"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"removed {folder}" in r.stdout
    _assert_gone(manifest, folder, manifest["pgroups"])


@pytest.mark.slow
def test_sigterm_during_a_run_removes_the_stack(drill_root: Path, drill_ready: None) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "DDX_DRILL_ROOT": str(drill_root)}
    p = subprocess.Popen([sys.executable, "-m", "ddx", "drill", "run", "healthy"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    manifest: dict = {}
    folder = None
    while time.monotonic() < deadline:  # until nginx, the last service, is up
        found = list(drill_root.glob("healthy-*/manifest.json")) if drill_root.exists() else []
        if found:
            folder = found[0].parent
            manifest = json.loads(found[0].read_text())
            if len(manifest["pgroups"]) >= 4:
                break
        time.sleep(0.1)
    if folder is None or len(manifest["pgroups"]) < 4:
        p.kill()
        raise AssertionError(f"the stack never started: {p.communicate()[1]}")
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "interrupted; the sandbox was removed" in err
    _assert_gone(manifest, folder, manifest["pgroups"])


def test_clean_names_one_kept_sandbox_and_leaves_the_others(drill_root: Path) -> None:
    kept = []
    for _ in range(2):
        sb = Sandbox("kept")
        sb.mount_tmpfs(sb.dir / "data", "1m")
        assert sb.close(keep=True) == []
        kept.append(sb.dir)
    a, b = kept
    with pytest.raises(SandboxError, match="not a drill sandbox"):
        sbmod.clean_stale(only=["no-such-sandbox"])
    done = sbmod.clean_stale(only=[a.name])
    assert [d for d, _p in done] == [a]
    assert not a.exists() and b.exists() and _mounted(str(b / "data"))
    done = sbmod.clean_stale(only=[str(b)])
    assert [d for d, _p in done] == [b] and not b.exists()


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice() -> None:
    """Outgoing connections take their source ports from the ephemeral range: a port
    picked there can be taken by one before the server meant for it binds it."""
    import socket

    from ddx.drill.sandbox import _ephemeral_range, free_port

    lo, _ = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    if lo > 2024:
        assert all(p < lo for p in ports), ports
    for p in ports[:5]:  # free right now: a server can listen there
        with socket.socket() as s:
            s.bind(("127.0.0.1", p))
            s.listen(1)
