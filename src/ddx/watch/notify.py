"""Notifications: an incident opened, its leading cause changed, it resolved.

Three channels, each a ``[notify.*]`` table of ddx.toml (``notify_settings``):

- ``[notify.webhook]``: a JSON POST to ``url`` (docs/schema/notification.schema.json);
- ``[notify.slack]``: an incoming webhook (``webhook_url``: one message per
  event), or a bot ``token`` and ``channel``: ``chat.postMessage`` for the
  incident's first message and ``chat.update`` of that same message afterwards,
  so that one incident is one Slack message, edited in place;
- ``[notify.email]``: a plain-text mail through an SMTP relay (STARTTLS by
  default, login when ``user`` is set, the password read from ``password_file``).

Every channel also takes ``timeout`` (seconds per attempt, default 5),
``min_interval`` (seconds between two messages of the channel, default 10) and
``retries`` (attempts in all, default 4).

``Notifier.send`` never blocks its caller (the incident book, under its lock):
it builds the message and puts it on a queue. One daemon thread delivers: per
channel one message at a time, oldest incident first; a 5xx, a 429, a timeout
or a connection error is tried again after 1 s, 2 s, 4 s... (capped), a 4xx is
not. Another channel's message waits at most one attempt (``timeout``) of a
channel that hangs: a failed attempt's retry is scheduled, not slept on. When
messages of one incident pile up while a channel waits (its ``min_interval``,
a retry), only the incident's latest is sent, so a burst never floods a
channel. Each outcome goes to ``record(incident_id, channel, kind, status,
detail, ref)``, status "sent" or "failed"; ``ref`` is the Slack message's ts
(``CHANNEL:ts`` when Slack answered with another channel id than the one
configured, a ``#name``), which ``refs(incident_id, channel)`` gives back after
a restart so that the daemon keeps editing the same message.

Secrets (the Slack token, the webhook URLs, the SMTP password) appear in no
error, log line, recorded detail or ``repr``. Text from the host (titles,
evidence, commands) is untrusted: control characters are escaped, and Slack's
``&``, ``<``, ``>`` are written as entities (no mention, no link).
"""

from __future__ import annotations

import difflib
import email.utils
import http.client
import json
import logging
import math
import queue
import smtplib
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from ddx import __version__
from ddx.errors import ConfigError
from ddx.render.safe import json_text, printable
from ddx.watch.store import Incident

__all__ = [
    "KINDS",
    "NOTIFICATION_VERSION",
    "Channel",
    "DeliveryError",
    "EmailChannel",
    "Message",
    "Notifier",
    "SlackChannel",
    "WebhookChannel",
    "build_message",
    "notify_settings",
]

log = logging.getLogger("ddx.watch.notify")

KINDS = ("opened", "changed", "resolved")
NOTIFICATION_VERSION = 1
MAX_CAUSES = 3          # leading causes in a message
MIN_SHOWN = 0.01        # a cause after the first is shown from this probability on
MAX_EVIDENCE = 5        # evidence items of the leading cause
MAX_COMMANDS = 5        # commands of the next check
MAX_TEXT = 300          # characters of one untrusted string (a title, an evidence summary, a command)
MAX_BODY = 64 * 1024    # bytes of an HTTP answer read
MAX_PENDING = 1000      # incidents waiting per channel; past it the oldest is dropped
MAX_REFS = 10_000       # Slack refs kept in memory
SLACK_BLOCK = 3000      # Slack's limit on a section block's text
RETRY_AFTER_CAP = 60.0  # seconds: at most this long for a 429's Retry-After

_VERBS = {"opened": "opened", "changed": "leading cause changed", "resolved": "resolved"}
_EMOJI = {"opened": ":rotating_light:", "changed": ":arrows_counterclockwise:", "resolved": ":white_check_mark:"}


