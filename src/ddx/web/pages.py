"""The web pages of ``ddx serve``: incidents, one incident, diagnose now, the knowledge base.

Server-rendered Jinja2 templates (``templates/``) with autoescaping on: every
string that came from a host (titles, log lines, process names, configuration
values) is text, never markup. The one stylesheet and the one script are served
from the package (``static/``): no external asset, so the pages work on a host
with no internet. The incident page asks the JSON API every few seconds whether
a new diagnosis came and, when one did, fetches the page again and swaps its
content in place (no reload); the chart of each cause's probability over the
incident is inline SVG drawn here.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from starlette import routing
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from ddx.watch.incidents import IncidentBook
from ddx.watch.store import Incident
from ddx.web.session import COOKIE, SESSION_SECONDS, Sessions, cookie_value

__all__ = ["chart_svg", "login_page", "page_routes"]

PAGE = 50  # incidents per page of the list
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed")
STATIC = {"style.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("ddx.web", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["pct"] = lambda p: f"{float(p or 0):.0%}" if p is not None else "–"
    return env


def _when(at: Any) -> str:
    if isinstance(at, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return str(at or "–").replace("T", " ").replace("Z", " UTC")


def render(name: str, status: int = 200, started: float | None = None, **ctx: Any) -> HTMLResponse:
    """The template filled in; with ``started`` (``time.perf_counter()`` when the request
    came in), a ``Server-Timing`` header says how long the server took."""
    html = _env().get_template(name).render(**ctx)
    headers = dict(SECURITY_HEADERS)
    if started is not None:
        headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return HTMLResponse(html, status_code=status, headers=headers)


def login_page(next_path: str = "/", status: int = 200, error: str = "") -> HTMLResponse:
    safe_next = next_path if next_path.startswith("/") and not next_path.startswith("//") else "/"
    return render("login.html", status=status, next=safe_next, error=error)


# --- the chart --------------------------------------------------------------------------------


def chart_svg(diagnoses: Sequence[tuple[float, Mapping[str, Any]]], top: int = 5, width: int = 640,
              height: int = 200) -> dict[str, Any]:
    """The probability of each leading cause at each diagnosis, as SVG polylines:
    {"series": [{"id", "color", "points", "dots": [(x, y, label)]}], "width", "height", "ticks"}.
    Causes: those that led at any diagnosis, then the strongest others, ``top`` at most."""
    if not diagnoses:
        return {"series": [], "width": width, "height": height, "ticks": []}
    probs = [{h.get("id"): float(h.get("probability") or 0) for h in (rep.get("hypotheses") or [])}
             for _, rep in diagnoses]
    leaders: list[str] = []
    for p in probs:
        if p:
            lead = max(p, key=lambda k: p[k])
            if lead not in leaders:
                leaders.append(lead)
    best = sorted({k for p in probs for k in p}, key=lambda k: -max(p.get(k, 0.0) for p in probs))
    causes = (leaders + [c for c in best if c not in leaders])[:top]
    pad, n = 32, len(diagnoses)
    t0, t1 = diagnoses[0][0], diagnoses[-1][0]

    def x(i: int) -> float:
        if n == 1:
            return width / 2
        span = (t1 - t0) or float(n - 1)
        at = (diagnoses[i][0] - t0) if t1 > t0 else float(i)
        return round(pad + (width - 2 * pad) * at / span, 1)

    def y(p: float) -> float:
        return round(height - pad - (height - 2 * pad) * p, 1)

    series = []
    for c, color in zip(causes, COLORS):
        pts = [(x(i), y(p.get(c, 0.0)), f"{c} {p.get(c, 0.0):.0%} at {_when(diagnoses[i][0])}")
               for i, p in enumerate(probs)]
        series.append({"id": c, "color": color, "points": " ".join(f"{a},{b}" for a, b, _ in pts), "dots": pts})
    ticks = [{"y": y(v), "label": f"{v:.0%}"} for v in (0.0, 0.5, 1.0)]
    return {"series": series, "width": width, "height": height, "ticks": ticks, "pad": pad}


# --- what a page shows ------------------------------------------------------------------------


def _evidence(report: Mapping[str, Any], top: int = 3) -> list[dict[str, Any]]:
    """For each of the leading causes: the findings for and against it, each with the
    evidence that produced it (its source, summary and the raw lines)."""
    findings = {f.get("id"): f for f in report.get("findings") or [] if isinstance(f, dict)}
    out = []
    for h in (report.get("hypotheses") or [])[:top]:
        rows = []
        for side in ("for", "against"):
            for w in h.get(side) or []:
                f = findings.get(w.get("finding")) or {}
                rows.append({"side": side, "finding": w.get("finding"), "state": w.get("state"),
                             "weight": float(w.get("weight") or 0), "evidence": (f.get("evidence") or [])[:3],
                             "note": f.get("note", "")})
        out.append({"id": h.get("id"), "name": h.get("name"), "probability": h.get("probability"), "rows": rows})
    return out


def _incident_view(store: Any, incident_id: str) -> dict[str, Any] | None:
    inc = store.get(incident_id) if len(incident_id) <= 128 else None
    if inc is None:
        return None
    diagnoses = store.diagnoses(inc.id)
    last = diagnoses[-1][1] if diagnoses else {}
    return {
        "inc": inc,
        "events": store.events(inc.id),
        "diagnoses": diagnoses,
        "last": last,
        "hypotheses": (last.get("hypotheses") or [])[:5],
        "evidence": _evidence(last),
        "gaps": last.get("not_looked_at") or [],
        "checks": (last.get("next_checks") or [])[:3],
        "chart": chart_svg(diagnoses),
        "alerts": store.alerts(inc.id),
    }


class Pages:
    def __init__(self, book: IncidentBook, sessions: Sessions, api: Any) -> None:
        self.book = book
        self.sessions = sessions
        self.api = api

    def _store(self) -> Any:
        return self.api._store()

    async def incidents(self, request: Request) -> Response:
        started = time.perf_counter()
        q = request.query_params
        status = q.get("status") if q.get("status") in ("open", "resolved") else None
        host = (q.get("host") or "").strip()[:200] or None
        cause = (q.get("cause") or "").strip()[:200] or None
        try:
            hours = max(0.0, min(float(q.get("hours") or 0), 24 * 3650))
            page = max(0, min(int(q.get("page") or 0), 100_000))
        except ValueError:
            hours, page = 0.0, 0
        store = self._store()

        def load() -> tuple[list[Incident], int]:
            since = time.time() - hours * 3600 if hours else None
            rows = store.incidents(status=status, host=host, cause=cause, since=since, limit=PAGE + 1,
                                   offset=page * PAGE)
            return rows, store.count(status="open")

        rows, open_count = await run_in_threadpool(load)
        filters = {k: v for k, v in (("status", status), ("host", host), ("cause", cause),
                                     ("hours", q.get("hours"))) if v}
        more = len(rows) > PAGE
        return render("incidents.html", started=started, incidents=rows[:PAGE], filters=filters, page=page, open_count=open_count,
                      prev_url=("/?" + urlencode({**filters, "page": page - 1})) if page else None,
                      next_url=("/?" + urlencode({**filters, "page": page + 1})) if more else None,
                      nav="incidents")

    async def incident(self, request: Request) -> Response:
        started = time.perf_counter()
        incident_id = str(request.path_params["id"])
        view = await run_in_threadpool(_incident_view, self._store(), incident_id)
        if view is None:
            return render("error.html", status=404, message=f"No incident {incident_id}.", nav="incidents")
        name = "incident_live.html" if request.query_params.get("fragment") == "1" else "incident.html"
        return render(name, started=started, nav="incidents", **view)

    async def postmortem(self, request: Request) -> Response:
        from ddx.render.incident import render_postmortem

        incident_id = str(request.path_params["id"])
        store = self._store()

        def load() -> str | None:
            inc = store.get(incident_id) if len(incident_id) <= 128 else None
            if inc is None:
                return None
            return render_postmortem(inc, store.events(inc.id), store.diagnoses(inc.id), store.alerts(inc.id))

        text = await run_in_threadpool(load)
        if text is None:
            return PlainTextResponse(f"no incident {incident_id}\n", status_code=404)
        return PlainTextResponse(text, media_type="text/markdown; charset=utf-8", headers={
            **SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="postmortem-{quote(incident_id)}.md"'})

    async def diagnose(self, request: Request) -> Response:
        return render("diagnose.html", nav="diagnose")

    async def kb(self, request: Request) -> Response:
        from ddx.kb.loader import load_kb

        kb = await run_in_threadpool(load_kb)
        conditions = sorted(kb.conditions.values(), key=lambda c: c.id)
        findings = sorted(kb.findings.values(), key=lambda f: f.id)
        return render("kb.html", conditions=conditions, findings=findings, nav="kb")

    async def condition(self, request: Request) -> Response:
        from ddx.kb.loader import load_kb

        kb = await run_in_threadpool(load_kb)
        c = kb.conditions.get(str(request.path_params["id"]))
        if c is None:
            return render("error.html", status=404, message="No such condition.", nav="kb")
        rows = sorted(((fid, p, kb.findings[fid]) for fid, p in c.likelihoods.items() if fid in kb.findings),
                      key=lambda r: -r[1])
        checks = [kb.checks[cid] for cid in c.checks if cid in kb.checks]
        return render("condition.html", c=c, rows=rows, checks=checks, nav="kb")

    async def login_form(self, request: Request) -> Response:
        return login_page(request.query_params.get("next", "/"))

    async def login(self, request: Request) -> Response:
        from urllib.parse import parse_qs

        body = await request.body()
        form = parse_qs(body[:8192].decode("utf-8", "replace")) if len(body) <= 8192 else {}
        token, nxt = (form.get("token") or [""])[0], (form.get("next") or ["/"])[0]
        if not self.sessions.token_ok(token):
            return login_page(nxt, status=401, error="That token is not valid.")
        sid = self.sessions.start()
        target = nxt if nxt.startswith("/") and not nxt.startswith("//") else "/"
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(COOKIE, sid, max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
        return resp

    async def logout(self, request: Request) -> Response:
        self.sessions.end(cookie_value(request.headers, COOKIE))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def static(self, request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in STATIC:
            return PlainTextResponse("not found\n", status_code=404)
        body = resources.files("ddx.web").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=3600",
                                                                 "X-Content-Type-Options": "nosniff"})


def page_routes(book: IncidentBook, sessions: Sessions, api: Any) -> list[routing.Route]:
    p = Pages(book, sessions, api)
    return [
        routing.Route("/", p.incidents, methods=["GET"]),
        routing.Route("/incidents/{id}", p.incident, methods=["GET"]),
        routing.Route("/incidents/{id}/postmortem.md", p.postmortem, methods=["GET"]),
        routing.Route("/diagnose", p.diagnose, methods=["GET"]),
        routing.Route("/kb", p.kb, methods=["GET"]),
        routing.Route("/kb/{id}", p.condition, methods=["GET"]),
        routing.Route("/login", p.login_form, methods=["GET"]),
        routing.Route("/login", p.login, methods=["POST"]),
        routing.Route("/logout", p.logout, methods=["POST"]),
        routing.Route("/static/{name}", p.static, methods=["GET"]),
    ]
