"""memcached and Redis wire protocols: pure parsers, one network function per protocol, discovery.

Parsers (pure, fed samples by the tests):

- ``parse_memcached_stats``: the text reply of ``stats`` / ``stats settings``
  (``STAT name value`` lines ending with ``END``).
- ``encode_command`` / ``parse_resp``: RESP2, the Redis protocol (commands go
  out as arrays of bulk strings; replies are ``+``, ``-``, ``:``, ``$``, ``*``).
- ``parse_redis_info``: the ``INFO`` text (``key:value`` lines under ``# Section``
  headers; ``errorstat_OOM:count=3`` and ``slave0:ip=..,lag=0`` values are
  ``k=v,k=v`` lists, split by ``parse_info_fields``).

Network: ``memcached_query`` and ``redis_query`` are the only functions that
open sockets (stdlib ``socket``, no new dependency). Each makes one connection,
sends its commands, reads the replies and closes, everything within one
deadline; so the runner could later route them through the Host (and record
them in bundles) by wrapping these two functions. Until then a bundle replay
does not contain them, and the probes refuse to run on a replayed bundle rather
than talk to whatever listens on the replaying machine's loopback.

Errors are ``ProbeTargetError`` with a short reason ("connection refused",
"no reply within 1.0s", "garbage reply: 'HTTP/1.1 400'",
"authentication failed"); the probes prefix the masked target URL.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ddx.inventory.model import Inventory
from ddx.units import duration
from ddx.urls import mask_url, split_url

__all__ = [
    "Listening",
    "inventory_listeners",
    "ProbeTargetError",
    "RespError",
    "Target",
    "TargetRefused",
    "encode_command",
    "memcached_query",
    "parse_info_fields",
    "parse_memcached_stats",
    "parse_redis_info",
    "parse_resp",
    "parse_target",
    "redis_query",
]

MAX_REPLY = 4 << 20  # bytes; INFO of a big Redis is ~10 KB, stats ~5 KB: more is not a cache server


class ProbeTargetError(Exception):
    """A target could not be probed; the message is the reason (no target name)."""


class TargetRefused(ProbeTargetError):
    """The TCP connection was refused: nothing listens on that address."""


class RespError(str):
    """A Redis error reply (``-ERR ...``), kept as its text."""


# --- targets -------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where to connect, and how to name the target in evidence (password masked)."""

    scheme: str
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    url: str = ""  # as given, possibly with a password: never show it, show ``name``
    pid: int | None = None  # the process, for a discovered service

    @property
    def name(self) -> str:
        shown = mask_url(self.url) if self.url else f"{self.scheme}://{_hostport(self.host, self.port)}"
        return f"{shown} (pid {self.pid})" if self.pid else shown


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_target(url: str, schemes: Sequence[str], default_port: int) -> Target:
    """A target URL (``memcached://h:p``, ``redis://user:pass@h:p/0``). Raises
    ``ValueError`` naming the (masked) URL when it cannot be used."""
    shown = mask_url(url)
    try:
        parts, user, password = split_url(url)
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"target {shown}: not a valid URL (bad host or port)") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise ValueError(f"target {shown}: scheme must be {' or '.join(s + '://' for s in schemes)}")
    if not parts.hostname:
        raise ValueError(f"target {shown}: no host")
    return Target(scheme, parts.hostname, port, user or None, password, url)


# --- parsers ---------------------------------------------------------------------


def parse_memcached_stats(text: str) -> dict[str, str]:
    """``STAT name value`` lines up to ``END``. Raises ``ValueError`` on an
    error reply or on lines that are not memcached's."""
    out: dict[str, str] = {}
    lines = text.replace("\r\n", "\n").split("\n")
    for line in lines:
        if line == "END":
            return out
        if not line:
            continue
        if line.startswith(("ERROR", "SERVER_ERROR", "CLIENT_ERROR")):
            raise ValueError(f"server replied {line[:80]!r}")
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0] != "STAT":
            raise ValueError(f"garbage reply: {line[:60]!r}")
        out[parts[1]] = parts[2] if len(parts) > 2 else ""
    raise ValueError("reply ended without END")


