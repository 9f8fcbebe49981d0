"""The sandbox of one drill: everything it creates, written down so it can all be removed.

A drill breaks things for real, so its clean-up cannot depend on the drill
ending well. Every resource is recorded in ``manifest.json`` in the sandbox
folder *before* it is created: process groups, tmpfs mounts, cgroups, network
namespaces. ``close()`` removes them in reverse order and is called from a
``finally`` (Ctrl-C and SIGTERM become exceptions, see ``signals_as_exceptions``).
If the drill process itself dies (SIGKILL, a crash of the interpreter),
``ddx drill clean`` reads the manifests of sandboxes whose owner is gone and
finishes the job.

Nothing outside the sandbox is touched: mounts are made on folders inside it,
cgroups are new children named after it, ports are free ones picked at start,
and processes are found through the sandbox's own cgroup (which also catches
the orphans a scenario leaves behind on purpose).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddx.errors import DdxError

__all__ = [
    "DRILL_ROOT",
    "Sandbox",
    "SandboxError",
    "clean_stale",
    "free_port",
    "signals_as_exceptions",
]

DRILL_ROOT = Path(os.environ.get("DDX_DRILL_ROOT", "/tmp/ddx-drill"))
CGROUP_BASE = Path("/sys/fs/cgroup")


class SandboxError(DdxError):
    """A sandbox could not be built or a precondition is missing."""


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody uses right now, below the kernel's ephemeral range:
    a port the kernel hands out for port 0 is one it also gives to outgoing connections,
    which may take it (as their source port) before the server that was meant to listen
    there binds it. Never the same port twice in one process."""
    lo, _ = _ephemeral_range()
    first = max(1024, lo - 12000)
    rng = random.SystemRandom()
    for _ in range(200 if lo - first >= 100 else 0):
        port = rng.randrange(first, lo)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:  # no room below the ephemeral range: the kernel's pick
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    _HANDED_OUT.add(port)
    return port


@dataclass
class Manifest:
    owner: int
    created: float
    label: str
    pgroups: list[int] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)
    cgroups: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cgroup_dirs(name: str) -> tuple[Path | None, Path | None]:
    """(tracking cgroup, memory cgroup) to create for ``name``.

    cgroup v2 (unified, or the ``unified`` hierarchy of a hybrid host) tracks
    membership; the memory limit lives in v2 when its memory controller is
    enabled at the root, else in the v1 memory hierarchy."""
    if (CGROUP_BASE / "cgroup.controllers").exists():  # pure v2
        ctrl = (CGROUP_BASE / "cgroup.subtree_control").read_text().split()
        track = CGROUP_BASE / name
        return track, track if "memory" in ctrl else None
    track = CGROUP_BASE / "unified" / name if (CGROUP_BASE / "unified" / "cgroup.procs").exists() else None
    mem = CGROUP_BASE / "memory" / name if (CGROUP_BASE / "memory" / "cgroup.procs").exists() else None
    return track, mem


