"""Worker pools: parsers on real status formats, the judgement, and a real
gunicorn (Debian's, 2 sync workers) saturated by slow requests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.drill.sandbox import free_port as _free_port
from ddx.engine.diagnosis import diagnose
from ddx.host import LiveHost
from ddx.kb.loader import load_kb
from ddx.probes.parsers.proctable import Proc
from ddx.probes.parsers.sockets import parse_ss
from ddx.probes.runner import run_probes
from ddx.probes.services.pools import (
    PoolSample,
    busy_from_sockets,
    judge,
    parse_fpm_status,
    parse_passenger_xml,
    parse_uwsgi_stats,
    worker_mode,
)

# php-fpm 8.2 status page, plain and ?json (fields as php-fpm prints them).
FPM_TEXT = """\
pool:                 www
process manager:      dynamic
start time:           22/Nov/2026:06:10:11 +0000
start since:          3021
accepted conn:        1201
listen queue:         4
max listen queue:     9
listen queue len:     511
idle processes:       0
active processes:     5
total processes:      5
max active processes: 5
max children reached: 3
slow requests:        0
"""
FPM_JSON = (
    '{"pool":"www","process manager":"static","start time":1795321811,"start since":3021,'
    '"accepted conn":1201,"listen queue":0,"max listen queue":0,"listen queue len":511,'
    '"idle processes":1,"active processes":9,"total processes":10,"max active processes":10,'
    '"max children reached":0,"slow requests":0}'
)
UWSGI = """{"version":"2.0.21","listen_queue":3,"listen_queue_errors":0,"pid":100,"uid":33,"gid":33,
"cwd":"/srv/app","locks":[{"user 0":0}],"sockets":[{"name":"127.0.0.1:3031","proto":"uwsgi","queue":3,
"max_queue":100,"shared":0,"can_offload":0}],"workers":[
{"id":1,"pid":101,"accepting":1,"requests":10,"status":"busy","rss":0,"vsz":0,"running_time":1,"avg_rt":1},
{"id":2,"pid":102,"accepting":1,"requests":11,"status":"busy","rss":0,"vsz":0,"running_time":1,"avg_rt":1},
{"id":3,"pid":0,"accepting":0,"requests":0,"status":"cheap","rss":0,"vsz":0,"running_time":0,"avg_rt":0}]}"""
PASSENGER = """<?xml version="1.0" encoding="iso8859-1" ?>
<info version="3"><passenger_version>6.0.17</passenger_version><process_count>2</process_count>
<max>2</max><capacity_used>2</capacity_used><get_wait_list_size>0</get_wait_list_size>
<supergroups><supergroup><name>/srv/app (production)</name><group><name>/srv/app (production)</name>
<get_wait_list_size>7</get_wait_list_size><capacity_used>2</capacity_used><processes>
<process><pid>201</pid><sessions>1</sessions><busyness>100</busyness></process>
<process><pid>202</pid><sessions>1</sessions><busyness>100</busyness></process>
</processes></group></supergroup></supergroups></info>"""
# ss -Htanp / -Hxanp as printed with a gunicorn (master 10, workers 11, 12) on :8000 and a unix pool.
SS_TCP = """\
LISTEN 2      2048   127.0.0.1:8000   0.0.0.0:*     users:(("gunicorn",pid=12,fd=5),("gunicorn",pid=11,fd=5),("gunicorn",pid=10,fd=5))
ESTAB  0      0      127.0.0.1:8000   127.0.0.1:41000 users:(("gunicorn",pid=11,fd=9))
ESTAB  0      0      127.0.0.1:41000  127.0.0.1:8000 users:(("python3",pid=99,fd=3))
ESTAB  0      0      127.0.0.1:51000  10.0.0.5:5432  users:(("gunicorn",pid=12,fd=10))
"""
SS_UNIX = """\
u_str LISTEN 1      128    /run/app.sock 151326 * 0      users:(("gunicorn",pid=10,fd=3),("gunicorn",pid=11,fd=3))
u_str ESTAB  0      0      /run/app.sock 151328 * 151327 users:(("gunicorn",pid=12,fd=6))
u_str ESTAB  0      0                      * 1585   * 1586
"""


def test_status_parsers() -> None:
    f = parse_fpm_status(FPM_TEXT)
    assert (f.pool, f.manager, f.listen_queue, f.idle, f.active, f.total, f.max_children_reached) == (
        "www", "dynamic", 4, 0, 5, 5, 3)
    j = parse_fpm_status(FPM_JSON)
    assert (j.manager, j.active, j.total, j.idle) == ("static", 9, 10, 1)
    with pytest.raises(ValueError, match="php-fpm status"):
        parse_fpm_status("<html>404</html>")
    u = parse_uwsgi_stats(UWSGI)
    assert (u.busy, u.total, u.queue) == (2, 2, 3)  # the cheap (not spawned) worker is not counted
    with pytest.raises(ValueError, match="uWSGI"):
        parse_uwsgi_stats('{"hello": 1}')
    p = parse_passenger_xml(PASSENGER)
    assert (p.busy, p.total, p.queue) == (2, 2, 7)
    with pytest.raises(ValueError, match="passenger"):
        parse_passenger_xml("garbage <")


def test_ss_sockets_give_busy_workers_and_queue() -> None:
    socks = parse_ss(SS_TCP) + parse_ss(SS_UNIX, "u_str")
    busy, conns, queue, where = busy_from_sockets(socks, 10, {11, 12})
    # 11 serves a client on :8000; 12's database connection is not a request; 12 serves the unix socket.
    assert busy == {11, 12} and conns == 2
    assert queue == 3 and where == ["/run/app.sock", "127.0.0.1:8000"]
    busy, _, queue, _ = busy_from_sockets(parse_ss(SS_TCP), 10, {11, 12})
    assert busy == {11} and queue == 2


def proc(*argv: str) -> Proc:
    return Proc(1, 0, 1, 1, "x", "S", 0, 1, 0, 0, 0, argv=argv)


def test_worker_mode() -> None:
    assert worker_mode(proc("/usr/bin/python3", "/usr/bin/gunicorn", "-w", "4", "app:app")) == ("sync", 1)
    assert worker_mode(proc("gunicorn", "-k", "gevent", "app:app"))[0] == "async"
    assert worker_mode(proc("gunicorn", "--worker-class=uvicorn.workers.UvicornWorker", "m:app"))[0] == "async"
    assert worker_mode(proc("gunicorn", "--threads", "8", "app:app")) == ("threads", 8)
    assert worker_mode(proc("uwsgi", "--processes", "4", "--gevent", "100"))[0] == "async"


def test_judge() -> None:
    def s(busy: list[int], queue: list[int], size: int = 4, **kw: object) -> PoolSample:
        return PoolSample("p", size, "test", busy, queue, **kw)  # type: ignore[arg-type]

    assert judge(s([4, 4], [0, 0]), 0.9)  # all busy at both ends
    assert not judge(s([4, 1], [0, 0]), 0.9)  # freed up during the window
    assert not judge(s([3, 3], [0, 0]), 0.9)  # 75% < 90%
    assert judge(s([3, 4], [0, 2]), 0.9)  # a queue while every worker is busy
    assert not judge(s([1, 1], [5, 5], queue_only=True, size=0), 0.9)
    assert judge(s([0, 0], [1, 3], queue_only=True), 0.9)
    assert not judge(s([0, 0], [0, 3], queue_only=True), 0.9)
    assert judge(s([2, 2], [0, 0], rose=True), 0.9)


# --- a real gunicorn ------------------------------------------------------------------------

APP = """\
import time
def app(environ, start_response):
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 5))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\\n"]
"""




@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[int]:
    if subprocess.run(["/usr/bin/python3", "-c", "import gunicorn"], capture_output=True, check=False).returncode != 0:
        pytest.skip("gunicorn not installed for /usr/bin/python3 (Debian package python3-gunicorn)")
    (tmp_path / "ddxslowapp.py").write_text(APP)
    port = _free_port()
    proc = subprocess.Popen(
        ["/usr/bin/python3", "-m", "gunicorn", "--workers", "2", "--timeout", "60",
         "--bind", f"127.0.0.1:{port}", "--chdir", str(tmp_path), "ddxslowapp:app"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        end = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.skip(f"gunicorn did not start (exit {proc.returncode}); is python3-gunicorn installed?")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                    c.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    if c.recv(64).startswith(b"HTTP/1.0 200"):
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("gunicorn did not answer within 15 s")
            time.sleep(0.1)
        yield port
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _pools_finding(port: int) -> tuple[str, object]:
    coll = run_probes(LiveHost(), Config(window=1.0, probes={"pools": {}}), only=["pools"])
    res = coll.results[0]
    assert res.status == "ok", res.reason
    f = next(f for f in coll.findings if f.id == "svc.worker_pool_saturated")
    return f.state.value, f


def test_gunicorn_idle_then_saturated(gunicorn: int) -> None:
    port = gunicorn
    state, f = _pools_finding(port)
    rows = "\n".join(f.evidence[0].samples)  # type: ignore[attr-defined]
    mine = [r for r in rows.splitlines() if f"127.0.0.1:{port}" in r]
    assert mine and "0 -> 0 of 2 busy, queue 0 -> 0 (size: gunicorn --workers 2)" in mine[0]
    clients: list[socket.socket] = []
    try:
        # Four slow requests for two sync workers: two are served (sleeping, no CPU), two wait in the
        # accept queue for the whole window.
        for _ in range(4):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"GET /slow?20 HTTP/1.0\r\n\r\n")
            clients.append(c)
        time.sleep(0.5)
        state, f = _pools_finding(port)
        assert state == "present", f
        ev = f.evidence[0]  # type: ignore[attr-defined]
        mine = [r for r in ev.samples if f"127.0.0.1:{port}" in r]
        assert mine and "2 -> 2 of 2 busy, queue 2 -> 2" in mine[0], ev.samples
        diag = diagnose(load_kb(), [f])  # type: ignore[list-item]
        top = diag.hypotheses[0].id
        assert top in {"traffic-surge", "connection-limit", "db-lock-contention", "db-connection-exhaustion"}, top
    finally:
        for c in clients:
            c.close()


def test_bad_option_is_named() -> None:
    coll = run_probes(LiveHost(), Config(probes={"pools": {"status_urls": ["ftp://x/status"]}}), only=["pools"])
    res = coll.results[0]
    assert res.status == "failed" and "status_urls" in res.reason


def test_status_url_that_does_not_answer_is_reported(gunicorn: int) -> None:
    dead = _free_port()
    coll = run_probes(
        LiveHost(),
        Config(window=0.2, probes={"pools": {"status_urls": [f"http://127.0.0.1:{dead}/fpm-status"]}}),
        only=["pools"],
    )
    res = coll.results[0]
    assert res.status == "ok", res.reason  # the gunicorn pool is still judged
    ev = coll.findings[0].evidence[0]
    assert f"127.0.0.1:{dead}/fpm-status" in ev.summary and "refused" in ev.summary
    mine = [r for r in ev.samples if f"127.0.0.1:{gunicorn}" in r]
    assert mine and "0 -> 0 of 2 busy" in mine[0]
