"""HTTP: error share, gateway errors, latency, surges, oversized requests, one bad backend, busy workers.

Where the evidence comes from:

- **Web servers on this host**: ``ss -ltnpH`` names the processes holding
  listening sockets (nginx, apache2/httpd, haproxy...). For nginx the
  master's command line gives its configuration (``-c``, ``-p``), which is
  *read* (with its ``include`` files; ``nginx -T`` is not run because testing
  a configuration opens, and may create, its log files) for access logs,
  ``stub_status`` locations, TLS ports and the worker capacity.
- **Access logs** (combined format, optionally with request time and upstream
  address/status; see ``httpparse``): the configured ones, the option
  ``access_logs`` and the Debian defaults when they exist. Only the tail
  (``max_log_bytes``) and the lines of the lookback window count.
- **Status pages**: nginx ``stub_status`` (active connections against
  ``worker_processes x worker_connections``; or, when none is full now,
  connections accepted and not handled since nginx started, which it closes
  at once for want of a free connection slot: a count with that start as its
  ``since``) and Apache ``server-status?auto`` (busy workers against
  ``apache_max_workers`` or the scoreboard): ``svc.worker_pool_saturated``.
- **Requests**: ``targets`` (``http://`` / ``https://`` URLs) and, with
  ``check_listeners``, ``/`` of every plain-HTTP listener of a discovered web
  server: ``requests`` GETs each (``timeout_s`` per request, redirects
  followed up to 5, loops noted), status and time. TLS is not verified here
  (the ``tls`` probe judges certificates).

Network exchanges (``fetch``) do not go through the Host, so they are not
recorded in bundles: on a replayed bundle they fail with "not recorded" and the
findings that need them stay unknown; the access logs and configuration are
recorded and replay normally. Every exchange goes through ``fetch`` so that it
can later be routed through the Host.

Gateway errors in nginx *error* logs ("upstream timed out", "connect() failed
... while connecting to upstream") are the log-signature probe's; this probe
reads the 502/504 share of access logs and answers.
"""

from __future__ import annotations

import http.client as httpclient
import os
import socket
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import ProbeError
from ddx.host import Host, offline_reason, parallel_map
from ddx.host.net import can_connect, open_connection
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.parsers.httpparse import (
    ACCESS_DEFAULTS,
    judge_access,
    parse_access_line,
    parse_server_status,
    parse_stub_status,
)
from ddx.probes.services.web import WebServer, hostport, web_servers
from ddx.units import iso
from ddx.urls import mask_url, split_url

__all__ = ["Reply", "fetch", "http"]

FINDINGS = (
    "http.5xx_rate_high",
    "http.gateway_errors",
    "http.latency_high",
    "http.requests_surge",
    "http.request_too_large",
    "http.errors_single_backend",
    "svc.worker_pool_saturated",
)
DEFAULT_LOGS = ("/var/log/nginx/access.log", "/var/log/apache2/access.log", "/var/log/httpd/access_log")

DEFAULTS: dict[str, Any] = {
    **ACCESS_DEFAULTS,
    "targets": [],  # http:// and https:// URLs to request
    "access_logs": [],  # extra access logs (combined format)
    "status_urls": [],  # nginx stub_status or Apache server-status?auto pages
    "discover": True,  # look for web servers on this host (ss -ltnpH)
    "check_listeners": True,  # request / of each plain-HTTP listener found
    "requests": 3,  # requests per target: enough for a share, cheap for the server
    "timeout_s": 1.0,  # per request; a hung server costs one timeout, not three
    "max_log_bytes": 4 << 20,  # tail of each access log read (~20k lines, ~0.4 s to parse)
    # Active connections over worker capacity for nginx; busy workers over
    # the maximum for Apache. nginx never shows 100 %: below 1/16 free slots
    # it closes idle keep-alive connections (up to 1/8 of them), so a full
    # nginx hovers between ~82 % and ~94 % (measured on nginx 1.22).
    "saturation_ratio": 0.8,
    "apache_max_workers": 0,  # MaxRequestWorkers; 0 = judge from the scoreboard
    "since": 0.0,
    "lookback_hours": 1.0,
}

# --- network (one function: the place to route through the Host later) ------------------------


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    seconds: float


