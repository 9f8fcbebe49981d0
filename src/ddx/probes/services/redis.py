"""Redis: ``INFO all`` twice over the sampling window, plus a few ``CONFIG GET``s.

Counters in INFO run from the server's start; the probe reads INFO at the start
and the end of ``ctx.window`` and judges the differences, plus the current
state (memory against ``maxmemory``, replication, loading). ``CONFIG GET`` may
be renamed or disabled (``rename-command CONFIG ""``): its errors are tolerated
and INFO's own ``maxmemory``/``maxmemory_policy`` fields are used.

Targets: the ``targets`` option (``redis://[user]:password@host:port``) and,
with ``discover``, the listening TCP sockets of ``redis-server`` processes.
The password comes from the URL or, where the URL has none (and for discovered
servers), from ``REDISCLI_AUTH`` like redis-cli; it is sent with ``AUTH`` and
never shown: sources show the URL with ``***``. A wrong password gives "could
not probe redis://:***@host:port: authentication failed".

What each finding means here (and why):

- ``svc.cache_hit_rate_drop``: keyspace_hits / (hits + misses) in the window
  at least ``hit_rate_drop`` below the rate before it (``min_gets`` lookups in
  the window, ``baseline_min_gets`` before it).
- ``svc.cache_cold``: as for memcached: started less than ``cold_uptime`` ago
  and missing most of the window's lookups, or FLUSHALL/FLUSHDB called in the
  window (``cmdstat_flush*``); absent when up longer and never flushed.
- ``svc.cache_evictions_high``: ``evicted_keys`` rising by ``evictions_min``
  and ``evictions_per_s``; evidence: used_memory against maxmemory and policy.
- ``logs.out_of_memory`` (present only): the server refused commands with
  "OOM command not allowed when used memory > 'maxmemory'" (``errorstat_OOM``
  rose in the window, or it is still at maxmemory with ``noeviction`` and has
  refused writes since its start). ddx's log signatures file this very message
  under ``logs.out_of_memory``; here it is read from the server's error
  counters (Redis >= 6.2) instead of a client's log. A Redis at its limit
  that refuses nothing yet is only evidence.
- ``net.connections_refused`` (present only): ``rejected_connections`` rose
  (at ``maxclients`` Redis accepts, answers "max number of clients reached"
  and closes).
- ``svc.db_readonly``: writes refused as read-only in the window
  (``errorstat_READONLY``: clients write to a read-only replica, the failover
  face; ``errorstat_MISCONF``: a master that cannot save its RDB refuses
  writes), or a master with ``rdb_last_bgsave_status:err`` and
  ``stop-writes-on-bgsave-error yes``. Absent when the server counts error
  replies (>= 6.2) and none of that holds. A replica with
  ``replica-read-only no`` accepts writes that are lost at its next full
  sync: said in the evidence.
- ``svc.db_replication_lag_high``: on a replica, ``master_link_status`` not
  up or ``master_last_io_seconds_ago`` over ``replication_lag_s``; on a master,
  a replica not ``online`` or with ``lag`` over ``replication_lag_s``.
  Unknown on a master without replicas.
- ``queue.backlog_growing``: job queues kept in this Redis (Sidekiq, Resque,
  RQ, Celery; ``jobqueues``): the oldest waiting job is ``queue_latency_s``
  old, or a queue of ``queue_backlog_min`` jobs grew over the window. Absent
  when every queue is short or its oldest job young; unknown without queues.
- ``svc.down``: a configured target refusing the connection, or a server
  ``loading`` its dataset (every data command answers LOADING until done:
  down for its clients). Absent with the server's state (clients and
  ``blocked_clients``, memory, role) for every server that answers.

Network I/O is ``cacheproto.redis_query`` (AUTH, INFO, CONFIG GET, and the
queue reads SMEMBERS/LLEN/LINDEX/HGET only): not
recorded in bundles; on a replayed bundle the probe fails with that reason.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.services.cacheproto import (
    ProbeTargetError,
    RespError,
    Target,
    cold_verdict,
    eviction_verdict,
    hit_rate_verdict,
    parse_info_fields,
    parse_redis_info,
    probe_caches,
    redis_query,
    stat_delta,
    stat_int,
)
from ddx.probes.services.jobqueues import Queue, read_queues
from ddx.units import duration, iso, size

__all__ = ["DEFAULTS", "FINDINGS", "judge", "read_sample", "redis"]

FINDINGS = (
    "svc.cache_cold",
    "svc.cache_memory_full",
    "svc.cache_hit_rate_drop",
    "svc.cache_evictions_high",
    "logs.out_of_memory",
    "net.connections_refused",
    "svc.db_readonly",
    "svc.db_replication_lag_high",
    "queue.backlog_growing",
    "svc.down",
)
MIN_WINDOW = 0.2
CONFIG_KEYS = ("maxmemory", "maxmemory-policy", "maxclients", "stop-writes-on-bgsave-error", "replica-read-only")

DEFAULTS: dict[str, Any] = {
    "targets": [],  # redis://[user]:password@host:port URLs besides the discovered servers
    "discover": True,  # also probe redis-server processes listening on this host
    "target_timeout": 1.0,  # seconds for one sample of one target (connect + AUTH + INFO + CONFIG GET)
    "hit_rate_drop": 0.2,  # as for memcached: 20 points below the rate before the window
    "min_gets": 20,
    "cold_uptime": 3600,  # as for memcached: started this recently (seconds) and mostly missing is cold
    "cold_miss_share": 0.5,
    "baseline_min_gets": 100,
    "evictions_per_s": 1.0,  # as for memcached
    "evictions_min": 5,
    # Job queues (Sidekiq, Resque, RQ, Celery): the oldest waiting job this many seconds
    # old is a backlog; a queue this long that grew over the window is one too.
    "queue_latency_s": 300,
    "queue_backlog_min": 1000,
    # Replication: Redis pings replicas every 10 s (repl-ping-replica-period)
    # and drops the link after 60 s (repl-timeout); silence for 30 s is half
    # of that, well past a normal ping gap.
    "replication_lag_s": 30.0,
}


def read_sample(target: Target, timeout: float, via: Any = None) -> dict[str, str]:
    """INFO all plus CONFIG GET of a few settings (prefixed ``config.``; missing
    when CONFIG is renamed or disabled), on connections made as the Host ``via``
    (``ddx.host.net``)."""
    cmds = [["INFO", "all"], *(["CONFIG", "GET", k] for k in CONFIG_KEYS)]
    if target.scheme == "rediss":
        raise ProbeTargetError("rediss:// (TLS) is not supported yet")
    replies = redis_query(target.host, target.port, cmds, timeout, username=target.username, password=target.password,
                          via=via)
    info = replies[0]
    if isinstance(info, RespError):
        raise ProbeTargetError(f"INFO failed: {info[:80]}")
    if not isinstance(info, str):
        raise ProbeTargetError(f"INFO gave {type(info).__name__}, not text: not Redis")
    try:
        out = parse_redis_info(info)
    except ValueError as exc:
        raise ProbeTargetError(str(exc)) from None
    if "redis_version" not in out and "valkey_version" not in out:
        raise ProbeTargetError("INFO reply without redis_version: not Redis")
    for reply in replies[1:]:
        if isinstance(reply, list) and len(reply) >= 2:
            for k, v in zip(reply[::2], reply[1::2]):
                out[f"config.{k}"] = str(v)
    if _keys(out):
        try:
            queues = read_queues(lambda c: redis_query(target.host, target.port, c, timeout, via=via,
                                                       username=target.username, password=target.password))
        except (ProbeTargetError, OSError):
            queues = []  # the queues are extra: INFO alone still tells the server's state
        if queues:
            out["ddx.queues"] = json.dumps([q.to_dict() for q in queues])
            out["ddx.read_at"] = str(time.time())
    return out


def queue_verdict(
    a: Mapping[str, str], b: Mapping[str, str], seconds: float, opt: Mapping[str, Any], source: str
) -> tuple[str, bool, Evidence] | None:
    """``queue.backlog_growing`` from the job queues of two samples: the oldest
    job has waited ``queue_latency_s``, or a queue of ``queue_backlog_min`` jobs
    grew over the window. Absent when every queue is short or its oldest job
    young; None when the server holds no job queue."""
    if "ddx.queues" not in b:
        return None
    now = float(b.get("ddx.read_at", time.time()))
    before = {(q.framework, q.name): q.length for q in _queues(a)}
    queues = _queues(b)
    late, growing, parts = [], [], []
    for q in queues:
        age = now - q.oldest if q.oldest is not None else None
        grew = q.length - before.get((q.framework, q.name), q.length)
        text = f"{q.framework} {q.name}: {q.length} waiting"
        if age is not None and q.length:
            text += f", oldest {duration(max(0.0, age))}"
        if grew:
            text += f" ({grew:+d} in {seconds:.1f}s)"
        parts.append(text)
        if age is not None and q.length and age >= float(opt["queue_latency_s"]):
            late.append(q)
        elif q.length >= int(opt["queue_backlog_min"]) and grew > 0:
            growing.append(q)
    summary = "; ".join(parts)
    if late or growing:
        worst = max((now - q.oldest for q in late if q.oldest is not None), default=0.0)
        return ("queue.backlog_growing", True, Evidence(
            source=source, summary=summary, value=round(worst) if late else sum(q.length for q in growing),
            threshold=float(opt["queue_latency_s"]) if late else int(opt["queue_backlog_min"]),
            unit="s the oldest job waits" if late else "jobs",
            count=sum(q.length for q in late + growing),
        ))
    unknown_age = [q for q in queues if q.oldest is None and q.length >= int(opt["queue_backlog_min"])]
    if unknown_age:
        return None  # long, not growing in a second, age unknown: cannot tell a busy queue from a stuck one
    return ("queue.backlog_growing", False, Evidence(source=source, summary=summary))


def _queues(s: Mapping[str, str]) -> list[Queue]:
    try:
        return [Queue.from_dict(d) for d in json.loads(s.get("ddx.queues", "[]"))]
    except (ValueError, KeyError, TypeError):
        return []




def _flushes(s: Mapping[str, str]) -> int:
    """FLUSHALL and FLUSHDB calls since the start (or since CONFIG RESETSTAT)."""
    total = 0
    for cmd in ("flushall", "flushdb"):
        try:
            total += int(parse_info_fields(s.get(f"cmdstat_{cmd}", "")).get("calls", "0"))
        except ValueError:
            pass
    return total


def _flush_delta(a: Mapping[str, str], b: Mapping[str, str]) -> int:
    return max(0, _flushes(b) - _flushes(a))


def _keys(s: Mapping[str, str]) -> int:
    """Keys in all databases (``db0:keys=12,expires=0,...``)."""
    total = 0
    for k, v in s.items():
        if k.startswith("db") and k[2:].isdigit():
            try:
                total += int(parse_info_fields(v).get("keys", "0"))
            except ValueError:
                pass
    return total


def _errors(s: Mapping[str, str], prefix: str) -> int:
    """Error replies of one kind since the start (``errorstat_OOM:count=3``)."""
    try:
        return int(parse_info_fields(s.get(f"errorstat_{prefix}", "")).get("count", "0"))
    except ValueError:
        return 0




def _memory(s: Mapping[str, str]) -> tuple[int | None, int | None, str, str]:
    """(used, maxmemory or None when unlimited, policy, description)."""
    used = stat_int(s, "used_memory")
    limit = stat_int(s, "maxmemory")
    if limit is None:
        limit = stat_int(s, "config.maxmemory")
    policy = s.get("maxmemory_policy") or s.get("config.maxmemory-policy") or "?"
    if not limit:
        return used, None, policy, f"used_memory {size(used)}, no maxmemory"
    pct = f" ({used / limit:.0%})" if used is not None else ""
    return used, limit, policy, f"used_memory {size(used)} of maxmemory {size(limit)}{pct}, policy {policy}"


def _since(s: Mapping[str, str]) -> str | None:
    """When the counters began: the server's own clock (``server_time_usec``) less its uptime."""
    usec, up = stat_int(s, "server_time_usec"), stat_int(s, "uptime_in_seconds")
    return iso(usec / 1e6 - up) if usec is not None and up is not None else None


