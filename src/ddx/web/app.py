"""The HTTP API of ``ddx serve``: a Starlette app over one incident book.

Every route answers JSON and, but for ``/healthz``, needs the header
``Authorization: Bearer TOKEN`` (compared in constant time; a token in a URL is
never read). Without it: 401 with ``WWW-Authenticate: Bearer``.

- ``GET /healthz``: ``{"ok": true, "store": "ok" | the store's error}``, no token.
- ``GET /api/v1/incidents?status=&host=&cause=&source=&limit=&offset=``:
  ``{"incidents": [...], "limit": N, "offset": N}``, newest first.
- ``GET /api/v1/incidents/{id}``: ``{"incident", "events", "diagnoses" [{at,
  report}], "alerts", "notifications"}``; 404 when unknown.
- ``POST /api/v1/diagnose`` (body ``{"targets": [URL, ...]}``, optional):
  diagnoses this host now, in a worker thread, and answers the diagnosis JSON
  (200). It is recorded as an incident of source ``manual`` (key
  ``manual:<random>``), resolved at once, so that it shows in the list; its id
  is in the ``X-DDX-Incident`` header. It notifies no one: whoever asked has
  the answer. At most ``MAX_DIAGNOSES`` diagnoses run at once (429 beyond).
- ``POST /api/v1/alertmanager``: Alertmanager's webhook (payload version 4).
  A payload that is not JSON, not an object, of another version, without
  ``groupKey`` or whose ``alerts`` is not a list of objects is refused (400,
  the reason on one line); a body over 1 MB gets 413; unknown fields are
  ignored. A valid one is answered 200 at once, and handled in the background
  (``AlertIntake``), in the order received within a group.

One incident per alert group: key ``alertmanager:<groupKey>``, source
``alertmanager``, host the ``instance`` label's host (this host's name when
that is this host or there is none), labels the group's ``commonLabels``. Each
alert is kept by its fingerprint. A group with a firing alert not seen before
is diagnosed (this host, plus the targets of the ``[[alertmanager.route]]``
its labels match) and the diagnosis recorded, which notifies through the
book's sender; the same group sent again with nothing new is diagnosed again
only after ``rediagnose_s`` (60 s). A payload whose status is ``resolved``
resolves the incident. A group's payloads are handled one at a time, so one
group is never diagnosed twice at once.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette import routing
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ddx.errors import DdxError, UsageError
from ddx.watch.incidents import IncidentBook
from ddx.watch.store import StoreError
from ddx.web.alertmanager import (
    MAX_BODY,
    MAX_DIAGNOSES,
    WORKERS,
    Alert,
    AlertGroup,
    AlertIntake,
    Diagnose,
    PayloadError,
    alert_host,
    clip,
    parse_webhook,
    shown,
)
from ddx.web.session import COOKIE, Sessions, cookie_value, same_origin
from ddx.web.settings import MAX_TARGETS, ServeSettings

__all__ = [
    "MAX_BODY",
    "Alert",
    "AlertGroup",
    "AlertIntake",
    "BearerAuth",
    "PayloadError",
    "alert_host",
    "create_app",
    "parse_webhook",
]

log = logging.getLogger("ddx.serve")

DRAIN = 8 * MAX_BODY  # a body too large, but up to this, is read to its end before the 413 (see _read_body)
MAX_QUERY_TEXT = 256



def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))




def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=dict(headers or {}))


# --- authentication -------------------------------------------------------------------------


class BearerAuth:
    """ASGI middleware: every HTTP request but those to ``open_paths`` (and under
    ``/static/``) must carry ``Authorization: Bearer <token>`` or a session cookie
    (``ddx.web.session``); 401 otherwise (unknown paths too, so that the routes are
    not shown to whoever has no token). A page asked for without either gets the
    sign-in form, still with 401. A POST made with the cookie must come from a page
    of this server (403 otherwise)."""

    def __init__(self, app: ASGIApp, token: str, open_paths: tuple[str, ...] = ("/healthz", "/login"),
                 sessions: Sessions | None = None) -> None:
        if not token:
            raise ValueError("ddx serve needs a token")
        self.app = app
        self.token = token.encode("utf-8")
        self.open_paths = open_paths
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.open_paths or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        value = headers.get("authorization", "")
        scheme, _, given = value.strip().partition(" ")
        if scheme.lower() == "bearer" and given.strip():
            if hmac.compare_digest(given.strip().encode("latin-1", "replace"), self.token):
                await self.app(scope, receive, send)
                return
            response: Response = _error(401, "unauthorized: the token is not valid",
                                        {"WWW-Authenticate": 'Bearer realm="ddx", error="invalid_token"'})
        elif self.sessions is not None and self.sessions.valid(cookie_value(headers, COOKIE)):
            if scope.get("method", "GET") not in ("GET", "HEAD") and not same_origin(headers, headers.get("host", "")):
                response = _error(403, "forbidden: a signed-in browser may post only from ddx's own pages")
            else:
                await self.app(scope, receive, send)
                return
        elif not path.startswith("/api/") and self.sessions is not None:
            from ddx.web.pages import login_page

            response = login_page(path, status=401)
        else:
            response = _error(401, "unauthorized: send the API token as 'Authorization: Bearer TOKEN'",
                              {"WWW-Authenticate": 'Bearer realm="ddx"'})
        await response(scope, receive, send)


# --- the app --------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request's body; 413 past ``limit`` bytes. A body up to ``DRAIN``
    bytes is read to its end first (and thrown away), so that the client, still
    sending, gets the answer rather than a reset connection; a larger one is
    refused at once (when its length is announced) or once past ``DRAIN``."""
    too_big = HTTPException(413, f"the body is larger than {limit // (1 << 20)} MB")
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > DRAIN:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > DRAIN:
            break
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise too_big
    return b"".join(chunks)


