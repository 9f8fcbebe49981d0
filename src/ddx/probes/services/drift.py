"""Configuration drift and unready backends: the addresses the configuration names, checked.

**Drift** (``config.references_unreachable_endpoint``). The probe reads nginx's
configuration (``nginx_conf``, following ``include`` lines and their globs) and
application settings files (``paths``, plus a short list of usual places when
``discover`` is on), extracts every dependency address with the pure parsers
of ``ddx.probes.parsers.endpoints``, and opens one TCP connection to each unique
``host:port`` (names resolved first, in a thread with its own timeout). An
address that refuses, times out or does not resolve is reported with the file
and line that names it. Only parsed addresses are ever resolved or connected
to; a connection is closed as soon as it is made (nothing is sent). A name
that does not resolve is also a DNS symptom: the evidence says so (the dns
probe judges DNS itself).

**Gone** (``config.endpoint_gone``): of those, a name the resolver says does not
exist (NXDOMAIN, not a resolver that did not answer) while other names resolve: the
node was removed or renamed and the configuration still names it. A refused or
timed-out address cannot tell a node that is gone from a dependency that is down,
so it leaves this unknown; every address answering makes it absent.

**Unready backends** (``change.backend_added_recently``,
``http.errors_single_backend``) live here too, because they need the same
parsed nginx ``upstream`` blocks. For each upstream that nginx proxies over
plain HTTP and that has at least two TCP servers, the probe sends one
``GET health_path`` to every server and compares: a backend answering 5xx
(or garbage) while a peer answers below 500 is ``errors_single_backend``.
A backend was "added recently" when the file naming it changed within
``recent_minutes``, or when the process listening on its port on this host
started within ``recent_minutes`` (from ``ss -ltnp`` and ``/proc/PID/stat``).
Limits: a restart for a deploy also makes a young process (the knowledge base
weighs ``change.recent_deploy`` beside it); remote backends are judged by the
config file's time only; ``https://`` upstreams and access logs with
``$upstream_addr`` are not read here (the http probe mines access logs).

Network I/O happens only in ``tcp_check`` and ``http_status`` and only on a
live host: a replayed bundle did not record those exchanges, so the probe
fails there with "not recorded" and its findings stay unknown.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from dataclasses import dataclass
from typing import Any

from ddx.errors import ConfigError, ProbeError
from ddx.host import Host, is_live, offline_reason
from ddx.host.net import can_connect, open_connection
from ddx.inventory.files import expand_glob
from ddx.inventory.model import Inventory
from ddx.inventory.nginx import DEFAULT_PREFIX, nginx_paths, read_nginx
from ddx.inventory.sockets import read_sockets
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.parsers.endpoints import (
    Endpoint,
    Upstream,
    parse_settings,
    without_upstream_names,
)
from ddx.units import duration

__all__ = [
    "Check",
    "drift",
    "http_status",
    "tcp_check",
]

FINDINGS = (
    "config.references_unreachable_endpoint",
    "config.endpoint_gone",
    "change.backend_added_recently",
    "http.errors_single_backend",
)

# Where application settings usually live (deploy layouts of Capistrano, Laravel, Django, Rails,
# Node apps). Kept short: each glob costs a few listdir calls.
DISCOVER_GLOBS = [
    "/srv/*/.env",
    "/srv/*/current/.env",
    "/srv/*/shared/.env",
    "/srv/*/config/*.yml",
    "/srv/*/current/config/*.yml",
    "/var/www/*/.env",
    "/var/www/*/current/.env",
    "/var/www/*/config/*.yml",
    "/opt/*/.env",
    "/opt/*/config/*.yml",
    "/etc/memcached_servers",
]
MAX_FILES = 200
MAX_FILE_BYTES = 512 << 10
MAX_SAMPLES = 8


@dataclass(frozen=True)
class Check:
    """The outcome of one TCP connect (or HTTP request): ``ok`` or the error."""

    ok: bool
    error: str = ""  # "connection refused", "timed out after 1.0s", "does not resolve: ..."
    status: int | None = None  # HTTP status when an HTTP request was made
    ip: str = ""
    no_such_name: bool = False  # the resolver answered that the name does not exist (not a timeout)


# --- network: the only two functions that touch a socket ------------------------------


def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` in a daemon thread: the resolver has no timeout of its own."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["v"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            box["e"] = exc
        done.set()

    threading.Thread(target=work, daemon=True, name="ddx-resolve").start()
    if not done.wait(timeout):
        raise TimeoutError(f"resolving {host} took longer than {timeout:.1f}s")
    if "e" in box:
        raise box["e"]
    return list(box["v"])


# getaddrinfo's "the name does not exist" answers (NXDOMAIN, or a name without addresses), as
# opposed to EAI_AGAIN ("Temporary failure in name resolution": the resolver did not answer).
_NO_SUCH_NAME = {e for e in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None)) if e is not None}


def _connect_via(via: Any, host: str, port: int, timeout: float) -> tuple[socket.socket | None, Check]:
    """Resolve and connect as the Host ``via`` (over SSH: there, by the agent)."""
    try:
        return open_connection(via, (host, port), timeout), Check(True)
    except TimeoutError:
        return None, Check(False, f"timed out after {timeout:.1f}s")
    except ConnectionRefusedError:
        return None, Check(False, "connection refused")
    except OSError as exc:  # getaddrinfo's errors come back with their (negative) EAI_ numbers
        reason = exc.strerror or str(exc)
        if exc.errno is not None and exc.errno < 0:
            return None, Check(False, f"does not resolve ({reason})", no_such_name=exc.errno in _NO_SUCH_NAME)
        return None, Check(False, reason)


def _connect(host: str, port: int, resolve_timeout: float, timeout: float, via: Any = None
             ) -> tuple[socket.socket | None, Check]:
    if via is not None and not is_live(via):
        return _connect_via(via, host, port, max(resolve_timeout, timeout))
    try:
        infos = _resolve(host, port, resolve_timeout)
    except (OSError, TimeoutError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        gone = isinstance(exc, socket.gaierror) and exc.errno in _NO_SUCH_NAME
        return None, Check(False, f"does not resolve ({reason})", no_such_name=gone)
    last = "no address"
    for family, stype, proto, _, addr in infos[:4]:
        s = socket.socket(family, stype, proto)
        s.settimeout(timeout)
        try:
            s.connect(addr)
            return s, Check(True, ip=str(addr[0]))
        except TimeoutError:
            last = f"timed out after {timeout:.1f}s"
        except ConnectionRefusedError:
            last = "connection refused"
        except OSError as exc:
            last = exc.strerror or str(exc)
        s.close()
    return None, Check(False, last, ip=str(infos[0][4][0]) if infos else "")


def tcp_check(host: str, port: int, resolve_timeout: float = 1.0, timeout: float = 1.0, via: Any = None) -> Check:
    """Resolve ``host`` and open (then close) one TCP connection to it, as the
    Host ``via`` sees it (None: this machine; ``ddx.host.net``)."""
    s, res = _connect(host, port, resolve_timeout, timeout, via)
    if s is not None:
        s.close()
    return res


def http_status(host: str, port: int, path: str, timeout: float = 1.5, via: Any = None) -> Check:
    """One ``GET path`` over HTTP/1.0; the status code, or why there is none."""
    s, res = _connect(host, port, timeout, timeout, via)
    if s is None:
        return res
    try:
        hosthdr = f"[{host}]" if ":" in host else host
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {hosthdr}:{port}\r\nUser-Agent: ddx\r\n\r\n".encode())
        data = b""
        while b"\r\n" not in data and len(data) < 4096:
            chunk = s.recv(1024)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        return Check(False, f"no answer within {timeout:.1f}s after connect", ip=res.ip)
    except OSError as exc:
        return Check(False, exc.strerror or str(exc), ip=res.ip)
    finally:
        s.close()
    m = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", data)
    if not m:
        return Check(False, f"not an HTTP answer: {data[:40]!r}" if data else "closed without an answer", ip=res.ip)
    return Check(True, status=int(m.group(1)), ip=res.ip)


# --- files through the Host -----------------------------------------------------------








@dataclass
class Files:
    """What was read: addresses with their places, upstreams, mtimes, problems."""

    endpoints: list[Endpoint]
    upstreams: list[Upstream]
    http_upstreams: set[str]
    mtimes: dict[str, float]
    read: list[str]
    errors: list[str]




def _add_nginx(host: Host, main: str, prefix: str, files: Files) -> None:
    """nginx's configuration tree (the inventory's reader): addresses, upstreams, file times."""
    if main in files.read:
        return
    tree = read_nginx(host, main, prefix)
    files.read.extend(tree.files)
    files.mtimes.update(tree.mtimes)
    files.endpoints.extend(tree.endpoints)
    files.upstreams.extend(tree.upstreams)
    files.http_upstreams.update(tree.http_upstreams)
    files.errors.extend(p for p in tree.problems if not (p.startswith(main) and "no such file" in p and not files.read))


def _read_settings(host: Host, path: str, files: Files) -> None:
    try:
        text = host.read_text(path, max_bytes=MAX_FILE_BYTES)
        files.mtimes[path] = host.stat(path).mtime
    except (OSError, LookupError, TimeoutError) as exc:
        files.errors.append(f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
        return
    files.read.append(path)
    files.endpoints.extend(parse_settings(text, path))


# --- listeners on this host (for "the backend's process is young") --------------------


def _local_listener_age(inv: Inventory, ep: Endpoint, now: float) -> tuple[int, float] | None:
    """(master pid, age in seconds) of the service listening on this host for ``ep``."""
    if not (ep.host.startswith("127.") or ep.host in ("localhost", "::1")):
        return None
    for svc in inv.services:
        for ln in svc.listens:
            if ln.proto == "tcp" and ln.port == ep.port and (
                    ln.address in ("*", "0.0.0.0", "::", ep.host)
                    or (ep.host == "localhost" and ln.address in ("127.0.0.1", "::1"))):
                return (svc.pid, max(0.0, now - svc.started)) if svc.started is not None else None
    return None



# --- the probe -------------------------------------------------------------------------


def _str_list(ctx: ProbeContext, key: str) -> list[str]:
    val = ctx.opt(key)
    if not isinstance(val, (list, tuple)) or not all(isinstance(x, str) for x in val):
        raise ConfigError(f"[probe.{ctx.probe_name}] {key}: expected a list of paths")
    bad = [x for x in val if not x.startswith("/")]
    if bad:
        raise ConfigError(f"[probe.{ctx.probe_name}] {key}: {bad[0]!r} is not an absolute path")
    return list(val)


def _places(eps: list[Endpoint], n: int = 3) -> str:
    head = ", ".join(f"{e.where} ({e.what})" for e in eps[:n])
    return head + (f" and {len(eps) - n} more" if len(eps) > n else "")


@probe(
    "drift",
    findings=FINDINGS,
    timeout=4.0,
    options={
        # nginx main configuration files besides those of the running nginx masters (which the
        # inventory finds); their include lines are followed.
        "nginx_conf": [],
        # Application settings files or globs (.env, YAML, INI, TOML, JSON) whose addresses are checked.
        "paths": [],
        # Also read settings files in the usual deploy places (/srv/*/.env, /var/www/*/.env, ...).
        "discover": True,
        # One TCP connect per address; a LAN peer answers in well under a millisecond, a
        # cross-region one in ~100 ms, so 1 s separates "slow" from "not there".
        "connect_timeout": 1.0,
        # Name resolution per host name; a healthy resolver answers in milliseconds, and the
        # glibc default (5 s x attempts) would eat the whole probe.
        "resolve_timeout": 1.0,
        # Unique addresses checked at most (in parallel), so a huge config cannot flood the network.
        "max_endpoints": 64,
        # Unready backends: request each server of an nginx HTTP upstream and compare statuses.
        "check_backends": True,
        # The path requested from each backend (an application health endpoint is better than "/",
        # which may be a static page that works while the app does not).
        "health_path": "/",
        # "Recently" for a backend joining a pool: its config file changed, or its process started,
        # within this many minutes (an incident's first look spans the last quarter to half hour).
        "recent_minutes": 30.0,
    },
)
def drift(ctx: ProbeContext) -> list[Finding]:
    """Connect to every dependency address named in nginx and application
    configuration; compare the backends of each nginx upstream pool."""
    nginx_confs = _str_list(ctx, "nginx_conf")
    paths = _str_list(ctx, "paths")
    health = str(ctx.opt("health_path"))
    if not health.startswith("/") or any(c in health for c in " \r\n"):
        raise ConfigError(f"[probe.drift] health_path: expected a URL path like '/health', got {health!r}")
    ctimeout = float(ctx.opt("connect_timeout"))
    rtimeout = float(ctx.opt("resolve_timeout"))
    if ctimeout <= 0 or rtimeout <= 0:
        raise ConfigError("[probe.drift] connect_timeout and resolve_timeout must be > 0")
    files = Files([], [], set(), {}, [], [])
    for main in nginx_confs:
        _add_nginx(ctx.host, main, DEFAULT_PREFIX, files)
    settings: list[str] = []
    for pat in paths:
        found = expand_glob(ctx.host, pat, files_only=True)
        if not found:
            files.errors.append(f"{pat}: no file matches")
        settings.extend(found)
    if bool(ctx.opt("discover")):
        for svc in ctx.inv.services:  # the configuration each running service was started with
            if svc.program == "nginx" and svc.config:
                _add_nginx(ctx.host, svc.config, nginx_paths(svc.argv)[1], files)
            elif svc.program not in ("nginx",):
                settings += [c.path for c in svc.configs if c.how in ("argv", "env", "ddx.toml") and not c.problem]
        for pat in DISCOVER_GLOBS:
            settings.extend(expand_glob(ctx.host, pat, limit=20, files_only=True))
    for path in list(dict.fromkeys(settings))[:MAX_FILES]:
        _read_settings(ctx.host, path, files)
    if not files.read:
        why = "; ".join(files.errors[:3])
        raise NotApplicable("no nginx or application configuration found" + (f" ({why})" if why else ""))
    if not can_connect(ctx.host):
        raise ProbeError(offline_reason(ctx.host, "network checks are not recorded in bundles: not replayed"))

    by_addr: dict[tuple[str, int], list[Endpoint]] = {}
    for e in without_upstream_names(files.endpoints, files.upstreams):
        by_addr.setdefault((e.host, e.port), []).append(e)
    limit = int(ctx.opt("max_endpoints"))
    addrs = sorted(by_addr)[: max(0, limit)]
    skipped = len(by_addr) - len(addrs)

    pools = [u for u in files.upstreams if u.name.lower() in files.http_upstreams and len(u.servers) >= 2]
    backends = list(dict.fromkeys((s.host, s.port) for u in pools for s in u.servers)) if ctx.opt("check_backends") else []

    jobs: list[tuple[str, tuple[str, int]]] = [("tcp", a) for a in addrs] + [("http", b) for b in backends]

    def run(job: tuple[str, tuple[str, int]]) -> Check:
        kind, (h, p) = job
        if kind == "tcp":
            return tcp_check(h, p, rtimeout, ctimeout, via=ctx.host)
        return http_status(h, p, health, ctimeout + 0.5, via=ctx.host)

    from ddx.host import parallel_map

    budget = rtimeout + ctimeout + 1.0
    results = parallel_map(run, jobs, budget)
    checks: dict[tuple[str, tuple[str, int]], Check] = {}
    for job, res in zip(jobs, results):
        checks[job] = res if isinstance(res, Check) else Check(False, f"check failed: {res}")

    timed_out = [a for a in addrs if checks[("tcp", a)].error.startswith("timed out")]
    busy = _listening_here(ctx.host, {a: checks[("tcp", a)] for a in timed_out}) if timed_out else {}
    out = [_drift_finding(ctx, files, by_addr, addrs, checks, skipped, busy)]
    gone = _gone_finding(ctx, by_addr, addrs, checks, busy)
    if gone is not None:
        out.append(gone)
    if pools and backends:
        out.extend(_backend_findings(ctx, files, pools, checks, health))
    return out


def _listening_here(host: Host, timed_out: dict[tuple[str, int], Check]) -> dict[tuple[str, int], str]:
    """Of the addresses whose connect timed out, those on this host's loopback with a
    socket listening on them: the server is there, its accept queue full (the kernel drops
    the SYN), so the address is saturated, not gone. -> address -> the listener's queue."""
    local = {a: chk.ip for a, chk in timed_out.items() if _is_loopback(chk.ip or a[0])}
    if not local:
        return {}
    listeners = read_sockets(host, owners=False).sockets
    out: dict[tuple[str, int], str] = {}
    for (h, p), ip in local.items():
        for ln in listeners:
            if ln.port == p and ln.address in ("*", "0.0.0.0", "::", ip or h):
                limit = "?" if ln.send_q is None else str(ln.send_q)
                out[(h, p)] = f"{ln.local} accept queue {ln.recv_q}/{limit}"
                break
    return out


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return ip == "localhost"