# --- the message ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One notification, built once from (kind, incident, report) when it is
    sent (a snapshot: the incident may change while the message waits) and
    rendered by each channel: ``payload()`` for a webhook, ``slack()``,
    ``email()``."""

    kind: str
    incident: dict[str, Any]             # Incident.to_dict()
    causes: list[dict[str, Any]]         # [{"id", "name", "probability", "evidence": [...]}]
    next_check: dict[str, Any] | None    # {"title", "commands": [...]}
    text: str                            # one-paragraph summary, one line
    at: str                              # ISO-8601 time of the event

    @property
    def incident_id(self) -> str:
        return str(self.incident.get("id", ""))

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON (docs/schema/notification.schema.json)."""
        return {"version": NOTIFICATION_VERSION, "kind": self.kind, "at": self.at, "incident": self.incident,
                "causes": self.causes, "next_check": self.next_check, "text": self.text}

    def slack(self) -> tuple[str, list[dict[str, Any]]]:
        """Slack's ``text`` (mrkdwn) and ``blocks``."""
        inc = self.incident
        head = (f"{_EMOJI.get(self.kind, '')} *ddx: incident {_VERBS.get(self.kind, self.kind)}* on "
                f"*{_slack(inc.get('host'))}*: {_slack(inc.get('title'))}")
        lines = [head.strip()]
        if self.causes:
            first = self.causes[0]
            lines.append(f"*Leading cause:* {_slack(first['name'])} ({_pct(first['probability'])})")
            if len(self.causes) > 1:
                lines.append("*Also possible:* " + ", ".join(f"{_slack(c['name'])} ({_pct(c['probability'])})"
                                                              for c in self.causes[1:]))
            if first["evidence"]:
                lines.append("*Evidence:*")
                lines.extend(f"\u2022 {_slack(_evidence_line(e))}" for e in first["evidence"])
        elif self.kind != "resolved":
            lines.append("*Leading cause:* none stands out")
        if self.next_check:
            lines.append(f"*Next check:* {_slack(self.next_check['title'])}")
            if self.next_check["commands"]:
                cmds = "\n".join(_slack(c).replace("```", "`\u200b`\u200b`") for c in self.next_check["commands"])
                lines.append(f"```{cmds}```")
        main = _slack_cut("\n".join(lines))
        footer = (f"Incident {_slack(inc.get('id'))} \u00b7 {_slack(inc.get('status'))} \u00b7 "
                  f"opened {_slack(inc.get('opened_at'))}")
        if inc.get("resolved_at"):
            footer += f" \u00b7 resolved {_slack(inc.get('resolved_at'))}"
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": main}},
                  {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_cut(footer)}]}]
        return f"{main}\n{footer}", blocks

    def email(self) -> tuple[str, str]:
        """The mail's subject and plain-text body."""
        inc = self.incident
        subject = f"[ddx] {self.kind}: {_one(inc.get('title'), 150)} on {_one(inc.get('host'), 100)}"
        lines = [
            self.text, "",
            f"Incident:  {_one(inc.get('id'))}",
            f"Host:      {_one(inc.get('host'))}",
            f"Title:     {_one(inc.get('title'))}",
            f"Status:    {_one(inc.get('status'))}",
            f"Opened:    {_one(inc.get('opened_at'))}",
        ]
        if inc.get("resolved_at"):
            lines.append(f"Resolved:  {_one(inc.get('resolved_at'))}")
        if self.causes:
            lines += ["", "Leading causes:"]
            lines += [f"  {i}. {_one(c['name'])} ({_one(c['id'])}): {_pct(c['probability'])}"
                      for i, c in enumerate(self.causes, 1)]
            if self.causes[0]["evidence"]:
                lines += ["", f"Evidence for {_one(self.causes[0]['name'])}:"]
                lines += [f"  - {_one(_evidence_line(e), 2 * MAX_TEXT)}" for e in self.causes[0]["evidence"]]
        if self.next_check:
            lines += ["", f"Next check: {_one(self.next_check['title'])}"]
            lines += [f"  $ {_one(c, 2 * MAX_TEXT)}" for c in self.next_check["commands"]]
        lines += ["", f"-- ddx {__version__}"]
        return subject, "\n".join(lines) + "\n"


