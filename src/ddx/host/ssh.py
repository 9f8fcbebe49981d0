"""A remote machine as a Host, read over one SSH session (``docs/ssh.md``).

``SshHost`` starts the system OpenSSH client once (so ``~/.ssh/config``, the
agent and ``known_hosts`` work as for any ssh), in batch mode, running
``python3 -I -S -c BOOTSTRAP`` on the remote host; the bootstrap reads the
agent (``ddx.host.sshagent``, standard library only) from the session's stdin.
Nothing is installed or written there. Every host call is one JSON-lines
request over that single connection, answered by the agent in a thread of its
own, so that a read hung in the remote kernel is abandoned by this side after
its timeout (``TimeoutError``) exactly like ``LiveHost``'s calls; commands run
there without a shell, in their own session, killed on timeout.

A host that refuses, is unknown, fails authentication or does not answer
raises ``SshError`` (one line naming the target) within ``connect_timeout``.

``live`` is False (it is not this machine). A probe's network exchange with a
service there (``ddx.host.net``) goes through ``connect``: the agent opens the
connection on the remote host and relays its bytes, so 127.0.0.1:PORT is that
host's loopback. ``psql`` and ``mysql`` run on the remote host through ``run``.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import itertools
import json
import os
import queue
import shlex
import socket
import subprocess
import threading
import time as time_mod
import weakref
from collections.abc import Mapping, Sequence
from importlib import resources
from types import TracebackType
from typing import Any

from ddx.errors import SshError, UsageError
from ddx.host.base import CommandResult, StatResult, VfsResult
from ddx.host.bundle import decode_error
from ddx.host.calls import effective_timeout
from ddx.host.live import _forget, _kill_group, _start

__all__ = ["SshHost", "check_target", "ssh_argv"]

BOOTSTRAP = 'import sys;b=sys.stdin.buffer;n=int(b.readline());exec(compile(b.read(n),"ddx-ssh-agent","exec"))'
REMOTE_COMMAND = (  # python3 on the PATH, else RHEL's own (/usr/libexec/platform-python, 3.6) where python3 is not installed
    'p=$(command -v python3 2>/dev/null) || p=/usr/libexec/platform-python; '
    '[ -x "$p" ] || { echo "ddx-agent: python3 not found" >&2; exit 127; }; '
    f'exec "$p" -I -S -c {shlex.quote(BOOTSTRAP)}'
)
HELLO_SLACK = 4.0  # seconds after ConnectTimeout for authentication and python3 to start
RUN_SLACK = 1.0  # seconds a command's answer may take on the wire after its remote timeout
MAX_LINE = 64 << 20  # one answer (a command's output is capped at 16 MiB each side remotely)

_open_hosts: weakref.WeakSet[SshHost] = weakref.WeakSet()


def _close_all() -> None:
    for h in list(_open_hosts):
        h.close()


atexit.register(_close_all)


def check_target(target: str) -> str:
    """``[user@]host`` or an ssh config alias; refuses what ssh would take for an option."""
    t = target.strip()
    if not t or t.startswith("-") or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in t):
        raise UsageError(f"--ssh: not a host ([user@]host or an ssh config alias): {target!r}")
    host, sep, port = t.rpartition(":")
    if sep and port.isdigit() and host and ":" not in host.split("@")[-1] and not t.startswith("ssh://"):
        # ssh takes no host:port; it does take an ssh:// URI with a port
        raise UsageError(f"--ssh {t}: ssh takes no host:port; give ssh://{host}:{port} (or --ssh-option Port={port})")
    return t


def ssh_argv(target: str, *, ssh_config: str | None = None, options: Sequence[str] = (),
             connect_timeout: float = 10.0, ssh: str = "ssh") -> list[str]:
    """The ssh command line (ssh keeps the first value given for an option:
    batch mode and the connect timeout cannot be overridden; ``options`` can
    override the keep-alive and log level)."""
    argv = [ssh, "-T", "-x", "-a", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(connect_timeout))}",
            "-o", "ClearAllForwardings=yes", "-o", "RequestTTY=no", "-o", "ControlMaster=no", "-o", "ControlPath=none"]
    if ssh_config:
        argv += ["-F", ssh_config]
    for opt in options:
        argv += ["-o", opt]
    argv += ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
    return [*argv, "--", target, REMOTE_COMMAND]


# ssh's stderr -> one reason; the first match wins.
_REASONS = (
    ("connection refused", "connection refused"),
    ("could not resolve hostname", "unknown host (the name does not resolve)"),
    ("name or service not known", "unknown host (the name does not resolve)"),
    ("host key verification failed", "host key verification failed (unknown or changed host key)"),
    ("permission denied", "authentication failed ({line})"),
    ("too many authentication failures", "authentication failed ({line})"),
    ("banner exchange", "no SSH answer within {t:g}s (the port accepts connections but does not speak SSH)"),
    ("timed out", "connection timed out after {t:g}s"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network is unreachable"),
    ("ddx-agent: python3 not found", "python3 is not installed there (ddx needs python3 on the remote host)"),
    ("connection closed", "connection closed by the remote host"),
    ("connection reset", "connection reset by the remote host"),
)
_NOISE = ("warning: permanently added", "pseudo-terminal", "debug", "**", "authorized uses only")


def ssh_reason(stderr: str, connect_timeout: float) -> str:
    """One reason from ssh's stderr: its noise dropped, its cause kept."""
    lines = [ln.strip() for ln in stderr.replace("\r", "\n").split("\n")]
    lines = [ln for ln in lines if ln and not ln.lower().startswith(_NOISE)]
    for line in lines:
        low = line.lower()
        for key, text in _REASONS:
            if key in low:
                return text.format(line=line.removeprefix("ssh: ").rstrip("."), t=connect_timeout)
    if lines:
        return lines[-1].removeprefix("ssh: ")[:300]
    return ""


