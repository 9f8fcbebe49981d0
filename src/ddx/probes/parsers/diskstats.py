"""/proc/diskstats: per-device request counters, latency over a window, and the
members of multi-disk devices (md RAID, LVM volumes over several disks) whose
latency can be compared with each other's (pure functions, plus one host read)."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DiskStat",
    "Requests",
    "SlowMember",
    "array_members",
    "io_latency",
    "is_partition",
    "parse_diskstats",
    "requests",
    "slow_members",
]


@dataclass(frozen=True)
class DiskStat:
    """One line of /proc/diskstats (the fields ddx uses; times in ms)."""

    name: str
    reads: int
    read_ms: int
    writes: int
    write_ms: int
    in_flight: int
    io_ms: int  # time the device had I/O in flight


def parse_diskstats(text: str) -> dict[str, DiskStat]:
    """Parse /proc/diskstats (fields: major minor name reads merged sectors
    read_ms writes merged sectors write_ms in_flight io_ms weighted_ms ...)."""
    out: dict[str, DiskStat] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 14:
            continue
        try:
            n = [int(x) for x in f[3:14]]
        except ValueError:
            continue
        out[f[2]] = DiskStat(f[2], n[0], n[3], n[4], n[7], n[8], n[9])
    return out


_PARTITION = re.compile(r"^(?:(?:[shv]d|xvd)[a-z]+\d+|nvme\d+n\d+p\d+|mmcblk\d+p\d+|md\d+p\d+)$")
_VIRTUAL_DISK = re.compile(r"^(?:loop|ram|zram|sr|fd)\d*$")


def is_partition(name: str) -> bool:
    return bool(_PARTITION.match(name))


@dataclass(frozen=True)
class Requests:
    """One device's requests over a window."""

    ops: int  # requests completed
    ms: float  # milliseconds per completed request (0 when none completed)
    stuck: bool  # requests in flight at both reads, none completed, the device busy all along


def requests(before: dict[str, DiskStat], after: dict[str, DiskStat], name: str, seconds: float) -> Requests | None:
    """``name``'s requests between two reads ``seconds`` apart; None when a read lacks the
    device or its counters went backwards (wrapped, or the device was replaced). *Stuck*: a
    request that never returns has unbounded latency."""
    if name not in before or name not in after:
        return None
    a, b = before[name], after[name]
    ops = (b.reads - a.reads) + (b.writes - a.writes)
    ms = (b.read_ms - a.read_ms) + (b.write_ms - a.write_ms)
    if ops < 0 or ms < 0:
        return None
    busy = b.io_ms - a.io_ms
    stuck = ops == 0 and a.in_flight > 0 and b.in_flight > 0 and busy >= 0.9 * seconds * 1000
    return Requests(ops, ms / ops if ops else 0.0, stuck)


def io_latency(before: dict[str, DiskStat], after: dict[str, DiskStat], seconds: float) -> list[tuple[str, float, int, bool]]:
    """Per whole disk: (name, ms per completed request over the window,
    requests completed, stuck)."""
    out = []
    for name in sorted(after):
        if is_partition(name) or _VIRTUAL_DISK.match(name):
            continue
        r = requests(before, after, name, seconds)
        if r is not None:
            out.append((name, r.ms, r.ops, r.stuck))
    return out


def array_members(host: Any) -> dict[str, list[str]]:
    """Devices built on two or more others, as ``/sys/block/HOLDER/slaves`` lists them: md
    RAID arrays, LVM or device-mapper volumes striped or mirrored over several disks. The
    members of one share its load, so one that answers far slower than the rest is failing,
    not busy. Unreadable sysfs: none."""
    try:
        names = host.listdir("/sys/block")
    except (OSError, LookupError):
        return {}
    out: dict[str, list[str]] = {}
    for name in sorted(names):
        if not (name.startswith("md") or name.startswith("dm-")):
            continue
        try:
            slaves = sorted(host.listdir(f"/sys/block/{name}/slaves"))
        except (OSError, LookupError):
            continue
        if len(slaves) >= 2:
            out[name] = slaves
    return out


@dataclass(frozen=True)
class SlowMember:
    holder: str
    member: str
    requests: Requests
    peers: dict[str, Requests]  # the members it is compared with
    peers_ms: float  # their median milliseconds per request


def slow_members(
    members: dict[str, list[str]],
    before: dict[str, DiskStat],
    after: dict[str, DiskStat],
    seconds: float,
    *,
    await_ms: float,
    factor: float,
    min_requests: int,
) -> tuple[list[SlowMember], int]:
    """The members that answer far slower than their peers of the same device: stuck, or at
    least ``await_ms`` and ``factor`` times the peers' median per request over at least two
    requests, while the peers completed ``min_requests`` or more each. Also: how many
    devices had members to compare."""
    slow: list[SlowMember] = []
    compared: set[str] = set()
    for holder, names in members.items():
        got = {n: r for n in names if (r := requests(before, after, n, seconds)) is not None}
        for name, r in got.items():
            peers = {n: p for n, p in got.items() if n != name and p.ops >= min_requests}
            if not peers:
                continue
            compared.add(holder)
            med = statistics.median(p.ms for p in peers.values())
            if r.stuck or (r.ops >= 2 and r.ms >= await_ms and r.ms >= factor * max(med, 1.0)):
                slow.append(SlowMember(holder, name, r, peers, med))
    return slow, len(compared)
