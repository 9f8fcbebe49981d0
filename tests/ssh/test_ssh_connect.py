"""Connections made from the remote host (``SshHost.connect``, ``ddx.host.net``): a probe's
TCP or Unix-socket exchange with a service there is relayed by the agent, so 127.0.0.1:PORT
is that host's loopback. The "remote" host is this machine (the test sshd), and the services
are real: memcached, Redis, Python's HTTP server, a Unix-socket server."""

from __future__ import annotations

import contextlib
import http.server
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshserver import Sshd, free_port, sshd_server  # noqa: F401 - the sshd fixture

from ddx.host import LiveHost, RecordingHost
from ddx.host.net import can_connect, open_connection
from ddx.host.ssh import SshHost

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "probes"))
from test_memcached import memcached_server  # noqa: E402
from test_redis import redis_server  # noqa: E402


@pytest.fixture
def host(sshd: Sshd) -> Iterator[SshHost]:
    with SshHost("sshtest", ssh_config=str(sshd.client_config), connect_timeout=5) as h:
        yield h


@contextlib.contextmanager
def http_files(folder: Path) -> Iterator[int]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(folder), **kw)  # type: ignore[arg-type]

        def log_message(self, *a: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def _get(sock: socket.socket, path: str) -> bytes:
    with sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_a_large_reply_comes_back_whole_and_in_order(host: SshHost, tmp_path: Path) -> None:
    blob = os.urandom(3 << 20)
    (tmp_path / "blob").write_bytes(blob)
    with http_files(tmp_path) as port:
        assert can_connect(host) and can_connect(RecordingHost(host))
        remote = _get(open_connection(host, ("127.0.0.1", port), 5.0), "/blob")
        here = _get(open_connection(LiveHost(), ("127.0.0.1", port), 5.0), "/blob")
        recorded = _get(open_connection(RecordingHost(host), ("127.0.0.1", port), 5.0), "/blob")
    assert remote.split(b"\r\n\r\n", 1)[1] == blob == here.split(b"\r\n\r\n", 1)[1]
    assert recorded.split(b"\r\n\r\n", 1)[1] == blob
    end = time.monotonic() + 5
    while host._relays and time.monotonic() < end:  # each relay ends when both sides are done
        time.sleep(0.05)
    assert host._relays == {}


def test_connect_errors_are_the_ones_made_there(host: SshHost) -> None:
    with pytest.raises(ConnectionRefusedError):
        open_connection(host, ("127.0.0.1", free_port()), 2.0)
    with pytest.raises(OSError) as err:
        open_connection(host, ("no-such-host.invalid", 80), 3.0)
    assert err.value.errno is not None and err.value.errno < 0  # getaddrinfo's, as drift tells them apart
    with pytest.raises(FileNotFoundError):
        open_connection(host, "/ddx-no-such.sock", 2.0)
    assert host.read_text("/proc/version")  # the session goes on


def test_a_unix_socket_there(host: SshHost, tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.sendall(b"hello " + conn.recv(100))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with open_connection(host, path, 3.0) as s:
            s.sendall(b"there")
            got = b"".join(iter(lambda: s.recv(100), b""))
    finally:
        t.join(5)
        srv.close()
    assert got == b"hello there"


def test_a_silent_server_times_the_probe_out_not_the_session(host: SshHost) -> None:
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(1)
    try:
        s = open_connection(host, mute.getsockname(), 0.5)
        t0 = time.monotonic()
        with s, pytest.raises(TimeoutError):
            s.recv(10)
        assert time.monotonic() - t0 < 3
    finally:
        mute.close()
    assert host.read_text("/proc/version")


def test_memcached_and_redis_probes_read_the_services_there(host: SshHost) -> None:
    from ddx.probes.services import memcached, redis
    from ddx.probes.services.cacheproto import Target

    with memcached_server() as mport, redis_server() as rport:
        m_remote = memcached.read_sample(Target("memcached", "127.0.0.1", mport), 3.0, host)
        m_here = memcached.read_sample(Target("memcached", "127.0.0.1", mport), 3.0)
        r_remote = redis.read_sample(Target("redis", "127.0.0.1", rport), 3.0, host)
    assert m_remote["pid"] == m_here["pid"] and "settings.maxconns" in m_remote
    assert r_remote["tcp_port"] == str(rport) and "config.maxmemory" in r_remote


def test_a_diagnosis_over_ssh_checks_the_services_there(sshd: Sshd, tmp_path: Path) -> None:
    from ddx.api import SshOptions, diagnose_host

    with memcached_server() as mport:
        cfg = tmp_path / "ddx.toml"
        cfg.write_text(f'[probe.memcached]\ntargets = ["memcached://127.0.0.1:{mport}"]\ndiscover = false\n')
        report = diagnose_host(config=str(cfg), only=["memcached"], window=1,
                               ssh=SshOptions("sshtest", str(sshd.client_config)))
    probe = {p.name: p for p in report.probes}["memcached"]
    assert probe.status == "ok", probe
    assert not [r for r, _ in report.diagnosis.not_looked_at() if "remote over SSH" in r]