def _drift_finding(
    ctx: ProbeContext,
    files: Files,
    by_addr: dict[tuple[str, int], list[Endpoint]],
    addrs: list[tuple[str, int]],
    checks: dict[tuple[str, tuple[str, int]], Check],
    skipped: int,
    busy: dict[tuple[str, int], str],
) -> Finding:
    """Present when an address named in the configuration does not answer. One that
    timed out while a socket on this host listens on it is a saturated server (the net
    and pools probes judge it), not drift: noted, not counted."""
    dead = [(a, checks[("tcp", a)]) for a in addrs if not checks[("tcp", a)].ok and a not in busy]
    rows = []
    for (h, p), chk in dead:
        eps = by_addr[(h, p)]
        dns = " (a DNS symptom too)" if chk.error.startswith("does not resolve") else ""
        rows.append(f"{eps[0].address}: {chk.error}{dns} <- {_places(eps)}")
    notes = []
    if busy:
        first = next(iter(busy))
        notes.append(f"{len(busy)} timed out while a socket on this host listens on it (a full accept queue: "
                     f"saturated, not missing): {by_addr[first][0].address}, {busy[first]}")
    if skipped:
        notes.append(f"{skipped} more address(es) not checked (max_endpoints)")
    if files.errors:
        notes.append("not read: " + "; ".join(files.errors[:3]))
    note = (" " + "; ".join(notes) + ".") if notes else ""
    source = ", ".join(files.read[:4]) + (f" and {len(files.read) - 4} more files" if len(files.read) > 4 else "")
    if dead:
        summary = (
            f"{len(dead)} of {len(addrs)} address(es) named in the configuration do not answer a TCP connect; "
            f"first: {rows[0]}.{note}"
        )
        samples = tuple(rows[:MAX_SAMPLES])
    else:
        answer = "answer" if not busy else "are served here or answer"
        summary = f"All {len(addrs)} address(es) named in {len(files.read)} configuration file(s) {answer}.{note}"
        samples = tuple(
            f"{by_addr[a][0].address}: " + (f"timed out, listening here ({busy[a]})" if a in busy else "ok")
            + f" <- {_places(by_addr[a], 1)}" for a in addrs[:MAX_SAMPLES])
    ev = Evidence(
        source or "configuration",
        summary,
        value=len(dead),
        threshold=1,
        unit="addresses",
        samples=samples,
        count=len(dead),
    )
    return ctx.finding("config.references_unreachable_endpoint", bool(dead), ev)


