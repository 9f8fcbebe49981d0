"""HAProxy: per-backend and per-server status from its ``show stat`` CSV.

HAProxy keeps, for every frontend, backend and server, the state its health
checks decided (``status``, ``check_status``, ``last_chk``), when that state
last changed (``lastchg``, seconds), the responses by class (``hrsp_5xx``...),
the connection and response errors (``econ``, ``eresp``), the sessions in use
against their limit (``scur``/``slim``) and the requests waiting for a server
(``qcur``). That is the proxy's own view of which backend fails, which nginx
without its commercial API does not expose.

Where it is read: the admin socket (``stats socket PATH`` in the config;
``show stat`` is a read-only command) and the stats page (``stats uri``;
``URI;csv``). Sources: the ``sockets`` and ``stats_urls`` options and, with
``discover``, every running ``haproxy`` process (``/proc/PID/comm``), its
config files (``-f PATH`` on its command line, else
``/etc/haproxy/haproxy.cfg``) read through the host, and in them the ``stats
socket`` lines and the ``stats uri`` of a section with a ``bind`` address.
Nothing configured and nothing found: not applicable. A stats page behind
``stats auth`` answers 401: a clear reason, no credentials are tried.

Findings (each only for the backends and frontends really read):

- ``http.errors_single_backend``: in a backend of two or more servers, one
  server fails — its checks put it DOWN (or in MAINT with a failed check), or
  at least ``error_share`` of its responses are 5xx / of its sessions ended in
  connection or response errors — while a peer is UP with less than
  ``peer_error_share``. Absent for backends of two or more servers where no
  server stands out that way.
- ``change.backend_added_recently``: ``lastchg`` is the time since the
  server's last UP/DOWN transition, not a join time, so the probe says only
  what it shows: a failing server whose state changed within
  ``recent_minutes`` (it went down, or came up and fails, just now), or a
  server whose state changed within ``recent_minutes`` while all its peers'
  states are older (it was (re)added or came back alone). Absent when no
  server of a backend changed state within ``recent_minutes``; otherwise
  (all servers changed together, e.g. HAProxy itself restarted, and none
  fails) unknown.
- ``svc.down``: a backend with no server UP (or whose own row is DOWN).
  Absent for backends with a server UP.
- ``svc.worker_pool_saturated``: a backend with requests queued for a server
  (``qcur`` > 0: every server is at its ``maxconn``), or a frontend whose
  ``scur`` is at least ``session_share`` of its ``slim``. Absent otherwise.

Network I/O (``query_socket``, ``fetch_stats_url``) is not recorded in bundles;
on a replayed bundle the probe fails with that reason.
"""

from __future__ import annotations

import csv
import http.client
import io
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ddx.errors import ProbeError
from ddx.host.batch import read_each
from ddx.host.net import open_connection
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.units import duration
from ddx.urls import split_url

__all__ = [
    "DEFAULTS",
    "FINDINGS",
    "StatRow",
    "fetch_stats_url",
    "haproxy",
    "judge",
    "parse_config",
    "parse_show_stat",
    "query_socket",
]

FINDINGS = (
    "http.errors_single_backend",
    "change.backend_added_recently",
    "svc.down",
    "svc.worker_pool_saturated",
)
DEFAULT_CONFIG = "/etc/haproxy/haproxy.cfg"
MAX_REPLY = 8 << 20  # a stats CSV of thousands of servers is a few MB

DEFAULTS: dict[str, Any] = {
    "sockets": [],  # paths of HAProxy admin sockets (stats socket PATH) to read besides the discovered ones
    "stats_urls": [],  # stats pages (http://host:port/stats) to read; ";csv" is appended
    "discover": True,  # also find running haproxy processes and read their configs
    "target_timeout": 1.0,  # seconds for one source (connect + show stat + read)
    # One server's failing share: 20% of responses 5xx (or sessions ending in
    # connection/response errors) is far above a healthy backend's noise.
    "error_share": 0.2,
    "peer_error_share": 0.05,  # a peer below this is "answering normally"
    "min_responses": 20,  # responses a server needs for its shares to mean something
    # lastchg below this counts as a recent change (30 minutes: the window in
    # which a change is a plausible cause of errors now).
    "recent_minutes": 30.0,
    "session_share": 0.9,  # a frontend at 90% of its session limit is saturated
}

# check_status values that mean the last health check failed
_FAILED_CHECK = re.compile(r"^\*?(L4CON|L4TOUT|L6TOUT|L6RSP|L7TOUT|L7RSP|L7STS|SOCKERR|L4FAIL|PROCERR|PROCTOUT)")


