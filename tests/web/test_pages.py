"""The web pages over HTTP: sign-in, no token no page, escaping of host text, the chart,
the postmortem download, the knowledge base. (A real browser: test_browser.py.)"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from typing import Any

from test_serve import TOKEN, case_report, folder, served  # noqa: F401 - the fixtures

from ddx.web.pages import chart_svg

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def seed(served: Any, title: str = EVIL) -> str:  # noqa: F811
    book = served.book
    inc, _ = book.open("watch:evil", "watch", "web-1 " + EVIL, title, symptoms=["disk.used_pct:/var"])
    report = dict(served.diagnoser.report)
    report["findings"] = [*report.get("findings", []), {
        "id": "logs.too_many_open_files", "state": "present",
        "evidence": [{"source": "/var/log/app/" + EVIL, "summary": "3 lines " + EVIL,
                      "samples": ["accept4() failed (24: Too many open files) " + EVIL]}]}]
    book.diagnosis(inc, report)
    served.clock.now += 60
    book.diagnosis(inc, report)
    return inc.id


class Browser:
    """urllib with a cookie jar: a browser without JavaScript."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, **headers: str) -> tuple[int, str, Any]:
        try:
            with self.opener.open(urllib.request.Request(self.base + path, headers=headers), timeout=30) as r:
                return r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers

    def post(self, path: str, body: bytes, **headers: str) -> tuple[int, str, Any]:
        req = urllib.request.Request(self.base + path, data=body, method="POST", headers=headers)
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, r.read().decode(), r.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers

    def sign_in(self, token: str = TOKEN) -> int:
        status, _, _ = self.post("/login", f"token={token}&next=/".encode(),
                                 **{"Content-Type": "application/x-www-form-urlencoded"})
        return status


def test_no_token_no_page_and_signing_in_once_opens_them(served: Any) -> None:  # noqa: F811
    iid = seed(served)
    b = Browser(served.port)
    for path in ("/", f"/incidents/{iid}", "/kb", "/diagnose", f"/incidents/{iid}/postmortem.md", "/nowhere"):
        status, body, _ = b.get(path)
        assert status == 401, path
        assert "Sign in" in body or "unauthorized" in body
    assert b.get("/static/style.css")[0] == 200  # the sign-in page needs its stylesheet
    assert b.sign_in("wrong-token-0123456789") == 401
    assert b.sign_in() == 200  # 303 to / followed
    status, body, headers = b.get("/")
    assert status == 200 and "Incidents" in body
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    # scripts fetch the same pages with the token instead
    status, _, _ = Browser(served.port).get("/", Authorization=f"Bearer {TOKEN}")
    assert status == 200
    # the token never goes into a URL or a cookie
    cookies = list(b.jar)
    assert [c.name for c in cookies] == ["ddx_session"] and TOKEN not in cookies[0].value
    assert cookies[0].has_nonstandard_attr("HttpOnly")


def test_host_text_stays_text_everywhere(served: Any) -> None:  # noqa: F811
    iid = seed(served)
    b = Browser(served.port)
    b.sign_in()
    for path in ("/", f"/incidents/{iid}", f"/incidents/{iid}?fragment=1"):
        status, body, _ = b.get(path)
        assert status == 200
        assert "<script>alert" not in body and "<img src=x" not in body, path
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body or "&lt;script&gt;" in body, path
    # the raw log line is shown, as text
    assert "accept4() failed (24: Too many open files) &lt;script&gt;" in b.get(f"/incidents/{iid}")[1]
    # the Markdown draft escapes it too, and comes as a download
    status, md, headers = b.get(f"/incidents/{iid}/postmortem.md")
    assert status == 200 and "attachment" in headers["Content-Disposition"] and "<script>" not in md


def test_the_incident_page_has_the_differential_chart_evidence_checks_and_timeline(served: Any) -> None:  # noqa: F811
    iid = seed(served, "nginx: too many open files")
    b = Browser(served.port)
    b.sign_in()
    _, body, _ = b.get(f"/incidents/{iid}")
    assert "File descriptor exhaustion" in body
    assert re.search(r"<svg class=\"chart\"[^>]*>.*<polyline", body, re.S)
    assert "Next checks" in body and 'class="copy"' in body and "Timeline" in body
    assert body.count("<circle") >= 2  # two diagnoses, one dot each per cause
    _, page, _ = b.get("/?status=open&cause=fd-exhaustion&hours=24")
    assert f"/incidents/{iid}" in page and "<meter" in page


def test_a_signed_in_browser_posts_only_from_ddx_pages(served: Any) -> None:  # noqa: F811
    b = Browser(served.port)
    b.sign_in()
    status, body, _ = b.post("/api/v1/diagnose", b"{}", **{"Content-Type": "application/json",
                                                           "Origin": "http://evil.example"})
    assert status == 403 and "own pages" in body
    status, body, headers = b.post("/api/v1/diagnose", b"{}", **{"Content-Type": "application/json",
                                                                 "Origin": f"http://127.0.0.1:{served.port}"})
    assert status == 200 and headers["X-DDX-Incident"]


def test_the_knowledge_base_pages(served: Any) -> None:  # noqa: F811
    b = Browser(served.port)
    b.sign_in()
    _, body, _ = b.get("/kb")
    assert "disk-full" in body and "logs.clock_errors" in body and 'data-filter' in body
    status, body, _ = b.get("/kb/disk-full")
    assert status == 200 and "disk.space_exhausted" in body and "Checks" in body
    assert b.get("/kb/no-such")[0] == 404


def test_the_chart_follows_each_leading_cause() -> None:
    diags = [(0.0, {"hypotheses": [{"id": "a", "probability": 0.6}, {"id": "b", "probability": 0.3}]}),
             (60.0, {"hypotheses": [{"id": "b", "probability": 0.7}, {"id": "a", "probability": 0.2}]})]
    chart = chart_svg(diags, width=100, height=100)
    assert [s["id"] for s in chart["series"]] == ["a", "b"]
    a = chart["series"][0]["dots"]
    assert a[0][0] < a[1][0] and a[0][1] < a[1][1]  # later, and lower (0.6 -> 0.2)
    assert chart_svg([])["series"] == []
