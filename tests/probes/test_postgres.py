"""PostgreSQL probe: parsers and judgement on samples, then a real server
(Debian's postgresql, started once for the module on a free loopback port,
as the ``postgres`` user in a temp dir) with real faults: full connection
slots, a session blocked behind an open transaction, an integer id column
fed by a bigint sequence near 2^31, wrong password, a port that never answers."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.drill.sandbox import free_port as _free_port
from ddx.engine.diagnosis import diagnose
from ddx.host import LiveHost
from ddx.kb.loader import load_kb
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.services.postgres import (
    PgTarget,
    Reading,
    judge,
    parse_connect_error,
    parse_postmaster_pid,
    parse_psql_output,
    pg_target_from_url,
)

BIN = Path("/usr/lib/postgresql/15/bin")

# --- pure parts --------------------------------------------------------------------


def test_target_url_keeps_the_password_out_of_argv() -> None:
    t = pg_target_from_url("postgresql://app:s3cr%40t@db.example:6543/shop?sslmode=require")
    assert t.password == "s3cr@t"
    assert "s3cr" not in t.conninfo and "s3cr" not in t.name
    assert t.conninfo == "postgresql://app@db.example:6543/shop?sslmode=require&connect_timeout=2&application_name=ddx"
    assert t.name == "postgresql://app:***@db.example:6543/shop?sslmode=require" and t.local_port == 6543
    assert pg_target_from_url("postgres:///db?host=/run/postgresql").local_port == 5432
    with pytest.raises(ValueError, match=r"redis://u:\*\*\*@h"):
        pg_target_from_url("redis://u:pw@h")
    with pytest.raises(ValueError, match="user-info"):
        pg_target_from_url("postgresql://h/db?password=x")


def test_parse_postmaster_pid() -> None:
    text = "6334\n/var/lib/postgresql/15/main\n1795330989\n5432\n/var/run/postgresql\n*\n  2146468   4\nready   \n"
    assert parse_postmaster_pid(text) == {
        "pid": 6334, "datadir": "/var/lib/postgresql/15/main", "port": 5432,
        "socket_dir": "/var/run/postgresql", "listen": "*",
    }
    assert parse_postmaster_pid("garbage") == {}


@pytest.mark.parametrize(("stderr", "kind", "words"), [
    ('psql: error: connection to server at "127.0.0.1", port 5499 failed: FATAL:  password authentication failed for user "app"\n',
     "auth", 'password authentication failed for user "app"'),
    ('psql: error: connection to server at "127.0.0.1", port 5499 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n',
     "refused", "Connection refused"),
    ('psql: error: connection to server at "127.0.0.1", port 5499 failed: FATAL:  sorry, too many clients already\n',
     "too_many", "too many clients"),
    ('psql: error: connection to server at "127.0.0.1", port 5499 failed: FATAL:  remaining connection slots are reserved for non-replication superuser connections\n',
     "too_many", "remaining connection slots"),
    ('psql: error: connection to server at "127.0.0.1", port 5499 failed: timeout expired\n', "timeout", "timeout expired"),
])
def test_parse_connect_error(stderr: str, kind: str, words: str) -> None:
    err = parse_connect_error(stderr)
    assert err.kind == kind and words in str(err)


def test_parse_psql_output_files_errors_by_part() -> None:
    out = '{"part": "settings", "in_recovery": false}\n{"part": "sequences", "count": 0, "top": null}\n'
    err = "@@ddx:settings\n@@ddx:activity\nERROR:  canceling statement due to statement timeout\n@@ddx:sequences\n"
    parts, errors = parse_psql_output(out, err)
    assert set(parts) == {"settings", "sequences"} and errors == {"activity": "canceling statement due to statement timeout"}


T = PgTarget("pg-test", "host=x")


def _judged(parts: dict, **opt: object) -> dict[str, tuple[bool, list[str]]]:
    out: dict[str, tuple[bool, list[str]]] = {}
    for fid, present, ev in judge(Reading(T, parts), opt):
        p, s = out.get(fid, (False, []))
        out[fid] = (p or present, [*s, ev.summary])
    return out


def test_standby_lag_and_roles() -> None:
    standby = {"settings": {"in_recovery": True, "settings": {}, "has_primary_conninfo": True, "has_restore_command": False}}
    # caught up: replay age of an idle primary is not lag
    j = _judged({**standby, "replication": {"in_recovery": True, "receiver": [{"status": "streaming", "msg_age_s": 1}],
                                            "replay_age_s": 4000, "caught_up": True}})
    assert j["svc.db_replication_lag_high"][0] is False
    assert "svc.db_readonly" not in j  # a standby by design is not judged in auto mode
    j = _judged({**standby, "replication": {"in_recovery": True, "receiver": None, "replay_age_s": 90, "caught_up": False}})
    assert j["svc.db_replication_lag_high"][0] is True
    assert "not connected to its primary" in j["svc.db_replication_lag_high"][1][0]
    j = _judged(standby | {"replication": {"in_recovery": True}}, role="primary")
    assert j["svc.db_readonly"][0] is True
    orphan = {"settings": {"in_recovery": True, "settings": {}, "has_primary_conninfo": False, "has_restore_command": False}}
    assert _judged({**orphan, "replication": {"in_recovery": True}})["svc.db_readonly"][0] is True


def test_primary_replicas_and_slots() -> None:
    base = {"settings": {"in_recovery": False, "settings": {"default_transaction_read_only": "off"}}}
    assert "svc.db_replication_lag_high" not in _judged({**base, "replication": {"in_recovery": False}})
    ok = {"replicas": [{"application_name": "r1", "state": "streaming", "replay_lag_s": 0.2}],
          "slots": [{"slot_name": "r1", "slot_type": "physical", "active": True}]}
    assert _judged({**base, "replication": ok})["svc.db_replication_lag_high"][0] is False
    lag = {"replicas": [{"application_name": "r1", "state": "streaming", "replay_lag_s": 120.0}]}
    assert _judged({**base, "replication": lag})["svc.db_replication_lag_high"][0] is True
    dead = {"slots": [{"slot_name": "r2", "slot_type": "physical", "active": False, "retained_bytes": 5 << 30}]}
    j = _judged({**base, "replication": dead})
    assert j["svc.db_replication_lag_high"][0] is True and "5120 MB" in j["svc.db_replication_lag_high"][1][0]
    assert j["svc.db_readonly"][0] is False


def test_sequence_limited_by_its_column_type() -> None:
    row = {"name": "public.s", "seq_type": "bigint", "last_value": 2_000_000_000, "max_value": 2**63 - 1,
           "min_value": 1, "increment_by": 1, "columns": "t.id integer", "col_max": 2**31 - 1}
    j = _judged({"sequences": {"count": 1, "top": [row]}})
    assert j["svc.db_sequence_near_max"][0] is True and "t.id integer" in j["svc.db_sequence_near_max"][1][0]
    j = _judged({"sequences": {"count": 1, "top": [{**row, "columns": "t.id bigint", "col_max": 2**63 - 1}]}})
    assert j["svc.db_sequence_near_max"][0] is False


# --- a real server -----------------------------------------------------------------




@dataclass
class Pg:
    dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    clients: list[subprocess.Popen[bytes]]

    @property
    def super_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def app_url(self, password: str = "apppw", db: str = "postgres") -> str:
        return f"postgresql://app:{password}@127.0.0.1:{self.port}/{db}"

    def sql(self, sql: str) -> str:
        r = subprocess.run([str(BIN / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", "-c", sql],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def client(self, sql: str | None, user: str = "app", stdin_sql: str | None = None) -> subprocess.Popen[bytes]:
        """A psql session left running (killed at the end of the test)."""
        argv = [str(BIN / "psql"), "-X", "-q", f"host=127.0.0.1 port={self.port} user={user} dbname=postgres"]
        if sql:
            argv += ["-c", sql]
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True, env={**os.environ, "PGPASSWORD": "apppw"})
        if stdin_sql:
            assert p.stdin is not None
            p.stdin.write(stdin_sql.encode())
            p.stdin.flush()
        self.clients.append(p)
        return p

    def stop_clients(self) -> None:
        for p in self.clients:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        self.clients.clear()
        # a backend notices its dead client only when it next talks to it: end them
        self.sql("select count(pg_terminate_backend(pid)) from pg_stat_activity "
                 "where backend_type = 'client backend' and pid <> pg_backend_pid()")
        self.wait_for("select count(*) from pg_stat_activity where backend_type = 'client backend' "
                      "and pid <> pg_backend_pid()", "0")

    def wait_for(self, sql: str, want: str) -> None:
        deadline = time.monotonic() + 15
        while self.sql(sql) != want:
            assert time.monotonic() < deadline, f"{sql} never gave {want}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def pg() -> Iterator[Pg]:
    if os.geteuid() != 0:
        pytest.skip("needs root (starts PostgreSQL as the postgres user)")
    if not (BIN / "postgres").exists() or shutil.which("runuser") is None:
        pytest.skip("postgresql 15 is not installed (apt-get install postgresql)")
    try:
        import pwd

        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres system user")
    d = Path(tempfile.mkdtemp(prefix="ddx-pg-"))
    os.chmod(d, 0o755)
    shutil.chown(d, "postgres")
    port = _free_port()
    proc = None
    server = None
    try:
        subprocess.run(["runuser", "-u", "postgres", "--", str(BIN / "initdb"), "-D", str(d / "data"), "-U", "postgres",
                        "-A", "trust", "--no-sync"], check=True, capture_output=True, timeout=60, cwd=d)
        with open(d / "data" / "postgresql.conf", "a") as f:
            f.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{d}'\n"
                    "max_connections = 10\nsuperuser_reserved_connections = 3\nfsync = off\nshared_buffers = 16MB\n")
        (d / "data" / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        proc = subprocess.Popen(["runuser", "-u", "postgres", "--", str(BIN / "postgres"), "-D", str(d / "data")],
                                stdout=subprocess.DEVNULL, stderr=open(d / "log", "wb"), start_new_session=True, cwd=d)
        server = Pg(d, port, proc, [])
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run([str(BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
            if r.returncode == 0:
                break
            assert proc.poll() is None and time.monotonic() < deadline, (d / "log").read_text()
            time.sleep(0.1)
        server.sql("CREATE DATABASE ro")
        server.sql("CREATE DATABASE clean")  # no id column near its maximum: one fault at a time
        server.sql("CREATE ROLE app LOGIN PASSWORD 'apppw'; "
                   "ALTER DATABASE ro SET default_transaction_read_only = on; "
                   "CREATE TABLE t (x int); GRANT ALL ON t TO app; "
                   # an integer column fed by a bigint sequence, 2.1e9 of 2^31-1 used: overflows soon
                   "CREATE SEQUENCE legacy_seq; CREATE TABLE legacy (id integer PRIMARY KEY DEFAULT nextval('legacy_seq')); "
                   "SELECT setval('legacy_seq', 2100000000); "
                   # the same count in a bigint column: plenty of room
                   "CREATE TABLE roomy (id bigserial PRIMARY KEY); SELECT setval('roomy_id_seq', 2100000000)")
        yield server
    finally:
        if server is not None:
            for p in server.clients:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)  # fast shutdown: backends end, shared memory is released
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.rmtree(d, ignore_errors=True)


def run_pg(opts: dict) -> tuple[str, dict, str, float]:
    t0 = time.monotonic()
    c = run_probes(LiveHost(), Config(probes={"postgres": opts}), only=["postgres"])
    (res,) = c.results
    return res.status, {f.id: f for f in c.findings}, res.reason, time.monotonic() - t0


def top(findings: dict) -> str:
    diag = diagnose(load_kb(), list(findings.values()))
    return diag.hypotheses[0].id + " " + str([(h.id, round(h.probability, 3)) for h in diag.hypotheses[:3]])


@pytest.mark.root
def test_id_column_near_its_type_max(pg: Pg) -> None:
    status, f, reason, _ = run_pg({"targets": [pg.super_url], "discover": False})
    assert status == "ok", reason
    seq = f["svc.db_sequence_near_max"]
    assert seq.state is State.PRESENT
    ev = seq.evidence[0]
    assert ev.count == 1 and "legacy_seq" in ev.summary and "legacy.id integer" in ev.summary
    assert not any("roomy" in s for s in ev.samples)
    assert f["svc.db_locks_blocked"].state is State.ABSENT
    assert f["svc.db_connections_near_max"].state is State.ABSENT
    assert f["svc.db_readonly"].state is State.ABSENT and f["svc.down"].state is State.ABSENT
    assert "svc.db_replication_lag_high" not in f  # a primary without replicas: nothing measured
    assert top(f).startswith("db-id-overflow")


@pytest.mark.root
def test_session_blocked_behind_an_open_transaction(pg: Pg) -> None:
    try:
        pg.client(None, stdin_sql="BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;\n")
        pg.wait_for("select count(*) from pg_locks where relation = 't'::regclass and mode = 'AccessExclusiveLock' and granted", "1")
        waiter = pg.client("SELECT count(*) FROM t")
        pg.wait_for("select count(*) from pg_stat_activity where wait_event_type = 'Lock'", "1")
        time.sleep(1.1)
        # as the unprivileged app user, with its password from the URL (sent through PGPASSWORD)
        status, f, reason, _ = run_pg({"targets": [pg.app_url()], "discover": False, "long_transaction_seconds": 1})
        assert status == "ok", reason
        locks = f["svc.db_locks_blocked"]
        assert locks.state is State.PRESENT
        ev = locks.evidence[0]
        assert ev.count == 1 and "SELECT count(*) FROM t" in ev.samples[0] and "idle in transaction" in ev.samples[0]
        assert ev.source == f"postgresql://app:***@127.0.0.1:{pg.port}/postgres"
        assert any("open longer than 1 s" in e.summary for e in locks.evidence[1:])
        assert "apppw" not in repr(f)
        assert waiter.poll() is None
        assert top(f).startswith("db-lock-contention"), top(f)
    finally:
        pg.stop_clients()


@pytest.mark.root
def test_connection_slots_full(pg: Pg) -> None:
    try:
        # 10 slots, 3 reserved for superusers: 7 for app. A client that lost the
        # race for a slot to the polling superuser connection is started again.
        sessions = [pg.client("SELECT pg_sleep(60)") for _ in range(7)]
        deadline = time.monotonic() + 20
        while pg.sql("select count(*) from pg_stat_activity where usename = 'app'") != "7":
            assert time.monotonic() < deadline, "the 7 app sessions never all connected"
            sessions = [p if p.poll() is None else pg.client("SELECT pg_sleep(60)") for p in sessions]
            time.sleep(0.1)
        # the superuser still gets in (reserved slot) and counts the others
        status, f, reason, _ = run_pg({"targets": [f"postgresql://postgres@127.0.0.1:{pg.port}/clean"], "discover": False})
        assert status == "ok", reason
        conn = f["svc.db_connections_near_max"]
        assert conn.state is State.PRESENT and conn.evidence[0].count == 7 and conn.evidence[0].value == 100.0
        assert top(f).startswith("db-connection-exhaustion"), top(f)
        # an ordinary user is turned away: that refusal is the finding
        status, f, reason, _ = run_pg({"targets": [pg.app_url()], "discover": False})
        assert status == "ok", reason
        conn = f["svc.db_connections_near_max"]
        assert conn.state is State.PRESENT and "connection slots are reserved" in conn.evidence[0].summary
        assert f["svc.down"].state is State.ABSENT
    finally:
        pg.stop_clients()


@pytest.mark.root
def test_discovered_server_read_through_its_socket_as_the_owner(pg: Pg) -> None:
    status, f, reason, _ = run_pg({"discover": True})
    assert status == "ok", reason
    ours = f"postgres pid {pg.proc.pid}"
    # runuser's pid is the group leader: the postmaster is its child
    children = Path(f"/proc/{pg.proc.pid}/task/{pg.proc.pid}/children").read_text().split()
    ours_any = [ours] + [f"postgres pid {c}" for c in children]
    evs = [e for e in f["svc.db_sequence_near_max"].evidence if any(e.source.startswith(o + " ") for o in ours_any)]
    assert evs and "legacy_seq" in evs[0].summary and str(pg.dir) in evs[0].source


@pytest.mark.root
def test_read_only_database_that_should_take_writes(pg: Pg) -> None:
    status, f, reason, _ = run_pg({"targets": [f"postgresql://postgres@127.0.0.1:{pg.port}/ro"], "discover": False})
    assert status == "ok", reason
    ro = f["svc.db_readonly"]
    assert ro.state is State.PRESENT and "default_transaction_read_only = on" in ro.evidence[0].summary
    status, f, reason, _ = run_pg({"targets": [f"postgresql://postgres@127.0.0.1:{pg.port}/ro"], "discover": False, "role": "replica"})
    assert "svc.db_readonly" not in f


@pytest.mark.root
def test_wrong_password_and_a_working_target(pg: Pg) -> None:
    bad = pg.app_url("nope")
    status, f, reason, _ = run_pg({"targets": [bad], "discover": False})
    assert status == "failed"
    assert reason.removeprefix("ProbeError: ") == (f"could not probe postgresql://app:***@127.0.0.1:{pg.port}/postgres: "
                      'password authentication failed for user "app"')
    # with a second target that works: its findings, and the failure in the absent findings' evidence
    status, f, reason, _ = run_pg({"targets": [bad, pg.super_url], "discover": False})
    assert status == "ok", reason
    assert any("password authentication failed" in e.summary for e in f["svc.db_locks_blocked"].evidence)
    assert "nope" not in repr(f)


def test_refused_and_hanging_ports() -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed (postgresql-client)")
    closed = _free_port()
    status, f, reason, _ = run_pg({"targets": [f"postgresql://app:pw@127.0.0.1:{closed}/db"], "discover": False})
    assert status == "ok", reason
    assert f["svc.down"].state is State.PRESENT and "refuses connections" in f["svc.down"].evidence[0].summary

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accept and never answer
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(srv.accept()[0])

    th = threading.Thread(target=accept, daemon=True)
    th.start()
    try:
        status, f, reason, took = run_pg({"targets": [f"postgresql://app:pw@127.0.0.1:{port}/db"], "discover": False})
        assert status == "failed" and reason.removeprefix("ProbeError: ") == f"could not probe postgresql://app:***@127.0.0.1:{port}/db: " \
            "no answer within the connect timeout (timeout expired)"
        assert took < 4.5
    finally:
        stop.set()
        th.join()
        for c in held:
            c.close()
        srv.close()
