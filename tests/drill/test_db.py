"""Drill: the database scenarios on the real sandbox stack (PostgreSQL from Debian).

Each test runs a scenario end to end with ``run_scenario``: stack up, fault in,
ddx diagnosing until right, everything removed. While the broken stack is still
up (``hold``) the test records what a user would check by hand: the findings of
a full ``ddx diagnose --json`` and the fault's own symptoms (the load
generator's failures, the database's sessions).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ddx.drill.runner import DrillResult, run_scenario
from ddx.drill.scenarios import all_scenarios
from ddx.drill.stack import Stack

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _evidence(stack: Stack, _started: float, _budget: float) -> dict[str, Any]:
    """What the broken stack shows, read before it is torn down."""
    r = subprocess.run([sys.executable, "-m", "ddx", "diagnose", "--json", "--config", str(stack.dir / "ddx.toml")],
                       capture_output=True, text=True, timeout=90)
    out = json.loads(r.stdout)
    return {
        "present": sorted(f["id"] for f in out["findings"] if f["state"] == "present"),
        "load": stack.load_stats(),
        "waiting": int(stack.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")),
        "clients": int(stack.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                                 "AND usename = 'app'")),
        "app_log": stack.app_log.read_text(errors="replace"),
        "pg_log": stack.pg_log.read_text(errors="replace"),
    }


def _run(name: str) -> DrillResult:
    res = run_scenario(all_scenarios()[name], budget=30.0, hold=_evidence)
    assert not res.error, res.error
    assert res.cleanup_problems == []
    assert not Path(res.sandbox).exists(), "the sandbox was not removed"
    assert res.passed and res.top3[0][0] == name, res.top3
    assert res.time_to_correct_s is not None and res.time_to_correct_s <= 30.0
    return res


def test_connection_exhaustion(drill_ready: None) -> None:
    res = _run("db-connection-exhaustion")
    ev = res.extra
    assert {"svc.db_connections_near_max", "logs.too_many_db_connections", "http.5xx_rate_high"} <= set(ev["present"])
    assert "remaining connection slots are reserved" in ev["app_log"] or "too many clients" in ev["app_log"]
    assert ev["load"]["total"].get("500", 0) > 0  # the users saw it


def test_lock_contention(drill_ready: None) -> None:
    res = _run("db-lock-contention")
    ev = res.extra
    assert "svc.db_locks_blocked" in ev["present"]
    assert ev["waiting"] >= 2  # the migration and the app's INSERTs behind it
    assert "still waiting for AccessExclusiveLock" in ev["pg_log"]
    assert "svc.db_connections_near_max" not in ev["present"]


def test_id_overflow(drill_ready: None) -> None:
    res = _run("db-id-overflow")
    ev = res.extra
    assert {"svc.db_sequence_near_max", "logs.integer_out_of_range"} <= set(ev["present"])
    assert "reached maximum value of sequence" in ev["app_log"]
    assert ev["load"]["total"].get("500", 0) > 0
