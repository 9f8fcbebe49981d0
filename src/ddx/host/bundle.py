"""Bundles: the format, the host that replays one, and bundles built from plain values.

A bundle (``docs/bundles.md``) is a ``.tar.gz`` with one top folder holding
``manifest.json``, ``calls.json`` (every host call a probe made, with its
outcomes) and the texts of files read and commands run. ``BundleHost`` replays
it: the same probes give the same findings, which is how tests reproduce real
incidents and how a user hands evidence to a colleague.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import stat as stat_mod
import tarfile
import threading
import time as time_mod
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import Any, BinaryIO

from ddx.host.base import CommandResult, StatResult, VfsResult
from ddx.host.calls import current_probe
from ddx.host.redact import redact_cmdline, redact_output
from ddx.readfile import file_kind, read_fd
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

# Limits on reading a bundle, which may come from anyone (docs/bundles.md). A bundle
# of a busy host holds a few thousand members and a few MiB; probes read at most
# 4 MiB of one file unless configured otherwise.
MAX_MEMBER_BYTES = 16 << 20  # one member, uncompressed (calls.json included)
MAX_MANIFEST_BYTES = 4 << 20  # manifest.json
MAX_TOTAL_BYTES = 64 << 20  # every member together, uncompressed
MAX_MEMBERS = 50_000  # entries of the archive, folders included
# Bytes inflated to read an archive: the members, plus a header (and a long-name
# header) per entry; a decompression bomb stops here.
MAX_INFLATED_BYTES = MAX_TOTAL_BYTES + MAX_MEMBERS * 2048 + (1 << 20)


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
    same file. The bundle is read once, up front, within the limits above (a
    bundle may come from anyone); beyond them it is refused with a UsageError."""

    live = False

    def __init__(self, path: str) -> None:
        from ddx.errors import UsageError

        self.path = path
        manifest, calls, self._members = _read_bundle(path)
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
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
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


def _refused(path: str, why: str) -> Exception:
    from ddx.errors import UsageError

    return UsageError(f"{path}: not a readable ddx bundle: {why}")


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n < 1 << 30 else f"{n / (1 << 30):.1f} GiB"


def _in_layout(name: str) -> bool:
    """Whether ``name`` is where a bundle keeps a file's or a command's text
    (``files/...``, ``commands/...``), with no step out of the folder."""
    parts = name.split("/")
    return len(parts) > 1 and parts[0] in ("files", "commands") and all(p not in ("", ".", "..") for p in parts)


def _read_bundle(path: str) -> tuple[dict[str, Any], list[Any], dict[str, bytes]]:
    """The manifest (its format checked), the calls and the texts of a bundle,
    the texts by name relative to its top folder. Read in memory, never
    extracted, within the limits above, so that a hostile bundle can neither
    write anywhere, nor exhaust memory, nor hang the run; any problem is a
    ``UsageError`` naming the bundle."""
    if os.path.isdir(path):
        return _read_folder(path)
    return _read_archive(path)


def _parse_json(path: str, name: str, data: bytes | None) -> Any:
    from ddx.safeload import LoadError, load_json

    if data is None:
        raise _refused(path, f"no {name}")
    try:
        return load_json(data)
    except LoadError as exc:
        raise _refused(path, f"{name}: {exc}") from None


def _check_manifest(path: str, data: bytes | None) -> dict[str, Any]:
    from ddx.errors import UsageError

    manifest = _parse_json(path, "manifest.json", data)
    if not isinstance(manifest, dict):
        raise _refused(path, "manifest.json is not a JSON object")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise UsageError(f"{path}: unsupported bundle format {manifest.get('format')!r} (want {BUNDLE_FORMAT})")
    for key, kinds, what in _MANIFEST_FIELDS:
        if manifest.get(key) is not None and not isinstance(manifest[key], kinds):
            raise UsageError(f"{path}: manifest.json's {key} is malformed (not {what})")
    coll = manifest.get("collection") or {}
    for key, kinds, what in (("results", list, "a list"), ("seconds", (int, float), "a number"),
                             ("started", str, "a string")):
        if coll.get(key) is not None and (not isinstance(coll[key], kinds) or isinstance(coll[key], bool)):
            raise UsageError(f"{path}: manifest.json's collection.{key} is malformed (not {what})")
    return manifest


