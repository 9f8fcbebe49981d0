"""`ddx drill clean` as root against planted and forged manifests (issue 16, security item 2).

The drill root (/tmp/ddx-drill by default) is a folder any user can create first.
A manifest planted there by `nobody` made root kill the process group it named,
and could make it unmount file systems and delete cgroups and namespaces. Each
test plants the manifest for real (as user nobody, in a forked child), starts a
real process for it to name, and checks that clean refuses with a clear message
and leaves everything alive and mounted. Drill root and state folder are the
test's own (DDX_DRILL_ROOT, DDX_DRILL_STATE): the host's are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile import run_bounded

from ddx.drill import sandbox as sbmod

pytestmark = [pytest.mark.root]

NOBODY = pwd.getpwnam("nobody")
DEAD_PID = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process can have it


@pytest.fixture
def base() -> Iterator[Path]:
    """A folder like /tmp: anyone may create entries in it (sticky)."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    b = Path(tempfile.mkdtemp(prefix="ddx-h16-drill-"))
    os.chmod(b, 0o1777)
    try:
        yield b
    finally:
        shutil.rmtree(b, ignore_errors=True)


@pytest.fixture
def victim() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts `sleep` as root in a session (and process group) of its own; all killed at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["sleep", "300"], start_new_session=True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _as_nobody(action: Callable[[], None]) -> None:
    """Run ``action`` in a forked child as user nobody: what it creates is nobody's."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "planting as nobody failed"


def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def _alive(p: subprocess.Popen[bytes]) -> bool:
    return p.poll() is None


def _mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def _old_style(manifest: dict) -> str:  # type: ignore[type-arg]
    """The manifest as earlier versions wrote it into the sandbox folder."""
    return json.dumps({k: v for k, v in manifest.items() if k not in ("folder", "leader_starts")})


def _clean(root: Path, state: Path, *args: str):  # type: ignore[no-untyped-def]
    r = run_bounded("drill", "clean", *args, env={"DDX_DRILL_ROOT": str(root), "DDX_DRILL_STATE": str(state)})
    assert not r.hung and "Traceback" not in r.stderr, r.stderr
    return r


def test_a_drill_root_planted_by_another_user_is_refused(base: Path, victim, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root, state = base / "drills", base / "state"
    target = victim()

    def plant() -> None:
        os.mkdir(root, 0o755)
        os.mkdir(root / "evil-aaaaaaaa", 0o755)
        (root / "evil-aaaaaaaa" / "manifest.json").write_text(json.dumps(
            {"owner": DEAD_PID, "created": time.time(), "label": "evil", "pgroups": [target.pid],
             "mounts": [], "cgroups": [], "netns": []}))

    _as_nobody(plant)
    assert root.stat().st_uid == NOBODY.pw_uid
    for args in ((), ("--all",), ("evil-aaaaaaaa",)):
        r = _clean(root, state, *args)
        assert _alive(target), "clean killed the process group a planted manifest named"
        assert r.returncode == 2 and r.one_clean_line(), r.stderr
        assert f"{root} belongs to uid {NOBODY.pw_uid}" in r.stderr and "refusing" in r.stderr
    monkeypatch.setattr(sbmod, "DRILL_ROOT", root)
    monkeypatch.setattr(sbmod, "STATE_ROOT", state)
    with pytest.raises(sbmod.SandboxError, match=f"belongs to uid {NOBODY.pw_uid}"):
        sbmod.Sandbox("unit")
    assert sorted(p.name for p in root.iterdir()) == ["evil-aaaaaaaa"]


def test_a_state_folder_planted_by_another_user_is_refused(base: Path, victim) -> None:  # type: ignore[no-untyped-def]
    root, state = base / "drills", base / "state"
    root.mkdir(mode=0o755)
    target = victim()
    start = _start_time(target.pid)  # anyone can read it: a record may even carry the right one

    def plant() -> None:
        os.mkdir(state, 0o700)
        record = state / "evil-bbbbbbbb.json"
        record.write_text(json.dumps(
            {"owner": DEAD_PID, "created": time.time(), "label": "evil", "folder": str(root / "evil-bbbbbbbb"),
             "pgroups": [target.pid], "leader_starts": {str(target.pid): start}, "mounts": [], "cgroups": [],
             "netns": []}))
        os.chmod(record, 0o600)

    _as_nobody(plant)
    r = _clean(root, state, "--all")
    assert _alive(target)
    assert r.returncode == 2 and r.one_clean_line(), r.stderr
    assert f"{state} belongs to uid {NOBODY.pw_uid}" in r.stderr


def test_a_folder_with_no_record_is_left_alone(base: Path, victim) -> None:  # type: ignore[no-untyped-def]
    """A manifest in the drill root itself (where earlier versions kept it) is never trusted."""
    root, state = base / "drills", base / "state"
    root.mkdir(mode=0o755)
    target = victim()
    folder = root / "legacy-dddddddd"
    folder.mkdir()
    (folder / "manifest.json").write_text(_old_style(
        {"owner": DEAD_PID, "created": time.time(), "label": "legacy", "pgroups": [target.pid], "mounts": [],
         "cgroups": [], "netns": []}))
    r = _clean(root, state)
    assert _alive(target) and folder.is_dir()
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"{folder}: not recorded in {state}" in r.stdout and "left alone" in r.stdout


def test_clean_acts_only_on_what_a_sandbox_can_prove_it_made(base: Path, victim) -> None:  # type: ignore[no-untyped-def]
    """A record in the caller's own state folder (stale, or written by a bug) naming
    things the sandbox did not make: other processes, a mount outside its folder, a
    mount inside it that is not its tmpfs, another drill's cgroup and namespace."""
    root, state = base / "drills", base / "state"
    root.mkdir(mode=0o755)
    state.mkdir(mode=0o700)
    folder = root / "forged-cccccccc"
    folder.mkdir(mode=0o755)
    unproven, reused = victim(), victim()
    outside, inside = base / "outside", folder / "data"
    other = f"ddx-drill-h16other-{secrets.token_hex(3)}"
    cgroup = sbmod._cgroup_dirs(other)[0]
    netns = f"{other}-net"
    made: list[str] = []
    try:
        for where in (outside, inside):
            where.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "h16-foreign", str(where)], check=True, timeout=10)
            made.append(str(where))
            (where / "keep").write_text("kept\n")
        if cgroup is not None:
            cgroup.mkdir()
        has_ip = shutil.which("ip") is not None
        if has_ip:
            subprocess.run(["ip", "netns", "add", netns], check=True, timeout=10)
        manifest = {"owner": DEAD_PID, "created": time.time(), "label": "forged", "folder": str(folder),
                    "pgroups": [unproven.pid, reused.pid],
                    "leader_starts": {str(reused.pid): _start_time(reused.pid) + 1},  # another process's
                    "mounts": [str(outside), str(inside)], "cgroups": [str(cgroup)] if cgroup else [],
                    "netns": [netns] if has_ip else []}
        record = state / f"{folder.name}.json"
        record.write_text(json.dumps(manifest))
        os.chmod(record, 0o600)
        (folder / "manifest.json").write_text(_old_style(manifest))

        r = _clean(root, state)
        assert r.returncode == 1, r.stdout + r.stderr
        assert _alive(unproven) and _alive(reused)
        assert f"process group {unproven.pid}: no start time was recorded" in r.stdout
        assert f"mount {outside} is not inside the sandbox folder" in r.stdout
        assert f"mount {inside} is not the tmpfs the sandbox made" in r.stdout
        for where in (outside, inside):
            assert _mounted(where) and (where / "keep").read_text() == "kept\n"
        assert folder.is_dir() and record.exists()
        if cgroup is not None:
            assert cgroup.is_dir() and f"cgroup {cgroup} is not one the sandbox made" in r.stdout
        if has_ip:
            names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
            assert netns in names and f"network namespace {netns} is not one the sandbox made" in r.stdout
    finally:
        for where in reversed(made):
            subprocess.run(["umount", where], timeout=10)
        if cgroup is not None and cgroup.exists():
            cgroup.rmdir()
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=10)


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process that runs: not gone, not a zombie waiting for init."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


