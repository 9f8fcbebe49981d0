"""Recording what a host showed, to save it as a bundle.

``RecordingHost`` wraps another host and records every call with its result or
exception; ``save()`` writes a bundle with secrets redacted and
``/proc/PID/environ`` never saved.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import socket
import tarfile
import threading
import time as time_mod
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any, TypeVar

from ddx.host.base import CommandResult, StatResult, VfsResult
from ddx.host.bundle import (
    BUNDLE_FORMAT,
    TOP,
    call_key,
    encode_error,
    member_name,
    redact_json,
)
from ddx.host.calls import current_probe
from ddx.host.redact import redact_cmdline, redact_cmdline_file, redact_output
from ddx.units import iso_local

__all__ = ["RecordingHost"]

T = TypeVar("T")

_CMDLINE_PATH = re.compile(r"^/proc/(?:\d+|self)(?:/task/\d+)?/cmdline$")
_ENVIRON_PATH = re.compile(r"^/proc/(?:\d+|self)(?:/task/\d+)?/environ$")


class RecordingHost:
    """Wraps a host and records every call and its outcome (value or
    exception), keyed by calling probe, operation and arguments, a list per
    key for repeated reads. The probe gets the real value; texts are redacted
    when saved (not while the probe waits), and a process environment is not
    even kept in memory."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.live: bool = bool(getattr(inner, "live", False))
        self.remote: str = str(getattr(inner, "remote", ""))  # a host read over SSH
        self._lock = threading.Lock()
        # (probe, key) -> {"op", "args", "probe", "outcomes": [...]}, in first-call order
        self._calls: dict[tuple[str | None, str], dict[str, Any]] = {}
        self.started = time_mod.time()

    def _record(self, op: str, args: dict[str, Any], outcome: dict[str, Any]) -> None:
        probe = current_probe()
        k = (probe, call_key(op, args))
        with self._lock:
            entry = self._calls.get(k)
            if entry is None:
                entry = self._calls[k] = {"op": op, "args": args, "probe": probe, "outcomes": []}
            entry["outcomes"].append(outcome)

    def _do(self, op: str, args: dict[str, Any], fn: Callable[[], T], encode: Callable[[T], dict[str, Any]]) -> T:
        try:
            value = fn()
        except Exception as exc:
            self._record(op, args, encode_error(exc))
            raise
        self._record(op, args, encode(value))
        return value

    def _one(self, op: str, args: dict[str, Any]) -> Any:
        """One of the calls a batch may hold (``_ENCODE``), recorded as a batch records it."""
        return self._do(op, args, lambda: getattr(self.inner, op)(**args), lambda v: _ENCODE[op](args, v))

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        return str(self._one("read_text", {"path": path, "max_bytes": max_bytes, "tail": tail}))

    def listdir(self, path: str) -> list[str]:
        return list(self._one("listdir", {"path": path}))

    def stat(self, path: str) -> StatResult:
        st: StatResult = self._one("stat", {"path": path})
        return st

    def batch(self, op: str, calls: list[dict[str, Any]]) -> list[Any]:
        """Calls of one kind (``ddx.host.batch``), made as the inner host makes
        them; each item is recorded as the single call it stands for."""
        from ddx.host.batch import batch

        outcomes = batch(self.inner, op, calls)
        for args, v in zip(calls, outcomes):
            self._record(op, dict(args), encode_error(v) if isinstance(v, BaseException) else _ENCODE[op](args, v))
        return outcomes

    def statvfs(self, path: str) -> VfsResult:
        return self._do("statvfs", {"path": path}, lambda: self.inner.statvfs(path), lambda v: {"value": asdict(v)})

    def readlink(self, path: str) -> str:
        return str(self._one("readlink", {"path": path}))

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

    def connect(self, address: tuple[str, int] | str, timeout: float) -> socket.socket:
        """A connection made as the inner host makes it (``ddx.host.net``); network
        exchanges are not recorded (a bundle says they were not replayed)."""
        from ddx.host.net import open_connection

        return open_connection(self.inner, address, timeout)

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
                    name = member_name("files", entry["args"]["path"], used)
                    text = oc.pop("text")
                    text = redact_cmdline_file(text) if oc.pop("kind", "") == "cmdline" else redact_output(text)
                    members[name] = text.encode("utf-8")
                    oc["file"] = name
                elif "stdout" in oc:
                    n_cmd += 1
                    base = os.path.basename(entry["args"]["argv"][0]) if entry["args"]["argv"] else "cmd"
                    name = member_name("commands", f"{n_cmd:03d}-{base}.out", used)
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
            "created": iso_local(time_mod.time()),
            "recording_started": iso_local(self.started),
        }
        if collection is not None:
            manifest["collection"] = redact_json(
                {
                    "started": collection.started,
                    "seconds": round(collection.seconds, 3),
                    "results": [r.to_dict() for r in collection.results],
                    "findings": [f.to_dict() for f in collection.findings],
                }
            )
            if getattr(collection, "inventory", None) is not None:
                manifest["inventory"] = redact_json(collection.inventory.to_dict())
        if extra:
            manifest.update(extra)
        members["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
        members["calls.json"] = json.dumps(index, indent=1, sort_keys=True).encode()
        now = int(time_mod.time())
        fd, tmp = _create_private(path)
        try:
            with os.fdopen(fd, "wb") as fh:
                with tarfile.open(fileobj=fh, mode="w:gz") as tar:
                    for name in ["manifest.json", "calls.json", *sorted(k for k in members if "/" in k)]:
                        data = members[name]
                        info = tarfile.TarInfo(f"{TOP}/{name}")
                        info.size = len(data)
                        info.mtime = now
                        info.mode = 0o600
                        tar.addfile(info, io.BytesIO(data))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return path


def _encode_text(path: str, text: str) -> dict[str, Any]:
    """A read's outcome as saved: a process environment never (not even in memory
    past this call), a command line marked for redaction."""
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


# How the outcome of each batchable call is saved, from its arguments and value.
_ENCODE: dict[str, Callable[[dict[str, Any], Any], dict[str, Any]]] = {
    "read_text": lambda a, v: _encode_text(a["path"], v),
    "listdir": lambda a, v: {"value": list(v)},
    "stat": lambda a, v: {"value": asdict(v)},
    "readlink": lambda a, v: {"value": v},
}


def _create_private(path: str) -> tuple[int, str]:
    """A new, empty temporary file beside ``path``, mode 0600 from the start and
    open for writing: (fd, its path). Created with ``O_EXCL | O_NOFOLLOW``
    under a random name, so that nobody can read the bundle while it is
    written, nor have us write through a link they planted in a shared folder."""
    folder, base = os.path.split(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        return fd, tmp
    raise FileExistsError(f"no free temporary name beside {path}")
