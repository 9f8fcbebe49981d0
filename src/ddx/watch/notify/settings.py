"""The [notify.*] tables of ddx.toml, validated into channels."""

from __future__ import annotations

import difflib
import email.utils
import logging
import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ddx.errors import ConfigError
from ddx.watch.notify.channels import (
    Channel,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from ddx.watch.notify.message import clip, one_line

log = logging.getLogger("ddx.watch.notify")


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
        table = f"[notify.{one_line(kind, 40)}]"
        if kind not in CHANNEL_KEYS:
            raise ConfigError(f"{where}: unknown table {table}{_suggest(str(kind), list(CHANNEL_KEYS))}")
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{where}: {table} must be a table, got {_type_name(raw)}")
        w = f"{where}: {table}"
        for key in raw:
            if key not in CHANNEL_KEYS[kind]:
                raise ConfigError(f"{w} unknown key {clip(repr(key), 60)}{_suggest(str(key), list(CHANNEL_KEYS[kind]))}")
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
        raise ConfigError(f"{w} key {key!r}: {clip(repr(s), 60)} is not a mail address")
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
        what = f"{clip(repr(value), 60)} is not" if not secret else "not"
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
