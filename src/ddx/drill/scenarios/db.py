"""Database faults in the sandbox stack's PostgreSQL: slots, locks and id space.

Each fault is made the way it happens in production, by a client of the
database rather than by reconfiguring it: a batch job that leaks connections,
a migration queued behind an idle transaction, a table whose int4 ids run out.
The app (one persistent connection per gunicorn worker, an INSERT into
``visits`` on every page view) meets each of them through its ordinary work.
Everything runs against the sandbox's own server; the processes a fault needs
are started with ``stack.sb.spawn`` so the clean-up finds them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from ddx.drill.sandbox import SandboxError
from ddx.drill.scenarios import Scenario, register
from ddx.drill.stack import APP_USER, DB_PASSWORD, SYSTEM_PYTHON, Stack

INT4_MAX = 2**31 - 1
# Client names the fault's own sessions give themselves (application_name), so
# the injection can tell them from the app's sessions.
BATCH_NAME = "nightly-export"
BLOCKER_NAME = "daily-report"
MIGRATION_NAME = "migrate"


def _wait_until(check: Callable[[], bool], timeout: float = 20.0, step: float = 0.1) -> bool:
    """Poll ``check`` until it holds or ``timeout`` passes; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except (OSError, ValueError, SandboxError):  # a query that failed this time: ask again
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def _log_has(path: Path, *words: str) -> Callable[[], bool]:
    def check() -> bool:
        text = path.read_text(errors="replace")
        return any(w in text for w in words)
    return check


def _app_conninfo(stack: Stack, application_name: str) -> str:
    """A libpq URI for the app's role, without the password (it goes to PGPASSWORD)."""
    return f"postgresql://app@127.0.0.1:{stack.ports['postgres']}/drill?application_name={application_name}"


def _psql(stack: Stack) -> str:
    return str(stack.pg_bin / "psql")


def _int(text: str) -> int:
    return int(text.strip() or 0)


# --- db-connection-exhaustion ---------------------------------------------------------

# A batch job with a connection leak: each unit of work opens a connection and
# never closes it; when the server refuses, it waits a moment and tries again
# (a retrying client), so it takes every slot that comes free.
_LEAKY_JOB = """\
import sys, time
import psycopg2

held = []
while True:
    try:
        c = psycopg2.connect(sys.argv[1], connect_timeout=3)
        c.cursor().execute("SELECT count(*) FROM items")
        held.append(c)  # the leak: never closed, never reused
    except psycopg2.OperationalError as exc:
        print("export: could not connect (%d held): %s" % (len(held), str(exc).strip().splitlines()[0]), flush=True)
        time.sleep(0.05)
"""


def _client_sessions(stack: Stack, where: str) -> int:
    return _int(stack.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                          f"AND usename = 'app' AND {where}"))


def _exhaust_connections(stack: Stack) -> None:
    """A leaky batch job takes every connection slot the app's role may use; then
    the app's sessions are cut (as a failover or a DBA's clean-up would) and its
    workers, reconnecting, are refused."""
    job_dir = stack.sb.path("jobs")
    script = job_dir / "export_job.py"
    script.write_text(_LEAKY_JOB)
    os.chmod(script, 0o644)
    stack.sb.spawn([SYSTEM_PYTHON, str(script), _app_conninfo(stack, BATCH_NAME)], user=APP_USER,
                   env={"PGPASSWORD": DB_PASSWORD}, log=job_dir / "export_job.log", cwd=job_dir)
    usable = _int(stack.sql("SELECT current_setting('max_connections')::int - "
                            "current_setting('superuser_reserved_connections')::int"))
    # full: the job holds what the app does not
    _wait_until(lambda: _client_sessions(stack, "true") >= usable, timeout=20)
    refused = _log_has(stack.app_log, "too many clients", "remaining connection slots are reserved")
    for _ in range(10):  # the app may win a freed slot back; then its sessions are cut again
        stack.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                  f"AND usename = 'app' AND application_name NOT IN ('{BATCH_NAME}', 'ddx')")
        if _wait_until(refused, timeout=2.0):
            return


register(Scenario(
    name="db-connection-exhaustion",
    expected="db-connection-exhaustion",
    summary="a batch job leaks PostgreSQL connections until every slot is taken; the app's workers, cut off "
            "and reconnecting, are refused (\"remaining connection slots are reserved\")",
    inject=_exhaust_connections,
))


# --- db-lock-contention ---------------------------------------------------------------

# A report script that reads in a transaction and then waits on something else
# (psycopg2 opens a transaction at the first statement and keeps it until
# commit): its session stays "idle in transaction" with its locks held.
_FORGOTTEN_TRANSACTION = """\
import sys, time
import psycopg2

conn = psycopg2.connect(sys.argv[1], connect_timeout=3)
cur = conn.cursor()
cur.execute("SELECT count(*) FROM visits")
print("report: %d visits so far; waiting for the upstream export" % cur.fetchone()[0], flush=True)
time.sleep(86400)
"""


def _lock_contention(stack: Stack) -> None:
    """A reporting script reads ``visits`` in a transaction it never ends (idle in
    transaction, holding its ACCESS SHARE lock); a migration's ALTER TABLE queues
    for ACCESS EXCLUSIVE behind it, and every INSERT of the app queues behind the
    migration: page views hang until nginx gives up on them."""
    d = stack.sb.path("jobs")
    env = {"PGPASSWORD": DB_PASSWORD}
    script = d / "report.py"
    script.write_text(_FORGOTTEN_TRANSACTION)
    os.chmod(script, 0o644)
    stack.sb.spawn([SYSTEM_PYTHON, str(script), _app_conninfo(stack, BLOCKER_NAME)], user=APP_USER, env=env,
                   log=d / "report.log", cwd=d)
    _wait_until(lambda: _int(stack.sql(
        f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{BLOCKER_NAME}' "
        "AND state = 'idle in transaction'")) > 0, timeout=10)
    stack.sb.spawn([_psql(stack), "-X", "-q", _app_conninfo(stack, MIGRATION_NAME), "-c",
                    "ALTER TABLE visits ADD COLUMN referrer text"], env=env, log=d / "migrate.log", cwd=d)
    # the app's INSERTs queue behind the migration (PostgreSQL logs the waits after deadlock_timeout)
    _wait_until(lambda: _client_sessions(stack, f"wait_event_type = 'Lock' AND application_name <> '{MIGRATION_NAME}'")
                >= 2, timeout=10)
    _wait_until(_log_has(stack.pg_log, "still waiting for"), timeout=5)


register(Scenario(
    name="db-lock-contention",
    expected="db-lock-contention",
    summary="an idle-in-transaction session holds a lock on visits; a migration's ALTER TABLE waits for it and "
            "every page view's INSERT queues behind the migration (requests hang, nginx 504s)",
    inject=_lock_contention,
))


# --- db-id-overflow -------------------------------------------------------------------


def _id_overflow(stack: Stack) -> None:
    """``visits`` has served 2^31 page views: its int4 sequence is a few dozen
    values from the top (time is fast-forwarded with setval, the only change), and
    once they are used every page view's INSERT fails."""
    stack.sql(f"SELECT setval('visits_id_seq', {INT4_MAX - 20})")
    _wait_until(_log_has(stack.app_log, "reached maximum value of sequence", "out of range"), timeout=20)


register(Scenario(
    name="db-id-overflow",
    expected="db-id-overflow",
    summary="the int4 id sequence of visits reaches 2^31-1: every page view's INSERT fails "
            "(\"nextval: reached maximum value of sequence\")",
    inject=_id_overflow,
))