def judge(
    a: Mapping[str, str], b: Mapping[str, str] | None, seconds: float, options: Mapping[str, Any], source: str
) -> list[tuple[str, bool, Evidence]]:
    """(finding id, present, evidence) for what two INFO samples of one Redis
    can decide; ``b`` None when only the first sample came. Pure."""
    opt = {**DEFAULTS, **options}
    out: list[tuple[str, bool, Evidence]] = []
    last = b if b is not None else a
    used, limit, policy, mem = _memory(last)
    role = last.get("role", "?")
    maxclients = last.get("maxclients") or last.get("config.maxclients") or "?"
    state = (
        f"redis {last.get('redis_version', '?')} answers: role {role}, up {last.get('uptime_in_seconds', '?')}s, "
        f"clients {last.get('connected_clients', '?')}/{maxclients} ({last.get('blocked_clients', '0')} blocked), "
        f"{mem}"
    )
    loading = last.get("loading") == "1"
    if loading:
        out.append(("svc.down", True, Evidence(
            source=source,
            summary=f"loading its dataset ({last.get('loading_loaded_perc', '?')}% done, "
            f"up {last.get('uptime_in_seconds', '?')}s): data commands answer LOADING until it finishes",
        )))
    else:
        out.append(("svc.down", False, Evidence(source=source, summary=state)))

    out += _replication(last, opt, source)
    counts_errors = "total_error_replies" in last  # Redis >= 6.2: errorstats are kept
    at_limit = limit is not None and used is not None and used >= limit
    noeviction = policy == "noeviction"
    if limit is not None and used is not None:
        # Full means: at maxmemory with nothing it may evict, so writes are refused with OOM.
        # A store that evicts at its limit is working as a cache (svc.cache_evictions_high says
        # whether it evicts too much); one well below its limit is not full.
        refusing = at_limit and (noeviction or (counts_errors and _errors(last, "OOM") > 0))
        if refusing or used < 0.9 * limit:
            out.append(("svc.cache_memory_full", refusing, Evidence(
                source=source,
                summary=(f"at maxmemory with policy {policy}: writes are refused ({mem})" if refusing else mem),
                value=round(100.0 * used / limit, 1) if limit else None,
                threshold=100.0,
                unit="% of maxmemory",
            )))

    # The state alone can decide these two, whatever the window.
    bgsave_err = (
        role == "master"
        and last.get("rdb_last_bgsave_status") == "err"
        and last.get("config.stop-writes-on-bgsave-error", "yes") == "yes"
    )
    if b is None or seconds < MIN_WINDOW:
        if bgsave_err:
            out.append(("svc.db_readonly", True, Evidence(
                source=source, summary="last RDB save failed and stop-writes-on-bgsave-error is yes: writes refused (MISCONF)"
            )))
        return out
    if (stat_int(b, "uptime_in_seconds") or 0) < (stat_int(a, "uptime_in_seconds") or 0):
        return out  # restarted within the window: the counters started again

    backlog = queue_verdict(a, b, seconds, opt, source)
    if backlog:
        out.append(backlog)

    hits, misses = stat_delta(a, b, "keyspace_hits"), stat_delta(a, b, "keyspace_misses")
    bh, bm = stat_int(a, "keyspace_hits"), stat_int(a, "keyspace_misses")
    if hits is not None and misses is not None and bh is not None and bm is not None:
        verdict = hit_rate_verdict((hits, misses), (bh, bm), seconds, opt, source, "lookups")
        if verdict:
            out.append(verdict)
    cold = cold_verdict(
        stat_int(b, "uptime_in_seconds"), (_flush_delta(a, b), _flushes(b)),
        (hits, misses) if hits is not None and misses is not None else None, opt, source, _since(b),
        f"{_keys(b)} keys, {mem}",
    )
    if cold:
        out.append(cold)

    ev = stat_delta(a, b, "evicted_keys")
    if ev is not None:
        note = "; at maxmemory with noeviction: nothing is evicted, writes are refused instead" if at_limit and noeviction else ""
        out.append(eviction_verdict("evicted_keys", ev, seconds, opt, source, f"{mem}{note}"))

    rej = stat_delta(a, b, "rejected_connections")
    rej_all = stat_int(b, "rejected_connections") or 0
    if rej or rej_all:
        up = stat_int(b, "uptime_in_seconds")
        when = (f"+{rej} in {seconds:.1f}s" if rej else
                f"{rej_all} since Redis started {duration(up) if up is not None else 'an unknown time'} ago, "
                f"none in the {seconds:.1f}s window")
        out.append(("net.connections_refused", True, Evidence(
            source=source,
            summary=f"rejected_connections {when} (at maxclients {maxclients}: "
            f"'max number of clients reached'); clients {last.get('connected_clients', '?')}",
            value=rej or rej_all,
            threshold=0,
            count=rej or rej_all,
            since=None if rej else _since(b),
        )))

    if counts_errors:
        oom_now, oom_total = _errors(b, "OOM") - _errors(a, "OOM"), _errors(b, "OOM")
        if oom_now > 0 or (at_limit and noeviction and oom_total > 0):
            out.append(("logs.out_of_memory", True, Evidence(
                source=source,
                summary=(
                    f"{oom_now} commands refused with 'OOM command not allowed when used memory > maxmemory' "
                    f"in {seconds:.1f}s" if oom_now > 0 else
                    f"{oom_total} commands refused with OOM since start and still at the limit"
                ) + f"; {mem}",
                value=oom_now if oom_now > 0 else oom_total,
                threshold=0,
                count=oom_now if oom_now > 0 else oom_total,
                since=None if oom_now > 0 else _since(b),
            )))
        ro = max(0, _errors(b, "READONLY") - _errors(a, "READONLY"))
        misconf = max(0, _errors(b, "MISCONF") - _errors(a, "MISCONF"))
        parts = []
        if ro:
            parts.append(f"{ro} writes refused as READONLY (sent to a read-only replica) in {seconds:.1f}s")
        if misconf:
            parts.append(f"{misconf} writes refused with MISCONF (RDB save failing) in {seconds:.1f}s")
        if bgsave_err and not misconf:
            parts.append("last RDB save failed and stop-writes-on-bgsave-error is yes: writes refused (MISCONF)")
        if not parts:
            parts.append(f"no write refused as read-only in {seconds:.1f}s (role {role})")
        if role == "slave" and (last.get("slave_read_only") == "0" or last.get("config.replica-read-only") == "no"):
            parts.append("this replica accepts writes (replica-read-only no): they are not replicated and are "
                         "lost at its next full sync")
        out.append(("svc.db_readonly", bool(ro or misconf or bgsave_err), Evidence(
            source=source, summary="; ".join(parts), value=ro + misconf, threshold=0, count=ro + misconf
        )))
    elif bgsave_err:
        out.append(("svc.db_readonly", True, Evidence(
            source=source, summary="last RDB save failed and stop-writes-on-bgsave-error is yes: writes refused (MISCONF)"
        )))
    return out


