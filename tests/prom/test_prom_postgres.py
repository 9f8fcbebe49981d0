"""postgres_exporter (Debian package, 0.11) against a real PostgreSQL, scraped by a real
Prometheus: the server up, then its slots for ordinary roles nearly all taken, then stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "probes"))

from promstack import PromStack, free_port, missing_tools, wait_port  # noqa: E402
from test_postgres import Pg, pg  # noqa: E402,F401 - the real server fixture of the postgres probe's tests
from test_prom_live import ddx  # noqa: E402

PG_EXPORTER = "/usr/bin/prometheus-postgres-exporter"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_tools(PG_EXPORTER)), reason=f"needs {', '.join(missing_tools(PG_EXPORTER))}"),
]


@pytest.fixture(scope="module")
def prom(pg: Pg) -> Iterator[tuple[PromStack, str]]:  # noqa: F811 - the fixture imported above
    with tempfile.TemporaryDirectory(prefix="ddx-prom-pg-") as tmp:
        stack = PromStack(Path(tmp))
        try:
            port = free_port()
            env_dsn = f"postgresql://postgres@127.0.0.1:{pg.port}/postgres?sslmode=disable"
            with open(Path(tmp) / "pg-exporter.log", "ab") as log:
                p = subprocess.Popen([PG_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                     env={**os.environ, "DATA_SOURCE_NAME": env_dsn})
            stack.procs.append(("pg-exporter", p))
            wait_port(port, "postgres_exporter", p)
            address = f"127.0.0.1:{port}"
            stack.target("postgres", address)
            stack.prometheus()
            stack.wait_until(f'count_over_time(pg_up{{instance="{address}"}}[1m]) >= 3', "pg_up scraped")
            yield stack, address
        finally:
            stack.close()


def diagnose(url: str, instance: str) -> dict[str, str]:
    r = ddx("diagnose", "--prometheus", url, "--instance", instance, "--window", "20s", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    return {f["id"]: f["state"] for f in out["findings"]}


def test_postgres_connections_near_max_then_down(pg: Pg, prom: tuple[PromStack, str]) -> None:  # noqa: F811
    stack, address = prom
    s = diagnose(stack.url, address)
    assert s["svc.down"] == "absent" and s["svc.db_connections_near_max"] == "absent"
    # max_connections 10 with 3 reserved: 7 slots for ordinary roles, which app sessions fill beside
    # the exporter's own (it keeps two or three); a client turned away is started again
    busy = ("select count(*) >= 7 from pg_stat_activity where backend_type = 'client backend' "
            "and pid <> pg_backend_pid()")
    sessions = [pg.client("SELECT pg_sleep(120)") for _ in range(7)]
    deadline = time.monotonic() + 30
    while pg.sql(busy) != "t":
        assert time.monotonic() < deadline, pg.sql("select usename, state from pg_stat_activity")
        sessions = [p if p.poll() is None else pg.client("SELECT pg_sleep(120)") for p in sessions]
        time.sleep(0.1)
    stack.wait_until(f'sum(pg_stat_activity_count{{instance="{address}"}}) >= 7', "sessions counted")
    s = diagnose(stack.url, address)
    assert s["svc.db_connections_near_max"] == "present"
    pg.stop_clients()
    stack.wait_until(f'sum(pg_stat_activity_count{{instance="{address}"}}) <= 2', "sessions gone")
    # the server stops: postgres_exporter 0.11 then fails the whole scrape (HTTP 500), so no
    # pg_up 0 comes; the target that exported pg_up a moment ago is down
    os.killpg(pg.proc.pid, signal.SIGINT)  # fast shutdown (the fixture's own way); its clean-up finds it gone
    pg.proc.wait(timeout=30)
    stack.wait_until(f'up{{instance="{address}"}} == 0 or pg_up{{instance="{address}"}} == 0', "postgres gone",
                     timeout=30)
    r = ddx("diagnose", "--prometheus", stack.url, "--instance", address, "--window", "20s", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    down = next(f for f in out["findings"] if f["id"] == "svc.down")
    assert down["state"] == "present"
    assert "pg_up" in down["evidence"][0]["source"]
