"""Drift and unready backends against real sockets, a real memcached and real
HTTP servers on loopback; the nginx configuration is checked by nginx itself
(``nginx -t``) so the probe reads a configuration nginx accepts."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.drill.sandbox import free_port as closed_port
from ddx.engine.diagnosis import diagnose
from ddx.host import LiveHost
from ddx.kb.loader import load_kb
from ddx.model import Finding, State
from ddx.probes.runner import run_probes
from ddx.probes.services.drift import http_status, tcp_check

# A tiny HTTP server answering every GET with the status given on its command line.
HTTP_SERVER = """
import http.server, sys
code = int(sys.argv[2])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok" if code < 500 else b"not ready"
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""




def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


class Servers:
    """Processes started by a test, each in its own session; all killed at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str]) -> tuple[int, subprocess.Popen[bytes]]:
        port = closed_port()
        proc = subprocess.Popen(
            [a.replace("{port}", str(port)) for a in argv],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        wait_port(port, proc)
        return port, proc

    def http(self, code: int) -> int:
        return self.start([sys.executable, "-c", HTTP_SERVER, "{port}", str(code)])[0]

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait(timeout=5)


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers()
    try:
        yield s
    finally:
        s.stop()


def nginx_conf(tmp: Path, upstream: list[int], dead_pass: int | None = None) -> Path:
    """A main nginx.conf that includes a conf.d file holding the upstream and the site."""
    (tmp / "conf.d").mkdir()
    (tmp / "logs").mkdir()
    main = tmp / "nginx.conf"
    main.write_text(
        "pid nginx.pid;\nerror_log logs/error.log;\nevents { worker_connections 64; }\n"
        "http {\n    access_log off;\n    include conf.d/*.conf;\n}\n"
    )
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in upstream)
    extra = f"        location /old {{ proxy_pass http://127.0.0.1:{dead_pass}/; }}\n" if dead_pass else ""
    (tmp / "conf.d" / "app.conf").write_text(
        f"upstream app {{\n{servers}}}\n"
        f"server {{\n    listen 127.0.0.1:{closed_port()};\n"
        f"        location / {{ proxy_pass http://app; }}\n{extra}}}\n"
    )
    if shutil.which("nginx"):  # the configuration must be one nginx accepts
        r = subprocess.run(["nginx", "-t", "-p", str(tmp), "-c", str(main)], capture_output=True, text=True, timeout=10,
                           check=False)
        assert r.returncode == 0, r.stderr
    return main


def run_drift(options: dict[str, object]) -> tuple[str, dict[str, Finding], str]:
    opts = {"discover": False, "nginx_conf": [], **options}
    coll = run_probes(LiveHost(), Config(probes={"drift": opts}), only=["drift"])
    res = coll.results[0]
    return res.status, {f.id: f for f in coll.findings}, res.reason


def test_network_helpers_on_real_sockets(servers: Servers) -> None:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        assert tcp_check("127.0.0.1", lst.getsockname()[1]).ok
    dead = tcp_check("127.0.0.1", closed_port())
    assert not dead.ok and dead.error == "connection refused"
    nores = tcp_check("no-such-host.invalid", 80, resolve_timeout=2.0)
    assert not nores.ok and nores.error.startswith("does not resolve")
    assert http_status("127.0.0.1", servers.http(503), "/").status == 503
    # A server that accepts and never answers: the request gives up at its timeout.
    with socket.socket() as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen(4)
        t0 = time.monotonic()
        hung = http_status("127.0.0.1", mute.getsockname()[1], "/", timeout=0.5)
        assert not hung.ok and "no answer" in hung.error and time.monotonic() - t0 < 2.0


def test_nginx_upstream_naming_closed_port(tmp_path: Path, servers: Servers) -> None:
    live = servers.http(200)
    dead = closed_port()
    old = closed_port()
    main = nginx_conf(tmp_path, [live, dead], dead_pass=old)
    status, f, reason = run_drift({"nginx_conf": [str(main)], "check_backends": False})
    assert status == "ok", reason
    fd = f["config.references_unreachable_endpoint"]
    assert fd.state is State.PRESENT
    ev = fd.evidence[0]
    assert ev.value == 2
    conf = str(tmp_path / "conf.d" / "app.conf")
    text = "\n".join(ev.samples)
    assert f"127.0.0.1:{dead}: connection refused <- {conf}:3 (upstream app)" in text
    assert f"127.0.0.1:{old}: connection refused <- {conf}:8 (proxy_pass)" in text
    assert f"127.0.0.1:{live}" not in text


@pytest.mark.root
@pytest.mark.skipif(not shutil.which("memcached"), reason="memcached not installed")
def test_app_config_dead_memcached_node(tmp_path: Path, servers: Servers) -> None:
    live, _ = servers.start(["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", "{port}", "-U", "0", "-m", "8"])
    dead = closed_port()
    app = tmp_path / "srv" / "shop"
    (app / "config").mkdir(parents=True)
    (app / ".env").write_text(
        f"DATABASE_URL=postgres://shop:hunter2@127.0.0.1:{live}/shop\n"
        f"MEMCACHED_SERVERS=127.0.0.1:{live},127.0.0.1:{dead}\n"
    )
    (app / "config" / "cache.yml").write_text(f"production:\n  cache:\n    host: 127.0.0.1\n    port: {dead}\n")
    status, f, reason = run_drift({"paths": [str(app / ".env"), str(tmp_path / "srv" / "*" / "config" / "*.yml")]})
    assert status == "ok", reason
    fd = f["config.references_unreachable_endpoint"]
    assert fd.state is State.PRESENT
    ev = fd.evidence[0]
    assert ev.value == 1 and len(ev.samples) == 1  # only the dead node, named in both files
    assert ev.samples[0].startswith(f"127.0.0.1:{dead}: connection refused <- {app / '.env'}:2 (MEMCACHED_SERVERS)")
    assert f"{app / 'config' / 'cache.yml'}:3 (host + port)" in ev.samples[0]
    assert "hunter2" not in repr(fd)
    # With the failover that usually precedes it, configuration drift leads the diagnosis.
    diag = diagnose(load_kb(), [*f.values(), Finding("change.recent_failover", State.PRESENT, "cli")])
    assert diag.hypotheses[0].id == "config-drift", [(h.id, round(h.probability, 3)) for h in diag.hypotheses[:3]]


def test_all_answer_is_absent_and_bad_input(tmp_path: Path, servers: Servers) -> None:
    live = servers.http(200)
    env = tmp_path / "app.env"
    env.write_text(f"API_URL=http://127.0.0.1:{live}/\n")
    status, f, reason = run_drift({"paths": [str(env), str(tmp_path / "missing.env")]})
    assert status == "ok", reason
    fd = f["config.references_unreachable_endpoint"]
    assert fd.state is State.ABSENT and "missing.env" in fd.evidence[0].summary
    # Nothing to read: not applicable, not an error.
    status, f, reason = run_drift({"paths": [str(tmp_path / "nothing-*.yml")]})
    assert status == "not_applicable" and not f
    # A bad option is named.
    status, _, reason = run_drift({"paths": ["relative/.env"]})
    assert status == "failed" and "paths" in reason and "relative/.env" in reason


def test_a_listener_with_a_full_accept_queue_is_saturated_not_missing(tmp_path: Path) -> None:
    """A server that listens but does not accept (every worker busy): its accept queue
    fills, the kernel drops further SYNs and a connect times out. The address is there,
    so it is not drift; a port nothing listens on still is."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)  # the queue holds one connection; nothing ever accepts
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        assert not tcp_check("127.0.0.1", port, timeout=0.3).ok  # the fault is real
        dead = closed_port()
        env = tmp_path / "app.env"
        env.write_text(f"BACKEND_URL=http://127.0.0.1:{port}/\nCACHE=127.0.0.1:{dead}\n")
        status, f, reason = run_drift({"paths": [str(env)], "connect_timeout": 0.5})
        assert status == "ok", reason
        ev = f["config.references_unreachable_endpoint"].evidence[0]
        assert ev.value == 1 and f"127.0.0.1:{dead}: connection refused" in ev.samples[0]
        assert "listens on it (a full accept queue" in ev.summary and f"127.0.0.1:{port}" in ev.summary
        env.write_text(f"BACKEND_URL=http://127.0.0.1:{port}/\n")
        status, f, reason = run_drift({"paths": [str(env)], "connect_timeout": 0.5})
        fd = f["config.references_unreachable_endpoint"]
        assert fd.state is State.ABSENT, fd.evidence[0].summary
        assert "timed out, listening here" in fd.evidence[0].samples[0]
    finally:
        for c in fillers:
            c.close()
        lsock.close()


