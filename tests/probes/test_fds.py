"""fds: the cheap fd-table filter, the probe on fixture hosts and on a real
process that ran out of file descriptors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddx.config import Config
from ddx.host import BundleHost, LiveHost, build_bundle
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.runner import run_probes
from ddx.probes.system.fds import FdUse, fd_candidates, fds

LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units     
Max processes             63602                63602                processes 
Max open files            {soft:<20} {hard:<20} files     
Max locked memory         8388608              8388608              bytes     
"""


def status(name: str, fdsize: int, uid: int = 0, kthread: bool = False) -> str:
    ids = f"{uid}\t{uid}\t{uid}\t{uid}"
    return f"Name:\t{name}\nUid:\t{ids}\nFDSize:\t{fdsize}\nKthread:\t{int(kthread)}\nThreads:\t1\n"


def test_candidates_are_those_whose_fd_table_can_hold_the_limit() -> None:
    uses = [
        FdUse(10, "server", 0, fdsize=64, soft=64),  # table as large as the limit: maybe full
        FdUse(11, "idle", 0, fdsize=64, soft=1024),  # at most 64 open of 1024: cannot be near
        FdUse(12, "proxy", 0, fdsize=1024, soft=1024),
        FdUse(13, "big", 0, fdsize=65536, soft=1048576),  # many fds, far from its limit
        FdUse(14, "lowered", 0, fdsize=256, soft=128),  # limit lowered after the table grew
    ]
    assert [u.pid for u in fd_candidates(uses, 95.0)] == [14, 10, 12]


def _bundle(tmp_path: Path, procs: list[dict[str, Any]], file_nr: str = "1200\t0\t1617234\n") -> BundleHost:
    files: dict[str, Any] = {"/proc/sys/fs/file-nr": file_nr}
    dirs: dict[str, Any] = {"/proc": sorted([str(p["pid"]) for p in procs] + ["self", "sys"])}
    for p in procs:
        base = f"/proc/{p['pid']}"
        files[f"{base}/status"] = status(p["name"], p["fdsize"], p.get("uid", 0), p.get("kthread", False))
        files[f"{base}/limits"] = LIMITS.format(soft=p["soft"], hard=p.get("hard", p["soft"]))
        files[f"{base}/cmdline"] = "\0".join(p.get("argv", [p["name"]])) + "\0"
        if "fds" in p:
            dirs[f"{base}/fd"] = p["fds"] if isinstance(p["fds"], BaseException) else [str(i) for i in range(p["fds"])]
    return BundleHost(build_bundle(str(tmp_path / f"b{uuid.uuid4().hex[:6]}"), files=files, listdirs=dirs))


def _run(host: Any, **opts: Any) -> Finding:
    [f] = fds(ProbeContext(host, {**registry["fds"].options, **opts}, 0.0, "fds"))
    return f


def test_process_at_its_limit(tmp_path: Path) -> None:
    host = _bundle(
        tmp_path,
        [
            {"pid": 1, "name": "init", "fdsize": 128, "soft": 1024},
            {"pid": 2, "name": "kthreadd", "fdsize": 0, "soft": 1024, "kthread": True},
            {"pid": 300, "name": "node", "argv": ["node", "/srv/api/server.js", "--token=s3cr3tvalue"],
             "fdsize": 1024, "soft": 1024, "fds": 1019},
            {"pid": 301, "name": "nginx", "fdsize": 1024, "soft": 1024, "fds": 200},
            {"pid": 302, "name": "java", "fdsize": 65536, "soft": 1048576},  # not listed: would be LookupError
        ],
    )
    f = _run(host)
    assert f.state is State.PRESENT
    ev = f.evidence[0]
    assert ev.value == 99.5 and ev.threshold == 95.0
    assert ev.samples[0] == "pid 300 node /srv/api/server.js --token=***: 1019 open fds of soft limit 1024 (100%)"
    assert "4 processes checked by fd table size, 2 counted" in ev.summary


def test_healthy_host(tmp_path: Path) -> None:
    host = _bundle(
        tmp_path,
        [
            {"pid": 1, "name": "init", "fdsize": 128, "soft": 1024},
            {"pid": 301, "name": "nginx", "fdsize": 1024, "soft": 1024, "fds": 900},
            {"pid": 400, "name": "db", "fdsize": 8192, "soft": 65536},
        ],
    )
    f = _run(host)
    assert f.state is State.ABSENT
    assert "highest 88%, pid 301" in f.evidence[0].summary
    assert f.evidence[0].samples[-1].startswith("system: 1200 file handles allocated of fs.file-max 1617234")


def test_small_limit_with_almost_nothing_left_is_exhausted(tmp_path: Path) -> None:
    # ulimit -n 13 on a worker holding 12: 92% of the limit, yet any request that
    # accepts a connection and opens a file fails with EMFILE.
    procs = [
        {"pid": 1, "name": "init", "fdsize": 128, "soft": 1024},
        {"pid": 500, "name": "gunicorn", "argv": ["python3", "-m", "gunicorn", "app:app"],
         "fdsize": 64, "soft": 13, "fds": 12},
        {"pid": 501, "name": "tiny", "fdsize": 64, "soft": 16, "fds": 5},  # small limit, plenty left
    ]
    f = _run(_bundle(tmp_path, procs))
    assert f.state is State.PRESENT
    ev = f.evidence[0]
    assert ev.samples[0] == "pid 500 python3 -m gunicorn app:app: 12 open fds of soft limit 13 (92%, 1 left)"
    assert ev.count == 1
    assert _run(_bundle(tmp_path, procs), min_free=0).state is State.ABSENT


