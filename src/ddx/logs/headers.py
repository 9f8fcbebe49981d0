"""Header detection: split each log line into time, level and message.

A log file has one header layout, written by one program, so the layout is
detected once per file: every known format is tried on a sample of the first
lines (:data:`SAMPLE_LINES`), and the one that matches the most of them wins
if it matches at least half (the rest are continuation lines such as stack
traces, which keep the time of the line before them). When nothing matches,
the whole line is the message ("plain"). The formats, most specific first:

==================  ==========================================================
``rfc5424``         ``<165>1 2003-10-11T22:14:15.003Z host app 1234 ID47 [sd] msg``
``rfc3164``         ``<34>Oct 11 22:14:15 host su[123]: msg`` (PRI optional;
                    also ``/var/log/syslog`` and ``journalctl`` short output)
``rfc3164-iso``     ``2024-05-01T14:30:00.123+02:00 host sshd[9]: msg``
                    (rsyslog high-precision, ``journalctl -o short-iso``)
``nginx-error``     ``2024/05/01 14:30:00 [error] 123#0: *5 msg``
``apache-error``    ``[Sun Dec 04 04:47:44 2005] [error] msg`` and the 2.4 form
                    ``[...] [core:error] [pid 1:tid 2] msg``
``python``          ``2024-05-01 14:30:00,123 - name - ERROR - msg`` and
                    ``ERROR:name:msg`` (the logging module's defaults)
``redis``           ``1234:M 01 May 2024 14:30:00.123 # msg``
``logcat``          ``03-17 16:13:38.811  1702  2395 D Tag: msg``
``timestamp-pipes`` ``2017-12-23 22:15:29.606|Step_LSC|30002312|msg``, loguru's
                    ``2024-05-01 14:30:00.123 | INFO | mod:fn:1 - msg``
``timestamp-level`` a timestamp (ISO-8601, ``yy/MM/dd``, ``yyyyMMdd-HH:mm:ss``,
                    ``Mon DD HH:MM:SS``, ``DD-Mon-yyyy HH:MM:SS``...), an
                    optional level, an optional ``[thread]``: log4j, logback,
                    Go, PostgreSQL, MySQL, PHP-FPM, supervisor and most others
``journal-export``  ``journalctl -o export``: ``KEY=value`` lines, blank line
                    between entries; one record per entry
``json``            JSON lines with a message field (``message``, ``msg``,
                    ``MESSAGE``, ``log``...), a time and a level field
``plain``           no header
==================  ==========================================================

Levels are normalised to ``error`` (also critical, fatal, alert, emergency,
panic, severe), ``warning``, ``info`` (also notice) and ``debug`` (also trace,
verbose); syslog priorities and numeric levels are mapped the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ddx.logs.times import TimeParser, epoch_number

__all__ = ["FORMATS", "SAMPLE_LINES", "Format", "Record", "detect", "normalise_level", "records"]

SAMPLE_LINES = 200


class Record(NamedTuple):
    """One log record: ``line`` is its 1-based line number in the input."""

    line: int
    time: float | None
    level: str | None
    message: str
    raw: str


@dataclass(frozen=True)
class Format:
    name: str
    regex: re.Pattern[str] | None  # None for the record formats (json, journal-export, plain)


_LEVEL_WORDS = (
    r"(?:(?i:TRACE|DEBUG|DBG|INFO|INF|NOTICE|WARN|WARNING|WRN|ERROR|ERR|CRIT|CRITICAL|FATAL|FTL|SEVERE|"
    r"ALERT|EMERG|EMERGENCY|PANIC|VERBOSE|FINEST|FINER|FINE|CONFIG)|LOG|NOTE|Note)(?![A-Za-z])"  # "log", "note": words
)
_TS = (
    r"(?:\d{4}[-/.]\d\d[-/.]\d\d[T _]\d\d:\d\d(?::\d\d(?:[.,:]\d+)?)?"
    r"(?:\s?(?:Z|[+-]\d\d:?\d\d)(?![\d:])|\ (?:UTC|GMT|[A-Z]{3,4}T))?"
    r"|\d{8}[-T_]?(?:\d{6}|\d{1,2}:\d{1,2}:\d{1,2})(?:[.,:]\d+)?"
    r"|\d{6} \d{6}"
    r"|\d\d/\d\d/\d\d \d\d:\d\d:\d\d(?:[.,]\d+)?"
    r"|(?:[A-Z][a-z]{2},? )?[A-Z][a-z]{2} [ \d]?\d(?:,? \d{4})? \d\d:\d\d:\d\d(?:[.,]\d+)?(?: \d{4})?"
    r"|\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d(?: [+-]\d{4})?"
    r"|\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d(?:\.\d+)?)"
)
_SYSLOG_TAG = r"(?:(?P<tag>[^\s:\[\]]+)(?:\[(?P<pid>\d+)\])?:\s)?"

FORMATS: tuple[Format, ...] = (
    Format(
        "rfc5424",
        re.compile(
            r"<(?P<pri>\d{1,3})>1 (?P<ts>\S+) \S+ \S+ \S+ \S+ (?:-|(?:\[(?:[^\]\\]|\\.)*\])+) ?(?P<msg>.*)"
        ),
    ),
    Format(
        "rfc3164",
        re.compile(
            r"(?:<(?P<pri>\d{1,3})>)?(?P<ts>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)?) (?P<host>\S+) "
            + _SYSLOG_TAG
            + r"(?P<msg>.*)"
        ),
    ),
    Format(
        "rfc3164-iso",
        re.compile(
            r"(?:<(?P<pri>\d{1,3})>)?(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
            r"(?!" + _LEVEL_WORDS + r")(?P<host>[^\s\[\]]+) "
            r"(?P<tag>[^\s:\[\]]+)(?:\[(?P<pid>\d+)\])?:\s(?P<msg>.*)"
        ),
    ),
    Format(
        "nginx-error",
        re.compile(r"(?P<ts>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(?P<level>\w+)\] \d+#\d+: (?:\*\d+ )?(?P<msg>.*)"),
    ),
    Format(
        "apache-error",
        re.compile(
            r"\[(?P<ts>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)? \d{4})\] "
            r"\[(?:[\w-]+:)?(?P<level>\w+)\](?: \[pid \d+(?::tid \d+)?\])? ?(?P<msg>.*)"
        ),
    ),
    Format(
        "python",
        re.compile(
            r"(?:(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - \S+ - (?P<level>[A-Z]+) - "
            r"|(?P<level2>DEBUG|INFO|WARNING|ERROR|CRITICAL):[^:\s]*:)(?P<msg>.*)"
        ),
    ),
    Format(
        "redis",
        re.compile(
            r"\d+:[XCSM] (?P<ts>\d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d(?:\.\d+)?) (?P<level>[.\-*#]) (?P<msg>.*)"
        ),
    ),
    Format(
        "logcat",
        re.compile(r"(?P<ts>\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\s+\d+\s+\d+ (?P<level>[VDIWEFA]) (?:[^:]*?\s*: )?(?P<msg>.*)"),
    ),
    Format(
        "timestamp-pipes",
        re.compile(
            r"(?P<ts>" + _TS + r")\s*\|(?P<fields>(?:[^|]{0,80}\|){1,4})\s*(?:-\s+|[^\s|]+:\d+\s+-\s+)?(?P<msg>.*)"
        ),
    ),
    Format(
        "timestamp-level",
        re.compile(
            r"[\[(]?(?P<ts>" + _TS + r")[\])]?(?:[,:|]\s*|\s+)(?:[-|]\s*)?"
            r"(?:(?:\d+\s+|\[\d+\]\s+)?[\[<]?(?P<level>" + _LEVEL_WORDS + r")[\]>]?[,:]?\s+)?"
            r"(?:\[(?:[^\[\]]|\[[^\[\]]*\])*\]\s+(?:-\s+)?)?(?:-\s+)?(?P<msg>.*)"
        ),
    ),
    Format("journal-export", None),
    Format("json", None),
    Format("plain", None),
)
_LEVEL_IN = re.compile(r"(?<![A-Za-z])" + _LEVEL_WORDS)
_BY_NAME = {f.name: f for f in FORMATS}
PLAIN = _BY_NAME["plain"]

_LEVEL_MAP = {
    "emerg": "error", "emergency": "error", "alert": "error", "crit": "error", "critical": "error",
    "fatal": "error", "ftl": "error", "panic": "error", "severe": "error", "err": "error", "error": "error",
    "e": "error", "f": "error", "a": "error", "c": "error",
    "warn": "warning", "warning": "warning", "wrn": "warning", "w": "warning",
    "notice": "info", "info": "info", "inf": "info", "informational": "info", "i": "info", "n": "info",
    "config": "info",
    "debug": "debug", "dbg": "debug", "trace": "debug", "verbose": "debug", "fine": "debug",
    "finer": "debug", "finest": "debug", "d": "debug", "v": "debug", "t": "debug",
    "log": "info", "note": "info",
    "#": "warning", "*": "info", "-": "debug", ".": "debug",  # redis
}  # fmt: skip
_SYSLOG_SEVERITY = ("error", "error", "error", "error", "warning", "info", "info", "debug")


_LEVEL_CACHE: dict[str, str | None] = {}


def normalise_level(value: object) -> str | None:
    """``error``, ``warning``, ``info``, ``debug`` or ``None`` from a level word or number."""
    if isinstance(value, str):
        hit = _LEVEL_CACHE.get(value, "?")
        if hit != "?":
            return hit
        if len(_LEVEL_CACHE) > 1024:
            _LEVEL_CACHE.clear()
        lv = _LEVEL_CACHE[value] = _normalise_level(value)
        return lv
    return _normalise_level(value)


def _normalise_level(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        n = int(value)
        if 0 <= n <= 7:
            return _SYSLOG_SEVERITY[n]
        if n >= 50:
            return "error"
        if n >= 40:
            return "warning"
        if n >= 30:
            return "info"
        return "debug" if n >= 0 else None
    text = str(value).strip().lower()
    if text.isdigit():
        return _normalise_level(int(text))
    return _LEVEL_MAP.get(text)


_JSON_MESSAGE = ("message", "msg", "MESSAGE", "log", "text", "@message", "short_message", "event", "Message")
_JSON_TIME = ("time", "timestamp", "ts", "@timestamp", "__REALTIME_TIMESTAMP", "date", "datetime", "t", "Timestamp")
_JSON_LEVEL = ("level", "severity", "lvl", "log.level", "PRIORITY", "levelname", "loglevel", "@level", "Level")
_EXPORT_LINE = re.compile(r"[A-Z_][A-Z0-9_]*=")


def _json_object(line: str) -> dict[str, object] | None:
    s = line.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None
    try:
        obj = json.loads(s)
    except (ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


def detect(sample: Iterable[str]) -> Format:
    """The header format of a file, from a sample of its first lines."""
    lines = [s for s in sample if s.strip()]
    if not lines:
        return PLAIN
    export = sum(1 for s in lines if _EXPORT_LINE.match(s))
    if export >= 0.8 * len(lines) and any(s.startswith(("__CURSOR=", "__REALTIME_TIMESTAMP=", "MESSAGE=")) for s in lines):
        return _BY_NAME["journal-export"]
    objs = [o for o in map(_json_object, lines) if o is not None]
    if len(objs) >= 0.5 * len(lines) and any(any(k in o for k in _JSON_MESSAGE) for o in objs):
        return _BY_NAME["json"]
    best, best_n = PLAIN, 0
    for fmt in FORMATS:
        if fmt.regex is None:
            continue
        rx = fmt.regex
        n = sum(1 for s in lines if rx.match(s))
        if n > best_n:
            best, best_n = fmt, n
    return best if best_n >= 0.5 * len(lines) else PLAIN


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) for b in value):  # journald bytes
        return bytes(b & 0xFF for b in value).decode("utf-8", "replace")
    return json.dumps(value, ensure_ascii=False)


def _json_time(value: object, tp: TimeParser) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return epoch_number(str(value))
    if isinstance(value, str):
        return tp.parse(value)
    return None


def _split_json(n: int, raw: str, tp: TimeParser) -> Record:
    obj = _json_object(raw)
    if obj is None:
        return Record(n, None, None, raw.strip(), raw)
    msg = next((obj[k] for k in _JSON_MESSAGE if k in obj), None)
    ts = next((obj[k] for k in _JSON_TIME if k in obj), None)
    lv = next((obj[k] for k in _JSON_LEVEL if k in obj), None)
    message = raw.strip() if msg is None else _as_text(msg).rstrip("\n")
    return Record(n, _json_time(ts, tp), normalise_level(lv), message, raw)


def _journal_export(numbered: Iterable[tuple[int, str]], tp: TimeParser, notes: list[str] | None) -> Iterator[Record]:
    fields: dict[str, str] = {}
    first = msg_line = 0
    odd = 0

    def flush() -> Record | None:
        if "MESSAGE" not in fields:
            return None
        ts = epoch_number(fields.get("__REALTIME_TIMESTAMP", "")) if "__REALTIME_TIMESTAMP" in fields else None
        msg = fields["MESSAGE"]
        return Record(msg_line or first, ts, normalise_level(fields.get("PRIORITY")), msg, msg)

    for n, raw in numbered:
        if not raw.strip():
            rec = flush()
            if rec is not None:
                yield rec
            fields, first, msg_line = {}, 0, 0
            continue
        key, sep, value = raw.partition("=")
        if not sep or not _EXPORT_LINE.match(raw):
            odd += 1  # a binary field's name or data: skipped
            continue
        if not first:
            first = n
        if key == "MESSAGE":
            msg_line = n
        fields[key] = value
    rec = flush()
    if rec is not None:
        yield rec
    if odd and notes is not None:
        notes.append(f"{odd} journal export line(s) without KEY=value (binary fields) skipped")


def records(
    lines: Iterable[tuple[int, str]] | Iterable[str],
    *,
    fmt: Format | None = None,
    time_parser: TimeParser | None = None,
    notes: list[str] | None = None,
    detected: list[Format] | None = None,
) -> Iterator[Record]:
    """Split lines (plain strings, or ``(line_number, text)`` pairs) into records.

    The format is detected from the first :data:`SAMPLE_LINES` lines unless
    ``fmt`` is given; the chosen format is appended to ``detected``. Lines the
    format does not match (continuations) keep the time of the line before.
    """
    tp = time_parser if time_parser is not None else TimeParser()
    it = iter(lines)
    head: list[tuple[int, str]] = []
    for i, item in enumerate(it, 1):
        head.append(item if isinstance(item, tuple) else (i, item))
        if len(head) >= SAMPLE_LINES:
            break
    offset = len(head)

    def numbered() -> Iterator[tuple[int, str]]:
        yield from head
        for j, item in enumerate(it, offset + 1):
            yield item if isinstance(item, tuple) else (j, item)

    if fmt is None:
        fmt = detect(s for _, s in head)
    if detected is not None:
        detected.append(fmt)
    if fmt.name == "journal-export":
        yield from _journal_export(numbered(), tp, notes)
        return
    if fmt.name == "json":
        for n, raw in numbered():
            yield _split_json(n, raw, tp)
        return
    if fmt.regex is None:
        for n, raw in numbered():
            yield Record(n, None, None, raw, raw)
        return
    yield from _split_regex(numbered(), fmt.regex, tp)


def _split_regex(numbered: Iterable[tuple[int, str]], rx: re.Pattern[str], tp: TimeParser) -> Iterator[Record]:
    match = rx.match
    parse = tp.parse
    groups = rx.groupindex
    has_pri = "pri" in groups
    has_level = "level" in groups
    has_level2 = "level2" in groups
    has_fields = "fields" in groups
    last_ts: float | None = None
    pending: list[Record] | None = []  # records before the first timestamp
    for n, raw in numbered:
        m = match(raw)
        if m is None:
            rec = Record(n, last_ts, None, raw, raw)
        else:
            ts_text, msg = m.group("ts", "msg")
            ts = parse(ts_text) if ts_text else None
            level = None
            if has_level:
                lv = m.group("level")
                if lv is not None:
                    level = normalise_level(lv)
            if level is None and has_level2:
                level = normalise_level(m.group("level2"))
            if has_fields:
                lm = _LEVEL_IN.search(m.group("fields"))
                level = normalise_level(lm.group(0)) if lm else None
            if level is None and has_pri and m.group("pri"):
                level = _SYSLOG_SEVERITY[int(m.group("pri")) % 8]
            if ts is None:
                ts = last_ts
            else:
                last_ts = ts
            rec = Record(n, ts, level, msg, raw)
        if pending is None:
            yield rec
            continue
        pending.append(rec)
        if last_ts is None and len(pending) < SAMPLE_LINES:
            continue
        for p in pending:
            yield p if p.time is not None else p._replace(time=last_ts)
        pending = None
    if pending:
        yield from pending
