"""Bundles: the format, the host that replays one, and bundles built from plain values.

A bundle (``docs/bundles.md``) is a ``.tar.gz`` with one top folder holding
``manifest.json``, ``calls.json`` (every host call a probe made, with its
outcomes) and the texts of files read and commands run. ``BundleHost`` replays
it: the same probes give the same findings, which is how tests reproduce real
incidents and how a user hands evidence to a colleague.
"""

from __future__ import annotations

import json
import os
import tarfile
import threading
import time as time_mod
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from ddx.host.base import CommandResult, StatResult, VfsResult
from ddx.host.calls import current_probe
from ddx.host.redact import redact_cmdline, redact_output
from ddx.units import iso_local

__all__ = [
    "BUNDLE_FORMAT",
    "BundleHost",
    "build_bundle",
    "call_key",
    "decode_error",
    "encode_error",
    "member_name",
    "redact_json",
]

BUNDLE_FORMAT = "ddx-bundle/1"
TOP = "ddx-bundle"  # the single top-level folder inside the tar.gz



def call_key(op: str, args: dict[str, Any]) -> str:
    return op + " " + json.dumps(args, sort_keys=True, separators=(",", ":"))


def encode_error(exc: BaseException) -> dict[str, Any]:
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


def decode_error(rec: dict[str, Any]) -> BaseException:
    cls = _ERROR_TYPES.get(rec.get("error", ""), OSError)
    if issubclass(cls, OSError) and "errno" in rec:
        if "filename" in rec:
            return cls(rec["errno"], rec.get("message", ""), rec["filename"])
        return cls(rec["errno"], rec.get("message", ""))
    return cls(rec.get("message", ""))


def redact_json(value: Any) -> Any:
    """Redact every string in a JSON-like value (evidence samples quote logs)."""
    if isinstance(value, str):
        return redact_output(value)
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_json(v) for k, v in value.items()}
    return value


def member_name(folder: str, path: str, used: set[str]) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    base = f"{folder}/{'/'.join(parts) or '_'}"
    name, n = base, 1
    while name in used:
        name = f"{base}~{n}"
        n += 1
    used.add(name)
    return name




class BundleHost:
    """Replays a bundle saved by ``RecordingHost.save`` (the ``.tar.gz``, or the
    same layout unpacked into a directory). Repeated calls return the recorded
    outcomes in order, then the last one again; a call that was not recorded
    raises ``LookupError``; a recorded exception is raised again with its type.
    Calls are matched to the recording of the same probe first, then of any
    probe; a ``read_text`` with other limits is served from a recording of the
    same file."""

    live = False

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
        self.inventory: Any = None  # the inventory saved with the evidence (ddx.inventory.Inventory)
        if manifest.get("inventory") is not None:
            from ddx.inventory import inventory_from_dict

            try:
                self.inventory = inventory_from_dict(manifest["inventory"])
            except ValueError as exc:
                raise UsageError(f"{path}: manifest.json's inventory is malformed ({exc})") from None
        self._lock = threading.Lock()
        self._by_probe: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
        self._any: dict[str, list[dict[str, Any]]] = {}
        self._read_args: dict[str, list[dict[str, Any]]] = {}
        self._pos: dict[tuple[str | None, str], int] = {}
        try:
            for entry in calls:
                k = call_key(entry["op"], entry["args"])
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
        k = call_key(op, args)
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
            raise decode_error(oc)
        return oc.get("value")

    def _text(self, oc: dict[str, Any]) -> str:
        if "error" in oc:
            raise decode_error(oc)
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
            raise decode_error(oc)
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
        top = os.path.join(path, TOP) if os.path.isdir(os.path.join(path, TOP)) else path
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
            if name.startswith(TOP + "/"):
                name = name[len(TOP) + 1 :]
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
        return [encode_error(v) if isinstance(v, BaseException) else enc(v) for v in vals]

    def enc_file(p: str) -> Callable[[Any], dict[str, Any]]:
        def enc(text: Any) -> dict[str, Any]:
            name = member_name("files", p, used)
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
            name = member_name("commands", f"{n:03d}-{os.path.basename(argv[0])}.out", used)
            members[name] = out.encode("utf-8")
            return {"returncode": rc, "stdout_file": name, "stderr": err}

        vals = v if isinstance(v, list) else [v]
        calls.append({"op": "run", "args": {"argv": redact_cmdline(list(argv))}, "probe": None,
                      "outcomes": [encode_error(x) if isinstance(x, BaseException) else enc_cmd(x) for x in vals]})
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
                "created": iso_local(time_mod.time()), "recording_started": iso_local(time_mod.time())}
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
