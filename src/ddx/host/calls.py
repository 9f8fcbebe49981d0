"""The calling context of host calls, and calls that can be abandoned.

Which probe is calling and until when (``probe_scope``), a per-call timeout
(``call_timeout``), and a pool of daemon worker threads: a call that does not
return in time (``statvfs`` on a dead NFS mount, a read of ``/proc/PID/cmdline``
of a process stuck in the kernel) is abandoned, never waited for.

Timeouts: a call's timeout is the smallest of the host's default, the one set
by ``call_timeout()`` in the calling context, and what is left of the probe's
deadline (set by the runner with ``probe_scope()``).
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time as time_mod
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["call_timeout", "current_probe", "effective_timeout", "parallel_map", "pool_call", "probe_scope"]

T = TypeVar("T")

# --- calling context: which probe is calling, and until when ------------------

_probe: contextvars.ContextVar[str | None] = contextvars.ContextVar("ddx_probe", default=None)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("ddx_deadline", default=None)
_call_timeout: contextvars.ContextVar[float | None] = contextvars.ContextVar("ddx_call_timeout", default=None)


@contextlib.contextmanager
def probe_scope(name: str, deadline: float | None = None) -> Iterator[None]:
    """Mark calls made in this context as made by probe ``name``, which must be
    done by ``deadline`` (a ``time.monotonic()`` value). Recording keys calls by
    probe so that replay is deterministic although probes run concurrently."""
    t1 = _probe.set(name)
    t2 = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(t2)
        _probe.reset(t1)


def current_probe() -> str | None:
    return _probe.get()


@contextlib.contextmanager
def call_timeout(seconds: float) -> Iterator[None]:
    """Give host calls in this context at most ``seconds`` each (e.g. a short
    statvfs timeout so one dead mount does not eat the whole probe)."""
    token = _call_timeout.set(seconds)
    try:
        yield
    finally:
        _call_timeout.reset(token)


def effective_timeout(default: float, what: str) -> float:
    t = default
    ct = _call_timeout.get()
    if ct is not None:
        t = min(t, ct)
    dl = _deadline.get()
    if dl is not None:
        left = dl - time_mod.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: probe deadline passed")
        t = min(t, left)
    return max(t, 0.001)


def parallel_map(func: Callable[[Any], T], items: list[Any], timeout: float) -> list[T | BaseException]:
    """Call ``func`` on every item in its own daemon thread (same calling
    context: probe, deadline); give up on the ones not done after ``timeout``.
    Returns, per item, the result or the exception (``TimeoutError`` for an
    abandoned call). For probes that must not let one hung item (a dead mount)
    delay the others."""
    results: list[Any] = [TimeoutError(f"did not finish within {timeout:.1f}s")] * len(items)
    done = [threading.Event() for _ in items]

    def work(i: int, item: Any) -> None:
        try:
            results[i] = func(item)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            results[i] = exc
        done[i].set()

    for i, item in enumerate(items):
        ctx = contextvars.copy_context()
        threading.Thread(target=ctx.run, args=(work, i, item), daemon=True, name="ddx-par").start()
    end = time_mod.monotonic() + timeout
    out: list[T | BaseException] = []
    for i in range(len(items)):
        done[i].wait(max(0.0, end - time_mod.monotonic()))
        out.append(results[i] if done[i].is_set() else TimeoutError(f"did not finish within {timeout:.1f}s"))
    return out


# --- abandonable calls: a pool of daemon workers --------------------------------


class _Job:
    __slots__ = ("fn", "args", "done", "lock", "abandoned", "ok", "value")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.abandoned = False
        self.ok = False
        self.value: Any = None


class _Worker:
    """A daemon thread running one job at a time. When a caller gives up on a
    job, the worker is simply not reused until (if ever) the job returns."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        threading.Thread(target=self._loop, daemon=True, name="ddx-host-call").start()

    def _loop(self) -> None:
        while True:
            job = self.inbox.get()
            if job is None:
                return
            try:
                job.value = job.fn(*job.args)
                job.ok = True
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                job.value = exc
            with job.lock:
                job.done.set()
                late = job.abandoned
            job.fn = job.args = None  # type: ignore[assignment]
            if late:
                self.pool.release(self)


class _Pool:
    MAX_IDLE = 8

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Worker] = []

    def release(self, w: _Worker) -> None:
        with self.lock:
            if len(self.idle) < self.MAX_IDLE:
                self.idle.append(w)
                return
        w.inbox.put(None)

    def call(self, fn: Callable[..., T], args: tuple[Any, ...], timeout: float, what: str) -> T:
        with self.lock:
            w = self.idle.pop() if self.idle else None
        if w is None:
            w = _Worker(self)
        job = _Job(fn, args)
        w.inbox.put(job)
        if not job.done.wait(timeout):
            with job.lock:
                if not job.done.is_set():
                    job.abandoned = True
            if job.abandoned:
                raise TimeoutError(f"{what} did not finish within {timeout:.1f}s (abandoned)")
        self.release(w)
        if job.ok:
            return job.value  # type: ignore[no-any-return]
        raise job.value


_POOL = _Pool()


def pool_call(fn: Callable[..., T], args: tuple[Any, ...], timeout: float, what: str) -> T:
    """Run ``fn(*args)`` in a worker; ``TimeoutError`` when it is not done within ``timeout``."""
    return _POOL.call(fn, args, timeout, what)
