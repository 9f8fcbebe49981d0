"""HAProxy probe: the parsers on real ``show stat`` CSV and config text, the
judgement on rows, and a real HAProxy (Debian package) in front of three real
HTTP servers, one of which answers 500 until its health checks take it DOWN."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import ddx.probes.services.haproxy  # noqa: F401 - registers the probe
from ddx.config import Config
from ddx.drill.sandbox import free_port
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.services.haproxy import (
    config_paths,
    fetch_stats_url,
    judge,
    parse_config,
    parse_show_stat,
    query_socket,
)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# The header of HAProxy 2.6.12's `show stat` (real, as captured).
HEADER = (
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,statu'
    's,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rat'
    'e,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_'
    '5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,co'
    'mp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,che'
    'ck_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie'
    ',mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,c'
    'ache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur'
    ',used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ss'
    'l_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_str'
    'eam_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_str'
    'eam_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_'
    'total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,'
    'h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n'
)
# Rows captured from haproxy_server() below (HAProxy 2.6.12) after `bad` (HTTP 500) went DOWN.
REAL_ROWS = (
    'fe,FRONTEND,,,0,3,9984,12,900,1496,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,12,0,12,,,,0,8,0,0,4,0,,12,12,12,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,12,12,12,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,12,12,816,1748,0,0,\n'
    'app,ok1,0,0,0,1,,4,300,468,,0,,0,0,0,0,UP,1,1,0,0,0,0,0,,1,3,1,,4,,2,4,,4,L7OK,200,1,0,4,0,0,0,0,,,,4,0,0,,,,,0,,,0,0,0,0,,,,Layer7 check passed,,1,2,2,,,,,,http,,,,,,,,0,4,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'app,ok2,0,0,0,1,,4,300,468,,0,,0,0,0,0,UP,1,1,0,0,0,0,0,,1,3,2,,4,,2,4,,4,L7OK,200,0,0,4,0,0,0,0,,,,4,0,0,,,,,0,,,0,0,0,0,,,,Layer7 check passed,,1,2,2,,,,,,http,,,,,,,,0,4,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'app,bad,0,0,0,1,,4,300,560,,0,,0,0,0,0,DOWN,1,1,0,1,1,0,0,,1,3,3,,4,,2,4,,4,L7STS,500,1,0,0,0,0,4,0,,,,4,0,0,,,,,0,Internal Server Error,,0,0,0,0,,,,Layer7 wrong status,,1,2,0,,,,,,http,,,,,,,,0,4,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n'
    'app,BACKEND,0,0,0,1,999,12,900,1496,0,0,,0,0,0,0,UP,2,2,0,,0,0,0,,1,3,0,,12,,1,12,,12,,,,0,8,0,0,4,0,,,,12,0,0,0,0,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,http,,,,,,,,0,12,0,0,0,,,0,0,0,0,0,,,,,2,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,15,15,1822,870,0,0,\n'
    'stats,FRONTEND,,,0,0,9984,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,4,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n'
    'stats,BACKEND,0,0,0,0,999,0,0,0,0,0,,0,0,0,0,UP,0,0,0,,0,0,,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,\n'
)
COLS = HEADER[2:].strip().rstrip(",").split(",")


def row(**kv: object) -> str:
    """One CSV line in the header's column order (unnamed columns empty)."""
    return ",".join(str(kv.get(c.replace("-", "_"), "")) for c in COLS) + ",\n"


def srv(px: str, name: str, status: str, lastchg: int, h2: int = 0, h5: int = 0, chk: str = "L7OK",
        **kv: object) -> str:
    return row(pxname=px, svname=name, type=2, status=status, lastchg=lastchg, hrsp_2xx=h2, hrsp_5xx=h5,
               stot=h2 + h5, check_status=chk, last_chk=kv.pop("last_chk", ""), scur=0, qcur=0, **kv)


def be(px: str, status: str = "UP", qcur: int = 0) -> str:
    return row(pxname=px, svname="BACKEND", type=1, status=status, qcur=qcur, qmax=qcur, lastchg=5000)


def fe(px: str, scur: int, slim: int) -> str:
    return row(pxname=px, svname="FRONTEND", type=0, status="OPEN", scur=scur, slim=slim)


