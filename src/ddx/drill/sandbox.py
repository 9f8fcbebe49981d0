"""The sandbox of one drill: everything it creates, written down so it can all be removed.

A drill breaks things for real, so its clean-up cannot depend on the drill
ending well. Every resource is recorded in the sandbox's manifest *before* it
is created: process groups, tmpfs mounts, cgroups, network namespaces.
``close()`` removes them in reverse order and is called from a ``finally``
(Ctrl-C and SIGTERM become exceptions, see ``signals_as_exceptions``). If the
drill process itself dies (SIGKILL, a crash of the interpreter), ``ddx drill
clean`` reads the manifests of sandboxes whose owner is gone and finishes the job.

``ddx drill clean`` runs as root and kills, unmounts and deletes what a
manifest names, so a manifest must not be something another user can write.
The manifests live in a state folder of their own (``/run/ddx-drill``, 0700,
each file 0600), and clean refuses a state folder, drill root or manifest that
is not the caller's. Even then it acts only on what it can prove the sandbox
made: tmpfs mounts inside the sandbox's folder (with the source name the
sandbox gave them), cgroups and network namespaces with the sandbox's own
name, and process groups whose leader is still the process the sandbox
started (its start time, recorded at spawn, matches). A copy of the manifest
in the sandbox folder is for people to read; clean never trusts it.

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
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddx.errors import DdxError

__all__ = [
    "DRILL_ROOT",
    "STATE_ROOT",
    "Sandbox",
    "SandboxError",
    "clean_stale",
    "free_port",
    "signals_as_exceptions",
]

DRILL_ROOT = Path(os.environ.get("DDX_DRILL_ROOT", "/tmp/ddx-drill"))
STATE_ROOT = Path(os.environ.get("DDX_DRILL_STATE", "/run/ddx-drill"))
CGROUP_BASE = Path("/sys/fs/cgroup")
MANIFEST_MAX_BYTES = 1 << 20


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
    folder: str = ""
    # process group leader (its pid, as text) -> its start time (clock ticks after boot, /proc/PID/stat)
    leader_starts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_MANIFEST_TYPES: dict[str, Any] = {
    "owner": int, "created": (int, float), "label": str, "pgroups": list, "mounts": list, "cgroups": list,
    "netns": list, "folder": str, "leader_starts": dict,
}


def _manifest_from(data: Any) -> Manifest:
    """A Manifest from parsed JSON; ValueError naming what is wrong."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    for key, value in data.items():
        want = _MANIFEST_TYPES.get(key)
        if want is None:
            raise ValueError(f"unknown key {key!r}")
        if not isinstance(value, want) or isinstance(value, bool):
            raise ValueError(f"{key} has the wrong type")
    for key in ("owner", "created", "label"):
        if key not in data:
            raise ValueError(f"no {key}")
    for key, kind in (("pgroups", int), ("mounts", str), ("cgroups", str), ("netns", str)):
        if not all(isinstance(x, kind) and not isinstance(x, bool) for x in data.get(key, [])):
            raise ValueError(f"{key} has the wrong type")
    if not all(isinstance(v, int) for v in data.get("leader_starts", {}).values()):
        raise ValueError("leader_starts has the wrong type")
    return Manifest(**data)


def _cgroup_dirs(name: str) -> tuple[Path | None, Path | None]:
    """(tracking cgroup, memory cgroup) to create for ``name``.

    cgroup v2 (unified, or the ``unified`` hierarchy of a hybrid host) tracks
    membership; the memory limit lives in v2 when its memory controller is
    enabled at the root, else in the v1 memory hierarchy."""
    if (CGROUP_BASE / "cgroup.controllers").exists():  # pure v2
        ctrl = (CGROUP_BASE / "cgroup.subtree_control").read_text().split()
        return CGROUP_BASE / name, CGROUP_BASE / name if "memory" in ctrl else None
    unified = CGROUP_BASE / "unified"
    track = unified / name if (unified / "cgroup.procs").exists() else None
    mem = CGROUP_BASE / "memory" / name if (CGROUP_BASE / "memory" / "cgroup.procs").exists() else None
    return track, mem


