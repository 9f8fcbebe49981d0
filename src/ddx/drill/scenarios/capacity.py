"""Capacity faults in the sandbox stack: processes, memory, CPU, connections, restarts.

Each fault is what runs real sites of this shape out of a resource, done the way
it happens there:

- process-leak: a deploy upgrades gunicorn in place (``USR2``: a new master
  takes over the listening socket) and then stops the old master with SIGKILL
  instead of QUIT. Its workers, busy on long report exports, survive their
  master, adopted by init; each deploy leaves three more behind, each holding
  the memory a worker of the app holds, until the stack's memory cgroup (its
  container limit) is nearly used up (the oneforty incident: twice the Rails
  processes Passenger knew of, and swap running out).
- memory-exhaustion: the stack runs under a memory limit (its cgroup's, as a
  container's); a batch job in it, sized to what the container has, loads all
  the room the limit leaves at once and keeps growing: the cgroup stays at its
  limit, the kernel's OOM killer acts inside it (and logs it, which is why the
  scenario has host effects), the job's scheduler runs it again, and so on.
- cpu-saturation: CPU-bound batch jobs (three per core) run next to the site,
  whose pages cost CPU to render as real ones do; every core is busy, renders
  wait for a CPU and requests queue.
- connection-limit: a burst of clients of the slow ``/report`` page against a
  pool of two sync workers with a listen backlog of 8: the accept queue
  overflows, nginx times out connecting and answers 504, while the host idles
  (the ShmooCon ticket sale: load 0.5, and the server stopped answering).
- crash-loop: the app server runs under runit (``runsv``); an edit leaves its
  settings file unreadable, and every start dies at once (the worker cannot
  boot, the master exits), runsv restarts it a second later, forever.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from ddx.drill.sandbox import SandboxError
from ddx.drill.scenarios import Scenario, register
from ddx.drill.stack import SYSTEM_PYTHON, Stack, StackOptions

__all__: list[str] = []


def _wait(cond: Callable[[], object], timeout: float, what: str, step: float = 0.1) -> None:
    """Until ``cond()`` is true; SandboxError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return
        if time.monotonic() > deadline:
            raise SandboxError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _log_has(path: Path, words: str, start: int = 0) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            return words.encode() in f.read()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _reaped(pid: int) -> bool:
    """Is ``pid`` gone? Reaps it when it is our child (the stack's first master is),
    as init reaps a service manager's dead master: a zombie still holds its pid."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not os.path.exists(f"/proc/{pid}")


# --- the stack's memory cgroup ----------------------------------------------------------------


def _memory_cgroup(stack: Stack) -> Path:
    cg = stack.sb.memory_cgroup
    if cg is None:
        raise SandboxError("the sandbox has no memory cgroup (no memory controller on this host)")
    return cg


def _v2(cg: Path) -> bool:
    return (cg / "memory.max").exists()


def _read_int(path: Path) -> int:
    return int(path.read_text().split()[0])


def _stat(cg: Path) -> dict[str, int]:
    out = {}
    for line in (cg / "memory.stat").read_text().splitlines():
        k, _, v = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[k] = int(v)
    return out


def working_set(cg: Path) -> int:
    """Usage less the inactive file cache the kernel reclaims first (what cAdvisor
    and the kubelet call the working set)."""
    if _v2(cg):
        return max(0, _read_int(cg / "memory.current") - _stat(cg).get("inactive_file", 0))
    st = _stat(cg)
    return max(0, _read_int(cg / "memory.usage_in_bytes") - st.get("total_inactive_file", 0))


def set_memory_limit(cg: Path, limit: int) -> None:
    """The cgroup's hard limit (v2 memory.max, v1 memory.limit_in_bytes). A limit below
    what the cgroup holds makes the kernel reclaim first; when it cannot, the write fails."""
    f = cg / ("memory.max" if _v2(cg) else "memory.limit_in_bytes")
    f.write_text(str(limit))


# --- process-leak -------------------------------------------------------------------------------

_WORKER_MB = 40  # what each worker of the app holds from its start
_LEAK_DEPLOYS = 3

# A report export job: opens N requests to the app's slow report page and waits for them.
_EXPORT_JOB = """\
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /report HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nUser-Agent: export-job/1\\r\\n\\r\\n")
    held.append(s)
    time.sleep(0.05)
for s in held:
    s.settimeout(None)
    s.recv(1)