def by_id(rows: list[tuple[str, bool, object]]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for fid, present, _ in rows:
        out[fid] = out.get(fid, False) or present
    return out


# --- parsers -----------------------------------------------------------------------


def test_parse_show_stat_reads_frontends_backends_and_servers() -> None:
    text = HEADER + fe("fe", 3, 100) + srv("app", "s1", "UP", 10, h2=50) + srv(
        "app", "s2", "DOWN", 4, h5=7, chk="L7STS", last_chk="HTTP status check returned code <3C>500<3E>"
    ) + be("app") + "\n"
    rows = parse_show_stat(text)
    assert [(r.kind, r.label) for r in rows] == [
        ("frontend", "fe/FRONTEND"), ("server", "app/s1"), ("server", "app/s2"), ("backend", "app/BACKEND")]
    s2 = rows[2]
    assert s2.status == "DOWN" and not s2.up and s2.num("hrsp_5xx") == 7 and s2.text("check_status") == "L7STS"
    assert s2.num("lastchg") == 4 and s2.num("qmax") is None  # empty field: unknown, not 0
    assert "<3C>500<3E>" in s2.text("last_chk")


@pytest.mark.parametrize("text", ["", "Unknown command. Please enter one of the following commands only :\n",
                                  "<html><body>stats</body></html>", "pxname,svname\nfe,FRONTEND\n"])
def test_parse_show_stat_rejects_what_is_not_stats_csv(text: str) -> None:
    with pytest.raises(ValueError, match="not HAProxy stats CSV"):
        parse_show_stat(text)


def test_parse_config_finds_stats_sockets_and_stats_pages() -> None:
    cfg = """
global
    log /dev/log local0
    stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
    stats socket ipv4@127.0.0.1:9999 level user   # TCP socket: not read
    stats socket unix@/run/haproxy/other.sock
defaults
    mode http
frontend www
    bind :80
    bind :443 ssl crt /etc/ssl/x.pem
    default_backend app
listen stats
    bind 127.0.0.1:8404
    bind *:8405,[::]:8406
    stats enable
    stats uri /monitor   # the page
listen stats2
    bind 10.0.0.1:8500 ssl crt /x.pem
    stats uri /s
frontend plain
    bind 127.0.0.1:8600
    stats enable
"""
    c = parse_config(cfg)
    assert c.sockets == ("/run/haproxy/admin.sock", "/run/haproxy/other.sock")
    assert c.stats_urls == ("http://127.0.0.1:8404/monitor", "http://127.0.0.1:8405/monitor",
                            "http://[::1]:8406/monitor", "http://127.0.0.1:8600/haproxy?stats")


def test_config_paths_from_the_command_line() -> None:
    assert config_paths(["/usr/sbin/haproxy", "-Ws", "-f", "/etc/haproxy/haproxy.cfg", "-f", "/etc/haproxy/conf.d",
                         "-p", "/run/haproxy.pid"]) == ["/etc/haproxy/haproxy.cfg", "/etc/haproxy/conf.d"]
    assert config_paths(["haproxy", "-f/tmp/x.cfg", "-db"]) == ["/tmp/x.cfg"]
    assert config_paths(["haproxy", "-db"]) == ["/etc/haproxy/haproxy.cfg"]


def test_real_sample_one_server_down_after_500s_while_two_peers_answer() -> None:
    rows = parse_show_stat(HEADER + "".join(REAL_ROWS))
    bad = next(r for r in rows if r.label == "app/bad")
    assert bad.status == "DOWN" and bad.text("check_status") == "L7STS" and bad.num("hrsp_5xx") == 4
    out = judge(rows, {}, "src")
    got = by_id(out)  # type: ignore[arg-type]
    assert got == {"svc.down": False, "svc.worker_pool_saturated": False,
                   "http.errors_single_backend": True, "change.backend_added_recently": True}
    down = [e.summary for f, _, e in out if f == "svc.down"]
    assert down == ["backend app: 2 of 3 servers UP"]  # the stats backend has no servers: not judged


# --- judgement ------------------------------------------------------------------------


def test_one_server_down_while_its_peers_answer_is_a_single_backend_failure() -> None:
    rows = parse_show_stat(HEADER + srv("app", "s1", "UP", 9000, h2=500) + srv("app", "s2", "UP", 9000, h2=480)
                           + srv("app", "s3", "DOWN", 90, h5=40, chk="L7STS") + be("app"))
    out = judge(rows, {}, "src")
    got = by_id(out)  # type: ignore[arg-type]
    assert got["http.errors_single_backend"] and not got["svc.down"] and not got["svc.worker_pool_saturated"]
    assert got["change.backend_added_recently"]  # failing and its state changed 90 s ago
    ev = next(e for f, p, e in out if f == "http.errors_single_backend")
    assert "s3 fails (status DOWN)" in ev.summary and "s1, s2 answer normally" in ev.summary
    assert ev.value == "app/s3" and any("L7STS" in s for s in ev.samples)


def test_a_server_up_but_mostly_5xx_fails_too_and_a_low_share_is_noise() -> None:
    base = srv("app", "s1", "UP", 9000, h2=500, h5=2)
    bad = judge(parse_show_stat(HEADER + base + srv("app", "s2", "UP", 9000, h2=60, h5=40)), {}, "src")
    assert by_id(bad)["http.errors_single_backend"]  # type: ignore[arg-type]
    assert not by_id(bad)["change.backend_added_recently"]  # type: ignore[arg-type]  # old state: no change
    ok = judge(parse_show_stat(HEADER + base + srv("app", "s2", "UP", 9000, h2=97, h5=3)), {}, "src")
    assert by_id(ok) == {"svc.down": False, "http.errors_single_backend": False,  # type: ignore[arg-type]
                         "change.backend_added_recently": False}
    few = judge(parse_show_stat(HEADER + base + srv("app", "s2", "UP", 9000, h2=2, h5=3)), {}, "src")
    assert not by_id(few)["http.errors_single_backend"]  # type: ignore[arg-type]  # 5 responses: too few


def test_all_servers_down_is_a_down_backend_not_a_single_one() -> None:
    rows = parse_show_stat(HEADER + srv("app", "s1", "DOWN", 60, chk="L4CON") + srv("app", "s2", "DOWN", 60,
                                                                                     chk="L4CON") + be("app", "DOWN"))
    got = by_id(judge(rows, {}, "src"))  # type: ignore[arg-type]
    assert got["svc.down"] and "http.errors_single_backend" not in got  # unknown: no peer to compare
    assert "change.backend_added_recently" not in got  # all changed together, no healthy peer


def test_a_lone_recent_server_among_long_standing_peers_joined_recently() -> None:
    rows = parse_show_stat(HEADER + srv("app", "s1", "UP", 86400, h2=900) + srv("app", "s2", "UP", 120, h2=30))
    got = by_id(judge(rows, {}, "src"))  # type: ignore[arg-type]
    assert got["change.backend_added_recently"] and not got["http.errors_single_backend"]
    # all servers changed together (HAProxy restarted) and none fails: cannot tell
    rows = parse_show_stat(HEADER + srv("app", "s1", "UP", 100, h2=900) + srv("app", "s2", "UP", 100, h2=30))
    assert "change.backend_added_recently" not in by_id(judge(rows, {}, "src"))  # type: ignore[arg-type]


def test_queued_requests_or_a_frontend_at_its_session_limit_saturate() -> None:
    q = judge(parse_show_stat(HEADER + srv("app", "s1", "UP", 9000) + be("app", qcur=12) + fe("fe", 5, 100)), {}, "s")
    assert by_id(q)["svc.worker_pool_saturated"]  # type: ignore[arg-type]
    f = judge(parse_show_stat(HEADER + srv("app", "s1", "UP", 9000) + be("app") + fe("fe", 95, 100)), {}, "s")
    assert by_id(f)["svc.worker_pool_saturated"]  # type: ignore[arg-type]
    n = judge(parse_show_stat(HEADER + srv("app", "s1", "UP", 9000) + be("app") + fe("fe", 50, 100)), {}, "s")
    assert not by_id(n)["svc.worker_pool_saturated"]  # type: ignore[arg-type]


# --- real HAProxy --------------------------------------------------------------------------




class _Handler(BaseHTTPRequestHandler):
    code = 200

    def do_GET(self) -> None:
        body = b"ok\n" if self.code == 200 else b"broken\n"
        self.send_response(self.code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_OPTIONS = do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(code: int) -> Iterator[int]:
    handler = type(f"H{code}", (_Handler,), {"code": code})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    srv.handle_error = lambda *a: None  # type: ignore[method-assign]  # health checks close early
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


@dataclass
class Proxy:
    dir: str
    sock: str
    frontend: int
    stats_url: str
    cfg: str


@contextmanager
def haproxy_server() -> Iterator[Proxy]:
    if not os.path.exists(HAPROXY):
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    tmp = tempfile.mkdtemp(prefix="ddx-haproxy-")
    proc: subprocess.Popen[bytes] | None = None
    try:
        with http_server(200) as p1, http_server(200) as p2, http_server(500) as p3:
            fport, sport = free_port(), free_port()
            sock = os.path.join(tmp, "admin.sock")
            cfg = os.path.join(tmp, "haproxy.cfg")
            with open(cfg, "w") as f:
                f.write(f"""
global
    stats socket {sock} mode 600 level user
defaults
    mode http
    timeout connect 500ms
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:{fport}
    default_backend app
backend app
    option httpchk GET /
    server ok1 127.0.0.1:{p1} check inter 200ms fall 2 rise 1
    server ok2 127.0.0.1:{p2} check inter 200ms fall 2 rise 1
    server bad 127.0.0.1:{p3} check inter 200ms fall 2 rise 1
listen stats
    bind 127.0.0.1:{sport}
    stats enable
    stats uri /stats
""")
            proc = subprocess.Popen([HAPROXY, "-f", cfg, "-db"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, start_new_session=True)
            end = time.monotonic() + 10
            while not os.path.exists(sock):
                if proc.poll() is not None:
                    raise RuntimeError(f"haproxy exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
                if time.monotonic() > end:
                    raise RuntimeError("haproxy did not create its stats socket within 10 s")
                time.sleep(0.05)
            yield Proxy(tmp, sock, fport, f"http://127.0.0.1:{sport}/stats", cfg)
    finally:
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            if proc.stderr:
                proc.stderr.close()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_down(sock: str, server: str) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        rows = parse_show_stat(query_socket(sock, 1.0))
        if any(r.name == server and r.status.startswith("DOWN") for r in rows):
            return
        time.sleep(0.1)
    raise AssertionError(f"haproxy did not mark {server} DOWN within 10 s")


def traffic(port: int, n: int) -> list[int]:
    import http.client

    codes = []
    for _ in range(n):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("GET", "/")
            codes.append(c.getresponse().status)
        finally:
            c.close()
    return codes


def run(options: dict[str, object]):  # type: ignore[no-untyped-def]
    col = run_probes(LiveHost(), Config(probes={"haproxy": {"discover": False, **options}}), only=["haproxy"])
    (res,) = col.results
    return res, {f.id: f for f in col.findings}


@pytest.mark.root
def test_a_server_answering_500_goes_down_and_is_named_as_the_single_failing_backend() -> None:
    from ddx.engine.diagnosis import diagnose
    from ddx.kb.loader import load_kb

    with haproxy_server() as hp:
        traffic(hp.frontend, 12)  # some reach "bad" (500) before its checks fail
        wait_down(hp.sock, "bad")
        assert set(traffic(hp.frontend, 6)) == {200}  # haproxy now sends around the DOWN server
        res, f = run({"sockets": [hp.sock]})
        assert res.status == "ok", res.reason
        single = f["http.errors_single_backend"]
        assert single.state is State.PRESENT
        assert "app/bad" in str(single.evidence[0].value) and "L7STS" in " ".join(single.evidence[0].samples)
        assert f["change.backend_added_recently"].state is State.PRESENT  # went DOWN seconds ago
        assert f["svc.down"].state is State.ABSENT
        assert f["svc.worker_pool_saturated"].state is State.ABSENT
        d = diagnose(load_kb(), list(f.values()))
        assert d.hypotheses[0].id == "unready-backend", [h.id for h in d.hypotheses[:5]]

        # the stats page gives the same view
        res2, f2 = run({"stats_urls": [hp.stats_url]})
        assert res2.status == "ok", res2.reason
        assert f2["http.errors_single_backend"].state is State.PRESENT


@pytest.mark.root
def test_discovery_finds_the_running_haproxy_through_its_config() -> None:
    with haproxy_server() as hp:
        col = run_probes(LiveHost(), Config(probes={"haproxy": {}}), only=["haproxy"])
        (res,) = col.results
        assert res.status == "ok", res.reason
        sources = {e.source for fd in col.findings for e in fd.evidence}
        assert any(hp.sock in s for s in sources) and any(hp.stats_url in s for s in sources), sources


@pytest.mark.root
def test_fetch_stats_url_reads_the_csv_page() -> None:
    with haproxy_server() as hp:
        rows = parse_show_stat(fetch_stats_url(hp.stats_url, 1.0))
        assert {"app/ok1", "app/ok2", "app/bad", "fe/FRONTEND"} <= {r.label for r in rows}


@contextmanager
def silent_unix_server() -> Iterator[str]:
    """A unix socket that accepts and never answers (a hung HAProxy)."""
    tmp = tempfile.mkdtemp(prefix="ddx-haproxy-hang-")
    path = os.path.join(tmp, "hang.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    try:
        yield path
    finally:
        s.close()
        shutil.rmtree(tmp, ignore_errors=True)


def test_a_socket_that_never_answers_is_a_clear_reason_within_the_timeout() -> None:
    with silent_unix_server() as path:
        t0 = time.monotonic()
        res, f = run({"sockets": [path], "target_timeout": 0.5})
        took = time.monotonic() - t0
    assert res.status == "failed" and f"could not probe unix:{path}: no reply within 0.5s" in res.reason
    assert took < 3.0 and not f


def test_a_missing_socket_is_a_clear_reason_and_nothing_configured_is_not_applicable() -> None:
    res, _ = run({"sockets": ["/nonexistent/ddx-haproxy.sock"]})
    assert res.status == "failed" and "could not probe unix:/nonexistent/ddx-haproxy.sock" in res.reason
    res, _ = run({})
    assert res.status == "not_applicable" and "no HAProxy found" in res.reason
    res, _ = run({"stats_urls": ["https://x/stats"]})
    assert res.status == "failed" and "not an http:// URL" in res.reason
