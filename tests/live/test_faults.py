"""Whole diagnoses of this host with real faults: the expected condition must rank first."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from live_helpers import (
    ROOT,
    as_user,
    diagnose,
    present,
    ranked,
    spawn,
    tmpfs,
    wait_for,
    write_config,
)

from ddx.drill.sandbox import free_port as _free_port

pytestmark = [pytest.mark.root, pytest.mark.slow]

LOGGING = (
    "import logging, os, sys, time\n"
    "logging.basicConfig(filename=sys.argv[1], level=logging.INFO,\n"
    "                    format='%(asctime)s %(levelname)s app[%(process)d]: %(message)s')\n"
)


def _nobody() -> str:
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody'")
    return "nobody"


def _writer(workdir: Path, body: str, *, user: str | None = None) -> tuple[str, Path]:
    """A small service: logs with Python logging to app.log, writes `ready` when it has failed."""
    log = workdir / "app.log"
    log.touch()
    flag = workdir / "flag"
    flag.mkdir()
    if user:
        shutil.chown(log, user)
        shutil.chown(flag, user)
    script = workdir / "service.py"
    script.write_text(LOGGING + body + f"\nopen({str(flag / 'ready')!r}, 'w').close()\ntime.sleep(900)\n")
    os.chmod(script, 0o644)
    return f"import runpy, sys; sys.argv = ['service', {str(log)!r}]; runpy.run_path({str(script)!r})", log


def test_full_tmpfs_with_enospc_in_the_log_is_disk_full(workdir: Path) -> None:
    start = time.time()
    with tmpfs("1m") as mnt:
        code, log = _writer(workdir, (
            "try:\n"
            f"    with open({str(mnt / 'cache.bin')!r}, 'wb') as f:\n"
            "        while True:\n"
            "            f.write(b'x' * 65536); f.flush()\n"
            "except OSError as e:\n"
            "    logging.error('could not write cache file: %s', e)\n"
        ))
        with spawn(code):
            wait_for(lambda: (workdir / "flag" / "ready").exists(), what="the writer to fail")
            out, _ = diagnose(write_config(workdir, start, [str(log)]))
    assert ranked(out)[0] == "disk-full", ranked(out)[:3]
    assert {"disk.space_exhausted", "logs.enospc"} <= present(out)
    ev = {f["id"]: f for f in out["findings"]}["disk.space_exhausted"]["evidence"]
    assert any(str(mnt) in (e["summary"] + e["source"]) for e in ev)


def test_tmpfs_out_of_inodes_is_inode_exhaustion(workdir: Path) -> None:
    start = time.time()
    with tmpfs("16m", nr_inodes="64") as mnt:
        code, log = _writer(workdir, (
            "i = 0\n"
            "try:\n"
            "    while True:\n"
            f"        open(os.path.join({str(mnt)!r}, 'sess_%d' % i), 'w').write('s'); i += 1\n"
            "except OSError as e:\n"
            "    logging.error('failed to write session file: %s', e)\n"
        ))
        with spawn(code):
            wait_for(lambda: (workdir / "flag" / "ready").exists(), what="the writer to fail")
            out, _ = diagnose(write_config(workdir, start, [str(log)]))
    assert ranked(out)[0] == "inode-exhaustion", ranked(out)[:3]
    assert "disk.inodes_exhausted" in present(out)
    assert "disk.space_exhausted" not in present(out)


def test_unwritable_directory_is_a_permission_error(workdir: Path) -> None:
    user = _nobody()
    start = time.time()
    cache = workdir / "cache"
    cache.mkdir()
    os.chmod(cache, 0o555)  # owned by root, not writable by the service's user
    code, log = _writer(workdir, (
        "try:\n"
        f"    open({str(cache / 'page.html')!r}, 'w').write('x')\n"
        "except OSError as e:\n"
        "    logging.error('unable to write in the cache directory: %s', e)\n"
    ), user=user)
    with spawn(code, user=user):
        wait_for(lambda: (workdir / "flag" / "ready").exists(), what="the writer to fail")
        out, _ = diagnose(write_config(workdir, start, [str(log)]))
    assert ranked(out)[0] == "permission-error", ranked(out)[:3]
    assert "logs.permission_denied" in present(out)


def test_process_at_its_open_file_limit_is_fd_exhaustion(workdir: Path) -> None:
    start = time.time()
    code, log = _writer(workdir, (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
        "held = []\n"
        "try:\n"
        "    while True:\n"
        "        held.append(open('/dev/null'))\n"
        "except OSError as e:\n"
        "    logging.error('accept failed: %s', e)\n"
        "    held.pop().close()  # room to signal readiness: the process stays at 63 of 64\n"
    ))
    with spawn(code):
        wait_for(lambda: (workdir / "flag" / "ready").exists(), what="the process to hit its limit")
        out, _ = diagnose(write_config(workdir, start, [str(log)]))
    assert ranked(out)[0] == "fd-exhaustion", ranked(out)[:3]
    assert {"fd.exhausted", "logs.too_many_open_files"} <= present(out)




def test_flooded_listen_backlog_on_an_idle_host_is_connection_limit(workdir: Path) -> None:
    start = time.time()
    port = _free_port()
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(2)  # a tiny backlog, and nobody ever calls accept()
    stop = threading.Event()
    clients: list[socket.socket] = []

    def flood() -> None:
        while not stop.is_set():
            if len(clients) < 400:
                c = socket.socket()
                c.setblocking(False)
                with contextlib.suppress(OSError):
                    c.connect_ex(("127.0.0.1", port))
                clients.append(c)
            time.sleep(0.01)

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        out, _ = diagnose(write_config(workdir, start, []))
        for f in out["findings"]:
            if f["state"] == "present" or f["id"] in ("load.low", "cpu.saturated"):
                print(f["id"], f["state"], [e["summary"] for e in f.get("evidence", [])])
        print(ranked(out)[:4], [h["probability"] for h in out["hypotheses"][:4]])
        for h in out["hypotheses"][:2]:
            print(h["id"], "for", h["for"], "against", h["against"])
    finally:
        stop.set()
        t.join(5)
        for c in clients:
            c.close()
        server.close()
    assert ranked(out)[0] == "connection-limit", ranked(out)[:3]
    assert "net.listen_overflows" in present(out)
    ev = json.dumps({f["id"]: f for f in out["findings"]}["net.listen_overflows"])
    assert str(port) in ev


def _compile_crasher(folder: Path) -> str | None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return None
    src = folder / "crasher.c"
    src.write_text("int main(void) { volatile int *p = 0; return *p; }\n")
    exe = folder / "ddxcrasher"
    subprocess.run([cc, "-O0", "-o", str(exe), str(src)], check=True, capture_output=True)
    return str(exe)


@pytest.mark.kernel_log
def test_hardware_errors_and_unrelated_segfaults_rank_hardware_fault(workdir: Path) -> None:
    trace = Path("/proc/sys/debug/exception-trace")
    old = trace.read_text().strip() if trace.exists() else None
    if old == "0":
        trace.write_text("1")
    # Kernel-log times are converted from the monotonic clock, which may drift from the wall
    # clock by a little: a second of slack keeps our own lines inside the window.
    start = time.time() - 1.0
    try:
        with open("/dev/kmsg", "w") as kmsg:
            for line in (
                "<3>mce: [Hardware Error]: Machine check events logged",
                "<3>mce: [Hardware Error]: CPU 1: Machine Check: 0 Bank 8: cc00008000010090",
                "<3>EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4a3b1)",
            ):
                kmsg.write(line + "\n")
                kmsg.flush()
        crashers = [[sys.executable, "-c", "import ctypes; ctypes.string_at(0)"]]
        exe = _compile_crasher(workdir)
        crashers.append([exe] if exe else ["perl", "-e", "unpack(q{p}, pack(q{Q}, 1))"])
        for argv in crashers:
            r = subprocess.run(argv, capture_output=True, timeout=30)
            assert r.returncode == -11, (argv, r.returncode)
        out, _ = diagnose(write_config(workdir, start, []))
    finally:
        if old == "0":
            trace.write_text("0")
    assert "hardware-fault" in ranked(out)[:3], ranked(out)[:3]
    assert {"kernel.hardware_error", "procs.segfaults_multiple_binaries"} <= present(out)


def test_healthy_host_says_nothing_looks_wrong(workdir: Path) -> None:
    now = time.time()
    out, _ = diagnose(write_config(workdir, now, []))
    assert out["status"] == "nothing_wrong", (out["symptoms"], ranked(out)[:3])
    assert all(h["probability"] <= 0.5 for h in out["hypotheses"])
    text = subprocess.run([sys.executable, "-m", "ddx", "diagnose", "--config", str(workdir / "ddx.toml")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert "Nothing looks wrong" in text.stdout


def test_answers_when_its_own_working_disk_is_full(workdir: Path) -> None:
    with tmpfs("256k") as mnt:
        with contextlib.suppress(OSError), open(mnt / "fill", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
        env = {"HOME": str(mnt), "TMPDIR": str(mnt), "XDG_CACHE_HOME": str(mnt)}
        out, _ = diagnose(write_config(workdir, time.time(), []), env=env, cwd=str(mnt))
        assert out["hypotheses"]
        assert sorted(os.listdir(mnt)) == ["fill"]  # ddx wrote nothing there


def test_as_an_unprivileged_user_it_says_what_it_could_not_read(workdir: Path) -> None:
    user = _nobody()
    cfg = write_config(workdir, time.time(), [])
    os.chmod(cfg, 0o644)
    out, _ = diagnose(cfg, user=user)
    unusable = {p["name"]: p for p in out["probes"] if p["status"] in ("denied", "failed")}
    assert unusable, out["probes"]
    assert all(p.get("reason") for p in unusable.values())
    r = subprocess.run(as_user(user, [sys.executable, "-m", "ddx", "diagnose", "--config", str(cfg)]),
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0
    assert "could not run probe" in r.stdout


APP_SERVER = """\
import os, signal, sys, time
workers = int(sys.argv[sys.argv.index('--workers') + 1])
for _ in range(workers):
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)   # a worker that ignores the graceful stop
        while True:
            time.sleep(60)