def test_candidates_include_small_limits_within_min_free() -> None:
    uses = [FdUse(20, "w", 0, fdsize=12, soft=13), FdUse(21, "x", 0, fdsize=10, soft=13)]
    assert [u.pid for u in fd_candidates(uses, 95.0)] == []
    assert [u.pid for u in fd_candidates(uses, 95.0, min_free=2)] == [20]


def test_system_file_table_full(tmp_path: Path) -> None:
    host = _bundle(tmp_path, [{"pid": 1, "name": "init", "fdsize": 64, "soft": 1024}], "99000\t0\t100000\n")
    f = _run(host)
    assert f.state is State.PRESENT and f.evidence[0].value == 99.0
    assert "fs.file-max" in f.evidence[0].summary


def test_unreadable_fd_dirs_leave_the_finding_unknown(tmp_path: Path) -> None:
    denied = PermissionError(13, "Permission denied", "/proc/300/fd")
    procs = [{"pid": 300, "name": "node", "fdsize": 1024, "soft": 1024, "fds": denied}]
    coll = run_probes(_bundle(tmp_path, procs), Config(), only=["fds"])
    [res] = coll.results
    assert res.status == "denied" and "pids 300" in res.reason and coll.findings == ()
    # Seen elsewhere, the unreadable one is only noted.
    procs.append({"pid": 301, "name": "nginx", "fdsize": 64, "soft": 64, "fds": 64})
    f = _run(_bundle(tmp_path, procs))
    assert f.state is State.PRESENT and "1 unreadable without root (pids 300)" in f.evidence[0].summary


def test_bound_on_counted_processes(tmp_path: Path) -> None:
    procs = [{"pid": 100 + i, "name": "w", "fdsize": 64, "soft": 64, "fds": 10} for i in range(5)]
    f = _run(_bundle(tmp_path, procs), max_fd_scans=2)
    assert f.state is State.ABSENT
    assert "2 counted; 3 candidates not counted (over max_fd_scans)" in f.evidence[0].summary


# --- a real process out of file descriptors ----------------------------------------------

EXHAUST = """\
import os, resource, sys, time
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
opened = []
try:
    while True:
        opened.append(os.open("/dev/null", os.O_RDONLY))
except OSError as exc:
    print(exc.errno, flush=True)
time.sleep(600)
"""


@pytest.fixture
def exhausted() -> Iterator[subprocess.Popen[str]]:
    p = subprocess.Popen([sys.executable, "-c", EXHAUST], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "24"  # EMFILE
        yield p
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=10)


def test_live_process_out_of_fds(exhausted: subprocess.Popen[str]) -> None:
    calm = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdin=subprocess.DEVNULL)
    try:
        coll = run_probes(LiveHost(), Config(), only=["fds"])
        [res] = coll.results
        assert res.status == "ok", res
        [f] = coll.findings
        assert f.state is State.PRESENT
        text = "\n".join(f.evidence[0].samples)
        assert f"pid {exhausted.pid} " in text and "of soft limit 64 (100%)" in text
        assert f"pid {calm.pid} " not in text
    finally:
        calm.kill()
        calm.wait(timeout=10)


PROBE_AS_NOBODY = """\
import json, sys
from ddx.config import Config
from ddx.host import LiveHost
from ddx.probes.runner import run_probes
coll = run_probes(LiveHost(), Config(), only=["fds"])
print(json.dumps(coll.to_dict()))
"""


@pytest.mark.root
def test_live_not_root_cannot_count_roots_fds(exhausted: subprocess.Popen[str]) -> None:
    """Run as nobody, the probe cannot list root's /proc/PID/fd: the process near
    its limit stays unknown instead of being reported absent."""
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    # The venv's interpreter may live under /root; the system one is readable by everyone.
    python = next((p for p in ("/usr/bin/python3", sys.executable) if os.access(p, os.X_OK)), sys.executable)
    try:
        out = subprocess.run([python, "-c", PROBE_AS_NOBODY], user=65534, group=65534, env=env,
                             capture_output=True, text=True, timeout=60, cwd="/")
    except PermissionError as exc:
        pytest.skip(f"cannot run as nobody here: {exc}")
    if out.returncode != 0 and "Permission denied" in out.stderr:
        pytest.skip(f"nobody cannot import ddx here: {out.stderr.strip()[-200:]}")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    [res] = data["results"]
    if res["status"] == "ok":  # some process of nobody's own was found full: then it must be present
        assert data["findings"][0]["state"] == "present"
        assert str(exhausted.pid) in json.dumps(data["findings"])
    else:
        assert res["status"] == "denied" and str(exhausted.pid) in res["reason"]


def test_registered() -> None:
    from ddx.probes import load_probes

    load_probes()
    assert registry["fds"].findings == ("fd.exhausted",)
