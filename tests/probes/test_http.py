"""The http probe: parsers on samples, judgement on written access logs, a real nginx."""

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
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddx.config import Config
from ddx.drill.sandbox import free_port
from ddx.host import BundleHost, CommandResult, LiveHost, build_bundle
from ddx.model import State
from ddx.probes.parsers.httpparse import (
    AccessRecord,
    judge_access,
    nginx_info,
    parse_access_line,
    parse_nginx_conf,
    parse_server_status,
    parse_stub_status,
)
from ddx.probes.runner import run_probes

NGINX = "/usr/sbin/nginx"

# --- parsers ------------------------------------------------------------------------------------

STUB = """Active connections: 291 
server accepts handled requests
 16630948 16630948 31070465 
Reading: 6 Writing: 179 Waiting: 106 
"""

APACHE = """127.0.0.1
ServerVersion: Apache/2.4.57 (Debian)
Total Accesses: 102
BusyWorkers: 3
IdleWorkers: 0
Scoreboard: WWW
"""


def test_parse_stub_status() -> None:
    st = parse_stub_status(STUB)
    assert (st.active, st.accepts, st.requests, st.reading, st.writing, st.waiting) == (
        291, 16630948, 31070465, 6, 179, 106)
    with pytest.raises(ValueError, match="not an nginx stub_status page"):
        parse_stub_status("<html>hello</html>")


def test_parse_server_status() -> None:
    ap = parse_server_status(APACHE)
    assert (ap.busy, ap.idle, ap.open_slots) == (3, 0, 0)
    assert parse_server_status("BusyWorkers: 1\nIdleWorkers: 4\nScoreboard: _W___....\n").open_slots == 4
    with pytest.raises(ValueError, match="server-status"):
        parse_server_status("BusyWorkers: many\n")


def test_parse_access_line_combined_and_extras() -> None:
    base = '10.1.2.3 - - [22/Nov/2026:05:32:09 +0100] "POST /up HTTP/1.1" 413 183 "-" "curl/7.88.1"'
    r = parse_access_line(base)
    assert r is not None and r.status == 413 and r.method == "POST" and r.path == "/up"
    assert r.time == 1795321929.0 and r.request_time is None and r.upstreams == ()
    r = parse_access_line(base + " 0.250 10.0.0.2:8080 502")
    assert r is not None and r.request_time == 0.25 and r.upstreams == (("10.0.0.2:8080", 502),)
    r = parse_access_line(base + ' rt=1.5 ua="10.0.0.1:80, 10.0.0.2:80" us="504, 200"')
    assert r is not None and r.request_time == 1.5
    assert r.upstreams == (("10.0.0.1:80", 504), ("10.0.0.2:80", 200)) and r.backend == "10.0.0.2:80"
    r = parse_access_line(base + " 0.001 - -")  # no upstream (served locally)
    assert r is not None and r.upstreams == ()
    assert parse_access_line("2026/11/22 05:32:09 [error] 12#12: *1 upstream timed out") is None
    assert parse_access_line('1.2.3.4 - - [31/Feb/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 1') is None




def test_nginx_info_finds_logs_status_tls_and_capacity() -> None:
    conf = """
    user nobody; worker_processes 4;   # four workers
    events { worker_connections 1024; }
    http {
        log_format timed '$remote_addr - [$time_local] "$request" $status; x';
        access_log logs/access.log timed;
        server { listen 127.0.0.1:8081; location = /basic_status { stub_status; }
                 access_log /var/log/site.log; access_log off; access_log syslog:server=x; }
        server { listen 8443 ssl http2; location ~ \\.php$ { stub_status; } }
        server { listen [::1]:8082; location /nginx_status { stub_status on; } access_log /l/$host.log; }
    }"""
    info = nginx_info(parse_nginx_conf(conf, "/etc/nginx/nginx.conf"), "/srv/ngx/")
    assert info.access_logs == ("/srv/ngx/logs/access.log", "/var/log/site.log")
    assert [p.url for p in info.stub_status] == ["http://127.0.0.1:8081/basic_status",
                                                 "http://[::1]:8082/nginx_status"]
    assert info.stub_status[0].line == 7 and info.tls_ports == (8443,)
    assert (info.worker_processes, info.worker_connections) == (4, 1024)


