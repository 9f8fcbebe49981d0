"""Commands the probes start never outlive ddx: not when the budget runs out and a probe is
abandoned, not on SIGTERM, SIGINT or SIGHUP, not under a flood of signals.

Each test runs ddx in a child process (a small script that registers a probe running
`sleep` through LiveHost.run, then runs the probes or the command line) and then looks in
/proc for the `sleep`, which the test names with a number no other process uses.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import default_signals

SCRIPT = textwrap.dedent("""\
    import runpy, sys, threading
    from ddx.probes.base import probe

    mode, seconds = sys.argv[1], sys.argv[2]

    @probe("sleeper", findings=("cpu.saturated",), timeout=60.0)
    def sleeper(ctx):
        \"\"\"Runs `sleep` on the host: in its own thread, as a probe's helper that the runner
        cannot see; or in the probe itself.\"\"\"
        if mode == "abandon":
            threading.Thread(target=ctx.host.run, args=(["sleep", seconds],), kwargs={"timeout": 600},
                             daemon=True).start()
            threading.Event().wait()
        ctx.host.run(["sleep", seconds], timeout=600)
        return []

    if mode == "abandon":
        from ddx.config import Config
        from ddx.host import LiveHost
        from ddx.probes.runner import run_probes

        c = run_probes(LiveHost(), Config(), only=["sleeper"], budget=1.0, window=0)
        print(c.results[0].status, flush=True)
    else:
        sys.argv = ["ddx", "diagnose", "--only", "sleeper", "--budget", "120", "--window", "0", "--json"]
        runpy.run_module("ddx", run_name="__main__", alter_sys=True)
""")


def _marker() -> str:
    """A `sleep` argument no other process on this host has."""
    return f"{3000 + random.randrange(1000)}.{os.getpid()}{random.randrange(10**6):06d}"


def _sleepers(marker: str) -> list[int]:
    """Pids of the live (not zombie) `sleep marker` processes."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv[:2] == [b"sleep", marker.encode()]:
            found.append(int(entry))
    return found


def _start(tmp_path: Path, mode: str, marker: str) -> subprocess.Popen[str]:
    script = tmp_path / "run_ddx.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "DDX_CONFIG"}
    return subprocess.Popen([sys.executable, str(script), mode, marker], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signals)


def _wait_for_sleeper(proc: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _sleepers(marker):
            return
        if proc.poll() is not None:
            pytest.fail(f"ddx ended before its command started: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the probe's command never started")


def _gone(marker: str, within: float = 3.0) -> bool:
    end = time.monotonic() + within
    while _sleepers(marker):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def marker():  # type: ignore[no-untyped-def]
    m = _marker()
    yield m
    for pid in _sleepers(m):  # leave the host as it was, whatever the test found
        os.kill(pid, signal.SIGKILL)


def test_an_abandoned_probes_command_dies_when_ddx_exits(tmp_path: Path, marker: str) -> None:
    """The budget runs out, the runner abandons the probe, ddx exits normally: the command
    the probe's helper thread started (no deadline of its own) goes with it."""
    proc = _start(tmp_path, "abandon", marker)
    _wait_for_sleeper(proc, marker)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.strip() == "timeout"
    assert _gone(marker), "the probe's sleep outlived ddx"


@pytest.mark.parametrize(("sig", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT"),
                                           (signal.SIGHUP, "SIGHUP")])
def test_a_stop_signal_ends_ddx_and_its_commands(tmp_path: Path, marker: str, sig: int, name: str) -> None:
    proc = _start(tmp_path, "cli", marker)
    _wait_for_sleeper(proc, marker)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig
    assert err == f"ddx: stopped by {name}\n"
    assert out == ""
    assert _gone(marker), f"the probe's sleep outlived ddx after {name}"


def test_a_flood_of_signals_still_ends_cleanly(tmp_path: Path, marker: str) -> None:
    """Hundreds of stop signals while ddx stops: one line, no traceback, no command left."""
    proc = _start(tmp_path, "cli", marker)
    _wait_for_sleeper(proc, marker)
    sent = 0
    signals = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    while proc.poll() is None and sent < 3000:
        try:
            os.kill(proc.pid, signals[sent % 3])
        except ProcessLookupError:
            break
        sent += 1
    out, err = proc.communicate(timeout=30)
    assert sent >= 1
    # The signals already waiting are handled lowest number first: any one of the three may be the one.
    names = {128 + s: s.name for s in signals}
    assert proc.returncode in names, (proc.returncode, err)
    assert err == f"ddx: stopped by {names[proc.returncode]}\n"
    assert _gone(marker), "the probe's sleep outlived ddx"


def test_kill_children_kills_the_whole_process_group(marker: str) -> None:
    """A command that started children of its own: they are in its process group and go too."""
    import threading

    from ddx.host.live import LiveHost, kill_children, running_children

    host = LiveHost()
    result: list[BaseException | object] = []

    def run() -> None:
        try:
            result.append(host.run(["sh", "-c", f"sleep {marker} & sleep {marker}; wait"], timeout=60))
        except BaseException as exc:  # noqa: BLE001 - looked at below
            result.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    end = time.monotonic() + 10
    while len(_sleepers(marker)) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert len(_sleepers(marker)) == 2 and running_children()
    assert kill_children() >= 1
    t.join(10)
    assert _gone(marker)
    assert result and getattr(result[0], "returncode", None) == -signal.SIGKILL
    assert running_children() == []
    assert host.run(["true"]).returncode == 0  # the registry still takes new commands (no close)