def _tls_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    return ctx


def fetch(host: Host, url: str, *, timeout: float, method: str = "GET", body: bytes | None = None,
          max_body: int = 64 << 10) -> Reply:
    """One HTTP request. Raises ``TimeoutError`` ("no response within Xs"),
    ``ConnectionError``/``OSError`` (refused, reset), ``ValueError`` (not an
    HTTP answer, bad URL), ``LookupError`` on a bundle."""
    if not can_connect(host):
        raise LookupError(offline_reason(host, "network requests are not recorded in bundles"))
    u, user, password = split_url(url)  # a password with @ or / in it is never taken for the host
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an http(s) URL: {mask_url(url)}")
    try:
        port = u.port or (443 if u.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"bad port in {mask_url(url)}") from None
    conn = httpclient.HTTPConnection(u.hostname, port, timeout=timeout)  # its socket is ours, TLS or not
    headers = {"User-Agent": "ddx-probe", "Connection": "close", "Accept": "*/*"}
    if user is not None:
        import base64

        cred = f"{user}:{password or ''}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
    path = (u.path or "/") + (f"?{u.query}" if u.query else "")
    t0 = time.monotonic()
    try:
        raw = open_connection(host, (u.hostname, port), timeout)  # from the host examined (ddx.host.net)
        conn.sock = _tls_context().wrap_socket(raw, server_hostname=u.hostname) if u.scheme == "https" else raw
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(max_body)
        return Reply(resp.status, resp.reason, {k.lower(): v for k, v in resp.getheaders()}, data,
                     time.monotonic() - t0)
    except (socket.timeout, TimeoutError):
        raise TimeoutError(f"no response within {timeout:g} s") from None
    except ssl.SSLError as exc:
        raise ConnectionError(f"TLS handshake failed: {exc.reason or exc}") from None
    except httpclient.BadStatusLine as exc:
        raise ValueError(f"not an HTTP response: {str(exc)[:60]!r}") from None
    except httpclient.HTTPException as exc:
        raise ValueError(f"bad HTTP response: {type(exc).__name__}: {str(exc)[:60]}") from None
    finally:
        conn.close()


# --- discovery --------------------------------------------------------------------------------


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    msg = str(exc)
    return msg if msg else type(exc).__name__


# --- collecting verdicts ------------------------------------------------------------------------

Verdict = tuple[str, bool, Evidence]


