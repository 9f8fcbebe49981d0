"""Real parts: Debian's Prometheus fires an alert at once (``vector(1)``, ``for: 0s``),
a real Alertmanager posts it to ``ddx serve``'s webhook with the token, and an
incident keyed by the alert's groupKey appears with a diagnosis.

Both run on free loopback ports with temporary data folders (Alertmanager
without clustering), and are stopped and their folders removed whatever
happens. The diagnosis is injected (the real engine on a case file), so the test
does not depend on the state of this host. The book's sender is the notifier
``ddx serve`` builds from ``[notify.webhook]``, delivering to a real endpoint on
loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from webhook import Receiver

from ddx.watch.incidents import IncidentBook
from ddx.watch.notify import build_notifier
from ddx.watch.store import Store
from ddx.web.app import create_app
from ddx.web.settings import ServeSettings

PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "cases" / "purelymail-2019-open-files.yaml"
TOKEN = "live-test-token-0123456789abcdef"
ALERT = "DdxLiveTestAlert"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason=f"{PROMETHEUS} is not installed (apt-get install prometheus)"),
    pytest.mark.skipif(not os.access(ALERTMANAGER, os.X_OK),
                       reason=f"{ALERTMANAGER} is not installed (apt-get install prometheus-alertmanager)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(15)


def _get(url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return json.loads(r.read())


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.HTTPError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{proc.args[0]} not ready at {url}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _rules(expr: str) -> str:
    return json.dumps({"groups": [{"name": "ddx-live", "interval": "1s", "rules": [
        {"alert": ALERT, "expr": expr, "for": "0s", "labels": {"severity": "page", "job": "ddx-test"},
         "annotations": {"summary": "fires at once"}}]}]})


def _until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.1)


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[int]:
    """``app`` under uvicorn in a thread on a free loopback port; yields the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the ddx app did not start"
            time.sleep(0.02)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def folder() -> Iterator[Path]:
    path = tempfile.mkdtemp(prefix="ddx-am-live-")
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_an_alert_from_prometheus_through_alertmanager_becomes_a_diagnosed_incident(folder: Path) -> None:
    from ddx.api import diagnose_case
    from ddx.render.jsonout import to_dict

    case, _ = diagnose_case(str(CASE))
    report = to_dict(case.diagnosis)
    calls: list[list[str]] = []

    def diagnose(targets: list[str] | None = None) -> dict[str, Any]:
        calls.append(list(targets or ()))
        return {**report, "host": socket.gethostname()}

    with contextlib.ExitStack() as stack:  # undone in reverse: the server, the notifier, the receiver, the store
        store = Store(str(folder / "ddx.db"))
        stack.callback(store.close)
        receiver = Receiver()
        stack.callback(receiver.close)
        config = SimpleNamespace(path="ddx.toml",
                                 service={"notify": {"webhook": {"url": receiver.url, "min_interval": 0}}})
        notifier = build_notifier(config, store)  # as `ddx serve` builds it
        stack.callback(notifier.close, 5)
        book = IncidentBook(store, notifier)
        app = create_app(book, token=TOKEN, diagnose=diagnose, settings=ServeSettings())
        ddx_port = stack.enter_context(_serving(app))  # ddx serve's app, in this process, on a free port
        _alert_to_incident(folder, app, ddx_port, receiver, store, calls)