# --- judging access logs ------------------------------------------------------------------------

NOW = 1_800_000_000.0


def _recs(n: int, start: float, end: float, status: int = 200, **kw: Any) -> list[AccessRecord]:
    step = (end - start) / n
    return [AccessRecord(start + i * step, status, "GET", "/", **kw) for i in range(n)]


def _by(verdicts: list) -> dict:  # type: ignore[type-arg]
    return {fid: (p, ev) for fid, p, ev in verdicts}


def test_healthy_log_is_absent_everywhere_it_can_judge() -> None:
    recs = _recs(600, NOW - 3600, NOW, request_time=0.02)
    got = _by(judge_access(recs, "a.log", NOW, NOW - 3600, {}))
    assert set(got) == {"http.5xx_rate_high", "http.gateway_errors", "http.request_too_large",
                        "http.latency_high", "http.requests_surge"}
    assert not any(p for p, _ in got.values())
    assert got["http.requests_surge"][1].value == 1.0


def test_errors_gateway_and_too_large() -> None:
    recs = _recs(80, NOW - 500, NOW) + _recs(10, NOW - 400, NOW, 502) + _recs(6, NOW - 300, NOW, 413)
    got = _by(judge_access(sorted(recs, key=lambda r: r.time), "a.log", NOW, NOW - 3600, {}))
    p, ev = got["http.5xx_rate_high"]
    assert p and ev.count == 10 and "10x502" in ev.summary
    assert got["http.gateway_errors"][0] and got["http.request_too_large"][0]
    assert got["http.request_too_large"][1].count == 6
    # a few 500s in a busy log are not an incident
    recs = _recs(400, NOW - 500, NOW) + _recs(3, NOW - 100, NOW, 500)
    got = _by(judge_access(sorted(recs, key=lambda r: r.time), "a.log", NOW, NOW - 3600, {}))
    assert got["http.5xx_rate_high"][0] is False and got["http.gateway_errors"][0] is False


def test_too_few_requests_decide_nothing() -> None:
    assert judge_access(_recs(10, NOW - 60, NOW, 500), "a.log", NOW, NOW - 3600, {}) == []


def test_surge_against_the_earlier_part_of_the_log() -> None:
    base = _recs(500, NOW - 3600, NOW - 600)  # 10/min for 50 min
    surge = _recs(2000, NOW - 600, NOW)  # 200/min for 10 min
    p, ev = _by(judge_access(base + surge, "a.log", NOW, NOW - 3600, {}))["http.requests_surge"]
    assert p and ev.value == 20.0 and "200.0 req/min in the last 10 min vs 10.0 req/min" in ev.summary
    # no history before the recent part: no judgement
    assert "http.requests_surge" not in _by(judge_access(surge, "a.log", NOW, NOW - 3600, {}))


def test_latency_from_request_time() -> None:
    recs = _recs(50, NOW - 300, NOW, request_time=0.05) + _recs(20, NOW - 300, NOW, request_time=3.2)
    p, ev = _by(judge_access(sorted(recs, key=lambda r: r.time), "a.log", NOW, NOW - 3600, {}))[
        "http.latency_high"]
    assert p and ev.value == 3.2
    p, _ = _by(judge_access(recs, "a.log", NOW, NOW - 3600, {"latency_s": 5.0}))["http.latency_high"]
    assert p is False


