"""Robust reading of log files: plain, gzip or stdin, line by line.

Logs on a sick host are often damaged, so nothing here raises on bad content;
every oddity becomes a note in a :class:`ReadNotes` and reading goes on:

- binary files (NUL bytes or mostly control bytes in the first 8 KiB) are
  skipped whole; NUL bytes inside a text file (left by a crash) are removed;
- lines over :data:`MAX_LINE` bytes (1 MiB) are skipped, and never held whole
  in memory (``readline`` with a limit);
- invalid UTF-8 is decoded with replacement characters;
- an empty file, a truncated gzip stream, a last line without a newline, a file
  rotated, truncated or removed while it was read are noted.

Line numbers are 1-based and count every physical line, skipped ones included,
so they always point into the file. A file that cannot be opened raises
:class:`~ddx.errors.UsageError` naming it, and so does a closed stdin. Input
is peeked, never seeked, so pipes, FIFOs and devices read like files; a FIFO
with no writer reads as empty instead of waiting for one.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ddx.errors import UsageError

__all__ = ["MAX_LINE", "ReadNotes", "is_binary", "read_lines", "rereadable"]

MAX_LINE = 1 << 20
_SNIFF = 8192
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\v\x1b")


@dataclass
class ReadNotes:
    """What reading one input skipped or found odd, for the user to see."""

    source: str
    lines: int = 0
    skipped_long: list[int] = field(default_factory=list)
    invalid_utf8: int = 0
    nul_lines: int = 0
    messages: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One sentence per oddity, each naming the source."""
        out = [f"{self.source}: {m}" for m in self.messages]
        if self.skipped_long:
            first = ", ".join(map(str, self.skipped_long[:5]))
            more = "..." if len(self.skipped_long) > 5 else ""
            out.append(f"{self.source}: skipped {len(self.skipped_long)} line(s) over 1 MiB (line {first}{more})")
        if self.invalid_utf8:
            out.append(f"{self.source}: {self.invalid_utf8} line(s) with invalid UTF-8, read with replacement characters")
        if self.nul_lines:
            out.append(f"{self.source}: removed NUL bytes from {self.nul_lines} line(s)")
        return out


def is_binary(head: bytes) -> bool:
    """Does the start of a file look like binary data rather than text? Many
    NUL bytes, control bytes, or bytes that are not UTF-8 (random data:
    ``/dev/urandom`` would otherwise be read as an endless log)."""
    if not head:
        return False
    if head.count(0) > len(head) // 4:
        return True
    controls = sum(1 for b in head if b < 32 and b not in _TEXT_CONTROLS)
    if controls > len(head) // 10:
        return True
    if max(head) < 0x80:
        return False
    undecodable = head[:-4].decode("utf-8", "replace").count("\ufffd")  # the end may cut a character
    return undecodable > len(head) // 8


def rereadable(path: str) -> bool:
    """Can ``path`` be read twice (a regular file)? Not stdin, a pipe, a FIFO or a device."""
    if path == "-":
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return True  # read_lines names the problem


def _stdin() -> BinaryIO:
    stream = sys.stdin  # None when ddx started with file descriptor 0 closed
    if stream is None or stream.closed or not hasattr(stream, "buffer"):
        raise UsageError("-: standard input is closed")
    return stream.buffer


def _open_file(path: str) -> BinaryIO:
    """``path`` opened for reading. A FIFO is opened without waiting for a
    writer (none: it reads as empty); then reads block as usual."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a log file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot open ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise UsageError(f"{path}: is a directory, not a log file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return open(fd, "rb")  # noqa: SIM115 - closed by read_lines


def _open(path: str) -> tuple[BinaryIO, BinaryIO]:
    """(the lines' stream, the file under it): the input buffered (peeked,
    never seeked: pipes and FIFOs cannot), gunzipped when it starts with the
    gzip magic."""
    f = _stdin() if path == "-" else _open_file(path)
    if not hasattr(f, "peek"):
        f = io.BufferedReader(f)  # type: ignore[arg-type,type-var]
    try:
        magic = f.peek(2)[:2]  # type: ignore[attr-defined]
    except OSError:
        magic = b""  # read_lines notes the error on its first read
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=f, mode="rb"), f  # type: ignore[return-value]
    return f, f


def read_lines(path: str, notes: ReadNotes | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each readable line of ``path`` (``-``: stdin)."""
    notes = notes if notes is not None else ReadNotes(path)
    f, under = _open(path)
    compressed = f is not under
    st = None
    if path != "-" and not compressed:
        try:
            st = os.fstat(f.fileno())
        except OSError:
            st = None
    n = 0
    try:
        try:
            head = f.peek(_SNIFF)[:_SNIFF]  # type: ignore[attr-defined]
        except (OSError, EOFError, zlib.error) as exc:
            notes.messages.append(f"unreadable ({exc}), skipped")
            return
        if not head:
            notes.messages.append("empty file")
            return
        if is_binary(head):
            notes.messages.append("binary file, skipped")
            return
        readline = f.readline
        last = b"\n"
        while True:
            try:
                raw = readline(MAX_LINE + 1)
            except (OSError, EOFError, zlib.error) as exc:
                notes.messages.append(f"read error after line {n} ({exc}); the rest is skipped")
                break
            if not raw:
                break
            n += 1
            last = raw
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                notes.skipped_long.append(n)
                try:
                    while raw and not raw.endswith(b"\n"):
                        raw = readline(MAX_LINE)
                except (OSError, EOFError, zlib.error):
                    break
                last = raw or b"\n"
                continue
            if b"\x00" in raw:
                raw = raw.replace(b"\x00", b"")
                notes.nul_lines += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("utf-8", "replace")
                notes.invalid_utf8 += 1
            yield n, text.rstrip("\r\n")
        if not last.endswith(b"\n"):
            notes.messages.append(f"last line ({n}) has no newline: the writer may have stopped mid-record")
        if st is not None:
            _check_rotation(path, st, f, notes)
    finally:
        notes.lines = n
        if path != "-":
            f.close()
            under.close()


def _check_rotation(path: str, st: os.stat_result, f: BinaryIO, notes: ReadNotes) -> None:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        notes.messages.append("removed while reading (read to the end of the open file)")
        return
    except OSError:
        return
    if (now.st_ino, now.st_dev) != (st.st_ino, st.st_dev):
        notes.messages.append("rotated while reading (read to the end of the file that was open)")
        return
    try:
        pos = f.tell()
    except OSError:
        return
    if now.st_size < pos:
        notes.messages.append(f"truncated while reading (size {now.st_size} < {pos} bytes read)")