def _replication(s: Mapping[str, str], opt: Mapping[str, Any], source: str) -> list[tuple[str, bool, Evidence]]:
    limit = float(opt["replication_lag_s"])
    role = s.get("role")
    if role == "slave":
        link = s.get("master_link_status", "?")
        master = f"{s.get('master_host', '?')}:{s.get('master_port', '?')}"
        io = stat_int(s, "master_last_io_seconds_ago")
        syncing = s.get("master_sync_in_progress") == "1"
        bad = link != "up" or (io is not None and io > limit)
        summary = f"replica of {master}: link {link}, last I/O {io if io is not None else '?'}s ago"
        if link != "up":
            down = stat_int(s, "master_link_down_since_seconds")
            summary += f", down for {down}s" if down is not None and down >= 0 else ""
        if syncing:
            summary += ", full sync in progress"
        return [("svc.db_replication_lag_high", bad, Evidence(
            source=source, summary=summary, value=io, threshold=limit, unit="s"
        ))]
    if role == "master":
        rows = []
        worst = 0
        bad = False
        for i in range(stat_int(s, "connected_slaves") or 0):
            f = parse_info_fields(s.get(f"slave{i}", ""))
            if not f:
                continue
            lag = int(f["lag"]) if f.get("lag", "").lstrip("-").isdigit() else None
            state = f.get("state", "?")
            off = state != "online" or (lag is not None and lag > limit)
            bad |= off
            worst = max(worst, lag or 0)
            rows.append(f"replica {f.get('ip', '?')}:{f.get('port', '?')} {state}, lag {lag}s")
        if rows:
            return [("svc.db_replication_lag_high", bad, Evidence(
                source=source, summary="; ".join(rows), value=worst, threshold=limit, unit="s", samples=tuple(rows[:5])
            ))]
    return []


@probe("redis", findings=FINDINGS, timeout=3.0, options=DEFAULTS)
def redis(ctx: ProbeContext) -> list[Finding]:
    """Redis INFO over the window: memory against maxmemory and OOM refusals,
    evictions, hit-rate drop, rejected connections, loading, replication,
    writes refused as read-only; a configured target refusing connections is down."""
    password = os.environ.get("REDISCLI_AUTH") or None
    return probe_caches(ctx, schemes=("redis", "rediss"), default_port=6379, program="redis-server",
                        read=read_sample, judge=judge, password=password)
