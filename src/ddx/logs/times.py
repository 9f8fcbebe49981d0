"""Timestamps in log headers, and the TIME arguments of ``ddx logs``, to epoch seconds.

Times without a zone are local time, as most log files write them; times
without a year (syslog ``Jul  4 12:52:44``, logcat ``03-17 16:13:38.811``)
take the year of the reference time (now, or a file's modification time) and
the year before when that would put them more than a day in the future.
Parsing is cached per minute, so a file costs one ``mktime`` per minute of log.
"""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime

from ddx.errors import UsageError

__all__ = ["TimeParser", "parse_time_arg"]

MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}

_ISO = re.compile(
    r"(\d{4})[-/.](\d\d)[-/.](\d\d)[T _-](\d\d)[:.](\d\d)(?:[:.](\d\d)(?:[.,:](\d+))?)?\s*(Z|[+-]\d\d:?\d\d|UTC|GMT)?"
)
_COMPACT = re.compile(r"(\d{4})(\d\d)(\d\d)[T_-]?(?:(\d\d)(\d\d)(\d\d)|(\d{1,2}):(\d{1,2}):(\d{1,2}))(?:[.,:](\d+))?")
_SHORTYEAR = re.compile(r"(\d\d)[/-]?(\d\d)[/-]?(\d\d)[ T](\d\d):?(\d\d):?(\d\d)(?:[.,](\d+))?")
_MONTHNAME = re.compile(
    r"(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})[a-z]*\.?\s+(\d{1,2}),?\s+(?:(\d{4})\s+)?(\d\d):(\d\d):(\d\d)(?:[.,](\d+))?(?:\s+(\d{4}))?"
)
_DAYFIRST = re.compile(r"(\d{1,2})[/ -]([A-Za-z]{3})[/ -](\d{4})[: ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*([+-]\d\d:?\d\d)?")
_MONTHDAY = re.compile(r"(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:[.,](\d+))?")


_MISS = object()
_EARLIEST = 788918400.0  # 1995-01-01


def _frac(s: str | None) -> float:
    return float("0." + s) if s else 0.0


def _offset(tz: str | None) -> int | None:
    if not tz:
        return None
    if tz in ("Z", "UTC", "GMT"):
        return 0
    sign = -1 if tz[0] == "-" else 1
    tz = tz[1:].replace(":", "")
    return sign * (int(tz[:2]) * 3600 + int(tz[2:4]) * 60)