KEEPER = """
import sys
from ddx.drill.sandbox import Sandbox
sb = Sandbox("kept")
sb.mount_tmpfs(sb.dir / "data", "1m")
p = sb.spawn(["sleep", "300"])
assert sb.close(keep=True) == []
print(sb.dir, p.pid, flush=True)
"""


def test_a_kept_sandbox_is_still_cleaned(base: Path) -> None:
    """The legitimate case: a drill kept its sandbox (--keep) and ended; `ddx drill clean`
    removes the processes, mount, cgroups, folder and record it made."""
    root, state = base / "drills", base / "state"
    env = {**os.environ, "DDX_DRILL_ROOT": str(root), "DDX_DRILL_STATE": str(state)}
    r = subprocess.run([sys.executable, "-c", KEEPER], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    folder, pid = Path(r.stdout.split()[0]), int(r.stdout.split()[1])
    record = state / f"{folder.name}.json"
    cgroups = [c for c in sbmod._cgroup_dirs(f"ddx-drill-{folder.name}") if c is not None]
    try:
        manifest = json.loads(record.read_text())
        assert state.stat().st_mode & 0o777 == 0o700 and record.stat().st_mode & 0o777 == 0o600
        assert manifest["leader_starts"] == {str(pid): _start_time(pid)}
        assert _mounted(folder / "data") and {str(c) for c in cgroups} == set(manifest["cgroups"])
        out = _clean(root, state)
        assert out.returncode == 0 and f"removed {folder}" in out.stdout, out.stdout + out.stderr
        assert not _running(pid)
        assert not _mounted(folder / "data") and not folder.exists() and not record.exists()
        assert not any(c.exists() for c in cgroups)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        if _mounted(folder / "data"):
            subprocess.run(["umount", str(folder / "data")], timeout=10)
        for c in cgroups:
            for _ in range(50):  # busy until the killed process is gone
                with contextlib.suppress(OSError):
                    c.rmdir()
                if not c.exists():
                    break
                time.sleep(0.1)


def test_a_group_of_zombies_is_gone() -> None:
    """A killed group whose members wait, as zombies, for a parent to reap them has nothing
    left to kill: the teardown does not report it as alive (nor leave the sandbox behind)."""
    import subprocess
    import time

    from ddx.drill.sandbox import _group_alive

    p = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert _group_alive(p.pid)
        os.kill(p.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _running(p.pid):
            time.sleep(0.02)
        os.killpg(p.pid, 0)  # the zombie still holds its group in the process table...
        assert not _group_alive(p.pid)  # ...but nothing in it runs
    finally:
        p.kill()
        p.wait()
    assert not _group_alive(p.pid)
