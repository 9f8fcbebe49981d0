"""MariaDB / MySQL: connections, lock waits, long transactions, auto-increment headroom, replicas, read_only.

Each target is read with the ``mysql`` client (``mariadb`` when ``mysql`` is
missing) through ``ctx.host.run`` (recorded in bundles), in two runs on which
only SHOW and SELECT statements are sent after ``SET SESSION TRANSACTION READ
ONLY`` and time limits (MariaDB ``max_statement_time``; MySQL's
``MAX_EXECUTION_TIME`` hint, a comment to MariaDB): first the variables and
status counters (which tell the server's flavour and version), then the
version-specific part (lock-wait tables, ``SHOW REPLICA STATUS`` or ``SHOW
SLAVE STATUS``). ``mysql -e`` stops at the first failing statement, so every
section starts with a marker row; the section after the last marker printed
is the one that failed. Passwords go to ``MYSQL_PWD`` in the child's
environment, never argv; with a password in the URL the client runs with
``--no-defaults`` so an option file's password cannot override it.

Targets: the ``targets`` option (``mysql://user:pass@host:port/db``, or
``?socket=/path``; ``mariadb://`` too) and, with ``discover``, every
``mariadbd``/``mysqld`` on this host: through its Unix socket (``--socket`` of
its command line, else its listening Unix socket) as the client's default
user, which is root when ddx runs as root (MariaDB's ``unix_socket``
authentication), else its TCP port.

What each finding means here:

- ``svc.db_connections_near_max``: ``Threads_connected`` (less ddx's own) at
  least ``connections_percent`` of ``max_connections``; or the server refused
  ddx with "Too many connections".
- ``svc.db_locks_blocked``: InnoDB transactions in ``LOCK WAIT`` (with their
  blockers from ``INNODB_LOCK_WAITS`` or ``performance_schema.data_lock_waits``)
  and sessions waiting on a metadata or table lock (processlist state
  "Waiting for ... lock"). ``INNODB_TRX`` is a cache InnoDB refreshes only
  after 100 ms without readers, so a monitor polling it faster keeps it stale.
  Transactions open longer than
  ``long_transaction_seconds`` are added as evidence.
- ``svc.db_sequence_near_max``: an ``AUTO_INCREMENT`` column whose next value
  is at least ``sequence_percent`` of its type's maximum (signed or unsigned).
  MySQL 8 caches ``information_schema.TABLES`` statistics (up to a day by
  default), so its AUTO_INCREMENT may be that old.
- ``svc.db_replication_lag_high``: on a replica, the IO or SQL thread not
  running, or ``Seconds_Behind_Master`` above ``replication_lag_seconds`` (NULL
  while a thread is stopped). A server without replica status: unknown.
- ``svc.db_readonly``: ``read_only``, ``super_read_only`` or ``innodb_read_only``
  on a server expected to take writes: ``role = "primary"``, or ``"auto"`` and
  the server is not a replica (no replica status). ``"replica"``: not judged.
- ``svc.down``: the connection was refused (nothing listens).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

from ddx.errors import ProbeError
from ddx.inventory.model import Inventory
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.services.dbcommon import FINDINGS as DB_FINDINGS
from ddx.probes.services.dbcommon import TargetError, probe_targets, quote
from ddx.probes.services.dbcommon import check_options as db_check_options
from ddx.units import duration
from ddx.urls import mask_url, split_url

__all__ = [
    "DEFAULTS",
    "FINDINGS",
    "MyTarget",
    "column_max",
    "judge",
    "mysql",
    "parse_batch",
    "parse_connect_error",
    "parse_sections",
    "parse_vertical",
]

FINDINGS = DB_FINDINGS  # the same questions as for PostgreSQL

DEFAULTS: dict[str, Any] = {
    "targets": [],  # mysql://user:pass@host:port/db URLs besides the discovered servers
    "discover": True,  # also probe mariadbd/mysqld running on this host (Unix socket, client's default user)
    "timeout": 3.0,  # seconds for one target (two client runs, connect timeout 2 s)
    "statement_timeout_s": 1.0,  # each statement (MariaDB max_statement_time, MySQL MAX_EXECUTION_TIME)
    "connections_percent": 90.0,  # the finding's own definition
    "sequence_percent": 90.0,  # as for PostgreSQL sequences: time left to migrate the column
    "long_transaction_seconds": 300.0,  # as for PostgreSQL: OLTP transactions last milliseconds
    "replication_lag_seconds": 30.0,  # as for PostgreSQL
    "role": "auto",  # "auto", "primary" or "replica": which servers should take writes
}

_ROLES = ("auto", "primary", "replica")
_INT_BITS = {"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "integer": 32, "bigint": 64}
_PROGRAMS = ("mariadbd", "mysqld")
_VARS = ("version", "version_comment", "max_connections", "read_only", "super_read_only", "innodb_read_only")
_STATUS = ("Threads_connected", "Threads_running", "Max_used_connections", "Connection_errors_max_connections")


def column_max(data_type: str, column_type: str) -> int | None:
    """The largest value an integer column holds (``int`` signed 2^31-1,
    ``int unsigned`` 2^32-1); None for other types."""
    bits = _INT_BITS.get(data_type.lower())
    if bits is None:
        return None
    return (1 << bits) - 1 if "unsigned" in column_type.lower() else (1 << (bits - 1)) - 1


# --- targets -----------------------------------------------------------------------


@dataclass(frozen=True)
class MyTarget:
    """How to reach one server with the client, and its name in evidence."""

    name: str
    args: tuple[str, ...]  # connection options for the client (no password)
    password: str | None = None
    configured: bool = True
    local_port: int | None = None


def my_target_from_url(url: str) -> MyTarget:
    """A configured target. Raises ``ValueError`` naming the masked URL."""
    shown = mask_url(url)
    try:
        parts, user, password = split_url(url)  # the password up to the URL's last @, / and @ included
        port = parts.port or 3306
    except ValueError:
        raise ValueError(f"target {shown}: not a valid URL (bad host or port)") from None
    if parts.scheme.lower() not in ("mysql", "mariadb"):
        raise ValueError(f"target {shown}: scheme must be mysql://")
    query = parse_qs(parts.query)
    socket = (query.get("socket") or [""])[0]
    if not parts.hostname and not socket:
        raise ValueError(f"target {shown}: no host (or ?socket=/path)")
    args: list[str] = ["--no-defaults"] if password is not None else []
    if socket:
        args += ["--protocol=SOCKET", "-S", socket]
    else:
        args += ["--protocol=TCP", "-h", parts.hostname or "127.0.0.1", "-P", str(port)]
    if user:
        args += ["-u", user]
    db = parts.path.lstrip("/")
    if db:
        args += ["-D", unquote(db)]
    return MyTarget(shown, tuple(args), password or None, True, port)


def _socket_from_cmdline(argv: Sequence[str]) -> str:
    for i, a in enumerate(argv):
        if a.startswith("--socket="):
            return a.split("=", 1)[1]
        if a == "--socket" and i + 1 < len(argv):
            return argv[i + 1]
    return ""


def discover(inv: Inventory) -> list[MyTarget | TargetError]:
    """The servers the inventory found: by their Unix socket when one is known
    (its command line, else its listening unix socket), else TCP on loopback."""
    out: list[MyTarget | TargetError] = []
    for svc in inv.services:
        if svc.program not in _PROGRAMS or svc.pid <= 0:
            continue
        sock = _socket_from_cmdline(svc.argv) or next(
            (ln.path for ln in svc.listens if ln.proto == "unix" and ln.path), "")
        tcp = next((ln for ln in svc.listens if ln.proto == "tcp" and ln.port), None)
        port = tcp.port if tcp is not None else None
        where = f"socket {sock}" if sock else f"port {port}"
        name = f"{svc.program} pid {svc.pid} on {where}"
        if sock:
            args: tuple[str, ...] = ("--protocol=SOCKET", "-S", sock)
        elif tcp is not None:
            args = ("--protocol=TCP", "-h", tcp.connect_host, "-P", str(port))
        else:
            out.append(TargetError(f"could not probe {name}: no socket and no TCP port found; set targets"))
            continue
        out.append(MyTarget(name, args, None, False, port))
    return out


# --- talking to the server ----------------------------------------------------------


def _setup(opt: Mapping[str, Any]) -> str:
    st = float(opt["statement_timeout_s"])
    return (f"SET SESSION TRANSACTION READ ONLY; SET SESSION lock_wait_timeout = {max(1, round(st))}, "
            f"SESSION innodb_lock_wait_timeout = {max(1, round(st))} /*M!100108 , SESSION max_statement_time = {st:.3f} */;\n")


def _hint(opt: Mapping[str, Any]) -> str:
    return f"/*+ MAX_EXECUTION_TIME({int(float(opt['statement_timeout_s']) * 1000)}) */"


def first_sql(opt: Mapping[str, Any]) -> str:
    names = ", ".join(f"'{v}'" for v in _VARS)
    status = ", ".join(f"'{v}'" for v in _STATUS)
    return (_setup(opt)
            + "SELECT '#ddx:vars' AS ddx;\n"
            f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names});\n"
            "SELECT '#ddx:status' AS ddx;\n"
            f"SHOW GLOBAL STATUS WHERE Variable_name IN ({status});\n"
            "SELECT '#ddx:tables' AS ddx;\n"
            f"SELECT {_hint(opt)} CONCAT(TABLE_SCHEMA, '.', TABLE_NAME) FROM information_schema.TABLES "
            "WHERE (TABLE_SCHEMA = 'information_schema' AND TABLE_NAME = 'INNODB_LOCK_WAITS') "
            "OR (TABLE_SCHEMA = 'performance_schema' AND TABLE_NAME = 'data_lock_waits');\n"
            "SELECT '#ddx:end' AS ddx;\n")


def second_sql(opt: Mapping[str, Any], version: str, lock_table: str) -> str:
    h = _hint(opt)
    long_s = int(float(opt["long_transaction_seconds"]))
    if lock_table == "information_schema.INNODB_LOCK_WAITS":
        waits = ("information_schema.INNODB_LOCK_WAITS w JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
                 "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id")
    elif lock_table == "performance_schema.data_lock_waits":
        waits = ("performance_schema.data_lock_waits w JOIN information_schema.INNODB_TRX r "
                 "ON r.trx_id = w.REQUESTING_ENGINE_TRANSACTION_ID JOIN information_schema.INNODB_TRX b "
                 "ON b.trx_id = w.BLOCKING_ENGINE_TRANSACTION_ID")
    else:
        waits = ""
    if waits:
        lock_sql = (f"SELECT {h} r.trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, r.trx_wait_started, NOW()), "
                    "LEFT(r.trx_query, 200), b.trx_mysql_thread_id, b.trx_state, "
                    "TIMESTAMPDIFF(SECOND, b.trx_started, NOW()), LEFT(b.trx_query, 200), p.COMMAND "
                    f"FROM {waits} LEFT JOIN information_schema.PROCESSLIST p ON p.ID = b.trx_mysql_thread_id LIMIT 50;\n")
    else:  # no lock-wait table: the waiting transactions alone
        lock_sql = (f"SELECT {h} trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, trx_wait_started, NOW()), "
                    "LEFT(trx_query, 200), NULL, NULL, NULL, NULL, NULL FROM information_schema.INNODB_TRX "
                    "WHERE trx_state = 'LOCK WAIT' LIMIT 50;\n")
    replica = "SHOW SLAVE STATUS"
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    if m:
        v = tuple(int(x) for x in m.groups())
        mariadb = "mariadb" in version.lower()
        if (mariadb and v >= (10, 5, 1)) or (not mariadb and v >= (8, 0, 22)):
            replica = "SHOW REPLICA STATUS"
    return (_setup(opt)
            + "SELECT '#ddx:lockwaits' AS ddx;\n" + lock_sql
            + "SELECT '#ddx:mdl' AS ddx;\n"
            f"SELECT {h} ID, USER, TIME, STATE, LEFT(INFO, 200) FROM information_schema.PROCESSLIST "
            "WHERE STATE LIKE 'Waiting for%lock%' AND ID <> CONNECTION_ID() ORDER BY TIME DESC LIMIT 50;\n"
            "SELECT '#ddx:long' AS ddx;\n"
            f"SELECT {h} t.trx_mysql_thread_id, TIMESTAMPDIFF(SECOND, t.trx_started, NOW()), t.trx_state, "
            "p.USER, p.COMMAND, LEFT(t.trx_query, 200) FROM information_schema.INNODB_TRX t "
            "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
            f"WHERE t.trx_started < NOW() - INTERVAL {long_s} SECOND ORDER BY t.trx_started LIMIT 10;\n"
            "SELECT '#ddx:replica' AS ddx;\n"
            f"{replica}\\G\n"
            "SELECT '#ddx:autoinc' AS ddx;\n"
            f"SELECT {h} t.TABLE_SCHEMA, t.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.COLUMN_TYPE, t.AUTO_INCREMENT "
            "FROM information_schema.TABLES t JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = t.TABLE_SCHEMA "
            "AND c.TABLE_NAME = t.TABLE_NAME AND c.EXTRA LIKE '%auto_increment%' "
            "WHERE t.AUTO_INCREMENT IS NOT NULL "
            "AND t.TABLE_SCHEMA NOT IN ('mysql', 'sys', 'performance_schema', 'information_schema');\n"
            "SELECT '#ddx:end' AS ddx;\n")


def _unescape(field_: str) -> str | None:
    if field_ == "NULL":
        return None
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}.get(m[1], m[1]), field_)


def parse_batch(lines: list[str]) -> list[list[str | None]]:
    """Rows of one result set of ``mysql --batch`` output: a header line (left
    out), then tab-separated rows (``\\t``/``\\n``/``\\\\`` escaped, ``NULL``
    for null). An empty result set prints nothing, not even its header."""
    lines = [ln for ln in lines if ln != ""]
    return [[_unescape(f) for f in line.split("\t")] for line in lines[1:]]


def parse_vertical(lines: list[str]) -> list[dict[str, str]]:
    """Rows of ``\\G`` output: ``*** N. row ***`` then ``Name: value`` lines."""
    rows: list[dict[str, str]] = []
    for line in lines:
        if re.match(r"^\*+ \d+\. row \*+$", line.strip()):
            rows.append({})
            continue
        key, sep, val = line.partition(": ")
        if rows and sep and key.strip() and " " not in key.strip():
            rows[-1][key.strip()] = val
        elif rows and line.strip().endswith(":") and " " not in line.strip():
            rows[-1][line.strip()[:-1]] = ""
    return rows


def parse_sections(stdout: str) -> tuple[dict[str, list[str]], str | None]:
    """Output lines by section (after each ``#ddx:NAME`` marker row, whose own
    header line ``ddx`` is dropped) and the section that did not finish (the
    last started when ``#ddx:end`` is missing)."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in stdout.split("\n"):
        if line.startswith("#ddx:"):
            if current is not None and sections[current][-1:] == ["ddx"]:
                sections[current].pop()
            current = line[5:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    unfinished = None if "end" in sections else current
    sections.pop("end", None)
    return sections, unfinished


def parse_connect_error(stderr: str) -> TargetError:
    """The reason the client could not connect."""
    text = " ".join(ln.strip() for ln in stderr.splitlines() if ln.strip())
    m = re.search(r"ERROR (\d+) \([0-9A-Z]+\)(?: at line \d+)?: (.*)", text)
    code, msg = (int(m[1]), m[2]) if m else (0, text or "the client failed without a message")
    low = msg.lower()
    if code == 1040 or "too many connections" in low:
        kind = "too_many"
    # libmariadb reports a refused TCP connect as errno 115 (EINPROGRESS, from its
    # non-blocking connect); 111 is ECONNREFUSED, 2 a missing socket file.
    elif code in (2002, 2003) and re.search(r"\((111|115|2)\)", msg) or "connection refused" in low:
        kind = "refused"
    elif code in (2013, 2003) and ("(110)" in msg or "timed out" in low or "handshake" in low):
        kind, msg = "timeout", f"no answer within the connect timeout ({msg})"
    elif code in (1045, 1698, 1044):
        kind = "auth"
    else:
        kind = "other"
    return TargetError(msg[:300], kind)


@dataclass(frozen=True)
class Reading:
    target: MyTarget
    sections: Mapping[str, list[str]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    refused: TargetError | None = None


def _run(host: Any, target: MyTarget, sql: str, timeout: float) -> tuple[str, str, int]:
    env = {"MYSQL_PWD": target.password} if target.password else None
    last: Exception | None = None
    for prog in ("mysql", "mariadb"):
        args = list(target.args)
        lead = ["--no-defaults"] if args[:1] == ["--no-defaults"] else []
        argv = [prog, *lead, "--batch", "--connect-timeout=2", *args[len(lead):], "-e", sql]
        try:
            r = host.run(argv, timeout=timeout, env=env)
        except FileNotFoundError as exc:
            last = exc
            continue
        except TimeoutError:
            raise TargetError(f"no reply within {timeout:.1f}s", "timeout") from None
        return r.stdout, r.stderr, r.returncode
    raise TargetError("neither mysql nor mariadb client is installed (mariadb-client)") from last


def read_target(host: Any, target: MyTarget, opt: Mapping[str, Any]) -> Reading:
    """Two client runs for ``target``. Raises ``TargetError`` when it cannot be read."""
    import time

    deadline = time.monotonic() + float(opt["timeout"])
    out, err, rc = _run(host, target, first_sql(opt), float(opt["timeout"]))
    sections, unfinished = parse_sections(out)
    if not sections:
        e = parse_connect_error(err)
        if e.kind in ("too_many", "refused"):
            return Reading(target, refused=e)
        raise e
    errors: dict[str, str] = {}
    if unfinished:
        errors[unfinished] = parse_connect_error(err).args[0]
    vars_ = dict((r[0] or "", r[1] or "") for r in parse_batch(sections.get("vars", [])) if len(r) >= 2)
    tables = {r[0] for r in parse_batch(sections.get("tables", [])) if r}
    lock_table = next((t for t in ("information_schema.INNODB_LOCK_WAITS", "performance_schema.data_lock_waits") if t in tables), "")
    left = deadline - time.monotonic()
    if left <= 0.2:
        errors["second"] = "no time left for the second query"
        return Reading(target, sections, errors)
    out2, err2, _ = _run(host, target, second_sql(opt, vars_.get("version", ""), lock_table), left)
    more, unfinished2 = parse_sections(out2)
    if not more:
        errors["second"] = parse_connect_error(err2).args[0]
    elif unfinished2:
        errors[unfinished2] = parse_connect_error(err2).args[0]
    return Reading(target, {**sections, **more}, errors)


# --- judging (pure) ---------------------------------------------------------------


def _int(v: Any) -> int | None:
    try:
        return None if v is None else int(float(v))
    except (TypeError, ValueError):
        return None


def _on(v: str | None) -> bool:
    return (v or "").upper() in ("ON", "1", "TRUE", "YES")


def judge(reading: Reading, options: Mapping[str, Any]) -> list[tuple[str, bool, Evidence]]:
    """(finding id, present, evidence) for what one target's reading decides. Pure."""
    opt = {**DEFAULTS, **options}
    src = reading.target.name
    out: list[tuple[str, bool, Evidence]] = []
    if reading.refused is not None:
        if reading.refused.kind == "too_many":
            out.append(("svc.db_connections_near_max", True, Evidence(
                source=src, summary=f"the server refused a new connection: {reading.refused}",
                value=100, threshold=float(opt["connections_percent"]), unit="%")))
            out.append(("svc.down", False, Evidence(source=src, summary="answers, but refuses new connections (all slots taken)")))
        else:
            what = "configured target" if reading.target.configured else "server found running a moment before"
            out.append(("svc.down", True, Evidence(source=src, summary=f"{what} refuses connections: {reading.refused}")))
        return out
    s = reading.sections
    vars_ = {r[0]: r[1] for r in parse_batch(s.get("vars", [])) if len(r) >= 2 and r[0]}
    status = {r[0]: r[1] for r in parse_batch(s.get("status", [])) if len(r) >= 2 and r[0]}
    out.append(("svc.down", False, Evidence(source=src, summary=f"{vars_.get('version', 'server')} answers")))

    maxc, conn = _int(vars_.get("max_connections")), _int(status.get("Threads_connected"))
    if maxc and conn is not None:
        others = max(0, conn - 1)  # less ddx's own connection
        pct = 100.0 * others / maxc
        out.append(("svc.db_connections_near_max", pct >= float(opt["connections_percent"]), Evidence(
            source=src,
            summary=f"{others} connections of max_connections {maxc} ({pct:.0f}%); "
            f"Threads_running {status.get('Threads_running', '?')}, Max_used_connections {status.get('Max_used_connections', '?')}",
            value=round(pct, 1), threshold=float(opt["connections_percent"]), unit="%", count=others,
        )))

    if "lockwaits" in s and "mdl" in s:
        waits = parse_batch(s["lockwaits"])
        mdl = parse_batch(s["mdl"])
        samples = []
        for w in waits[:10]:
            blocker = (f"thread {w[3]} ({w[7] or '?'}, transaction {w[4]}, open {duration(_int(w[5]))}"
                       + (f": {quote(w[6])}" if w[6] else "") + ")") if w[3] else "?"
            samples.append(f"thread {w[0]} waits {duration(_int(w[1]))} on a row lock for {blocker}: {quote(w[2])}")
        for m in mdl[:10]:
            samples.append(f"thread {m[0]} ({m[1]}) {m[3]} for {duration(_int(m[2]))}: {quote(m[4])}")
        n = len(waits) + len(mdl)
        out.append(("svc.db_locks_blocked", n > 0, Evidence(
            source=src,
            summary=(f"{len(waits)} transaction(s) in LOCK WAIT, {len(mdl)} session(s) waiting on a table or metadata lock"
                     if n else "no transaction or session waits on a lock"),
            value=n, threshold=0, count=n, samples=tuple(samples),
        )))
        long_rows = parse_batch(s.get("long", []))
        if long_rows:
            out.append(("svc.db_locks_blocked", n > 0, Evidence(
                source=src,
                summary=f"{len(long_rows)} transaction(s) open longer than {duration(float(opt['long_transaction_seconds']))} "
                f"(oldest {duration(_int(long_rows[0][1]))})",
                value=_int(long_rows[0][1]), threshold=float(opt["long_transaction_seconds"]), unit="s", count=len(long_rows),
                samples=tuple(f"thread {r[0]} {r[3]} {r[4]} {r[2]}, open {duration(_int(r[1]))}: {quote(r[5])}" for r in long_rows[:5]),
            )))

    if "autoinc" in s:
        thr = float(opt["sequence_percent"])
        rows = []
        for r in parse_batch(s["autoinc"]):
            if len(r) < 6:
                continue
            limit, nxt = column_max(r[3] or "", r[4] or ""), _int(r[5])
            if limit is None or nxt is None:
                continue
            used = max(0, nxt - 1)  # AUTO_INCREMENT is the next value to hand out
            rows.append((used / limit, f"{r[0]}.{r[1]}.{r[2]} {r[4]}", used, limit))
        rows.sort(key=lambda x: -x[0])
        high = [x for x in rows if x[0] * 100 >= thr]
        if high:
            ratio, col, used, limit = high[0]
            summary = f"{len(high)} auto-increment column(s) at or above {thr:.0f}% of their type's maximum; {col} at {used} of {limit} ({ratio:.1%})"
        elif rows:
            ratio, col, used, limit = rows[0]
            summary = f"{len(rows)} auto-increment columns; the highest, {col}, at {ratio:.1%} of {limit}"
        else:
            summary = "no auto-increment column in use"
        out.append(("svc.db_sequence_near_max", bool(high), Evidence(
            source=src, summary=summary, value=round((high or rows)[0][0] * 100, 2) if rows else 0.0,
            threshold=thr, unit="%", count=len(high),
            samples=tuple(f"{col} {used}/{limit} ({ratio:.1%})" for ratio, col, used, limit in (high or rows)[:5]),
        )))

    replica_rows = parse_vertical(s["replica"]) if "replica" in s else None
    if replica_rows:
        thr = float(opt["replication_lag_seconds"])
        problems: list[str] = []
        lines: list[str] = []
        worst = 0
        for rep in replica_rows:
            g = lambda *keys: next((rep[k] for k in keys if k in rep), None)  # noqa: E731
            io, sql = g("Slave_IO_Running", "Replica_IO_Running"), g("Slave_SQL_Running", "Replica_SQL_Running")
            lag = _int(g("Seconds_Behind_Master", "Seconds_Behind_Source"))
            primary = f"{g('Master_Host', 'Source_Host')}:{g('Master_Port', 'Source_Port')}"
            label = (rep.get("Connection_name") or "") + f" from {primary}"
            lines.append(f"replica{label}: IO {io}, SQL {sql}, behind " + (f"{lag}s" if lag is not None else "NULL"))
            if io != "Yes" or sql != "Yes":
                errs = "; ".join(e for e in (g("Last_IO_Error"), g("Last_SQL_Error")) if e)
                problems.append(f"replication{label} not running (IO thread {io}, SQL thread {sql})" + (f": {errs[:160]}" if errs else ""))
            elif lag is not None and lag > thr:
                problems.append(f"replica{label} {lag}s behind")
            worst = max(worst, lag or 0)
        out.append(("svc.db_replication_lag_high", bool(problems), Evidence(
            source=src, summary="; ".join(problems) or f"replication running, {worst}s behind",
            value=worst, threshold=thr, unit="s", samples=tuple(lines[:5]))))

    role = str(opt["role"])
    if vars_ and role != "replica" and not (role == "auto" and (replica_rows or replica_rows is None)):
        flags = [k for k in ("read_only", "super_read_only", "innodb_read_only") if _on(vars_.get(k))]
        out.append(("svc.db_readonly", bool(flags), Evidence(
            source=src,
            summary=(f"{', '.join(flags)} = ON: writes are refused" if flags
                     else "read_only = OFF: takes writes") + ("" if role == "primary" else " (no replica status: a primary)"),
            value=", ".join(flags) or "OFF", threshold="OFF")))
    return out


# --- the probe -------------------------------------------------------------------


def check_options(opt: Mapping[str, Any], name: str = "mysql") -> None:

    db_check_options(opt, name)
    if float(opt["statement_timeout_s"]) <= 0:
        raise ProbeError(f"probe.{name} statement_timeout_s must be > 0, got {opt['statement_timeout_s']}")


@probe("mysql", findings=FINDINGS, timeout=4.0, options=DEFAULTS)
def mysql(ctx: ProbeContext) -> list[Finding]:
    """MariaDB/MySQL through the mysql client: Threads_connected vs
    max_connections, lock waits and their blockers, long transactions,
    auto-increment columns near their type's maximum, replica status, read_only."""
    opt = ctx.config
    check_options(opt, ctx.probe_name)
    targets: list[MyTarget] = []
    failures: list[str] = []
    for url in ctx.opt("targets"):
        try:
            targets.append(my_target_from_url(str(url)))
        except ValueError as exc:
            raise ProbeError(f"probe.{ctx.probe_name}: {exc}") from None
    if ctx.opt("discover"):
        ports = {t.local_port for t in targets}
        for t in discover(ctx.inv):
            if isinstance(t, TargetError):
                failures.append(str(t))
            elif t.local_port is None or t.local_port not in ports:
                targets.append(t)
    if not targets and not failures:
        raise NotApplicable("no MariaDB/MySQL found (no mariadbd or mysqld process on this host; name one in targets)")
    timeout = float(opt["timeout"])
    return probe_targets(ctx, targets, failures, lambda t: read_target(ctx.host, t, opt),
                         lambda r: judge(r, opt), timeout)