def _when(seconds: int | None) -> str:
    return "at an unknown time" if seconds is None else f"{duration(seconds)} ago"


# --- pure parsers ------------------------------------------------------------------


@dataclass(frozen=True)
class StatRow:
    """One line of ``show stat``: a frontend, backend or server."""

    proxy: str
    name: str  # FRONTEND, BACKEND or the server's name
    kind: str  # "frontend" | "backend" | "server" | "listener"
    fields: Mapping[str, str]

    def num(self, key: str) -> int | None:
        try:
            return int(self.fields.get(key, ""))
        except ValueError:
            return None

    def text(self, key: str) -> str:
        return self.fields.get(key, "")

    @property
    def status(self) -> str:
        return self.text("status")

    @property
    def up(self) -> bool:
        # "UP", "UP 1/3" (going down), "no check" (no health check: assumed up), "OPEN"
        s = self.status
        return s.startswith("UP") or s == "no check" or s == "OPEN"

    @property
    def label(self) -> str:
        return f"{self.proxy}/{self.name}"


_KINDS = {"0": "frontend", "1": "backend", "2": "server", "3": "listener"}


def parse_show_stat(text: str) -> list[StatRow]:
    """Parse ``show stat`` CSV (first line ``# pxname,svname,...``). Raises
    ValueError when the text is not that (an error message, an HTML page)."""
    lines = text.lstrip("\ufeff").splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].startswith("# pxname,svname"):
        first = lines[0][:80] if lines else "(empty)"
        raise ValueError(f"not HAProxy stats CSV (first line: {first!r})")
    header = [h.strip() for h in lines[0][2:].split(",")]
    rows: list[StatRow] = []
    for rec in csv.reader(io.StringIO("\n".join(lines[1:]))):
        if len(rec) < 2 or not rec[0]:
            continue
        fields = {k: v for k, v in zip(header, rec) if k}
        kind = _KINDS.get(fields.get("type", ""))
        if kind is None:
            sv = fields.get("svname", "")
            kind = "frontend" if sv == "FRONTEND" else "backend" if sv == "BACKEND" else "server"
        rows.append(StatRow(fields.get("pxname", ""), fields.get("svname", ""), kind, fields))
    return rows


@dataclass(frozen=True)
class ConfigSources:
    sockets: tuple[str, ...]
    stats_urls: tuple[str, ...]


def _bind_url(bind: str) -> str | None:
    """``bind 127.0.0.1:8404`` / ``:8404`` / ``*:8404`` / ``ipv4@...`` -> http://host:port."""
    addr = bind.split("@", 1)[1] if "@" in bind.split(":", 1)[0] else bind
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def parse_config(text: str) -> ConfigSources:
    """The stats sources an HAProxy config declares: ``stats socket PATH``
    (unix sockets only) and, per section, ``stats uri PATH`` joined with that
    section's plain-HTTP ``bind`` addresses (``ssl`` binds are skipped)."""
    sockets: list[str] = []
    urls: list[str] = []
    section_binds: list[str] = []
    section_uri: str | None = None
    section_stats = False

    def flush() -> None:
        if section_stats or section_uri:
            uri = section_uri or "/haproxy?stats"  # HAProxy's default when only "stats enable"
            for b in section_binds:
                urls.append(b + uri)

    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] in ("global", "defaults", "frontend", "backend", "listen", "peers", "resolvers",
                        "userlist", "program", "http-errors", "ring", "mailers", "cache"):
            flush()
            section_binds, section_uri, section_stats = [], None, False
            continue
        if words[0] == "stats" and len(words) >= 3 and words[1] == "socket":
            path = words[2]
            path = path.removeprefix("unix@")
            if path.startswith("/"):
                sockets.append(path)
        elif words[0] == "stats" and len(words) >= 3 and words[1] == "uri":
            section_uri = words[2]
        elif words[0] == "stats" and len(words) >= 2 and words[1] == "enable":
            section_stats = True
        elif words[0] == "bind" and len(words) >= 2 and "ssl" not in words[2:]:
            for addr in words[1].split(","):
                u = _bind_url(addr)
                if u:
                    section_binds.append(u)
    flush()
    return ConfigSources(tuple(dict.fromkeys(sockets)), tuple(dict.fromkeys(urls)))


