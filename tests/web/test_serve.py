"""`ddx serve`: the real app under uvicorn on a free loopback port, a temporary
store, and an injected diagnosis that runs ddx's real engine on a case file
(so that no test probes this host, but for the one end-to-end test of the command)."""

from __future__ import annotations

import copy
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ddx.errors import ConfigError, UsageError
from ddx.watch.incidents import IncidentBook
from ddx.watch.store import Store
from ddx.web.app import create_app, parse_webhook
from ddx.web.settings import (
    Route,
    ServeSettings,
    fill_target,
    parse_listen,
    read_token,
    serve_settings,
    targets_for,
)

ROOT = Path(__file__).resolve().parents[2]
CASE = ROOT / "tests" / "cases" / "purelymail-2019-open-files.yaml"
TOKEN = "test-token-0123456789abcdef"
THIS_HOST = "ddx-test-host"


# --- the harness ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def case_report() -> dict[str, Any]:
    from ddx.api import diagnose_case
    from ddx.render.jsonout import to_dict

    report, _ = diagnose_case(str(CASE))
    out = to_dict(report.diagnosis)
    out["host"] = THIS_HOST
    return out


class Diagnoser:
    """The injected diagnosis: the case's real diagnosis; ``hold`` makes it wait."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.calls: list[list[str]] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self.running = 0
        self.most = 0
        self.error: Exception | None = None  # raised instead of answering, when set
        self._lock = threading.Lock()

    def hold(self) -> None:
        self.release.clear()
        self.entered.clear()

    def __call__(self, targets: list[str] | None = None) -> dict[str, Any]:
        with self._lock:
            self.calls.append(list(targets or ()))
            self.running += 1
            self.most = max(self.most, self.running)
        self.entered.set()
        try:
            assert self.release.wait(30), "the test never released the diagnosis"
            if self.error is not None:
                raise self.error
            return copy.deepcopy(self.report)
        finally:
            with self._lock:
                self.running -= 1


class RecordingSender:
    """Stands where ddx.watch.notify.Notifier goes: records what the book sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any] | None]] = []

    def send(self, kind: str, incident: Any, report: Any) -> None:
        self.sent.append((kind, incident.id, dict(report) if report is not None else None))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Reply:
    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)


class Served:
    """The app served by uvicorn in a thread, and what it was built with."""

    def __init__(self, folder: str, report: dict[str, Any], settings: ServeSettings) -> None:
        self.store = Store(os.path.join(folder, "ddx.db"))
        self.clock = Clock()
        self.sender = RecordingSender()
        self.book = IncidentBook(self.store, self.sender, clock=self.clock)
        self.diagnoser = Diagnoser(report)
        self.app = create_app(self.book, token=TOKEN, diagnose=self.diagnoser, settings=settings,
                              this_host=THIS_HOST)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.diagnoser.release.set()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.store.close()

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN,
                headers: dict[str, str] | None = None) -> Reply:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return Reply(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.headers, exc.read())

    def idle(self) -> None:
        assert self.app.state.intake.wait_idle(30), "the alert payloads were not handled in time"

    def incidents(self, **query: Any) -> list[dict[str, Any]]:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        r = self.request("GET", "/api/v1/incidents" + (f"?{q}" if q else ""))
        assert r.status == 200, r.body
        return list(r.json()["incidents"])


@pytest.fixture
def folder() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="ddx-serve-test-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


ROUTES = (Route({"job": ("redis",)}, ("redis://{instance}",)),
          Route({"job": ("web", "api")}, ("http://{instance}/healthz", "https://{host}:{port}/")))


@pytest.fixture
def served(folder: str, case_report: dict[str, Any]) -> Iterator[Served]:
    s = Served(folder, case_report, ServeSettings(routes=ROUTES, host_names=("web-0.example.com",)))
    try:
        yield s
    finally:
        s.stop()


