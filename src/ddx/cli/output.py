"""Standard output that cannot fail silently.

Python writes unbuffered output (``-u``, ``PYTHONUNBUFFERED``) with one raw
``write`` and does not notice when it writes only part (a disk that fills, a
file size limit): ddx would exit 0 after half its JSON. ``guard_stdout``
puts a buffered writer under ``sys.stdout`` that writes everything or fails,
and turns a failed write into ``OutputError``; ``finish_stdout`` flushes at
the end and, when the output cannot be written, silences it so that the
interpreter's own flush at exit has nothing left to fail on.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any

from ddx.errors import DdxError

__all__ = ["OutputError", "finish_stdout", "guard_stdout", "silence_stdout"]


class OutputError(DdxError):
    """The output could not be written (a full disk, a closed or broken stream)."""


def _failed(exc: OSError) -> OutputError:
    return OutputError(f"cannot write the output: {exc.strerror or exc}")


class _Stdout(io.TextIOWrapper):
    """``sys.stdout`` over a buffered writer; a failed write or flush is an ``OutputError``
    (a reader that went away stays ``BrokenPipeError``)."""

    def write(self, s: str) -> int:
        try:
            return super().write(s)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _failed(exc) from None

    def flush(self) -> None:
        try:
            super().flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _failed(exc) from None


def guard_stdout() -> None:
    """Put a buffered, checked writer under ``sys.stdout`` when it is the
    process's own file descriptor 1 (not a test's capture)."""
    out = sys.__stdout__
    if out is None or sys.stdout is not out:
        return
    try:
        fd = out.fileno()
        out.flush()
    except (OSError, ValueError, AttributeError):
        return
    raw = io.FileIO(fd, "w", closefd=False)
    line = bool(getattr(out, "line_buffering", False) or getattr(out, "write_through", False))
    sys.stdout = _Stdout(io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors,
                         line_buffering=line)


def silence_stdout() -> None:
    """Point file descriptor 1 at /dev/null: what is still buffered is dropped
    there, and nothing fails again when the interpreter flushes at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def finish_stdout() -> None:
    """Flush ``sys.stdout``: raises ``OutputError`` (or ``BrokenPipeError``)
    when what was written could not all be written."""
    out: Any = sys.stdout
    if out is None:
        return
    try:
        out.flush()
    except (BrokenPipeError, OutputError):
        raise
    except OSError as exc:
        raise _failed(exc) from None
    except ValueError:  # closed by the command
        pass