def _int_param(value: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if value is None or value == "":
        return default
    if not value.isdigit() or not lo <= int(value) <= hi:
        raise HTTPException(400, f"{name} must be a whole number from {lo} to {hi}, got {shown(value)}")
    return int(value)


def _check_targets(raw: Any) -> list[str]:
    from ddx.config import TARGET_PROBES
    from ddx.urls import mask_url

    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise HTTPException(400, "'targets' must be a list of URLs")
    if len(raw) > MAX_TARGETS:
        raise HTTPException(400, f"'targets': {len(raw)} URLs, at most {MAX_TARGETS}")
    for t in raw:
        scheme = t.split("://", 1)[0].lower() if "://" in t else ""
        if scheme not in TARGET_PROBES or len(t) > 2048:
            known = ", ".join(f"{k}://" for k in TARGET_PROBES)
            raise HTTPException(400, f"target {shown(mask_url(t))}: not a URL ddx probes (use {known})")
    return list(raw)


class _Api:
    def __init__(self, book: IncidentBook, manual: IncidentBook, intake: AlertIntake, diagnose: Diagnose,
                 gate: threading.Semaphore, this_host: str) -> None:
        self.book = book
        self.manual = manual
        self.intake = intake
        self.diagnose_fn = diagnose
        self.gate = gate
        self.this_host = this_host

    def _store(self) -> Any:
        if self.book.store is None:
            raise HTTPException(503, "no incident store")
        return self.book.store

    async def healthz(self, request: Request) -> Response:
        def check() -> str:
            if self.book.store is None:
                return "no store"
            try:
                self.book.store.count()
            except StoreError as exc:
                return str(exc)
            return self.book.store_error or "ok"

        return JSONResponse({"ok": True, "store": await run_in_threadpool(check)})

    async def incidents(self, request: Request) -> Response:
        q = request.query_params
        known = ("status", "host", "cause", "source", "limit", "offset")
        for name in q:
            if name not in known:
                raise HTTPException(400, f"unknown parameter {shown(name)} (known: {', '.join(known)})")
        status = q.get("status") or None
        if status not in (None, "open", "resolved"):
            raise HTTPException(400, f"status must be open or resolved, got {shown(status)}")
        filters: dict[str, Any] = {}
        for name in ("host", "cause", "source"):
            value = q.get(name)
            if value:
                if len(value) > MAX_QUERY_TEXT:
                    raise HTTPException(400, f"{name} is longer than {MAX_QUERY_TEXT} characters")
                filters[name] = value
        limit = _int_param(q.get("limit"), "limit", 100, 1, 1000)
        offset = _int_param(q.get("offset"), "offset", 0, 0, 10**9)
        store = self._store()

        def load() -> list[dict[str, Any]]:
            return [i.to_dict() for i in store.incidents(status=status, limit=limit, offset=offset, **filters)]

        return JSONResponse({"incidents": await run_in_threadpool(load), "limit": limit, "offset": offset})

    async def incident(self, request: Request) -> Response:
        incident_id = str(request.path_params["id"])
        store = self._store()

        def load() -> dict[str, Any] | None:
            inc = store.get(incident_id) if len(incident_id) <= 128 else None
            if inc is None:
                return None
            return {
                "incident": inc.to_dict(),
                "events": [e.to_dict() for e in store.events(inc.id)],
                "diagnoses": [{"at": _iso(at), "report": rep} for at, rep in store.diagnoses(inc.id)],
                "alerts": store.alerts(inc.id),
                "notifications": store.notifications(inc.id),
            }

        found = await run_in_threadpool(load)
        if found is None:
            return _error(404, f"no incident {shown(incident_id)}")
        return JSONResponse(found)

    async def diagnose(self, request: Request) -> Response:
        body = await _read_body(request)
        targets: list[str] = []
        if body.strip():
            try:
                data = json.loads(body)
            except (ValueError, RecursionError):
                return _error(400, "the body is not JSON (send {\"targets\": [URL, ...]} or nothing)")
            if not isinstance(data, dict):
                return _error(400, "the body must be a JSON object, like {\"targets\": [URL, ...]}")
            targets = _check_targets(data.get("targets", []))
        if not self.gate.acquire(blocking=False):
            return _error(429, f"busy: {MAX_DIAGNOSES} diagnoses are running; try again shortly",
                          {"Retry-After": "10"})

        def run() -> tuple[dict[str, Any], str]:
            try:
                report = dict(self.diagnose_fn(targets=targets))
            finally:
                self.gate.release()
            report.setdefault("host", self.this_host)
            return report, self._record_manual(report, targets)

        try:
            report, incident_id = await run_in_threadpool(run)
        except UsageError as exc:
            return _error(400, clip(str(exc), 500))
        except DdxError as exc:
            return _error(500, clip(f"diagnosis failed: {exc}", 500))
        return JSONResponse(report, headers={"X-DDX-Incident": incident_id})

    def _record_manual(self, report: Mapping[str, Any], targets: list[str]) -> str:
        from ddx.urls import mask_url

        shown = [mask_url(t) for t in targets]
        host = str(report.get("host") or self.this_host)
        title = "diagnosis on request" + (f" (targets: {', '.join(shown)})" if shown else "")
        inc, _ = self.manual.open(f"manual:{secrets.token_hex(8)}", "manual", host, clip(title),
                                  labels={"requested_via": "api"})
        if shown:
            self.manual.event(inc, "note", "targets probed besides this host", {"targets": shown})
        self.manual.diagnosis(inc, report)
        self.manual.resolve(inc, "diagnosis on request: recorded")
        return inc.id

    async def alertmanager(self, request: Request) -> Response:
        body = await _read_body(request)
        try:
            group = parse_webhook(body)
        except PayloadError as exc:
            return _error(400, str(exc))
        if not self.intake.submit(group):
            return _error(503, "busy: too many alert payloads wait; send again later", {"Retry-After": "30"})
        return JSONResponse({"ok": True, "alerts": len(group.alerts)})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return _error(exc.status_code, str(exc.detail), exc.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("ddx serve: %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return _error(500, "internal error (the server's log has the details)")


def create_app(book: IncidentBook, *, token: str, diagnose: Diagnose, settings: ServeSettings,
               this_host: str | None = None, manual_book: IncidentBook | None = None,
               workers: int = WORKERS) -> Starlette:
    """The ``ddx serve`` app over ``book``. ``diagnose(targets=[URL, ...])``
    returns the diagnosis JSON (``ddx.render.jsonout.to_dict`` plus ``host``);
    it runs in worker threads, never on the event loop. Manual diagnoses are
    recorded in ``manual_book`` (default: a book on the same store that notifies
    no one). ``app.state.intake`` is the ``AlertIntake`` (``wait_idle``)."""
    host_name = this_host or socket.gethostname()
    gate = threading.BoundedSemaphore(MAX_DIAGNOSES)
    intake = AlertIntake(book, diagnose, settings, this_host=host_name, gate=gate, workers=workers)
    manual = manual_book if manual_book is not None else IncidentBook(book.store, None, clock=book.clock)
    api = _Api(book, manual, intake, diagnose, gate, host_name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        intake.start()
        try:
            yield
        finally:
            await run_in_threadpool(intake.close, 5.0)
            await run_in_threadpool(book.flush)

    sessions = Sessions(token)
    from ddx.web.pages import page_routes

    routes = [
        *page_routes(book, sessions, api),
        routing.Route("/healthz", api.healthz, methods=["GET"]),
        routing.Route("/api/v1/incidents", api.incidents, methods=["GET"]),
        routing.Route("/api/v1/incidents/{id}", api.incident, methods=["GET"]),
        routing.Route("/api/v1/diagnose", api.diagnose, methods=["POST"]),
        routing.Route("/api/v1/alertmanager", api.alertmanager, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(BearerAuth, token=token, sessions=sessions)],
                    exception_handlers={HTTPException: _http_error, Exception: _internal_error},
                    lifespan=lifespan)
    app.state.intake = intake
    app.state.book = book
    app.state.manual_book = manual
    return app
