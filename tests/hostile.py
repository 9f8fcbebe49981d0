"""Running ddx on hostile input as a user would, with its cost measured: the
helpers of the hardening tests (issue 16).

``run_bounded`` runs the command line in a child process with a cap on its
address space (so that a bomb that gets through fails there instead of taking
the test machine's memory), a time limit (so that a hang ends), and reports its
peak memory (``ru_maxrss`` from ``wait4``) and time.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The targets for any hostile input.
MAX_RSS_MB = 200
MAX_SECONDS = 10


@dataclass
class Outcome:
    returncode: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    rss_mb: float
    seconds: float

    @property
    def hung(self) -> bool:
        return self.returncode is None

    def one_clean_line(self) -> bool:
        """Exactly one line on stderr, a ddx error, and no traceback."""
        lines = self.stderr.strip().splitlines()
        return len(lines) == 1 and lines[0].startswith("ddx: error: ") and "Traceback" not in self.stderr


def run_bounded(*args: str, timeout: float = 30.0, address_space: int | None = 1 << 30,
                env: dict[str, str] | None = None) -> Outcome:
    """Run ``python -m ddx ARGS``; killed (with its process group) after ``timeout`` seconds."""
    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        p = subprocess.Popen([sys.executable, "-m", "ddx", *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=full_env, preexec_fn=limit, start_new_session=True)
        hung = False
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                hung = True
                os.killpg(p.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.monotonic() - start
        p.returncode = os.waitstatus_to_exitcode(status)  # reaped here; Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Outcome(None if hung else p.returncode, out.read().decode(errors="replace"),
                       err.read().decode(errors="replace"), usage.ru_maxrss / 1024, seconds)


# --- decompression bombs -------------------------------------------------------------------

_CHUNK = 1 << 20


class GzipWriter:
    """A gzip file written from data and from runs of zeros, the runs without
    compressing them: after a full flush, deflate starts afresh, so a MiB of
    zeros compresses to the same block every time and gigabytes cost a copy of
    it per MiB (and a CRC)."""

    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # gzip header, no name, no time
        self.comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        fresh = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.zero_block = fresh.compress(bytes(_CHUNK)) + fresh.flush(zlib.Z_FULL_FLUSH)
        self.zero_crc = zlib.crc32(bytes(_CHUNK))
        self.crc = 0
        self.size = 0

    def write(self, data: bytes) -> None:
        self.f.write(self.comp.compress(data) + self.comp.flush(zlib.Z_FULL_FLUSH))
        self.crc = zlib.crc32(data, self.crc)
        self.size += len(data)

    def zeros(self, n: int) -> None:
        whole, rest = divmod(n, _CHUNK)
        for _ in range(whole):
            self.f.write(self.zero_block)
            self.crc = zlib.crc32(bytes(_CHUNK), self.crc)
        self.size += whole * _CHUNK
        if rest:
            self.write(bytes(rest))

    def close(self) -> None:
        self.f.write(self.comp.flush(zlib.Z_FINISH))
        self.f.write(self.crc.to_bytes(4, "little") + (self.size & 0xFFFFFFFF).to_bytes(4, "little"))
        self.f.close()


def tar_header(name: str, size: int, kind: bytes = b"0") -> bytes:
    import tarfile

    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o600, 1_700_000_000
    return info.tobuf(format=tarfile.GNU_FORMAT)


def tar_member(gz: GzipWriter, name: str, data: bytes | None = None, zeros: int = 0) -> None:
    """One regular member: ``data``, or ``zeros`` zero bytes."""
    size = len(data) if data is not None else zeros
    gz.write(tar_header(name, size))
    if data is not None:
        gz.write(data)
    else:
        gz.zeros(zeros)
    if size % 512:
        gz.write(bytes(512 - size % 512))


def tar_end(gz: GzipWriter) -> None:
    gz.write(bytes(1024))
    gz.close()