def _gone_finding(
    ctx: ProbeContext,
    by_addr: dict[tuple[str, int], list[Endpoint]],
    addrs: list[tuple[str, int]],
    checks: dict[tuple[str, tuple[str, int]], Check],
    busy: dict[tuple[str, int], str],
) -> Finding | None:
    """``config.endpoint_gone``: a name the configuration uses no longer exists (the
    resolver says so, while other names resolve: DNS itself works), as opposed to an
    address that exists and refuses (a dependency that is down). Absent when every
    address answers; unknown when some fail in a way that cannot tell the two apart
    (refused, timed out, no resolver answer)."""
    results = [(a, checks[("tcp", a)]) for a in addrs if a not in busy]
    gone = [(a, c) for a, c in results if c.no_such_name]
    resolved = [a for a, c in results if not c.error.startswith("does not resolve")]
    if gone and resolved:
        rows = [f"{by_addr[a][0].address}: {c.error} <- {_places(by_addr[a])}" for a, c in gone]
        return ctx.finding("config.endpoint_gone", True, Evidence(
            "configuration",
            f"{len(gone)} name(s) in the configuration no longer exist while {len(resolved)} other(s) resolve; "
            f"first: {rows[0]}",
            value=len(gone), threshold=1, unit="addresses", samples=tuple(rows[:MAX_SAMPLES]), count=len(gone),
        ))
    if results and all(c.ok for _, c in results):
        return ctx.finding("config.endpoint_gone", False, Evidence(
            "configuration", f"every one of the {len(results)} address(es) named in the configuration answers",
        ))
    return None