def test_unresolvable_name(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_text("CACHE_URL=memcached://cache-1.invalid:11211\n")
    status, f, reason = run_drift({"paths": [str(env)], "resolve_timeout": 2.0})
    assert status == "ok", reason
    ev = f["config.references_unreachable_endpoint"].evidence[0]
    assert f["config.references_unreachable_endpoint"].state is State.PRESENT
    assert "does not resolve" in ev.samples[0] and "DNS symptom" in ev.samples[0]


def test_a_name_that_no_longer_exists_beside_one_that_answers_is_gone(tmp_path: Path) -> None:
    try:
        socket.getaddrinfo("cache-2.invalid", 11211)
        pytest.skip("this host's resolver answers for .invalid names")
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"this host's resolver gives no NXDOMAIN answer ({exc.strerror})")
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(4)
        env = tmp_path / "app.env"
        env.write_text(f"CACHE_URL=memcached://cache-2.invalid:11211\nDB_URL=postgres://localhost:{lst.getsockname()[1]}/app\n")
        status, f, reason = run_drift({"paths": [str(env)], "resolve_timeout": 2.0})
        assert status == "ok", reason
        gone = f["config.endpoint_gone"]
        assert gone.state is State.PRESENT, gone.evidence
        assert "no longer exist" in gone.evidence[0].summary and "cache-2.invalid" in gone.evidence[0].samples[0]
        # every address answering: nothing is gone
        env.write_text(f"DB_URL=postgres://localhost:{lst.getsockname()[1]}/app\n")
        status, f, reason = run_drift({"paths": [str(env)]})
        assert f["config.endpoint_gone"].state is State.ABSENT
    # refused: it exists and is down, or it is gone; the probe cannot tell, so it says nothing
    env.write_text(f"DB_URL=postgres://127.0.0.1:{closed_port()}/app\n")
    status, f, reason = run_drift({"paths": [str(env)]})
    assert "config.endpoint_gone" not in f


