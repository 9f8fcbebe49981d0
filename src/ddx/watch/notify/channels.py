"""The channels: a webhook, Slack (incoming webhook or bot token), email over SMTP."""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import math
import smtplib
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

from ddx import __version__
from ddx.render.safe import json_text
from ddx.watch.notify.message import Message, one_line

log = logging.getLogger("ddx.watch.notify")
RETRY_AFTER_CAP = 60.0  # seconds: at most this long for a 429's Retry-After
MAX_BODY = 64 * 1024    # bytes of an HTTP answer read


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
        return one_line(text)

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
            error = one_line(answer.get("error") or "unknown error", 80)
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
        mail["X-Ddx-Incident"] = one_line(message.incident_id, 100)
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

