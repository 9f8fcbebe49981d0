"""Drill: the database scenarios on the real sandbox stack (PostgreSQL from Debian).

Each test runs a scenario end to end with ``run_scenario``: stack up, fault in,
ddx diagnosing until right, everything removed. While the broken stack is still
up (``hold``) the test records what a user would check by hand: the findings of
a full ``ddx diagnose --json`` and the fault's own symptoms (the load
generator's failures, the database's sessions).
"""

from __future__ import annotations

from typing import Any

import pytest
from drillcheck import diagnose_json, present, run_passing

from ddx.drill.stack import Stack

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _evidence(stack: Stack, _started: float, _budget: float) -> dict[str, Any]:
    """What the broken stack shows, read before it is torn down."""
    out = diagnose_json(stack)
    return {
        "present": present(out),
        "load": stack.load_stats(),
        "waiting": int(stack.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")),
        "clients": int(stack.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                 "AND usename = 'app'")),
        "app_log": stack.app_log.read_text(errors="replace"),
        "pg_log": stack.pg_log.read_text(errors="replace"),
    }




def test_connection_exhaustion(drill_ready: None) -> None:
    res = run_passing("db-connection-exhaustion", _evidence)
    ev = res.extra
    assert {"svc.db_connections_near_max", "logs.too_many_db_connections", "http.5xx_rate_high"} <= set(ev["present"])
    assert "remaining connection slots are reserved" in ev["app_log"] or "too many clients" in ev["app_log"]
    assert ev["load"]["total"].get("500", 0) > 0  # the users saw it


def test_lock_contention(drill_ready: None) -> None:
    res = run_passing("db-lock-contention", _evidence)
    ev = res.extra
    assert "svc.db_locks_blocked" in ev["present"]
    assert ev["waiting"] >= 2  # the migration and the app's INSERTs behind it
    assert "still waiting for AccessExclusiveLock" in ev["pg_log"]
    assert "svc.db_connections_near_max" not in ev["present"]


def test_id_overflow(drill_ready: None) -> None:
    res = run_passing("db-id-overflow", _evidence)
    ev = res.extra
    assert {"svc.db_sequence_near_max", "logs.integer_out_of_range"} <= set(ev["present"])
    assert "reached maximum value of sequence" in ev["app_log"]
    assert ev["load"]["total"].get("500", 0) > 0