class Sandbox:
    """A folder, and the processes, mounts and cgroups made for one drill."""

    def __init__(self, label: str) -> None:
        if os.geteuid() != 0:
            raise SandboxError("ddx drill needs root: it mounts tmpfs, creates cgroups and runs services as other users")
        DRILL_ROOT.mkdir(parents=True, exist_ok=True)
        os.chmod(DRILL_ROOT, 0o755)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=DRILL_ROOT))
        os.chmod(self.dir, 0o755)  # services running as other users reach their folders below
        self.name = f"ddx-drill-{self.dir.name}"
        self.manifest = Manifest(owner=os.getpid(), created=time.time(), label=label)
        self._procs: list[subprocess.Popen[bytes]] = []
        self._save()
        track, mem = _cgroup_dirs(self.name)
        self.cgroup = self._make_cgroup(track) if track else None
        self.memory_cgroup = (self._make_cgroup(mem) if mem != track else self.cgroup) if mem else None
        self.closed = False

    # --- records -----------------------------------------------------------------------

    def _save(self) -> None:
        tmp = self.dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(self.manifest.to_dict(), indent=1))
        tmp.replace(self.dir / "manifest.json")

    def _make_cgroup(self, path: Path) -> Path | None:
        self.manifest.cgroups.append(str(path))
        self._save()
        try:
            path.mkdir()
        except OSError:
            self.manifest.cgroups.remove(str(path))
            self._save()
            return None
        return path

    def path(self, *parts: str, mode: int = 0o755, owner: str | None = None) -> Path:
        """A folder inside the sandbox (created), optionally owned by ``owner``."""
        p = self.dir.joinpath(*parts)
        p.mkdir(parents=True, exist_ok=True)
        os.chmod(p, mode)
        if owner:
            shutil.chown(p, owner, _group_of(owner))
        return p

    # --- resources ---------------------------------------------------------------------

    def mount_tmpfs(self, where: Path, size: str, *, owner: str | None = None, mode: int = 0o755,
                    **options: str) -> Path:
        """A tmpfs of ``size`` on ``where`` (a folder inside the sandbox)."""
        where = Path(where)
        if self.dir not in where.parents:
            raise SandboxError(f"refusing to mount outside the sandbox: {where}")
        where.mkdir(parents=True, exist_ok=True)
        self.manifest.mounts.append(str(where))
        self._save()
        opts = ",".join([f"size={size}", f"mode={mode:o}", *(f"{k}={v}" for k, v in options.items())])
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, f"ddx-drill-{where.name}", str(where)],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise SandboxError(f"could not mount a tmpfs on {where}: {r.stderr.strip()}")
        if owner:
            shutil.chown(where, owner, _group_of(owner))
        return where

    def add_netns(self, name: str) -> str:
        full = f"{self.name}-{name}"[:60]
        self.manifest.netns.append(full)
        self._save()
        subprocess.run(["ip", "netns", "add", full], check=True, capture_output=True, timeout=10)
        return full

    def spawn(self, argv: Sequence[str], *, log: Path | None = None, cwd: Path | None = None,
              env: dict[str, str] | None = None, user: str | None = None,
              stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group, inside the sandbox's cgroups, in the
        sandbox's folder unless ``cwd`` says otherwise (a service never runs in the
        drill's own working directory)."""
        argv = list(argv)
        cwd = cwd or self.dir
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        cgroups = [c for c in (self.cgroup, self.memory_cgroup) if c is not None]

        def enter() -> None:
            for c in cgroups:
                with open(c / "cgroup.procs", "w") as f:
                    f.write(str(os.getpid()))

        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
        try:
            p = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                                 cwd=cwd, env={**os.environ, **(env or {})}, start_new_session=True,
                                 preexec_fn=enter if cgroups else None)
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        self._procs.append(p)
        self.manifest.pgroups.append(p.pid)
        self._save()
        return p

    def pids(self) -> list[int]:
        """Every process in the sandbox's cgroup (the orphans included)."""
        found: set[int] = set()
        for c in (self.cgroup, self.memory_cgroup):
            if c is not None:
                found.update(_cgroup_pids(c))
        return sorted(found)

    # --- clean-up ----------------------------------------------------------------------

    def close(self, keep: bool = False) -> list[str]:
        """Remove everything; returns what could not be removed. ``keep`` does nothing
        (the broken stack stays for inspection; ``ddx drill clean --all`` removes it later)."""
        if self.closed or keep:
            return []
        self.closed = True
        problems = teardown(self.manifest, self.dir)
        for p in self._procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=0.1)
        return problems

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


def _cgroup_pids(c: Path) -> list[int]:
    pids: list[int] = []
    for d, _dirs, files in os.walk(c):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                pids += [int(x) for x in (Path(d) / "cgroup.procs").read_text().split()]
    return pids