def build_message(kind: str, incident: Incident, report: Mapping[str, Any] | None, *,
                  at: float | None = None) -> Message:
    """The message for one event of ``incident``; ``report`` is the diagnosis
    as JSON (``ddx.render.jsonout.to_dict``), None for ``resolved``. A report
    of the wrong shape gives a message without causes, never an error."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r} (known: {', '.join(KINDS)})")
    inc = incident.to_dict()
    inc["probability"] = _prob(inc.get("probability"))  # a NaN would make the JSON invalid
    causes = _causes(incident, report)
    check = _next_check(report) if kind != "resolved" else None
    when = _iso(at if at is not None else time.time())
    return Message(kind, inc, causes, check, _summary(kind, inc, causes, check), when)


def _causes(incident: Incident, report: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not isinstance(report, Mapping):
        if incident.cause:  # resolved: the last diagnosis's leading cause, as the incident keeps it
            return [{"id": _cut(incident.cause), "name": _cut(incident.cause_name or incident.cause),
                     "probability": _prob(incident.probability), "evidence": []}]
        return []
    hyps = report.get("hypotheses")
    if report.get("status") == "nothing_wrong" or not isinstance(hyps, list):
        return []
    out: list[dict[str, Any]] = []
    for h in hyps:
        if len(out) >= MAX_CAUSES:
            break
        if not isinstance(h, Mapping) or not isinstance(h.get("id"), str):
            continue
        p = _prob(h.get("probability"))
        if out and (p is None or p < MIN_SHOWN):
            continue
        name = h.get("name") if isinstance(h.get("name"), str) else h["id"]
        out.append({"id": _cut(h["id"]), "name": _cut(name), "probability": p,
                    "evidence": _evidence(h, report) if not out else []})
    return out


def _evidence(h: Mapping[str, Any], report: Mapping[str, Any]) -> list[dict[str, Any]]:
    weights = h.get("for")
    support = [w for w in (weights if isinstance(weights, list) else [])
               if isinstance(w, Mapping) and isinstance(w.get("finding"), str)]
    support.sort(key=lambda w: -_num(w.get("weight")))
    summaries: dict[str, str] = {}
    findings = report.get("findings")
    for f in findings if isinstance(findings, list) else []:
        if isinstance(f, Mapping) and isinstance(f.get("id"), str) and isinstance(f.get("evidence"), list):
            first = f["evidence"][0] if f["evidence"] else None
            if isinstance(first, Mapping) and isinstance(first.get("summary"), str):
                summaries.setdefault(f["id"], first["summary"])
    out = []
    for w in support[:MAX_EVIDENCE]:
        item: dict[str, Any] = {"finding": _cut(w["finding"]), "state": _cut(str(w.get("state", "")))}
        if isinstance(w.get("weight"), (int, float)) and not isinstance(w.get("weight"), bool) \
                and math.isfinite(w["weight"]):
            item["weight"] = float(w["weight"])
        item["summary"] = _cut(summaries.get(w["finding"], ""))
        out.append(item)
    return out


def _next_check(report: Mapping[str, Any] | None) -> dict[str, Any] | None:
    checks = report.get("next_checks") if isinstance(report, Mapping) else None
    if not isinstance(checks, list) or not checks or not isinstance(checks[0], Mapping):
        return None
    c = checks[0]
    title = c.get("title") if isinstance(c.get("title"), str) else str(c.get("id", "a check"))
    cmds = c.get("commands")
    commands = [_cut(x, 2 * MAX_TEXT) for x in (cmds if isinstance(cmds, list) else []) if isinstance(x, str)]
    return {"title": _cut(title), "commands": commands[:MAX_COMMANDS]}


def _summary(kind: str, inc: Mapping[str, Any], causes: list[dict[str, Any]], check: dict[str, Any] | None) -> str:
    parts = [f"ddx: incident {_one(inc.get('id'))} on {_one(inc.get('host'))} {_VERBS[kind]}: "
             f"{_one(inc.get('title'))}."]
    if causes:
        lead = causes[0]
        word = "Leading cause was" if kind == "resolved" else "Leading cause"
        parts.append(f"{word}: {_one(lead['name'])} ({_pct(lead['probability'])})"
                     + ("; also " + ", ".join(f"{_one(c['name'])} ({_pct(c['probability'])})" for c in causes[1:])
                        if len(causes) > 1 else "") + ".")
        if lead["evidence"]:
            parts.append("Evidence: " + "; ".join(_one(_evidence_line(e)) for e in lead["evidence"]) + ".")
    elif kind != "resolved":
        parts.append("No cause stands out.")
    if check:
        parts.append(f"Next check: {_one(check['title'])}"
                     + (": " + "; ".join(_one(c) for c in check["commands"]) if check["commands"] else "") + ".")
    return " ".join(parts)


def _evidence_line(e: Mapping[str, Any]) -> str:
    s = f"{e['finding']} ({e['state']})"
    return f"{s}: {e['summary']}" if e.get("summary") else s


def _cut(text: Any, limit: int = MAX_TEXT) -> str:
    s = text if isinstance(text, str) else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"


def _one(text: Any, limit: int = MAX_TEXT) -> str:
    """Untrusted text on one line, control characters escaped, cut."""
    return _cut(printable("" if text is None else text), limit)


def _slack(text: Any) -> str:
    """Untrusted text for Slack mrkdwn: one line, and ``&``, ``<``, ``>`` as
    Slack wants them (so no ``<!channel>``, no ``<url|link>``)."""
    return _one(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_cut(text: str) -> str:
    if len(text) <= SLACK_BLOCK:
        return text
    cut = text[: SLACK_BLOCK - 10]
    amp = cut.rfind("&")
    if amp >= 0 and ";" not in cut[amp:]:
        cut = cut[:amp]  # not half an entity
    cut += "\u2026"
    return cut + "```" if cut.count("```") % 2 else cut


def _prob(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return min(1.0, max(0.0, float(value)))
    return None


def _num(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else 0.0


def _pct(p: float | None) -> str:
    return "?" if p is None else f"{p:.0%}"


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# --- channels ---------------------------------------------------------------------------------


class DeliveryError(Exception):
    """One attempt failed: ``detail`` says why (no secret in it), ``retry``
    whether another attempt may succeed, ``after`` the wait the other side asked
    for (a 429's Retry-After)."""

    def __init__(self, detail: str, *, retry: bool, after: float | None = None, code: str = "") -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry = retry
        self.after = after
        self.code = code  # Slack's error code ("message_not_found"), when Slack gave one


class Channel:
    """Where notifications go. ``deliver`` makes one attempt and returns
    (detail, ref) or raises ``DeliveryError``; ``ref`` is the channel's handle on
    the incident's message ("" when it has none) and comes back as ``ref`` of
    the incident's next delivery."""

    kind = "channel"
    uses_ref = False  # whether ``deliver`` wants the incident's earlier ref

    def __init__(self, name: str, *, timeout: float = 5.0, min_interval: float = 10.0, retries: int = 4) -> None:
        self.name = name
        self.timeout = float(timeout)
        self.min_interval = float(min_interval)
        self.retries = max(1, int(retries))

    def deliver(self, message: Message, ref: str, timeout: float) -> tuple[str, str]:
        raise NotImplementedError

    def secrets(self) -> tuple[str, ...]:
        """The strings no detail may show (they are replaced by ``***``)."""
        return ()

    def scrub(self, text: str) -> str:
        """``text`` without any of the channel's secrets, on one line, cut."""
        for s in sorted(self.secrets(), key=len, reverse=True):
            if s:
                text = text.replace(s, "***")
        return _one(text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, timeout={self.timeout:g}, " \
               f"min_interval={self.min_interval:g}, retries={self.retries})"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A POST is not followed elsewhere: a 3xx is an answer (and an error)."""

    def redirect_request(self, req: Any, fp: Any, code: Any, msg: Any, headers: Any, newurl: Any) -> None:
        return None


def _retry_after(headers: Any) -> float | None:
    try:
        value = float(headers.get("Retry-After", "")) if headers is not None else math.nan
    except (TypeError, ValueError):
        return None
    return min(RETRY_AFTER_CAP, max(0.0, value)) if math.isfinite(value) else None


def _post_json(url: str, body: Mapping[str, Any], timeout: float,
               headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    """POST ``body`` as JSON; (status, answer) for a 2xx, else ``DeliveryError``
    (5xx, 429, timeouts and connection errors may be tried again)."""
    data = json_text(body, indent=None).encode("utf-8")
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "User-Agent": f"ddx/{__version__}", **(headers or {})})
    try:
        # built each time: the proxy settings (https_proxy, no_proxy) are the environment's of now
        with urllib.request.build_opener(_NoRedirect).open(req, timeout=timeout) as resp:
            return int(resp.status), resp.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        try:
            answer = exc.read(200).decode("utf-8", "replace").strip() if exc.fp is not None else ""
        except (OSError, http.client.HTTPException):
            answer = ""
        finally:
            exc.close()
        code = int(exc.code)
        detail = f"HTTP {code}" + (f": {answer}" if answer else "")
        if code == 429:
            raise DeliveryError(detail, retry=True, after=_retry_after(exc.headers)) from None
        raise DeliveryError(detail, retry=code >= 500) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise DeliveryError(f"TLS certificate not trusted: {reason.verify_message}", retry=False) from None
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise DeliveryError(f"timed out after {timeout:g} s", retry=True) from None
        raise DeliveryError(f"cannot connect: {reason}", retry=True) from None
    except (TimeoutError, socket.timeout):
        raise DeliveryError(f"timed out after {timeout:g} s", retry=True) from None
    except (OSError, http.client.HTTPException) as exc:
        raise DeliveryError(f"connection failed: {type(exc).__name__}: {exc}", retry=True) from None


