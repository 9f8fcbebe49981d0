"""Fixtures for whole diagnoses of this host with real faults (root only).

Each test creates its fault for real, runs `ddx diagnose --json` as a whole
process with a config that restricts the kernel-log and log-file probes to
lines written after the test started (other tests write to the same kernel
log), and cleans up in `finally` even when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def as_user(user: str | None, argv: list[str]) -> list[str]:
    """argv run as ``user`` (numeric ids: Debian's nobody has group nogroup)."""
    if not user:
        return argv
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv]


def write_config(folder: Path, since: float, logs: list[str], extra: str = "") -> Path:
    cfg = folder / "ddx.toml"
    paths = ", ".join(json.dumps(p) for p in logs)
    cfg.write_text(
        f"[probe.kernel]\nsince = {since}\n\n"
        f"[probe.logfiles]\nsince = {since}\npaths = [{paths}]\ndiscover = false\njournal = \"never\"\n\n"
        f"[probe.changes]\nsince = {since}\n\n"
        + extra
    )
    return cfg


def diagnose(cfg: Path, *extra: str, user: str | None = None, env: dict[str, str] | None = None,
             cwd: str | None = None) -> tuple[dict, subprocess.CompletedProcess[str]]:
    argv = as_user(user, [sys.executable, "-m", "ddx", "diagnose", "--json", "--config", str(cfg), *extra])
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout), r


def ranked(out: dict) -> list[str]:
    return [h["id"] for h in out["hypotheses"]]


def present(out: dict) -> set[str]:
    return {f["id"] for f in out["findings"] if f["state"] == "present"}


@contextlib.contextmanager
def tmpfs(size: str = "1m", **opts: str) -> Iterator[Path]:
    """A tmpfs mounted under a fresh temporary folder, always unmounted."""
    base = Path(tempfile.mkdtemp(prefix="ddx-live-"))
    mnt = base / "mnt"
    mnt.mkdir()
    options = ",".join([f"size={size}", *(f"{k}={v}" for k, v in opts.items())])
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "ddx-test", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


@contextlib.contextmanager
def spawn(code: str, *, user: str | None = None, **kw: object) -> Iterator[subprocess.Popen[bytes]]:
    """A Python child running ``code``; killed (with its process group) at the end."""
    argv = as_user(user, [sys.executable, "-c", code])
    p = subprocess.Popen(argv, start_new_session=True, **kw)  # type: ignore[call-overload]
    try:
        yield p
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, 9)
        p.wait(timeout=10)


def wait_for(predicate, timeout: float = 10.0, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