def test_unready_backend(tmp_path: Path, servers: Servers) -> None:
    healthy = [servers.http(200), servers.http(200)]
    fresh = servers.http(500)  # the backend just added: answers 500 while its peers answer 200
    main = nginx_conf(tmp_path, [*healthy, fresh])
    status, f, reason = run_drift({"nginx_conf": [str(main)]})
    assert status == "ok", reason
    single = f["http.errors_single_backend"]
    assert single.state is State.PRESENT
    assert single.evidence[0].samples[0] == f"app 127.0.0.1:{fresh}: HTTP 500"
    added = f["change.backend_added_recently"]
    assert added.state is State.PRESENT
    assert added.evidence[0].samples[0].startswith(f"app 127.0.0.1:{fresh} ")  # the failing one first
    assert f["config.references_unreachable_endpoint"].state is State.ABSENT
    diag = diagnose(load_kb(), list(f.values()))
    assert diag.hypotheses[0].id == "unready-backend", [(h.id, round(h.probability, 3)) for h in diag.hypotheses[:3]]


def test_healthy_pool_and_old_backends(tmp_path: Path, servers: Servers) -> None:
    ports = [servers.http(200), servers.http(200)]
    main = nginx_conf(tmp_path, ports)
    old = time.time() - 7200
    for p in (main, tmp_path / "conf.d" / "app.conf"):
        os.utime(p, (old, old))
    time.sleep(0.2)
    # "Recent" shorter than the servers' age: config two hours old, processes older than 0.1 s.
    status, f, reason = run_drift({"nginx_conf": [str(main)], "recent_minutes": 0.1 / 60})
    assert status == "ok", reason
    assert f["http.errors_single_backend"].state is State.ABSENT
    added = f["change.backend_added_recently"]
    assert added.state is State.ABSENT, added.evidence[0]
    # With a normal window the young processes are seen, by pid.
    status, f, reason = run_drift({"nginx_conf": [str(main)]})
    assert f["change.backend_added_recently"].state is State.PRESENT
    assert "its listener pid" in f["change.backend_added_recently"].evidence[0].summary