def config_paths(cmdline: Sequence[str]) -> list[str]:
    """Config files named on an haproxy command line (``-f PATH``, ``-fPATH``);
    the Debian default when none."""
    out: list[str] = []
    i = 0
    while i < len(cmdline):
        a = cmdline[i]
        if a == "-f" and i + 1 < len(cmdline):
            out.append(cmdline[i + 1])
            i += 2
            continue
        if a.startswith("-f") and len(a) > 2 and not a.startswith("-f-"):
            out.append(a[2:])
        i += 1
    return out or [DEFAULT_CONFIG]


# --- judgement (pure) --------------------------------------------------------------


def _shares(r: StatRow, min_responses: int) -> tuple[float | None, float | None, str]:
    """(5xx share of responses, error share of sessions, counts text)."""
    classes = [r.num(f"hrsp_{c}") or 0 for c in ("1xx", "2xx", "3xx", "4xx", "5xx", "other")]
    total = sum(classes)
    h5 = r.num("hrsp_5xx") or 0
    stot = r.num("stot") or 0
    errs = (r.num("econ") or 0) + (r.num("eresp") or 0)
    share5 = h5 / total if total >= min_responses else None
    eshare = errs / stot if stot >= min_responses else None
    counts = f"{h5} 5xx of {total} responses, {errs} conn/resp errors of {stot} sessions"
    return share5, eshare, counts


def _failing(r: StatRow, opt: Mapping[str, Any]) -> str:
    """Why this server fails ('' when it does not)."""
    s = r.status
    chk = r.text("check_status")
    if s.startswith("DOWN"):
        return f"status {s}"
    if s.startswith("MAINT") and _FAILED_CHECK.match(chk):
        return f"status {s} with failed check {chk}"
    share5, eshare, _ = _shares(r, int(opt["min_responses"]))
    if share5 is not None and share5 >= float(opt["error_share"]):
        return f"{share5:.0%} of responses are 5xx"
    if eshare is not None and eshare >= float(opt["error_share"]):
        return f"{eshare:.0%} of sessions ended in connection/response errors"
    return ""


def _healthy(r: StatRow, opt: Mapping[str, Any]) -> bool:
    if not r.up:
        return False
    share5, eshare, _ = _shares(r, int(opt["min_responses"]))
    low = float(opt["peer_error_share"])
    return (share5 is None or share5 < low) and (eshare is None or eshare < low)


def _describe(r: StatRow, opt: Mapping[str, Any]) -> str:
    _, _, counts = _shares(r, int(opt["min_responses"]))
    chk = r.text("check_status") or "-"
    last = r.text("last_chk")
    lastchg = r.num("lastchg")
    return (f"{r.label} {r.status or '?'} (check {chk}{': ' + last if last else ''}; "
            f"state changed {_when(lastchg)}; {counts})")




