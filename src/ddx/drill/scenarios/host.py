"""Host-level faults in the sandbox stack: its own tmpfs mounts, processes, cgroup and limits."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ddx.drill.scenarios import Scenario, register
from ddx.drill.stack import Stack


def _wait_for_log(path: Path, words: str, timeout: float = 20.0) -> None:
    """Until ``words`` appears in ``path`` (the app has met the fault), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if words in path.read_text(errors="replace"):
                return
        except OSError:
            pass
        time.sleep(0.1)


def _fill_cache(stack: Stack) -> None:
    """A runaway job fills the app's cache tmpfs to the last block."""
    with open(stack.cache_dir / "export.tmp", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    # the last partial block: small writes until nothing fits
    with open(stack.cache_dir / "export2.tmp", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    os.sync()
    _wait_for_log(stack.app_log, "No space left on device")


register(Scenario(
    name="disk-full",
    expected="disk-full",
    summary="a runaway export fills the app's cache tmpfs; page renders fail with ENOSPC",
    inject=_fill_cache,
    tags=("ci",),
))