def payload(group: str = "{}:{alertname=\"DiskFull\"}", status: str = "firing", alerts: list[dict[str, Any]] | None = None,
            common: dict[str, str] | None = None) -> dict[str, Any]:
    if alerts is None:
        alerts = [alert("fp1")]
    return {"version": "4", "groupKey": group, "truncatedAlerts": 0, "status": status, "receiver": "ddx",
            "groupLabels": {"alertname": "DiskFull"}, "commonLabels": common or {"alertname": "DiskFull"},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093", "alerts": alerts}


def alert(fp: str, status: str = "firing", starts: str = "2026-01-01T10:00:00Z", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": "DiskFull", **labels}, "annotations": {"summary": "disk"},
            "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-01-01T11:00:00Z",
            "generatorURL": "http://prometheus:9090/graph", "fingerprint": fp}


# --- authentication ---------------------------------------------------------------------------


ROUTES_TO_GUARD = [("GET", "/api/v1/incidents"), ("GET", "/api/v1/incidents/20260101-000000-abcd"),
                   ("POST", "/api/v1/diagnose"), ("POST", "/api/v1/alertmanager"), ("GET", "/api/v1/unknown")]


@pytest.mark.parametrize("method,path", ROUTES_TO_GUARD)
def test_every_route_needs_the_token(served: Served, method: str, path: str) -> None:
    body = payload() if method == "POST" else None
    for token, headers in ((None, None), ("wrong-token-0123456789", None), (None, {"Authorization": f"Basic {TOKEN}"}),
                           (TOKEN[:-1], None), (TOKEN + "x", None), ("", None)):
        r = served.request(method, path, body, token=token, headers=headers)
        assert r.status == 401, (token, headers, r.body)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"].startswith("unauthorized")
        assert TOKEN not in r.body.decode()
    # a token in the URL is never read
    r = served.request(method, f"{path}?token={TOKEN}&access_token={TOKEN}", body, token=None)
    assert r.status == 401
    assert served.diagnoser.calls == [] and served.store.count() == 0


def test_the_right_token_opens(served: Served) -> None:
    assert served.request("GET", "/api/v1/incidents").status == 200
    r = served.request("GET", "/api/v1/incidents", token=None, headers={"Authorization": f"bearer  {TOKEN} "})
    assert r.status == 200


def test_healthz_needs_no_token(served: Served) -> None:
    r = served.request("GET", "/healthz", token=None)
    assert r.status == 200 and r.json() == {"ok": True, "store": "ok"}


def test_healthz_says_when_the_store_fails(served: Served) -> None:
    served.store.close()
    r = served.request("GET", "/healthz", token=None)
    assert r.status == 200 and r.json()["ok"] is True
    assert r.json()["store"] != "ok" and "ddx.db" in r.json()["store"]


# --- the webhook: validation ----------------------------------------------------------------------


def _without(key: str) -> dict[str, Any]:
    p = payload()
    del p[key]
    return p


MALFORMED = [
    ("not JSON", b"{\"version\": \"4\", ", "the body is not JSON"),
    ("not UTF-8", b"\xff\xfe{}", "the body is not JSON"),
    ("empty", b"", "the body is not JSON"),
    ("a list", b"[1, 2]", "must be a JSON object"),
    ("a string", b"\"4\"", "must be a JSON object"),
    ("no version", _without("version"), "no 'version'"),
    ("version 3", {**payload(), "version": "3"}, "'version' is '3'"),
    ("version as a number", {**payload(), "version": 4}, "'version' is 4"),
    ("no groupKey", _without("groupKey"), "no 'groupKey'"),
    ("empty groupKey", {**payload(), "groupKey": ""}, "no 'groupKey'"),
    ("groupKey a number", {**payload(), "groupKey": 7}, "no 'groupKey'"),
    ("no alerts", _without("alerts"), "'alerts' must be a list of objects"),
    ("alerts an object", {**payload(), "alerts": {"a": 1}}, "'alerts' must be a list of objects"),
    ("alerts of strings", {**payload(), "alerts": ["firing"]}, "'alerts' must be a list of objects"),
    ("an alert without status", {**payload(), "alerts": [{"labels": {}}]}, "alerts[0].status"),
    ("labels not strings", {**payload(), "alerts": [{**alert("f"), "labels": {"a": 1}}]}, "alerts[0].labels"),
    ("status unknown", {**payload(), "status": "pending"}, "'status' must be"),
    ("deep nesting", b"[" * 100_000 + b"]" * 100_000, "the body"),
]


@pytest.mark.parametrize("name,body,reason", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_payloads_are_refused_with_the_reason(served: Served, name: str, body: Any, reason: str) -> None:
    r = served.request("POST", "/api/v1/alertmanager", body)
    assert r.status == 400, r.body
    error = r.json()["error"]
    assert reason in error and "\n" not in error and len(error) < 300
    served.idle()
    assert served.store.count() == 0 and served.diagnoser.calls == []


def test_a_body_over_1mb_is_refused(served: Served) -> None:
    big = json.dumps({**payload(), "padding": "x" * (1 << 20)}).encode()
    r = served.request("POST", "/api/v1/alertmanager", big)
    assert r.status == 413 and "1 MB" in r.json()["error"]
    # without a Content-Length (chunked): refused once past 1 MB
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        chunks = (big[i:i + 65536] for i in range(0, len(big), 65536))
        conn.request("POST", "/api/v1/alertmanager", body=chunks, encode_chunked=True,
                     headers={"Authorization": f"Bearer {TOKEN}", "Transfer-Encoding": "chunked"})
        resp = conn.getresponse()
        assert resp.status == 413
    finally:
        conn.close()
    r = served.request("POST", "/api/v1/diagnose", big)
    assert r.status == 413
    # a huge announced length: refused before any of the body is read
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as s:
        s.sendall(f"POST /api/v1/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n".encode())
        got = b""
        while b"MB" not in got and (chunk := s.recv(65536)):
            got += chunk
    assert got.startswith(b"HTTP/1.1 413 ") and b"larger than 1 MB" in got
    assert served.store.count() == 0 and served.diagnoser.calls == []


def test_unknown_fields_are_ignored(served: Served) -> None:
    p = payload(alerts=[{**alert("fp1"), "silencedBy": ["x"], "extra": {"deep": [1, 2]}}])
    p.update({"futureField": {"a": 1}, "commonAnnotations": {"runbook": "x"}, "truncatedAlerts": 0})
    r = served.request("POST", "/api/v1/alertmanager", p)
    assert r.status == 200 and r.json() == {"ok": True, "alerts": 1}
    served.idle()
    (inc,) = served.incidents()
    assert inc["key"] == "alertmanager:{}:{alertname=\"DiskFull\"}" and inc["source"] == "alertmanager"


def test_parse_webhook_reads_every_field() -> None:
    g = parse_webhook(json.dumps(payload(alerts=[alert("a1", instance="db-1:9100"),
                                                 {**alert("x", "resolved"), "fingerprint": None}])).encode())
    assert g.group_key == "{}:{alertname=\"DiskFull\"}" and g.status == "firing" and g.receiver == "ddx"
    assert g.common_labels == {"alertname": "DiskFull"} and g.external_url == "http://alertmanager:9093"
    assert [a.fingerprint for a in g.alerts][0] == "a1"
    assert len(g.alerts[1].fingerprint) == 16  # none given: made from the labels
    assert g.alerts[0].labels["instance"] == "db-1:9100" and g.alerts[0].starts_at == "2026-01-01T10:00:00Z"


# --- the webhook: incidents -----------------------------------------------------------------------


def test_the_answer_comes_before_the_diagnosis_ends(served: Served) -> None:
    served.diagnoser.hold()
    started = time.monotonic()
    r = served.request("POST", "/api/v1/alertmanager", payload())
    assert r.status == 200 and time.monotonic() - started < 5
    assert served.diagnoser.entered.wait(10)  # the diagnosis runs, and waits
    (inc,) = served.incidents()
    assert inc["status"] == "open" and inc["diagnosed"] == 0 and inc["host"] == THIS_HOST
    assert inc["title"] == f"DiskFull on {THIS_HOST}" and inc["labels"] == {"alertname": "DiskFull"}
    assert served.sender.sent == []
    # the server keeps answering meanwhile
    assert served.request("GET", "/healthz", token=None).status == 200
    served.diagnoser.release.set()
    served.idle()
    (inc,) = served.incidents()
    assert inc["diagnosed"] == 1 and inc["cause"] == "fd-exhaustion" and inc["probability"] > 0.5
    assert [(k, i) for k, i, _ in served.sender.sent] == [("opened", inc["id"])]
    assert served.sender.sent[0][2]["hypotheses"][0]["id"] == "fd-exhaustion"


def test_one_incident_per_group_and_alerts_by_fingerprint(served: Served) -> None:
    for _ in range(3):
        assert served.request("POST", "/api/v1/alertmanager", payload()).status == 200
    served.idle()
    assert served.diagnoser.calls == [[]]  # repeats with nothing new: no new diagnosis
    two = payload(alerts=[alert("fp1"), alert("fp2", device="sdb")])
    assert served.request("POST", "/api/v1/alertmanager", two).status == 200
    served.idle()
    assert len(served.diagnoser.calls) == 2  # a new alert in the group: diagnosed again
    other = payload(group="{}:{alertname=\"Load\"}", alerts=[alert("fp9")])
    assert served.request("POST", "/api/v1/alertmanager", other).status == 200
    served.idle()
    incs = served.incidents()
    assert sorted(i["key"] for i in incs) == ["alertmanager:{}:{alertname=\"DiskFull\"}",
                                              "alertmanager:{}:{alertname=\"Load\"}"]
    disk = next(i for i in incs if "DiskFull" in i["key"])
    shown = served.request("GET", f"/api/v1/incidents/{disk['id']}").json()
    assert [(a["fingerprint"], a["status"]) for a in shown["alerts"]] == [("fp1", "firing"), ("fp2", "firing")]
    assert shown["alerts"][1]["labels"]["device"] == "sdb"
    assert len(shown["diagnoses"]) == 2 and disk["diagnosed"] == 2
    assert [k for k, _, _ in served.sender.sent] == ["opened", "opened"]  # one per incident; same cause: no "changed"


def test_a_repeat_is_diagnosed_again_after_a_minute(served: Served) -> None:
    served.request("POST", "/api/v1/alertmanager", payload())
    served.idle()
    served.clock.now += 30
    served.request("POST", "/api/v1/alertmanager", payload())
    served.idle()
    assert len(served.diagnoser.calls) == 1
    served.clock.now += 31
    served.request("POST", "/api/v1/alertmanager", payload())
    served.idle()
    assert len(served.diagnoser.calls) == 2
    # an alert that fires again (a new startsAt) is new
    served.request("POST", "/api/v1/alertmanager", payload(alerts=[alert("fp1", starts="2026-01-01T12:00:00Z")]))
    served.idle()
    assert len(served.diagnoser.calls) == 3


def test_concurrent_payloads_of_one_group_diagnose_once(served: Served) -> None:
    served.diagnoser.hold()
    replies: list[int] = []

    def post() -> None:
        replies.append(served.request("POST", "/api/v1/alertmanager", payload()).status)

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert replies == [200] * 8
    assert served.diagnoser.entered.wait(10)
    time.sleep(0.3)
    served.diagnoser.release.set()
    served.idle()
    assert len(served.diagnoser.calls) == 1 and served.diagnoser.most == 1
    (inc,) = served.incidents()
    assert inc["diagnosed"] == 1


def test_a_resolved_group_closes_its_incident(served: Served) -> None:
    served.request("POST", "/api/v1/alertmanager", payload(alerts=[alert("fp1"), alert("fp2")]))
    # one alert resolves: still open
    served.request("POST", "/api/v1/alertmanager", payload(alerts=[alert("fp1"), alert("fp2", "resolved")]))
    served.idle()
    (inc,) = served.incidents()
    assert inc["status"] == "open"
    served.request("POST", "/api/v1/alertmanager",
                   payload(status="resolved", alerts=[alert("fp1", "resolved"), alert("fp2", "resolved")]))
    served.idle()
    (inc,) = served.incidents()
    assert inc["status"] == "resolved" and inc["resolved_at"]
    shown = served.request("GET", f"/api/v1/incidents/{inc['id']}").json()
    assert {a["status"] for a in shown["alerts"]} == {"resolved"}
    kinds = [e["kind"] for e in shown["events"]]
    assert kinds[0] == "opened" and kinds[-1] == "resolved" and "diagnosis" in kinds and "alert" in kinds
    assert [k for k, _, _ in served.sender.sent] == ["opened", "resolved"]
    # the group fires again: a new incident
    served.request("POST", "/api/v1/alertmanager", payload())
    served.idle()
    incs = served.incidents()
    assert len(incs) == 2 and {i["status"] for i in incs} == {"open", "resolved"}
    assert len({i["key"] for i in incs}) == 1
    # resolved for a group with no open incident: nothing to do
    served.request("POST", "/api/v1/alertmanager", payload(group="{}:{x=\"y\"}", status="resolved",
                                                           alerts=[alert("z", "resolved")]))
    served.idle()
    assert len(served.incidents()) == 2


def test_routes_choose_the_targets(served: Served) -> None:
    redis = payload(group="g-redis", common={"alertname": "RedisDown", "job": "redis", "instance": "10.1.2.3:6379"},
                    alerts=[alert("r1", job="redis", instance="10.1.2.3:6379")])
    web = payload(group="g-web", common={"alertname": "Slow", "job": "web"},
                  alerts=[alert("w1", job="web", instance="app-1:8080", host="app-1", port="8080"),
                          alert("w2", job="web", instance="app-2:8080", host="app-2", port="8080")])
    local = payload(group="g-local", common={"alertname": "Load", "job": "node", "instance": "web-0.example.com:9100"},
                    alerts=[alert("n1", job="node", instance="web-0.example.com:9100")])
    unsafe = payload(group="g-unsafe", common={"alertname": "X", "job": "redis", "instance": "u:p@evil/x"},
                     alerts=[alert("e1", job="redis", instance="u:p@evil/x")])
    for p in (redis, web, local, unsafe):
        assert served.request("POST", "/api/v1/alertmanager", p).status == 200
        served.idle()
    assert served.diagnoser.calls == [
        ["redis://10.1.2.3:6379"],
        ["http://app-1:8080/healthz", "https://app-1:8080/", "http://app-2:8080/healthz", "https://app-2:8080/"],
        [],
        [],
    ]
    by_key = {i["key"]: i for i in served.incidents()}
    assert by_key["alertmanager:g-redis"]["host"] == "10.1.2.3"
    assert by_key["alertmanager:g-web"]["host"] == THIS_HOST  # two instances: no one host
    assert by_key["alertmanager:g-local"]["host"] == THIS_HOST  # a name of this host
    events = served.request("GET", f"/api/v1/incidents/{by_key['alertmanager:g-unsafe']['id']}").json()["events"]
    assert any("left out" in e["text"] and "not a host" in e["text"] for e in events)


def test_a_failed_diagnosis_goes_on_the_timeline(served: Served) -> None:
    served.diagnoser.error = UsageError("--target redis://:s3cret@db:6379: no probe handles this")
    served.request("POST", "/api/v1/alertmanager", payload())
    served.idle()
    (inc,) = served.incidents()
    shown = served.request("GET", f"/api/v1/incidents/{inc['id']}")
    assert "diagnosis failed" in shown.body.decode() and "s3cret" not in shown.body.decode()
    assert inc["status"] == "open" and served.sender.sent == []


# --- list, show, diagnose now ---------------------------------------------------------------------


def test_list_and_show(served: Served) -> None:
    served.request("POST", "/api/v1/alertmanager", payload())
    served.idle()
    served.clock.now += 5
    r = served.request("POST", "/api/v1/diagnose")
    assert r.status == 200
    manual_id = r.headers["X-DDX-Incident"]
    incs = served.incidents()
    assert [i["source"] for i in incs] == ["manual", "alertmanager"]  # newest first
    assert [i["source"] for i in served.incidents(status="open")] == ["alertmanager"]
    assert [i["source"] for i in served.incidents(status="resolved")] == ["manual"]
    assert [i["id"] for i in served.incidents(source="manual")] == [manual_id]
    assert [i["source"] for i in served.incidents(limit=1, offset=1)] == ["alertmanager"]
    assert len(served.incidents(cause="fd-exhaustion")) == 2 and served.incidents(cause="disk-full") == []
    assert len(served.incidents(host=THIS_HOST)) == 2 and served.incidents(host="elsewhere") == []
    for query, reason in (("status=closed", "status"), ("limit=0", "limit"), ("limit=x", "limit"),
                          ("offset=-1", "offset"), ("state=open", "unknown parameter")):
        r = served.request("GET", f"/api/v1/incidents?{query}")
        assert r.status == 400 and reason in r.json()["error"], query
    shown = served.request("GET", f"/api/v1/incidents/{incs[1]['id']}").json()
    assert set(shown) == {"incident", "events", "diagnoses", "alerts", "notifications"}
    assert shown["incident"]["id"] == incs[1]["id"]
    assert shown["diagnoses"][0]["report"]["hypotheses"][0]["id"] == "fd-exhaustion"
    assert shown["diagnoses"][0]["at"].endswith("Z")
    assert shown["notifications"] == []
    r = served.request("GET", "/api/v1/incidents/20200101-000000-ffff")
    assert r.status == 404 and "no incident" in r.json()["error"]
    r = served.request("GET", "/api/v1/nowhere")
    assert r.status == 404 and r.json()["error"]
    r = served.request("DELETE", "/api/v1/incidents")
    assert r.status == 405 and r.json()["error"]


def test_diagnose_now(served: Served, case_report: dict[str, Any]) -> None:
    r = served.request("POST", "/api/v1/diagnose")
    assert r.status == 200
    assert r.json() == case_report and r.json()["host"] == THIS_HOST
    shown = served.request("GET", f"/api/v1/incidents/{r.headers['X-DDX-Incident']}").json()
    inc = shown["incident"]
    assert inc["source"] == "manual" and inc["key"].startswith("manual:") and inc["status"] == "resolved"
    assert inc["cause"] == "fd-exhaustion" and len(shown["diagnoses"]) == 1
    assert served.sender.sent == []  # whoever asked has the answer: no notification
    r = served.request("POST", "/api/v1/diagnose", {"targets": ["redis://:pw@127.0.0.1:6379", "https://x/"],
                                                     "other": 1})
    assert r.status == 200 and served.diagnoser.calls[-1] == ["redis://:pw@127.0.0.1:6379", "https://x/"]
    shown = served.request("GET", f"/api/v1/incidents/{r.headers['X-DDX-Incident']}").body.decode()
    assert "pw@" not in shown and "***" in shown
    for body, reason in ((b"{", "not JSON"), (b"[]", "JSON object"), ({"targets": "redis://x"}, "list of URLs"),
                         ({"targets": ["ftp://x"]}, "not a URL ddx probes"), ({"targets": [1]}, "list of URLs")):
        r = served.request("POST", "/api/v1/diagnose", body)
        assert r.status == 400 and reason in r.json()["error"], body
    assert len(served.diagnoser.calls) == 2


def test_diagnose_now_runs_off_the_event_loop(served: Served) -> None:
    served.diagnoser.hold()
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(served.request("POST", "/api/v1/diagnose").status))
    t.start()
    assert served.diagnoser.entered.wait(10)
    assert served.request("GET", "/healthz", token=None).status == 200  # the loop is free
    served.diagnoser.release.set()
    t.join(30)
    assert done == [200]


def test_diagnose_now_refuses_past_the_limit(served: Served) -> None:
    served.diagnoser.hold()
    replies: list[int] = []
    threads = [threading.Thread(target=lambda: replies.append(served.request("POST", "/api/v1/diagnose").status))
               for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while served.diagnoser.running < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    r = served.request("POST", "/api/v1/diagnose")
    assert r.status == 429 and r.headers["Retry-After"] and "busy" in r.json()["error"]
    served.diagnoser.release.set()
    for t in threads:
        t.join(30)
    assert replies == [200, 200]


def test_diagnosis_errors_are_one_line(served: Served) -> None:
    served.diagnoser.error = UsageError("--target redis://nowhere: cannot resolve")
    r = served.request("POST", "/api/v1/diagnose")
    assert r.status == 400 and r.json() == {"error": "--target redis://nowhere: cannot resolve"}
    served.diagnoser.error = RuntimeError("a bug")
    r = served.request("POST", "/api/v1/diagnose")
    assert r.status == 500 and "internal error" in r.json()["error"]
    r = served.request("POST", "/api/v1/diagnose")  # the failed ones gave their place back
    assert r.status == 500
    assert served.store.count() == 0


# --- settings -------------------------------------------------------------------------------------


def test_settings_defaults_and_a_full_table() -> None:
    s = serve_settings({}, None)
    assert (s.listen, s.store, s.token_file, s.diagnose_budget, s.rediagnose_s, s.routes) == \
        ("127.0.0.1:8923", "/var/lib/ddx/ddx.db", None, 10.0, 60.0, ())
    s = serve_settings({
        "serve": {"listen": "[::1]:9000", "token_file": "/etc/ddx/token", "store": "/srv/ddx.db", "diagnose_budget": 5},
        "alertmanager": {"rediagnose_s": 120, "host_names": ["web-1"], "route": [
            {"match": {"job": "redis"}, "targets": ["redis://{instance}"]},
            {"match": {"job": ["web", "api"], "env": "prod"}, "targets": ["http://{instance}/", "https://{host}/"]},
            {"targets": []},
        ]},
    }, "/etc/ddx/ddx.toml")
    assert s.listen == "[::1]:9000" and s.diagnose_budget == 5.0 and s.rediagnose_s == 120.0
    assert s.host_names == ("web-1",) and len(s.routes) == 3
    assert s.routes[1].match == {"job": ("web", "api"), "env": ("prod",)}
    assert targets_for(s.routes, {"job": "api", "env": "prod", "instance": "a:1", "host": "a"}) == \
        (["http://a:1/", "https://a/"], [])
    assert targets_for(s.routes, {"job": "api", "env": "dev", "instance": "a:1"}) == ([], [])  # the catch-all route
    assert targets_for(s.routes[:2], {"job": "mysql"}) == ([], [])


BAD_SETTINGS = [
    ({"serve": {"listne": "x"}}, "[serve] unknown key 'listne' (did you mean 'listen'?)"),
    ({"serve": {"listen": "8923"}}, "[serve] key 'listen': '8923': expected HOST:PORT"),
    ({"serve": {"listen": "127.0.0.1:99999"}}, "[serve] key 'listen': '127.0.0.1:99999': the port"),
    ({"serve": {"listen": 8923}}, "[serve] key 'listen':"),
    ({"serve": {"diagnose_budget": 0}}, "[serve] key 'diagnose_budget': 0 is outside 1..600"),
    ({"serve": {"diagnose_budget": "10"}}, "[serve] key 'diagnose_budget': expected a number"),
    ({"serve": {"token_file": ""}}, "[serve] key 'token_file': expected a file path"),
    ({"serve": {"store": 3}}, "[serve] key 'store': expected a file path"),
    ({"alertmanager": {"routes": []}}, "[alertmanager] unknown key 'routes' (did you mean 'route'?)"),
    ({"alertmanager": {"rediagnose_s": -1}}, "[alertmanager] key 'rediagnose_s'"),
    ({"alertmanager": {"host_names": "web-1"}}, "[alertmanager] key 'host_names'"),
    ({"alertmanager": {"route": [{"match": {"job": "x"}}]}}, "[[alertmanager.route]] #1: 'targets' is required"),
    ({"alertmanager": {"route": [{"targets": [], "matchers": {}}]}}, "[[alertmanager.route]] #1 unknown key 'matchers'"),
    ({"alertmanager": {"route": [{"match": "job=x", "targets": []}]}}, "#1 key 'match': expected a table"),
    ({"alertmanager": {"route": [{"match": {"job": 1}, "targets": []}]}}, "#1 key 'match': label 'job'"),
    ({"alertmanager": {"route": [{"match": {"job-name": "x"}, "targets": []}]}}, "is not a label name"),
    ({"alertmanager": {"route": [{"targets": "redis://{instance}"}]}}, "key 'targets': expected a list"),
    ({"alertmanager": {"route": [{"targets": []}, {"targets": ["ftp://{instance}"]}]}},
     "[[alertmanager.route]] #2 key 'targets': 'ftp://{instance}': unknown scheme 'ftp'"),
    ({"alertmanager": {"route": [{"targets": ["{scheme}://x"]}]}}, "expected a URL like"),
    ({"alertmanager": {"route": [{"targets": ["redis://{instance.__class__}"]}]}}, "is not a label name"),
    ({"alertmanager": {"route": [{"targets": ["redis://{instance:>10}"]}]}}, "is not a label name"),
    ({"alertmanager": {"route": [{"targets": ["redis://{instance"]}]}}, "a brace"),
    ({"alertmanager": {"route": "x"}}, "key 'route': expected tables"),
]


@pytest.mark.parametrize("tables,message", BAD_SETTINGS, ids=[str(i) for i in range(len(BAD_SETTINGS))])
def test_bad_settings_are_one_line_naming_file_table_and_key(tables: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        serve_settings(tables, "/etc/ddx/ddx.toml")
    text = str(err.value)
    assert text.startswith("/etc/ddx/ddx.toml: ") and message in text and "\n" not in text, text


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8923") == ("127.0.0.1", 8923)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen("localhost:1") == ("localhost", 1)
    for bad in ("", ":80", "::1:80", "host", "host:", "host:0", "[::1]80", "a b:1"):
        with pytest.raises(UsageError, match="--listen"):
            parse_listen(bad)


def test_fill_target_only_takes_hosts_and_ports() -> None:
    assert fill_target("redis://{instance}", {"instance": "[fe80::1%25eth0]:6379"}) == \
        ("redis://[fe80::1%25eth0]:6379", "")
    for value in ("u:pw@host", "host/path", "host?x=1", "host#f", "a b", "", "h\n"):
        url, why = fill_target("redis://{instance}", {"instance": value})
        assert url is None and why, value
    assert fill_target("redis://{instance}", {}) == (None, "the alert has no label 'instance'")


def test_the_token(folder: str) -> None:
    path = os.path.join(folder, "token")
    Path(path).write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    s = ServeSettings(token_file=path, where="/etc/ddx/ddx.toml")
    warnings: list[str] = []
    assert read_token(s, {}, warn=warnings.append) == TOKEN and warnings == []
    assert read_token(s, {"DDX_TOKEN": "from-the-environment-1234"}) == "from-the-environment-1234"
    os.chmod(path, 0o644)
    read_token(s, {}, warn=warnings.append)
    assert warnings and "chmod 600" in warnings[0] and TOKEN not in warnings[0]
    with pytest.raises(UsageError) as err:
        read_token(ServeSettings(), {"DDX_TOKEN": "  "})
    assert "needs an API token" in str(err.value) and "DDX_TOKEN" in str(err.value) and "token_file" in str(err.value)
    with pytest.raises(ConfigError) as err:
        read_token(ServeSettings(token_file=os.path.join(folder, "none"), where="/etc/ddx/ddx.toml"), {})
    assert str(err.value).startswith("/etc/ddx/ddx.toml: [serve] key 'token_file': ") and "not found" in str(err.value)
    Path(path).write_text("short\n")
    with pytest.raises(UsageError) as err:
        read_token(s, {})
    assert "16 to 4096 characters" in str(err.value) and "short" not in str(err.value)
    with pytest.raises(UsageError) as err:
        read_token(s, {"DDX_TOKEN": "has a space in it, quite long"})
    assert "visible ASCII" in str(err.value) and "space in it" not in str(err.value)
    Path(path).write_text("")
    with pytest.raises(ConfigError, match="empty"):
        read_token(s, {})


# --- `ddx serve`, the command, end to end ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# `serve` is run through ddx's own main(), registered if the command list does not name it yet.
MAIN = ("import sys, ddx.cli as c\n"
        "if 'serve' not in c.COMMAND_MODULES: c.COMMAND_MODULES = (*c.COMMAND_MODULES, 'serve')\n"
        "sys.exit(c.main(sys.argv[1:]))\n")


def _ddx(*args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("DDX_TOKEN", "DDX_CONFIG")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-c", MAIN, *args], env=full, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def test_ddx_serve_needs_a_token(folder: str) -> None:
    cfg = Path(folder, "ddx.toml")
    cfg.write_text("[serve]\ndiagnose_budget = 3\n")
    p = _ddx("serve", "--listen", f"127.0.0.1:{_free_port()}", "--config", str(cfg), "--store",
             os.path.join(folder, "ddx.db"), env={}, cwd=folder)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "needs an API token" in err and "DDX_TOKEN" in err, err
    assert not Path(folder, "ddx.db").exists()
    cfg.write_text("[serve]\nlisten = 8923\n")
    p = _ddx("serve", "--config", str(cfg), env={"DDX_TOKEN": TOKEN}, cwd=folder)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2 and f"{cfg}: [serve] key 'listen':" in err, err


def test_ddx_serve_end_to_end(folder: str) -> None:
    port = _free_port()
    cfg = Path(folder, "ddx.toml")
    cfg.write_text("[serve]\ndiagnose_budget = 5\n")
    store = os.path.join(folder, "ddx.db")
    p = _ddx("serve", "--listen", f"127.0.0.1:{port}", "--config", str(cfg), "--store", store,
             env={"DDX_TOKEN": TOKEN}, cwd=folder)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert p.poll() is None, p.communicate()[1]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert json.loads(r.read()) == {"ok": True, "store": "ok"}
                    break
            except OSError:
                assert time.monotonic() < deadline, "ddx serve did not answer"
                time.sleep(0.2)

        def call(method: str, path: str, token: str = TOKEN) -> tuple[int, Any]:
            req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=b"" if method == "POST" else None,
                                         headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    return r.status, json.loads(r.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        assert call("GET", "/api/v1/incidents", "wrong-token-0123456789")[0] == 401
        status, report = call("POST", "/api/v1/diagnose")  # the real diagnosis of this host
        assert status == 200, report
        assert report["schema"] == "ddx.diagnosis/1" and report["mode"] == "host" and report["host"]
        status, listed = call("GET", "/api/v1/incidents")
        assert status == 200 and [i["source"] for i in listed["incidents"]] == ["manual"]
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
        assert p.returncode == 128 + signal.SIGTERM, err
        assert "stopped by SIGTERM" in err and "Traceback" not in err, err
        assert TOKEN not in out + err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    again = Store(store)
    try:
        assert again.count() == 1
    finally:
        again.close()
