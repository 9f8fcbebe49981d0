"""The inventory as values: what runs on a host, where it is configured, where it logs.

Frozen dataclasses with a JSON form (``to_dict`` / ``inventory_from_dict``),
so that a bundle carries the inventory of the host it was collected on and a
replay sees the same services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "ConfigFile",
    "Dependency",
    "Inventory",
    "Listen",
    "LogFile",
    "Service",
    "inventory_from_dict",
]


@dataclass(frozen=True)
class Listen:
    """An address a service accepts connections on: ``tcp`` host and port, or a ``unix`` path."""

    proto: str  # "tcp" | "unix"
    address: str = ""  # as the socket table shows it: 127.0.0.1, ::, 0.0.0.0, *
    port: int | None = None
    path: str = ""

    @property
    def label(self) -> str:
        if self.proto == "unix":
            return f"unix:{self.path}"
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    @property
    def connect_host(self) -> str:
        """Where a client on this host connects: the wildcard addresses mean loopback."""
        if self.address in ("0.0.0.0", "*", ""):
            return "127.0.0.1"
        if self.address == "::":
            return "::1"
        return self.address


@dataclass(frozen=True)
class ConfigFile:
    """A configuration file of a service and how it was found.

    ``how``: ``argv`` (named on its command line: ``-c FILE``), ``env`` (a
    variable of its environment names it), ``default`` (the program's own
    default, nothing named another), ``include`` (included by another config
    file), ``datadir`` (inside its data directory), ``ddx.toml``."""

    path: str
    how: str
    detail: str = ""  # "-c", "DRILL_APP_CONFIG", "include in /etc/nginx/nginx.conf:12"
    problem: str = ""  # why it could not be read ("" when it was)


@dataclass(frozen=True)
class LogFile:
    """A file a service logs to and how it was found.

    ``how``: ``config`` (its configuration names it), ``open`` (a process of
    the service holds it open for writing), ``recent`` (written lately in
    /var/log or the service's own folders, by its user or in its folder),
    ``default`` (the program's default place, nothing else named), ``ddx.toml``.
    ``kind``: ``access`` for web access logs, else ``""``."""

    path: str
    how: str
    detail: str = ""
    kind: str = ""


@dataclass(frozen=True)
class Dependency:
    """An address its configuration names (a database, a cache, an upstream).
    ``what`` is the key or directive, never the value (which may hold a password)."""

    host: str
    port: int
    where: str  # "FILE:LINE"
    what: str
    scheme: str = ""  # postgresql, redis, memcached, http... when the configuration says

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Service:
    """One service: a process family (a master and its workers) that serves.

    ``started`` is the master's start (epoch seconds). ``journal`` says its
    standard output or syslog messages go to the system journal or syslog (so
    reading those covers it). ``filesystems`` are the mount points of its data
    directories, working folder and logs."""

    name: str
    program: str
    pid: int
    pids: tuple[int, ...]
    user: str = ""
    uid: int = -1
    started: float | None = None
    version: str = ""
    argv: tuple[str, ...] = ()  # secrets redacted
    cwd: str = ""
    unit: str = ""  # the systemd unit or supervisor that runs it
    listens: tuple[Listen, ...] = ()
    configs: tuple[ConfigFile, ...] = ()
    logs: tuple[LogFile, ...] = ()
    journal: bool = False
    data_dirs: tuple[str, ...] = ()
    filesystems: tuple[str, ...] = ()
    deps: tuple[Dependency, ...] = ()
    notes: tuple[str, ...] = ()  # what could not be found or read, with the reason

    @property
    def config(self) -> str:
        """The main configuration file ("" when none is known)."""
        for c in self.configs:
            if c.how != "include":
                return c.path
        return ""

    @property
    def log_paths(self) -> tuple[str, ...]:
        return tuple(lg.path for lg in self.logs)

    @property
    def label(self) -> str:
        return f"{self.name} (pid {self.pid})"

    def tcp_ports(self) -> list[int]:
        return sorted({ls.port for ls in self.listens if ls.proto == "tcp" and ls.port is not None})


@dataclass(frozen=True)
class Inventory:
    """What ddx found running on a host, from one discovery pass."""

    host: str
    services: tuple[Service, ...] = ()
    extra_logs: tuple[LogFile, ...] = ()  # named in ddx.toml for no particular service
    mounts: tuple[str, ...] = ()  # mount points of the real filesystems, longest first
    problems: tuple[str, ...] = ()  # what the pass could not do
    seconds: float = 0.0
    complete: bool = True  # False when the pass ran out of time (the rest is unknown)
    extras: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def by_program(self, *programs: str) -> list[Service]:
        want = set(programs)
        return [s for s in self.services if s.program in want]

    def service_of(self, pid: int) -> Service | None:
        for s in self.services:
            if pid in s.pids:
                return s
        return None

    def all_logs(self) -> list[tuple[LogFile, Service | None]]:
        """Every log, with the service it belongs to (None for ddx.toml's own), each path once."""
        seen: set[str] = set()
        out: list[tuple[LogFile, Service | None]] = []
        for s in self.services:
            for lg in s.logs:
                if lg.path not in seen:
                    seen.add(lg.path)
                    out.append((lg, s))
        for lg in self.extra_logs:
            if lg.path not in seen:
                seen.add(lg.path)
                out.append((lg, None))
        return out

    def mount_of(self, path: str) -> str:
        """The mount point a path lives on ("/" when no longer one matches)."""
        for m in self.mounts:
            if path == m or path.startswith(m.rstrip("/") + "/"):
                return m
        return "/"

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "services": [_service_dict(s) for s in self.services],
            "extra_logs": [_plain(lg) for lg in self.extra_logs],
            "mounts": list(self.mounts),
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
            "complete": self.complete,
        }


def _plain(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in vars(obj).items():
        if v in ("", None, (), []):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def _service_dict(s: Service) -> dict[str, Any]:
    out = _plain(s)
    for key, items in (("listens", s.listens), ("configs", s.configs), ("logs", s.logs), ("deps", s.deps)):
        if items:
            out[key] = [_plain(x) for x in items]
    if s.journal:
        out["journal"] = True
    return out


def _tuple(raw: Any) -> tuple[Any, ...]:
    return tuple(raw) if isinstance(raw, list) else ()


def _make(cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object for {cls.__name__}, got {type(raw).__name__}")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})


def inventory_from_dict(raw: Any) -> Inventory:
    """The inventory saved by ``Inventory.to_dict`` (a bundle's); ValueError when malformed."""
    if not isinstance(raw, dict):
        raise ValueError("the inventory is not an object")
    try:
        services = []
        for s in raw.get("services", []):
            if not isinstance(s, dict):
                raise ValueError("a service is not an object")
            values = dict(s)
            values["pids"] = _tuple(s.get("pids"))
            values["argv"] = _tuple(s.get("argv"))
            values["listens"] = tuple(_make(Listen, x) for x in s.get("listens", []))
            values["configs"] = tuple(_make(ConfigFile, x) for x in s.get("configs", []))
            values["logs"] = tuple(_make(LogFile, x) for x in s.get("logs", []))
            values["deps"] = tuple(_make(Dependency, x) for x in s.get("deps", []))
            for key in ("data_dirs", "filesystems", "notes"):
                values[key] = _tuple(s.get(key))
            services.append(_make(Service, values))
        return Inventory(
            host=str(raw.get("host", "")),
            services=tuple(services),
            extra_logs=tuple(_make(LogFile, x) for x in raw.get("extra_logs", [])),
            mounts=_tuple(raw.get("mounts")),
            problems=_tuple(raw.get("problems")),
            seconds=float(raw.get("seconds", 0.0)),
            complete=bool(raw.get("complete", True)),
        )
    except (TypeError, KeyError) as exc:
        raise ValueError(f"malformed inventory: {exc}") from None
