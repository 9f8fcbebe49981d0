"""Target URLs: split off their passwords, and show them without any secret.

People write passwords into URLs as they are, ``@`` and ``/`` included
(``postgresql://app:p@ss/w0rd@db/shop``), although the standard wants them
percent-encoded. A parser that stops at the first ``@`` or ``/`` would take
``ss/w0rd@db`` for the host (a DNS look-up of part of the password) and pass
the rest on to a client's command line. Here the password runs from the first
``:`` of the user-info to the *last* ``@`` of the URL, so all of it is found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

__all__ = ["SECRET_PARAMS", "UserInfo", "mask_params", "mask_url", "split_url", "split_userinfo"]

MASK = "***"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_WEB = ("http://", "https://")
# Query parameters whose value is a secret (names compared in lower case).
SECRET_PARAMS = frozenset({
    "password", "passwd", "pwd", "pass", "secret", "client_secret", "token", "access_token", "refresh_token",
    "id_token", "auth", "auth_token", "api_key", "apikey", "key", "sig", "signature", "sslpassword",
    "x-amz-signature", "x-amz-security-token", "x-amz-credential", "private_token", "session",
})
_PARAM = re.compile(r"([?&;])([^=&;#\s\"'<>?]{1,64})=([^&;#\s\"'<>]*)")


@dataclass(frozen=True)
class UserInfo:
    """A URL cut at its user-info: ``prefix`` (``scheme://``), ``user`` (as
    written, or None), ``password`` (as written, or None: no ``:`` in the
    user-info) and ``rest`` (host, port, path, query)."""

    prefix: str
    user: str | None
    password: str | None
    rest: str

    def without_password(self) -> str:
        """The URL with no password (and the ``:`` before it)."""
        if self.user is None:
            return self.prefix + self.rest
        return f"{self.prefix}{self.user}@{self.rest}"

    def plain_password(self) -> str | None:
        """The password percent-decoded (``%40`` is ``@``), or None."""
        return None if self.password is None else unquote(self.password)


def split_userinfo(url: str) -> UserInfo:
    """Cut ``url`` into scheme, user, password and the rest. A user-info with a
    password (a ``:`` before the first ``@``) ends at the last ``@`` of the URL;
    one without, at the first ``@``. In a web URL, whose path may hold an
    ``@``, one after the path starts counts only when what follows the ``:`` is
    not a port (``http://h:8080/a@b`` has no user-info)."""
    m = _SCHEME.match(url)
    prefix = m.group() if m else ""
    body = url[len(prefix):]
    if not prefix or "@" not in body:
        return UserInfo(prefix, None, None, body)
    colon, first_at = body.find(":"), body.find("@")
    stop = min((i for i in (body.find("/"), body.find("?"), body.find("#")) if i >= 0), default=len(body))
    web_port = prefix.lower() in _WEB and body[colon + 1:stop].isdigit()
    if 0 <= colon < min(first_at, stop) and (first_at < stop or not web_port):
        last_at = body.rfind("@")
        return UserInfo(prefix, body[:colon], body[colon + 1:last_at], body[last_at + 1:])
    if first_at < stop:
        return UserInfo(prefix, body[:first_at], None, body[first_at + 1:])
    return UserInfo(prefix, None, None, body)


def split_url(url: str) -> tuple[SplitResult, str | None, str | None]:
    """``url`` parsed with its user-info cut off first (``split_userinfo``): the
    parts of the rest (scheme, host, port, path, query), the user and the
    password percent-decoded. A password with ``@`` or ``/`` in it never reaches
    the host name. Reading ``.port`` may raise ``ValueError`` as ``urlsplit``'s does."""
    u = split_userinfo(url)
    user = unquote(u.user) if u.user else None
    return urlsplit(u.prefix + u.rest), user, u.plain_password()


def mask_params(text: str) -> str:
    """``text`` with the value of every secret parameter (``?password=x``,
    ``&access_token=x``, ``;Password=x``) replaced by ``***``."""
    def one(m: re.Match[str]) -> str:
        name = unquote(m.group(2)).lower()
        return f"{m.group(1)}{m.group(2)}={MASK}" if name in SECRET_PARAMS and m.group(3) else m.group()

    return _PARAM.sub(one, text)


def mask_url(url: str) -> str:
    """``url`` with its password and its secret query parameters replaced by
    ``***`` (``redis://:s3cret@h:6379`` -> ``redis://:***@h:6379``;
    ``?password=x`` -> ``?password=***``)."""
    u = split_userinfo(url)
    head = url[: len(url) - len(u.rest)]  # the scheme and user-info as written
    if u.password is not None:
        head = f"{u.prefix}{u.user}:{MASK}@"
    return head + mask_params(u.rest)
