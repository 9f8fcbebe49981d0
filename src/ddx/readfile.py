"""Reading a small file someone named (a config file, a case file), bounded.

``read_small_file`` reads a regular file of at most ``limit`` bytes and fails
with one clear error otherwise: a FIFO does not hang ddx (it is opened
without waiting for a writer), ``/dev/zero`` does not fill memory, a folder or
a device is named as such.
"""

from __future__ import annotations

import os
import stat

from ddx.errors import UsageError
from ddx.units import size

__all__ = ["FileRefused", "file_kind", "read_fd", "read_regular", "read_small_file"]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words: "a regular file", "a FIFO", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_fd(fd: int, most: int) -> bytes:
    """At most ``most`` bytes from an open file descriptor, up to its end."""
    chunks, left = [], most
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class FileRefused(ValueError):
    """A file that is not what a reader takes: not a regular file (``kind`` says
    what it is), or too big (``kind`` is empty)."""

    def __init__(self, text: str, kind: str = "") -> None:
        super().__init__(text)
        self.kind = kind


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The bytes of ``path``, a regular file (a symlink to one is fine) of at most
    ``limit`` bytes: at most ``limit + 1`` bytes are ever read, and a FIFO is opened
    without waiting for a writer. ``FileRefused`` says why a file is not taken;
    ``OSError`` (missing, unreadable) passes through for the caller to word."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(f"is {file_kind(st.st_mode)}, not a regular file", file_kind(st.st_mode))
        if st.st_size > limit:
            raise FileRefused(f"is {size(st.st_size)}, more than the {size(limit)} allowed")
        data = read_fd(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while being read
        raise FileRefused(f"is more than the {size(limit)} allowed")
    return data


def read_small_file(path: str, *, limit: int, what: str = "file",
                    error: type[UsageError] = UsageError) -> bytes:
    """The bytes of ``path`` (``read_regular``). Anything else raises ``error``
    naming the path and ``what`` it should be: missing, unreadable, not a
    regular file, too big."""
    try:
        return read_regular(path, limit)
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except PermissionError:
        raise error(f"{path}: cannot read the {what}: permission denied") from None
    except FileRefused as exc:
        text = f"is {exc.kind}, not a {what}" if exc.kind else f"the {what} {exc}"
        raise error(f"{path}: {text}") from None
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read the {what}: {getattr(exc, 'strerror', None) or exc}") from None
