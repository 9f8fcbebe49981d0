"""Where probes read evidence: the live machine, a recording of it, a saved bundle.

``LiveHost`` reads the running system. Every call is time-boxed and
*abandonable*: filesystem calls (``statvfs`` on a dead NFS mount, a read of
``/proc/PID/cmdline`` of a process stuck in the kernel) run in a daemon worker
thread that the caller stops waiting for after the timeout (``TimeoutError``);
commands run in their own process group, killed as a whole on timeout. A sick
host therefore cannot hang ddx. ``root=`` points the file calls at another tree
(a fixture ``/proc``), like glances' ``proc_root``; commands still run on the
live host.

``RecordingHost`` wraps another host and records every call with its result or
exception; ``save()`` writes a bundle (format in ``docs/bundles.md``) with
secrets redacted and ``/proc/PID/environ`` never saved. ``BundleHost`` replays
a bundle: the same probes give the same findings, which is how tests reproduce
real incidents and how a user hands evidence to a colleague.

Timeouts: a call's timeout is the smallest of the host's default, the one set
by ``call_timeout()`` in the calling context, and what is left of the probe's
deadline (set by the runner with ``probe_scope()``).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import os
import queue
import re
import signal
import socket
import stat as stat_mod
import subprocess
import tarfile
import threading
import time as time_mod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from ddx.probes.base import CommandResult, StatResult, VfsResult

__all__ = [
    "BUNDLE_FORMAT",
    "BundleHost",
    "LiveHost",
    "RecordingHost",
    "build_bundle",
    "call_timeout",
    "current_probe",
    "parallel_map",
    "probe_scope",
    "redact_cmdline",
    "redact_output",
    "redact_text",
]

BUNDLE_FORMAT = "ddx-bundle/1"
_TOP = "ddx-bundle"  # the single top-level folder inside the tar.gz

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


def _effective_timeout(default: float, what: str) -> float:
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


# --- the live host -----------------------------------------------------------------


def _read_bytes(path: str, max_bytes: int, tail: bool) -> bytes:
    """Read at most ``max_bytes``: the head, or with ``tail`` the end. A regular
    file is seeked, so a 10 GB log costs what a small one does; pseudo-files
    (size 0 in /proc) are streamed keeping only the last ``max_bytes``."""
    with open(path, "rb", buffering=0) as fh:
        st = os.fstat(fh.fileno())
        if not tail:
            chunks, left = [], max_bytes
            while left > 0:
                b = fh.read(min(left, 1 << 20))
                if not b:
                    break
                chunks.append(b)
                left -= len(b)
            return b"".join(chunks)
        if stat_mod.S_ISREG(st.st_mode) and st.st_size > 0:
            if st.st_size > max_bytes:
                fh.seek(st.st_size - max_bytes)
            data = bytearray()
            while len(data) < max_bytes + (1 << 16):  # the file may grow while we read
                b = fh.read(1 << 20)
                if not b:
                    break
                data += b
            return bytes(data[-max_bytes:]) if max_bytes else b""
        buf = bytearray()
        while True:
            b = fh.read(1 << 20)
            if not b:
                break
            buf += b
            if len(buf) > 2 * max_bytes + (1 << 20):
                del buf[: len(buf) - max_bytes]
        return bytes(buf[-max_bytes:]) if max_bytes else b""


def _listdir(path: str) -> list[str]:
    return sorted(os.listdir(path))


def _stat(path: str) -> StatResult:
    st = os.stat(path)
    return StatResult(st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime, st.st_ctime, st.st_ino, st.st_nlink)


def _statvfs(path: str) -> VfsResult:
    v = os.statvfs(path)
    return VfsResult(
        total=v.f_blocks * v.f_frsize,
        free=v.f_bavail * v.f_frsize,
        files=v.f_files,
        files_free=v.f_favail,
        readonly=bool(v.f_flag & os.ST_RDONLY),
    )


class LiveHost:
    """The running machine. ``root`` prefixes every path of the file calls
    (tests point it at a fixture tree); ``default_timeout`` bounds each call."""

    def __init__(self, root: str = "/", default_timeout: float = 2.0) -> None:
        self.root = os.path.abspath(root)
        self.default_timeout = default_timeout
        self.name = self._hostname()

    def _hostname(self) -> str:
        if self.root != "/":
            for p in ("etc/hostname", "proc/sys/kernel/hostname"):
                try:
                    with open(os.path.join(self.root, p), encoding="utf-8", errors="replace") as fh:
                        name = fh.read().strip()
                    if name:
                        return name
                except OSError:
                    pass
        return socket.gethostname()

    def _path(self, path: str) -> str:
        if self.root == "/":
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def _call(self, fn: Callable[..., T], what: str, *args: Any) -> T:
        return _POOL.call(fn, args, _effective_timeout(self.default_timeout, what), what)

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        data = self._call(_read_bytes, f"read {path}", self._path(path), max_bytes, tail)
        return data.decode("utf-8", errors="replace")

    def listdir(self, path: str) -> list[str]:
        return self._call(_listdir, f"listdir {path}", self._path(path))

    def stat(self, path: str) -> StatResult:
        return self._call(_stat, f"stat {path}", self._path(path))

    def statvfs(self, path: str) -> VfsResult:
        return self._call(_statvfs, f"statvfs {path}", self._path(path))

    def readlink(self, path: str) -> str:
        return self._call(os.readlink, f"readlink {path}", self._path(path))

    def run(self, argv: list[str], *, timeout: float = 2.0, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run ``argv`` (never a shell) in a new session with a C locale; on
        timeout kill its whole process group and raise ``TimeoutError``.
        ``env`` adds variables for the child only (passwords: never in argv)."""
        what = f"command {' '.join(argv)[:80]}"
        t = _effective_timeout(timeout, what)
        env = dict(os.environ, **(env or {}), LC_ALL="C", LANG="C")
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
        )
        try:
            out, err = proc.communicate(timeout=t)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.kill()
            try:
                proc.communicate(timeout=0.5)
            except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipes
                for f in (proc.stdout, proc.stderr):
                    with contextlib.suppress(OSError):
                        f.close()  # type: ignore[union-attr]
            raise TimeoutError(f"{what} did not finish within {t:.1f}s (killed)") from None
        return CommandResult(
            tuple(argv),
            proc.returncode,
            out.decode("utf-8", errors="replace"),
            err.decode("utf-8", errors="replace"),
        )

    def time(self) -> float:
        return time_mod.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time_mod.sleep(seconds)