@dataclass
class _Found:
    verdicts: list[Verdict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "could not probe X: reason"
    looked: list[str] = field(default_factory=list)  # sources that gave something


def _read_logs(ctx: ProbeContext, paths: list[tuple[str, bool]], found: _Found) -> None:
    now = ctx.host.time()
    start = ctx.window_start(now)
    limit = int(ctx.opt("max_log_bytes"))
    for path, required in paths:
        try:
            text = ctx.host.read_text(path, max_bytes=limit, tail=True)
        except FileNotFoundError:
            if required:
                found.failures.append(f"{path}: no such file")
            continue
        except (OSError, LookupError, TimeoutError) as exc:
            found.failures.append(f"could not read {path}: {_why(exc)}")
            continue
        lines = text.splitlines()
        if len(text.encode("utf-8", "replace")) >= limit and lines:
            lines = lines[1:]  # the first line is cut
        recs = [r for r in (parse_access_line(ln) for ln in lines) if r is not None]
        if lines and not recs:
            found.failures.append(f"{path}: no line in combined log format (first: {lines[0][:30]!r})")
            continue
        found.looked.append(path)
        found.verdicts += judge_access(recs, path, now, start, ctx.config)


def _status_page(ctx: ProbeContext, url: str, server: WebServer | None, found: _Found) -> bool:
    """One status page -> svc.worker_pool_saturated. False when it could not be read."""
    try:
        rep = fetch(ctx.host, url, timeout=float(ctx.opt("timeout_s")))
    except Exception as exc:  # noqa: BLE001 - reported as a reason
        found.failures.append(f"could not probe {mask_url(url)}: {_why(exc)}")
        return False
    text = rep.body.decode("utf-8", "replace")
    ratio = float(ctx.opt("saturation_ratio"))
    try:
        st = parse_stub_status(text)
    except ValueError:
        st = None
    if st is not None:
        found.looked.append(url)
        info = server.info if server else None
        if info is None:
            found.failures.append(f"{mask_url(url)}: {st.active} active connections, but the worker capacity "
                                  "is unknown (nginx configuration not found)")
            return True
        procs = info.worker_processes or (server.workers if server and server.workers else None)
        if procs is None:
            found.failures.append(f"{mask_url(url)}: worker_processes auto and no worker seen")
            return True
        # Every worker spends one connection slot per listening socket, and
        # nginx closes idle keep-alive connections once fewer than 1/16 of its
        # slots are free: a saturated nginx shows 82-94 % of this capacity.
        nlisten = len(server.listeners) if server else 0
        cap = procs * max(1, info.worker_connections - nlisten)
        full = st.active >= ratio * cap
        dropped = st.accepts - st.handled  # connections nginx accepted and closed at once: no slot left
        svc = ctx.inv.service_of(server.master) if server and server.master else None
        started = svc.started if svc is not None else None
        evidence = Evidence(
            source=mask_url(url),
            summary=f"nginx active connections {st.active} of {cap} ({procs} workers x (worker_connections "
            f"{info.worker_connections} - {nlisten} listening sockets)); reading {st.reading}, "
            f"writing {st.writing}, waiting {st.waiting}",
            value=st.active, threshold=round(ratio * cap, 1), unit="connections")
        if not full and dropped > 0:
            evidence = Evidence(
                source=mask_url(url),
                summary=f"{dropped} connection(s) accepted and not handled (accepts {st.accepts}, handled "
                        f"{st.handled}) since nginx started: it ran out of worker_connections "
                        f"({info.worker_connections}); active now {st.active} of {cap}",
                value=dropped, threshold=0, unit="connections", since=iso(started) if started else None)
        found.verdicts.append(("svc.worker_pool_saturated", full or dropped > 0, evidence))
        return True
    try:
        ap = parse_server_status(text)
    except ValueError:
        found.failures.append(f"could not probe {mask_url(url)}: HTTP {rep.status}, neither stub_status nor "
                              f"server-status?auto ({text[:40]!r})")
        return False
    found.looked.append(url)
    mx = int(ctx.opt("apache_max_workers"))
    slots = len(ap.scoreboard)
    cap = mx if mx > 0 else slots
    full = (cap > 0 and ap.busy >= ratio * cap) or (ap.idle == 0 and ap.busy > 0 and ap.open_slots == 0)
    found.verdicts.append(("svc.worker_pool_saturated", full, Evidence(
        source=mask_url(url),
        summary=f"Apache busy workers {ap.busy}, idle {ap.idle}, open slots {ap.open_slots} of "
        f"{cap} ({'apache_max_workers' if mx > 0 else 'scoreboard slots'})",
        value=ap.busy, threshold=round(ratio * cap, 1) if cap else None, unit="workers")))
    return True


@dataclass(frozen=True)
class _Check:
    url: str
    statuses: tuple[int, ...]
    seconds: tuple[float, ...]
    notes: tuple[str, ...]
    error: str = ""
    timed_out: bool = False


def _get_following(ctx: ProbeContext, url: str, timeout: float) -> tuple[Reply, list[str]]:
    """GET, following up to 5 redirects; notes say where it went and whether it looped."""
    notes: list[str] = []
    seen = [url]
    cur = url
    total = 0.0
    for _hop in range(6):
        rep = fetch(ctx.host, cur, timeout=timeout)
        total += rep.seconds
        loc = rep.headers.get("location")
        if rep.status not in (301, 302, 303, 307, 308) or not loc:
            return Reply(rep.status, rep.reason, rep.headers, rep.body, total), notes
        nxt = urllib.parse.urljoin(cur, loc)
        if nxt in seen:
            notes.append("redirect loop: " + " -> ".join(mask_url(u) for u in [*seen[seen.index(nxt):], nxt]))
            return Reply(rep.status, rep.reason, rep.headers, rep.body, total), notes
        if urllib.parse.urlsplit(nxt).scheme not in ("http", "https"):
            notes.append(f"redirect to {mask_url(nxt)} not followed")
            return Reply(rep.status, rep.reason, rep.headers, rep.body, total), notes
        seen.append(nxt)
        cur = nxt
    notes.append(f"more than 5 redirects from {mask_url(url)}")
    return Reply(rep.status, rep.reason, rep.headers, rep.body, total), notes


def _check(ctx: ProbeContext, url: str) -> _Check:
    n = max(1, int(ctx.opt("requests")))
    timeout = float(ctx.opt("timeout_s"))
    statuses: list[int] = []
    secs: list[float] = []
    notes: list[str] = []
    for _ in range(n):
        try:
            rep, nn = _get_following(ctx, url, timeout)
        except TimeoutError as exc:
            return _Check(url, tuple(statuses), tuple(secs), tuple(notes), str(exc), True)
        except Exception as exc:  # noqa: BLE001 - a reason, never a traceback
            return _Check(url, tuple(statuses), tuple(secs), tuple(notes), _why(exc))
        statuses.append(rep.status)
        secs.append(rep.seconds)
        for x in nn:
            if x not in notes:
                notes.append(x)
    return _Check(url, tuple(statuses), tuple(secs), tuple(notes))


def _judge_check(c: _Check, opt: Mapping[str, Any], timeout: float) -> tuple[list[Verdict], str]:
    src = mask_url(c.url)
    out: list[Verdict] = []
    fail = f"could not probe {src}: {c.error}" if c.error else ""
    note = ("; " + "; ".join(c.notes)) if c.notes else ""
    lat_s = float(opt["latency_s"])
    if c.timed_out and timeout >= lat_s:
        out.append(("http.latency_high", True, Evidence(
            source=src, summary=f"{fail} (after {len(c.statuses)} answered request(s))",
            value=round(timeout, 3), threshold=lat_s, unit="s")))
    if not c.statuses:
        return out, fail
    n = len(c.statuses)
    codes = ", ".join(str(s) for s in c.statuses)
    e5 = sum(1 for s in c.statuses if s >= 500)
    ratio = e5 / n
    out.append(("http.5xx_rate_high", e5 > 0 and ratio >= float(opt["error_ratio"]), Evidence(
        source=src, summary=f"{e5} of {n} requests answered 5xx (statuses {codes}){note}",
        value=round(ratio * 100, 1), threshold=round(float(opt["error_ratio"]) * 100, 2), unit="%", count=e5)))
    gw = sum(1 for s in c.statuses if s in (502, 504))
    out.append(("http.gateway_errors", gw > 0, Evidence(
        source=src, summary=f"{gw} of {n} requests answered 502/504 (statuses {codes})", value=gw, count=gw)))
    big = sum(1 for s in c.statuses if s in (413, 414, 431))
    if big:
        out.append(("http.request_too_large", True, Evidence(
            source=src, summary=f"{big} of {n} requests answered 413/414/431 (statuses {codes})", value=big)))
    if not c.timed_out:
        med = sorted(c.seconds)[len(c.seconds) // 2]
        out.append(("http.latency_high", med >= lat_s, Evidence(
            source=src, summary=f"median response time {med:.3f} s over {n} request(s) "
            f"(max {max(c.seconds):.3f} s)", value=round(med, 3), threshold=lat_s, unit="s")))
    return out, fail


def _merge(verdicts: list[Verdict], failures: list[str], source: str) -> list[Finding]:
    by: dict[str, list[tuple[bool, Evidence]]] = {}
    for fid, present, ev in verdicts:
        by.setdefault(fid, []).append((present, ev))
    out: list[Finding] = []
    for fid in sorted(by):
        items = by[fid]
        present = any(p for p, _ in items)
        evs = tuple(ev for p, ev in sorted(items, key=lambda x: not x[0]) if p or not present)
        out.append(Finding(fid, _state(present), source, evs))
    return out


def _state(present: bool) -> Any:
    from ddx.model import State

    return State.PRESENT if present else State.ABSENT


@probe("http", findings=FINDINGS, timeout=4.0, options=DEFAULTS)
def http(ctx: ProbeContext) -> list[Finding]:
    """Web servers and HTTP targets: 5xx and 502/504 share, request time,
    request-rate surge, 413/414/431, errors on one upstream (access logs,
    timed requests), busy workers (nginx stub_status, Apache server-status)."""
    targets = [str(t) for t in _as_list(ctx.opt("targets"), "targets")]
    for t in targets:
        if urllib.parse.urlsplit(t).scheme not in ("http", "https"):
            raise ProbeError(f"probe.http targets: {mask_url(t)!r} is not an http:// or https:// URL")
    found = _Found()
    servers: list[WebServer] = []
    if ctx.opt("discover"):
        servers = web_servers(ctx.host, ctx.inv)
        for s in servers:
            found.failures += [f"{s.label}: could not read {p}" for p in s.problems]
    logs: list[tuple[str, bool]] = [(str(p), True) for p in _as_list(ctx.opt("access_logs"), "access_logs")]
    for s in servers:
        logs += [(p, False) for p in (s.info.access_logs if s.info else s.access_logs)]
    if ctx.opt("discover"):
        logs += [(p, False) for p in DEFAULT_LOGS]
    logs = _dedupe(logs)
    status_pages: list[tuple[str, WebServer | None]] = [
        (str(u), None) for u in _as_list(ctx.opt("status_urls"), "status_urls")]
    checks = list(targets)
    for s in servers:
        tls_ports = set(s.info.tls_ports) if s.info else set()
        if s.info:
            status_pages += [(p.url, s) for p in s.info.stub_status[:1]]
        elif s.program in ("apache2", "httpd"):
            status_pages += [(f"http://{hostport(ln)}/server-status?auto", s) for ln in s.listeners
                             if ln.port != 443][:1]
        if ctx.opt("check_listeners"):
            for ln in s.listeners:
                if ln.port in tls_ports or ln.port == 443:
                    continue
                u = f"http://{hostport(ln)}/"
                if u not in checks:
                    checks.append(u)
    if not servers and not targets and not status_pages and not any(req or _exists(ctx.host, p)
                                                                        for p, req in logs):
        why = "; ".join(found.failures)
        raise NotApplicable("no web server, access log or HTTP target found" + (f" ({why})" if why else ""))

    timeout = float(ctx.opt("timeout_s"))
    n = max(1, int(ctx.opt("requests")))
    budget = timeout * n * 6 + 0.5

    def net_job(item: tuple[str, Any]) -> tuple[list[Verdict], list[str]]:
        kind, arg = item
        sub = _Found()
        if kind == "status":
            _status_page(ctx, arg[0], arg[1], sub)
            return sub.verdicts, sub.failures
        c = _check(ctx, arg)
        vs, fail = _judge_check(c, ctx.config, timeout)
        return vs, [fail] if fail else []

    jobs: list[tuple[str, Any]] = [("status", sp) for sp in status_pages] + [("check", u) for u in checks]
    results = parallel_map(net_job, jobs, budget) if jobs else []
    _read_logs(ctx, logs, found)
    for job, res in zip(jobs, results):
        if isinstance(res, BaseException):
            what = job[1][0] if job[0] == "status" else job[1]
            found.failures.append(f"could not probe {mask_url(what)}: {_why(res)}")
            continue
        found.verdicts += res[0]
        found.failures += res[1]
    if not found.verdicts:
        if found.failures:
            raise ProbeError("; ".join(found.failures[:4]) + (f" (+{len(found.failures) - 4} more)"
                                                              if len(found.failures) > 4 else ""))
        what = ", ".join(s.label for s in servers) or "access logs"
        raise NotApplicable(f"nothing to judge: {what} logged no request in the lookback window")
    findings = _merge(found.verdicts, found.failures, f"probe:{ctx.probe_name}")
    if found.failures:  # say what could not be looked at, beside the probe's result
        ctx.note("; ".join(found.failures[:4]) + (f" (+{len(found.failures) - 4} more)" if len(found.failures) > 4 else ""))
    return findings




def _exists(host: Host, path: str) -> bool:
    try:
        host.stat(path)
        return True
    except (OSError, LookupError, TimeoutError):
        return False


def _dedupe(logs: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    out: dict[str, bool] = {}
    for p, req in logs:
        key = os.path.normpath(p)
        out[key] = out.get(key, False) or req
    return list(out.items())


def _as_list(value: Any, name: str) -> list[Any]:
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ProbeError(f"probe.http {name}: expected a list of strings, got {type(value).__name__}")