class _Pending:
    __slots__ = ("done", "value", "exc")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.exc: BaseException | None = None


class SshHost:
    """A remote machine over one SSH session. Use as a context manager (or call
    ``close``); still-open hosts are closed at exit, and ddx's signal handling
    kills the ssh process with the probes' commands."""

    def __init__(self, target: str, *, ssh_config: str | None = None, options: Sequence[str] = (),
                 connect_timeout: float = 10.0, default_timeout: float = 2.0, ssh: str = "ssh") -> None:
        self.target = check_target(target)
        self.connect_timeout = connect_timeout
        self.default_timeout = default_timeout
        self.live = False
        self.remote = f"ssh {self.target}"  # what offline_reason() names
        self.name = self.target
        self.python = ""
        self.remote_pid = 0
        self._argv = ssh_argv(self.target, ssh_config=ssh_config, options=options,
                              connect_timeout=connect_timeout, ssh=ssh)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._wlock = threading.Lock()
        self._out: list[bytes] = []  # requests not yet written
        self._writing = False
        self._pending: dict[int, _Pending] = {}
        self._relays: dict[int, _Relay] = {}  # connections made there, by id
        self._stderr = bytearray()
        self._hello = threading.Event()
        self._lost: str | None = None
        self._offset = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._connect()

    # -- the session

    def _fail(self, reason: str) -> SshError:
        self.close()
        return SshError(f"ssh {self.target}: {reason}")

    def _connect(self) -> None:
        env = dict(os.environ, LC_ALL="C", LANG="C")
        try:
            self._proc = _start(self._argv, env, stdin=subprocess.PIPE)
        except FileNotFoundError:
            raise SshError(f"ssh {self.target}: the ssh client ({self._argv[0]}) is not installed here") from None
        _open_hosts.add(self)
        threading.Thread(target=self._read_answers, daemon=True, name="ddx-ssh-out").start()
        threading.Thread(target=self._read_stderr, daemon=True, name="ddx-ssh-err").start()
        code = resources.files("ddx.host").joinpath("sshagent.py").read_bytes()
        with contextlib.suppress(OSError):  # ssh already gone: its reason is on stderr
            self._write(b"%d\n" % len(code) + code)
        wait = self.connect_timeout + HELLO_SLACK
        if not self._hello.wait(wait):
            raise self._fail(f"no answer within {wait:g}s")
        if self._lost is not None:
            raise self._fail(self._lost)
        if tuple(int(x) for x in self.python.split(".")[:2]) < (3, 6):
            raise self._fail(f"python3 there is {self.python}; ddx needs 3.6 or later")
        t0 = time_mod.time()
        try:
            remote = float(self._request("time", "clock", self.connect_timeout))
        except (OSError, TimeoutError) as exc:
            raise self._fail(f"no answer from the agent ({exc})") from None
        self._offset = remote - (t0 + time_mod.time()) / 2

    def _write(self, data: bytes) -> None:
        """Queue ``data``; the first thread to find nobody writing writes all that
        was queued meanwhile in one go (fewer writes and SSH packets). Should a
        write fail, ssh is gone: the reader fails every pending request."""
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise BrokenPipeError("closed")
        with self._wlock:
            self._out.append(data)
            if self._writing:
                return
            self._writing = True
        while True:
            with self._wlock:
                if not self._out:
                    self._writing = False
                    return
                chunk, self._out = b"".join(self._out), []
            try:
                proc.stdin.write(chunk)
                proc.stdin.flush()
            except BaseException:
                with self._wlock:
                    self._writing = False
                raise

    def _read_stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        fd = proc.stderr.fileno()
        with contextlib.suppress(OSError):
            for chunk in iter(lambda: os.read(fd, 65536), b""):
                self._stderr += chunk
                del self._stderr[: max(0, len(self._stderr) - 65536)]

    def _read_answers(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        try:
            for line in proc.stdout:
                if len(line) > MAX_LINE:
                    continue
                try:
                    msg = json.loads(line[line.find(b"{"):])  # a login script may print before the agent's hello
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                if "sock" in msg:
                    with self._lock:
                        relay = self._relays.get(msg["sock"])
                    if relay is not None:
                        relay.inbox.put(base64.b64decode(msg["data"]) if "data" in msg else None)
                    continue
                if "hello" in msg:
                    self.name = str(msg.get("hostname") or self.target)
                    self.python = str(msg.get("python", "0.0"))
                    self.remote_pid = int(msg.get("pid", 0))
                    self._hello.set()
                    continue
                with self._lock:
                    slot = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
                if slot is None:  # abandoned by its caller
                    continue
                if "error" in msg:
                    slot.exc = decode_error(msg)
                else:
                    slot.value = msg.get("ok")
                slot.done.set()
        except (OSError, ValueError):
            pass
        self._on_lost()

    def _on_lost(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)
        time_mod.sleep(0.05)  # the stderr reader's last chunk
        reason = ssh_reason(self._stderr.decode("utf-8", "replace"), self.connect_timeout)
        if not reason:
            code = proc.returncode if proc is not None else None
            reason = "the connection closed" + (f" (ssh exit status {code})" if code not in (None, 0) else "")
        with self._lock:
            self._lost = self._lost or reason
            pending, self._pending = self._pending, {}
            relays, self._relays = self._relays, {}
        for relay in relays.values():
            relay.inbox.put(None)
        for slot in pending.values():
            slot.exc = ConnectionResetError(f"ssh {self.target}: connection lost ({self._lost})")
            slot.done.set()
        self._hello.set()

    @property
    def lost(self) -> str | None:
        """Why the session ended (None while it works, and after ``close``)."""
        return self._lost if self._lost != "closed" else None

    def _request(self, op: str, what: str, wait: float, rid: int | None = None, **args: Any) -> Any:
        rid = next(self._ids) if rid is None else rid
        slot = _Pending()
        with self._lock:
            if self._lost is not None:
                raise ConnectionResetError(f"ssh {self.target}: connection lost ({self._lost})")
            self._pending[rid] = slot
        try:
            self._write(json.dumps({"id": rid, "op": op, **args}).encode() + b"\n")
        except (OSError, ValueError):
            with self._lock:
                self._pending.pop(rid, None)
            raise ConnectionResetError(f"ssh {self.target}: connection lost") from None
        if not slot.done.wait(wait):
            with self._lock:
                gone = self._pending.pop(rid, None) is not None
            if gone:
                if op == "run":
                    with contextlib.suppress(OSError, ValueError):
                        self._write(json.dumps({"op": "cancel", "id": rid}).encode() + b"\n")
                raise TimeoutError(f"{what} did not finish within {wait:.1f}s (abandoned)")
            slot.done.wait()
        if slot.exc is not None:
            raise slot.exc
        return slot.value

    def close(self) -> None:
        """End the session: the agent sees its stdin close and exits, killing
        its commands; ssh is killed if it does not leave within 2 s."""
        proc, self._proc = self._proc, None
        _open_hosts.discard(self)
        with self._lock:
            self._lost = self._lost or "closed"
            relays, self._relays = self._relays, {}
        for relay in relays.values():
            relay.inbox.put(None)
            relay.close()
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()  # type: ignore[union-attr]
        try:
            proc.wait(2.0)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(2.0)
        finally:
            _kill_group(proc.pid)  # anything ssh left in its session (a ProxyCommand)
            _forget(proc)

    def __enter__(self) -> SshHost:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- the Host calls

    def _call(self, op: str, what: str, **args: Any) -> Any:
        return self._request(op, what, effective_timeout(self.default_timeout, what), **args)

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        return str(self._call("read", f"read {path}", path=path, max_bytes=int(max_bytes), tail=bool(tail)))

    def listdir(self, path: str) -> list[str]:
        return _names(self._call("listdir", f"listdir {path}", path=path))

    def stat(self, path: str) -> StatResult:
        return _stat(self._call("stat", f"stat {path}", path=path))

    def batch(self, op: str, calls: list[dict[str, Any]]) -> list[Any]:
        """Calls of one kind (``ddx.host.batch``) in as few requests as the agent
        allows: it answers the items done within the call timeout (and within
        its ``BATCH_BYTES`` of answer); the rest are asked for again. The item
        it was on when the time ran out gets ``TimeoutError`` (abandoned in the
        remote kernel, like a single call), and the ones after it go on."""
        remote, decode = _BATCH[op]
        out: list[Any] = []
        rest = [_batch_args(op, a) for a in calls]
        while rest:
            what = f"{op} {rest[0]['path']}" + (f" and {len(rest) - 1} more" if len(rest) > 1 else "")
            try:
                t = effective_timeout(self.default_timeout, what)
            except TimeoutError as exc:  # the probe's time is up: nothing more is asked
                return out + [exc] * len(rest)
            try:
                answer = self._request("batch", what, t + RUN_SLACK, of=remote, calls=rest, timeout=t)
            except TimeoutError:
                answer = {"done": [], "stopped": "time"}
            done = list(answer.get("done") or [])[: len(rest)]
            for a in done:
                out.append(decode_error(a) if "error" in a else decode(a.get("ok")))
            rest = rest[len(done):]
            if rest and (answer.get("stopped") == "time" or not done):
                out.append(TimeoutError(f"{op} {rest[0]['path']} did not finish within {t:.1f}s (abandoned)"))
                rest = rest[1:]
        return out

    def statvfs(self, path: str) -> VfsResult:
        total, free, files, files_free, ro = self._call("statvfs", f"statvfs {path}", path=path)
        return VfsResult(total=int(total), free=int(free), files=int(files), files_free=int(files_free),
                         readonly=bool(ro))

    def readlink(self, path: str) -> str:
        return str(self._call("readlink", f"readlink {path}", path=path))

    def connect(self, address: tuple[str, int] | str, timeout: float) -> socket.socket:
        """A stream socket connected *from the remote host* to ``address`` ((host,
        port), or a Unix socket's path): one end of a local socket pair whose bytes
        the agent relays (``ddx.host.net.open_connection``). Raises what connecting
        there raised (``ConnectionRefusedError``, ``TimeoutError``, ``OSError``)."""
        where = address if isinstance(address, str) else f"{address[0]}:{address[1]}"
        what = f"connect to {where}"
        t = effective_timeout(timeout, what)
        spec: dict[str, Any] = {"path": address} if isinstance(address, str) else {
            "host": str(address[0]), "port": int(address[1])}
        rid = next(self._ids)
        here, there = socket.socketpair()
        relay = _Relay(self, rid, there)
        with self._lock:  # before the request: what the server says first may come before the answer
            self._relays[rid] = relay
        try:
            self._request("open", what, t + RUN_SLACK, rid=rid, timeout=t, **spec)
        except BaseException:
            with self._lock:
                self._relays.pop(rid, None)
            here.close()
            relay.close()
            raise
        relay.start()
        here.settimeout(timeout)
        return here

    def run(self, argv: list[str], *, timeout: float = 2.0, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run ``argv`` on the remote host (no shell; a C locale, ``env`` added);
        killed there on timeout (``TimeoutError``)."""
        what = f"command {' '.join(argv)[:80]}"
        t = effective_timeout(timeout, what)
        try:
            code, out, err = self._request("run", what, t + RUN_SLACK, argv=[str(a) for a in argv], timeout=t,
                                           env=dict(env or {}))
        except TimeoutError as exc:
            raise TimeoutError(f"{what} did not finish within {t:.1f}s (killed)") from exc
        return CommandResult(tuple(argv), int(code), str(out), str(err))

    def time(self) -> float:
        """The remote clock: this machine's, corrected by the offset measured at connect."""
        return time_mod.time() + self._offset

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time_mod.sleep(seconds)


class _Relay:
    """This side of a connection the agent made there: the probe holds one end
    of a socket pair; a thread sends what the probe writes to the agent, another
    writes what the agent received to the probe, in order. When both are done
    (or the session ends) the pair's other end is closed."""

    def __init__(self, host: SshHost, cid: int, there: socket.socket) -> None:
        self.host, self.cid, self.there = host, cid, there
        self.inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._left = 2
        self._lock = threading.Lock()

    def start(self) -> None:
        for target in (self._sending, self._receiving):
            threading.Thread(target=target, daemon=True, name="ddx-ssh-relay").start()

    def _sending(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for data in iter(lambda: self.there.recv(65536), b""):
                self.host._write(json.dumps({"op": "send", "sock": self.cid,
                                             "data": base64.b64encode(data).decode("ascii")}).encode() + b"\n")
        with contextlib.suppress(OSError, ValueError):
            self.host._write(json.dumps({"op": "close", "sock": self.cid}).encode() + b"\n")
        self._done()

    def _receiving(self) -> None:
        for data in iter(self.inbox.get, None):
            try:
                self.there.sendall(data)
            except OSError:
                break
        with contextlib.suppress(OSError):
            self.there.shutdown(socket.SHUT_WR)  # the probe reads the end of the reply
        with self.host._lock:
            self.host._relays.pop(self.cid, None)
        self._done()

    def _done(self) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.there.shutdown(socket.SHUT_RDWR)
        self.there.close()


def _names(value: Any) -> list[str]:
    return [str(n) for n in value]


def _stat(value: Any) -> StatResult:
    m, u, g, size, mtime, ctime, ino, nlink = value
    return StatResult(int(m), int(u), int(g), int(size), float(mtime), float(ctime), int(ino), int(nlink))


# Host call -> (the agent's operation, the value's decoding)
_BATCH: dict[str, tuple[str, Any]] = {"read_text": ("read", str), "listdir": ("listdir", _names),
                                      "stat": ("stat", _stat), "readlink": ("readlink", str)}


def _batch_args(op: str, args: Mapping[str, Any]) -> dict[str, Any]:
    if op == "read_text":
        return {"path": str(args["path"]), "max_bytes": int(args.get("max_bytes", 4 << 20)),
                "tail": bool(args.get("tail", False))}
    return {"path": str(args["path"])}
