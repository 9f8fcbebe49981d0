"""memcached: ``stats`` twice over the sampling window, judged on the differences.

memcached's counters run from its start, so a lifetime value says little about
now: the probe reads ``stats`` (and ``stats settings`` for the limits) at the
start and at the end of ``ctx.window`` and judges what changed in between.

Targets: the ``targets`` option (``memcached://host:port``) and, with
``discover``, every listening TCP socket of a ``memcached`` process (``ss
-ltnpH``, or ``/proc/net/tcp`` matched with ``/proc/PID/fd``). A memcached that
listens only on a unix socket is not probed (TCP only). Nothing configured
and nothing found: not applicable.

What each finding means here (and why):

- ``svc.cache_hit_rate_drop``: the hit rate of the gets *in the window*
  (get_hits / (get_hits + get_misses)) is at least ``hit_rate_drop`` below the
  rate before the window (lifetime up to the first sample). Needs ``min_gets``
  gets in the window and ``baseline_min_gets`` before it, else unknown.
- ``svc.cache_cold``: memcached started less than ``cold_uptime`` ago and
  misses at least ``cold_miss_share`` of the window's gets (``min_gets`` of
  them), or ``cmd_flush`` rose in the window: its clients fall through to what
  it caches. Absent when it has run longer and was never flushed; a fresh one
  nobody reads, or one that already hits, stays unknown.
- ``svc.cache_evictions_high``: ``evictions`` rose by at least
  ``evictions_min`` and ``evictions_per_s`` in the window. memcached evicts only
  when a slab class has no free memory, so every eviction is "because it is
  full"; the threshold separates a trickle from a cache too small for its
  working set. Evidence: bytes vs ``limit_maxbytes``, ``evicted_unfetched``
  (items evicted before anyone read them).
- ``net.connections_refused`` (present only): ``rejected_connections`` rose
  (at ``maxconns`` memcached accepts and at once closes new connections with
  "ERROR Too many open connections": clients are refused by the server) or
  ``listen_disabled_num`` rose (it stopped accepting: clients queue in the
  backlog and time out); or, when neither rose in the window, either counts
  any since the start (with that start as ``since``). Absence is not reported: this memcached not refusing
  says nothing of the host's other services.
- ``http.request_too_large``: ``store_too_large`` (memcached >= 1.5.x: sets
  refused with "SERVER_ERROR object too large for cache") rose in the window,
  or counts any since the server started: a server refusing oversized
  commands, which is what the finding means. A count since the start carries
  that start as ``since``, and the timing stage weighs it by how long ago that
  was (eight refusals since a start ten minutes ago are this incident's; since
  a start last month, they may be anybody's). Evidence
  carries ``item_size_max`` and ``conn_yields`` (rising when clients send
  multi-gets bigger than ``reqs_per_event``: large batched requests).
- ``svc.down``: a *configured* target that refuses the connection is down.
  A discovered one was found listening; it is down only if it refuses a moment
  later. A target that answers garbage, hangs after accept or cannot be reached
  is not called down: the probe says "could not probe URL: reason". Absent
  (with the server's state as evidence) for every target that answered.

Network I/O is ``cacheproto.memcached_query`` (one connection per sample,
only ``stats`` commands): not recorded in bundles; on a replayed bundle the
probe fails with that reason rather than probe the replaying machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.services.cacheproto import (
    ProbeTargetError,
    Target,
    cold_verdict,
    eviction_verdict,
    hit_rate_verdict,
    memcached_query,
    parse_memcached_stats,
    probe_caches,
    stat_delta,
    stat_int,
)
from ddx.units import duration, iso, size

__all__ = ["DEFAULTS", "FINDINGS", "MemcachedSample", "judge", "memcached", "read_sample"]

FINDINGS = (
    "svc.cache_hit_rate_drop",
    "svc.cache_cold",
    "svc.cache_evictions_high",
    "net.connections_refused",
    "http.request_too_large",
    "svc.down",
)
MIN_WINDOW = 0.2  # seconds; shorter and the two samples are the same instant

DEFAULTS: dict[str, Any] = {
    "targets": [],  # memcached://host:port URLs to probe besides the discovered ones
    "discover": True,  # also probe memcached processes listening on this host
    "target_timeout": 1.0,  # seconds for one sample of one target (connect + stats + stats settings)
    # Hit rate: the window's rate this far (absolute, 0.2 = 20 points) below the
    # rate before the window. Healthy caches keep a steady rate; a fall of 20
    # points is the "misses rose sharply" of cold restarts and lost nodes.
    "hit_rate_drop": 0.2,
    "min_gets": 20,  # gets in the window for its hit rate to mean something
    # Cold: started less than this many seconds ago (or flushed in the window) and
    # missing at least this share of the window's lookups.
    "cold_uptime": 3600,
    "cold_miss_share": 0.5,
    "baseline_min_gets": 100,  # gets before the window for the lifetime rate to mean something
    # Evictions: at least this many per second and this many in the window.
    # A full LRU cache evicts a trickle in normal operation; one eviction per
    # second means the working set does not fit.
    "evictions_per_s": 1.0,
    "evictions_min": 5,
    # store_too_large since the start as a share of all sets (when none fell
    # in the window): 0.1% of sets refused is a client that keeps sending them.
}


class MemcachedSample(dict[str, str]):
    """``stats`` merged with ``stats settings`` (prefixed ``settings.``)."""


def read_sample(target: Target, timeout: float, via: Any = None) -> MemcachedSample:
    """One sample of one target: ``stats`` and ``stats settings`` on one connection
    (made as the Host ``via``, ``ddx.host.net``)."""
    stats_text, settings_text = memcached_query(target.host, target.port, ["stats", "stats settings"], timeout,
                                                via=via)
    try:
        stats = parse_memcached_stats(stats_text)
    except ValueError as exc:
        raise ProbeTargetError(str(exc)) from None
    if "uptime" not in stats and "pid" not in stats:
        raise ProbeTargetError("stats reply without uptime or pid: not memcached")
    out = MemcachedSample(stats)
    try:
        out.update({f"settings.{k}": v for k, v in parse_memcached_stats(settings_text).items()})
    except ValueError:
        pass  # `stats settings` is optional: the limits are then unknown
    return out






def _since(s: Mapping[str, str]) -> str | None:
    """When the counters began: the server's own clock less its uptime."""
    t, up = stat_int(s, "time"), stat_int(s, "uptime")
    return iso(t - up) if t is not None and up is not None else None