def _url_secrets(url: str) -> tuple[str, ...]:
    """A URL's parts that may be its secret: all of it, its path and query, its user-info."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return (url,)
    out = [url, parts.netloc + parts.path, parts.path + ("?" + parts.query if parts.query else ""), parts.query]
    if "@" in parts.netloc:
        out.append(parts.netloc.rsplit("@", 1)[0])
    return tuple(s for s in out if len(s) >= 6)


class WebhookChannel(Channel):
    """POST the notification's JSON to a URL (the URL is a secret: it may carry a token)."""

    kind = "webhook"

    def __init__(self, url: str, *, name: str = "webhook", **common: Any) -> None:
        super().__init__(name, **common)
        self._url = url

    def deliver(self, message: Message, ref: str, timeout: float) -> tuple[str, str]:
        status, _ = _post_json(self._url, message.payload(), timeout, {"X-Ddx-Event": message.kind})
        return f"HTTP {status}", ""

    def secrets(self) -> tuple[str, ...]:
        return _url_secrets(self._url)


class SlackChannel(Channel):
    """Slack: an incoming webhook (``webhook_url``), or the Web API with a bot
    ``token`` and a ``channel`` (one message per incident, edited in place)."""

    kind = "slack"
    DEFAULT_API = "https://slack.com/api"
    _GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
    _TRANSIENT = frozenset({"ratelimited", "internal_error", "service_unavailable", "request_timeout", "fatal_error"})

    def __init__(self, *, webhook_url: str | None = None, token: str | None = None, channel: str | None = None,
                 api_url: str = DEFAULT_API, name: str = "slack", **common: Any) -> None:
        super().__init__(name, **common)
        if (webhook_url is None) == (token is None) or (token is not None and not channel):
            raise ValueError("SlackChannel takes either webhook_url, or token and channel")
        self._webhook_url = webhook_url
        self._token = token
        self.channel = channel or ""
        self.api_url = api_url.rstrip("/")
        self.uses_ref = token is not None

    def __repr__(self) -> str:
        how = f"channel={self.channel!r}, api_url={self.api_url!r}" if self._token else "webhook"
        return f"SlackChannel({self.name!r}, {how}, timeout={self.timeout:g}, min_interval={self.min_interval:g}, " \
               f"retries={self.retries})"

    def secrets(self) -> tuple[str, ...]:
        return (self._token,) if self._token else _url_secrets(self._webhook_url or "")

    def deliver(self, message: Message, ref: str, timeout: float) -> tuple[str, str]:
        text, blocks = message.slack()
        if self._webhook_url is not None:
            status, _ = _post_json(self._webhook_url, {"text": text, "blocks": blocks}, timeout)
            return f"HTTP {status}", ""
        body: dict[str, Any] = {"text": text, "blocks": blocks, "unfurl_links": False, "unfurl_media": False}
        if ref:
            chan, _, ts = ref.rpartition(":")
            try:
                self._api("chat.update", {**body, "channel": chan or self.channel, "ts": ts}, timeout)
                return "updated the incident's message", ref
            except DeliveryError as exc:
                if exc.code not in self._GONE:
                    raise
                log.info("ddx: the Slack message of incident %s cannot be edited (%s): posting a new one",
                         message.incident_id, exc.code)
        answer = self._api("chat.postMessage", {**body, "channel": self.channel}, timeout)
        new_ts, new_chan = answer.get("ts"), answer.get("channel")
        if not isinstance(new_ts, str) or not new_ts or ":" in new_ts:
            return "posted (Slack gave no ts: later events post new messages)", ""
        if isinstance(new_chan, str) and new_chan and new_chan != self.channel and ":" not in new_chan:
            return "posted", f"{new_chan}:{new_ts}"
        return "posted", new_ts

    def _api(self, method: str, body: Mapping[str, Any], timeout: float) -> dict[str, Any]:
        """Call a Web API method; its answer, or ``DeliveryError`` with Slack's error code."""
        _, raw = _post_json(f"{self.api_url}/{method}", body, timeout, {"Authorization": f"Bearer {self._token}"})
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise DeliveryError(f"{method}: the answer is not JSON", retry=True) from None
        if not isinstance(answer, dict):
            raise DeliveryError(f"{method}: the answer is not a JSON object", retry=True)
        if answer.get("ok") is not True:
            error = _one(answer.get("error") or "unknown error", 80)
            raise DeliveryError(f"{method}: {error}", retry=error in self._TRANSIENT, code=error)
        return answer


