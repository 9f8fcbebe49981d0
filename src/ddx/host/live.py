"""The running machine as a Host.

Every call is time-boxed and *abandonable*: filesystem calls run in a daemon
worker thread that the caller stops waiting for after the timeout
(``TimeoutError``); commands run in their own process group, killed as a whole
on timeout. A sick host therefore cannot hang ddx. ``root=`` points the file
calls at another tree (a fixture ``/proc``), like glances' ``proc_root``;
commands still run on the live host.

Commands never outlive ddx: every command's process group is kept in a
registry while it runs, and ``kill_children`` kills them all. The command line
calls it on every way out, signals included (``ddx.cli.main``), and it runs
again at interpreter exit (``atexit``), after which no new command starts.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time as time_mod
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ddx.host.base import CommandResult, StatResult, VfsResult
from ddx.host.calls import effective_timeout, pool_call
from ddx.host.sshagent import read_bytes as _read_bytes

__all__ = ["LiveHost", "kill_children", "running_children"]

T = TypeVar("T")


# --- the commands running now, by process group ----------------------------------

_children_lock = threading.Lock()
_children: set[int] = set()  # process group ids (the leaders' pids)
_closing = False


def running_children() -> list[int]:
    """The process groups (leader pids) of the commands running now."""
    with _children_lock:
        return sorted(_children)


def kill_children(*, close: bool = False) -> int:
    """Kill the process group of every command still running (SIGKILL); with
    ``close``, refuse new commands from then on (at exit). Returns how many
    groups were killed. Safe to call from any thread and more than once."""
    global _closing
    with _children_lock:
        _closing = _closing or close
        groups = list(_children)
    for pgid in groups:
        _kill_group(pgid)
    return len(groups)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


atexit.register(kill_children, close=True)


def _start(argv: list[str], env: dict[str, str], stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own and register its process group
    (``stdin=subprocess.PIPE`` for a process ddx talks to: ``SshHost``'s ssh)."""
    if _closing:
        raise TimeoutError(f"command {argv[0]} not started: ddx is exiting")
    proc = subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    with _children_lock:
        _children.add(proc.pid)
        late = _closing
    if late:  # kill_children(close=True) ran while this one started
        _kill_group(proc.pid)
    return proc


def _forget(proc: subprocess.Popen[bytes]) -> None:
    with _children_lock:
        _children.discard(proc.pid)


def _listdir(path: str) -> list[str]:
    return sorted(os.listdir(path))


def _stat(path: str) -> StatResult:
    st = os.stat(path)
    return StatResult(st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime, st.st_ctime, st.st_ino, st.st_nlink)


def _statvfs(path: str) -> VfsResult:
    v = os.statvfs(path)
    return VfsResult(
        total=v.f_blocks * v.f_frsize,
        free=v.f_bavail * v.f_frsize,
        files=v.f_files,
        files_free=v.f_favail,
        readonly=bool(v.f_flag & os.ST_RDONLY),
    )


class LiveHost:
    """The running machine. ``root`` prefixes every path of the file calls
    (tests point it at a fixture tree); ``default_timeout`` bounds each call."""

    def __init__(self, root: str = "/", default_timeout: float = 2.0) -> None:
        self.root = os.path.abspath(root)
        self.default_timeout = default_timeout
        self.name = self._hostname()
        self.live = True

    def _hostname(self) -> str:
        if self.root != "/":
            for p in ("etc/hostname", "proc/sys/kernel/hostname"):
                try:
                    with open(os.path.join(self.root, p), encoding="utf-8", errors="replace") as fh:
                        name = fh.read().strip()
                    if name:
                        return name
                except OSError:
                    pass
        return socket.gethostname()

    def _path(self, path: str) -> str:
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def _call(self, fn: Callable[..., T], what: str, *args: Any) -> T:
        return pool_call(fn, args, effective_timeout(self.default_timeout, what), what)

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        data = self._call(_read_bytes, f"read {path}", self._path(path), max_bytes, tail)
        return data.decode("utf-8", errors="replace")

    def listdir(self, path: str) -> list[str]:
        return self._call(_listdir, f"listdir {path}", self._path(path))

    def stat(self, path: str) -> StatResult:
        return self._call(_stat, f"stat {path}", self._path(path))

    def statvfs(self, path: str) -> VfsResult:
        return self._call(_statvfs, f"statvfs {path}", self._path(path))

    def readlink(self, path: str) -> str:
        return self._call(os.readlink, f"readlink {path}", self._path(path))

    def run(self, argv: list[str], *, timeout: float = 2.0, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run ``argv`` (never a shell) in a new session with a C locale; on
        timeout kill its whole process group and raise ``TimeoutError``.
        ``env`` adds variables for the child only (passwords: never in argv)."""
        what = f"command {' '.join(argv)[:80]}"
        t = effective_timeout(timeout, what)
        env = dict(os.environ, **(env or {}), LC_ALL="C", LANG="C")
        proc = _start(list(argv), env)
        try:
            out, err = proc.communicate(timeout=t)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            proc.kill()
            try:
                proc.communicate(timeout=0.5)
            except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
                for f in (proc.stdout, proc.stderr):
                    with contextlib.suppress(OSError):
                        f.close()  # type: ignore[union-attr]
            raise TimeoutError(f"{what} did not finish within {t:.1f}s (killed)") from None
        except BaseException:  # interrupted while waiting (a signal, an exception): the command goes too
            _kill_group(proc.pid)
            raise
        finally:
            _forget(proc)
        return CommandResult(
            tuple(argv),
            proc.returncode,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    def time(self) -> float:
        return time_mod.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time_mod.sleep(seconds)