def _kill_all(manifest: Manifest) -> list[str]:
    """SIGTERM, then SIGKILL, every recorded process group and cgroup member."""
    def alive_targets() -> tuple[list[int], list[int]]:
        groups = [g for g in manifest.pgroups if _group_alive(g)]
        members = [pid for c in manifest.cgroups if Path(c).exists() for pid in _cgroup_pids(Path(c))]
        return groups, members

    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        groups, members = alive_targets()
        if not groups and not members:
            return []
        for g in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(g, sig)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive_targets()):
            _reap()
            time.sleep(0.05)
    groups, members = alive_targets()
    return [f"process group {g} still alive" for g in groups] + [f"pid {p} still alive" for p in members]


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a group whose members are all zombies of ours counts as gone once reaped
    return True


def teardown(manifest: Manifest, folder: Path) -> list[str]:
    """Remove what ``manifest`` records, in reverse order of creation. Best effort:
    each step runs even when an earlier one failed; failures are returned."""
    problems = _kill_all(manifest)
    for m in reversed(manifest.mounts):
        if _is_mount(m):
            r = subprocess.run(["umount", m], capture_output=True, text=True, timeout=10)
            if r.returncode != 0:
                subprocess.run(["umount", "-l", m], capture_output=True, timeout=10)
            if _is_mount(m):
                problems.append(f"mount {m} is still mounted")
    for c in reversed(manifest.cgroups):
        p = Path(c)
        for d in sorted((x for x in p.rglob("*") if x.is_dir()), key=lambda x: -len(x.parts)) if p.exists() else []:
            with contextlib.suppress(OSError):
                d.rmdir()
        if p.exists():
            for _ in range(50):  # the kernel frees a cgroup shortly after its last member exits
                try:
                    p.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
            if p.exists():
                problems.append(f"cgroup {c} could not be removed")
    for ns in reversed(manifest.netns):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
    if not any(p.startswith("mount") for p in problems):
        shutil.rmtree(folder, ignore_errors=True)
        if folder.exists():
            problems.append(f"folder {folder} could not be removed")
    return problems


def _is_mount(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4] == path for line in f)
    except OSError:
        return False


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sandboxes() -> Iterator[tuple[Path, Manifest | None]]:
    """Every sandbox folder under DRILL_ROOT, with its manifest (None if unreadable)."""
    if not DRILL_ROOT.is_dir():
        return
    for d in sorted(DRILL_ROOT.iterdir()):
        if not d.is_dir():
            continue
        try:
            data = json.loads((d / "manifest.json").read_text())
            yield d, Manifest(**data)
        except (OSError, ValueError, TypeError):
            yield d, None


def clean_stale(include_live: bool = False, only: Iterable[str] = ()) -> list[tuple[Path, list[str]]]:
    """Tear down sandboxes whose drill process is gone (all of them with
    ``include_live``: those kept with --keep). ``only``: just these sandboxes,
    by folder name or path under DRILL_ROOT (SandboxError naming any that is not
    one). Returns (folder, problems)."""
    wanted: set[Path] | None = None
    if only:
        known = {d.resolve(): d for d, _m in sandboxes()}
        wanted = set()
        for name in only:
            p = Path(name) if "/" in name else DRILL_ROOT / name
            if p.resolve() not in known:
                raise SandboxError(f"{name}: not a drill sandbox (they are folders under {DRILL_ROOT}; "
                                   "see `ls " + str(DRILL_ROOT) + "`)")
            wanted.add(known[p.resolve()])
    done = []
    for d, m in sandboxes():
        if wanted is not None and d not in wanted:
            continue
        if m is None:
            if not _any_mount_under(d):
                shutil.rmtree(d, ignore_errors=True)
                done.append((d, []))
            else:
                done.append((d, ["no readable manifest and mounts below it: left alone"]))
            continue
        if m.owner != os.getpid() and _owner_alive(m.owner) and not include_live:
            continue
        done.append((d, teardown(m, d)))
    return done


def _any_mount_under(d: Path) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4].startswith(str(d) + "/") for line in f)
    except OSError:
        return False


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while the block runs, so
    ``finally`` clauses clean up on them as on Ctrl-C."""
    def raise_interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