# --- redaction ---------------------------------------------------------------------

# Words that make a key or an option name secret: password=, --api-key X, TOKEN=...
_TEXT_SECRET = (
    r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|apikey|access[-_]?key|private[-_]?key"
    r"|credentials?|session[-_]?key|client[-_]?secret)"
)
_OPT_SECRET = rf"(?:{_TEXT_SECRET}|auth|key)"
_SECRET_OPT_RE = re.compile(rf"(?i)^(?:[a-z0-9_.-]*[-_.])?{_OPT_SECRET}$")
_OPT_RE = re.compile(r"^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$")
_OPT_EQ_RE = re.compile(r"^(--?[A-Za-z0-9][A-Za-z0-9_.-]*)=(.*)$", re.S)
_KV_RE = re.compile(  # the key's own prefix (db_, APP_) is left as it is, outside the match
    rf"(?i)({_TEXT_SECRET})([\"']?\s*(?:=>|[=:])\s*)(\"[^\"]*\"|'[^']*'|[^\s&;,\"'}}]+)"
)
_URL_CRED_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*):([^@\s/]+)@")
_BEARER_RE = re.compile(r"(?i)\b(bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})")
_KNOWN_TOKEN_RE = re.compile(
    r"\b(AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{20,}|xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{5,})"
)
REDACTED = "***"


