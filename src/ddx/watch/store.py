"""The incident store: SQLite in WAL mode, with migrations and retention.

One database holds every incident, whoever opened it (``ddx watch``, an
Alertmanager alert through ``ddx serve``, "diagnose now"): the incident, its
timeline of events, each diagnosis made for it (the report as JSON), the
alerts that belong to it, the notifications sent, and the watch daemon's own
state (so that a restart goes on where it stopped).

Durability: every write is one transaction; WAL with ``synchronous=NORMAL``
survives a killed process (not a power cut's last transactions). A second
process may read while the daemon writes (``busy_timeout``).

Failure to write (a full disk, a read-only filesystem, a locked database)
raises ``StoreError`` with SQLite's reason; the caller keeps working and tries
again later (``ddx.watch.incidents`` keeps a backlog). Incident ids are made
by the caller, not by the database, so an incident opened while the store
cannot be written keeps its id when it finally is.

Schema changes are migrations: ``MIGRATIONS[n]`` takes a database from
version n to n+1 (``PRAGMA user_version``); a database newer than this ddx is
refused with a clear error rather than written with the wrong schema.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import DdxError

__all__ = [
    "DEFAULT_PATH",
    "Event",
    "Incident",
    "Store",
    "StoreError",
    "new_incident_id",
]

DEFAULT_PATH = "/var/lib/ddx/ddx.db"

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,              -- what makes two reports the same fault (source-specific)
        source TEXT NOT NULL,           -- watch | alertmanager | manual
        host TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
        opened_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        resolved_at REAL,
        cause TEXT,
        cause_name TEXT,
        probability REAL,
        symptoms TEXT NOT NULL DEFAULT '[]',   -- JSON list
        labels TEXT NOT NULL DEFAULT '{}',     -- JSON object
        bundle TEXT,
        diagnosed INTEGER NOT NULL DEFAULT 0   -- how many diagnoses were made for it
    );
    CREATE INDEX incidents_status ON incidents (status, opened_at);
    CREATE INDEX incidents_key ON incidents (key, status);
    CREATE INDEX incidents_opened ON incidents (opened_at);
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        text TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX events_incident ON events (incident_id, seq);
    CREATE TABLE diagnoses (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        at REAL NOT NULL,
        cause TEXT,
        probability REAL,
        report TEXT NOT NULL
    );
    CREATE INDEX diagnoses_incident ON diagnoses (incident_id, seq);
    CREATE TABLE alerts (
        fingerprint TEXT NOT NULL,
        incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        status TEXT NOT NULL,
        labels TEXT NOT NULL,
        starts_at TEXT,
        ends_at TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (incident_id, fingerprint)
    );
    CREATE TABLE notifications (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        at REAL NOT NULL,
        status TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        ref TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX notifications_incident ON notifications (incident_id, channel, seq);
    CREATE TABLE state (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
)


class StoreError(DdxError):
    """The store cannot be opened or written; the message says which file and why."""


def new_incident_id(at: float | None = None) -> str:
    """``20261206-093012-a1b2``: sortable by time, unique without the database."""
    t = time.gmtime(at if at is not None else time.time())
    return time.strftime("%Y%m%d-%H%M%S", t) + "-" + secrets.token_hex(2)


@dataclass
class Incident:
    id: str
    key: str
    source: str
    host: str
    title: str
    status: str
    opened_at: float
    updated_at: float
    resolved_at: float | None = None
    cause: str | None = None
    cause_name: str | None = None
    probability: float | None = None
    symptoms: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    bundle: str | None = None
    diagnosed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "key": self.key, "source": self.source, "host": self.host, "title": self.title,
            "status": self.status, "opened_at": _iso(self.opened_at), "updated_at": _iso(self.updated_at),
            "resolved_at": _iso(self.resolved_at) if self.resolved_at is not None else None,
            "cause": self.cause, "cause_name": self.cause_name, "probability": self.probability,
            "symptoms": list(self.symptoms), "labels": dict(self.labels), "bundle": self.bundle,
            "diagnosed": self.diagnosed,
        }


@dataclass(frozen=True)
class Event:
    incident_id: str
    at: float
    kind: str  # opened, symptom, cleared, diagnosis, cause-changed, resolved, alert, notified, note
    text: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "kind": self.kind, "text": self.text, "data": dict(self.data)}


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


_COLS = ("id, key, source, host, title, status, opened_at, updated_at, resolved_at, cause, cause_name, "
         "probability, symptoms, labels, bundle, diagnosed")


def _incident(row: Sequence[Any]) -> Incident:
    return Incident(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
                    row[11], json.loads(row[12] or "[]"), json.loads(row[13] or "{}"), row[14], int(row[15]))


class Store:
    """The incident database at ``path`` (created with its folder when missing)."""

    def __init__(self, path: str = DEFAULT_PATH, *, retention_days: float = 90.0, max_incidents: int = 100_000,
                 timeout: float = 5.0) -> None:
        self.path = path
        self.retention_days = retention_days
        self.max_incidents = max_incidents
        self._lock = threading.RLock()
        try:
            folder = os.path.dirname(os.path.abspath(path))
            os.makedirs(folder, mode=0o750, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"journal mode is {mode}, WAL refused")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"{path}: cannot open the incident store: {_reason(exc)}") from None

    # --- plumbing -----------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(f"{self.path}: schema version {version} is newer than this ddx knows "
                             f"({len(MIGRATIONS)}): upgrade ddx or use another --store")
        for n in range(version, len(MIGRATIONS)):
            # executescript commits what is pending first; the migration and its version go in one transaction
            self._db.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[n]}; PRAGMA user_version = {n + 1}; COMMIT;")

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """The statements in one transaction; StoreError with SQLite's reason when it fails."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    self._db.execute(sql, tuple(args))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                raise StoreError(f"{self.path}: cannot write: {_reason(exc)}") from None

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._lock:
                return list(self._db.execute(sql, tuple(args)).fetchall())
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot read: {_reason(exc)}") from None

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    # --- incidents ----------------------------------------------------------------------------

    def save_incident(self, inc: Incident) -> None:
        """Insert or replace the incident's own row (not its timeline)."""
        self._write([(
            f"INSERT INTO incidents ({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (id) DO UPDATE SET key=excluded.key, source=excluded.source, host=excluded.host, "
            "title=excluded.title, status=excluded.status, opened_at=excluded.opened_at, "
            "updated_at=excluded.updated_at, resolved_at=excluded.resolved_at, cause=excluded.cause, "
            "cause_name=excluded.cause_name, probability=excluded.probability, symptoms=excluded.symptoms, "
            "labels=excluded.labels, bundle=excluded.bundle, diagnosed=excluded.diagnosed",
            (inc.id, inc.key, inc.source, inc.host, inc.title, inc.status, inc.opened_at, inc.updated_at,
             inc.resolved_at, inc.cause, inc.cause_name, inc.probability, json.dumps(inc.symptoms),
             json.dumps(inc.labels, sort_keys=True), inc.bundle, inc.diagnosed),
        )])

    def get(self, incident_id: str) -> Incident | None:
        rows = self._read(f"SELECT {_COLS} FROM incidents WHERE id = ?", (incident_id,))
        return _incident(rows[0]) if rows else None

    def find_open(self, key: str) -> Incident | None:
        rows = self._read(f"SELECT {_COLS} FROM incidents WHERE key = ? AND status = 'open' "
                          "ORDER BY opened_at DESC LIMIT 1", (key,))
        return _incident(rows[0]) if rows else None

    def incidents(self, *, status: str | None = None, host: str | None = None, cause: str | None = None,
                  since: float | None = None, until: float | None = None, source: str | None = None,
                  limit: int = 100, offset: int = 0) -> list[Incident]:
        """Newest first, filtered."""
        where: list[str] = []
        args: list[Any] = []
        for col, value in (("status", status), ("host", host), ("cause", cause), ("source", source)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        if since is not None:
            where.append("opened_at >= ?")
            args.append(since)
        if until is not None:
            where.append("opened_at < ?")
            args.append(until)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = self._read(f"SELECT {_COLS} FROM incidents{clause} ORDER BY opened_at DESC, id DESC LIMIT ? OFFSET ?",
                          (*args, int(limit), int(offset)))
        return [_incident(r) for r in rows]

    def count(self, *, status: str | None = None) -> int:
        if status is None:
            return int(self._read("SELECT count(*) FROM incidents")[0][0])
        return int(self._read("SELECT count(*) FROM incidents WHERE status = ?", (status,))[0][0])

    # --- timeline, diagnoses, alerts, notifications ------------------------------------------

    def add_event(self, event: Event) -> None:
        self._write([("INSERT INTO events (incident_id, at, kind, text, data) VALUES (?,?,?,?,?)",
                      (event.incident_id, event.at, event.kind, event.text, json.dumps(dict(event.data))))])

    def events(self, incident_id: str) -> list[Event]:
        rows = self._read("SELECT incident_id, at, kind, text, data FROM events WHERE incident_id = ? ORDER BY seq",
                          (incident_id,))
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4] or "{}")) for r in rows]

    def add_diagnosis(self, incident_id: str, at: float, report: Mapping[str, Any]) -> None:
        top = (report.get("hypotheses") or [{}])[0] if isinstance(report.get("hypotheses"), list) else {}
        self._write([("INSERT INTO diagnoses (incident_id, at, cause, probability, report) VALUES (?,?,?,?,?)",
                      (incident_id, at, top.get("id"), top.get("probability"), json.dumps(dict(report))))])

    def diagnoses(self, incident_id: str) -> list[tuple[float, dict[str, Any]]]:
        rows = self._read("SELECT at, report FROM diagnoses WHERE incident_id = ? ORDER BY seq", (incident_id,))
        return [(r[0], json.loads(r[1])) for r in rows]

    def put_alert(self, incident_id: str, fingerprint: str, status: str, labels: Mapping[str, str],
                  starts_at: str | None, ends_at: str | None, at: float) -> None:
        self._write([(
            "INSERT INTO alerts (fingerprint, incident_id, status, labels, starts_at, ends_at, updated_at) "
            "VALUES (?,?,?,?,?,?,?) ON CONFLICT (incident_id, fingerprint) DO UPDATE SET status=excluded.status, "
            "labels=excluded.labels, starts_at=excluded.starts_at, ends_at=excluded.ends_at, "
            "updated_at=excluded.updated_at",
            (fingerprint, incident_id, status, json.dumps(dict(labels), sort_keys=True), starts_at, ends_at, at),
        )])

    def alerts(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT fingerprint, status, labels, starts_at, ends_at FROM alerts WHERE incident_id = ? "
                          "ORDER BY fingerprint", (incident_id,))
        return [{"fingerprint": r[0], "status": r[1], "labels": json.loads(r[2]), "starts_at": r[3],
                 "ends_at": r[4]} for r in rows]

    def add_notification(self, incident_id: str, channel: str, kind: str, at: float, status: str,
                         detail: str = "", ref: str = "") -> None:
        self._write([("INSERT INTO notifications (incident_id, channel, kind, at, status, detail, ref) "
                      "VALUES (?,?,?,?,?,?,?)", (incident_id, channel, kind, at, status, detail, ref))])

    def notifications(self, incident_id: str) -> list[dict[str, Any]]:
        rows = self._read("SELECT channel, kind, at, status, detail, ref FROM notifications WHERE incident_id = ? "
                          "ORDER BY seq", (incident_id,))
        return [{"channel": r[0], "kind": r[1], "at": _iso(r[2]), "status": r[3], "detail": r[4], "ref": r[5]}
                for r in rows]

    def notification_ref(self, incident_id: str, channel: str) -> str:
        """The reference a channel gave for the incident's first message (Slack's ts), or ''."""
        rows = self._read("SELECT ref FROM notifications WHERE incident_id = ? AND channel = ? AND ref != '' "
                          "ORDER BY seq LIMIT 1", (incident_id, channel))
        return str(rows[0][0]) if rows else ""

    # --- daemon state -------------------------------------------------------------------------

    def put_state(self, name: str, value: Any, at: float) -> None:
        self._write([("INSERT INTO state (name, value, updated_at) VALUES (?,?,?) ON CONFLICT (name) DO UPDATE "
                      "SET value=excluded.value, updated_at=excluded.updated_at", (name, json.dumps(value), at))])

    def get_state(self, name: str) -> Any:
        rows = self._read("SELECT value FROM state WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    # --- retention ----------------------------------------------------------------------------

    def prune(self, now: float) -> int:
        """Delete resolved incidents older than ``retention_days`` and, past
        ``max_incidents``, the oldest resolved ones; open incidents are kept.
        Returns how many were deleted."""
        before = self.count()
        cutoff = now - self.retention_days * 86400.0
        self._write([
            ("DELETE FROM incidents WHERE status = 'resolved' AND COALESCE(resolved_at, opened_at) < ?", (cutoff,)),
            ("DELETE FROM incidents WHERE id IN (SELECT id FROM incidents WHERE status = 'resolved' "
             "ORDER BY opened_at DESC LIMIT -1 OFFSET ?)", (self.max_incidents,)),
        ])
        return before - self.count()


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "disk is full" in text or "No space left" in text:
        return f"{text} (the disk is full)"
    return text