def _backend_findings(
    ctx: ProbeContext,
    files: Files,
    pools: list[Upstream],
    checks: dict[tuple[str, tuple[str, int]], Check],
    health: str,
) -> list[Finding]:
    recent_s = float(ctx.opt("recent_minutes")) * 60.0
    now = ctx.host.time()

    single: list[str] = []  # rows of pools with a backend failing alone: the failing ones first
    failing = 0
    failing_addrs: set[str] = set()
    compared: list[str] = []
    recent: list[str] = []
    old: list[str] = []
    judged = 0
    for u in pools:
        bad_rows, good_rows, down_rows = [], [], []
        for s in u.servers:
            chk = checks.get(("http", (s.host, s.port)))
            if chk is None:
                continue
            if chk.ok and chk.status is not None and chk.status < 500:
                good_rows.append(f"{u.name} {s.address}: HTTP {chk.status}")
            elif chk.ok or chk.error.startswith(("not an HTTP", "closed without")):
                bad_rows.append(f"{u.name} {s.address}: {'HTTP ' + str(chk.status) if chk.ok else chk.error}")
            else:  # refused / timed out: not answering at all (the drift finding reports it)
                down_rows.append(f"{u.name} {s.address}: not answering ({chk.error})")
        if len(bad_rows) + len(good_rows) >= 2:
            judged += 1
            if bad_rows and good_rows and len(bad_rows) <= max(1, len(good_rows)):
                failing += len(bad_rows)
                failing_addrs.update(r.split(" ", 2)[1].rstrip(":") for r in bad_rows)
                single.extend(bad_rows + good_rows + down_rows)
            else:
                compared.extend(bad_rows + good_rows + down_rows)
        for s in u.servers:
            mt = files.mtimes.get(s.file)
            why = []
            if mt is not None and now - mt <= recent_s:
                why.append(f"{s.file} changed {duration(now - mt)} ago")
            la = _local_listener_age(ctx.inv, s, now)
            if la is not None and la[1] <= recent_s:
                why.append(f"its listener pid {la[0]} started {duration(la[1])} ago")
            line = f"{u.name} {s.address} ({s.where})"
            (recent if why else old).append(line + (": " + "; ".join(why) if why else ""))

    # The backend failing alone first: it is the one whose recent arrival matters.
    recent.sort(key=lambda r: r.split(" ", 2)[1] not in failing_addrs)
    out: list[Finding] = []
    if judged:
        ev = Evidence(
            f"GET {health} to each server of nginx upstreams",
            (f"One backend of a pool answers with errors while its peers answer normally: {single[0]}."
             if single else f"No pool has a backend failing alone ({judged} pool(s) compared)."),
            value=failing,
            threshold=1,
            unit="backends",
            samples=tuple((single or compared)[:MAX_SAMPLES]),
        )
        out.append(ctx.finding("http.errors_single_backend", bool(single), ev))
    ev = Evidence(
        "nginx upstream files' mtime; ss -ltnp + /proc/PID/stat of local backends",
        (f"{len(recent)} backend(s) of a pool joined or restarted within {recent_s / 60:g} min: {recent[0]}."
         if recent else f"No backend of {len(pools)} pool(s) changed within {recent_s / 60:g} min."),
        value=len(recent),
        threshold=1,
        unit="backends",
        samples=tuple((recent or old)[:MAX_SAMPLES]),
    )
    out.append(ctx.finding("change.backend_added_recently", bool(recent), ev))
    return out
