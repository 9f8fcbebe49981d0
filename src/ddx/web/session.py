"""Signing in: the API token once, then a session cookie.

A browser posts the token to ``/login`` and gets a cookie holding a random
session id (``HttpOnly``, ``SameSite=Strict``, ``Path=/``; ``Secure`` when the
page came over HTTPS). The token itself never goes into a cookie or a URL.
Sessions live in memory for ``SESSION_SECONDS``: restarting ``ddx serve`` signs
everybody out, which is the safe direction.

A request is let in with either ``Authorization: Bearer TOKEN`` or a valid
session cookie. A state-changing request (POST) made with the cookie must come
from a page of this server (its ``Origin``, or else its ``Referer``, names this
host): a page elsewhere cannot make a signed-in browser start diagnoses.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["COOKIE", "SESSION_SECONDS", "Sessions", "cookie_value", "same_origin"]

COOKIE = "ddx_session"
SESSION_SECONDS = 12 * 3600
MAX_SESSIONS = 1000


class Sessions:
    def __init__(self, token: str, *, clock: object = time.time) -> None:
        self._token = token.encode("utf-8")
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: dict[str, float] = {}  # session id -> expiry

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def token_ok(self, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given.strip().encode("latin-1", "replace"), self._token)

    def start(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = self._now()
            self._ids = {k: v for k, v in self._ids.items() if v > now}
            if len(self._ids) >= MAX_SESSIONS:  # the oldest go first
                for k in sorted(self._ids, key=self._ids.__getitem__)[: len(self._ids) - MAX_SESSIONS + 1]:
                    del self._ids[k]
            self._ids[sid] = now + SESSION_SECONDS
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        with self._lock:
            expiry = self._ids.get(sid)
            return expiry is not None and expiry > self._now()

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._ids.pop(sid or "", None)


def same_origin(headers: Mapping[str, str], host: str) -> bool:
    """Whether a request's ``Origin`` (or ``Referer``) names ``host`` (the Host header)."""
    source = headers.get("origin") or headers.get("referer") or ""
    if not source or source == "null":
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def cookie_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of cookie ``name`` in a request's ``Cookie`` header, None when absent or unreadable."""
    from http.cookies import CookieError, SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None