def judge(rows: Sequence[StatRow], options: Mapping[str, Any], source: str) -> list[tuple[str, bool, Evidence]]:
    """(finding id, present, evidence) from one HAProxy's ``show stat`` rows. Pure."""
    opt = {**DEFAULTS, **options}
    recent = float(opt["recent_minutes"]) * 60.0
    out: list[tuple[str, bool, Evidence]] = []
    servers: dict[str, list[StatRow]] = {}
    backends: dict[str, StatRow] = {}
    for r in rows:
        if r.kind == "server":
            servers.setdefault(r.proxy, []).append(r)
        elif r.kind == "backend":
            backends[r.proxy] = r

    for name in sorted(set(backends) | set(servers)):
        members = servers.get(name, [])
        brow = backends.get(name)
        # --- svc.down: no server UP
        up = [s for s in members if s.up]
        down = (bool(members) and not up) or (brow is not None and brow.status.startswith("DOWN"))
        if members or down:  # a backend without servers (the stats page's) is not judged
            states = ", ".join(f"{s.name} {s.status}" for s in members) or "no servers"
            out.append(("svc.down", down, Evidence(
                source=source,
                summary=(f"backend {name} has no server UP ({states})" if down
                         else f"backend {name}: {len(up)} of {len(members)} servers UP"),
                value=len(up), threshold=1, unit="servers UP",
                samples=tuple(_describe(s, opt) for s in members[:5]) if down else (),
            )))
        # --- svc.worker_pool_saturated: requests queued for a server
        if brow is not None and brow.num("qcur") is not None:
            q = brow.num("qcur") or 0
            out.append(("svc.worker_pool_saturated", q > 0, Evidence(
                source=source,
                summary=(f"backend {name}: {q} requests queued waiting for a free server slot "
                         f"(max queued {brow.text('qmax') or '?'})" if q > 0
                         else f"backend {name}: no request queued"),
                value=q, threshold=0, unit="queued requests",
            )))
        if len(members) < 2:
            continue
        # --- http.errors_single_backend
        failing = [(s, why) for s in members if (why := _failing(s, opt))]
        healthy = [s for s in members if _healthy(s, opt) and not _failing(s, opt)]
        single = bool(failing) and bool(healthy)
        if single:
            out.append(("http.errors_single_backend", True, Evidence(
                source=source,
                summary=f"backend {name}: " + "; ".join(f"{s.name} fails ({why})" for s, why in failing)
                + f" while {', '.join(s.name for s in healthy)} answer normally",
                value=", ".join(s.label for s, _ in failing),
                count=len(failing),
                samples=tuple(_describe(s, opt) for s, _ in failing) + tuple(_describe(s, opt) for s in healthy[:3]),
            )))
        elif not failing:
            out.append(("http.errors_single_backend", False, Evidence(
                source=source, summary=f"backend {name}: no server of {len(members)} fails on its own",
            )))
        # all failing: the whole backend is down (svc.down), not one server: unknown here
        # --- change.backend_added_recently
        lastchg = {s.name: s.num("lastchg") for s in members}
        changed = [s for s in members if (lc := lastchg[s.name]) is not None and lc < recent]
        old = [s for s in members if (lc := lastchg[s.name]) is not None and lc >= recent]
        recent_failing = [s for s, _ in failing if s in changed]
        lone_new = changed if (changed and old and len(old) == len(members) - len(changed)) else []
        if recent_failing and healthy:
            out.append(("change.backend_added_recently", True, Evidence(
                source=source,
                summary=f"backend {name}: " + "; ".join(
                    f"{s.name} is failing and its state changed {_when(s.num('lastchg'))}" for s in recent_failing)
                + " (lastchg: the last UP/DOWN transition)",
                value=min(s.num("lastchg") or 0 for s in recent_failing), threshold=int(recent), unit="s",
                samples=tuple(_describe(s, opt) for s in recent_failing),
            )))
        elif lone_new:
            out.append(("change.backend_added_recently", True, Evidence(
                source=source,
                summary=f"backend {name}: " + ", ".join(f"{s.name} changed state {_when(s.num('lastchg'))}"
                                                        for s in lone_new)
                + f" while its peers' states are older than {opt['recent_minutes']:g} min",
                value=min(s.num("lastchg") or 0 for s in lone_new), threshold=int(recent), unit="s",
                samples=tuple(_describe(s, opt) for s in lone_new),
            )))
        elif not changed and old:
            out.append(("change.backend_added_recently", False, Evidence(
                source=source,
                summary=f"backend {name}: no server changed state in the last {opt['recent_minutes']:g} min",
                value=min(s.num("lastchg") or 0 for s in old), threshold=int(recent), unit="s",
            )))

    for r in rows:
        if r.kind != "frontend":
            continue
        scur, slim = r.num("scur"), r.num("slim")
        if scur is None or not slim:
            continue
        share = scur / slim
        out.append(("svc.worker_pool_saturated", share >= float(opt["session_share"]), Evidence(
            source=source,
            summary=f"frontend {r.proxy}: {scur} of {slim} sessions in use ({share:.0%})",
            value=round(share * 100, 1), threshold=round(float(opt["session_share"]) * 100, 1), unit="%",
        )))
    return out


# --- network reads (the only socket code) ---------------------------------------------------


def query_socket(path: str, timeout: float, via: Any = None) -> str:
    """``show stat`` on an HAProxy admin socket; the reply (HAProxy closes
    after one command in non-interactive mode). Connected as the Host ``via``
    (``ddx.host.net``; None: this machine)."""
    with open_connection(via, path, timeout) as s:
        s.sendall(b"show stat\n")
        chunks: list[bytes] = []
        size = 0
        while size < MAX_REPLY:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def fetch_stats_url(url: str, timeout: float, via: Any = None) -> str:
    """GET the stats page as CSV (``URL;csv``); the body, or raise."""
    u = split_url(url)[0]
    if u.scheme != "http" or not u.hostname:
        raise ValueError("expected http://host[:port]/stats-uri (https stats pages are not supported)")
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    if not path.endswith(";csv"):
        path += ";csv"
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    try:
        conn.sock = open_connection(via, (u.hostname, u.port or 80), timeout)
        conn.request("GET", path, headers={"User-Agent": "ddx"})
        resp = conn.getresponse()
        body = resp.read(MAX_REPLY)
        if resp.status == 401:
            raise ValueError("HTTP 401: the stats page needs credentials (stats auth); use a stats socket")
        if resp.status != 200:
            raise ValueError(f"HTTP {resp.status}")
    finally:
        conn.close()
    return body.decode("utf-8", errors="replace")


