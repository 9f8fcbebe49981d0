"""Drill: the web-tier scenarios on the real sandbox stack (nginx, gunicorn, memcached, PostgreSQL).

Each test runs a scenario end to end with ``run_scenario``: stack up, fault in,
ddx diagnosing until right, everything removed. While the broken stack is still
up (``hold``) the test records what a user would see by hand: the findings of a
full ``ddx diagnose --json``, the load generator's statuses, the logs, and the
fault's own state (the certificate nginx serves, who answers on each backend).
"""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from drillcheck import diagnose_json, present, run_passing

from ddx.drill.stack import Stack

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _status(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError as exc:
        return type(exc).__name__


def _verify_tls(port: int, cafile: Path) -> str:
    """A client that trusts the site's own certificate: 'ok' or why the handshake failed
    (the chain only: the drill's expired certificate carries no subjectAltName)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s, ctx.wrap_socket(s, server_hostname="127.0.0.1"):
            return "ok"
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)


def _evidence(stack: Stack, _started: float, _budget: float) -> dict[str, Any]:
    """What the broken stack shows, read before it is torn down."""
    out = diagnose_json(stack)
    lines = [ln.split() for ln in stack.access_log.read_text(errors="replace").splitlines()]
    upstreams = {w[-2].rstrip(",") for w in lines if len(w) > 2 and w[-2].startswith("127.0.0.1:")}  # $upstream_addr
    return {
        "present": present(out),
        "load": stack.load_stats(),
        "app_log": stack.app_log.read_text(errors="replace"),
        "gunicorn_log": stack.gunicorn_log.read_text(errors="replace"),
        "app_config": json.loads(stack.app_config.read_text()),
        "memcached_port": stack.ports["memcached"],
        "upstreams": sorted(upstreams),
        "health": _status(stack.url + "health"),
        "tls": _verify_tls(stack.ports["tls"], stack.dir / "nginx" / "tls" / "site.crt"),
        "postgres_running": stack.procs["postgres"].poll() is None,
    }




def test_request_size_limit(drill_ready: None) -> None:
    ev = run_passing("request-size-limit", _evidence).extra
    assert {"logs.request_too_large", "http.request_too_large", "http.5xx_rate_high"} <= set(ev["present"])
    assert "SERVER_ERROR object too large for cache" in ev["app_log"]
    total = ev["load"]["total"]
    assert total.get("500", 0) > 0 and total.get("200", 0) > total["500"]  # the small pages still work
    assert "svc.down" not in ev["present"]


def test_dependency_down(drill_ready: None) -> None:
    ev = run_passing("dependency-down", _evidence).extra
    assert {"svc.down", "logs.connection_refused", "http.5xx_rate_high"} <= set(ev["present"])
    assert not ev["postgres_running"]
    assert "Connection refused" in ev["app_log"]
    assert ev["load"]["total"].get("500", 0) > 0


def test_config_drift(drill_ready: None) -> None:
    ev = run_passing("config-drift", _evidence).extra
    assert {"config.references_unreachable_endpoint", "logs.connection_refused"} <= set(ev["present"])
    assert "svc.down" not in ev["present"]  # the cache the site had is up; the config names another
    nodes = ev["app_config"]["cache_servers"]
    assert len(nodes) == 2 and f"127.0.0.1:{ev['memcached_port']}" in nodes
    assert "ConnectionRefusedError" in ev["app_log"]


def test_unready_backend(drill_ready: None) -> None:
    ev = run_passing("unready-backend", _evidence).extra
    assert {"http.errors_single_backend", "change.backend_added_recently"} <= set(ev["present"])
    assert "No module named 'drill_views'" in ev["gunicorn_log"]
    assert len(ev["upstreams"]) >= 2  # nginx spread requests over both backends
    total = ev["load"]["total"]
    assert total.get("500", 0) > 0 and total.get("200", 0) > 0  # the old backend still answers


def test_tls_certificate_expired(drill_ready: None) -> None:
    ev = run_passing("tls-certificate-expired", _evidence).extra
    assert "tls.cert_expired" in ev["present"]
    assert "expired" in ev["tls"]  # a client that verifies fails the handshake
    assert ev["health"] == 200  # plain HTTP is untouched: only TLS clients fail