_KV_FAST = re.compile(r"(?:pass|pwd|secret|token|key|credential)[a-z]*[\"']?\s*(?:=>|[=:])")


def redact_text(text: str) -> str:
    """Hide secrets in free text (log lines, command output, config files):
    ``password=x``, ``token: x``, ``scheme://user:pass@``, ``Bearer x`` and
    well-known token formats (AWS, GitHub, Slack, JWT). Lines without a hint
    word are not searched: a 4 MB log costs tens of milliseconds."""
    if not text:
        return text
    if "://" in text:
        text = _URL_CRED_RE.sub(rf"\1:{REDACTED}@", text)
    low = text.lower()
    if _KV_FAST.search(low):
        # Only lines with a candidate get the full (slower) expression.
        lines = text.split("\n")
        for i, line in enumerate(lines):
            if _KV_FAST.search(line.lower()):
                lines[i] = _KV_RE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, line)
        text = "\n".join(lines)
        low = text.lower()
    if "bearer" in low or "basic" in low:
        text = _BEARER_RE.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _KNOWN_TOKEN_RE.sub(REDACTED, text)


def _secret_option(name: str) -> bool:
    return bool(_SECRET_OPT_RE.match(name))


def redact_cmdline(args: list[str]) -> list[str]:
    """Hide secrets in one command line, argument by argument:
    ``--password X``, ``--password=X``, ``-pSECRET`` (mysql style; ``-p8080``
    stays, a port), ``-u user:pass`` / ``--user user:pass`` (curl),
    ``password=X``, URLs with credentials and known token formats."""
    return [redact_text(a) for a in _redact_args(args, skip_first=True)]


def _redact_args(args: list[str], *, skip_first: bool) -> list[str]:
    """The option-aware rules of ``redact_cmdline`` (no free-text rules)."""
    out: list[str] = []
    hide_next = False
    user_next = False
    for i, arg in enumerate(args):
        if hide_next:
            out.append(REDACTED if arg else arg)
            hide_next = bool(not arg)  # several spaces in free text: hide the next word
            continue
        if user_next:
            user_next = False
            if ":" in arg:
                out.append(arg.split(":", 1)[0] + ":" + REDACTED)
                continue
        if i > 0 or not skip_first:
            m = _OPT_EQ_RE.match(arg)
            if m and _secret_option(m.group(1).lstrip("-")):
                out.append(f"{m.group(1)}={REDACTED}")
                continue
            m = _OPT_RE.match(arg)
            if m:
                name = m.group(1)
                if _secret_option(name) and i + 1 < len(args) and not args[i + 1].startswith("-"):
                    out.append(arg)
                    hide_next = True
                    continue
                if arg in ("-u", "--user", "--proxy-user"):
                    out.append(arg)
                    user_next = True
                    continue
            if arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
                val = arg[2:]
                if not val.isdigit() and not val.startswith("="):
                    out.append("-p" + REDACTED)
                    continue
        out.append(arg)
    return out


# Lines of free text that may hold a command line with a secret option.
_CMDLINE_HINT = re.compile(
    rf"(?i)(?:^|\s)(?:--?[a-z0-9_.-]*{_OPT_SECRET}(?:[\s=]|$)|-p[^\s\d=-]|-u\s+\S+:|--(?:proxy-)?user\s+\S+:)"
)


def redact_output(text: str) -> str:
    """Hide secrets in command output or a file: the free-text rules, plus the
    command-line rules on lines that look like they hold one (``ps`` output,
    ``systemctl status``, a cron log line)."""
    text = redact_text(text)
    if not _CMDLINE_HINT.search(text):
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if _CMDLINE_HINT.search(line):
            lines[i] = " ".join(_redact_args(line.split(" "), skip_first=False))
    return "\n".join(lines)


