"""Timestamps at the start of log lines, as seconds since the epoch.

Pure functions on text: the log and change probes use them to keep only the
lines of a recent window and to say when an error first and last appeared.

Formats understood (the usual ones on a Linux server)::

    Nov 22 05:32:09                      syslog (RFC 3164, no year: inferred)
    2026-11-22T05:32:09.123+00:00        ISO-8601 / RFC 3339 / journalctl -o short-iso
    2026-11-22 05:32:09,123              Python logging, log4j, dpkg.log
    2026-11-22 05:32:09.123 UTC          PostgreSQL
    2026/11/22 05:32:09                  nginx error log
    [Sun Nov 22 05:32:09.123456 2026]    Apache error log
    [22/Nov/2026:05:32:09 +0000]         common/combined access log
    [22-Nov-2026 05:32:09]               PHP-FPM, Tomcat
    22 Nov 2026 05:32:09.123             Redis, log4j DATE
    Nov 22, 2026 5:32:09 AM              java.util.logging (catalina.out)
    161122  5:32:09                      MySQL 5.5 error log
    {"ts": 1795325529.1, ...}            JSON records with an epoch field

A timestamp is looked for only near the start of a line (where loggers put it)
so that a date quoted inside a message is not taken for the line's time; JSON
records are searched whole because their time field may come anywhere.
Times without a zone are in the host's local zone (``tz``).
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable

__all__ = ["TimeParser", "local_zone", "parse_time", "zone_named"]

_MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)}
_HEAD = 100  # how far into a line a leading timestamp may start (after pid/host prefixes)
_UTC = _dt.timezone.utc

_Builder = Callable[["re.Match[str]", _dt.tzinfo, float], "float | None"]


def _frac(text: str | None) -> float:
    return float("0." + text) if text else 0.0


def _zone(text: str | None, tz: _dt.tzinfo) -> _dt.tzinfo:
    if not text:
        return tz
    t = text.upper()
    if t in ("Z", "UTC", "GMT"):
        return _UTC
    if t[0] in "+-":
        digits = t[1:].replace(":", "")
        if len(digits) == 4 and digits.isdigit():
            delta = _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            return _dt.timezone(-delta if t[0] == "-" else delta)
    return tz  # an abbreviation such as CET: the host's own zone printed by name


def _epoch(y: int, mo: int, d: int, h: int, mi: int, s: int, frac: float, zone: _dt.tzinfo) -> float | None:
    try:
        return _dt.datetime(y, mo, d, h, mi, s, tzinfo=zone).timestamp() + frac
    except (ValueError, OverflowError):
        return None


def _month(name: str) -> int:
    return _MONTHS.get(name[:3].lower(), 0)


def _iso(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    g = m.groups()
    return _epoch(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), _frac(g[6]), _zone(g[7], tz))


def _slashed(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    g = m.groups()
    return _epoch(int(g[0]), int(g[1]), int(g[2]), int(g[3]), int(g[4]), int(g[5]), _frac(g[6]), tz)


def _apache(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    mon, day, h, mi, s, frac, year = m.groups()
    mo = _month(mon)
    return _epoch(int(year), mo, int(day), int(h), int(mi), int(s), _frac(frac), tz) if mo else None


def _clf(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    day, mon, year, h, mi, s, frac, zone = m.groups()
    mo = _month(mon)
    return _epoch(int(year), mo, int(day), int(h), int(mi), int(s), _frac(frac), _zone(zone, tz)) if mo else None


def _dmy(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    day, mon, year, h, mi, s, frac = m.groups()
    mo = _month(mon)
    return _epoch(int(year), mo, int(day), int(h), int(mi), int(s), _frac(frac), tz) if mo else None


def _jul(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    mon, day, year, h, mi, s, ampm = m.groups()
    mo, hour = _month(mon), int(h) % 12
    if ampm.upper() == "PM":
        hour += 12
    return _epoch(int(year), mo, int(day), hour, int(mi), int(s), 0.0, tz) if mo else None


def _mysql_old(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    yy, mo, d, h, mi, s = (int(x) for x in m.groups())
    return _epoch(2000 + yy, mo, d, h, mi, s, 0.0, tz)


def _syslog(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    """RFC 3164 has no year: take the latest year that does not put the line
    more than two days in the future (a log read on 2 January still holds
    31 December lines)."""
    mon, day, h, mi, s, frac = m.groups()
    mo = _month(mon)
    if not mo:
        return None
    year = _dt.datetime.fromtimestamp(now, tz).year
    for y in (year, year - 1):
        t = _epoch(y, mo, int(day), int(h), int(mi), int(s), _frac(frac), tz)
        if t is not None and t <= now + 2 * 86400:
            return t
    return None


def _epoch_field(m: re.Match[str], tz: _dt.tzinfo, now: float) -> float | None:
    value = float(m.group(1))
    if value > 1e14:  # milliseconds or microseconds since the epoch
        value /= 1e6 if value > 1e17 else 1e3
    return value if 1e9 < value < 1e10 else None


_MON = r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"

# (name, pattern, builder); searched in the first _HEAD characters of a line.
_FORMATS: tuple[tuple[str, re.Pattern[str], _Builder], ...] = (
    ("iso", re.compile(
        r"(?<!\d)(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"
        r"(?:\s?(Z|[+-]\d{2}:?\d{2}|UTC|GMT|[A-Z]{3,4}(?=[\s\]]))(?![\w:]))?"), _iso),
    ("slashed", re.compile(r"(?<!\d)(\d{4})/(\d{2})/(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?"), _slashed),
    ("apache", re.compile(
        r"\[(?:" + _DAY + r" )?" + _MON + r" {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))? (\d{4})\]", re.I),
     _apache),
    ("clf", re.compile(
        r"\[(\d{1,2})/" + _MON + r"/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))? ?([+-]\d{4})?\]", re.I), _clf),
    ("dmy", re.compile(
        r"(?<![\w])(\d{1,2})[ -]" + _MON + r"[ -](\d{4})[ :](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?", re.I), _dmy),
    ("jul", re.compile(
        r"(?<![\w])" + _MON + r" (\d{1,2}), (\d{4}),? (\d{1,2}):(\d{2}):(\d{2}) ?([AP]M)", re.I), _jul),
    ("syslog", re.compile(
        r"^(?:<\d{1,3}>)?(?:" + _DAY + r",? )?" + _MON
        + r" {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?![\d:])", re.I), _syslog),
    ("mysql_old", re.compile(r"^(\d{2})(\d{2})(\d{2}) {1,2}(\d{1,2}):(\d{2}):(\d{2})\b"), _mysql_old),
)
_JSON_ISO = _FORMATS[0][1]
_JSON_EPOCH = re.compile(r'"(?:ts|time|timestamp|@timestamp|t|date)"\s*:\s*(\d{9,19}(?:\.\d+)?)')


class TimeParser:
    """Parses the leading timestamp of log lines; remembers which format the
    last line used and tries it first, since a file keeps to one format."""

    def __init__(self, tz: _dt.tzinfo, now: float) -> None:
        self.tz = tz
        self.now = now
        self._last: int | None = None

    def parse(self, line: str) -> float | None:
        """Seconds since the epoch of the line's timestamp, or None."""
        head = line[:_HEAD]
        if self._last is not None:
            name, pattern, build = _FORMATS[self._last]
            m = pattern.search(head)
            if m is not None and m.start() <= 24:
                t = build(m, self.tz, self.now)
                if t is not None:
                    return t
        best: tuple[int, int, re.Match[str]] | None = None
        for i, (_name, pattern, _build) in enumerate(_FORMATS):
            m = pattern.search(head)
            if m is not None and (best is None or m.start() < best[0]):
                best = (m.start(), i, m)
        if best is not None:
            t = _FORMATS[best[1]][2](best[2], self.tz, self.now)
            if t is not None:
                self._last = best[1]
                return t
        if line.startswith("{"):
            m = _JSON_EPOCH.search(line)
            if m is not None:
                return _epoch_field(m, self.tz, self.now)
            m = _JSON_ISO.search(line)
            if m is not None:
                return _iso(m, self.tz, self.now)
        return None


def parse_time(line: str, *, tz: _dt.tzinfo | None = None, now: float | None = None) -> float | None:
    """The timestamp at the start of one log line (epoch seconds), or None.

    ``tz`` is the zone of times written without one (default: this process's
    local zone); ``now`` anchors the year of syslog lines (default: now)."""
    import time as _time

    return TimeParser(tz or local_zone(), _time.time() if now is None else now).parse(line)


def local_zone() -> _dt.tzinfo:
    """This process's local time zone."""
    zone = _dt.datetime.now().astimezone().tzinfo
    return zone if zone is not None else _UTC


def zone_named(name: str) -> _dt.tzinfo | None:
    """A zone by its IANA name (``Europe/Berlin``), or None when unknown."""
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name.strip())
    except Exception:  # noqa: BLE001 - unknown name, missing tzdata: caller falls back
        return None


