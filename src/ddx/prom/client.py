"""A small client of the Prometheus HTTP API: instant queries, each with a timeout.

Errors are ``PromError`` (a ``UsageError``: exit 2) with one line naming the URL
(its password, if any, masked). Auth, never printed: a bearer token from the
environment variable ``DDX_PROMETHEUS_TOKEN`` or the file named by
``DDX_PROMETHEUS_TOKEN_FILE``; or the user and password of the URL
(``http://user:pass@host:9090``), sent as basic auth.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ddx.errors import UsageError

__all__ = ["DEFAULT_TIMEOUT", "PromClient", "PromError", "Sample"]

DEFAULT_TIMEOUT = 10.0  # seconds per HTTP request
MAX_BYTES = 64 << 20  # an answer larger than this is not one ddx asked for
PARALLEL = 8  # queries in flight at once (Prometheus evaluates them concurrently)


class PromError(UsageError):
    """Prometheus could not be reached, is not Prometheus, or refused a query."""


@dataclass(frozen=True)
class Sample:
    """One series of an instant-vector answer: its labels and value."""

    labels: dict[str, str]
    value: float


def _auth_header(userinfo: tuple[str | None, str | None]) -> str | None:
    token = os.environ.get("DDX_PROMETHEUS_TOKEN", "").strip()
    path = os.environ.get("DDX_PROMETHEUS_TOKEN_FILE", "").strip()
    if not token and path:
        try:
            with open(path, encoding="utf-8") as fh:
                token = fh.read(65536).strip()
        except OSError as exc:
            raise PromError(f"DDX_PROMETHEUS_TOKEN_FILE: cannot read {path}: {exc.strerror or exc}") from None
    if token:
        return f"Bearer {token}"
    user, password = userinfo
    if user is not None:
        raw = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password or '')}".encode()
        return "Basic " + base64.b64encode(raw).decode()
    return None


class PromClient:
    """Instant queries against one Prometheus server.

    ``url`` is the server's base URL (``http://prom:9090``, or with a path prefix
    when it runs behind one); ``timeout`` bounds each request."""

    def __init__(self, url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        from ddx.urls import mask_url, split_userinfo

        text = (url or "").strip()
        self.shown = mask_url(text) or "''"
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PromError(f"--prometheus {self.shown}: not an http(s) URL of a Prometheus server")
        info = split_userinfo(text)
        if info.user is not None:
            text = info.prefix + info.rest
        self.base = text.rstrip("/")
        self.timeout = timeout
        self._auth = _auth_header((info.user, info.password))

    def _get(self, path: str, params: dict[str, str]) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        req = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "ddx"})
        if self._auth:
            req.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only, checked above
                body = resp.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_BYTES + 1) if exc.fp else b""
            doc = _json(body)
            if isinstance(doc, dict) and doc.get("status") == "error":
                raise PromError(f"Prometheus at {self.shown} refused the query: {doc.get('error', exc.code)}") from None
            if exc.code in (401, 403):
                raise PromError(f"Prometheus at {self.shown} refused access (HTTP {exc.code}): "
                                "set DDX_PROMETHEUS_TOKEN or DDX_PROMETHEUS_TOKEN_FILE") from None
            raise PromError(f"{self.shown} does not look like Prometheus: HTTP {exc.code} for {path}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                raise PromError(f"Prometheus at {self.shown} did not answer within {self.timeout:g} s") from None
            raise PromError(f"cannot reach Prometheus at {self.shown}: {reason}") from None
        if len(body) > MAX_BYTES:
            raise PromError(f"Prometheus at {self.shown}: an answer larger than {MAX_BYTES >> 20} MB")
        doc = _json(body)
        if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
            raise PromError(f"{self.shown} does not look like Prometheus: {path} gave no Prometheus API answer")
        if doc["status"] == "error":
            raise PromError(f"Prometheus at {self.shown} refused the query: {doc.get('error', '?')}")
        if "data" not in doc:
            raise PromError(f"{self.shown} does not look like Prometheus: {path} gave no data")
        return doc["data"]

    def query(self, expr: str, *, at: float | None = None) -> list[Sample]:
        """An instant query; its answer as samples (a scalar answer is one sample without labels)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if not isinstance(data, dict) or "result" not in data:
            raise PromError(f"{self.shown} does not look like Prometheus: no result for a query")
        kind, result = data.get("resultType"), data["result"]
        try:
            if kind == "vector":
                return [Sample(dict(r.get("metric") or {}), float(r["value"][1])) for r in result]
            if kind == "scalar":
                return [Sample({}, float(result[1]))]
        except (KeyError, IndexError, TypeError, ValueError):
            pass
        raise PromError(f"Prometheus at {self.shown} gave an answer ddx cannot read ({kind}) for: {expr[:120]}")

    def query_many(self, exprs: Sequence[str], *, at: float | None = None) -> list[list[Sample]]:
        """Several instant queries, ``PARALLEL`` at a time, answers in the order asked; the first
        error is raised once the queries in flight have ended."""
        if len(exprs) <= 1:
            return [self.query(e, at=at) for e in exprs]
        pool = ThreadPoolExecutor(max_workers=min(PARALLEL, len(exprs)))
        try:
            return list(pool.map(lambda e: self.query(e, at=at), exprs))
        finally:  # on the first error the queries not yet sent are dropped, not waited for
            pool.shutdown(wait=True, cancel_futures=True)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