class EmailChannel(Channel):
    """A plain-text mail through an SMTP relay."""

    kind = "email"

    def __init__(self, host: str, port: int, sender: str, to: Sequence[str], *, starttls: bool = True,
                 user: str | None = None, password: str | None = None, name: str = "email", **common: Any) -> None:
        super().__init__(name, **common)
        self.host = host
        self.port = int(port)
        self.sender = sender
        self.to = tuple(to)
        self.starttls = bool(starttls)
        self.user = user
        self._password = password

    def __repr__(self) -> str:
        return f"EmailChannel({self.name!r}, {self.host}:{self.port}, to={list(self.to)!r}, " \
               f"starttls={self.starttls}, user={self.user!r}, timeout={self.timeout:g}, " \
               f"min_interval={self.min_interval:g}, retries={self.retries})"

    def secrets(self) -> tuple[str, ...]:
        return (self._password,) if self._password else ()

    def deliver(self, message: Message, ref: str, timeout: float) -> tuple[str, str]:
        subject, body = message.email()
        mail = EmailMessage()
        mail["Subject"] = subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.to)
        mail["Date"] = email.utils.formatdate(usegmt=True)
        mail["Message-ID"] = email.utils.make_msgid(domain="ddx.invalid")
        mail["X-Ddx-Incident"] = _one(message.incident_id, 100)
        mail["X-Ddx-Event"] = message.kind
        mail.set_content(body)
        smtp: smtplib.SMTP | None = None
        stage = "connect"
        try:
            smtp = smtplib.SMTP(self.host, self.port, timeout=timeout)  # the host given here is what TLS checks
            smtp.ehlo()
            if self.starttls:
                stage = "starttls"
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if self.user:
                stage = "login"
                smtp.login(self.user, self._password or "")
            stage = "send"
            refused = smtp.send_message(mail)
            try:  # the mail is accepted: a QUIT that goes wrong changes nothing (and must not send it twice)
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                pass
        except smtplib.SMTPNotSupportedError as exc:
            if stage == "starttls":
                raise DeliveryError(f"{self.host}:{self.port} does not offer STARTTLS (set starttls = false "
                                    "only for a relay on this host)", retry=False) from None
            if stage == "login":
                raise DeliveryError(f"{self.host}:{self.port} does not offer AUTH (login)", retry=False) from None
            raise DeliveryError(f"{stage}: {exc}", retry=False) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"login refused: {exc.smtp_code}", retry=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            raise DeliveryError("recipients refused: " + ", ".join(f"{r} ({c})" for r, (c, _) in
                                                                   exc.recipients.items()),
                                retry=all(400 <= c < 500 for c in codes)) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
                else str(exc.smtp_error)
            raise DeliveryError(f"SMTP {exc.smtp_code}: {text}", retry=400 <= exc.smtp_code < 500) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise DeliveryError(f"the server closed the connection: {exc}", retry=True) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(f"TLS certificate not trusted: {exc.verify_message}", retry=False) from None
        except (TimeoutError, socket.timeout):
            raise DeliveryError(f"timed out after {timeout:g} s", retry=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", retry=True) from None
        finally:
            if smtp is not None:
                smtp.close()
        shown = f"accepted by {self.host}:{self.port}"
        if refused:
            shown += "; refused: " + ", ".join(f"{r} ({c})" for r, (c, _) in refused.items())
        return shown, ""


# --- settings ---------------------------------------------------------------------------------

_COMMON = {
    "timeout": "seconds one attempt may take (default 5)",
    "min_interval": "seconds between two messages of this channel (default 10); an incident's messages that "
                    "pile up meanwhile are sent as its latest",
    "retries": "attempts in all for one message (default 4); a 5xx, a timeout or a connection error is tried again",
}
CHANNEL_KEYS: dict[str, dict[str, str]] = {
    "webhook": {"url": "http(s) URL that receives the notification as JSON (a secret)", **_COMMON},
    "slack": {
        "webhook_url": "Slack incoming webhook URL (a secret); or token and channel",
        "token": "Slack bot token (xoxb-..., a secret): one message per incident, edited in place",
        "channel": "Slack channel id (C...) the bot posts in, with token",
        "api_url": "Slack Web API base URL, with token (default https://slack.com/api)",
        **_COMMON,
    },
    "email": {
        "host": "SMTP relay host name",
        "port": "SMTP port (default 587 with STARTTLS, 25 without)",
        "from": "sender address",
        "to": "recipient address or list of addresses",
        "starttls": "upgrade the connection with STARTTLS, certificate checked (default true)",
        "user": "user name to log in with (needs password_file)",
        "password_file": "file holding the SMTP password (its first line)",
        **_COMMON,
    },
}
MAX_PASSWORD_BYTES = 4096


def notify_settings(tables: Mapping[str, Any], where: str) -> list[Channel]:
    """The channels of the ``[notify.*]`` tables of ``where`` (the config file);
    ``tables`` is what the file holds under ``notify``. Anything wrong raises
    ``ConfigError``, one line naming the file, the table and the key, never a
    secret's value."""
    if not isinstance(tables, Mapping):
        raise ConfigError(f"{where}: 'notify' must be a table [notify]")
    channels: list[Channel] = []
    for kind, raw in tables.items():
        table = f"[notify.{_one(kind, 40)}]"
        if kind not in CHANNEL_KEYS:
            raise ConfigError(f"{where}: unknown table {table}{_suggest(str(kind), list(CHANNEL_KEYS))}")
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: {table} must be a table, got {_type_name(raw)}")
        w = f"{where}: {table}"
        for key in raw:
            if key not in CHANNEL_KEYS[kind]:
                raise ConfigError(f"{w} unknown key {_cut(repr(key), 60)}{_suggest(str(key), list(CHANNEL_KEYS[kind]))}")
        common: dict[str, Any] = {
            "timeout": _number(w, "timeout", raw.get("timeout", 5.0), low=0.001, high=300.0),
            "min_interval": _number(w, "min_interval", raw.get("min_interval", 10.0), low=0.0, high=86400.0),
            "retries": _integer(w, "retries", raw.get("retries", 4), low=1, high=20),
        }
        if kind == "webhook":
            channels.append(WebhookChannel(_url(w, "url", _required(w, raw, "url")), **common))
        elif kind == "slack":
            channels.append(_slack_channel(w, raw, common))
        else:
            channels.append(_email_channel(w, raw, common))
    return channels


def _slack_channel(w: str, raw: Mapping[str, Any], common: dict[str, Any]) -> SlackChannel:
    if "webhook_url" in raw:
        extra = [k for k in ("token", "channel", "api_url") if k in raw]
        if extra:
            raise ConfigError(f"{w} key {extra[0]!r}: set either 'webhook_url', or 'token' and 'channel', not both")
        return SlackChannel(webhook_url=_url(w, "webhook_url", raw["webhook_url"]), **common)
    if "token" not in raw:
        raise ConfigError(f"{w} key 'webhook_url' or 'token' is required (a Slack incoming webhook URL, "
                          "or a bot token with 'channel')")
    token = raw["token"]
    if not isinstance(token, str) or not token or any(not (0x21 <= ord(c) <= 0x7e) for c in token):
        raise ConfigError(f"{w} key 'token': expected a Slack token (printable characters, no spaces; "
                          "the value is not shown)")
    if "channel" not in raw:
        raise ConfigError(f"{w} key 'channel' is required with 'token' (the channel id, C...)")
    channel = _string(w, "channel", raw["channel"])
    api = _url(w, "api_url", raw.get("api_url", SlackChannel.DEFAULT_API), secret=False)
    return SlackChannel(token=token, channel=channel, api_url=api, **common)


def _email_channel(w: str, raw: Mapping[str, Any], common: dict[str, Any]) -> EmailChannel:
    host = _string(w, "host", _required(w, raw, "host"))
    starttls = raw.get("starttls", True)
    if not isinstance(starttls, bool):
        raise ConfigError(f"{w} key 'starttls': expected true or false, got {_type_name(starttls)}")
    port = _integer(w, "port", raw.get("port", 587 if starttls else 25), low=1, high=65535)
    sender = _address(w, "from", _required(w, raw, "from"))
    to_raw = _required(w, raw, "to")
    to_list = [to_raw] if isinstance(to_raw, str) else to_raw
    if not isinstance(to_list, list) or not to_list:
        raise ConfigError(f"{w} key 'to': expected an address or a non-empty list of addresses, "
                          f"got {_type_name(to_raw)}")
    to = [_address(w, "to", a) for a in to_list]
    user = _string(w, "user", raw["user"]) if "user" in raw else None
    password = None
    if "password_file" in raw:
        password = _password(w, _string(w, "password_file", raw["password_file"]))
    if (user is None) != (password is None):
        missing = "password_file" if password is None else "user"
        raise ConfigError(f"{w} key {missing!r} is required with {('user' if password is None else 'password_file')!r}")
    return EmailChannel(host, port, sender, to, starttls=starttls, user=user, password=password, **common)


def _password(w: str, path: str) -> str:
    from ddx.readfile import read_small_file

    try:
        raw = read_small_file(path, limit=MAX_PASSWORD_BYTES, what="password file", error=ConfigError)
    except ConfigError as exc:
        raise ConfigError(f"{w} key 'password_file': {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{w} key 'password_file': {path}: not UTF-8 text") from None
    lines = text.splitlines()
    password = lines[0] if lines else ""
    if not password:
        raise ConfigError(f"{w} key 'password_file': {path}: the first line is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in password):
        raise ConfigError(f"{w} key 'password_file': {path}: the password holds control characters")
    return password


def _required(w: str, raw: Mapping[str, Any], key: str) -> Any:
    if key not in raw:
        raise ConfigError(f"{w} key {key!r} is required ({_FLAT_KEYS[key]})")
    return raw[key]


def _string(w: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{w} key {key!r}: expected a non-empty string, got {_type_name(value)}")
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in value):
        raise ConfigError(f"{w} key {key!r}: control characters are not allowed")
    return value


def _address(w: str, key: str, value: Any) -> str:
    s = _string(w, key, value)
    name, addr = email.utils.parseaddr(s)
    if "@" not in addr or addr.startswith("@") or addr.endswith("@") or " " in addr:
        raise ConfigError(f"{w} key {key!r}: {_cut(repr(s), 60)} is not a mail address")
    return s


def _url(w: str, key: str, value: Any, *, secret: bool = True) -> str:
    shown = " (the value is not shown: it may hold a secret)" if secret else ""
    if not isinstance(value, str):
        raise ConfigError(f"{w} key {key!r}: expected an http:// or https:// URL, got {_type_name(value)}")
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is not a number
        ok = False
    if not ok or any(ord(c) <= 0x20 or ord(c) == 0x7f for c in value):
        what = f"{_cut(repr(value), 60)} is not" if not secret else "not"
        raise ConfigError(f"{w} key {key!r}: {what} an http:// or https:// URL{shown}")
    return value


def _number(w: str, key: str, value: Any, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{w} key {key!r}: expected a number of seconds, got {_type_name(value)}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{w} key {key!r}: {value!r} is out of range ({low:g} to {high:g})")
    return float(value)


def _integer(w: str, key: str, value: Any, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{w} key {key!r}: expected an integer, got {_type_name(value)}")
    if not low <= value <= high:
        raise ConfigError(f"{w} key {key!r}: {value!r} is out of range ({low} to {high})")
    return value


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (known: {', '.join(sorted(choices))})"


def _type_name(value: Any) -> str:
    for t, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
                    (Mapping, "table")):
        if isinstance(value, t):
            return name
    return type(value).__name__


_FLAT_KEYS = {k: v for table in CHANNEL_KEYS.values() for k, v in table.items()}


# --- the notifier -----------------------------------------------------------------------------


@dataclass
class _Job:
    message: Message
    attempts: int = 0
    due: float = 0.0          # monotonic time before which it is not tried (a retry's backoff)
    last: str = ""            # the last failure


@dataclass
class _Lane:
    """One channel's waiting messages: incident id -> its latest, oldest incident first."""

    channel: Channel
    jobs: OrderedDict[str, _Job] = field(default_factory=OrderedDict)
    free_at: float = 0.0      # monotonic time of its next new message (min_interval)


Record = Callable[[str, str, str, str, str, str], None]
Refs = Callable[[str, str], str]


class Notifier:
    """Delivers notifications to ``channels`` from one daemon thread (see the
    module's doc). ``record(incident_id, channel, kind, status, detail, ref)``
    is called from that thread after each outcome; ``refs(incident_id,
    channel)`` gives the ref a channel stored for the incident (a restart);
    ``clock`` dates the events (``at`` of the webhook's JSON); ``backoff`` is
    the first retry's wait in seconds, doubled each time up to ``max_backoff``."""

    def __init__(self, channels: Sequence[Channel], *, record: Record | None = None, refs: Refs | None = None,
                 clock: Callable[[], float] = time.time, backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        self.channels = list(channels)
        self.record = record
        self.refs = refs
        self.clock = clock
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._inbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = 0                      # deliveries not yet sent or failed
        self._abandoned = 0                  # deliveries given up by close()
        self._closing = False
        self._deadline = math.inf            # monotonic: when close() gives up
        self._thread: threading.Thread | None = None
        self._lanes = [_Lane(c) for c in self.channels]
        self._refs: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._turn = 0                       # round robin among lanes ready at once

    def __repr__(self) -> str:
        return f"Notifier({self.channels!r})"

    # --- the caller's side ---------------------------------------------------------------------

    def send(self, kind: str, incident: Incident, report: Mapping[str, Any] | None) -> None:
        """Queue the notification of ``kind`` for ``incident``; returns at once."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r} (known: {', '.join(KINDS)})")
        if not self.channels:
            return
        try:
            message = build_message(kind, incident, report, at=self.clock())
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the caller's incident handling
            log.error("ddx: cannot build the %s notification of incident %s: %s: %s", kind, incident.id,
                      type(exc).__name__, _one(exc))
            return
        with self._lock:
            if self._closing:
                log.warning("ddx: notification %s of incident %s not sent: the notifier is closed", kind, incident.id)
                return
            self._count += len(self.channels)
            # put under the lock: once the worker sees _closing, every message sent before is in the inbox
            self._inbox.put(message)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ddx-notify", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        """Deliveries (one per channel and message) not yet sent or given up."""
        with self._lock:
            return self._count

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what waits (without the rate limit's waits), at most
        ``timeout`` seconds, and stop the thread; True when nothing was left
        undelivered then (it is recorded as failed) and the thread has stopped."""
        end = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closing = True
            self._deadline = min(self._deadline, end)
            thread = self._thread
        if thread is None:
            return True
        self._inbox.put(None)  # wake the worker
        thread.join(max(0.0, end - time.monotonic()) + 0.1)
        if thread.is_alive():
            log.warning("ddx: the notifier's thread is still in a delivery after %g s", timeout)
            return False
        with self._lock:
            return self._count == 0 and self._abandoned == 0

    # --- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        block: float | None = None
        while True:
            try:
                try:
                    item = self._inbox.get(timeout=block) if block is None or block > 0 else self._inbox.get_nowait()
                    self._take(item)
                    while True:
                        self._take(self._inbox.get_nowait())
                except queue.Empty:
                    pass
                with self._lock:
                    closing, deadline = self._closing, self._deadline
                now = time.monotonic()
                if closing and (now >= deadline or not any(lane.jobs for lane in self._lanes)):
                    self._give_up("not sent: the notifier was closed before it could deliver")
                    return
                pick = self._next(now, closing)
                if pick is None:
                    wake = self._wake(closing)
                    block = None if wake is None else max(0.0, wake - now)
                    if closing:
                        block = max(0.0, min(block if block is not None else math.inf, deadline - now))
                    continue
                self._attempt(pick, deadline if closing else math.inf)
                block = 0.0
            except Exception as exc:  # noqa: BLE001 - the worker never dies of a bug
                log.error("ddx: notifier error: %s: %s", type(exc).__name__, _one(exc))
                block = 0.5

    def _take(self, message: Message | None) -> None:
        if message is None:
            return
        for lane in self._lanes:
            job = lane.jobs.get(message.incident_id)
            if job is not None:  # the incident's earlier message is not out yet: the latest replaces it
                job.message = message
                self._done(1)
                continue
            lane.jobs[message.incident_id] = _Job(message)
            if len(lane.jobs) > MAX_PENDING:
                _, old = lane.jobs.popitem(last=False)
                log.warning("ddx: %s: more than %d incidents wait, the oldest message is dropped",
                            lane.channel.name, MAX_PENDING)
                self._outcome(lane.channel, old.message, "failed", "dropped: too many incidents waiting", "")

    def _ready(self, lane: _Lane, closing: bool) -> float | None:
        if not lane.jobs:
            return None
        job = next(iter(lane.jobs.values()))
        return job.due if job.attempts or closing else max(job.due, lane.free_at)

    def _next(self, now: float, closing: bool) -> _Lane | None:
        n = len(self._lanes)
        ready = []
        for i in range(n):
            lane = self._lanes[(self._turn + i) % n]
            at = self._ready(lane, closing)
            if at is not None and at <= now:
                ready.append((at, i, lane))
        if not ready:
            return None
        _, i, lane = min(ready, key=lambda r: (r[0], r[1]))
        self._turn = (self._turn + i + 1) % n
        return lane

    def _wake(self, closing: bool) -> float | None:
        times = [t for t in (self._ready(lane, closing) for lane in self._lanes) if t is not None]
        return min(times) if times else None

    def _attempt(self, lane: _Lane, deadline: float) -> None:
        ch = lane.channel
        key, job = next(iter(lane.jobs.items()))
        msg = job.message
        start = time.monotonic()
        timeout = max(0.05, min(ch.timeout, deadline - start))
        job.attempts += 1
        ref = self._ref(key, ch) if ch.uses_ref else ""
        try:
            detail, new_ref = ch.deliver(msg, ref, timeout)
        except DeliveryError as exc:
            lane.free_at = time.monotonic() + ch.min_interval
            job.last = ch.scrub(exc.detail)
            if exc.retry and job.attempts < ch.retries:
                wait = min(self.max_backoff, self.backoff * 2 ** (job.attempts - 1))
                if exc.after is not None:
                    wait = max(wait, exc.after)
                job.due = time.monotonic() + wait
                log.info("ddx: %s: attempt %d of %d for incident %s failed (%s); trying again in %.3g s",
                         ch.name, job.attempts, ch.retries, key, job.last, wait)
                return
            del lane.jobs[key]
            tries = f" (after {job.attempts} attempts)" if job.attempts > 1 else ""
            self._outcome(ch, msg, "failed", job.last + tries, "")
            return
        except Exception as exc:  # noqa: BLE001 - a bug in a channel: that message fails, the others go on
            lane.free_at = time.monotonic() + ch.min_interval
            del lane.jobs[key]
            self._outcome(ch, msg, "failed", ch.scrub(f"{type(exc).__name__}: {exc}"), "")
            return
        lane.free_at = time.monotonic() + ch.min_interval
        del lane.jobs[key]
        if ch.uses_ref:
            self._keep_ref(key, ch, new_ref, msg.kind)
        tries = f" (attempt {job.attempts})" if job.attempts > 1 else ""
        self._outcome(ch, msg, "sent", ch.scrub(detail) + tries, new_ref)

    def _ref(self, incident_id: str, ch: Channel) -> str:
        ref = self._refs.get((incident_id, ch.name))
        if ref is not None:
            return ref
        if self.refs is None:
            return ""
        try:
            found = self.refs(incident_id, ch.name)
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read: post a new message
            log.warning("ddx: %s: cannot look up the message of incident %s: %s", ch.name, incident_id, _one(exc))
            return ""
        return found if isinstance(found, str) else ""

    def _keep_ref(self, incident_id: str, ch: Channel, ref: str, kind: str) -> None:
        k = (incident_id, ch.name)
        if kind == "resolved":
            self._refs.pop(k, None)  # the store still has it, should the incident hear from us again
            return
        if ref:
            self._refs[k] = ref
            self._refs.move_to_end(k)
            while len(self._refs) > MAX_REFS:
                self._refs.popitem(last=False)

    def _outcome(self, ch: Channel, msg: Message, status: str, detail: str, ref: str) -> None:
        if status == "sent":
            log.info("ddx: %s: %s notification of incident %s sent: %s", ch.name, msg.kind, msg.incident_id, detail)
        else:
            log.warning("ddx: %s: %s notification of incident %s failed: %s", ch.name, msg.kind, msg.incident_id,
                        detail)
        if self.record is not None:
            try:
                self.record(msg.incident_id, ch.name, msg.kind, status, detail, ref)
            except Exception as exc:  # noqa: BLE001 - recording is the caller's; delivery goes on
                log.warning("ddx: cannot record the notification of incident %s: %s: %s", msg.incident_id,
                            type(exc).__name__, _one(exc))
        self._done(1)

    def _give_up(self, reason: str) -> None:
        for lane in self._lanes:
            while lane.jobs:
                _, job = lane.jobs.popitem(last=False)
                self._abandoned += 1
                self._outcome(lane.channel, job.message, "failed", reason + (f"; {job.last}" if job.last else ""), "")
        while True:  # messages sent after the last look
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                for lane in self._lanes:
                    self._abandoned += 1
                    self._outcome(lane.channel, item, "failed", reason, "")

    def _done(self, n: int) -> None:
        with self._lock:
            self._count -= n