# What a bundle's manifest.json may hold, where a reader takes it for granted.
_MANIFEST_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("host", str, "a string"),
    ("collection", dict, "an object"),
    ("inventory", dict, "an object"),
    ("recording_started", str, "a string"),
)


def _check_calls(path: str, data: bytes | None) -> list[Any]:
    from ddx.errors import UsageError

    calls = _parse_json(path, "calls.json", data)
    if not isinstance(calls, list):
        raise UsageError(f"{path}: calls.json is malformed (not a list)")
    return calls


def _referenced(calls: list[Any]) -> Iterator[str]:
    """The member names the outcomes in ``calls`` point to."""
    for entry in calls:
        outcomes = entry.get("outcomes") if isinstance(entry, dict) else None
        for oc in outcomes if isinstance(outcomes, list) else ():
            if isinstance(oc, dict):
                for key in ("file", "stdout_file"):
                    if isinstance(oc.get(key), str):
                        yield oc[key]


# -- an unpacked bundle (a folder)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _kind(mode: int) -> str:
    for test, kind in ((stat_mod.S_ISREG, "a regular file"), (stat_mod.S_ISDIR, "a folder"),
                       (stat_mod.S_ISLNK, "a symbolic link"), (stat_mod.S_ISFIFO, "a FIFO"),
                       (stat_mod.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a device"


def _read_folder(path: str) -> tuple[dict[str, Any], list[Any], dict[str, bytes]]:
    """An unpacked bundle: manifest.json first (nothing else is read unless it
    is a bundle's), then calls.json, then only the members its outcomes name.
    Each is opened relative to the bundle's folder one component at a time,
    never through a symbolic link, and must be a regular file within the
    limits: ``tar xzf`` recreates links, FIFOs and devices a hostile bundle holds."""
    try:
        top = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise _refused(path, exc.strerror or str(exc)) from None
    try:
        try:
            inner = os.open(TOP, _DIR_FLAGS, dir_fd=top)
        except OSError:
            pass  # the folder itself holds the layout
        else:
            os.close(top)
            top = inner
        manifest = _check_manifest(path, _folder_member(path, top, "manifest.json", MAX_MANIFEST_BYTES))
        calls = _check_calls(path, _folder_member(path, top, "calls.json", MAX_MEMBER_BYTES))
        members: dict[str, bytes] = {}
        total = 0
        for name in _referenced(calls):
            if name in members or not _in_layout(name):
                continue  # a name outside the layout is never opened; its replay fails
            data = _folder_member(path, top, name, MAX_MEMBER_BYTES)
            if data is None:
                continue
            total += len(data)
            if total > MAX_TOTAL_BYTES:
                raise _refused(path, f"its members hold more than {_mib(MAX_TOTAL_BYTES)} in all")
            members[name] = data
        return manifest, calls, members
    finally:
        os.close(top)


def _folder_member(path: str, top: int, name: str, limit: int) -> bytes | None:
    """The bytes of member ``name`` under the folder open as ``top``; None if missing."""
    parts = name.split("/")
    opened: list[int] = []
    where = top
    try:
        for i, part in enumerate(parts):
            try:
                st = os.stat(part, dir_fd=where, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            kind = _kind(st.st_mode)
            if i < len(parts) - 1:
                if kind != "a folder":
                    raise _refused(path, f"{'/'.join(parts[: i + 1])}, on the way to member {name}, is {kind}")
                where = os.open(part, _DIR_FLAGS, dir_fd=where)
                opened.append(where)
            elif kind != "a regular file":
                raise _refused(path, f"member {name} is {kind} (a bundle holds regular files only)")
            elif st.st_size > limit:
                raise _refused(path, f"member {name} is {_mib(st.st_size)}, over the limit of {_mib(limit)}")
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC,
                     dir_fd=where)
        try:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat_mod.S_ISREG(now.st_mode):
                raise _refused(path, f"member {name} was replaced while it was read")
            data = read_fd(fd, limit + 1)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _refused(path, f"member {name}: {exc.strerror or exc}") from None
    finally:
        for fd in opened:
            os.close(fd)
    if len(data) > limit:
        raise _refused(path, f"member {name} grew over the limit of {_mib(limit)} while it was read")
    return data


# -- a bundle archive (.tar.gz)


class _Inflated:
    """The uncompressed bytes of an archive, read forward with a budget: every
    byte inflated (read, or skipped by a seek) counts against
    ``MAX_INFLATED_BYTES`` and no single read may ask for more than a member's
    limit, so a decompression bomb costs a bounded amount of memory and time."""

    def __init__(self, raw: BinaryIO, path: str) -> None:
        magic = raw.read(6)
        raw.seek(0)
        self._f: Any = raw  # a plain tar
        if magic.startswith(b"\x1f\x8b"):
            self._f = gzip.GzipFile(fileobj=raw, mode="rb")
        elif magic.startswith(b"BZh"):
            self._f = bz2.BZ2File(raw)
        elif magic.startswith(b"\xfd7zXZ\x00"):
            self._f = lzma.LZMAFile(raw)
        self.path, self.pos, self.spent = path, 0, 0

    def _spend(self, n: int) -> None:
        if n > MAX_MEMBER_BYTES + tarfile.BLOCKSIZE:
            raise _refused(self.path, f"an entry of it inflates past {_mib(MAX_MEMBER_BYTES)} (a decompression bomb?)")
        if self.spent + n > MAX_INFLATED_BYTES:
            raise _refused(self.path, f"it inflates past {_mib(MAX_INFLATED_BYTES)} (a decompression bomb?)")
        self.spent += n

    def read(self, n: int = -1) -> bytes:
        self._spend(MAX_INFLATED_BYTES if n is None or n < 0 else n)
        data: bytes = self._f.read(n)
        self.pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise OSError("bundle archives are read forward only")
        # Backwards, a compressed stream is inflated again from its start.
        self._spend(offset - self.pos if offset >= self.pos else offset)
        self.pos = self._f.seek(offset)
        return self.pos

    def tell(self) -> int:
        return self.pos


def _read_archive(path: str) -> tuple[dict[str, Any], list[Any], dict[str, bytes]]:
    """A ``.tar.gz`` bundle, inflated once as a stream: members outside the
    layout and anything but regular files are skipped, and a member or a total
    over its limit is refused from its header, before its data is inflated."""
    limits = {"manifest.json": MAX_MANIFEST_BYTES, "calls.json": MAX_MEMBER_BYTES}
    members: dict[str, bytes] = {}
    total = 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO does not wait for a writer
        mode = os.fstat(fd).st_mode
        if not stat_mod.S_ISREG(mode):
            os.close(fd)
            raise _refused(path, f"it is {file_kind(mode)}, not a bundle file or a folder")
        with os.fdopen(fd, "rb") as raw:
            stream = _Inflated(raw, path)
            with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[call-overload]
                for count, m in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise _refused(path, f"more than {MAX_MEMBERS} members")
                    name = m.name[len(TOP) + 1 :] if m.name.startswith(TOP + "/") else m.name
                    if not m.isfile() or not (name in limits or _in_layout(name)):
                        continue
                    limit = limits.get(name, MAX_MEMBER_BYTES)
                    if m.size > limit:
                        raise _refused(path, f"member {name} is {_mib(m.size)} uncompressed, over the limit of "
                                             f"{_mib(limit)}")
                    total += m.size
                    if total > MAX_TOTAL_BYTES:
                        raise _refused(path, f"its members hold more than {_mib(MAX_TOTAL_BYTES)} in all, "
                                             "uncompressed")
                    fh = tar.extractfile(m)
                    if fh is not None:
                        members[name] = fh.read(m.size)
    except (OSError, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or type(exc).__name__
        raise _refused(path, why) from None
    manifest = _check_manifest(path, members.pop("manifest.json", None))
    calls = _check_calls(path, members.pop("calls.json", None))
    return manifest, calls, members


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
