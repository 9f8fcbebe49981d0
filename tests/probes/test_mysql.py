"""MariaDB/MySQL probe: parsers and judgement on samples, then a real MariaDB
(Debian's mariadb-server, started once for the module in a temp dir on a free
loopback port) with real faults: full connection slots, a row lock wait, an
INT auto-increment near 2^31-1, a replica whose primary is gone, wrong password."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
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
from ddx.probes.services.mysql import (
    MyTarget,
    Reading,
    column_max,
    judge,
    my_target_from_url,
    parse_batch,
    parse_connect_error,
    parse_sections,
    parse_vertical,
)

MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"

# --- pure parts --------------------------------------------------------------------


def test_column_max() -> None:
    assert column_max("int", "int(11)") == 2**31 - 1
    assert column_max("int", "int(10) unsigned") == 2**32 - 1
    assert column_max("bigint", "bigint(20) unsigned") == 2**64 - 1
    assert column_max("tinyint", "tinyint(4)") == 127 and column_max("mediumint", "mediumint(9)") == 8388607
    assert column_max("decimal", "decimal(20,0)") is None


def test_target_url() -> None:
    t = my_target_from_url("mysql://app:p%40ss@db.example:3307/shop")
    assert t.password == "p@ss" and t.name == "mysql://app:***@db.example:3307/shop"
    assert t.args == ("--no-defaults", "--protocol=TCP", "-h", "db.example", "-P", "3307", "-u", "app", "-D", "shop")
    assert not any("p@ss" in a for a in t.args)
    s = my_target_from_url("mysql://root@localhost?socket=/run/mysqld/mysqld.sock")
    assert s.args == ("--protocol=SOCKET", "-S", "/run/mysqld/mysqld.sock", "-u", "root") and s.password is None
    with pytest.raises(ValueError, match=r"postgresql://a:\*\*\*@h"):
        my_target_from_url("postgresql://a:b@h")


def test_sections_and_batch_escapes() -> None:
    out = "ddx\n#ddx:vars\nVariable_name\tValue\nmax_connections\t10\nddx\n#ddx:tab\nc1\tc2\na\\tb\tNULL\nx\\ny\t\\\\\nddx\n#ddx:replica\n"
    sections, unfinished = parse_sections(out)
    assert unfinished == "replica"
    assert parse_batch(sections["vars"]) == [["max_connections", "10"]]
    assert parse_batch(sections["tab"]) == [["a\tb", None], ["x\ny", "\\"]]
    assert parse_sections(out + "ddx\n#ddx:end\n")[1] is None


def test_parse_vertical() -> None:
    text = ["*************************** 1. row ***************************",
            "                Slave_IO_State: Connecting to master",
            "             Slave_IO_Running: Connecting", "        Seconds_Behind_Master: NULL", "               Last_IO_Error: "]
    assert parse_vertical(text) == [{"Slave_IO_State": "Connecting to master", "Slave_IO_Running": "Connecting",
                                     "Seconds_Behind_Master": "NULL", "Last_IO_Error": ""}]


@pytest.mark.parametrize(("stderr", "kind"), [
    ("ERROR 1045 (28000): Access denied for user 'app'@'localhost' (using password: YES)", "auth"),
    ("ERROR 1040 (HY000): Too many connections", "too_many"),
    ("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)", "refused"),
    ("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (113)", "other"),
    ("ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (111)", "refused"),
    ("ERROR 2013 (HY000): Lost connection to server at 'handshake: reading initial communication packet', system error: 110", "timeout"),
])
def test_parse_connect_error(stderr: str, kind: str) -> None:
    assert parse_connect_error(stderr).kind == kind


def test_replica_and_readonly_roles() -> None:
    t = MyTarget("my-test", ())
    head = ["Variable_name\tValue"]
    vars_ = head + ["read_only\tON", "max_connections\t100"]
    primary = Reading(t, {"vars": vars_, "replica": []})
    j = {fid: p for fid, p, _ in judge(primary, {})}
    assert j["svc.db_readonly"] is True and "svc.db_replication_lag_high" not in j
    rep = ["*************************** 1. row ***************************", "Slave_IO_Running: Yes",
           "Slave_SQL_Running: Yes", "Seconds_Behind_Master: 120"]
    j = {fid: p for fid, p, _ in judge(Reading(t, {"vars": vars_, "replica": rep}), {})}
    assert j["svc.db_replication_lag_high"] is True and "svc.db_readonly" not in j  # a replica is read-only by design
    j = {fid: p for fid, p, _ in judge(Reading(t, {"vars": vars_, "replica": rep}), {"replication_lag_seconds": 300})}
    assert j["svc.db_replication_lag_high"] is False


# --- a real server -----------------------------------------------------------------




@dataclass
class My:
    dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    clients: list[subprocess.Popen[bytes]]

    @property
    def sock(self) -> str:
        return str(self.dir / "mysqld.sock")

    @property
    def root_url(self) -> str:
        return f"mysql://root@localhost?socket={self.sock}"

    def sql(self, sql: str) -> str:
        r = subprocess.run(["mysql", "--no-defaults", "--batch", "--skip-column-names", "-S", self.sock, "-u", "root", "-e", sql],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def client(self, sql: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(["mysql", "--no-defaults", "-S", self.sock, "-u", "root", "-e", sql],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=open(self.dir / "client.err", "ab"), start_new_session=True)
        self.clients.append(p)
        return p

    def stop_clients(self) -> None:
        for p in self.clients:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                p.wait(timeout=5)
        self.clients.clear()
        # the server notices a dead client only when its statement ends: end its threads
        for tid in self.sql("SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() "
                            "AND COMMAND <> 'Daemon' AND USER NOT IN ('system user', 'event_scheduler')").split():
            with contextlib.suppress(AssertionError):
                self.sql(f"KILL {tid}")
        self.wait_for("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'THREADS_CONNECTED'", "1")

    def wait_for(self, sql: str, want: str) -> None:
        deadline = time.monotonic() + 15
        while self.sql(sql) != want:
            assert time.monotonic() < deadline, f"{sql} never gave {want}: " + (self.dir / "client.err").read_text()
            # not faster: InnoDB refreshes its INNODB_TRX cache only after 100 ms without reads
            time.sleep(0.2)


@pytest.fixture(scope="module")
def my() -> Iterator[My]:
    if os.geteuid() != 0:
        pytest.skip("needs root (MariaDB's root account authenticates by unix socket)")
    if not Path(MARIADBD).exists() or shutil.which("mariadb-install-db") is None or shutil.which("mysql") is None:
        pytest.skip("mariadb-server / mariadb-client are not installed")
    d = Path(tempfile.mkdtemp(prefix="ddx-my-"))
    os.chmod(d, 0o755)
    port = _free_port()
    proc = None
    server = None
    try:
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={d / 'data'}", "--user=root",
                        "--auth-root-authentication-method=socket", "--skip-test-db"],
                       check=True, capture_output=True, timeout=60, cwd=d)
        proc = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={d / 'data'}", "--user=root", f"--socket={d / 'mysqld.sock'}",
             f"--port={port}", "--bind-address=127.0.0.1", "--max-connections=10", f"--pid-file={d / 'pid'}",
             f"--log-error={d / 'err.log'}", "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--server-id=7",
             "--innodb-lock-wait-timeout=60"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=d)
        server = My(d, port, proc, [])
        deadline = time.monotonic() + 30
        while not (d / "mysqld.sock").exists() or subprocess.run(
                ["mysql", "--no-defaults", "-S", server.sock, "-u", "root", "-e", "SELECT 1"], capture_output=True).returncode:
            assert proc.poll() is None and time.monotonic() < deadline, (d / "err.log").read_text(errors="replace")
            time.sleep(0.1)
        server.sql("CREATE DATABASE shop; "
                   "CREATE USER app@'127.0.0.1' IDENTIFIED BY 'apppw'; GRANT ALL ON shop.* TO app@'127.0.0.1'; "
                   "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT) ENGINE=InnoDB; INSERT INTO shop.t VALUES (1, 1); "
                   "CREATE DATABASE ids; "
                   # 2.1e9 of a signed INT's 2^31-1: near; the same in an INT UNSIGNED (2^32-1): not
                   "CREATE TABLE ids.orders (id INT AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT=2100000000; "
                   "INSERT INTO ids.orders VALUES (NULL); "
                   "CREATE TABLE ids.wide (id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY) AUTO_INCREMENT=2100000000; "
                   "INSERT INTO ids.wide VALUES (NULL)")
        yield server
    finally:
        if server is not None:
            for p in server.clients:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(p.pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        shutil.rmtree(d, ignore_errors=True)


def run_my(opts: dict) -> tuple[str, dict, str, float]:
    t0 = time.monotonic()
    c = run_probes(LiveHost(), Config(probes={"mysql": opts}), only=["mysql"])
    (res,) = c.results
    return res.status, {f.id: f for f in c.findings}, res.reason, time.monotonic() - t0


def top(findings: dict, drop: tuple[str, ...] = ()) -> str:
    diag = diagnose(load_kb(), [f for f in findings.values() if f.id not in drop])
    return diag.hypotheses[0].id + " " + str([(h.id, round(h.probability, 3)) for h in diag.hypotheses[:3]])


@pytest.mark.root
def test_auto_increment_near_int_max(my: My) -> None:
    status, f, reason, _ = run_my({"targets": [my.root_url], "discover": False})
    assert status == "ok", reason
    seq = f["svc.db_sequence_near_max"]
    assert seq.state is State.PRESENT
    ev = seq.evidence[0]
    assert ev.count == 1 and "ids.orders.id int(11) at 2100000000 of 2147483647" in ev.summary
    assert not any("ids.wide" in s for s in ev.samples)
    assert f["svc.db_connections_near_max"].state is State.ABSENT
    assert f["svc.db_locks_blocked"].state is State.ABSENT
    assert f["svc.db_readonly"].state is State.ABSENT and "svc.db_replication_lag_high" not in f
    assert top(f).startswith("db-id-overflow"), top(f)


@pytest.mark.root
def test_connection_slots_full(my: My) -> None:
    try:
        for _ in range(10):
            my.client("SELECT SLEEP(60)")
        my.wait_for("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(60)'", "10")
        # root gets MariaDB's one extra slot for admins; an ordinary user is refused
        status, f, reason, _ = run_my({"targets": [my.root_url], "discover": False})
        assert status == "ok", reason
        conn = f["svc.db_connections_near_max"]
        assert conn.state is State.PRESENT and conn.evidence[0].count == 10 and conn.evidence[0].value == 100.0
        # the id column of the fixture is another fault: judge this one alone
        assert top(f, drop=("svc.db_sequence_near_max",)).startswith("db-connection-exhaustion")
        status, f, reason, _ = run_my({"targets": [f"mysql://app:apppw@127.0.0.1:{my.port}/shop"], "discover": False})
        assert status == "ok", reason
        assert f["svc.db_connections_near_max"].state is State.PRESENT
        assert "Too many connections" in f["svc.db_connections_near_max"].evidence[0].summary
    finally:
        my.stop_clients()


@pytest.mark.root
def test_row_lock_wait(my: My) -> None:
    try:
        my.client("BEGIN; UPDATE shop.t SET v = v + 1 WHERE id = 1; SELECT SLEEP(60)")
        my.wait_for("SELECT COUNT(*) FROM information_schema.INNODB_TRX", "1")
        my.client("UPDATE shop.t SET v = 2 WHERE id = 1")
        my.wait_for("SELECT COUNT(*) FROM information_schema.INNODB_TRX WHERE trx_state = 'LOCK WAIT'", "1")
        time.sleep(2.1)  # trx_started has whole seconds: leave room past the 1 s threshold
        status, f, reason, _ = run_my({"targets": [f"mysql://app:apppw@127.0.0.1:{my.port}/shop", my.root_url],
                                       "discover": False, "long_transaction_seconds": 1})
        assert status == "ok", reason
        locks = f["svc.db_locks_blocked"]
        assert locks.state is State.PRESENT
        ev = locks.evidence[0]
        assert "UPDATE shop.t SET v = 2 WHERE id = 1" in ev.samples[0] and "SELECT SLEEP(60)" in ev.samples[0]
        assert any("open longer than 1 s" in e.summary for e in locks.evidence), [e.summary for e in locks.evidence]
        assert "apppw" not in repr(f)
        assert top(f, drop=("svc.db_sequence_near_max",)).startswith("db-lock-contention")
    finally:
        my.stop_clients()


@pytest.mark.root
def test_replica_whose_primary_is_gone(my: My) -> None:
    dead = _free_port()
    try:
        my.sql(f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={dead}, MASTER_USER='repl', "
               "MASTER_CONNECT_RETRY=1; START SLAVE")
        deadline = time.monotonic() + 15
        while "Connecting to master" not in my.sql("SHOW SLAVE STATUS\\G"):
            assert time.monotonic() < deadline, my.sql("SHOW SLAVE STATUS\\G")
            time.sleep(0.05)
        status, f, reason, _ = run_my({"targets": [my.root_url], "discover": False})
        assert status == "ok", reason
        rep = f["svc.db_replication_lag_high"]
        assert rep.state is State.PRESENT and "not running (IO thread Connecting" in rep.evidence[0].summary
        assert "svc.db_readonly" not in f  # a replica: read-only by design, not judged
    finally:
        my.sql("STOP SLAVE; RESET SLAVE ALL")


@pytest.mark.root
def test_discovered_server_and_wrong_password(my: My) -> None:
    status, f, reason, _ = run_my({"discover": True})
    assert status == "ok", reason
    evs = [e for e in f["svc.db_sequence_near_max"].evidence if e.source == f"mariadbd pid {my.proc.pid} on socket {my.sock}"]
    assert evs and "ids.orders" in evs[0].summary
    bad = f"mysql://app:nope@127.0.0.1:{my.port}/shop"
    status, f, reason, _ = run_my({"targets": [bad], "discover": False})
    assert status == "failed"
    assert reason.removeprefix("ProbeError: ") == (
        f"could not probe mysql://app:***@127.0.0.1:{my.port}/shop: Access denied for user 'app'@'localhost' (using password: YES)")


def test_refused_and_hanging_ports() -> None:
    if shutil.which("mysql") is None and shutil.which("mariadb") is None:
        pytest.skip("mariadb-client is not installed")
    status, f, reason, _ = run_my({"targets": [f"mysql://app:pw@127.0.0.1:{_free_port()}/db"], "discover": False})
    assert status == "ok", reason
    assert f["svc.down"].state is State.PRESENT
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # the kernel completes the handshake; nobody ever answers
    try:
        port = srv.getsockname()[1]
        status, f, reason, took = run_my({"targets": [f"mysql://app:pw@127.0.0.1:{port}/db"], "discover": False})
        assert status == "failed" and "no answer within the connect timeout" in reason and "***" in reason
        assert took < 4.5
    finally:
        srv.close()
