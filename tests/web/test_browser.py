"""The pages in a real browser: Debian's Chromium driven by Selenium through chromedriver.

The incident comes from a real drill run (the disk-full scenario: its stack, its fault, ddx's real
diagnosis), recorded in a store that ``ddx serve``'s app serves on loopback. Screenshots of the main
pages go to docs/screenshots/ (the README shows them) when DDX_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "browser-test-token-0123456789"
EVIL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                       reason="chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def drill_report() -> dict[str, Any]:
    """ddx's real diagnosis of the disk-full drill (needs root for the drill's tmpfs)."""
    if os.geteuid() != 0:
        pytest.skip("the drill needs root")
    from ddx.api import diagnose_host
    from ddx.drill.runner import run_scenario
    from ddx.drill.scenarios import all_scenarios
    from ddx.render.jsonout import to_dict

    got: dict[str, Any] = {}

    def hold(stack: Any, started: float, budget: float) -> dict[str, Any]:
        report = diagnose_host(config=str(stack.dir / "ddx.toml"), budget=20)
        got["report"] = {**to_dict(report.diagnosis), "host": report.host}
        return {}

    res = run_scenario(all_scenarios()["disk-full"], hold=hold, budget=60.0)
    assert not res.error and "report" in got, res.error
    assert got["report"]["hypotheses"][0]["id"] == "disk-full"
    return got["report"]


class Site:
    def __init__(self, report: dict[str, Any]) -> None:
        import uvicorn

        from ddx.watch.incidents import IncidentBook
        from ddx.watch.store import Store
        from ddx.web.app import create_app
        from ddx.web.settings import ServeSettings

        self.folder = tempfile.mkdtemp(prefix="ddx-browser-")
        self.store = Store(os.path.join(self.folder, "ddx.db"))
        self.book = IncidentBook(self.store)
        self.report = report
        self.app = create_app(self.book, token=TOKEN, diagnose=lambda targets=None: dict(report),
                              settings=ServeSettings())
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)

    def incident(self, title: str, report: dict[str, Any] | None = None) -> Any:
        inc, _ = self.book.open(f"watch:{title}", "watch", "web-1", title, symptoms=["disk.used_pct:/srv/app/cache"])
        self.book.diagnosis(inc, report or self.report)
        return inc

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture()
def site(drill_report: dict[str, Any]) -> Iterator[Site]:
    s = Site(drill_report)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture()
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ddx-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(driver: Any, site: Site) -> None:
    from selenium.webdriver.common.by import By

    driver.get(site.base + "/")
    assert "Sign in" in driver.page_source  # no token, no page
    driver.find_element(By.ID, "token").send_keys(TOKEN)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait(lambda: "Incidents" in driver.title)


def wait(cond: Any, limit: float = 20.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError("timed out")


def shot(driver: Any, name: str) -> None:
    if os.environ.get("DDX_SCREENSHOTS") == "1":
        out = ROOT / "docs" / "screenshots"
        out.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out / name))


def test_list_open_chart_copy_and_live_update(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    inc = site.incident("/srv/app/cache 100% full")
    sign_in(browser, site)
    rows = browser.find_elements(By.CSS_SELECTOR, "table.list tbody tr")
    assert rows and "Disk full" in rows[0].text
    shot(browser, "incidents.png")
    rows[0].find_element(By.CSS_SELECTOR, "a").click()
    wait(lambda: "/incidents/" in browser.current_url)
    # the chart is drawn: polylines with a real size
    chart = browser.find_element(By.CSS_SELECTOR, "svg.chart")
    assert chart.size["width"] > 100 and browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline")
    shot(browser, "incident.png")
    # the copy button puts the command on the clipboard
    browser.execute_cdp_cmd("Browser.grantPermissions", {"origin": site.base,
                                                         "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    button = browser.find_element(By.CSS_SELECTOR, "button.copy")
    expected = button.get_attribute("data-copy")
    button.click()
    wait(lambda: button.text == "Copied")
    copied = browser.execute_async_script("navigator.clipboard.readText().then(arguments[0])")
    assert copied == expected and copied
    # a new diagnosis shows up without a reload
    browser.execute_script("window.__same_page = 1")
    changed = dict(site.report)
    changed["hypotheses"] = [{**h} for h in site.report["hypotheses"]]
    changed["hypotheses"][0], changed["hypotheses"][1] = changed["hypotheses"][1], changed["hypotheses"][0]
    changed["hypotheses"][0]["probability"], changed["hypotheses"][1]["probability"] = 0.81, 0.12
    site.book.diagnosis(inc, changed)
    name = changed["hypotheses"][0]["name"]
    wait(lambda: name in browser.find_element(By.CSS_SELECTOR, "ol.diff li").text, 15)
    assert browser.execute_script("return window.__same_page") == 1
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart circle")) >= 4  # two diagnoses now


def test_injected_markup_stays_inert(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    evil = dict(site.report)
    evil["findings"] = [*site.report.get("findings", []), {
        "id": "disk.space_exhausted", "state": "present",
        "evidence": [{"source": EVIL, "summary": EVIL, "samples": [EVIL]}]}]
    inc = site.incident(EVIL, evil)
    sign_in(browser, site)
    assert EVIL in browser.find_element(By.CSS_SELECTOR, "table.list").text  # shown as text
    browser.get(f"{site.base}/incidents/{inc.id}")
    assert EVIL in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.execute_script("return window.__pwned") is None
    assert not browser.find_elements(By.CSS_SELECTOR, "main img")


def test_knowledge_base_search_diagnose_now_and_a_phone(site: Site, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    sign_in(browser, site)
    browser.get(site.base + "/kb")
    browser.find_element(By.ID, "q").send_keys("inode")
    visible = [r for r in browser.find_elements(By.CSS_SELECTOR, "#kb tbody tr") if r.is_displayed()]
    assert visible and all("inode" in r.text.lower() for r in visible)
    shot(browser, "kb.png")
    browser.get(site.base + "/diagnose")
    browser.find_element(By.CSS_SELECTOR, "#diagnose button").click()
    wait(lambda: "Disk full" in browser.find_element(By.ID, "result").text, 30)
    link = browser.find_element(By.CSS_SELECTOR, "#result a")
    link.click()
    wait(lambda: "/incidents/" in browser.current_url)
    browser.set_window_size(390, 844)  # a phone
    browser.refresh()
    width, room = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width <= room, (width, room)  # nothing wider than the screen: no sideways scrolling
    shot(browser, "incident-phone.png")