# --- discovery and the probe -----------------------------------------------------------


@dataclass(frozen=True)
class Source:
    kind: str  # "socket" | "url"
    where: str
    configured: bool
    origin: str = ""  # the config file that named it

    @property
    def name(self) -> str:
        return self.where if self.kind == "url" else f"unix:{self.where}"


def _discover(host: Any) -> tuple[list[Source], list[str]]:
    """Sources named in the configs of running haproxy processes, and notes
    on configs that could not be read."""
    notes: list[str] = []
    configs: list[str] = []
    try:
        pids = [p for p in host.listdir("/proc") if p.isdigit()]
    except (OSError, LookupError):
        return [], []
    comms = read_each(host, [f"/proc/{pid}/comm" for pid in pids], max_bytes=64)  # batched: ddx.host.batch
    for pid in [p for p, c in zip(pids, comms) if isinstance(c, str) and c.strip() == "haproxy"]:
        try:
            argv = host.read_text(f"/proc/{pid}/cmdline", max_bytes=65536).split("\0")
        except (OSError, LookupError, TimeoutError):
            continue
        for path in config_paths([a for a in argv if a]):
            if path not in configs:
                configs.append(path)
    out: list[Source] = []
    for path in configs:
        try:
            srcs = parse_config(host.read_text(path, max_bytes=4 << 20))
        except (OSError, LookupError, TimeoutError) as exc:
            notes.append(f"could not read haproxy config {path}: {type(exc).__name__}: {exc}")
            continue
        out += [Source("socket", s, False, path) for s in srcs.sockets]
        out += [Source("url", u, False, path) for u in srcs.stats_urls]
    if configs and not out and not notes:
        notes.append(f"haproxy runs but its config ({', '.join(configs)}) declares no stats socket or stats uri")
    return out, notes


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no reply within {timeout:.1f}s"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@probe("haproxy", findings=FINDINGS, timeout=3.0, options=DEFAULTS)
def haproxy(ctx: ProbeContext) -> list[Finding]:
    """HAProxy ``show stat`` (admin socket or stats page): one server failing
    while its peers answer, a failing server whose state changed recently, a
    backend with no server up, queued requests or a frontend at its session limit."""
    from ddx.host import parallel_map
    from ddx.probes.services.cacheproto import ProbeTargetError, live_network

    sources = [Source("socket", str(p), True) for p in ctx.opt("sockets")]
    for u in ctx.opt("stats_urls"):
        if not str(u).startswith("http://"):
            raise ProbeError(f"probe.haproxy stats_urls: {u!r} is not an http:// URL")
        sources.append(Source("url", str(u), True))
    if ctx.opt("discover"):
        found, notes = _discover(ctx.host)
        for n in notes:
            ctx.note(n)
        seen = {(s.kind, s.where) for s in sources}
        for s in found:
            if (s.kind, s.where) not in seen:
                seen.add((s.kind, s.where))
                sources.append(s)
    if not sources:
        raise NotApplicable("no HAProxy found (no haproxy process with a stats socket or stats uri; "
                            "name one in sockets or stats_urls)")
    try:
        live_network(ctx.host)
    except ProbeTargetError as exc:
        raise ProbeError(str(exc)) from None
    timeout = float(ctx.opt("target_timeout"))

    def read(s: Source) -> list[StatRow]:
        text = (query_socket(s.where, timeout, ctx.host) if s.kind == "socket"
                else fetch_stats_url(s.where, timeout, ctx.host))
        return parse_show_stat(text)

    results = parallel_map(read, sources, timeout + 0.5)
    judged: list[tuple[str, bool, Evidence]] = []
    errors: list[str] = []
    for s, r in zip(sources, results):
        if isinstance(r, BaseException):
            errors.append(f"could not probe {s.name}: {_why(r, timeout)}")
            continue
        judged += judge(r, ctx.config, f"haproxy {s.name} (show stat)")
    findings = ctx.combine(judged)
    if not findings:
        raise ProbeError("; ".join(errors) or "HAProxy stats had no frontend, backend or server rows")
    if errors:
        ctx.note("; ".join(errors))
    return findings
