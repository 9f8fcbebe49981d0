"""PostgreSQL: connections, blocked sessions, long transactions, id headroom, replication, read-only.

Each target is read with ``psql`` through ``ctx.host.run`` (so bundles record
the replies): one process, one connection, a handful of SELECTs on catalog
views, each printing one JSON line. Before the queries the session is made
read-only (``SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY``) and
bounded (``statement_timeout``, ``lock_timeout``); the server's own
``default_transaction_read_only`` is read before that. Passwords reach psql
through ``PGPASSWORD`` in the child's environment, never argv; evidence names
targets with the password masked. Needs PostgreSQL >= 10 (``pg_sequences``,
``backend_type``).

Targets: the ``targets`` option (``postgresql://user:pass@host:port/db``,
query parameters such as ``sslmode`` or ``host=/run/postgresql`` are kept) and,
with ``discover``, every postmaster on this host (a ``postgres`` process whose
parent is not one): its data directory from ``-D`` or its working directory,
port and socket directory from ``postmaster.pid``, else its listening socket.
A discovered server is read through its Unix socket as the OS user owning the
data directory (``runuser -u OWNER`` when ddx runs as root): that is local
peer authentication, the way its administrators connect. Without a user name
for the owner the target fails with "no credentials; set targets".

What each finding means here:

- ``svc.db_connections_near_max``: client backends other than ddx's own at
  least ``connections_percent`` of the slots ordinary roles may use
  (``max_connections`` minus ``superuser_reserved_connections`` and, on 16+,
  ``reserved_connections``); or the server refused ddx with "too many clients"
  / "remaining connection slots are reserved".
- ``svc.db_locks_blocked``: sessions waiting on a lock (``pg_blocking_pids``);
  evidence names each waiting pid, its query, the blocker's pid, state and
  transaction age. With nothing waiting now, deadlocks counted since the
  statistics were reset (``pg_stat_database``, else since the server started)
  say sessions did: present, with that start as the count's ``since``. Transactions open longer than ``long_transaction_seconds``
  (the usual blockers of migrations and vacuum) are added as evidence to this
  finding, whether or not anything waits: there is no finding of their own.
- ``svc.db_sequence_near_max``: a sequence whose last value is at least
  ``sequence_percent`` of what it may reach: its own max_value, and the maximum
  of the narrowest integer column it feeds (an ``integer`` column fed by a
  ``bigint`` sequence overflows at 2^31-1 though the sequence does not).
- ``svc.db_replication_lag_high``: on a standby, replay behind by more than
  ``replication_lag_seconds`` (0 when everything received is replayed), replay
  paused, or a WAL receiver not streaming / missing though ``primary_conninfo``
  is set; on a primary, a replica whose ``replay_lag`` exceeds the threshold or
  an inactive physical replication slot (a replica that stopped consuming). A
  primary with neither replicas nor slots: unknown (nothing to measure).
- ``svc.db_readonly``: with ``role = "primary"`` the server is in recovery or
  has ``default_transaction_read_only = on``. With ``"auto"`` (default) a
  server that is not in recovery is expected to take writes (so
  ``default_transaction_read_only = on`` is present); a standby with an
  upstream (``primary_conninfo`` or ``restore_command``) is a replica by design
  and not judged; a server in recovery with no upstream at all (it will never
  leave recovery by itself) is present. ``"replica"``: not judged.
- ``svc.down``: the connection was refused (nothing listens).

A target that cannot be read gives "could not probe TARGET: reason"; with
several targets the others' findings are kept and the failure is added to the
absent findings' evidence; when none can be read the probe fails.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import ProbeError
from ddx.inventory.model import Inventory
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.services.dbcommon import (
    FINDINGS,
    TargetError,
    check_options,
    probe_targets,
    quote,
)
from ddx.units import duration, iso
from ddx.urls import mask_url, split_userinfo

__all__ = [
    "DEFAULTS",
    "FINDINGS",
    "PgTarget",
    "Postmaster",
    "TargetError",
    "judge",
    "parse_connect_error",
    "parse_postmaster_pid",
    "parse_psql_output",
    "pg_target_from_url",
    "postgres",
]

DEFAULTS: dict[str, Any] = {
    "targets": [],  # postgresql://user:pass@host:port/db URLs besides the discovered servers
    "discover": True,  # also probe the postmasters running on this host (local socket, data-dir owner)
    # Seconds for one target: libpq's connect_timeout cannot be under 2 s, plus
    # the queries (each bounded by statement_timeout below).
    "timeout": 3.0,
    "statement_timeout_ms": 1000,  # each catalog query; they take milliseconds on a healthy server
    # Connection slots: the finding's own definition (more than 90% in use).
    "connections_percent": 90.0,
    # Sequences / id columns: 90% of the type's maximum leaves weeks to months
    # at typical insert rates to migrate a column to bigint.
    "sequence_percent": 90.0,
    # A transaction open 5 minutes holds locks and snapshots long enough to
    # block migrations and vacuum; OLTP transactions last milliseconds.
    "long_transaction_seconds": 300.0,
    # Replication lag: 30 s of replay delay is past what read-your-writes
    # clients tolerate and well past normal streaming lag (under a second).
    "replication_lag_seconds": 30.0,
    # "auto", "primary" or "replica": which servers should take writes (svc.db_readonly).
    "role": "auto",
}

_TYPE_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}
_SCHEMES = ("postgresql", "postgres")


# --- targets -----------------------------------------------------------------------


@dataclass(frozen=True)
class PgTarget:
    """How to reach one server with psql, and its name in evidence (no password)."""

    name: str
    conninfo: str  # a libpq URI or keyword string, never with the password
    password: str | None = None  # goes to PGPASSWORD in the child's environment
    run_as: str | None = None  # OS user to run psql as (runuser), for local peer authentication
    configured: bool = True
    local_port: int | None = None  # for matching configured and discovered servers


_PORT_IN_REST = re.compile(r"^(?:\[[^\]]*\]|[^:/?#]*)(?::(\d+))?")


def pg_target_from_url(url: str, connect_timeout: int = 2) -> PgTarget:
    """A configured target. The password leaves the URI (it goes to the
    environment, all of it, ``@`` and ``/`` included: ``ddx.urls.split_userinfo``);
    ``connect_timeout`` and ``application_name`` are added unless the URL sets
    them. Raises ``ValueError`` naming the masked URL."""
    shown = mask_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise ValueError(f"target {shown}: scheme must be postgresql://")
    u = split_userinfo(url)
    password = u.plain_password()
    url_nopw = u.without_password()
    if re.search(r"(?i)[?&]password=", url_nopw):
        raise ValueError(f"target {shown}: put the password in the user-info (user:pass@), not in a query parameter")
    params = url_nopw.partition("?")[2]
    extra = []
    if "connect_timeout=" not in params:
        extra.append(f"connect_timeout={connect_timeout}")
    if "application_name=" not in params:
        extra.append("application_name=ddx")
    if extra:
        url_nopw += ("&" if "?" in url_nopw else "?") + "&".join(extra)
    pm = _PORT_IN_REST.match(u.rest)
    port = int(pm[1]) if pm and pm[1] else 5432
    return PgTarget(shown, url_nopw, password or None, None, True, port)


def _conninfo_value(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(**kw: str | int) -> str:
    """A libpq keyword/value connection string (values quoted)."""
    return " ".join(f"{k}={_conninfo_value(str(v))}" for k, v in kw.items())


@dataclass(frozen=True)
class Postmaster:
    """A PostgreSQL server process found on this host."""

    pid: int
    datadir: str
    port: int | None = None
    socket_dir: str = ""
    listen: str = ""


def parse_postmaster_pid(text: str) -> dict[str, Any]:
    """``postmaster.pid``: line 1 pid, 2 data directory, 4 port, 5 first Unix
    socket directory (empty when sockets are off), 6 first listen address."""
    lines = text.split("\n")
    out: dict[str, Any] = {}
    try:
        out["pid"] = int(lines[0].strip())
        out["datadir"] = lines[1].strip()
        out["port"] = int(lines[3].strip())
    except (IndexError, ValueError):
        return {}
    out["socket_dir"] = lines[4].strip() if len(lines) > 4 else ""
    out["listen"] = lines[5].strip() if len(lines) > 5 else ""
    return out


def find_postmasters(host: Any, inv: Inventory) -> list[Postmaster]:
    """The postmasters the inventory found: data directory from its command line
    (the inventory's first data directory) or its working directory (the
    postmaster chdirs there); port and socket directory from ``postmaster.pid``,
    else from its listening sockets."""
    found = []
    for svc in inv.services:
        if svc.program not in ("postgres", "postmaster") or svc.pid <= 0:
            continue
        datadir = svc.data_dirs[0] if svc.data_dirs else svc.cwd
        info: dict[str, Any] = {}
        if datadir:
            try:
                info = parse_postmaster_pid(host.read_text(f"{datadir.rstrip('/')}/postmaster.pid", max_bytes=4096))
            except (OSError, LookupError):
                info = {}
        if info and info.get("pid") != svc.pid:
            info = {}
        port = info.get("port") or next((ln.port for ln in svc.listens if ln.proto == "tcp" and ln.port), None)
        found.append(Postmaster(svc.pid, datadir, port, info.get("socket_dir", ""), info.get("listen", "")))
    return sorted(found, key=lambda p: (p.port or 0, p.pid))


def _user_name(host: Any, uid: int) -> str | None:
    try:
        text = host.read_text("/etc/passwd")
    except (OSError, LookupError):
        return None
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2] == str(uid):
            return parts[0]
    return None


def local_target(host: Any, pm: Postmaster, euid: int) -> PgTarget | TargetError:
    """How to read a discovered server: its Unix socket as the data directory's
    owner (peer authentication), else TCP on loopback as that user."""
    where = f"port {pm.port}" if pm.port else "unknown port"
    name = f"postgres pid {pm.pid} on {where}" + (f" (data {pm.datadir})" if pm.datadir else "")
    if pm.port is None:
        return TargetError(f"could not probe {name}: its port is unknown (postmaster.pid unreadable, no listening socket); set targets", "other")
    owner: str | None = None
    owner_uid: int | None = None
    if pm.datadir:
        try:
            owner_uid = host.stat(pm.datadir).uid
            owner = _user_name(host, owner_uid)
        except (OSError, LookupError):
            owner_uid = None
    if owner is None:
        why = f"the data directory's owner (uid {owner_uid}) has no user name" if owner_uid is not None else "the data directory's owner is unknown"
        return TargetError(f"could not probe {name}: no credentials ({why}); set targets", "other")
    if pm.socket_dir:
        hostpart = pm.socket_dir
    elif pm.listen in ("", "*", "0.0.0.0"):
        hostpart = "127.0.0.1"
    elif pm.listen == "::":
        hostpart = "::1"
    else:
        hostpart = pm.listen
    ci = conninfo(host=hostpart, port=pm.port, user=owner, dbname="postgres", connect_timeout=2, application_name="ddx")
    run_as = owner if euid == 0 and owner_uid != 0 else None
    if euid not in (0, owner_uid):
        run_as = None  # cannot become the owner: try as ourselves (peer auth may map us)
        ci = conninfo(host=hostpart, port=pm.port, dbname="postgres", connect_timeout=2, application_name="ddx")
    return PgTarget(name, ci, None, run_as, False, pm.port)


# --- talking to the server ----------------------------------------------------------


def _sql_parts(opt: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(part name, SQL) in the order they run. Each SELECT prints one JSON line."""
    long_s = float(opt["long_transaction_seconds"])
    settings = """SELECT json_build_object('part', 'settings',
  'version', current_setting('server_version'),
  'in_recovery', pg_is_in_recovery(),
  'superuser', (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
  'settings', (SELECT json_object_agg(name, setting) FROM pg_settings WHERE name IN
     ('max_connections', 'superuser_reserved_connections', 'reserved_connections', 'default_transaction_read_only')),
  'has_primary_conninfo', (SELECT setting <> '' FROM pg_settings WHERE name = 'primary_conninfo'),
  'has_restore_command', (SELECT setting <> '' FROM pg_settings WHERE name = 'restore_command'))"""
    activity = f"""WITH waiting AS (
  SELECT pid, pg_blocking_pids(pid) AS blockers FROM pg_stat_activity WHERE wait_event_type = 'Lock'
), blocked AS (
  SELECT a.pid, a.usename, a.datname, a.wait_event, w.blockers,
         extract(epoch FROM now() - a.query_start)::float8 AS wait_s, left(a.query, 200) AS query
  FROM waiting w JOIN pg_stat_activity a USING (pid) WHERE cardinality(w.blockers) > 0
  ORDER BY a.query_start LIMIT 50
)
SELECT json_build_object('part', 'activity',
  'clients', (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()),
  'by_state', (SELECT json_object_agg(st, n) FROM (SELECT coalesce(state, 'unknown') AS st, count(*) AS n
     FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1) s),
  'blocked', (SELECT json_agg(b) FROM blocked b),
  'holders', (SELECT json_agg(h) FROM (SELECT pid, usename, state, left(query, 200) AS query,
       extract(epoch FROM now() - xact_start)::float8 AS xact_s
     FROM pg_stat_activity WHERE pid IN (SELECT unnest(blockers) FROM blocked)) h),
  'long', (SELECT json_agg(l) FROM (SELECT pid, usename, datname, state, left(query, 200) AS query,
       extract(epoch FROM now() - xact_start)::float8 AS xact_s
     FROM pg_stat_activity WHERE xact_start < now() - make_interval(secs => {long_s:.3f})
       AND pid <> pg_backend_pid() ORDER BY xact_start LIMIT 10) l),
  'long_count', (SELECT count(*) FROM pg_stat_activity WHERE xact_start < now() - make_interval(secs => {long_s:.3f})
       AND pid <> pg_backend_pid()),
  'deadlocks', (SELECT sum(deadlocks) FROM pg_stat_database),
  'counted_since', (SELECT extract(epoch FROM coalesce(min(stats_reset), pg_postmaster_start_time()))::float8
       FROM pg_stat_database))"""
    sequences = """WITH seqcol AS (
  SELECT d.refobjid AS seq, ad.adrelid AS rel, ad.adnum AS attnum
  FROM pg_depend d JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
  WHERE d.refclassid = 'pg_class'::regclass
  UNION
  SELECT d.objid, d.refobjid, d.refobjsubid FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
    AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
), cols AS (
  SELECT sc.seq,
    string_agg(format('%s.%I %s', sc.rel::regclass, a.attname, format_type(a.atttypid, a.atttypmod)), ', ') AS columns,
    min(CASE a.atttypid WHEN 'int2'::regtype THEN 32767 WHEN 'int4'::regtype THEN 2147483647
        WHEN 'int8'::regtype THEN 9223372036854775807 END) AS col_max
  FROM seqcol sc JOIN pg_class s ON s.oid = sc.seq AND s.relkind = 'S'
  JOIN pg_attribute a ON a.attrelid = sc.rel AND a.attnum = sc.attnum AND NOT a.attisdropped
  GROUP BY sc.seq
), seqs AS (
  SELECT format('%I.%I', ps.schemaname, ps.sequencename) AS name, ps.data_type::text AS seq_type,
    ps.last_value, ps.max_value, ps.min_value, ps.increment_by, c.columns, c.col_max
  FROM pg_sequences ps
  LEFT JOIN cols c ON c.seq = (quote_ident(ps.schemaname) || '.' || quote_ident(ps.sequencename))::regclass
  WHERE ps.last_value IS NOT NULL
)
SELECT json_build_object('part', 'sequences',
  'count', (SELECT count(*) FROM pg_sequences),
  'top', (SELECT json_agg(t) FROM (SELECT * FROM seqs ORDER BY
      CASE WHEN increment_by > 0 THEN last_value::numeric / least(max_value, coalesce(col_max, max_value))
           ELSE last_value::numeric / greatest(min_value, -coalesce(col_max, -min_value - 1) - 1) END DESC
      LIMIT 10) t))"""
    replication = """SELECT json_build_object('part', 'replication',
  'in_recovery', pg_is_in_recovery(),
  'receiver', (SELECT json_agg(r) FROM (SELECT status, sender_host, sender_port,
      extract(epoch FROM now() - last_msg_receipt_time)::float8 AS msg_age_s FROM pg_stat_wal_receiver) r),
  'replay_age_s', CASE WHEN pg_is_in_recovery() THEN extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8 END,
  'caught_up', CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() END,
  'replay_paused', CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END,
  'replicas', (SELECT json_agg(r) FROM (SELECT application_name, client_addr::text AS client_addr, state, sync_state,
      extract(epoch FROM replay_lag)::float8 AS replay_lag_s FROM pg_stat_replication) r),
  'slots', (SELECT json_agg(s) FROM (SELECT slot_name, slot_type, active,
      CASE WHEN NOT pg_is_in_recovery() THEN pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::float8 END AS retained_bytes
      FROM pg_replication_slots) s))"""
    return [("settings", settings), ("activity", activity), ("sequences", sequences), ("replication", replication)]