# --- folders and records only the caller can write ------------------------------------


def _checked_folder(path: Path, *, private: bool, env: str) -> bool:
    """Whether ``path`` exists (False if not); SandboxError unless it is a real
    folder of the caller's that no one else can write (with ``private``: 0700)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        problem = "is a symbolic link" if stat.S_ISLNK(st.st_mode) else "is not a folder"
    elif st.st_uid != me:
        problem = f"belongs to uid {st.st_uid}, not to you (uid {me}): someone else made it first"
    elif private and st.st_mode & 0o077:
        problem = f"has mode {stat.S_IMODE(st.st_mode):04o}, not 0700"
    elif st.st_mode & 0o022:
        problem = f"is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
    else:
        return True
    raise SandboxError(f"{path} {problem}; refusing to act on the drill sandboxes it holds "
                       f"(remove it, or set {env} to another folder)")


def _make_folder(path: Path, mode: int, *, private: bool, env: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)
        os.chmod(path, mode)  # whatever the umask
    if not private:  # the drill root: ours, made readable to the services' users
        with contextlib.suppress(OSError):
            if os.lstat(path).st_uid == os.geteuid() and stat.S_ISDIR(os.lstat(path).st_mode):
                os.chmod(path, mode, follow_symlinks=False)
    _checked_folder(path, private=private, env=env)


def _write_file(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` with ``text`` at once, through a new file of ``mode``
    (O_EXCL, O_NOFOLLOW): a reader sees the old text or the new, never half."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _record_path(folder: Path) -> Path:
    return STATE_ROOT / f"{folder.name}.json"


def _load_record(path: Path) -> Manifest:
    """The manifest in ``path``; ValueError unless it is a regular file of the
    caller's, mode 0600, within the size limit, holding a valid manifest."""
    from ddx.safeload import LoadError, load_json

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_uid != os.geteuid():
            raise ValueError(f"it belongs to uid {st.st_uid}, not to you")
        if st.st_mode & 0o077:
            raise ValueError(f"it has mode {stat.S_IMODE(st.st_mode):04o}, not 0600")
        data = os.read(fd, MANIFEST_MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MANIFEST_MAX_BYTES:
        raise ValueError("larger than a manifest can be")
    try:
        return _manifest_from(load_json(data))
    except LoadError as exc:
        raise ValueError(str(exc)) from None


# --- the sandbox ------------------------------------------------------------------------


class Sandbox:
    """A folder, and the processes, mounts and cgroups made for one drill."""

    def __init__(self, label: str) -> None:
        if os.geteuid() != 0:
            raise SandboxError("ddx drill needs root: it mounts tmpfs, creates cgroups and runs services as other users")
        _make_folder(STATE_ROOT, 0o700, private=True, env="DDX_DRILL_STATE")
        _make_folder(DRILL_ROOT, 0o755, private=False, env="DDX_DRILL_ROOT")
        self.manifest = Manifest(owner=os.getpid(), created=time.time(), label=label)
        self.dir = self._claim(label)
        os.chmod(self.dir, 0o755)  # services running as other users reach their folders below
        self.name = f"ddx-drill-{self.dir.name}"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._save()
        track, mem = _cgroup_dirs(self.name)
        self.cgroup = self._make_cgroup(track) if track else None
        self.memory_cgroup = (self._make_cgroup(mem) if mem != track else self.cgroup) if mem else None
        self.closed = False

    # --- records -----------------------------------------------------------------------

    def _claim(self, label: str) -> Path:
        """A new sandbox folder, its manifest written in the state folder first:
        no folder of ours ever exists without its record."""
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789_"
        for _ in range(100):
            folder = DRILL_ROOT / f"{label}-{''.join(secrets.choice(alphabet) for _ in range(8))}"
            self.manifest.folder = str(folder)
            try:
                fd = os.open(_record_path(folder), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            os.close(fd)
            _write_file(_record_path(folder), json.dumps(self.manifest.to_dict(), indent=1), 0o600)
            try:
                os.mkdir(folder, 0o700)
            except FileExistsError:
                os.unlink(_record_path(folder))
                continue
            return folder
        raise SandboxError(f"no free sandbox name under {DRILL_ROOT}")

    def _save(self) -> None:
        text = json.dumps(self.manifest.to_dict(), indent=1)
        _write_file(_record_path(self.dir), text, 0o600)
        _write_file(self.dir / "manifest.json", text, 0o644)  # for people; clean never reads it

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
        """A tmpfs of ``size`` on ``where`` (a folder inside the sandbox, reached
        through no symbolic link: folders below are owned by the services' users)."""
        where = Path(os.path.normpath(where))
        if self.dir not in where.parents:
            raise SandboxError(f"refusing to mount outside the sandbox: {where}")
        where.mkdir(parents=True, exist_ok=True)
        if not _inside(str(where), self.dir):
            raise SandboxError(f"refusing to mount through a symbolic link: {where}")
        self.manifest.mounts.append(str(where))
        self._save()
        opts = ",".join([f"size={size}", f"mode={mode:o}", *(f"{k}={v}" for k, v in options.items())])
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, _mount_source(str(where)), str(where)],
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
        r = subprocess.run(["ip", "netns", "add", full], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:  # not ours (it may exist already): never delete it later
            self.manifest.netns.remove(full)
            self._save()
            raise SandboxError(f"could not add the network namespace {full}: {r.stderr.strip()}")
        return full

    def spawn(self, argv: Sequence[str], *, log: Path | None = None, cwd: Path | None = None,
              env: dict[str, str] | None = None, user: str | None = None,
              stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        """Start ``argv`` in its own process group, inside the sandbox's cgroups, in the
        sandbox's folder unless ``cwd`` says otherwise (a service never runs in the
        drill's own working directory). The leader's start time is recorded with its
        pid, so that a later clean-up can tell it from a process that reused the pid."""
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
        started = _proc_stat(p.pid)  # not reaped yet: still our child, even if it exited
        if started is not None:
            self.manifest.leader_starts[str(p.pid)] = started[1]
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


# --- what a sandbox can prove it made ----------------------------------------------------


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(process group, start time in clock ticks after boot) of ``pid``, None if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[2]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _proven_groups(manifest: Manifest) -> tuple[list[int], dict[int, str]]:
    """The recorded process groups whose leader is still the process the sandbox
    started (same pid, same start time, still leading its group), and the other
    recorded groups that exist, with why each is left alone. A pid is not handed
    out again while a group of that number has members, so a leader that started
    at another time means the sandbox's own group is gone."""
    ours: list[int] = []
    doubtful: dict[int, str] = {}
    for pgid in manifest.pgroups:
        now = _proc_stat(pgid) if pgid > 1 else None
        recorded = manifest.leader_starts.get(str(pgid))
        if now is not None and recorded is not None:
            if now == (pgid, recorded):
                ours.append(pgid)
            continue  # otherwise another process has the pid now
        if pgid <= 1:
            doubtful[pgid] = "not a group a sandbox starts"
        elif recorded is None:
            doubtful[pgid] = "no start time was recorded for its leader, so it cannot be proven the sandbox's"
        else:
            doubtful[pgid] = "its leader is gone, so it cannot be proven the sandbox's"
    return ours, doubtful


def _proven_cgroup(path: str, folder: Path) -> bool:
    """Whether ``path`` is a cgroup this sandbox would have created: one of the
    names ``_cgroup_dirs`` gives for it."""
    name = f"ddx-drill-{folder.name}"
    return path in {str(CGROUP_BASE / name), str(CGROUP_BASE / "unified" / name), str(CGROUP_BASE / "memory" / name)}


def _proven_netns(ns: str, folder: Path) -> bool:
    prefix = f"ddx-drill-{folder.name}-"[:60]
    return len(ns) <= 60 and ns.startswith(prefix) and re.fullmatch(r"[A-Za-z0-9_.-]+", ns) is not None


def _inside(path: str, folder: Path) -> bool:
    """Whether ``path`` lies strictly inside ``folder``, written plainly (no ``..``)
    and reached through no symbolic link."""
    if os.path.normpath(path) != path or not path.startswith(str(folder) + os.sep):
        return False
    return os.path.realpath(path) == os.path.join(os.path.realpath(folder), os.path.relpath(path, folder))


def _mount_source(where: str) -> str:
    return f"ddx-drill-{os.path.basename(where)}"


def _mountinfo() -> list[tuple[str, str, str]]:
    """(mount point, file system type, source) of every mount, in mount order."""
    from ddx.probes.parsers.mounts import parse_mountinfo

    try:
        with open("/proc/self/mountinfo") as f:
            return [(m.point, m.fstype, m.source) for m in parse_mountinfo(f.read())]
    except OSError:
        return []


def _is_mount(path: str) -> bool:
    real = os.path.realpath(path)
    return any(point == real for point, _t, _s in _mountinfo())


def _our_mount(path: str) -> bool:
    """Whether the topmost mount on ``path`` is a tmpfs this sandbox made (by the source name it gave)."""
    real = os.path.realpath(path)
    top = [(t, s) for point, t, s in _mountinfo() if point == real]
    return bool(top) and top[-1] == ("tmpfs", _mount_source(path))


def _any_mount_under(d: Path) -> bool:
    real = os.path.realpath(d)
    return any(point == real or point.startswith(real + "/") for point, _t, _s in _mountinfo())


# --- tearing down ------------------------------------------------------------------------


def _kill_all(manifest: Manifest, folder: Path) -> list[str]:
    """SIGTERM, then SIGKILL, every proven process group and every member of the
    sandbox's own cgroups; a recorded group that cannot be proven is reported if
    it is still there at the end (the cgroups catch the sandbox's own)."""
    groups, doubtful = _proven_groups(manifest)
    cgroups = [Path(c) for c in manifest.cgroups if _proven_cgroup(c, folder)]

    def alive_targets() -> tuple[list[int], list[int]]:
        alive = [g for g in groups if _group_alive(g)]
        members = [pid for c in cgroups if c.exists() for pid in _cgroup_pids(c)]
        return alive, members

    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        alive, members = alive_targets()
        if not alive and not members:
            break
        for g in alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(g, sig)
        for pid in members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(alive_targets()):
            _reap()
            time.sleep(0.05)
    alive, members = alive_targets()
    return ([f"process group {g}: {why}; left alone" for g, why in doubtful.items() if g > 0 and _group_alive(g)]
            + [f"process group {g} still alive" for g in alive] + [f"pid {p} still alive" for p in members])


def _reap() -> None:
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie: the members a
    kill leaves as zombies of a parent that has not reaped them yet (init, for orphans)
    are gone for every purpose but the process table."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            tail = Path(entry.path, "stat").read_text().rsplit(")", 1)[1]
        except (OSError, ValueError):
            continue
        fields = tail.split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _unmount(m: str, folder: Path) -> str | None:
    """Unmount ``m`` if it is a tmpfs of this sandbox; what went wrong, or None."""
    if not _inside(m, folder):
        return f"mount {m} is not inside the sandbox folder {folder}; left alone"
    if not _is_mount(m):
        return None
    if not _our_mount(m):
        return f"mount {m} is not the tmpfs the sandbox made; left alone"
    r = subprocess.run(["umount", m], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        subprocess.run(["umount", "-l", m], capture_output=True, timeout=10)
    return f"mount {m} is still mounted" if _is_mount(m) else None


def _remove_cgroup(c: str, folder: Path) -> str | None:
    if not _proven_cgroup(c, folder):
        return f"cgroup {c} is not one the sandbox made; left alone"
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
            return f"cgroup {c} could not be removed"
    return None


def _remove_folder(folder: Path) -> str | None:
    """Delete the sandbox folder if it is a real folder of the caller's with
    nothing mounted below (rmtree would empty a mount it crossed into)."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return f"{folder} is not a folder of yours; left alone"
    if _any_mount_under(folder):
        return f"folder {folder} has mounts below it; left alone"
    shutil.rmtree(folder, ignore_errors=True)
    return f"folder {folder} could not be removed" if folder.exists() else None


def teardown(manifest: Manifest, folder: Path) -> list[str]:
    """Remove what ``manifest`` records and the sandbox can prove it made, in
    reverse order of creation. Best effort: each step runs even when an earlier
    one failed; failures and refusals are returned. The record in the state
    folder goes last, and only when everything went."""
    problems = _kill_all(manifest, folder)
    for m in reversed(manifest.mounts):
        problems.append(_unmount(m, folder) or "")
    for c in reversed(manifest.cgroups):
        problems.append(_remove_cgroup(c, folder) or "")
    for ns in reversed(manifest.netns):
        if _proven_netns(ns, folder):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        else:
            problems.append(f"network namespace {ns} is not one the sandbox made; left alone")
    problems = [p for p in problems if p]
    if not any(p.startswith("mount") for p in problems):
        problems.append(_remove_folder(folder) or "")
        problems = [p for p in problems if p]
    if not problems:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_record_path(folder))
    return problems


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _records() -> list[tuple[Path, Manifest | None, str]]:
    """Every sandbox under DRILL_ROOT: (folder, manifest, "") for those recorded
    in the state folder, (folder, None, why) for a record that cannot be trusted
    and for a folder with no record (not made by this ddx: never touched).
    SandboxError if the state folder or the drill root is not the caller's."""
    out: list[tuple[Path, Manifest | None, str]] = []
    recorded: set[str] = set()
    if _checked_folder(STATE_ROOT, private=True, env="DDX_DRILL_STATE"):
        for entry in sorted(os.listdir(STATE_ROOT)):
            if not entry.endswith(".json") or entry.startswith("."):
                continue
            folder = DRILL_ROOT / entry[: -len(".json")]
            try:
                manifest = _load_record(STATE_ROOT / entry)
            except ValueError as exc:
                out.append((folder, None, f"manifest {STATE_ROOT / entry} cannot be trusted ({exc}); left alone"))
                recorded.add(folder.name)
                continue
            if manifest.folder != str(folder):
                continue  # a sandbox of another drill root
            out.append((folder, manifest, ""))
            recorded.add(folder.name)
    if _checked_folder(DRILL_ROOT, private=False, env="DDX_DRILL_ROOT"):
        for d in sorted(DRILL_ROOT.iterdir()):
            if d.name not in recorded and not d.name.startswith("."):
                out.append((d, None, f"not recorded in {STATE_ROOT}, so not provably made by ddx drill; left alone"))
    return sorted(out, key=lambda r: r[0].name)


def sandboxes() -> Iterator[tuple[Path, Manifest | None]]:
    """Every sandbox folder under DRILL_ROOT, with its manifest (None if it has
    no trustworthy record in the state folder)."""
    for folder, manifest, _why in _records():
        yield folder, manifest


def clean_stale(include_live: bool = False, only: Iterable[str] = ()) -> list[tuple[Path, list[str]]]:
    """Tear down sandboxes whose drill process is gone (all of them with
    ``include_live``: those kept with --keep). ``only``: just these sandboxes,
    by folder name or path under DRILL_ROOT (SandboxError naming any that is not
    one). Returns (folder, problems); a folder without a trustworthy record is
    returned with the reason it was left alone."""
    records = _records()
    wanted: set[Path] | None = None
    if only:
        known = {folder for folder, _m, _why in records}
        wanted = set()
        for name in only:
            p = Path(os.path.abspath(name)) if "/" in name else DRILL_ROOT / name
            if p not in known:
                raise SandboxError(f"{name}: not a drill sandbox (they are folders under {DRILL_ROOT}; "
                                   "see `ls " + str(DRILL_ROOT) + "`)")
            wanted.add(p)
    done = []
    for folder, manifest, why in records:
        if wanted is not None and folder not in wanted:
            continue
        if manifest is None:
            done.append((folder, [why]))
            continue
        if manifest.owner != os.getpid() and _owner_alive(manifest.owner) and not include_live:
            continue
        done.append((folder, teardown(manifest, folder)))
    return done


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