time.sleep(3600)
"""


def _leak_prepare(opts: StackOptions) -> None:
    opts.app_settings["worker_memory_mb"] = _WORKER_MB
    opts.app_settings["report_seconds"] = 900.0  # the export runs for a quarter of an hour


def _reports_running(stack: Stack) -> int:
    return int(stack.sql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'") or 0)


def _upgrade_and_kill(stack: Stack, deploy: int) -> None:
    """One deploy: the workers get busy on exports, gunicorn is upgraded in place
    (USR2), and the old master is killed hard once the new one has its workers."""
    pidfile = stack.pidfile
    old = stack.gunicorn_master()
    workers = stack.gunicorn_workers(old)
    busy_before = _reports_running(stack)
    stack.sb.spawn([SYSTEM_PYTHON, "-c", _EXPORT_JOB, str(stack.ports["app"]), str(len(workers))],
                   log=stack.dir / f"export-{deploy}.log")
    _wait(lambda: _reports_running(stack) >= busy_before + len(workers), 20, "the exports to occupy the workers")
    os.kill(old, signal.SIGUSR2)

    def new_master() -> int | None:
        # the upgraded master is the old one's child with a pool of its own
        for pid in stack.gunicorn_workers(old):
            if len(stack.gunicorn_workers(pid)) >= stack.opt.workers:
                return pid
        return None

    _wait(lambda: new_master() is not None, 30, "the upgraded gunicorn master and its workers")
    new = new_master()
    time.sleep(0.5)  # its workers import the app and allocate what they hold
    # The script's "stop the old master": its pid file goes, and SIGKILL, not QUIT.
    # (Kept, the file would name a zombie until init reaps it: gunicorn would refuse to promote.)
    pidfile.unlink(missing_ok=True)
    os.kill(old, signal.SIGKILL)
    _wait(lambda: _reaped(old), 10, f"the old gunicorn master {old} to die")

    def promoted() -> bool:  # the new master notices and takes over the pid file
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().split()[0]) == new
        return False

    _wait(promoted, 15, "the upgraded gunicorn master to take over")


def _leak_workers(stack: Stack) -> None:
    cg = _memory_cgroup(stack)
    for deploy in range(_LEAK_DEPLOYS):
        _upgrade_and_kill(stack, deploy)
    # The stack runs under a memory limit that the leftovers have eaten into: what is left
    # is a few percent, less than one more worker. (Set now, at what the stack holds, so that
    # the limit fits any host: the same state a fixed container limit reaches as workers pile up.)
    ws = working_set(cg)
    limit = ws + max(8 << 20, ws // 40)
    for _ in range(20):
        try:
            set_memory_limit(cg, limit)
            break
        except OSError:  # EBUSY: the kernel could not reclaim down to it yet
            limit += 4 << 20
    time.sleep(0.5)


register(Scenario(
    name="process-leak",
    expected="process-leak",
    summary="gunicorn is upgraded in place and its old master killed: workers busy on exports live on as "
            "orphans, three per deploy, until the stack's memory limit is nearly used up",
    inject=_leak_workers,
    prepare=_leak_prepare,
))


# --- memory-exhaustion --------------------------------------------------------------------------

# A batch job sized to its container, as a JVM with MaxRAMPercentage or a loader told "use
# what the container has": at each start it reads its memory cgroup's limit and working set
# (argv[1], v1 or v2 files) and loads all of the room but argv[2] MiB at once, then keeps
# adding a MiB a second to it, touching every page. Its scheduler runs it again a second
# after it dies. So the job holds most of the limit nearly all the time, and the OOM killer
# acts every ten seconds or so, whatever else the stack's processes hold by then.
_HUNGRY_JOB = """\
import os, sys, time
cg, slack = sys.argv[1], int(sys.argv[2]) << 20
def num(name):
    with open(os.path.join(cg, name)) as f:
        return int(f.read().split()[0])
def stat(key):
    with open(os.path.join(cg, "memory.stat")) as f:
        for line in f:
            k, _, v = line.partition(" ")
            if k == key:
                return int(v)
    return 0
if os.path.exists(os.path.join(cg, "memory.max")):
    limit, ws = num("memory.max"), num("memory.current") - stat("inactive_file")
else:
    limit, ws = num("memory.limit_in_bytes"), num("memory.usage_in_bytes") - stat("total_inactive_file")
held = [b"\\1" * max(1 << 20, limit - ws - slack)]
while True:
    time.sleep(1.0)
    held.append(b"\\1" * (1 << 20))
"""

_MEMORY_HEADROOM = 192 << 20  # the limit leaves the stack this much beyond what it holds at the start
_MEMORY_SLACK = 10 << 20  # what each load of the job leaves of the limit


def _squeeze_memory(stack: Stack) -> None:
    cg = _memory_cgroup(stack)
    ws = working_set(cg)
    set_memory_limit(cg, ws + _MEMORY_HEADROOM)
    job = f"{SYSTEM_PYTHON} -c '{_HUNGRY_JOB}' {cg} {_MEMORY_SLACK >> 20}"
    stack.sb.spawn(["/bin/sh", "-c", f"while :; do {job}; sleep 1; done"], log=stack.dir / "batch.log")
    # In place once the job has loaded: what is left of the limit goes within seconds, then
    # the OOM killer acts, the job is run again, and so on.
    _wait(lambda: working_set(cg) >= ws + _MEMORY_HEADROOM - 2 * _MEMORY_SLACK, 20,
          "the job to fill the stack's memory cgroup")


register(Scenario(
    name="memory-exhaustion",
    expected="memory-exhaustion",
    summary="a batch job in the stack's memory cgroup loads more than the cgroup's limit allows: the cgroup "
            "stays at its limit and the OOM killer kills in it, again at each rerun of the job",
    inject=_squeeze_memory,
    host_effects="the kernel logs the OOM kill in its ring buffer (dmesg), where it stays until reboot",
))


# --- cpu-saturation -----------------------------------------------------------------------------

_CPU_JOB = """\
import hashlib
block = b"x" * 65536
while True:
    hashlib.sha256(block).digest()