def encode_command(*args: str | bytes | int) -> bytes:
    """One Redis command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Incomplete(Exception):
    """More bytes are needed to finish the reply."""


def parse_resp(buf: bytes, pos: int = 0) -> tuple[Any, int]:
    """One RESP2 reply starting at ``pos``: (value, position after it).
    Simple strings and bulk strings become ``str``, errors ``RespError``,
    integers ``int``, arrays ``list``, nil ``None``. Raises ``Incomplete``
    when ``buf`` ends early and ``ValueError`` when it is not RESP."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        if pos < len(buf) and buf[pos : pos + 1] not in b"+-:$*":
            raise ValueError(f"garbage reply: {buf[pos:pos + 40]!r}")
        raise Incomplete
    kind, line = buf[pos : pos + 1], buf[pos + 1 : end]
    nxt = end + 2
    text = line.decode("utf-8", errors="replace")
    if kind == b"+":
        return text, nxt
    if kind == b"-":
        return RespError(text), nxt
    try:
        if kind == b":":
            return int(line), nxt
        if kind == b"$":
            n = int(line)
            if n < 0:
                return None, nxt
            if len(buf) < nxt + n + 2:
                raise Incomplete
            if buf[nxt + n : nxt + n + 2] != b"\r\n":
                raise ValueError("garbage reply: bulk string without its CRLF")
            return buf[nxt : nxt + n].decode("utf-8", errors="replace"), nxt + n + 2
        if kind == b"*":
            n = int(line)
            if n < 0:
                return None, nxt
            items = []
            for _ in range(n):
                item, nxt = parse_resp(buf, nxt)
                items.append(item)
            return items, nxt
    except ValueError as exc:
        if str(exc).startswith("garbage"):
            raise
        raise ValueError(f"garbage reply: {buf[pos:pos + 40]!r}") from None
    raise ValueError(f"garbage reply: {buf[pos:pos + 40]!r}")