open(sys.argv[sys.argv.index('--ready') + 1], 'w').close()
while True:
    time.sleep(60)
"""


def test_workers_left_behind_by_a_restarted_manager_are_a_process_leak(workdir: Path) -> None:
    start = time.time()
    script = workdir / "appserver.py"
    script.write_text(APP_SERVER)
    groups: list[int] = []

    def start_manager(n: int) -> subprocess.Popen[bytes]:
        ready = workdir / f"ready{n}"
        p = subprocess.Popen([sys.executable, str(script), "--workers", "3", "--ready", str(ready)],
                             start_new_session=True)
        groups.append(p.pid)
        wait_for(ready.exists, what=f"manager {n} to fork its workers")
        return p

    try:
        old = start_manager(1)
        old_workers = Path(f"/proc/{old.pid}/task/{old.pid}/children").read_text().split()
        assert len(old_workers) == 3
        os.kill(old.pid, 9)  # the manager dies; its three workers live on, adopted by init
        old.wait(timeout=10)
        time.sleep(0.2)
        start_manager(2)  # "restarted": a new manager with a fresh pool of three
        out, _ = diagnose(write_config(workdir, start, []))
    finally:
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, 9)
    assert ranked(out)[0] == "process-leak", ranked(out)[:3]
    assert {"procs.orphaned_workers", "procs.count_excess"} <= present(out)
    ev = json.dumps({f["id"]: f for f in out["findings"]}["procs.orphaned_workers"])
    assert any(f"pid {pid} " in ev for pid in old_workers), ev
