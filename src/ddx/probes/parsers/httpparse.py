"""Web-server evidence as text: pure parsers and the judgement of access logs.

No I/O here (the ``http`` and ``tls`` probes read and fetch; tests feed these
functions samples):

- ``parse_nginx_conf`` / ``nginx_info``: nginx configuration as a tree of
  statements (``include`` left for the caller to expand), then what the probes
  need from it: access logs, ``stub_status`` locations, TLS listeners, the
  worker capacity (``worker_processes`` x ``worker_connections``).
- ``parse_stub_status`` (nginx) and ``parse_server_status`` (Apache
  ``server-status?auto``).
- ``parse_access_line``: the *combined* log format, optionally followed by
  request time, upstream address(es) and upstream status(es), either as
  ``key=value`` pairs (``rt=0.120 ua="10.0.0.2:8080" us="502"``) or as bare
  fields in that order (``0.120 10.0.0.2:8080 502``). Apache ``%D``
  (microseconds) is not told apart from a bare integer and is ignored; a
  request time must carry a decimal point (nginx ``$request_time``, ``%T``
  with ``%{ms}``-less formats stay unknown).
- ``judge_access``: the findings an access log can decide.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ddx.model import Evidence, event_times
from ddx.units import iso

__all__ = [
    "ACCESS_DEFAULTS",
    "AccessRecord",
    "ApacheStatus",
    "NginxInfo",
    "Stmt",
    "StatusPage",
    "StubStatus",
    "judge_access",
    "nginx_info",
    "parse_access_line",
    "parse_nginx_conf",
    "parse_server_status",
    "parse_stub_status",
]

# --- ss ---------------------------------------------------------------------------------------


# --- nginx configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class Stmt:
    """One nginx directive: its name, arguments and block (None for a simple one)."""

    name: str
    args: tuple[str, ...]
    block: tuple[Stmt, ...] | None = None
    file: str = ""
    line: int = 0


def nginx_tokens(text: str) -> list[tuple[str, int, bool]]:
    """(token, line, quoted) with comments dropped; ``{ } ;`` are tokens."""
    out: list[tuple[str, int, bool]] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            out.append((c, line, False))
            i += 1
        elif c in "\"'":
            j, buf = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                if text[j] == "\n":
                    line += 1
                buf.append(text[j])
                j += 1
            out.append(("".join(buf), line, True))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};" and not (
                    text[j] == "#" and j == i):
                j += 1
            out.append((text[i:j], line, False))
            i = j
    return out


def parse_nginx_conf(text: str, file: str = "") -> list[Stmt]:
    """nginx configuration text -> statements. Tolerant: an unbalanced ``}``
    or a missing ``;`` at the end ends the current statement, never raises."""
    toks = nginx_tokens(text)
    pos = 0

    def block() -> list[Stmt]:
        nonlocal pos
        stmts: list[Stmt] = []
        words: list[str] = []
        start = 0
        while pos < len(toks):
            tok, ln, quoted = toks[pos]
            pos += 1
            if quoted or tok not in "{};":
                if not words:
                    start = ln
                words.append(tok)
            elif tok == ";":
                if words:
                    stmts.append(Stmt(words[0], tuple(words[1:]), None, file, start))
                words = []
            elif tok == "{":
                inner = block()
                if words:
                    stmts.append(Stmt(words[0], tuple(words[1:]), tuple(inner), file, start))
                words = []
            else:  # "}"
                break
        if words:
            stmts.append(Stmt(words[0], tuple(words[1:]), None, file, start))
        return stmts

    return block()


@dataclass(frozen=True)
class StatusPage:
    """A status URL found in a configuration (nginx stub_status)."""

    url: str
    file: str
    line: int


@dataclass(frozen=True)
class NginxInfo:
    access_logs: tuple[str, ...]  # absolute paths (variables, syslog: and "off" skipped)
    stub_status: tuple[StatusPage, ...]
    tls_ports: tuple[int, ...]  # ports of "listen ... ssl" (and "listen 443" http2/quic)
    worker_processes: int | None  # None when "auto" (= CPUs) or unreadable
    worker_processes_auto: bool
    worker_connections: int  # nginx default 512


def _listen_addr(args: Sequence[str]) -> tuple[str, int] | None:
    if not args or args[0].startswith("unix:"):
        return None
    a = args[0]
    host, sep, port = a.rpartition(":") if not a.endswith("]") else (a, "", "")
    if not sep:
        if a.isdigit():
            host, port = "", a
        else:
            host, port = a, "80"
    if not port.isdigit():
        return None
    host = host.strip("[]")
    if host in ("", "*", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return host, int(port)


def _abs(path: str, prefix: str) -> str:
    return path if path.startswith("/") else prefix.rstrip("/") + "/" + path


def nginx_info(stmts: Sequence[Stmt], prefix: str = "/usr/share/nginx/") -> NginxInfo:
    """What the probes need from an (include-expanded) nginx configuration.
    ``prefix`` resolves relative log paths (``nginx -p``)."""
    logs: list[str] = []
    pages: list[StatusPage] = []
    tls: list[int] = []
    wp: int | None = None
    auto = False
    wc = 512

    def walk(items: Sequence[Stmt], server: Stmt | None) -> None:
        nonlocal wp, auto, wc
        for s in items:
            if s.name == "worker_processes" and s.args:
                if s.args[0] == "auto":
                    auto = True
                elif s.args[0].isdigit():
                    wp = int(s.args[0])
            elif s.name == "worker_connections" and s.args and s.args[0].isdigit():
                wc = int(s.args[0])
            elif s.name == "access_log" and s.args:
                p = s.args[0]
                if p != "off" and "$" not in p and not p.startswith(("syslog:", "memory:")):
                    logs.append(_abs(p, prefix))
            elif s.name == "listen" and s.args:
                la = _listen_addr(s.args)
                if la and ("ssl" in s.args[1:] or la[1] == 443):
                    tls.append(la[1])
            elif s.name in ("stub_status",) and server is not None:
                pass  # handled at the location level
            if s.block is not None:
                if s.name == "server":
                    walk(s.block, s)
                elif s.name == "location" and server is not None:
                    if any(c.name == "stub_status" and (not c.args or c.args[0] != "off") for c in s.block):
                        pages.extend(_status_urls(server, s))
                    walk(s.block, server)
                else:
                    walk(s.block, server)

    walk(stmts, None)
    return NginxInfo(tuple(dict.fromkeys(logs)), tuple(pages), tuple(sorted(set(tls))), wp, auto, wc)


def _status_urls(server: Stmt, loc: Stmt) -> list[StatusPage]:
    if not loc.args or loc.args[0] in ("~", "~*", "@") or loc.args[0].startswith("@"):
        return []
    path = loc.args[-1]
    listens = [c for c in (server.block or ()) if c.name == "listen"]
    out: list[StatusPage] = []
    for ls in listens or [Stmt("listen", ("80",))]:
        la = _listen_addr(ls.args)
        if la is None:
            continue
        scheme = "https" if "ssl" in ls.args[1:] else "http"
        host = f"[{la[0]}]" if ":" in la[0] else la[0]
        out.append(StatusPage(f"{scheme}://{host}:{la[1]}{path}", loc.file, loc.line))
    return out


# --- status pages -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StubStatus:
    active: int
    accepts: int
    handled: int
    requests: int
    reading: int
    writing: int
    waiting: int


_STUB = re.compile(
    r"Active connections:\s*(\d+).*?server accepts handled requests\s+(\d+)\s+(\d+)\s+(\d+)"
    r".*?Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)",
    re.S,
)


def parse_stub_status(text: str) -> StubStatus:
    """nginx ``stub_status`` page. Raises ValueError when it is not one."""
    m = _STUB.search(text)
    if m is None:
        raise ValueError(f"not an nginx stub_status page: {text[:60]!r}")
    return StubStatus(*(int(g) for g in m.groups()))


@dataclass(frozen=True)
class ApacheStatus:
    busy: int
    idle: int
    scoreboard: str

    @property
    def open_slots(self) -> int:
        """Slots with no process yet ('.'): room the server can still grow into."""
        return self.scoreboard.count(".")


def parse_server_status(text: str) -> ApacheStatus:
    """Apache ``server-status?auto``. Raises ValueError when it is not one."""
    kv: dict[str, str] = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            kv[k.strip()] = v.strip()
    try:
        return ApacheStatus(int(kv["BusyWorkers"]), int(kv["IdleWorkers"]), kv.get("Scoreboard", ""))
    except (KeyError, ValueError):
        raise ValueError(f"not an Apache server-status?auto page: {text[:60]!r}") from None


# --- access logs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRecord:
    time: float
    status: int
    method: str = ""
    path: str = ""
    request_time: float | None = None  # seconds
    upstreams: tuple[tuple[str, int | None], ...] = ()  # (address, its status), in the order tried

    @property
    def backend(self) -> str | None:
        """The upstream that gave the final answer."""
        return self.upstreams[-1][0] if self.upstreams else None


_Q = r'"((?:[^"\\]|\\.)*)"'
_COMBINED = re.compile(
    r"^(\S+) \S+ (?:\S+|\"[^\"]*\") \[(\d{1,2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\] "
    + _Q + r" (\d{3}) (?:\d+|-)(?: " + _Q + " " + _Q + r")?(.*)$"
)
_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_FLOAT = re.compile(r"^\d+\.\d+$")
_ADDR = re.compile(r"^(?:unix:\S+|\[[0-9a-fA-F:.]+\]:\d+|[\w.-]+:\d+)$")
_KEYS = {
    "rt": "rt", "request_time": "rt", "reqtime": "rt",
    "ua": "ua", "upstream": "ua", "upstream_addr": "ua", "upstream_address": "ua", "backend": "ua",
    "us": "us", "upstream_status": "us",
}


def _fields(rest: str) -> list[str]:
    """Split the trailing fields; ``a, b`` lists (nginx retries) stay one field."""
    raw = re.findall(r'\w+="[^"]*"|\w+=\S+|"[^"]*"|\S+', rest)
    out: list[str] = []
    for tok in raw:
        if out and (out[-1].endswith(",") or out[-1].endswith(" :")):
            out[-1] = out[-1] + " " + tok
        else:
            out.append(tok)
    return [t.replace('"', "") if "=" not in t else t for t in out]


_SEP = re.compile(r"[,:]\s+|\s+:\s+")
_TIMES: dict[str, float] = {}  # "22/Nov/2026:05:32:09 +0000" -> epoch: lines share seconds


def _list(text: str) -> list[str]:
    if "," not in text and " " not in text:
        return [text.replace('"', "")] if text.strip('"') else []
    return [p.strip() for p in _SEP.split(text.replace('"', "")) if p.strip()]


def _statuses(text: str) -> list[int | None]:
    return [int(p) if p.isdigit() else None for p in _list(text)]


def parse_access_line(line: str) -> AccessRecord | None:
    """One access-log line (combined format + optional extras), or None."""
    m = _COMBINED.match(line.rstrip("\n"))
    if m is None:
        return None
    stamp = line[m.start(2):m.end(8)]
    t = _TIMES.get(stamp)
    if t is None:
        mon = _MONTHS.get(m.group(3).lower())
        if mon is None:
            return None
        z = m.group(8)
        off = _dt.timedelta(hours=int(z[1:3]), minutes=int(z[3:5]))
        try:
            t = _dt.datetime(int(m.group(4)), mon, int(m.group(2)), int(m.group(5)), int(m.group(6)),
                             int(m.group(7)), tzinfo=_dt.timezone(-off if z[0] == "-" else off)).timestamp()
        except ValueError:
            return None
        if len(_TIMES) > 4096:
            _TIMES.clear()
        _TIMES[stamp] = t
    req = m.group(9).split()
    method, path = (req[0], req[1]) if len(req) >= 2 else ("", "")
    status = int(m.group(10))
    rt: float | None = None
    addrs: list[str] = []
    ustat: list[int | None] = []
    for tok in _fields(m.group(13) or ""):
        key, eq, val = tok.partition("=")
        if eq and key.lower() in _KEYS:
            val = val.strip('"')
            kind = _KEYS[key.lower()]
            if kind == "rt" and _FLOAT.match(val):
                rt = float(val)
            elif kind == "ua" and val != "-":
                addrs = _list(val) if not val.startswith("unix:") else [val]
            elif kind == "us":
                ustat = _statuses(val)
            continue
        if eq:
            continue
        parts = _list(tok)
        first = parts[0] if parts else tok
        if rt is None and not addrs and _FLOAT.match(tok):
            rt = float(tok)
        elif not addrs and _ADDR.match(first):
            addrs = [p for p in (re.split(r",\s*|\s+:\s+", tok)) if p]
        elif addrs and not ustat and (first.isdigit() and len(first) == 3 or first == "-"):
            ustat = _statuses(tok)
    ups = tuple((a, ustat[i] if i < len(ustat) else None) for i, a in enumerate(addrs))
    return AccessRecord(t, status, method, path, rt, ups)


# --- judging an access log -------------------------------------------------------------------------

ACCESS_DEFAULTS: dict[str, Any] = {
    # The "recent" part of a log: the last minutes, where a current incident shows.
    "recent_minutes": 10.0,
    # Fewer requests than this say nothing about a share: the finding stays unknown.
    "min_requests": 20,
    # 5xx share of responses; SRE error budgets are usually 0.1-1 %, alerting
    # rules (awesome-prometheus-alerts NginxHighHttp5xxErrorRate) fire at 5 %.
    "error_ratio": 0.05,
    "min_errors": 5,
    # 90th percentile of the request time, in seconds: interactive pages that
    # take longer than a second are slow by any web-performance yardstick.
    "latency_s": 1.0,
    # Recent request rate over the rate earlier in the log (same file).
    "surge_factor": 3.0,
    # Rejected-for-size responses (413/414/431): a handful means clients hit a limit.
    "too_large_min": 3,
    "too_large_ratio": 0.01,
    # One upstream's error share at or above this while every other one stays
    # below ``error_ratio``.
    "backend_error_ratio": 0.2,
}


@dataclass(frozen=True)
class _Span:
    label: str
    records: tuple[AccessRecord, ...]


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


def _recent(records: Sequence[AccessRecord], now: float, minutes: float, need: int) -> _Span:
    """The records of the last ``minutes``; if they are too few, the last
    ``5 * need`` records (a quiet site still has a current error share)."""
    cut = now - minutes * 60
    rec = tuple(r for r in records if r.time >= cut)
    if len(rec) >= need:
        return _Span(f"last {minutes:g} min", rec)
    tail = tuple(records[-5 * need:])
    return _Span(f"last {len(tail)} requests", tail)


def _when(rs: Sequence[AccessRecord]) -> dict[str, Any]:
    """first_seen, last_seen and times of the requests counted (none when there are none)."""
    if not rs:
        return {}
    ts = [r.time for r in rs]
    return {"first_seen": iso(min(ts)), "last_seen": iso(max(ts)), "times": event_times(ts)}


def judge_access(
    records: Sequence[AccessRecord],
    source: str,
    now: float,
    start: float,
    options: Mapping[str, Any],
) -> list[tuple[str, bool, Evidence]]:
    """Findings from one access log's records (sorted by time) in
    ``[start, now]``; (finding id, present, evidence) for what they can decide."""
    opt = {**ACCESS_DEFAULTS, **options}
    need = int(opt["min_requests"])
    recs = sorted((r for r in records if start <= r.time <= now + 60), key=lambda r: r.time)
    if len(recs) < need:
        return []
    out: list[tuple[str, bool, Evidence]] = []
    span = _recent(recs, now, float(opt["recent_minutes"]), need)
    rs = span.records
    n = len(rs)
    if n >= need:
        e5 = [r for r in rs if r.status >= 500]
        ratio = len(e5) / n
        by_code = _codes(e5)
        present = len(e5) >= int(opt["min_errors"]) and ratio >= float(opt["error_ratio"])
        out.append(("http.5xx_rate_high", present, Evidence(
            source=source, summary=f"{len(e5)} of {n} responses were 5xx ({_pct(ratio)}, {span.label})"
            + (f": {by_code}" if by_code else ""),
            value=round(ratio * 100, 2), threshold=round(float(opt["error_ratio"]) * 100, 2), unit="%",
            count=len(e5), **_when(e5), samples=_samples(e5))))
        gw = [r for r in rs if r.status in (502, 504)]
        gr = len(gw) / n
        present = len(gw) >= int(opt["min_errors"]) and gr >= float(opt["error_ratio"])
        out.append(("http.gateway_errors", present, Evidence(
            source=source, summary=f"{len(gw)} of {n} responses were 502/504 ({_pct(gr)}, {span.label})"
            + (f": {_codes(gw)}" if gw else ""),
            value=round(gr * 100, 2), threshold=round(float(opt["error_ratio"]) * 100, 2), unit="%",
            count=len(gw), **_when(gw), samples=_samples(gw))))
        big = [r for r in rs if r.status in (413, 414, 431)]
        br = len(big) / n
        present = len(big) >= int(opt["too_large_min"]) and br >= float(opt["too_large_ratio"])
        out.append(("http.request_too_large", present, Evidence(
            source=source, summary=f"{len(big)} of {n} requests rejected for size (413/414/431, {span.label})"
            + (f": {_codes(big)}" if big else ""),
            value=len(big), threshold=int(opt["too_large_min"]), count=len(big), samples=_samples(big))))
        timed = [r.request_time for r in rs if r.request_time is not None]
        if len(timed) >= need:
            p90 = _quantile(timed, 0.9)
            p50 = _quantile(timed, 0.5)
            out.append(("http.latency_high", p90 >= float(opt["latency_s"]), Evidence(
                source=source, summary=f"request time p90 {p90:.3f} s, median {p50:.3f} s over {len(timed)} "
                f"requests ({span.label})", value=round(p90, 3), threshold=float(opt["latency_s"]), unit="s")))
        sb = _single_backend(rs, opt, source, span.label)
        if sb is not None:
            out.append(sb)
    surge = _surge(recs, now, start, opt, source)
    if surge is not None:
        out.append(surge)
    return out




def _codes(rs: Iterable[AccessRecord]) -> str:
    counts: dict[int, int] = {}
    for r in rs:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{c}x{k}" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:4])


def _samples(rs: Sequence[AccessRecord]) -> tuple[str, ...]:
    return tuple(f"{iso(r.time)} {r.status} {r.method} {r.path[:80]}"
                 + (f" via {r.backend}" if r.backend else "") for r in rs[-3:])


def _single_backend(rs: Sequence[AccessRecord], opt: Mapping[str, Any], source: str,
                    label: str) -> tuple[str, bool, Evidence] | None:
    per: dict[str, list[int]] = {}  # addr -> [requests, errors]
    for r in rs:
        for addr, st in r.upstreams:
            code = st if st is not None else (r.status if addr == r.backend else None)
            if code is None:
                continue
            c = per.setdefault(addr, [0, 0])
            c[0] += 1
            c[1] += code >= 500
    enough = {a: c for a, c in per.items() if c[0] >= max(5, int(opt["min_errors"]))}
    if len(enough) < 2:
        return None
    rows = sorted(enough.items(), key=lambda kv: -kv[1][1] / kv[1][0])
    bad_addr, (bn, be) = rows[0]
    bad_ratio = be / bn
    others_ok = all(e / n < float(opt["error_ratio"]) for _a, (n, e) in rows[1:])
    present = be >= int(opt["min_errors"]) and bad_ratio >= float(opt["backend_error_ratio"]) and others_ok
    table = [f"{a}: {e}/{n} 5xx ({_pct(e / n)})" for a, (n, e) in rows]
    summary = (f"{bad_addr} answered {be} of {bn} with 5xx ({_pct(bad_ratio)}) while "
               f"{len(rows) - 1} other upstream(s) stayed below {_pct(float(opt['error_ratio']))} ({label})"
               if present else f"errors not concentrated on one upstream ({label}): " + "; ".join(table[:4]))
    return ("http.errors_single_backend", present, Evidence(
        source=source, summary=summary, value=round(bad_ratio * 100, 2),
        threshold=round(float(opt["backend_error_ratio"]) * 100, 2), unit="%", samples=tuple(table[:6])))


def _surge(recs: Sequence[AccessRecord], now: float, start: float, opt: Mapping[str, Any],
           source: str) -> tuple[str, bool, Evidence] | None:
    recent_s = float(opt["recent_minutes"]) * 60
    cut = now - recent_s
    first = max(start, recs[0].time)
    base_s = cut - first
    if base_s < recent_s:  # too little history before the recent part to call it normal
        return None
    base_n = sum(1 for r in recs if r.time < cut)
    rec_n = sum(1 for r in recs if r.time >= cut)
    if base_n + rec_n < int(opt["min_requests"]):
        return None
    base_rate = base_n / base_s * 60
    rec_rate = rec_n / recent_s * 60
    factor = rec_rate / base_rate if base_rate > 0 else float("inf")
    present = rec_n >= int(opt["min_requests"]) and factor >= float(opt["surge_factor"])
    shown = "∞" if factor == float("inf") else f"{factor:.1f}"
    return ("http.requests_surge", present, Evidence(
        source=source,
        summary=f"{rec_rate:.1f} req/min in the last {recent_s / 60:g} min vs {base_rate:.1f} req/min in the "
        f"{base_s / 60:.0f} min before ({shown}x)",
        value=round(factor, 2) if factor != float("inf") else "inf", threshold=float(opt["surge_factor"]),
        unit="x"))