def psql_argv(target: PgTarget, opt: Mapping[str, Any]) -> list[str]:
    """The psql command for one target: the server's settings first (before
    ddx's session settings hide them), then read-only and time limits, then the
    other parts. ``\\warn`` markers on stderr tell which part an error belongs to."""
    argv = ["psql", "-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", target.conninfo]
    st = int(opt["statement_timeout_ms"])
    parts = _sql_parts(opt)
    for i, (name, sql) in enumerate(parts):
        # jsonb's text form is one line (json_agg's is not): one part, one line.
        sql = re.sub(r"^SELECT json_build_object\((.*)\)$", r"SELECT (json_build_object(\1))::jsonb::text", sql, flags=re.M | re.S)
        argv += ["-c", f"\\warn @@ddx:{name}", "-c", sql]
        if i == 0:
            argv += ["-c", f"SET statement_timeout = {st}; SET lock_timeout = {max(100, st // 2)}; "
                     "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"]
    if target.run_as:
        argv = ["runuser", "-u", target.run_as, "--", *argv]
    return argv


def parse_psql_output(stdout: str, stderr: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(parts by name, errors by part name) from one psql run of ``psql_argv``.
    Errors before the first marker are filed under ``connect``."""
    parts: dict[str, dict[str, Any]] = {}
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("part"), str):
            parts[obj["part"]] = obj
    errors: dict[str, str] = {}
    current = "connect"
    for line in stderr.splitlines():
        if line.startswith("@@ddx:"):
            current = line[6:].strip()
            continue
        msg = line.strip()
        if msg.startswith(("ERROR:", "FATAL:", "psql: error:")) and current not in errors:
            errors[current] = re.sub(r"^(?:psql: error: |ERROR:\s+|FATAL:\s+)", "", msg)
    return parts, errors


def parse_connect_error(stderr: str) -> TargetError:
    """The reason psql could not connect, as short as it stays clear."""
    text = " ".join(ln.strip() for ln in stderr.splitlines() if ln.strip() and not ln.startswith("@@ddx:"))
    text = re.sub(r"^psql: error: ", "", text)
    fatal = re.search(r"FATAL:\s+(.*)", text)
    reason = fatal[1] if fatal else re.sub(r'^connection to server (?:at|on) .*? failed: ', "", text)
    reason = reason.strip() or "psql failed without a message"
    low = reason.lower()
    if "too many clients" in low or "remaining connection slots are reserved" in low:
        kind = "too_many"
    elif "connection refused" in low or "no such file or directory" in low and ".s.pgsql" in text.lower():
        kind = "refused"
    elif "timeout expired" in low:
        kind, reason = "timeout", "no answer within the connect timeout (timeout expired)"
    elif "authentication failed" in low or "no pg_hba.conf entry" in low or "password" in low:
        kind = "auth"
    else:
        kind = "other"
    return TargetError(reason[:300], kind)


@dataclass(frozen=True)
class Reading:
    """What one target gave: its parts, the errors of the parts that failed,
    or the refusal that is itself a fact (refused, too many clients)."""

    target: PgTarget
    parts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    refused: TargetError | None = None


def read_target(host: Any, target: PgTarget, opt: Mapping[str, Any]) -> Reading:
    """Run psql once for ``target``. Raises ``TargetError`` when it cannot be read."""
    env = {"PGPASSWORD": target.password} if target.password else None
    try:
        r = host.run(psql_argv(target, opt), timeout=float(opt["timeout"]), env=env)
    except FileNotFoundError:
        prog = "runuser" if target.run_as else "psql"
        raise TargetError(f"{prog} is not installed (the postgresql-client package)") from None
    except TimeoutError:
        raise TargetError(f"no reply within {float(opt['timeout']):.1f}s", "timeout") from None
    parts, errors = parse_psql_output(r.stdout, r.stderr)
    if not parts:
        if target.run_as and "runuser:" in r.stderr:
            raise TargetError(r.stderr.strip().splitlines()[0][:300])
        err = parse_connect_error(r.stderr)
        if err.kind in ("too_many", "refused"):
            return Reading(target, refused=err)
        raise err
    return Reading(target, parts, errors)


# --- judging (pure) ---------------------------------------------------------------


def _num(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None




def _seq_ratio(row: Mapping[str, Any]) -> tuple[float, int, str]:
    """(share of the reachable maximum used, that maximum, what sets it)."""
    last = int(row["last_value"])
    inc = int(row.get("increment_by") or 1)
    col_max = row.get("col_max")
    if inc > 0:
        limit, why = int(row["max_value"]), f"sequence max_value ({row.get('seq_type', '?')})"
        if col_max is not None and int(col_max) < limit:
            limit, why = int(col_max), f"column type maximum ({row.get('columns')})"
        return (last / limit if limit > 0 else 0.0), limit, why
    limit, why = int(row["min_value"]), "sequence min_value"
    if col_max is not None and -int(col_max) - 1 > limit:
        limit, why = -int(col_max) - 1, f"column type minimum ({row.get('columns')})"
    return (last / limit if limit < 0 else 0.0), limit, why


def judge(reading: Reading, options: Mapping[str, Any]) -> list[tuple[str, bool, Evidence]]:
    """(finding id, present, evidence) for what one target's reading decides. Pure."""
    opt = {**DEFAULTS, **options}
    src = reading.target.name
    out: list[tuple[str, bool, Evidence]] = []
    if reading.refused is not None:
        if reading.refused.kind == "too_many":
            out.append(("svc.db_connections_near_max", True, Evidence(
                source=src, summary=f"the server refused a new connection: {reading.refused}", value=100, threshold=float(opt["connections_percent"]), unit="%")))
            out.append(("svc.down", False, Evidence(source=src, summary="answers, but refuses new connections (all slots taken)")))
        else:
            what = "configured target" if reading.target.configured else "server found running a moment before"
            out.append(("svc.down", True, Evidence(source=src, summary=f"{what} refuses connections: {reading.refused}")))
        return out
    p = reading.parts
    s = p.get("settings", {})
    settings = s.get("settings") or {}
    in_recovery = s.get("in_recovery")
    role = "standby (in recovery)" if in_recovery else "primary"
    out.append(("svc.down", False, Evidence(source=src, summary=f"PostgreSQL {s.get('version', '?')} answers ({role})")))

    act = p.get("activity")
    maxc = _num(settings.get("max_connections"))
    if act is not None and maxc:
        reserved = (_num(settings.get("superuser_reserved_connections")) or 0) + (_num(settings.get("reserved_connections")) or 0)
        usable = max(1.0, maxc - reserved)
        clients = int(act.get("clients") or 0)
        pct = 100.0 * clients / usable
        by_state = act.get("by_state") or {}
        states = ", ".join(f"{n} {st}" for st, n in sorted(by_state.items(), key=lambda kv: -int(kv[1])))
        out.append(("svc.db_connections_near_max", pct >= float(opt["connections_percent"]), Evidence(
            source=src,
            summary=f"{clients} client connections of {usable:.0f} usable slots ({pct:.0f}%; max_connections "
            f"{maxc:.0f}, {reserved:.0f} reserved for superusers)" + (f": {states}" if states else ""),
            value=round(pct, 1), threshold=float(opt["connections_percent"]), unit="%", count=clients,
        )))

    if act is not None:
        blocked = act.get("blocked") or []
        holders = {int(h["pid"]): h for h in act.get("holders") or []}
        samples = []
        for b in blocked[:10]:
            parts = []
            for bp in b.get("blockers") or []:
                h = holders.get(int(bp), {})
                if h.get("state") is None:  # another role's session: pg_read_all_stats shows it
                    parts.append(f"pid {bp} (state not visible to this user)")
                    continue
                parts.append(f"pid {bp} ({h['state']}, transaction open {duration(_num(h.get('xact_s')))}"
                             + (f": {quote(h.get('query'))}" if h.get("query") else "") + ")")
            samples.append(f"pid {b.get('pid')} waits {duration(_num(b.get('wait_s')))} on {b.get('wait_event', 'lock')} "
                           f"for {', '.join(parts) or '?'}: {quote(b.get('query'))}")
        evs = [Evidence(
            source=src,
            summary=(f"{len(blocked)} session(s) wait on locks held by others" if blocked else "no session waits on a lock held by another"),
            value=len(blocked), threshold=0, count=len(blocked), samples=tuple(samples),
        )]
        long_rows = act.get("long") or []
        if long_rows:
            n = int(act.get("long_count") or len(long_rows))
            evs.append(Evidence(
                source=src,
                summary=f"{n} transaction(s) open longer than {duration(float(opt['long_transaction_seconds']))} "
                f"(oldest {duration(_num(long_rows[0].get('xact_s')))})",
                value=round(_num(long_rows[0].get("xact_s")) or 0.0, 1), threshold=float(opt["long_transaction_seconds"]),
                unit="s", count=n,
                samples=tuple(f"pid {r.get('pid')} {r.get('usename')}@{r.get('datname')} {r.get('state')}, open "
                              f"{duration(_num(r.get('xact_s')))}: {quote(r.get('query'))}" for r in long_rows[:5]),
            ))
        deadlocks = int(_num(act.get("deadlocks")) or 0)
        since = _num(act.get("counted_since"))
        if not blocked and deadlocks > 0:  # nothing waits now; the deadlock detector says sessions did
            evs.insert(0, Evidence(
                source=src,
                summary=f"no session waits now, but {deadlocks} deadlock(s) were detected since "
                        f"{iso(since) if since else 'the statistics were reset'} (pg_stat_database): sessions "
                        f"waited on each other's locks",
                value=deadlocks, threshold=0, count=deadlocks, since=iso(since) if since else None))
        locked = bool(blocked) or deadlocks > 0
        out.append(("svc.db_locks_blocked", locked, evs[0]))
        out += [("svc.db_locks_blocked", locked, e) for e in evs[1:]]

    seq = p.get("sequences")
    if seq is not None:
        rows = [(r, *_seq_ratio(r)) for r in seq.get("top") or []]
        rows.sort(key=lambda x: -x[1])
        thr = float(opt["sequence_percent"])
        high = [x for x in rows if x[1] * 100 >= thr]
        count = int(seq.get("count") or 0)
        if high:
            r, ratio, limit, why = high[0]
            summary = (f"{len(high)} sequence(s) at or above {thr:.0f}% of the maximum they may reach; "
                       f"{r['name']} at {int(r['last_value'])} of {limit} ({ratio:.1%}, limited by {why})")
        elif rows:
            r, ratio, limit, why = rows[0]
            summary = f"{count} sequences; the highest, {r['name']}, at {ratio:.1%} of {limit} ({why})"
        else:
            summary = f"{count} sequences, none used yet"
        out.append(("svc.db_sequence_near_max", bool(high), Evidence(
            source=src, summary=summary, value=round((high or rows)[0][1] * 100, 2) if rows else 0.0,
            threshold=thr, unit="%", count=len(high),
            samples=tuple(f"{r['name']} {int(r['last_value'])}/{limit} ({ratio:.1%}) feeds {r.get('columns') or 'no column'}"
                          for r, ratio, limit, _ in (high or rows)[:5]),
        )))

    rep = p.get("replication")
    if rep is not None:
        out += _judge_replication(rep, s, opt, src)

    out += _judge_readonly(s, rep, opt, src)
    return out


def _judge_replication(rep: Mapping[str, Any], s: Mapping[str, Any], opt: Mapping[str, Any], src: str) -> list[tuple[str, bool, Evidence]]:
    thr = float(opt["replication_lag_seconds"])
    if rep.get("in_recovery"):
        problems: list[str] = []
        receivers = rep.get("receiver") or []
        lag = 0.0 if rep.get("caught_up") else _num(rep.get("replay_age_s"))
        if rep.get("replay_paused"):
            problems.append("WAL replay is paused")
        if receivers:
            r = receivers[0]
            if r.get("status") != "streaming":
                problems.append(f"WAL receiver {r.get('status')} (not streaming) from {r.get('sender_host') or '?'}")
            age = _num(r.get("msg_age_s"))
            if age is not None and age > thr:
                problems.append(f"no message from the primary for {duration(age)}")
        elif s.get("has_primary_conninfo"):
            problems.append("no WAL receiver running though primary_conninfo is set: not connected to its primary")
        if lag is not None and lag > thr:
            problems.append(f"replay {duration(lag)} behind (last replayed transaction {duration(lag)} ago, WAL received but not replayed)")
        summary = "; ".join(problems) if problems else (
            f"standby replay lag {duration(lag)}" + (f", WAL receiver {receivers[0].get('status')}" if receivers else ""))
        return [("svc.db_replication_lag_high", bool(problems), Evidence(
            source=src, summary=summary, value=round(lag, 1) if lag is not None else None, threshold=thr, unit="s"))]
    replicas = rep.get("replicas") or []
    slots = [sl for sl in rep.get("slots") or [] if sl.get("slot_type") == "physical"]
    if not replicas and not slots:
        return []  # a primary without replication: nothing to measure
    problems, rows = [], []
    worst = 0.0
    for r in replicas:
        lag = _num(r.get("replay_lag_s")) or 0.0
        worst = max(worst, lag)
        rows.append(f"{r.get('application_name') or '?'} {r.get('client_addr') or 'local'} {r.get('state')} replay lag {duration(lag)}")
        if lag > thr:
            problems.append(f"replica {r.get('application_name') or r.get('client_addr')} replays {duration(lag)} behind")
    for sl in slots:
        if not sl.get("active"):
            kept = _num(sl.get("retained_bytes"))
            problems.append(f"replication slot {sl.get('slot_name')} inactive (no replica consuming it"
                            + (f"; {kept / (1 << 20):.0f} MB of WAL kept for it" if kept is not None else "") + ")")
    summary = "; ".join(problems) if problems else f"{len(replicas)} replica(s) streaming, worst replay lag {duration(worst)}"
    return [("svc.db_replication_lag_high", bool(problems), Evidence(
        source=src, summary=summary, value=round(worst, 1), threshold=thr, unit="s", samples=tuple(rows[:5])))]


def _judge_readonly(s: Mapping[str, Any], rep: Mapping[str, Any] | None, opt: Mapping[str, Any], src: str) -> list[tuple[str, bool, Evidence]]:
    if not s:
        return []
    role = str(opt["role"])
    in_recovery = bool(s.get("in_recovery"))
    dtro = (s.get("settings") or {}).get("default_transaction_read_only")
    if role == "replica":
        return []
    if role == "auto" and in_recovery:
        upstream = [s.get("has_primary_conninfo"), s.get("has_restore_command")]
        if any(upstream) or None in upstream:
            return []  # a standby by design (or its configuration is not visible to us)
        receivers = (rep or {}).get("receiver") or []
        if receivers:
            return []
        return [("svc.db_readonly", True, Evidence(
            source=src, summary="in recovery with no upstream (no primary_conninfo, no restore_command): "
            "it takes no writes and will not leave recovery unless promoted"))]
    if in_recovery:
        return [("svc.db_readonly", True, Evidence(source=src, summary="in recovery (a standby): it takes no writes, but role is primary"))]
    ro = dtro == "on"
    return [("svc.db_readonly", ro, Evidence(
        source=src,
        summary=("default_transaction_read_only = on: every transaction is read-only, writes fail" if ro
                 else "not in recovery, default_transaction_read_only = off: takes writes"),
        value=str(dtro), threshold="off"))]


# --- the probe -------------------------------------------------------------------


def resolve_targets(ctx: ProbeContext) -> tuple[list[PgTarget], list[str]]:
    """(targets to read, discovered servers that cannot be read and why)."""
    targets: list[PgTarget] = []
    for url in ctx.opt("targets"):
        try:
            targets.append(pg_target_from_url(str(url)))
        except ValueError as exc:
            raise ProbeError(f"probe.{ctx.probe_name}: {exc}") from None
    problems: list[str] = []
    if ctx.opt("discover"):
        ports = {t.local_port for t in targets}
        euid = os.geteuid()
        for pm in find_postmasters(ctx.host, ctx.inv):
            if pm.port is not None and pm.port in ports:
                continue
            t = local_target(ctx.host, pm, euid)
            if isinstance(t, TargetError):
                problems.append(str(t))
            else:
                targets.append(t)
    return targets, problems


@probe("postgres", findings=FINDINGS, timeout=4.0, options=DEFAULTS)
def postgres(ctx: ProbeContext) -> list[Finding]:
    """PostgreSQL through psql: connections vs max_connections, sessions blocked
    on locks and their blockers, long transactions, sequences and integer id
    columns near their maximum, replication lag, read-only / recovery."""
    opt = ctx.config
    check_options(opt, ctx.probe_name)
    targets, failures = resolve_targets(ctx)
    if not targets and not failures:
        raise NotApplicable("no PostgreSQL found (no postgres process on this host; name one in targets)")
    timeout = float(opt["timeout"])
    return probe_targets(ctx, targets, failures, lambda t: read_target(ctx.host, t, opt),
                         lambda r: judge(r, opt), timeout)
