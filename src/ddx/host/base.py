"""The Host contract: where probes read evidence from, and what the calls return.

Three hosts fulfil it: ``LiveHost`` (the running machine), ``RecordingHost``
(wraps another and records every call) and ``BundleHost`` (replays a recording).
``live`` says whether a host is the running machine. Network exchanges with a
host's services go through ``ddx.host.net``: on the running machine a plain
socket, on a host read over SSH (``SshHost``) a connection its agent makes
there (so 127.0.0.1:PORT is that host's), on a replayed bundle none (it did not
record those exchanges, and the replaying machine's loopback is somebody
else's; ``offline_reason`` says so).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["CommandResult", "Host", "StatResult", "VfsResult", "is_live", "offline_reason"]


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class StatResult:
    mode: int
    uid: int
    gid: int
    size: int
    mtime: float
    ctime: float
    ino: int = 0
    nlink: int = 1


@dataclass(frozen=True)
class VfsResult:
    """statvfs of one mount point (sizes in bytes, inode counts)."""

    total: int
    free: int  # available to unprivileged users (f_bavail * f_frsize)
    files: int  # total inodes (0 where the filesystem has no fixed inode count)
    files_free: int
    readonly: bool


class Host(Protocol):
    """Where probes read evidence from. Every call may raise:

    - ``FileNotFoundError`` / ``PermissionError`` / ``OSError`` as the OS would;
    - ``TimeoutError`` when the call did not finish within its timeout (a hung
      NFS mount, a stuck command); the call is abandoned, never waited for;
    - ``LookupError`` on a replayed bundle that did not record this call.

    Calls that read the same thing twice (counters sampled over a window) get
    the successive recorded values on a bundle, in order.

    A host may also have ``batch(op, calls)``: many ``read_text``, ``listdir``,
    ``stat`` or ``readlink`` calls in one go, each item's value or exception in
    order (``SshHost``: one request instead of one round trip each). Probes
    reach it through ``ddx.host.batch``, which calls the others once per item.
    """

    name: str
    live: bool  # True only for the running machine: network exchanges and live-only reads are allowed

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        """Read a text file (undecodable bytes replaced). With ``tail``, the last
        ``max_bytes`` bytes; otherwise the first ``max_bytes``."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted."""
        ...

    def stat(self, path: str) -> StatResult:
        ...

    def statvfs(self, path: str) -> VfsResult:
        ...

    def readlink(self, path: str) -> str:
        ...

    def run(self, argv: list[str], *, timeout: float = 2.0, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run a command (argv list, never a shell). ``env`` adds environment
        variables for the child (e.g. a password; never recorded in bundles).
        Raises FileNotFoundError when the program is missing, TimeoutError when
        it runs too long."""
        ...

    def time(self) -> float:
        """Wall-clock time now (seconds since the epoch) on that host."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait (a no-op on a bundle, whose recorded reads already differ)."""
        ...


def is_live(host: object) -> bool:
    """Is ``host`` the running machine (directly or through a recording)?"""
    return bool(getattr(host, "live", False))


def offline_reason(host: object, bundle_reason: str) -> str:
    """Why a network exchange is not made with ``host``, for which
    ``ddx.host.net.can_connect`` is false: a replayed bundle is the one such host,
    so this is ``bundle_reason``."""
    del host
    return bundle_reason
