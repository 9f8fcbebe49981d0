"""Notifications (ddx.watch.notify): settings, message content, and delivery to
real local servers: HTTP for the webhook and Slack's API, aiosmtpd for email."""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddx.errors import ConfigError, UsageError
from ddx.watch.notify import (
    EmailChannel,
    Notifier,
    SlackChannel,
    WebhookChannel,
    build_message,
    notify_settings,
)
from ddx.watch.store import Incident

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "schema" / "notification.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
WHERE = "/etc/ddx/ddx.toml"
TOKEN = "xoxb-1111-SECRET-TOKEN-abcdef"
HOOK_SECRET = "T000/B000/HOOKSECRETxyz123"
PASSWORD = "sm7p-PASSWORD-s3cret"


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_leftover_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test stops what it started: its notifier's thread, its servers."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    before = set(threading.enumerate())
    yield
    end = time.monotonic() + 5
    while time.monotonic() < end:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra:
            break
        time.sleep(0.02)
    assert not extra, f"threads left behind: {extra}"


class Records:
    """The notifier's ``record`` callback, with a way to wait for outcomes."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str, str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, incident_id: str, channel: str, kind: str, status: str, detail: str, ref: str) -> None:
        with self._cond:
            self.rows.append((incident_id, channel, kind, status, detail, ref))
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 15.0) -> list[tuple[str, str, str, str, str, str]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.rows) >= n, timeout), f"only {self.rows}"
            return list(self.rows)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


Responder = Callable[[str, Any, int], tuple[int, Any]]


@dataclass
class HTTPServer:
    url: str
    requests: list[Request] = field(default_factory=list)


def _ok(path: str, body: Any, n: int) -> tuple[int, Any]:
    return 200, "ok"


@pytest.fixture
def http_server() -> Iterator[Callable[[Responder], HTTPServer]]:
    """Start local HTTP servers that record each POST and answer with ``responder(path, body, n)``."""
    started: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(responder: Responder = _ok) -> HTTPServer:
        rec = HTTPServer("")
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with lock:
                    rec.requests.append(Request(self.path, dict(self.headers), body))
                    n = len(rec.requests)
                status, answer = responder(self.path, body, n)
                data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        started.append((server, thread))
        rec.url = f"http://127.0.0.1:{server.server_address[1]}"
        return rec

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that takes connections and never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


def incident(title: str = "HTTP 5xx on shop", *, host: str = "web1", incident_id: str = "20261206-093012-a1b2",
             **extra: Any) -> Incident:
    return Incident(incident_id, "watch:http_5xx", "watch", host, title, "open", 1_765_013_412.0, 1_765_013_412.0,
                    **extra)


def report(*, cause_name: str = "Disk full", summary: str = "/var at 100%", command: str = "df -h /var",
           title: str = "Look at the disk") -> dict[str, Any]:
    return {
        "schema": "ddx.diagnosis/1",
        "status": "diagnosed",
        "hypotheses": [
            {"id": "disk-full", "name": cause_name, "probability": 0.87, "prior": 0.05,
             "for": [{"finding": "disk.space_low", "state": "present", "weight": 14.2},
                     {"finding": "logs.enospc", "state": "present", "weight": 20.5},
                     {"finding": "cpu.saturated", "state": "absent", "weight": 0.3}],
             "against": [{"finding": "svc.down", "state": "absent", "weight": -2.0}]},
            {"id": "log-flood", "name": "Log flood", "probability": 0.1, "prior": 0.02, "for": [], "against": []},
            {"id": "quota", "name": "Quota", "probability": 0.02, "prior": 0.01, "for": [], "against": []},
            {"id": "noise", "name": "Noise", "probability": 0.01, "prior": 0.01, "for": [], "against": []},
        ],
        "next_checks": [{"id": "df", "title": title, "commands": [command, "du -xsh /var/log"]}],
        "findings": [{"id": "disk.space_low", "state": "present", "source": "probe:disk",
                      "evidence": [{"source": "statvfs", "summary": summary}]},
                     {"id": "logs.enospc", "state": "present", "source": "probe:logs"}],
    }


def webhook(url: str, **common: Any) -> WebhookChannel:
    common.setdefault("min_interval", 0)
    return notify_settings({"webhook": {"url": url, **common}}, WHERE)[0]  # type: ignore[return-value]


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def campfire() -> dict[str, Any]:
    """A real diagnosis, as JSON."""
    from ddx.api import diagnose_case
    from ddx.render.jsonout import to_dict

    rep, _ = diagnose_case(str(ROOT / "examples" / "campfire-multiget.yaml"))
    return to_dict(rep.diagnosis)


# --- settings ---------------------------------------------------------------------------------


def test_settings_build_each_channel_with_defaults(tmp_path: Path) -> None:
    pw = tmp_path / "smtp.pw"
    pw.write_text(PASSWORD + "\n")
    chans = notify_settings({
        "webhook": {"url": "https://hooks.example.com/ddx?token=abcdef", "timeout": 2, "retries": 2},
        "slack": {"token": TOKEN, "channel": "C123", "api_url": "http://127.0.0.1:9/api", "min_interval": 0},
        "email": {"host": "smtp.example.com", "from": "ddx@example.com", "to": "ops@example.com", "user": "ddx",
                  "password_file": str(pw)},
    }, WHERE)
    hook, slack, mail = chans
    assert isinstance(hook, WebhookChannel) and (hook.timeout, hook.min_interval, hook.retries) == (2.0, 10.0, 2)
    assert isinstance(slack, SlackChannel) and slack.uses_ref and slack.channel == "C123"
    assert slack.api_url == "http://127.0.0.1:9/api" and slack.min_interval == 0.0
    assert isinstance(mail, EmailChannel)
    assert (mail.port, mail.starttls, mail.to, mail.user, mail.timeout, mail.retries) == \
        (587, True, ("ops@example.com",), "ddx", 5.0, 4)
    assert mail.secrets() == (PASSWORD,)  # the file's first line, its newline stripped
    plain = notify_settings({"email": {"host": "localhost", "from": "a@b.c", "to": ["x@y.z", "Ops <o@p.q>"],
                                       "starttls": False}}, WHERE)[0]
    assert isinstance(plain, EmailChannel) and plain.port == 25 and plain.to == ("x@y.z", "Ops <o@p.q>")
    hooked = notify_settings({"slack": {"webhook_url": f"https://hooks.slack.com/services/{HOOK_SECRET}"}}, WHERE)[0]
    assert isinstance(hooked, SlackChannel) and not hooked.uses_ref
    assert notify_settings({}, WHERE) == []
    for ch in (*chans, hooked):  # no secret in a repr
        for secret in (TOKEN, PASSWORD, HOOK_SECRET, "token=abcdef"):
            assert secret not in repr(ch)
    assert TOKEN not in repr(Notifier(chans))


@pytest.mark.parametrize(("tables", "table", "key"), [
    ({"webhok": {"url": "https://h.example/x"}}, "[notify.webhok]", "webhook"),
    ({"webhook": {"url": "https://h.example/x", "tmeout": 3}}, "[notify.webhook]", "'tmeout'"),
    ({"webhook": {}}, "[notify.webhook]", "'url'"),
    ({"webhook": {"url": f"ftp://h.example/{HOOK_SECRET}"}}, "[notify.webhook]", "'url'"),
    ({"webhook": {"url": 42}}, "[notify.webhook]", "'url'"),
    ({"webhook": {"url": "https://h.example/x", "timeout": "5"}}, "[notify.webhook]", "'timeout'"),
    ({"webhook": {"url": "https://h.example/x", "timeout": True}}, "[notify.webhook]", "'timeout'"),
    ({"webhook": {"url": "https://h.example/x", "min_interval": -1}}, "[notify.webhook]", "'min_interval'"),
    ({"webhook": {"url": "https://h.example/x", "retries": 0}}, "[notify.webhook]", "'retries'"),
    ({"webhook": {"url": "https://h.example/x", "retries": 2.5}}, "[notify.webhook]", "'retries'"),
    ({"webhook": "https://h.example/x"}, "[notify.webhook]", "table"),
    ({"slack": {}}, "[notify.slack]", "'token'"),
    ({"slack": {"token": TOKEN}}, "[notify.slack]", "'channel'"),
    ({"slack": {"token": TOKEN + " x\n", "channel": "C1"}}, "[notify.slack]", "'token'"),
    ({"slack": {"token": 12, "channel": "C1"}}, "[notify.slack]", "'token'"),
    ({"slack": {"webhook_url": f"https://hooks.slack.com/services/{HOOK_SECRET}", "token": TOKEN}},
     "[notify.slack]", "'token'"),
    ({"slack": {"token": TOKEN, "channel": "C1", "api_url": "slack.com/api"}}, "[notify.slack]", "'api_url'"),
    ({"slack": {"tokn": TOKEN, "channel": "C1"}}, "[notify.slack]", "'tokn'"),
    ({"email": {"from": "a@b.c", "to": "d@e.f"}}, "[notify.email]", "'host'"),
    ({"email": {"host": "h", "to": "d@e.f"}}, "[notify.email]", "'from'"),
    ({"email": {"host": "h", "from": "a@b.c"}}, "[notify.email]", "'to'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": []}}, "[notify.email]", "'to'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": ["d@e.f", 3]}}, "[notify.email]", "'to'"),
    ({"email": {"host": "h", "from": "nobody", "to": "d@e.f"}}, "[notify.email]", "'from'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": "d@e.f\r\nBcc: x@y.z"}}, "[notify.email]", "'to'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": "d@e.f", "starttls": "yes"}}, "[notify.email]", "'starttls'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": "d@e.f", "port": 70000}}, "[notify.email]", "'port'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": "d@e.f", "user": "u"}}, "[notify.email]", "'password_file'"),
    ({"email": {"host": "h", "from": "a@b.c", "to": "d@e.f", "user": "u", "password_file": "/nonexistent/pw"}},
     "[notify.email]", "'password_file'"),
])
def test_settings_errors_are_one_line_naming_file_table_and_key(tables: dict[str, Any], table: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        notify_settings(tables, WHERE)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"{WHERE}: ")
    assert table in text and key in text
    for secret in (TOKEN, HOOK_SECRET, PASSWORD):
        assert secret not in text
    # the CLI prints a UsageError as "error: <message>", exit 2; raised from None: no chained traceback
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)


def test_settings_reject_a_notify_that_is_not_a_table() -> None:
    with pytest.raises(ConfigError, match=r"'notify' must be a table \[notify\]"):
        notify_settings("https://x", WHERE)  # type: ignore[arg-type]


def test_settings_password_file_errors_name_the_file_not_the_password(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("\n" + PASSWORD)
    with pytest.raises(ConfigError) as info:
        notify_settings({"email": {"host": "h", "from": "a@b.c", "to": "d@e.f", "user": "u",
                                   "password_file": str(pw)}}, WHERE)
    assert str(pw) in str(info.value) and "'password_file'" in str(info.value)
    assert PASSWORD not in str(info.value)


# --- message content --------------------------------------------------------------------------


def test_message_carries_incident_causes_evidence_and_next_check() -> None:
    msg = build_message("opened", incident(), report(), at=1_765_013_500.0)
    payload = msg.payload()
    VALIDATOR.validate(payload)
    assert payload["version"] == 1 and payload["kind"] == "opened" and payload["at"] == "2025-12-06T09:31:40Z"
    assert payload["incident"] == incident().to_dict()
    # up to 3 causes; one under 1 % after the first is left out
    assert [(c["id"], c["probability"]) for c in payload["causes"]] == \
        [("disk-full", 0.87), ("log-flood", 0.1), ("quota", 0.02)]
    lead = payload["causes"][0]
    assert [e["finding"] for e in lead["evidence"]] == ["logs.enospc", "disk.space_low", "cpu.saturated"]
    assert lead["evidence"][1] == {"finding": "disk.space_low", "state": "present", "weight": 14.2,
                                   "summary": "/var at 100%"}
    assert all(c["evidence"] == [] for c in payload["causes"][1:])
    assert payload["next_check"] == {"title": "Look at the disk", "commands": ["df -h /var", "du -xsh /var/log"]}
    text = payload["text"]
    for part in ("20261206-093012-a1b2", "web1", "HTTP 5xx on shop", "Disk full (87%)", "Log flood (10%)",
                 "disk.space_low (present): /var at 100%", "Look at the disk", "df -h /var"):
        assert part in text
    assert "\n" not in text

    subject, body = msg.email()
    assert subject == "[ddx] opened: HTTP 5xx on shop on web1"
    for part in ("Incident:  20261206-093012-a1b2", "Host:      web1", "Status:    open",
                 "Opened:    2025-12-06T09:30:12Z", "1. Disk full (disk-full): 87%", "Evidence for Disk full:",
                 "  - disk.space_low (present): /var at 100%", "Next check: Look at the disk", "  $ df -h /var"):
        assert part in body

    slack_text, blocks = msg.slack()
    for part in ("*ddx: incident opened*", "*web1*", "*Leading cause:* Disk full (87%)", "Log flood (10%)",
                 "disk.space_low (present): /var at 100%", "*Next check:* Look at the disk",
                 "```df -h /var\ndu -xsh /var/log```", "Incident 20261206-093012-a1b2"):
        assert part in slack_text
    assert blocks[0]["text"]["type"] == "mrkdwn"


def test_schema_describes_every_field_of_the_incident() -> None:
    described = set(SCHEMA["$defs"]["incident"]["properties"])
    assert set(incident().to_dict()) == described, "docs/schema/notification.schema.json is behind Incident.to_dict"


def test_message_of_a_real_diagnosis(campfire: dict[str, Any]) -> None:
    payload = build_message("changed", incident(), campfire).payload()
    VALIDATOR.validate(payload)
    top = campfire["hypotheses"][0]
    assert payload["causes"][0]["id"] == top["id"] and payload["causes"][0]["probability"] == top["probability"]
    assert payload["causes"][0]["evidence"][0]["finding"] == top["for"][0]["finding"]
    assert payload["next_check"]["title"] == campfire["next_checks"][0]["title"]
    assert payload["next_check"]["commands"] == campfire["next_checks"][0]["commands"]


def test_resolved_message_without_report_keeps_the_last_cause() -> None:
    inc = incident(cause="disk-full", cause_name="Disk full", probability=0.9)
    inc.status, inc.resolved_at = "resolved", inc.opened_at + 600
    msg = build_message("resolved", inc, None)
    payload = msg.payload()
    VALIDATOR.validate(payload)
    assert payload["causes"] == [{"id": "disk-full", "name": "Disk full", "probability": 0.9, "evidence": []}]
    assert payload["next_check"] is None and payload["incident"]["resolved_at"] == "2025-12-06T09:40:12Z"
    assert "Leading cause was: Disk full (90%)" in payload["text"]
    assert "resolved 2025-12-06T09:40:12Z" in msg.slack()[0]
    assert msg.email()[0] == "[ddx] resolved: HTTP 5xx on shop on web1"


def test_odd_reports_give_a_message_not_an_error() -> None:
    for rep in ({}, {"status": "nothing_wrong", "hypotheses": []}, {"hypotheses": "x", "next_checks": [3]},
                {"hypotheses": [{"id": "a", "probability": float("nan"), "for": [{"finding": 1}]}, None],
                 "findings": "x", "next_checks": [{"commands": "rm -rf /"}]}):
        payload = build_message("changed", incident(), rep).payload()  # type: ignore[arg-type]
        VALIDATOR.validate(payload)
        json.loads(json.dumps(payload, allow_nan=False))
    with pytest.raises(ValueError, match="unknown notification kind"):
        build_message("exploded", incident(), None)


def test_slack_escapes_what_the_host_wrote() -> None:
    hostile = "<!channel> & <https://evil.example|click> \x1b[31m"
    msg = build_message("opened", incident(hostile, host="<@U123>"),
                        report(cause_name="<!here>", summary="a > b & c < d", command="cat <file> && echo ```x```"))
    text, blocks = msg.slack()
    for shown in (text, blocks[0]["text"]["text"], blocks[1]["elements"][0]["text"]):
        assert "<" not in shown and ">" not in shown and "\x1b" not in shown
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt; \\x1b[31m" in text
    assert "&lt;@U123&gt;" in text and "&lt;!here&gt;" in text and "a &gt; b &amp; c &lt; d" in text
    assert "cat &lt;file&gt; &amp;&amp; echo" in text and text.count("```") == 2
    subject, body = msg.email()
    assert "\x1b" not in subject + body and "\n" not in subject


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=_text, host=_text, name=_text, summary=_text, command=_text,
       kind=st.sampled_from(["opened", "changed", "resolved"]))
def test_any_host_text_gives_valid_messages(title: str, host: str, name: str, summary: str, command: str,
                                            kind: str) -> None:
    msg = build_message(kind, incident(title, host=host),
                        report(cause_name=name, summary=summary, command=command, title=title))
    payload = json.loads(json.dumps(msg.payload()))
    VALIDATOR.validate(payload)
    assert payload["incident"]["title"] == title
    text, blocks = msg.slack()
    for shown in (text, blocks[0]["text"]["text"]):
        assert "<" not in shown and ">" not in shown
        assert all(shown.startswith(("&amp;", "&lt;", "&gt;"), i) for i, c in enumerate(shown) if c == "&")
    assert len(blocks[0]["text"]["text"]) <= 3000 and blocks[0]["text"]["text"].count("```") % 2 == 0
    subject, _ = msg.email()
    assert "\n" not in subject and "\r" not in subject


# --- webhook ----------------------------------------------------------------------------------


def test_webhook_posts_the_json(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(_ok)
    rec = Records()
    n = Notifier([webhook(srv.url + "/hook")], record=rec)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row == ("20261206-093012-a1b2", "webhook", "opened", "sent", "HTTP 200", "")
    (req,) = srv.requests
    assert req.path == "/hook" and req.headers["Content-Type"].startswith("application/json")
    assert req.headers["X-Ddx-Event"] == "opened"
    VALIDATOR.validate(req.body)
    assert req.body["incident"]["id"] == "20261206-093012-a1b2" and req.body["causes"][0]["name"] == "Disk full"
    assert n.pending() == 0


def test_5xx_is_retried_with_backoff(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(lambda path, body, n: (500, "busy") if n <= 2 else (200, "ok"))
    rec = Records()
    n = Notifier([webhook(srv.url)], record=rec, backoff=0.05)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3] == "sent" and "attempt 3" in row[4]
    assert len(srv.requests) == 3 and srv.requests[0].body == srv.requests[2].body


def test_5xx_gives_up_after_retries(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(lambda path, body, n: (503, "down"))
    rec = Records()
    n = Notifier([webhook(srv.url, retries=3)], record=rec, backoff=0.02)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3] == "failed" and row[4] == "HTTP 503: down (after 3 attempts)" and len(srv.requests) == 3


def test_4xx_is_not_retried(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(lambda path, body, n: (400, "bad payload"))
    rec = Records()
    n = Notifier([webhook(srv.url)], record=rec, backoff=0.02)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3:5] == ("failed", "HTTP 400: bad payload") and len(srv.requests) == 1


def test_429_is_retried(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(lambda path, body, n: (429, "slow down") if n == 1 else (200, "ok"))
    rec = Records()
    n = Notifier([webhook(srv.url)], record=rec, backoff=0.02)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3] == "sent" and len(srv.requests) == 2


def test_a_hanging_channel_neither_blocks_send_nor_holds_back_the_others(
        http_server: Callable[[Responder], HTTPServer], silent_server: str) -> None:
    good = http_server(_ok)
    rec = Records()
    n = Notifier([webhook(silent_server, timeout=0.5, retries=2), webhook(good.url)], record=rec, backoff=0.05)
    n.channels[0].name = "hanging"
    t0 = time.perf_counter()
    n.send("opened", incident(), report())
    assert time.perf_counter() - t0 < 0.05  # send() only queues
    rows = rec.wait(2)
    assert n.close(10)
    by_channel = {r[1]: r for r in rows}
    assert by_channel["webhook"][3] == "sent" and len(good.requests) == 1
    assert by_channel["hanging"][3] == "failed" and "timed out" in by_channel["hanging"][4]
    assert "after 2 attempts" in by_channel["hanging"][4]
    # the good channel went out between the hanging one's attempts, not after all of them
    assert [r[1] for r in rows] == ["webhook", "hanging"]


def test_a_burst_of_one_incident_is_sent_as_its_latest(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(_ok)
    rec = Records()
    n = Notifier([webhook(srv.url, min_interval=1.0)], record=rec)
    for i in range(10):
        n.send("opened" if i == 0 else "changed", incident(f"change {i}"), report(cause_name=f"cause {i}"))
    wait_until(lambda: n.pending() == 0)
    assert n.close(5)
    assert 1 <= len(srv.requests) <= 2
    assert srv.requests[-1].body["incident"]["title"] == "change 9"
    assert srv.requests[-1].body["causes"][0]["name"] == "cause 9"
    assert [r[3] for r in rec.rows] == ["sent"] * len(srv.requests)


def test_rate_limit_keeps_incidents_apart(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(_ok)
    rec = Records()
    n = Notifier([webhook(srv.url, min_interval=0.2)], record=rec)
    for i in range(3):
        n.send("opened", incident(f"incident {i}", incident_id=f"20261206-093012-000{i}"), report())
    rec.wait(3)
    assert n.close(5)
    assert [r.body["incident"]["title"] for r in srv.requests] == ["incident 0", "incident 1", "incident 2"]


def test_close_delivers_what_waits_and_stops(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(_ok)
    n = Notifier([webhook(srv.url, min_interval=3600)], record=Records())
    for i in range(3):
        n.send("opened", incident(incident_id=f"20261206-093012-000{i}"), report())
    assert n.close(5)  # the rate limit's wait is not kept at close
    assert len(srv.requests) == 3 and n.pending() == 0
    n.send("resolved", incident(), None)  # after close: dropped, no new thread
    assert n.pending() == 0


def test_close_gives_up_at_its_timeout(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(lambda path, body, n: (500, "busy"))
    rec = Records()
    n = Notifier([webhook(srv.url, retries=5)], record=rec, backoff=30)
    n.send("opened", incident(), report())
    wait_until(lambda: len(srv.requests) == 1)  # the first attempt failed, the retry waits 30 s
    assert not n.close(0.3)
    (row,) = rec.rows
    assert row[3] == "failed" and "closed" in row[4] and "HTTP 500" in row[4] and n.pending() == 0


def test_record_errors_do_not_stop_delivery(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(_ok)

    def broken(*args: str) -> None:
        raise OSError("disk full")

    n = Notifier([webhook(srv.url)], record=broken)
    n.send("opened", incident(incident_id="20261206-093012-0001"), report())
    n.send("opened", incident(incident_id="20261206-093012-0002"), report())
    wait_until(lambda: n.pending() == 0)
    assert n.close(5) and len(srv.requests) == 2


def test_no_secret_in_details_even_when_the_server_echoes_it(http_server: Callable[[Responder], HTTPServer],
                                                             caplog: pytest.LogCaptureFixture) -> None:
    srv = http_server(lambda path, body, n: (403, f"forbidden: {path}"))
    api = http_server(lambda path, body, n: (200, {"ok": False, "error": f"invalid_auth {TOKEN}"}))
    rec = Records()
    chans = notify_settings({
        "webhook": {"url": f"{srv.url}/hooks/{HOOK_SECRET}?token=abcdef123", "min_interval": 0},
        "slack": {"token": TOKEN, "channel": "C123", "api_url": api.url + "/api", "min_interval": 0},
    }, WHERE)
    caplog.set_level("DEBUG", logger="ddx")
    n = Notifier(chans, record=rec, backoff=0.02)
    n.send("opened", incident(), report())
    rows = rec.wait(2)
    assert n.close(5)
    assert {r[3] for r in rows} == {"failed"}
    assert any("HTTP 403: forbidden: ***" in r[4] for r in rows)
    assert any("invalid_auth" in r[4] for r in rows)
    assert api.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, to the server only
    shown = json.dumps(rows) + caplog.text + repr(n)
    for secret in (TOKEN, HOOK_SECRET, "abcdef123"):
        assert secret not in shown


# --- Slack ------------------------------------------------------------------------------------


def test_slack_webhook(http_server: Callable[[Responder], HTTPServer]) -> None:
    srv = http_server(_ok)
    rec = Records()
    chans = notify_settings({"slack": {"webhook_url": f"{srv.url}/services/{HOOK_SECRET}", "min_interval": 0}}, WHERE)
    n = Notifier(chans, record=rec)
    n.send("opened", incident("<!channel> disk & more"), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[1:4] == ("slack", "opened", "sent")
    body = srv.requests[0].body
    assert set(body) == {"text", "blocks"} and "&lt;!channel&gt; disk &amp; more" in body["text"]
    assert "<!channel>" not in json.dumps(body)


def _slack_api(ts: str = "1700000000.000100") -> Responder:
    def answer(path: str, body: Any, n: int) -> tuple[int, Any]:
        if path.endswith("/chat.postMessage"):
            return 200, {"ok": True, "channel": body["channel"], "ts": ts}
        if path.endswith("/chat.update"):
            return 200, {"ok": True, "channel": body["channel"], "ts": body["ts"]}
        return 404, "no such method"
    return answer


def slack_bot(url: str) -> list[Any]:
    return notify_settings({"slack": {"token": TOKEN, "channel": "C123", "api_url": url + "/api",
                                      "min_interval": 0}}, WHERE)


def test_slack_bot_edits_one_message_per_incident(http_server: Callable[[Responder], HTTPServer]) -> None:
    api = http_server(_slack_api())
    rec = Records()
    n = Notifier(slack_bot(api.url), record=rec)
    inc = incident()
    n.send("opened", inc, report(cause_name="Disk full"))
    rec.wait(1)
    n.send("changed", inc, report(cause_name="Log flood"))
    rec.wait(2)
    inc.status, inc.resolved_at = "resolved", inc.opened_at + 60
    n.send("resolved", inc, None)
    rows = rec.wait(3)
    assert n.close(5)
    assert [r.path for r in api.requests] == ["/api/chat.postMessage", "/api/chat.update", "/api/chat.update"]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in api.requests)
    assert api.requests[0].body["channel"] == "C123" and "ts" not in api.requests[0].body
    assert [(r.body["channel"], r.body["ts"]) for r in api.requests[1:]] == [("C123", "1700000000.000100")] * 2
    assert "Log flood" in api.requests[1].body["text"] and "resolved" in api.requests[2].body["text"]
    assert [(r[2], r[3], r[5]) for r in rows] == [("opened", "sent", "1700000000.000100"),
                                                  ("changed", "sent", "1700000000.000100"),
                                                  ("resolved", "sent", "1700000000.000100")]


def test_slack_bot_keeps_editing_after_a_restart(http_server: Callable[[Responder], HTTPServer]) -> None:
    api = http_server(_slack_api())
    asked: list[tuple[str, str]] = []

    def refs(incident_id: str, channel: str) -> str:
        asked.append((incident_id, channel))
        return "1699999999.000001"

    rec = Records()
    n = Notifier(slack_bot(api.url), record=rec, refs=refs)
    n.send("changed", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert asked == [("20261206-093012-a1b2", "slack")]
    assert [r.path for r in api.requests] == ["/api/chat.update"]
    assert api.requests[0].body["ts"] == "1699999999.000001" and row[5] == "1699999999.000001"


def test_slack_bot_posts_anew_when_its_message_is_gone(http_server: Callable[[Responder], HTTPServer]) -> None:
    inner = _slack_api("1700000002.000200")

    def answer(path: str, body: Any, n: int) -> tuple[int, Any]:
        if path.endswith("/chat.update"):
            return 200, {"ok": False, "error": "message_not_found"}
        return inner(path, body, n)

    api = http_server(answer)
    rec = Records()
    n = Notifier(slack_bot(api.url), record=rec, refs=lambda i, c: "1699999999.000001")
    n.send("changed", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert [r.path for r in api.requests] == ["/api/chat.update", "/api/chat.postMessage"]
    assert row[3] == "sent" and row[5] == "1700000002.000200"


def test_slack_bot_remembers_another_channel_id(http_server: Callable[[Responder], HTTPServer]) -> None:
    def answer(path: str, body: Any, n: int) -> tuple[int, Any]:
        return 200, {"ok": True, "channel": "C999", "ts": body.get("ts", "1700000000.000300")}

    api = http_server(answer)
    rec = Records()
    chans = notify_settings({"slack": {"token": TOKEN, "channel": "#ops", "api_url": api.url + "/api",
                                       "min_interval": 0}}, WHERE)
    n = Notifier(chans, record=rec)
    n.send("opened", incident(), report())
    rec.wait(1)
    n.send("changed", incident(), report())
    rows = rec.wait(2)
    assert n.close(5)
    assert rows[0][5] == "C999:1700000000.000300"
    assert (api.requests[1].body["channel"], api.requests[1].body["ts"]) == ("C999", "1700000000.000300")


# --- email ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ddx test relay")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        from email import message_from_bytes, policy

        self.mails.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "tls": session.ssl is not None,
                           "message": message_from_bytes(envelope.original_content, policy=policy.default)})
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.login == b"ddx" and auth_data.password == PASSWORD.encode())


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    from aiosmtpd.controller import Controller

    started: list[Controller] = []

    def start(*, tls: bool) -> tuple[Mailbox, int]:
        box = Mailbox()
        port = _free_port()
        kwargs: dict[str, Any] = {}
        if tls:
            cert, key = _self_signed(tmp_path)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert), str(key))
            kwargs = {"tls_context": ctx, "require_starttls": True, "authenticator": box.authenticate,
                      "auth_require_tls": True}
        ctl = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
        ctl.start()
        started.append(ctl)
        return box, port

    yield start
    for ctl in started:
        ctl.stop()


def test_email_with_starttls_and_login(smtp_server: Callable[..., tuple[Mailbox, int]], tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp_server(tls=True)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # trust the test relay's certificate
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    chans = notify_settings({"email": {"host": "127.0.0.1", "port": port, "from": "ddx@example.com",
                                       "to": ["ops@example.com", "oncall@example.com"], "user": "ddx",
                                       "password_file": str(pw), "min_interval": 0}}, WHERE)
    caplog.set_level("DEBUG", logger="ddx")
    rec = Records()
    n = Notifier(chans, record=rec)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[1:4] == ("email", "opened", "sent") and row[4] == f"accepted by 127.0.0.1:{port}"
    (mail,) = box.mails
    assert mail["tls"] and box.logins == [(b"ddx", PASSWORD.encode())]
    assert mail["from"] == "ddx@example.com" and mail["to"] == ["ops@example.com", "oncall@example.com"]
    msg = mail["message"]
    assert msg["Subject"] == "[ddx] opened: HTTP 5xx on shop on web1"
    assert msg["X-Ddx-Incident"] == "20261206-093012-a1b2"
    body = msg.get_content()
    assert "Disk full" in body and "df -h /var" in body and "/var at 100%" in body
    assert PASSWORD not in json.dumps(rec.rows) + caplog.text + repr(n)


def test_email_untrusted_certificate_fails_without_retry(smtp_server: Callable[..., tuple[Mailbox, int]]) -> None:
    box, port = smtp_server(tls=True)
    chans = notify_settings({"email": {"host": "127.0.0.1", "port": port, "from": "ddx@example.com",
                                       "to": "ops@example.com", "min_interval": 0}}, WHERE)
    rec = Records()
    n = Notifier(chans, record=rec, backoff=0.02)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3] == "failed" and "certificate" in row[4] and "attempts" not in row[4] and not box.mails


def test_email_plain(smtp_server: Callable[..., tuple[Mailbox, int]]) -> None:
    box, port = smtp_server(tls=False)
    chans = notify_settings({"email": {"host": "127.0.0.1", "port": port, "from": "ddx@example.com",
                                       "to": "ops@example.com", "starttls": False, "min_interval": 0}}, WHERE)
    rec = Records()
    n = Notifier(chans, record=rec)
    inc = incident("disk \r\nBcc: evil@example.com")
    n.send("resolved", inc, None)
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3] == "sent"
    (mail,) = box.mails
    assert not mail["tls"] and mail["to"] == ["ops@example.com"]
    assert mail["message"]["Subject"] == "[ddx] resolved: disk \\x0d\\nBcc: evil@example.com on web1"
    assert mail["message"]["Bcc"] is None


def test_email_starttls_refused_by_a_plain_relay(smtp_server: Callable[..., tuple[Mailbox, int]]) -> None:
    box, port = smtp_server(tls=False)
    chans = notify_settings({"email": {"host": "127.0.0.1", "port": port, "from": "ddx@example.com",
                                       "to": "ops@example.com", "min_interval": 0}}, WHERE)
    rec = Records()
    n = Notifier(chans, record=rec, backoff=0.02)
    n.send("opened", incident(), report())
    (row,) = rec.wait(1)
    assert n.close(5)
    assert row[3] == "failed" and "STARTTLS" in row[4] and "attempts" not in row[4] and not box.mails
