"""Diagnosing many remote hosts at once (``ddx.api.diagnose_ssh``).

Each host gets a thread and its own SSH connection: a diagnosis mostly waits
(sampling windows, the network). Its own work (parsing what the probes read,
the engine) is Python holding the interpreter lock, so the hosts are spread
over up to one worker process per CPU with at least ``PER_PROCESS`` hosts
each (from 16 hosts on with 2 CPUs), each running its share in threads
(``python -m ddx.sshfleet``, its calls and results pickled over its stdin and
stdout: our own child, never anyone else's data).
Workers run in sessions of their own, registered with the commands ddx kills
on any way out (``ddx.host.live.kill_children``); a killed worker's ssh clients
see their stdin close and end their sessions, whose agents exit.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import time
from typing import Any

from ddx.errors import DdxError, SshError

__all__ = ["PER_PROCESS", "diagnose_many"]

PER_PROCESS = 8  # the fewest hosts a worker process gets (fewer: threads in this process)
MAX_THREADS = 64


def _threaded(items: list[tuple[int, dict[str, Any]]]) -> list[tuple[int, Any]]:
    from ddx.api import diagnose_host

    def one(item: tuple[int, dict[str, Any]]) -> tuple[int, Any]:
        i, kwargs = item
        try:
            return i, diagnose_host(**kwargs)
        except DdxError as exc:
            return i, exc

    if len(items) == 1:
        return [one(items[0])]
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(items)),
                                               thread_name_prefix="ddx-ssh") as ex:
        return list(ex.map(one, items))


def _error(message: str, code: int) -> DdxError:
    exc = SshError(message) if code == SshError.exit_code else DdxError(message)
    exc.exit_code = code
    return exc


def _start_worker(items: list[tuple[int, dict[str, Any]]]) -> Any:
    """A worker process (``python -m ddx.sshfleet``) given its share of the calls."""
    import subprocess
    import sys

    import ddx
    from ddx.host.live import _start

    src = os.path.dirname(os.path.dirname(os.path.abspath(ddx.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))
    proc = _start([sys.executable, "-m", "ddx.sshfleet"], env, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(items))
    proc.stdin.close()
    proc.stdin = None  # communicate() must not flush it
    return proc


def _worker_timeout(calls: list[dict[str, Any]]) -> float:
    """How long a worker may take: its hosts run at once, each within its connect
    timeout and run budget (the probes' window included); twice that, and a minute."""
    from ddx.config import load_config
    from ddx.host.ssh import HELLO_SLACK

    longest = 0.0
    for kw in calls:
        cfg = load_config(kw.get("config"))
        budget = kw.get("budget") or cfg.budget
        window = kw.get("window") or cfg.window
        longest = max(longest, kw["ssh"].connect_timeout + HELLO_SLACK + float(budget) + float(window))
    return 2 * longest + 60


def _collect(proc: Any, timeout: float) -> list[tuple[int, Any]]:
    import subprocess

    from ddx.host.live import _forget, _kill_group

    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        raise DdxError(f"a worker diagnosing SSH hosts did not finish within {timeout:.0f}s (killed)") from None
    finally:
        _forget(proc)
    text = err.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise DdxError(f"a worker diagnosing SSH hosts failed (exit status {proc.returncode}): "
                       + (text.strip().splitlines() or ["no message"])[-1])
    if text:  # the probes' warnings, as they would show with threads only
        import sys

        sys.stderr.write(text)
    return pickle.loads(out)  # type: ignore[no-any-return]


def diagnose_many(calls: list[dict[str, Any]], processes: int | None = None) -> list[Any]:
    """``diagnose_host(**kw)`` for each ``kw`` in ``calls``, in parallel: per call, in
    order, its ``Report`` or the ``DdxError`` it raised. ``processes``: worker
    processes (default: one per CPU from ``PER_PROCESS`` calls on)."""
    items = list(enumerate(calls))
    if processes is None:
        processes = min(os.cpu_count() or 1, len(calls) // PER_PROCESS)
    if processes <= 1:
        return [r for _i, r in sorted(_threaded(items), key=lambda x: x[0])]
    from ddx.host.live import _kill_group

    timeout = _worker_timeout(calls)
    end = time.monotonic() + timeout
    procs = [_start_worker(items[k::processes]) for k in range(processes)]
    out: dict[int, Any] = {}
    try:
        for proc in procs:
            for i, r in _collect(proc, max(1.0, end - time.monotonic())):
                out[i] = _error(r[1], r[2]) if isinstance(r, tuple) else r
    finally:
        for proc in procs:  # on the way out by an error or a signal (ddx's cleanup would kill them too)
            if proc.poll() is None:
                _kill_group(proc.pid)
    return [out[i] for i in range(len(calls))]


def _main() -> None:
    """A worker: pickled (index, kwargs) pairs on stdin, pickled (index, Report or
    (\"error\", message, exit code)) pairs on stdout."""
    import sys

    items = pickle.loads(sys.stdin.buffer.read())
    results = [(i, ("error", str(r), r.exit_code) if isinstance(r, DdxError) else r) for i, r in _threaded(items)]
    sys.stdout.buffer.write(pickle.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    _main()