_CMDLINE_PATH = re.compile(r"^/proc/(?:\d+|self)(?:/task/\d+)?/cmdline$")
_ENVIRON_PATH = re.compile(r"^/proc/(?:\d+|self)(?:/task/\d+)?/environ$")


def _redact_cmdline_file(text: str) -> str:
    if not text:
        return text
    end = "\0" if text.endswith("\0") else ""
    parts = text[:-1].split("\0") if end else text.split("\0")
    if len(parts) == 1 and " " in parts[0]:  # a process that rewrote its title into one string
        parts = redact_cmdline(parts[0].split(" "))
        return " ".join(parts) + end
    return "\0".join(redact_cmdline(parts)) + end


# --- recording and bundles ---------------------------------------------------------


def _key(op: str, args: dict[str, Any]) -> str:
    return op + " " + json.dumps(args, sort_keys=True, separators=(",", ":"))


def _encode_error(exc: BaseException) -> dict[str, Any]:
    out: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, OSError):
        if exc.errno is not None:
            out["errno"] = exc.errno
        if exc.filename is not None:
            out["filename"] = str(exc.filename)
        if exc.strerror:
            out["message"] = exc.strerror
    return out


_ERROR_TYPES: dict[str, type[BaseException]] = {
    t.__name__: t
    for t in (
        OSError,
        FileNotFoundError,
        PermissionError,
        NotADirectoryError,
        IsADirectoryError,
        FileExistsError,
        ProcessLookupError,
        ChildProcessError,
        ConnectionError,
        InterruptedError,
        BlockingIOError,
        TimeoutError,
        LookupError,
        KeyError,
        ValueError,
        UnicodeError,
        RuntimeError,
    )
}


def _decode_error(rec: dict[str, Any]) -> BaseException:
    cls = _ERROR_TYPES.get(rec.get("error", ""), OSError)
    if issubclass(cls, OSError) and "errno" in rec:
        if "filename" in rec:
            return cls(rec["errno"], rec.get("message", ""), rec["filename"])
        return cls(rec["errno"], rec.get("message", ""))
    return cls(rec.get("message", ""))