def _alert_to_incident(folder: Path, app: Any, ddx_port: int, receiver: Receiver, store: Store, calls: list[list[str]]) -> None:
    am_port, prom_port = _free_port(), _free_port()
    (folder / "am-data").mkdir()
    (folder / "prom-data").mkdir()
    (folder / "alertmanager.yml").write_text(json.dumps({  # YAML is a superset of JSON
        "route": {"receiver": "ddx", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "2s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "ddx", "webhook_configs": [{
            "url": f"http://127.0.0.1:{ddx_port}/api/v1/alertmanager", "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}}}]}],
    }))
    os.chmod(folder / "alertmanager.yml", 0o600)
    rules = folder / "rules.yml"
    rules.write_text(_rules("vector(1)"))
    (folder / "prometheus.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
    }))
    am_log, prom_log = folder / "alertmanager.log", folder / "prometheus.log"

    def incident(status: str) -> dict[str, Any] | None:
        app.state.intake.wait_idle(5)
        listed = _get(f"http://127.0.0.1:{ddx_port}/api/v1/incidents?source=alertmanager", TOKEN)["incidents"]
        return next((i for i in listed if i["status"] == status and i["diagnosed"] > 0), None)

    def wait_for(status: str, procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
        deadline = time.monotonic() + 90
        while True:
            assert all(p.poll() is None for p in procs), "Prometheus or Alertmanager exited"
            found = incident(status)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                pytest.fail(f"no {status} incident from Alertmanager within 90 s\n--- alertmanager:\n"
                            f"{am_log.read_text(errors='replace')[-3000:]}\n--- prometheus:\n"
                            f"{prom_log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)

    with _process([ALERTMANAGER, f"--config.file={folder / 'alertmanager.yml'}",
                   f"--storage.path={folder / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
                   "--cluster.listen-address="], am_log) as am:
        _wait_ready(f"http://127.0.0.1:{am_port}/-/ready", am, am_log)
        with _process([PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}",
                       f"--storage.tsdb.path={folder / 'prom-data'}",
                       f"--web.listen-address=127.0.0.1:{prom_port}",
                       # the first alerts go out before Prometheus has found Alertmanager (its discovery
                       # updates every 5 s) and are sent again only after this delay (default 1m)
                       "--rules.alert.resend-delay=1s"], prom_log) as prom:
            _wait_ready(f"http://127.0.0.1:{prom_port}/-/ready", prom, prom_log)
            found = wait_for("open", [am, prom])

            # Alertmanager's group key of the root route grouped by alertname
            assert found["key"] == f'alertmanager:{{}}:{{alertname="{ALERT}"}}'
            assert found["host"] == socket.gethostname() and found["cause"] == "fd-exhaustion"
            assert found["labels"]["alertname"] == ALERT and found["labels"]["job"] == "ddx-test"
            shown = _get(f"http://127.0.0.1:{ddx_port}/api/v1/incidents/{found['id']}", TOKEN)
            assert shown["diagnoses"] and shown["diagnoses"][0]["report"]["hypotheses"]
            (stored,) = shown["alerts"]
            assert stored["status"] == "firing" and stored["labels"]["alertname"] == ALERT
            assert stored["fingerprint"]
            assert any(e["kind"] == "alert" for e in shown["events"])
            assert calls and calls[0] == []  # no route: this host alone
            _until(lambda: receiver.kinds(found["id"]) == ["opened"], "the 'opened' notification")

            # the rule stops firing: Prometheus resolves the alert, Alertmanager the group
            rules.write_text(_rules("vector(1) unless vector(1)"))
            prom.send_signal(signal.SIGHUP)
            closed = wait_for("resolved", [am, prom])
    assert closed["id"] == found["id"] and closed["resolved_at"]
    _until(lambda: receiver.kinds(found["id"]) == ["opened", "resolved"], "the 'resolved' notification")
    assert receiver.got[0]["causes"][0]["id"] == "fd-exhaustion"
    _until(lambda: [(n["kind"], n["status"]) for n in store.notifications(found["id"])]
           == [("opened", "sent"), ("resolved", "sent")], "the notifications recorded in the store")
    shown = _get(f"http://127.0.0.1:{ddx_port}/api/v1/incidents/{found['id']}", TOKEN)
    assert [a["status"] for a in shown["alerts"]] == ["resolved"]
    assert len(calls) == 1  # one diagnosis for the group however often Alertmanager sent it
    listed = _get(f"http://127.0.0.1:{ddx_port}/api/v1/incidents", TOKEN)["incidents"]
    assert [i["key"] for i in listed] == [found["key"]]