def parse_redis_info(text: str) -> dict[str, str]:
    """``INFO`` text into ``{key: value}`` (sections flattened: keys are unique
    across sections). Raises ``ValueError`` when no line looks like INFO."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, val = line.partition(":")
        if sep:
            out[key] = val
    if not out:
        raise ValueError("INFO reply has no key:value lines")
    return out


def parse_info_fields(value: str) -> dict[str, str]:
    """An INFO value made of ``k=v,k=v`` (``errorstat_OOM:count=3``,
    ``slave0:ip=10.0.0.2,port=6379,state=online,offset=1,lag=0``)."""
    out: dict[str, str] = {}
    for item in value.split(","):
        k, sep, v = item.partition("=")
        if sep:
            out[k.strip()] = v.strip()
    return out


@dataclass(frozen=True)
class Listening:
    """A listening TCP socket and the process that owns it."""

    program: str
    pid: int
    address: str
    port: int

    def connect_host(self) -> str:
        """Where a local client connects: the wildcard addresses mean loopback."""
        if self.address in ("0.0.0.0", "*", ""):
            return "127.0.0.1"
        if self.address in ("::", "[::]"):
            return "::1"
        return self.address.strip("[]").split("%")[0]


def inventory_listeners(inv: Inventory, programs: Iterable[str]) -> list[Listening]:
    """Listening TCP sockets of the inventory's services of ``programs``: one per
    (service, port), IPv4 first (what local clients usually use)."""
    wanted = set(programs)
    best: dict[tuple[int, int], Listening] = {}
    for svc in inv.services:
        if svc.program not in wanted or svc.pid <= 0:
            continue
        for ln in sorted(svc.listens, key=lambda ln: (":" in ln.address, ln.address)):
            if ln.proto == "tcp" and ln.port:
                best.setdefault((svc.pid, ln.port), Listening(svc.program, svc.pid, ln.address, ln.port))
    return sorted(best.values(), key=lambda ln: (ln.port, ln.pid))


# --- network ---------------------------------------------------------------------


class _Conn:
    """One TCP connection with a single deadline for everything done on it."""

    def __init__(self, host: str, port: int, timeout: float, via: Any = None) -> None:
        from ddx.host.net import open_connection

        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        try:
            self.sock = open_connection(via, (host, port), timeout)  # as the host examined sees it
        except ConnectionRefusedError:
            raise TargetRefused("connection refused") from None
        except TimeoutError:
            raise ProbeTargetError(f"connect timed out after {timeout:.1f}s") from None
        except socket.gaierror as exc:
            raise ProbeTargetError(f"cannot resolve {host!r}: {exc.strerror}") from None
        except OSError as exc:
            raise ProbeTargetError(f"connect failed: {exc.strerror or exc}") from None

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ProbeTargetError(f"no complete reply within {self.timeout:.1f}s")
        return left

    def send(self, data: bytes) -> None:
        self.sock.settimeout(self._left())
        try:
            self.sock.sendall(data)
        except TimeoutError:
            raise ProbeTargetError(f"could not send within {self.timeout:.1f}s") from None
        except OSError as exc:
            raise ProbeTargetError(f"send failed: {exc.strerror or exc}") from None

    def recv(self) -> bytes:
        """Some bytes; raises on timeout, and on a connection closed by the peer."""
        self.sock.settimeout(self._left())
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise ProbeTargetError(f"no complete reply within {self.timeout:.1f}s") from None
        except OSError as exc:
            if exc.errno == errno.ECONNRESET:
                raise ProbeTargetError("connection reset by the server") from None
            raise ProbeTargetError(f"receive failed: {exc.strerror or exc}") from None
        if not data:
            raise ProbeTargetError("the server closed the connection before replying in full")
        return data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def _memcached_reply_done(buf: bytes) -> bool:
    if buf.endswith(b"END\r\n"):
        return True
    first = buf.split(b"\r\n", 1)[0]
    if b"\r\n" in buf and first.startswith((b"ERROR", b"SERVER_ERROR", b"CLIENT_ERROR")):
        return True
    # Not memcached at all: say so now instead of waiting for the timeout.
    if len(buf) >= 5 and not buf.startswith((b"STAT ", b"END\r\n", b"ERROR", b"SERVER_ERROR", b"CLIENT_ERROR")):
        raise ProbeTargetError(f"garbage reply: {buf[:40]!r}")
    return False


def memcached_query(host: str, port: int, commands: Sequence[str], timeout: float, *, via: Any = None) -> list[str]:
    """Send each text command (``stats``, ``stats settings``) on one connection
    and return each raw reply. Read-only: only ``stats`` commands are sent.
    ``via``: the Host to connect as (``ddx.host.net``; None: this machine)."""
    for c in commands:
        if not c.startswith("stats"):
            raise ValueError(f"memcached_query sends only stats commands, not {c!r}")
    conn = _Conn(host, port, timeout, via)
    try:
        out = []
        for c in commands:
            conn.send(c.encode() + b"\r\n")
            buf = b""
            while not _memcached_reply_done(buf):
                buf += conn.recv()
                if len(buf) > MAX_REPLY:
                    raise ProbeTargetError(f"reply larger than {MAX_REPLY} bytes: not memcached stats")
            out.append(buf.decode("utf-8", errors="replace"))
        return out
    finally:
        conn.close()


# Read-only commands: state (INFO, CONFIG GET, PING) and the job-queue reads of jobqueues.py.
_READ_ONLY_REDIS = {"AUTH", "INFO", "CONFIG", "PING", "SMEMBERS", "LLEN", "LINDEX", "HGET"}


def redis_query(
    host: str,
    port: int,
    commands: Sequence[Sequence[str]],
    timeout: float,
    *,
    username: str | None = None,
    password: str | None = None,
    via: Any = None,
) -> list[Any]:
    """AUTH when a password is given, then the commands (pipelined) on one
    connection; returns each command's reply (``RespError`` for an error
    reply). A failed AUTH raises "authentication failed" (the password is
    never in the message). Only read-only commands are sent: INFO, CONFIG GET,
    PING, and SMEMBERS/LLEN/LINDEX/HGET for the job queues."""
    for c in commands:
        if not c or c[0].upper() not in _READ_ONLY_REDIS or (c[0].upper() == "CONFIG" and c[1].upper() != "GET"):
            raise ValueError(f"redis_query sends only read-only commands, not {' '.join(c[:2])!r}")
    conn = _Conn(host, port, timeout, via)
    try:
        wire = []
        if password is not None:
            wire.append(encode_command("AUTH", *((username,) if username else ()), password))
        wire += [encode_command(*c) for c in commands]
        conn.send(b"".join(wire))
        replies: list[Any] = []
        buf, pos = b"", 0
        while len(replies) < len(wire):
            try:
                value, pos = parse_resp(buf, pos)
            except Incomplete:
                buf += conn.recv()
                if len(buf) > MAX_REPLY:
                    raise ProbeTargetError(f"reply larger than {MAX_REPLY} bytes") from None
                continue
            except ValueError as exc:
                raise ProbeTargetError(str(exc)) from None
            replies.append(value)
    finally:
        conn.close()
    if password is not None:
        auth = replies.pop(0)
        if isinstance(auth, RespError) and "without any password configured" not in auth:
            # WRONGPASS / "invalid password" / "invalid username-password pair"
            raise ProbeTargetError(f"authentication failed ({auth.split(' ', 1)[0]})")
    for r in replies:
        if isinstance(r, RespError) and r.startswith("NOAUTH"):
            raise ProbeTargetError("authentication required (give the password in the URL or REDISCLI_AUTH)")
    return replies


# --- probe plumbing shared by the memcached and redis probes ----------------------


def live_network(host: Any) -> None:
    """Refuse to open sockets when ``host`` is a replayed bundle (the replies
    were not recorded, and the replaying machine's loopback is another host)."""
    from ddx.host import offline_reason
    from ddx.host.net import can_connect

    if not can_connect(host):
        raise ProbeTargetError(offline_reason(host, "network replies are not recorded in bundles; run it on the live host"))


def resolve_targets(
    ctx: Any, schemes: Sequence[str], default_port: int, programs: Sequence[str], *,
    password: str | None = None,
) -> tuple[list[Target], list[Target]]:
    """(configured targets, discovered services). Configured ones come from the
    ``targets`` option (a bad URL is a clear error naming it); discovered ones
    from listening sockets of ``programs`` unless ``discover`` is false, minus
    those already configured. ``password`` (from the environment) is used where
    the URL has none."""
    from ddx.errors import ProbeError

    configured: list[Target] = []
    for url in ctx.opt("targets"):
        try:
            t = parse_target(str(url), schemes, default_port)
        except ValueError as exc:
            raise ProbeError(f"probe.{ctx.probe_name}: {exc}") from None
        if t.password is None and password is not None:
            t = Target(t.scheme, t.host, t.port, t.username, password, t.url)
        configured.append(t)
    discovered: list[Target] = []
    if ctx.opt("discover"):
        seen = {(t.host, t.port) for t in configured}
        for ln in inventory_listeners(ctx.inv, programs):
            h = ln.connect_host()
            if (h, ln.port) in seen or (ln.address in ("0.0.0.0", "::", "*") and ("localhost", ln.port) in seen):
                continue
            seen.add((h, ln.port))
            discovered.append(Target(schemes[0], h, ln.port, None, password, "", ln.pid))
    return configured, discovered


@dataclass(frozen=True)
class Sampled:
    """One target's two samples over the window, or why there are none."""

    target: Target
    configured: bool
    first: Any = None
    second: Any = None
    seconds: float = 0.0  # between the two samples
    error: str = ""  # the reason it could not be probed
    refused: bool = False


def sample_twice(ctx: Any, targets: list[tuple[Target, bool]], fetch: Any, timeout: float) -> list[Sampled]:
    """``fetch(target)`` for every target in parallel, the sampling window,
    then again for the targets that answered. One slow target costs at most
    ``timeout`` and never delays the others' replies."""
    from ddx.host import parallel_map

    live_network(ctx.host)

    def timed(t: Target) -> tuple[float, Any]:
        return time.monotonic(), fetch(t)

    firsts = parallel_map(timed, [t for t, _ in targets], timeout + 0.5)
    ok = [i for i, r in enumerate(firsts) if not isinstance(r, BaseException)]
    seconds_by: dict[int, Any] = {}
    if ok:
        ctx.host.sleep(ctx.window)
        again = parallel_map(timed, [targets[i][0] for i in ok], timeout + 0.5)
        seconds_by = dict(zip(ok, again))
    out: list[Sampled] = []
    for i, (t, conf) in enumerate(targets):
        r1 = firsts[i]
        if isinstance(r1, BaseException):
            out.append(Sampled(t, conf, error=_why(r1, timeout), refused=isinstance(r1, TargetRefused)))
            continue
        r2 = seconds_by[i]
        if isinstance(r2, BaseException):
            # It answered once: the first sample still tells the current state.
            out.append(Sampled(t, conf, r1[1], None, 0.0, error=_why(r2, timeout) + " (second sample)"))
            continue
        out.append(Sampled(t, conf, r1[1], r2[1], max(0.0, r2[0] - r1[0])))
    return out


def _why(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ProbeTargetError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no reply within {timeout:.1f}s"
    return f"{type(exc).__name__}: {exc}"


def stat_int(stats: Mapping[str, str], key: str) -> int | None:
    """A counter of a stats reply as an integer (``"12"``, ``"12.0"``), None when absent or not a number."""
    try:
        return int(float(stats[key]))
    except (KeyError, ValueError, OverflowError):
        return None


def stat_delta(a: Mapping[str, str], b: Mapping[str, str], key: str) -> int | None:
    """How much a counter grew from one stats reply to the next (0 when it was reset)."""
    x, y = stat_int(a, key), stat_int(b, key)
    if x is None or y is None:
        return None
    return max(0, y - x)


def hit_rate_verdict(
    window: tuple[int, int], before: tuple[int, int], seconds: float, opt: Any, source: str, unit: str
) -> tuple[str, bool, Any] | None:
    """``svc.cache_hit_rate_drop`` from (hits, misses) in the window against the
    counts before it; None when either side has too few lookups to judge."""
    from ddx.model import Evidence

    (wh, wm), (bh, bm) = window, before
    wg, bg = wh + wm, bh + bm
    if wg < int(opt["min_gets"]) or bg < int(opt["baseline_min_gets"]):
        return None
    w_rate, b_rate = wh / wg, bh / bg
    return ("svc.cache_hit_rate_drop", b_rate - w_rate >= float(opt["hit_rate_drop"]), Evidence(
        source=source,
        summary=f"hit rate {w_rate:.1%} in the last {seconds:.1f}s ({wh} hits, {wm} misses) "
        f"against {b_rate:.1%} before ({bg} {unit} since start)",
        value=round(w_rate * 100, 1),
        threshold=round((b_rate - float(opt["hit_rate_drop"])) * 100, 1),
        unit="%",
        count=wm,
    ))


def cold_verdict(
    uptime: int | None, flushes: tuple[int | None, int | None], window: tuple[int, int] | None, opt: Any,
    source: str, since: str | None, holds: str,
) -> tuple[str, bool, Any] | None:
    """``svc.cache_cold``: the cache started empty shortly before (restarted within
    ``cold_uptime`` seconds, or flushed in the window) and most lookups now miss.

    ``flushes`` is (in the window, since the start); ``window`` the (hits, misses)
    of the window. A fresh cache that nobody reads, or that already hits, is not
    cold for its clients: unknown. Absent for a cache up longer than ``cold_uptime``
    that was never flushed; a flush at an unknown time leaves it unknown."""
    from ddx.model import Evidence

    flushed_now, flushed_ever = flushes
    up = duration(uptime) if uptime is not None else "an unknown time"
    if flushed_now:
        return ("svc.cache_cold", True, Evidence(
            source=source, summary=f"flushed {flushed_now} time(s) in the window: it starts empty; {holds}",
            value=flushed_now, count=flushed_now,
        ))
    if uptime is None:
        return None
    if uptime < int(opt["cold_uptime"]):
        if window is None:
            return None
        hits, misses = window
        gets = hits + misses
        if gets < int(opt["min_gets"]) or misses / gets < float(opt["cold_miss_share"]):
            return None
        return ("svc.cache_cold", True, Evidence(
            source=source,
            summary=f"started {up} ago and misses {misses / gets:.0%} of lookups ({misses} of {gets}); {holds}",
            value=uptime, threshold=int(opt["cold_uptime"]), unit="s up", count=misses, since=since,
        ))
    if flushed_ever == 0:
        return ("svc.cache_cold", False, Evidence(
            source=source, summary=f"up {up}, never flushed; {holds}", value=uptime,
            threshold=int(opt["cold_uptime"]), unit="s up",
        ))
    return None


def eviction_verdict(
    counter: str, evicted: int, seconds: float, opt: Any, source: str, detail: str
) -> tuple[str, bool, Any]:
    """``svc.cache_evictions_high`` from the evictions counted over the window."""
    from ddx.model import Evidence

    rate = evicted / seconds
    present = evicted >= int(opt["evictions_min"]) and rate >= float(opt["evictions_per_s"])
    return ("svc.cache_evictions_high", present, Evidence(
        source=source,
        summary=f"{counter} +{evicted} in {seconds:.1f}s ({rate:.1f}/s); {detail}",
        value=round(rate, 2),
        threshold=float(opt["evictions_per_s"]),
        unit="evictions/s",
        count=evicted,
    ))


def judge_targets(ctx: Any, sampled: list[Sampled], program: str, judge: Any) -> list[Any]:
    """Findings for every sampled target of one kind: ``svc.down`` for those that
    refuse connections, ``judge(first, second, seconds, options, name)`` for
    those that answered, combined one finding per id."""
    from ddx.model import Evidence

    judged: list[tuple[str, bool, Any]] = []
    for s in sampled:
        if s.refused:
            what = "configured target" if s.configured else f"{program} found listening a moment before"
            judged.append(("svc.down", True, Evidence(
                source=s.target.name, summary=f"{what} refuses connections: nothing listens on it"
            )))
        elif s.first is not None:
            judged += judge(s.first, s.second, s.seconds, ctx.config, s.target.name)
    missing = [f"{s.target.name}: {s.error}" for s in sampled if s.error and s.first is None and not s.refused]
    return ctx.combine(judged, missing=missing)


def failures_error(sampled: list[Sampled]) -> str:
    """"could not probe X: reason" for every target without a usable sample."""
    return "; ".join(f"could not probe {s.target.name}: {s.error}" for s in sampled if s.error and s.first is None)


def probe_caches(
    ctx: Any, *, schemes: Sequence[str], default_port: int, program: str, read: Any, judge: Any,
    password: str | None = None,
) -> list[Any]:
    """The body of a cache probe (memcached, Redis): its targets (configured, then
    those of ``program`` the inventory found), two samples of each over the window
    (``read(target, timeout)``), judged and combined; a probe error only when no
    target could be probed, a note naming those that could not when others could."""
    from ddx.errors import ProbeError
    from ddx.probes.base import NotApplicable

    configured, discovered = resolve_targets(ctx, schemes, default_port, (program,), password=password)
    targets = [(t, True) for t in configured] + [(t, False) for t in discovered]
    if not targets:
        raise NotApplicable(f"no {program} found (no {program} process listens on TCP; name one in targets)")
    timeout = float(ctx.opt("target_timeout"))
    sampled = sample_twice(ctx, targets, lambda t: read(t, timeout, ctx.host), timeout)
    findings = judge_targets(ctx, sampled, program, judge)
    failed = failures_error(sampled)
    if not findings:
        raise ProbeError(failed or "no target could be probed")
    if failed:
        ctx.note(failed)  # the others answered: say which one did not
    return findings