"""


def _cpu_stall_total() -> int | None:
    """PSI cpu "some" total: microseconds in which a task waited for a CPU."""
    try:
        for line in Path("/proc/pressure/cpu").read_text().splitlines():
            if line.startswith("some"):
                return int(line.split("total=")[1].split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cpu_queued(seconds: float = 0.5) -> float | None:
    """Share (%) of the next ``seconds`` in which some task waited for a CPU."""
    a = _cpu_stall_total()
    time.sleep(seconds)
    b = _cpu_stall_total()
    return None if a is None or b is None else 100.0 * (b - a) / (seconds * 1e6)


def _cpu_prepare(opts: StackOptions) -> None:
    # Pages cost CPU as real ones do (templates, serialisation), under the usual request
    # rate from a dozen clients: a quarter of the host's CPU while healthy.
    opts.app_settings["page_cpu_ms"] = 25
    opts.load_clients = 12


def _saturate_cpu(stack: Stack) -> None:
    n = 3 * (os.cpu_count() or 1)
    for i in range(n):
        stack.sb.spawn([SYSTEM_PYTHON, "-c", _CPU_JOB], log=stack.dir / f"cpu-job-{i}.log")
    if _cpu_stall_total() is None:  # no PSI: give the jobs a moment to start spinning
        time.sleep(1.0)
        return
    # In place once tasks queue for a CPU most of the time (PSI cpu "some", measured now).
    with contextlib.suppress(SandboxError):
        _wait(lambda: (_cpu_queued() or 0.0) >= 50.0, 10, "CPU pressure", step=0.0)


register(Scenario(
    name="cpu-saturation",
    expected="cpu-saturation",
    summary="CPU-bound batch jobs, three per core, run beside the site: every core is busy and page "
            "renders wait for a CPU",
    inject=_saturate_cpu,
    prepare=_cpu_prepare,
))


# --- connection-limit ---------------------------------------------------------------------------

# Many clients of a slow page, each asking again as soon as it got its answer (or gave up).
_BURST = """\
import http.client, sys, threading, time
port, clients = int(sys.argv[1]), int(sys.argv[2])
def client():
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/report", headers={"User-Agent": "ticket-rush/1"})
            c.getresponse().read()
            c.close()
        except Exception:
            time.sleep(0.2)
for _ in range(clients):
    threading.Thread(target=client, daemon=True).start()
    time.sleep(0.005)
time.sleep(3600)
"""


def _small_pool(opts: StackOptions) -> None:
    opts.workers = 2
    opts.backlog = 8
    opts.app_settings["report_seconds"] = 5.0


def _burst(stack: Stack) -> None:
    start = _size(stack.error_log)
    stack.sb.spawn([SYSTEM_PYTHON, "-c", _BURST, str(stack.ports["web"]), "80"], log=stack.dir / "burst.log")
    _wait(lambda: _log_has(stack.error_log, "while connecting to upstream", start), 20,
          "nginx to time out connecting to the app")


register(Scenario(
    name="connection-limit",
    expected="connection-limit",
    summary="a burst of clients of a slow page against two sync workers and a backlog of 8: the accept "
            "queue overflows and nginx answers 504 while the host idles",
    inject=_burst,
    prepare=_small_pool,
))


# --- crash-loop ---------------------------------------------------------------------------------

RUNSV = "runsv"


def _runsv_needs() -> list[str]:
    return [] if shutil.which(RUNSV) else ["runsv, a process supervisor (apt-get install runit)"]


def _crash_loop_prepare(opts: StackOptions) -> None:
    opts.supervisor = "runit"


def _crash_loop(stack: Stack) -> None:
    """Break the settings file of the app that runit supervises, and restart it to pick
    up the edit: every start dies at once, runsv starts it again each second."""
    runsv = stack.procs["app"]

    def app_master() -> int | None:
        kids = stack.gunicorn_workers(runsv.pid)
        return kids[0] if kids else None

    # An edit leaves the settings file truncated; the app is restarted to pick it up.
    text = stack.app_config.read_text()
    stack.app_config.write_text(text[: len(text) // 2])
    start = _size(stack.gunicorn_log)
    master = app_master()
    if master is not None:
        os.kill(master, signal.SIGTERM)
    _wait(lambda: stack.gunicorn_log.read_bytes()[start:].count(b"runsv: starting app") >= 2, 30,
          "the app to be restarted after dying")


register(Scenario(
    name="crash-loop",
    expected="crash-loop",
    summary="the app server runs under runit; its settings file is left truncated by an edit, and every "
            "start dies at once while runsv restarts it each second",
    inject=_crash_loop,
    prepare=_crash_loop_prepare,
    needs=_runsv_needs,
))