class RecordingHost:
    """Wraps a host and records every call and its outcome (value or
    exception), keyed by calling probe, operation and arguments, a list per
    key for repeated reads. The probe gets the real value; texts are redacted
    when saved (not while the probe waits), and a process environment is not
    even kept in memory."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self._lock = threading.Lock()
        # (probe, key) -> {"op", "args", "probe", "outcomes": [...]}, in first-call order
        self._calls: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.started = time_mod.time()

    def _record(self, op: str, args: dict[str, Any], outcome: dict[str, Any]) -> None:
        probe = current_probe()
        k = (probe, _key(op, args))
        with self._lock:
            entry = self._calls.get(k)
            if entry is None:
                entry = self._calls[k] = {"op": op, "args": args, "probe": probe, "outcomes": []}
            entry["outcomes"].append(outcome)

    def _do(self, op: str, args: dict[str, Any], fn: Callable[[], T], encode: Callable[[T], dict[str, Any]]) -> T:
        try:
            value = fn()
        except Exception as exc:
            self._record(op, args, _encode_error(exc))
            raise
        self._record(op, args, encode(value))
        return value

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        args = {"path": path, "max_bytes": max_bytes, "tail": tail}

        def enc(text: str) -> dict[str, Any]:
            if _ENVIRON_PATH.match(path):
                return {
                    "error": "PermissionError",
                    "errno": 13,
                    "message": "not saved: process environments are never put in a bundle",
                    "filename": path,
                }
            if _CMDLINE_PATH.match(path):
                return {"text": text, "kind": "cmdline"}
            return {"text": text}

        return self._do("read_text", args, lambda: self.inner.read_text(path, max_bytes=max_bytes, tail=tail), enc)

    def listdir(self, path: str) -> list[str]:
        return self._do("listdir", {"path": path}, lambda: self.inner.listdir(path), lambda v: {"value": list(v)})

    def stat(self, path: str) -> StatResult:
        return self._do("stat", {"path": path}, lambda: self.inner.stat(path), lambda v: {"value": asdict(v)})

    def statvfs(self, path: str) -> VfsResult:
        return self._do("statvfs", {"path": path}, lambda: self.inner.statvfs(path), lambda v: {"value": asdict(v)})

    def readlink(self, path: str) -> str:
        return self._do("readlink", {"path": path}, lambda: self.inner.readlink(path), lambda v: {"value": v})

    def run(self, argv: list[str], *, timeout: float = 2.0, env: Mapping[str, str] | None = None) -> CommandResult:
        """Recorded by argv only: ``env`` (which may hold a password) is never saved."""

        def enc(r: CommandResult) -> dict[str, Any]:
            return {
                "returncode": r.returncode,
                "stdout": r.stdout,
                "stderr": r.stderr,
            }

        return self._do("run", {"argv": redact_cmdline(list(argv))}, lambda: self.inner.run(argv, timeout=timeout, env=env), enc)

    def time(self) -> float:
        return self._do("time", {}, self.inner.time, lambda v: {"value": v})

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)

    # -- saving

    def calls(self) -> list[dict[str, Any]]:
        """The recorded calls, in first-call order (texts not yet redacted)."""
        with self._lock:
            return [dict(e, outcomes=list(e["outcomes"])) for e in self._calls.values()]

    def save(self, path: str, collection: Any = None, extra: dict[str, Any] | None = None) -> str:
        """Write the bundle to ``path`` (a ``.tar.gz``; the suffix is added when
        missing) and return the path written. ``collection`` (a runner
        ``Collection``) goes into the manifest: probe results and findings."""
        from ddx import __version__

        if not (path.endswith(".tar.gz") or path.endswith(".tgz")):
            path += ".tar.gz"
        members: dict[str, bytes] = {}
        used: set[str] = set()
        index: list[dict[str, Any]] = []
        n_cmd = 0
        for entry in self.calls():
            outcomes = []
            for oc in entry["outcomes"]:
                oc = dict(oc)
                if "text" in oc:
                    name = _member_name("files", entry["args"]["path"], used)
                    text = oc.pop("text")
                    text = _redact_cmdline_file(text) if oc.pop("kind", "") == "cmdline" else redact_output(text)
                    members[name] = text.encode("utf-8")
                    oc["file"] = name
                elif "stdout" in oc:
                    n_cmd += 1
                    base = os.path.basename(entry["args"]["argv"][0]) if entry["args"]["argv"] else "cmd"
                    name = _member_name("commands", f"{n_cmd:03d}-{base}.out", used)
                    members[name] = redact_output(oc.pop("stdout")).encode("utf-8")
                    oc["stderr"] = redact_output(oc["stderr"])
                    oc["stdout_file"] = name
                elif "error" in oc:  # messages may quote a command line
                    for key in ("message", "filename"):
                        if key in oc:
                            oc[key] = redact_output(oc[key])
                outcomes.append(oc)
            index.append({"op": entry["op"], "args": entry["args"], "probe": entry["probe"], "outcomes": outcomes})
        manifest: dict[str, Any] = {
            "format": BUNDLE_FORMAT,
            "ddx_version": __version__,
            "host": self.name,
            "created": _iso(time_mod.time()),
            "recording_started": _iso(self.started),
        }
        if collection is not None:
            manifest["collection"] = _redact_json(
                {
                    "started": collection.started,
                    "seconds": round(collection.seconds, 3),
                    "results": [r.to_dict() for r in collection.results],
                    "findings": [f.to_dict() for f in collection.findings],
                }
            )
        if extra:
            manifest.update(extra)
        members["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
        members["calls.json"] = json.dumps(index, indent=1, sort_keys=True).encode()
        tmp = f"{path}.tmp{os.getpid()}"
        now = time_mod.time()
        try:
            with tarfile.open(tmp, "w:gz") as tar:
                for name in ["manifest.json", "calls.json", *sorted(k for k in members if "/" in k)]:
                    data = members[name]
                    info = tarfile.TarInfo(f"{_TOP}/{name}")
                    info.size = len(data)
                    info.mtime = int(now)
                    info.mode = 0o600
                    tar.addfile(info, io.BytesIO(data))
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return path


def _redact_json(value: Any) -> Any:
    """Redact every string in a JSON-like value (evidence samples quote logs)."""
    if isinstance(value, str):
        return redact_output(value)
    if isinstance(value, list):
        return [_redact_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _redact_json(v) for k, v in value.items()}
    return value


def _member_name(folder: str, path: str, used: set[str]) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    base = f"{folder}/{'/'.join(parts) or '_'}"
    name, n = base, 1
    while name in used:
        name = f"{base}~{n}"
        n += 1
    used.add(name)
    return name


def _iso(t: float) -> str:
    return time_mod.strftime("%Y-%m-%dT%H:%M:%S%z", time_mod.localtime(t))


class BundleHost:
    """Replays a bundle saved by ``RecordingHost.save`` (the ``.tar.gz``, or the
    same layout unpacked into a directory). Repeated calls return the recorded
    outcomes in order, then the last one again; a call that was not recorded
    raises ``LookupError``; a recorded exception is raised again with its type.
    Calls are matched to the recording of the same probe first, then of any
    probe; a ``read_text`` with other limits is served from a recording of the
    same file."""

    def __init__(self, path: str) -> None:
        from ddx.errors import UsageError

        self.path = path
        try:
            self._members = _read_bundle(path)
            manifest = json.loads(self._members["manifest.json"])
            calls = json.loads(self._members["calls.json"])
        except (OSError, tarfile.TarError, KeyError, ValueError, EOFError) as exc:
            raise UsageError(f"{path}: not a readable ddx bundle ({exc})") from None
        if manifest.get("format") != BUNDLE_FORMAT:
            raise UsageError(f"{path}: unsupported bundle format {manifest.get('format')!r} (want {BUNDLE_FORMAT})")
        self.manifest: dict[str, Any] = manifest
        self.name: str = str(manifest.get("host", "bundle"))
        # When the evidence was collected (ISO-8601), for the runner's Collection.started.
        coll = manifest.get("collection")
        self.evidence_time: str | None = (
            (coll.get("started") if isinstance(coll, dict) else None) or manifest.get("recording_started") or None
        )
        self._lock = threading.Lock()
        self._by_probe: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
        self._any: dict[str, list[dict[str, Any]]] = {}
        self._read_args: dict[str, list[dict[str, Any]]] = {}
        self._pos: dict[tuple[str | None, str], int] = {}
        try:
            for entry in calls:
                k = _key(entry["op"], entry["args"])
                outs = [o for o in entry["outcomes"] if isinstance(o, dict)]
                if not outs:
                    continue
                self._by_probe.setdefault((entry.get("probe"), k), []).extend(outs)
                self._any.setdefault(k, []).extend(outs)
                if entry["op"] == "read_text":
                    self._read_args.setdefault(entry["args"]["path"], []).append(entry["args"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise UsageError(f"{path}: calls.json is malformed ({type(exc).__name__}: {exc})") from None

    def _next(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        k = _key(op, args)
        probe = current_probe()
        with self._lock:
            if (probe, k) in self._by_probe:
                pk: tuple[str | None, str] = (probe, k)
                outs = self._by_probe[pk]
            elif k in self._any:  # recorded by another probe (or by build_bundle): own cursor
                pk, outs = (probe, "*" + k), self._any[k]
            else:
                raise LookupError(f"not recorded in bundle {os.path.basename(self.path)}: {op} {_fmt_args(args)}")
            i = self._pos.get(pk, 0)
            self._pos[pk] = i + 1
            return outs[min(i, len(outs) - 1)]

    def _value(self, oc: dict[str, Any]) -> Any:
        if "error" in oc:
            raise _decode_error(oc)
        return oc.get("value")

    def _text(self, oc: dict[str, Any]) -> str:
        if "error" in oc:
            raise _decode_error(oc)
        return self._member(oc.get("file"))

    def _member(self, name: Any) -> str:
        data = self._members.get(str(name))
        if data is None:
            raise LookupError(f"bundle {os.path.basename(self.path)} lacks its member {name!r}")
        return data.decode("utf-8", errors="replace")

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        args = {"path": path, "max_bytes": max_bytes, "tail": tail}
        try:
            oc = self._next("read_text", args)
        except LookupError:
            alt = self._read_args.get(path)
            if not alt:
                raise
            # Another read of the same file (other limits): serve it cut to size.
            oc = self._next("read_text", max(alt, key=lambda a: (a["tail"] == tail, a["max_bytes"])))
            data = self._text(oc).encode("utf-8")
            if len(data) > max_bytes:
                data = data[-max_bytes:] if tail else data[:max_bytes]
            return data.decode("utf-8", errors="replace")
        return self._text(oc)

    def listdir(self, path: str) -> list[str]:
        return list(self._value(self._next("listdir", {"path": path})))

    def stat(self, path: str) -> StatResult:
        return StatResult(**self._value(self._next("stat", {"path": path})))

    def statvfs(self, path: str) -> VfsResult:
        return VfsResult(**self._value(self._next("statvfs", {"path": path})))

    def readlink(self, path: str) -> str:
        return str(self._value(self._next("readlink", {"path": path})))

    def run(self, argv: list[str], *, timeout: float = 2.0, env: Mapping[str, str] | None = None) -> CommandResult:
        oc = self._next("run", {"argv": redact_cmdline(list(argv))})
        if "error" in oc:
            raise _decode_error(oc)
        stdout = self._member(oc["stdout_file"]) if "stdout_file" in oc else ""
        return CommandResult(tuple(argv), int(oc["returncode"]), stdout, oc.get("stderr", ""))

    def time(self) -> float:
        try:
            return float(self._value(self._next("time", {})))
        except LookupError:
            return _parse_iso(self.manifest.get("recording_started") or self.manifest.get("created"))

    def sleep(self, seconds: float) -> None:
        return None


def _fmt_args(args: dict[str, Any]) -> str:
    if "path" in args:
        return str(args["path"])
    if "argv" in args:
        return " ".join(args["argv"])
    return ""


def _parse_iso(s: str | None) -> float:
    if not s:
        return time_mod.time()
    from datetime import datetime

    try:
        return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S%z").timestamp()
    except ValueError:
        return time_mod.time()


def _read_bundle(path: str) -> dict[str, bytes]:
    """All members of a bundle, by name relative to its top folder. Read in
    memory (never extracted), so a hostile archive cannot write anywhere."""
    out: dict[str, bytes] = {}
    if os.path.isdir(path):
        top = os.path.join(path, _TOP) if os.path.isdir(os.path.join(path, _TOP)) else path
        for dirpath, _dirs, files in os.walk(top):
            for f in files:
                full = os.path.join(dirpath, f)
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, top).replace(os.sep, "/")] = fh.read()
        return out
    with tarfile.open(path, "r:*") as tar:
        for m in tar.getmembers():
            if not m.isfile():
                continue
            name = m.name
            if name.startswith(_TOP + "/"):
                name = name[len(_TOP) + 1 :]
            fh = tar.extractfile(m)
            if fh is not None:
                out[name] = fh.read()
    return out


def build_bundle(
    path: str,
    *,
    files: dict[str, Any] | None = None,
    commands: dict[tuple[str, ...], Any] | None = None,
    listdirs: dict[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
    statvfs: dict[str, Any] | None = None,
    readlinks: dict[str, Any] | None = None,
    times: list[float] | None = None,
    host: str = "fixture",
) -> str:
    """Write an unpacked bundle folder from plain values: how tests (and people)
    describe an incident's raw evidence without a live host. Each value is the
    outcome, a list of outcomes for successive reads, or an exception to raise.
    ``files`` are served to any ``read_text`` limits; ``commands`` values are
    ``CommandResult``, ``(returncode, stdout)`` or a stdout string."""
    from ddx import __version__

    os.makedirs(path, exist_ok=True)
    members: dict[str, bytes] = {}
    used: set[str] = set()
    calls: list[dict[str, Any]] = []

    def outcomes(value: Any, enc: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
        # A list means successive outcomes, except a listdir's own list of names.
        single = enc is _enc_list and isinstance(value, list) and all(isinstance(x, str) for x in value)
        vals = value if isinstance(value, list) and not single else [value]
        return [_encode_error(v) if isinstance(v, BaseException) else enc(v) for v in vals]

    def enc_file(p: str) -> Callable[[Any], dict[str, Any]]:
        def enc(text: Any) -> dict[str, Any]:
            name = _member_name("files", p, used)
            members[name] = str(text).encode("utf-8")
            return {"file": name}

        return enc

    for p, v in (files or {}).items():
        calls.append({"op": "read_text", "args": {"path": p, "max_bytes": 1 << 40, "tail": False}, "probe": None,
                      "outcomes": outcomes(v, enc_file(p))})
    n = 0
    for argv, v in (commands or {}).items():
        def enc_cmd(r: Any, argv: tuple[str, ...] = argv) -> dict[str, Any]:
            nonlocal n
            if isinstance(r, CommandResult):
                rc, out, err = r.returncode, r.stdout, r.stderr
            elif isinstance(r, tuple):
                rc, out, err = r[0], r[1], (r[2] if len(r) > 2 else "")
            else:
                rc, out, err = 0, str(r), ""
            n += 1
            name = _member_name("commands", f"{n:03d}-{os.path.basename(argv[0])}.out", used)
            members[name] = out.encode("utf-8")
            return {"returncode": rc, "stdout_file": name, "stderr": err}

        vals = v if isinstance(v, list) else [v]
        calls.append({"op": "run", "args": {"argv": redact_cmdline(list(argv))}, "probe": None,
                      "outcomes": [_encode_error(x) if isinstance(x, BaseException) else enc_cmd(x) for x in vals]})
    for op, table, enc in (
        ("listdir", listdirs, _enc_list),
        ("stat", stats, _enc_dataclass),
        ("statvfs", statvfs, _enc_dataclass),
        ("readlink", readlinks, _enc_value),
    ):
        for p, v in (table or {}).items():
            calls.append({"op": op, "args": {"path": p}, "probe": None, "outcomes": outcomes(v, enc)})
    if times:
        calls.append({"op": "time", "args": {}, "probe": None, "outcomes": [{"value": float(t)} for t in times]})
    manifest = {"format": BUNDLE_FORMAT, "ddx_version": __version__, "host": host,
                "created": _iso(time_mod.time()), "recording_started": _iso(time_mod.time())}
    members["manifest.json"] = json.dumps(manifest, indent=2).encode()
    members["calls.json"] = json.dumps(calls, indent=1).encode()
    for name, data in members.items():
        full = os.path.join(path, *name.split("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(data)
    return path


def _enc_list(v: Any) -> dict[str, Any]:
    return {"value": list(v)}


def _enc_dataclass(v: Any) -> dict[str, Any]:
    return {"value": asdict(v) if not isinstance(v, dict) else v}


def _enc_value(v: Any) -> dict[str, Any]:
    return {"value": v}