class TimeParser:
    """Turns header timestamp strings into epoch seconds (``None`` when unknown)."""

    def __init__(self, reference: float | None = None) -> None:
        self._cache: dict[tuple[object, ...], float | None] = {}
        self._seen: dict[str, float | None] = {}
        self.set_reference(reference)

    def set_reference(self, reference: float | None) -> None:
        """The time yearless timestamps are placed before (default: now)."""
        self.reference = time.time() if reference is None else reference
        self._ref_year = time.localtime(self.reference).tm_year
        self._seen = {}

    def _minute(self, y: int, mo: int, d: int, h: int, mi: int, off: int | None) -> float | None:
        key = (y, mo, d, h, mi, off)
        base = self._cache.get(key)
        if base is None and key not in self._cache:
            if len(self._cache) > 8192:
                self._cache.clear()
            try:
                if off is None:
                    base = time.mktime((y, mo, d, h, mi, 0, 0, 0, -1))
                else:
                    base = calendar.timegm((y, mo, d, h, mi, 0, 0, 0, 0)) - off
                if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60):
                    base = None
            except (OverflowError, ValueError):
                base = None
            self._cache[key] = base
        return base

    def _yearless(self, mo: int, d: int, h: int, mi: int, s: int, frac: float) -> float | None:
        base = self._minute(self._ref_year, mo, d, h, mi, None)
        if base is not None and base + s > self.reference + 86400:
            base = self._minute(self._ref_year - 1, mo, d, h, mi, None)
        return None if base is None else base + s + frac

    def parse(self, text: str) -> float | None:
        """Epoch seconds of a timestamp string in any supported form.

        Times before 1995 or more than two days after the reference time are
        taken for misreadings (a number that looked like a date) and give None.
        """
        hit = self._seen.get(text, _MISS)
        if hit is not _MISS:
            return hit  # type: ignore[return-value]
        if len(self._seen) > 4096:
            self._seen.clear()
        v = self._parse(text)
        if v is not None and not (_EARLIEST <= v <= self.reference + 2 * 86400):
            v = None
        self._seen[text] = v
        return v

    def _parse(self, text: str) -> float | None:
        text = text.strip().strip("[]")
        if not text:
            return None
        c = text[0]
        if c.isdigit():
            if text.isdigit() and len(text) in (10, 13, 16, 19):  # epoch s, ms, µs, ns
                return epoch_number(text)
            m = _ISO.match(text)
            if m:
                y, mo, d, h, mi, s, f, tz = m.groups()
                base = self._minute(int(y), int(mo), int(d), int(h), int(mi), _offset(tz))
                return None if base is None else base + int(s or 0) + _frac(f)
            m = _COMPACT.match(text)
            if m:
                y, mo, d, h, mi, s, h2, mi2, s2, f = m.groups()
                if h is None:
                    h, mi, s = h2, mi2, s2
                base = self._minute(int(y), int(mo), int(d), int(h), int(mi), None)
                return None if base is None else base + int(s) + _frac(f)
            m = _SHORTYEAR.match(text)
            if m:
                y, mo, d, h, mi, s, f = m.groups()
                base = self._minute(2000 + int(y), int(mo), int(d), int(h), int(mi), None)
                return None if base is None else base + int(s) + _frac(f)
            m = _DAYFIRST.match(text)
            if m:
                d, mon, y, h, mi, s, f, tz = m.groups()
                mo = MONTHS.get(mon.lower())
                if mo is None:
                    return None
                base = self._minute(int(y), mo, int(d), int(h), int(mi), _offset(tz))
                return None if base is None else base + int(s) + _frac(f)
            m = _MONTHDAY.match(text)
            if m:
                mo, d, h, mi, s, f = m.groups()
                return self._yearless(int(mo), int(d), int(h), int(mi), int(s), _frac(f))
            if text.isdigit():
                return epoch_number(text)
            return None
        m = _MONTHNAME.match(text)
        if m:
            mon, d, y1, h, mi, s, f, y2 = m.groups()
            mo = MONTHS.get(mon.lower())
            if mo is None:
                return None
            year = y1 or y2
            if year:
                base = self._minute(int(year), mo, int(d), int(h), int(mi), None)
                return None if base is None else base + int(s) + _frac(f)
            return self._yearless(mo, int(d), int(h), int(mi), int(s), _frac(f))
        return None


def epoch_number(text: str) -> float | None:
    """Epoch seconds from a number in seconds, ms, µs or ns (by magnitude)."""
    try:
        v = float(text)
    except ValueError:
        return None
    if v <= 0:
        return None
    while v > 1e11:  # ms, µs, ns since 1970
        v /= 1000.0
    return v if v > 1e8 else None


_REL = re.compile(r"^(?:-|now-)?\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs|hours?|d|days?|w|weeks?)(?:\s+ago)?$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time_arg(text: str, *, option: str = "TIME", now: float | None = None) -> float:
    """Epoch seconds from a command-line TIME: ISO-8601, epoch seconds, or ``30m``/``2h ago``."""
    t = text.strip()
    now = time.time() if now is None else now
    m = _REL.match(t.lower())
    if m:
        unit = m.group(2)[0]
        return now - float(m.group(1)) * _UNITS[unit]
    if re.fullmatch(r"\d+(?:\.\d+)?", t):
        v = epoch_number(t)
        if v is not None:
            return v
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
        return dt.timestamp()
    except ValueError:
        pass
    v2 = TimeParser(now).parse(t)
    if v2 is not None:
        return v2
    raise UsageError(
        f"{option}: cannot read time {text!r}; use ISO-8601 (2024-05-01T14:30), epoch seconds, or a duration ago (30m, 2h, 1d)"
    )
