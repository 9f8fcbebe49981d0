"""Small parsers shared by the resource probes (pure functions on text)."""

from __future__ import annotations

from typing import Any

__all__ = ["held_pressure", "parse_psi", "read_psi", "window_pressure"]


def parse_psi(text: str) -> dict[str, dict[str, float]]:
    """Parse a /proc/pressure/{cpu,io,memory} file::

        some avg10=1.53 avg60=0.87 avg300=0.40 total=37394320
        full avg10=0.00 avg60=0.00 avg300=0.00 total=0

    into ``{"some": {"avg10": 1.53, ...}, "full": {...}}``. The averages are
    percentages of wall time in which some (or all non-idle) tasks were stalled
    on that resource. Unknown or malformed fields are skipped."""
    out: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or parts[0] not in ("some", "full"):
            continue
        vals: dict[str, float] = {}
        for item in parts[1:]:
            key, _, val = item.partition("=")
            try:
                vals[key] = float(val)
            except ValueError:
                continue
        out[parts[0]] = vals
    return out


def read_psi(host: Any, resource: str) -> dict[str, dict[str, float]] | None:
    """PSI of one resource, or None when the kernel has no PSI (not built in,
    ``psi=0``) or it cannot be read: PSI is supporting evidence, never required."""
    try:
        return parse_psi(host.read_text(f"/proc/pressure/{resource}", max_bytes=4096))
    except (OSError, LookupError):
        return None


def window_pressure(before: dict[str, dict[str, float]] | None, after: dict[str, dict[str, float]] | None,
                    seconds: float, line: str = "some") -> float | None:
    """PSI over an interval: the growth of the ``line`` ("some" or "full") stall
    total (microseconds) as a percentage of the interval. None when a read lacks
    the total."""
    try:
        a, b = before[line]["total"], after[line]["total"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    if seconds <= 0 or b < a:
        return None
    return min(100.0, 100.0 * (b - a) / (seconds * 1e6))


def held_pressure(psi: dict[str, dict[str, float]] | None, window: float | None, line: str = "some") -> float | None:
    """PSI ``line`` that holds: the lower of its avg10 and the window's own (``window_pressure``),
    or avg10 alone when the window's is unknown; None without PSI. Each errs one way: the
    window counts the waits of ddx's own concurrent probes (15-25% CPU "some" on an idle
    2-core host) and sees a blip at full size, avg10 still holds a stall that ended seconds ago."""
    if psi is None:
        return None
    avg10 = psi.get(line, {}).get("avg10", 0.0)
    return avg10 if window is None else min(avg10, window)