def test_errors_on_one_backend() -> None:
    recs: list[AccessRecord] = []
    for i in range(300):
        addr = ("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80")[i % 3]
        bad = addr == "10.0.0.2:80" and i % 5 < 3  # 60 % of .2's answers
        code = 502 if bad else 200
        recs.append(AccessRecord(NOW - 300 + i, code, "GET", "/", 0.01, ((addr, code),)))
    p, ev = _by(judge_access(recs, "a.log", NOW, NOW - 3600, {}))["http.errors_single_backend"]
    assert p and ev.summary.startswith("10.0.0.2:80 answered 60 of 100 with 5xx")
    # the same errors spread over all backends: not one backend
    spread = [AccessRecord(r.time, r.status, "GET", "/", 0.01, ((("10.0.0.1:80", "10.0.0.2:80",
              "10.0.0.3:80")[i % 3 if r.status == 200 else (i // 3) % 3], r.status),)) for i, r in enumerate(recs)]
    p, ev = _by(judge_access(spread, "a.log", NOW, NOW - 3600, {}))["http.errors_single_backend"]
    assert p is False and "not concentrated" in ev.summary


# --- the probe on written logs ------------------------------------------------------------------


def _line(t: float, status: int, extra: str = "", path: str = "/") -> str:
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(t))
    return f'203.0.113.7 - - [{stamp}] "GET {path} HTTP/1.1" {status} 512 "-" "Mozilla/5.0"{extra}\n'


def _run(opts: dict[str, Any], host: Any = None) -> Any:
    coll = run_probes(host or LiveHost(), Config(probes={"http": {"discover": False, **opts}}), only=["http"])
    return coll.results[0], {f.id: f for f in coll.findings}


def test_probe_surge_and_single_backend_from_written_log(tmp_path: Path) -> None:
    now = time.time()
    lines = []
    for i in range(500):  # 10 req/min for 50 min
        t = now - 3540 + i * 6
        addr = ("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080")[i % 3]
        lines.append(_line(t, 200, f" 0.012 {addr} 200"))
    for i in range(2000):  # then 200 req/min
        t = now - 595 + i * 0.29
        addr = ("10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.3:8080")[i % 3]
        code = 502 if addr == "10.0.0.2:8080" and i % 5 < 3 else 200
        lines.append(_line(t, code, f" 0.012 {addr} {code}"))
    log = tmp_path / "access.log"
    log.write_text("".join(lines))
    res, got = _run({"access_logs": [str(log)]})
    assert res.status == "ok", res.reason
    assert got["http.requests_surge"].state is State.PRESENT
    assert got["http.errors_single_backend"].state is State.PRESENT
    assert "10.0.0.2:8080" in got["http.errors_single_backend"].evidence[0].summary
    assert got["http.gateway_errors"].state is State.PRESENT
    assert got["http.latency_high"].state is State.ABSENT
    assert got["http.request_too_large"].state is State.ABSENT


def test_probe_reports_unreadable_and_foreign_logs(tmp_path: Path) -> None:
    other = tmp_path / "app.log"
    other.write_text("2026-11-22 05:32:09 INFO started\n" * 30)
    res, _ = _run({"access_logs": [str(other)]})
    assert res.status == "failed"
    assert f"{other}: no line in combined log format (first: '2026-11-22" in res.reason
    res, _ = _run({"access_logs": [str(tmp_path / "missing.log")]})
    assert res.status == "failed" and f"{tmp_path / 'missing.log'}: no such file" in res.reason


def test_probe_not_applicable_without_anything() -> None:
    res, _ = _run({})
    assert res.status == "not_applicable"


def test_probe_rejects_a_non_http_target() -> None:
    res, _ = _run({"targets": ["redis://127.0.0.1:6379"]})
    assert res.status == "failed" and "not an http:// or https:// URL" in res.reason


def test_bundle_replay_reads_logs_but_not_the_network(tmp_path: Path) -> None:
    now = time.time()
    text = "".join(_line(now - 200 + i, 500 if i % 2 else 200) for i in range(100))
    b = build_bundle(str(tmp_path / "b"), files={"/logs/access.log": text}, times=[now],
                     commands={("ss", "-ltnpH"): CommandResult(("ss",), 0, "", "")})
    res, got = _run({"access_logs": ["/logs/access.log"], "targets": ["http://127.0.0.1:9/"]}, BundleHost(b))
    assert res.status == "ok"
    f = got["http.5xx_rate_high"]
    assert f.state is State.PRESENT
    assert "not recorded in bundles" in res.reason  # the network part is said beside the result


# --- bad targets: hang after accept, garbage ------------------------------------------------------


@contextlib.contextmanager
def tcp_server(behaviour: str) -> Iterator[int]:
    """A loopback server that accepts and then hangs, or answers garbage."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def loop() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            conns.append(c)
            if behaviour == "garbage":
                with contextlib.suppress(OSError):
                    c.recv(4096)
                    c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01garbage\r\n\r\n")
                    c.close()

    th = threading.Thread(target=loop, daemon=True)
    th.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        th.join(2)
        for c in conns:
            c.close()
        srv.close()


def test_target_that_hangs_after_accept_times_out_with_a_reason() -> None:
    with tcp_server("hang") as port:
        t0 = time.monotonic()
        res, got = _run({"targets": [f"http://127.0.0.1:{port}/"], "timeout_s": 0.5})
        took = time.monotonic() - t0
        # a timeout shorter than the latency threshold measured nothing: a reason, no finding
        assert res.status == "failed"
        assert res.reason.endswith(f"could not probe http://127.0.0.1:{port}/: no response within 0.5 s")
        res, got = _run({"targets": [f"http://127.0.0.1:{port}/"], "timeout_s": 0.5, "latency_s": 0.5})
    assert took < 3.0
    assert res.status == "ok"
    f = got["http.latency_high"]
    assert f.state is State.PRESENT
    assert f"could not probe http://127.0.0.1:{port}/: no response within 0.5 s" in f.evidence[0].summary


def test_target_answering_garbage_gives_a_clear_reason() -> None:
    with tcp_server("garbage") as port:
        res, _ = _run({"targets": [f"http://127.0.0.1:{port}/"]})
    assert res.status == "failed"
    assert f"could not probe http://127.0.0.1:{port}/: not an HTTP response" in res.reason


def test_refused_target_and_password_never_shown() -> None:
    port = free_port()  # nothing listens there
    res, _ = _run({"targets": [f"http://bob:s3cret@127.0.0.1:{port}/x"]})
    assert res.status == "failed" and "s3cret" not in res.reason
    assert f"could not probe http://bob:***@127.0.0.1:{port}/x: Connection refused" in res.reason


# --- a real nginx -------------------------------------------------------------------------------




class Nginx:
    """nginx started in the foreground with its own prefix in a temp dir."""

    def __init__(self, conf: str, files: dict[str, bytes | str] | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="ddx-nginx-")
        os.chmod(self.dir, 0o755)
        os.makedirs(os.path.join(self.dir, "logs"))
        for name, data in (files or {}).items():
            mode = "wb" if isinstance(data, bytes) else "w"
            with open(os.path.join(self.dir, name), mode) as fh:
                fh.write(data)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as fh:
            fh.write(conf.replace("@DIR@", self.dir))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, ports: list[int]) -> None:
        self.proc = subprocess.Popen([NGINX, "-p", self.dir + "/", "-c", self.conf, "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        end = time.monotonic() + 10
        for port in ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if self.proc.poll() is not None:
                        err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                        raise RuntimeError(f"nginx exited: {err}") from None
                    if time.monotonic() > end:
                        raise RuntimeError(f"nginx did not listen on {port}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def nginx() -> Iterator[dict[str, Any]]:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (apt-get install nginx-light or nginx)")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    web, status, closed = free_port(), free_port(), free_port()
    conf = f"""
user root;
worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/logs/error.log;
events {{ worker_connections 64; }}
http {{
    log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                     '"$http_referer" "$http_user_agent" $request_time $upstream_addr $upstream_status';
    access_log @DIR@/logs/access.log timed;
    client_body_temp_path @DIR@/tmp; proxy_temp_path @DIR@/tmp; fastcgi_temp_path @DIR@/tmp;
    uwsgi_temp_path @DIR@/tmp; scgi_temp_path @DIR@/tmp;
    client_max_body_size 1k;
    server {{
        listen 127.0.0.1:{web};
        location / {{ return 200 "ok\\n"; }}
        location /fail {{ return 500; }}
        location /api {{ proxy_pass http://127.0.0.1:{closed}; proxy_connect_timeout 1s; }}
    }}
    server {{
        listen 127.0.0.1:{status};
        access_log off;
        location = /nginx_status {{ stub_status; }}
    }}
}}
"""
    srv = Nginx(conf)
    try:
        srv.start([web, status])
        yield {"server": srv, "web": web, "status": status}
    finally:
        srv.stop()


def _hit(port: int, path: str, n: int, data: bytes | None = None) -> None:
    for _ in range(n):
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
        with contextlib.suppress(Exception):
            urllib.request.urlopen(req, timeout=5).read()


@pytest.mark.root
def test_real_nginx_errors_gateway_and_too_large(nginx: dict[str, Any], kb: Any) -> None:
    web = nginx["web"]
    _hit(web, "/", 40)
    _hit(web, "/fail", 6)
    _hit(web, "/api/users", 8)
    _hit(web, "/", 5, data=b"x" * 10240)  # 10k POST over client_max_body_size 1k
    coll = run_probes(LiveHost(), Config(probes={"http": {"check_listeners": False}}), only=["http"])
    res = coll.results[0]
    assert res.status == "ok", res.reason
    got = {f.id: f for f in coll.findings}
    log = os.path.join(nginx["server"].dir, "logs/access.log")

    def ours(fid: str, source: str = log) -> Any:  # other web servers on a shared host add their own evidence
        return next(e for e in got[fid].evidence if e.source == source)

    five = got["http.5xx_rate_high"]
    assert five.state is State.PRESENT and ours("http.5xx_rate_high").count == 14
    gw = got["http.gateway_errors"]
    assert gw.state is State.PRESENT and "8x502" in ours("http.gateway_errors").summary
    big = got["http.request_too_large"]
    assert big.state is State.PRESENT and ours("http.request_too_large").count == 5
    # stub_status read through the discovered configuration: 64 connections, not busy (when another
    # server on the host is busy the finding is present with only that server's evidence)
    sat = got["svc.worker_pool_saturated"]
    status = f"http://127.0.0.1:{nginx['status']}/nginx_status"
    if sat.state is State.ABSENT:
        assert "of 62 (1 workers x (worker_connections 64 - 2 listening sockets))" in ours(
            "svc.worker_pool_saturated", status).summary
    else:
        assert all(e.source != status for e in sat.evidence)
    from ddx.engine.diagnosis import diagnose

    d = diagnose(kb, [f for f in coll.findings if f.id == "http.request_too_large"] + [five])
    assert d.hypotheses[0].id == "request-size-limit"


@pytest.mark.root
def test_real_nginx_worker_connections_nearly_used_up(nginx: dict[str, Any]) -> None:
    idle = []
    try:
        for _ in range(60):
            idle.append(socket.create_connection(("127.0.0.1", nginx["web"]), timeout=2))
        time.sleep(0.2)
        coll = run_probes(LiveHost(), Config(probes={"http": {"check_listeners": False}}), only=["http"])
    finally:
        for s in idle:
            s.close()
    got = {f.id: f for f in coll.findings}
    sat = got["svc.worker_pool_saturated"]
    assert sat.state is State.PRESENT, sat.evidence
    assert sat.evidence[0].value >= 50  # nginx closed some idle ones to make room


@pytest.mark.root
def test_real_nginx_listener_checks_time_each_request(nginx: dict[str, Any]) -> None:
    web = nginx["web"]
    coll = run_probes(LiveHost(), Config(probes={"http": {"access_logs": [], "targets": [
        f"http://127.0.0.1:{web}/fail"]}}), only=["http"])
    got = {f.id: f for f in coll.findings}
    srcs = [e.source for e in got["http.latency_high"].evidence]
    assert f"http://127.0.0.1:{web}/" in srcs  # the discovered listener was requested too
    assert any(e.source == f"http://127.0.0.1:{web}/fail" and "3 of 3 requests answered 5xx" in e.summary
               for e in got["http.5xx_rate_high"].evidence)
