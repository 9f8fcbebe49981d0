"""The ``[watch]`` table of ddx.toml, validated.

Every key has a default that makes sense on an ordinary host, so ``ddx watch``
needs no configuration; a wrong key or value stops it with one line naming the
file, the table and the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from ddx.errors import ConfigError

__all__ = ["WatchSettings", "watch_settings"]


@dataclass(frozen=True)
class WatchSettings:
    interval: float = 10.0  # seconds between two samples
    store: str = "/var/lib/ddx/ddx.db"  # the incident store (SQLite)
    bundles: str = "/var/lib/ddx/bundles"  # evidence bundles saved at each incident's first diagnosis
    down: float = 300.0  # seconds a symptom must stay quiet before it clears...
    down_multiplier: float = 1.5  # ...multiplied by this each time it comes back soon after clearing...
    down_max: float = 3600.0  # ...up to this
    rediagnose_s: float = 60.0  # at most one new diagnosis of an open incident per this many seconds
    diagnose_budget: float = 10.0  # seconds a diagnosis may take
    retention_days: float = 90.0  # resolved incidents older than this are deleted
    max_incidents: int = 100_000  # past this many, the oldest resolved incidents are deleted
    max_bundles: int = 200  # past this many bundles, the oldest are deleted
    baseline_samples: int = 360  # samples in a signal's rolling baseline (an hour at 10 s)


_LIMITS = {"interval": (0.1, 3600.0), "down": (0.0, 86400.0), "down_multiplier": (1.0, 10.0),
           "down_max": (0.0, 7 * 86400.0), "rediagnose_s": (0.0, 86400.0), "diagnose_budget": (1.0, 600.0),
           "retention_days": (0.0, 36500.0), "max_incidents": (1, 10**9), "max_bundles": (0, 10**6),
           "baseline_samples": (12, 10**6)}


def watch_settings(table: Mapping[str, Any] | None, where: str = "ddx.toml") -> WatchSettings:
    """``[watch]`` as written (or None) -> settings; ConfigError naming the key otherwise."""
    table = table or {}
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: 'watch' must be a table [watch]")
    known = {f.name: f for f in fields(WatchSettings)}
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: [watch] unknown key {key!r} (known: {', '.join(known)})")
        default = getattr(WatchSettings, key)
        if isinstance(default, str):
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{where}: [watch] key {key!r}: expected a path, got {value!r}")
            out[key] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: [watch] key {key!r}: expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"{where}: [watch] key {key!r}: expected a whole number, got {value!r}")
        lo, hi = _LIMITS[key]
        if not lo <= value <= hi:
            raise ConfigError(f"{where}: [watch] key {key!r}: {value!r} is outside {lo:g}..{hi:g}")
        out[key] = value
    s = WatchSettings(**out)
    if s.down_max < s.down:
        raise ConfigError(f"{where}: [watch] key 'down_max': {s.down_max:g} is below 'down' ({s.down:g})")
    return s