def _up(s: Mapping[str, str]) -> str:
    up = stat_int(s, "uptime")
    return duration(up) if up is not None else "an unknown time"


def judge(
    a: Mapping[str, str], b: Mapping[str, str] | None, seconds: float, options: Mapping[str, Any], source: str
) -> list[tuple[str, bool, Evidence]]:
    """(finding id, present, evidence) for what two samples of one memcached
    can decide; ``b`` None when only the first sample came. Pure."""
    opt = {**DEFAULTS, **options}
    out: list[tuple[str, bool, Evidence]] = []
    last = b if b is not None else a
    conns = f"{last.get('curr_connections', '?')}/{last.get('max_connections', last.get('settings.maxconns', '?'))}"
    state = (
        f"memcached {last.get('version', '?')} answers: up {last.get('uptime', '?')}s, connections {conns}, "
        f"{size(stat_int(last, 'bytes'))} of {size(stat_int(last, 'limit_maxbytes'))} used"
    )
    out.append(("svc.down", False, Evidence(source=source, summary=state)))
    restarted = b is not None and (stat_int(b, "uptime") or 0) < (stat_int(a, "uptime") or 0)
    if b is None or restarted or seconds < MIN_WINDOW:
        return out

    # hit rate in the window against the rate before it
    wh, wm = stat_delta(a, b, "get_hits"), stat_delta(a, b, "get_misses")
    bh, bm = stat_int(a, "get_hits"), stat_int(a, "get_misses")
    if wh is not None and wm is not None and bh is not None and bm is not None:
        verdict = hit_rate_verdict((wh, wm), (bh, bm), seconds, opt, source, "gets")
        if verdict:
            out.append(verdict)
    cold = cold_verdict(
        stat_int(b, "uptime"), (stat_delta(a, b, "cmd_flush"), stat_int(b, "cmd_flush")),
        (wh, wm) if wh is not None and wm is not None else None, opt, source, _since(b),
        f"{b.get('curr_items', '?')} items, {size(stat_int(b, 'bytes'))} of {size(stat_int(b, 'limit_maxbytes'))}",
    )
    if cold:
        out.append(cold)

    ev = stat_delta(a, b, "evictions")
    if ev is not None:
        unfetched = stat_delta(a, b, "evicted_unfetched")
        out.append(eviction_verdict(
            "evictions", ev, seconds, opt, source,
            (f"{unfetched} never read; " if unfetched else "")
            + f"{size(stat_int(b, 'bytes'))} of {size(stat_int(b, 'limit_maxbytes'))} in use, "
            f"{b.get('evictions', '?')} evictions since start",
        ))

    since = _since(b)
    rej, lis = stat_delta(a, b, "rejected_connections"), stat_delta(a, b, "listen_disabled_num")
    rej_all, lis_all = stat_int(b, "rejected_connections") or 0, stat_int(b, "listen_disabled_num") or 0
    if rej or lis:
        parts = []
        if rej:
            parts.append(f"rejected_connections +{rej} (at maxconns: new connections closed at once)")
        if lis:
            parts.append(f"listen_disabled_num +{lis} (stopped accepting: clients wait in the backlog)")
        out.append(("net.connections_refused", True, Evidence(
            source=source,
            summary=f"{'; '.join(parts)} in {seconds:.1f}s; connections {conns}",
            value=(rej or 0) + (lis or 0),
            threshold=0,
            count=(rej or 0) + (lis or 0),
        )))
    elif rej_all or lis_all:  # not in the window, but since the start: when, the counter cannot say
        out.append(("net.connections_refused", True, Evidence(
            source=source,
            summary=f"none in the {seconds:.1f}s window, but since memcached started {_up(b)} ago: "
                    f"rejected_connections {rej_all}, listen_disabled_num {lis_all}; connections {conns}",
            value=rej_all + lis_all,
            threshold=0,
            count=rej_all + lis_all,
            since=since,
        )))

    big = stat_delta(a, b, "store_too_large")
    if big is not None:
        total = stat_int(b, "store_too_large") or 0
        sets = (stat_int(b, "cmd_set") or 0) + total
        share = total / sets if sets else 0.0
        recent = big > 0
        limit = stat_int(b, "settings.item_size_max")
        if recent:
            summary = f"store_too_large +{big} in {seconds:.1f}s: sets refused as larger than the item size limit"
        elif total:
            summary = (f"none in the {seconds:.1f}s window, but {total} set(s) refused as larger than the item "
                       f"size limit since memcached started {_up(b)} ago ({share:.2%} of sets)")
        else:
            summary = f"no set refused as too large since memcached started {_up(b)} ago"
        yields = stat_delta(a, b, "conn_yields")
        extra = [f"item_size_max {size(limit)}" if limit is not None else "item_size_max unknown"]
        if yields:
            extra.append(f"conn_yields +{yields} (multi-gets larger than reqs_per_event)")
        out.append(("http.request_too_large", recent or total > 0, Evidence(
            source=source,
            summary=summary + "; " + ", ".join(extra),
            value=big if recent else total,
            threshold=limit if limit is not None else None,
            unit="bytes (threshold: item_size_max)" if limit is not None else "",
            count=big if recent else total,
            since=None if recent else since,
        )))
    return out


@probe("memcached", findings=FINDINGS, timeout=3.0, options=DEFAULTS)
def memcached(ctx: ProbeContext) -> list[Finding]:
    """memcached ``stats`` deltas over the window: hit-rate drop, evictions,
    refused connections, sets refused as too large (item size limit); a
    configured target refusing connections is down."""
    return probe_caches(ctx, schemes=("memcached",), default_port=11211, program="memcached", read=read_sample,
                        judge=judge)
