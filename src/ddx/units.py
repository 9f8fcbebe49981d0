"""Times, durations and sizes as people read them: one helper each, used everywhere."""

from __future__ import annotations

import datetime as _dt
import time as _time

__all__ = ["duration", "iso", "iso_local", "iso_or_none", "size"]

_UTC = _dt.timezone.utc


def iso(ts: float | None) -> str:
    """Epoch seconds as an ISO-8601 UTC time, to the second (``2026-11-22T05:32:09Z``); "?" for None."""
    if ts is None:
        return "?"
    return _dt.datetime.fromtimestamp(ts, _UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_or_none(ts: float | None) -> str | None:
    """``iso(ts)``, or None for None (an evidence field left out)."""
    return None if ts is None else iso(ts)


def iso_local(ts: float) -> str:
    """Epoch seconds as an ISO-8601 local time with its offset (``2026-11-22T06:32:09+0100``)."""
    return _time.strftime("%Y-%m-%dT%H:%M:%S%z", _time.localtime(ts))


def duration(seconds: float | None) -> str:
    """A duration: ``42 s``, ``17 min``, ``5.2 h``, ``3.0 days``; "?" for None."""
    if seconds is None:
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def size(n: float | None) -> str:
    """A size in bytes, binary units: ``812 B``, ``64 KB``, ``1.5 MB``, ``2 GB``; "?" for None."""
    if n is None:
        return "?"
    for unit, k in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if abs(n) >= k:
            return f"{n / k:.1f} {unit}".replace(".0 ", " ")
    return f"{n:.0f} B"
