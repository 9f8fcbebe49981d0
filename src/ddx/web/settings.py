"""The ``[serve]`` and ``[alertmanager]`` tables of ddx.toml, validated, and the API token.

Every key has a default, so ``ddx serve`` needs nothing but a token::

    [serve]
    listen = "127.0.0.1:8923"         # HOST:PORT to listen on; --listen overrides it
    token_file = "/etc/ddx/token"     # holds the API token ($DDX_TOKEN wins over it)
    store = "/var/lib/ddx/ddx.db"     # the incident store; --store overrides it
    diagnose_budget = 10              # seconds one diagnosis may take (1..600)

    [alertmanager]
    rediagnose_s = 60                 # a group sent again with no new alert is not diagnosed again sooner
    host_names = ["web-1.example.com", "10.0.0.5"]  # other names this host has in alert labels

    [[alertmanager.route]]            # the first route whose `match` fits an alert's labels wins
    match = { job = "redis" }         # label = value (a list: any of these values); {} or absent: every alert
    targets = ["redis://{instance}"]  # what to probe besides this host; {label} is filled from the alert

    [[alertmanager.route]]
    match = { job = ["web", "api"] }
    targets = ["http://{instance}/healthz"]

A diagnosis always probes this host; a route adds the URLs its ``targets``
name (the schemes ``ddx diagnose --target`` takes). An alert no route fits is
diagnosed on this host alone. A placeholder is filled only with a label value
that looks like a host, an address or a port (letters, digits, ``.-_:[]%``),
so that an alert cannot point ddx at a URL of its choosing (a path, a user, a
query); a target whose label is missing or unsafe is left out, and the
incident's timeline says why.

The token: ``$DDX_TOKEN``, else the content of ``token_file`` (stripped). None
at all refuses to start. It must be 16 to 4096 visible ASCII characters (it
travels in an HTTP header). Nothing here shows it: errors name the file, never
the content.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import ConfigError, UsageError

__all__ = [
    "DEFAULT_LISTEN",
    "Route",
    "ServeSettings",
    "fill_target",
    "is_loopback",
    "parse_listen",
    "read_token",
    "serve_settings",
    "targets_for",
]

DEFAULT_LISTEN = "127.0.0.1:8923"
DEFAULT_STORE = "/var/lib/ddx/ddx.db"
TOKEN_HELP = ("set $DDX_TOKEN, or [serve] token_file in ddx.toml naming a file that holds it "
              "(e.g. `openssl rand -hex 32 > /etc/ddx/token && chmod 600 /etc/ddx/token`)")
MIN_TOKEN = 16
MAX_TOKEN = 4096
MAX_ROUTES = 1000
MAX_TARGETS = 32  # targets one diagnosis probes, all routes' and alerts' together

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# A label value that may fill a placeholder: a host name, an IPv4 or [IPv6] address, a port, a zone.
_SAFE_VALUE = re.compile(r"[A-Za-z0-9._:%\[\]-]{1,255}\Z")
_TOKEN = re.compile(r"[\x21-\x7e]+\Z")


@dataclass(frozen=True)
class Route:
    """One ``[[alertmanager.route]]``: the labels it matches and the targets it probes."""

    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    targets: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(name) in values for name, values in self.match.items())


@dataclass(frozen=True)
class ServeSettings:
    listen: str = DEFAULT_LISTEN  # HOST:PORT
    token_file: str | None = None  # the file holding the token ($DDX_TOKEN wins)
    store: str = DEFAULT_STORE  # the incident store (SQLite)
    diagnose_budget: float = 10.0  # seconds one diagnosis may take
    rediagnose_s: float = 60.0  # an alert group sent again with nothing new is not diagnosed again sooner
    host_names: tuple[str, ...] = ()  # other names of this host in alert labels (besides its hostname)
    routes: tuple[Route, ...] = ()  # [[alertmanager.route]], in order
    where: str = "ddx.toml"  # the file they came from, for messages


_SERVE_KEYS = {"listen": "HOST:PORT to listen on", "token_file": "the file holding the API token",
               "store": "the incident store", "diagnose_budget": "seconds one diagnosis may take"}
_AM_KEYS = {"rediagnose_s": "seconds before a group with nothing new is diagnosed again",
            "host_names": "other names of this host in alert labels", "route": "[[alertmanager.route]] tables"}
_ROUTE_KEYS = ("match", "targets")


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(where: str, key: str, known: Sequence[str]) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
    return ConfigError(f"{where} unknown key {_shown(key)}{hint}")


def _number(where: str, key: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{where} key {key!r}: expected a number of seconds, got {_shown(value)}")
    if not lo <= value <= hi:
        raise ConfigError(f"{where} key {key!r}: {value!r} is outside {lo:g}..{hi:g}")
    return float(value)


def _path(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise ConfigError(f"{where} key {key!r}: expected a file path, got {_shown(value)}")
    return value


def parse_listen(text: str, what: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8923`` for IPv6) -> (host, port); UsageError naming ``what`` otherwise."""
    bad = UsageError if what.startswith("-") else ConfigError
    if not isinstance(text, str):
        raise bad(f"{what}: expected HOST:PORT, got {_shown(text)}")
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise bad(f"{what} {_shown(text)}: expected [IPv6]:PORT, e.g. [::1]:8923")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise bad(f"{what} {_shown(text)}: expected HOST:PORT, e.g. {DEFAULT_LISTEN} (IPv6 as [::1]:8923)")
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise bad(f"{what} {_shown(text)}: no host before the port (e.g. {DEFAULT_LISTEN})")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise bad(f"{what} {_shown(text)}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Only this machine can connect to ``host`` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def template_problem(template: str) -> str | None:
    """Why ``template`` is not a target template, or None."""
    from ddx.config import TARGET_PROBES

    scheme, sep, _ = template.partition("://")
    if not sep or "{" in scheme or "}" in scheme:
        return "expected a URL like redis://{instance}"
    if scheme.lower() not in TARGET_PROBES:
        return f"unknown scheme {scheme!r} (use {', '.join(f'{k}://' for k in TARGET_PROBES)})"
    for m in _PLACEHOLDER.finditer(template):
        if not _LABEL.match(m.group(1)):
            return f"{{{m.group(1)}}} is not a label name (letters, digits, _)"
    if "{" in _PLACEHOLDER.sub("", template) or "}" in _PLACEHOLDER.sub("", template):
        return "a brace that is not part of a {label} placeholder"
    return None


def fill_target(template: str, labels: Mapping[str, str]) -> tuple[str | None, str]:
    """``template`` with each ``{label}`` filled from ``labels``: (the URL, "")
    or (None, why not: a label missing, or a value that is not a host or port)."""
    problems: list[str] = []

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        value = labels.get(name)
        if value is None or value == "":
            problems.append(f"the alert has no label {name!r}")
            return ""
        if not _SAFE_VALUE.match(value):
            problems.append(f"label {name!r} = {_shown(value, 40)} is not a host, an address or a port")
            return ""
        return value

    url = _PLACEHOLDER.sub(one, template)
    if problems:
        return None, problems[0]
    return url, ""


def targets_for(routes: Sequence[Route], labels: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The targets of the first route that matches ``labels`` and a note for
    each template that could not be filled; ([], []) when no route matches."""
    for i, route in enumerate(routes):
        if not route.matches(labels):
            continue
        out, notes = [], []
        for template in route.targets:
            url, why = fill_target(template, labels)
            if url is None:
                notes.append(f"[[alertmanager.route]] #{i + 1}: target {template!r} left out: {why}")
            elif url not in out:
                out.append(url)
        return out, notes
    return [], []


def _routes(where: str, raw: Any) -> tuple[Route, ...]:
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(x, dict) for x in raw):
        raise ConfigError(f"{where} key 'route': expected tables written as [[alertmanager.route]]")
    if len(raw) > MAX_ROUTES:
        raise ConfigError(f"{where} key 'route': {len(raw)} routes, at most {MAX_ROUTES}")
    routes = []
    for i, entry in enumerate(raw):
        w = f"{where.removesuffix(' [alertmanager]')} [[alertmanager.route]] #{i + 1}"
        for key in entry:
            if key not in _ROUTE_KEYS:
                raise _unknown(w, key, _ROUTE_KEYS)
        match_raw = entry.get("match", {})
        if not isinstance(match_raw, dict):
            raise ConfigError(f"{w} key 'match': expected a table of labels, e.g. {{ job = \"redis\" }}")
        match: dict[str, tuple[str, ...]] = {}
        for name, value in match_raw.items():
            if not _LABEL.match(name):
                raise ConfigError(f"{w} key 'match': {_shown(name)} is not a label name (letters, digits, _)")
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{w} key 'match': label {name!r}: expected a string or a list of strings, "
                                  f"got {_shown(value)}")
            match[name] = tuple(values)
        if "targets" not in entry:
            raise ConfigError(f"{w}: 'targets' is required (a list of URL templates; [] for this host alone)")
        targets = entry["targets"]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise ConfigError(f"{w} key 'targets': expected a list of URL templates, got {_shown(targets)}")
        if len(targets) > MAX_TARGETS:
            raise ConfigError(f"{w} key 'targets': {len(targets)} targets, at most {MAX_TARGETS}")
        for t in targets:
            why = template_problem(t)
            if why:
                raise ConfigError(f"{w} key 'targets': {_shown(t)}: {why}")
        routes.append(Route(match, tuple(targets)))
    return tuple(routes)


def serve_settings(tables: Mapping[str, Any] | None, where: str | None = None) -> ServeSettings:
    """``[serve]`` and ``[alertmanager]`` (``Config.service``) -> settings;
    ConfigError naming the file, the table and the key otherwise."""
    where = where or "ddx.toml"
    tables = tables or {}
    out: dict[str, Any] = {"where": where}
    serve = tables.get("serve") or {}
    if not isinstance(serve, Mapping):
        raise ConfigError(f"{where}: 'serve' must be a table [serve]")
    w = f"{where}: [serve]"
    for key, value in serve.items():
        if key not in _SERVE_KEYS:
            raise _unknown(w, key, list(_SERVE_KEYS))
        if key == "listen":
            parse_listen(value, f"{w} key 'listen':")
            out[key] = value
        elif key == "diagnose_budget":
            out[key] = _number(w, key, value, 1.0, 600.0)
        else:
            out[key] = _path(w, key, value)
    am = tables.get("alertmanager") or {}
    if not isinstance(am, Mapping):
        raise ConfigError(f"{where}: 'alertmanager' must be a table [alertmanager]")
    w = f"{where}: [alertmanager]"
    for key, value in am.items():
        if key not in _AM_KEYS:
            raise _unknown(w, key, list(_AM_KEYS))
        if key == "rediagnose_s":
            out[key] = _number(w, key, value, 0.0, 86400.0)
        elif key == "host_names":
            if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
                raise ConfigError(f"{w} key 'host_names': expected a list of host names or addresses, "
                                  f"got {_shown(value)}")
            out[key] = tuple(x.strip() for x in value)
        else:
            out["routes"] = _routes(w, value)
    return ServeSettings(**out)


def read_token(settings: ServeSettings, environ: Mapping[str, str] | None = None, *,
               warn: Callable[[str], None] | None = None) -> str:
    """The API token: ``$DDX_TOKEN``, else ``token_file``'s content (stripped).
    UsageError when there is none or it is unfit; the message never holds it.
    ``warn`` hears that the token file can be read by other users."""
    env = os.environ if environ is None else environ
    token = (env.get("DDX_TOKEN") or "").strip()
    source = "$DDX_TOKEN"
    if not token and settings.token_file:
        from ddx.readfile import read_small_file

        path = settings.token_file
        what = f"{settings.where}: [serve] key 'token_file': {path}"
        try:
            raw = read_small_file(path, limit=MAX_TOKEN + 64, what="token file", error=ConfigError)
        except ConfigError as exc:
            raise ConfigError(f"{settings.where}: [serve] key 'token_file': {exc}") from None
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{what}: the token is not ASCII text") from None
        if not token:
            raise ConfigError(f"{what}: the file is empty")
        source = what
        if warn is not None:
            try:
                mode = os.stat(path).st_mode
            except OSError:
                mode = 0
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                warn(f"{path}: the token file can be read by other users (chmod 600 {path})")
    if not token:
        raise UsageError(f"ddx serve needs an API token: {TOKEN_HELP}")
    if not _TOKEN.match(token):
        raise UsageError(f"{source}: the token must be visible ASCII characters without spaces")
    if not MIN_TOKEN <= len(token) <= MAX_TOKEN:
        raise UsageError(f"{source}: the token must be {MIN_TOKEN} to {MAX_TOKEN} characters long, "
                         f"got {len(token)} ({TOKEN_HELP})")
    return token
