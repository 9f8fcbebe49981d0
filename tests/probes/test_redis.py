"""Redis probe: RESP and INFO parsers, the judgement on INFO pairs, and real
redis-server instances (Debian package) at maxmemory, behind a password, gone."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from test_memcached import fake_server, free_port, stop, top_condition, wait_listening

from ddx.config import Config
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.services.cacheproto import (
    Incomplete,
    RespError,
    encode_command,
    parse_info_fields,
    parse_redis_info,
    parse_resp,
)
from ddx.probes.services.redis import judge

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

INFO = """# Server\r
redis_version:7.0.15\r
uptime_in_seconds:100\r
# Clients\r
connected_clients:3\r
blocked_clients:1\r
maxclients:10000\r
# Memory\r
used_memory:1100000\r
maxmemory:1048576\r
maxmemory_policy:noeviction\r
# Stats\r
keyspace_hits:0\r
keyspace_misses:0\r
evicted_keys:0\r
rejected_connections:0\r
total_error_replies:0\r
# Persistence\r
loading:0\r
rdb_last_bgsave_status:ok\r
# Replication\r
role:master\r
connected_slaves:0\r
"""


def info(**kv: object) -> dict[str, str]:
    d = parse_redis_info(INFO)
    d.update({k: str(v) for k, v in kv.items()})
    return d


def by_id(rows: list[tuple[str, bool, object]]) -> dict[str, bool]:
    return {fid: present for fid, present, _ in rows}


# --- parsers -----------------------------------------------------------------------


def test_resp_round_trip_of_the_reply_kinds() -> None:
    assert encode_command("CONFIG", "GET", "maxmemory") == b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$9\r\nmaxmemory\r\n"
    buf = b"+OK\r\n-WRONGPASS invalid\r\n:42\r\n$5\r\nhello\r\n*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n$-1\r\n"
    pos, got = 0, []
    while pos < len(buf):
        v, pos = parse_resp(buf, pos)
        got.append(v)
    assert got == ["OK", "WRONGPASS invalid", 42, "hello", ["maxmemory", "0"], None]
    assert isinstance(got[1], RespError)


def test_resp_incomplete_and_garbage() -> None:
    with pytest.raises(Incomplete):
        parse_resp(b"$10\r\nabc")
    with pytest.raises(ValueError, match="garbage"):
        parse_resp(b"HTTP/1.1 400 Bad Request\r\n")
    with pytest.raises(ValueError, match="garbage"):
        parse_resp(b"<html>")


def test_info_parser_and_list_values() -> None:
    d = parse_redis_info(INFO + "errorstat_OOM:count=7\r\nslave0:ip=10.0.0.2,port=6379,state=online,offset=5,lag=1\r\n")
    assert d["maxmemory_policy"] == "noeviction" and d["used_memory"] == "1100000"
    assert parse_info_fields(d["errorstat_OOM"]) == {"count": "7"}
    assert parse_info_fields(d["slave0"])["state"] == "online"
    with pytest.raises(ValueError):
        parse_redis_info("<html></html>")


# --- judgement ----------------------------------------------------------------------


def test_oom_refusals_in_the_window_are_reported_and_evictions_absent() -> None:
    a = info(errorstat_OOM="count=5")
    b = info(errorstat_OOM="count=40")
    rows = by_id(judge(a, b, 1.0, {}, "redis://h:1"))
    assert rows["logs.out_of_memory"] is True
    assert rows["svc.cache_evictions_high"] is False and rows["svc.db_readonly"] is False


def test_below_maxmemory_without_refusals_reports_no_oom() -> None:
    a = info(used_memory=500000)
    assert "logs.out_of_memory" not in by_id(judge(a, a, 1.0, {}, "s"))


def test_loading_is_down_for_its_clients() -> None:
    assert by_id(judge(info(loading=1), None, 0.0, {}, "s"))["svc.down"] is True


def test_replication_link_down_and_a_lagging_replica() -> None:
    rep = info(role="slave", master_host="10.0.0.1", master_port=6379, master_link_status="down",
               master_last_io_seconds_ago=-1, master_link_down_since_seconds=300)
    assert by_id(judge(rep, rep, 1.0, {}, "s"))["svc.db_replication_lag_high"] is True
    ok = info(role="slave", master_link_status="up", master_last_io_seconds_ago=3)
    assert by_id(judge(ok, ok, 1.0, {}, "s"))["svc.db_replication_lag_high"] is False
    master = info(connected_slaves=1, slave0="ip=10.0.0.2,port=6379,state=wait_bgsave,offset=0,lag=0")
    assert by_id(judge(master, master, 1.0, {}, "s"))["svc.db_replication_lag_high"] is True
    assert "svc.db_replication_lag_high" not in by_id(judge(info(), info(), 1.0, {}, "s"))


def test_writes_refused_as_readonly_by_a_replica() -> None:
    a = info(role="slave", master_link_status="up", master_last_io_seconds_ago=1)
    b = dict(a, errorstat_READONLY="count=12")
    rows = judge(a, b, 1.0, {}, "s")
    assert by_id(rows)["svc.db_readonly"] is True
    writable = dict(a, slave_read_only="0")
    ev = [e for fid, _, e in judge(writable, writable, 1.0, {}, "s") if fid == "svc.db_readonly"][0]
    assert "replica-read-only no" in ev.summary  # type: ignore[attr-defined]


def test_rejected_connections_and_hit_rate() -> None:
    a = info(keyspace_hits=900, keyspace_misses=100)
    b = info(keyspace_hits=902, keyspace_misses=200, rejected_connections=4)
    rows = by_id(judge(a, b, 1.0, {}, "s"))
    assert rows["net.connections_refused"] is True and rows["svc.cache_hit_rate_drop"] is True


def test_a_flushall_in_the_window_or_a_fresh_server_missing_its_lookups_is_a_cold_cache() -> None:
    a = info(uptime_in_seconds=500000, keyspace_hits=9000, keyspace_misses=1000)
    steady = by_id(judge(a, info(uptime_in_seconds=500001, keyspace_hits=9100, keyspace_misses=1010), 1.0, {}, "s"))
    assert steady["svc.cache_cold"] is False
    flushed = info(uptime_in_seconds=500001, keyspace_hits=9000, keyspace_misses=1100,
                   cmdstat_flushall="calls=1,usec=20,usec_per_call=20.00")
    assert by_id(judge(a, flushed, 1.0, {}, "s"))["svc.cache_cold"] is True
    fresh = info(uptime_in_seconds=60, keyspace_hits=0, keyspace_misses=10)
    later = info(uptime_in_seconds=61, keyspace_hits=5, keyspace_misses=200)
    assert by_id(judge(fresh, later, 1.0, {}, "s"))["svc.cache_cold"] is True


def queued(*queues: dict[str, object], read_at: float = 1_000_000.0) -> dict[str, str]:
    return info(**{"ddx.queues": json.dumps(list(queues)), "ddx.read_at": read_at})


def test_a_queue_whose_oldest_job_waited_minutes_is_a_backlog() -> None:
    a = queued({"framework": "sidekiq", "name": "default", "length": 40, "oldest": 1_000_000.0 - 1800})
    b = queued({"framework": "sidekiq", "name": "default", "length": 41, "oldest": 1_000_000.0 - 1801})
    rows = judge(a, b, 1.0, {}, "s")
    assert by_id(rows)["queue.backlog_growing"] is True
    ev = next(e for fid, _, e in rows if fid == "queue.backlog_growing")
    assert "sidekiq default: 41 waiting, oldest 30 min" in ev.summary  # type: ignore[attr-defined]


def test_short_young_queues_are_no_backlog_and_a_long_one_of_unknown_age_is_unknown() -> None:
    young = queued({"framework": "rq", "name": "mail", "length": 3, "oldest": 1_000_000.0 - 2},
                   {"framework": "celery", "name": "celery", "length": 10, "oldest": None})
    assert by_id(judge(young, young, 1.0, {}, "s"))["queue.backlog_growing"] is False
    long = queued({"framework": "celery", "name": "celery", "length": 50000, "oldest": None})
    assert "queue.backlog_growing" not in by_id(judge(long, long, 1.0, {}, "s"))
    longer = queued({"framework": "celery", "name": "celery", "length": 50400, "oldest": None})
    assert by_id(judge(long, longer, 1.0, {}, "s"))["queue.backlog_growing"] is True
    assert "queue.backlog_growing" not in by_id(judge(info(), info(), 1.0, {}, "s"))


# --- real servers -------------------------------------------------------------------


@contextmanager
def redis_server(*extra: str) -> Iterator[int]:
    if not os.path.exists(REDIS):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    d = tempfile.mkdtemp(prefix="ddx-redis-")
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", d, "--daemonize", "no", "--logfile", "", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        wait_listening(port, proc, "redis-server")
        yield port
    finally:
        stop(proc)
        shutil.rmtree(d, ignore_errors=True)


def cmd(port: int, *args: str, password: str | None = None) -> object:
    with socket.create_connection(("127.0.0.1", port), 2) as s:
        wire = (encode_command("AUTH", password) if password else b"") + encode_command(*args)
        s.sendall(wire)
        buf = b""
        replies: list[object] = []
        pos = 0
        want = 2 if password else 1
        while len(replies) < want:
            try:
                v, pos = parse_resp(buf, pos)
                replies.append(v)
            except Incomplete:
                buf += s.recv(65536)
        return replies[-1]


def probe(options: dict[str, object], window: float = 1.0):  # type: ignore[no-untyped-def]
    col = run_probes(LiveHost(), Config(probes={"redis": {"discover": False, **options}}), only=["redis"], window=window)
    (res,) = col.results
    return res, {f.id: f for f in col.findings}


@pytest.mark.root
def test_job_queues_of_sidekiq_and_rq_read_from_a_real_redis() -> None:
    now = time.time()
    with redis_server() as port:
        # Sidekiq: jobs pushed on the left, the oldest (an hour ago) at the right end
        cmd(port, "SADD", "queues", "default", "mailers")
        cmd(port, "LPUSH", "queue:default", json.dumps({"class": "HardJob", "enqueued_at": now - 3600}))
        for i in range(5):
            cmd(port, "LPUSH", "queue:default", json.dumps({"class": "HardJob", "jid": str(i), "enqueued_at": now}))
        cmd(port, "LPUSH", "queue:mailers", json.dumps({"class": "Mail", "enqueued_at": int((now - 5) * 1000)}))
        # RQ: job ids pushed on the right, times in the job's hash
        cmd(port, "SADD", "rq:queues", "rq:queue:reports")
        cmd(port, "RPUSH", "rq:queue:reports", "j1", "j2")
        cmd(port, "HSET", "rq:job:j1", "enqueued_at",
            time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(now - 10)))
        url = f"redis://127.0.0.1:{port}"
        res, found = probe({"targets": [url]}, window=0.3)
        assert res.status == "ok", res.reason
        f = found["queue.backlog_growing"]
        assert f.state is State.PRESENT, f.evidence
        summary = f.evidence[0].summary
        assert re.search(r"sidekiq default: 6 waiting, oldest (60|61) min", summary), summary
        assert re.search(r"sidekiq mailers: 1 waiting, oldest \d s; rq reports: 2 waiting, oldest 1\d s", summary), summary
        # the stuck job done: every queue young again
        cmd(port, "RPOP", "queue:default")
        _, found = probe({"targets": [url]}, window=0.3)
        assert found["queue.backlog_growing"].state is State.ABSENT, found["queue.backlog_growing"].evidence


@pytest.mark.root
def test_redis_at_maxmemory_with_noeviction_refuses_writes() -> None:
    with redis_server("--maxmemory", "1mb", "--maxmemory-policy", "noeviction") as port:
        refused = 0
        for i in range(2000):
            r = cmd(port, "SET", f"key{i}", "x" * 1000)
            if isinstance(r, RespError) and r.startswith("OOM"):
                refused += 1
                if refused >= 3:
                    break
        assert refused >= 3
        res, found = probe({"targets": [f"redis://127.0.0.1:{port}"]}, window=0.3)
    assert res.status == "ok", res.reason
    oom = found["logs.out_of_memory"]
    assert oom.state is State.PRESENT and "OOM" in oom.evidence[0].summary
    assert "policy noeviction" in oom.evidence[0].summary
    assert found["svc.cache_evictions_high"].state is State.ABSENT
    full = found["svc.cache_memory_full"]
    assert full.state is State.PRESENT and "writes are refused" in full.evidence[0].summary
    top, ranking = top_condition(found)
    assert top == "datastore-memory-full", ranking


@pytest.mark.root
def test_wrong_password_is_a_clear_reason_without_the_password() -> None:
    with redis_server("--requirepass", "right-pass") as port:
        res, _ = probe({"targets": [f"redis://:wrong-pass@127.0.0.1:{port}"]}, window=0.2)
        assert res.status == "failed"
        assert f"could not probe redis://:***@127.0.0.1:{port}: authentication failed" in res.reason
        assert "wrong-pass" not in res.reason and "right-pass" not in res.reason
        res2, _ = probe({"targets": [f"redis://127.0.0.1:{port}"]}, window=0.2)
        assert "authentication required" in res2.reason
        res3, found = probe({"targets": [f"redis://:right-pass@127.0.0.1:{port}"]}, window=0.2)
    assert res3.status == "ok", res3.reason
    assert found["svc.down"].state is State.ABSENT
    assert all("right-pass" not in e.source + e.summary for f in found.values() for e in f.evidence)


@pytest.mark.root
def test_discovered_redis_with_config_renamed_away_still_probes() -> None:
    with redis_server("--rename-command", "CONFIG", "") as port:
        col = run_probes(LiveHost(), Config(probes={"redis": {}}), only=["redis"], window=0.2)
    (res,) = col.results
    assert res.status == "ok", res.reason
    down = {f.id: f for f in col.findings}["svc.down"]
    mine = [e for e in down.evidence if e.source.startswith(f"redis://127.0.0.1:{port} (pid ")]
    assert mine and "role master" in mine[0].summary


def test_a_configured_redis_that_refuses_is_down() -> None:
    port = free_port()
    res, found = probe({"targets": [f"redis://:pw@127.0.0.1:{port}"]}, window=0.2)
    assert res.status == "ok", res.reason
    assert found["svc.down"].state is State.PRESENT
    assert found["svc.down"].evidence[0].source == f"redis://:***@127.0.0.1:{port}"


def test_hang_and_garbage_are_clear_reasons() -> None:
    with fake_server(None) as port:
        t0 = time.monotonic()
        res, _ = probe({"targets": [f"redis://127.0.0.1:{port}"], "target_timeout": 0.5}, window=0.2)
        assert time.monotonic() - t0 < 3.2
    assert res.status == "failed" and "no complete reply within 0.5s" in res.reason
    with fake_server(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        res, _ = probe({"targets": [f"redis://127.0.0.1:{port}"]}, window=0.2)
    assert res.status == "failed" and "garbage reply" in res.reason
