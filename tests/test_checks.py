"""Next checks: the first one separates the leading causes; commands carry this host's facts."""

from __future__ import annotations

from ddx.engine.checks import SEPARATES_MIN, rank_checks
from ddx.engine.diagnosis import diagnose
from ddx.engine.facts import Facts, facts_from, fill, fill_all
from ddx.engine.inference import posterior
from ddx.inventory import Dependency, Inventory, Listen, LogFile, Service
from ddx.inventory.model import ConfigFile
from ddx.kb.loader import load_kb
from ddx.kb.model import Check, Condition, FindingDef, KnowledgeBase, Outcome
from ddx.model import Evidence, Finding, State

KB = load_kb()


def _toy() -> KnowledgeBase:
    """a and b lead; c is a long shot. Check 'settle-c' would move c a lot (many bits,
    cheap) but says nothing between a and b; 'a-or-b' tells them apart."""
    f = {fid: FindingDef(fid, fid, 0.05) for fid in ("x", "c1", "c2", "ab")}
    conds = {
        "a": Condition("a", "A", "", 0.3, {"x": 0.9, "ab": 0.9, "c1": 0.05, "c2": 0.05}, ("a-or-b",)),
        "b": Condition("b", "B", "", 0.3, {"x": 0.9, "ab": 0.05, "c1": 0.05, "c2": 0.05}, ("a-or-b",)),
        "c": Condition("c", "C", "", 0.3, {"x": 0.3, "c1": 0.95, "c2": 0.95}, ("settle-c",)),
    }
    checks = {
        "a-or-b": Check("a-or-b", "A or B", ("look at ab",), (Outcome("s", "m"),), 120.0, True, ("ab",), "a"),
        "settle-c": Check("settle-c", "C?", ("look at c",), (Outcome("s", "m"),), 1.0, True, ("c1", "c2"), "c"),
    }
    return KnowledgeBase(f, conds, checks, 0.1)


def test_the_first_check_separates_the_two_leaders_even_when_another_carries_more_bits():
    kb = _toy()
    observed = {"x": State.PRESENT}
    post = posterior(kb, observed)
    ranked = [c for c, _ in post.ranked()]
    assert ranked[:2] == ["a", "b"]
    out = rank_checks(kb, observed, post, limit=0)
    by = {a.check.id: a for a in out}
    assert by["settle-c"].score > by["a-or-b"].score  # the old rule would have led with it
    assert by["settle-c"].separation < SEPARATES_MIN < by["a-or-b"].separation
    assert out[0].check.id == "a-or-b" and out[0].purpose == "separate"


def test_with_disk_full_and_a_package_upgrade_leading_the_first_check_tells_them_apart():
    """The case the real hosts showed: two causes lead, and the first check must test both."""
    fs = [Finding("logs.enospc", State.PRESENT, "case:t"), Finding("change.recent_package_upgrade", State.PRESENT, "case:t"),
          Finding("change.errors_began_after_change", State.PRESENT, "case:t"),
          Finding("http.5xx_rate_high", State.PRESENT, "case:t")]
    d = diagnose(KB, fs)
    leaders = [h.id for h in d.hypotheses[:2]]
    first = d.next_checks[0]
    if d.hypotheses[0].probability < 0.9:
        assert first.purpose == "separate" and set(leaders) <= set(first.tests), (leaders, first)
        assert first.separation >= SEPARATES_MIN


def test_fill_known_unknown_default_and_optional():
    facts = Facts({"app_log": "/srv/shop/log/app.log", "db_host": "10.0.0.5", "db_port": "5432",
                   "failing_path": "/srv/shop/my cache"})
    assert fill("tail -n 50 {{app_log}}", facts) == ("tail -n 50 /srv/shop/log/app.log", [])
    assert fill("namei -l {{failing_path}}", facts)[0] == "namei -l '/srv/shop/my cache'"
    assert fill("du -xh {{full_mount|/}}", facts) == ("du -xh /", [])
    assert fill("journalctl -u {{service}}", facts) == ("journalctl -u <service>", ["service"])
    lines, missing = fill_all(["? nc -zv {{db_host}} {{db_port}}", "? redis-cli -h {{redis_host}} ping",
                               "systemctl --failed"], facts)
    assert lines == ["nc -zv 10.0.0.5 5432", "systemctl --failed"] and missing == []
    lines, missing = fill_all(["? redis-cli -h {{redis_host}} ping"], Facts())
    assert lines == ["redis-cli -h <redis_host> ping"] and missing == ["redis_host"]


def test_facts_from_the_inventory_and_the_findings():
    web = Service("nginx", "nginx", 10, (10, 11), listens=(Listen("tcp", "127.0.0.1", 8080),),
                  configs=(ConfigFile("/opt/shop/nginx.conf", "argv", "-c"),),
                  logs=(LogFile("/opt/shop/logs/error.log", "config"),
                        LogFile("/opt/shop/logs/access.log", "config", kind="access")))
    app = Service("gunicorn shop:app", "gunicorn", 20, (20, 21), user="shop", cwd="/srv/shop",
                  unit="shop.service", configs=(ConfigFile("/srv/shop/settings.json", "env", "SHOP_CONFIG"),),
                  logs=(LogFile("/var/log/shop/app.log", "recent"),),
                  deps=(Dependency("db.internal", 5432, "/srv/shop/settings.json:3", "DATABASE_URL", "postgresql"),
                        Dependency("127.0.0.1", 11211, "/srv/shop/settings.json:4", "cache")))
    inv = Inventory("h", (web, app))
    denied = Finding("logs.permission_denied", State.PRESENT, "probe:logfiles", (Evidence(
        source="/var/log/shop/app.log", summary="x",
        samples=("2026-01-01 ERROR PermissionError: [Errno 13] Permission denied: '/srv/shop/cache/p.html'",)),))
    full = Finding("disk.space_exhausted", State.PRESENT, "probe:disk", (Evidence(
        source="statvfs /srv/shop/cache", summary="0 B free"),))
    f = facts_from(inv, [denied, full])
    assert f.get("access_log") == "/opt/shop/logs/access.log" and f.get("web_conf_dir") == "/opt/shop/"
    assert f.get("app_log") == "/var/log/shop/app.log" and f.get("app_dir") == "/srv/shop"
    assert f.get("service") == "shop.service" and f.get("service_user") == "shop" and f.get("service_pid") == "20"
    assert (f.get("db_host"), f.get("db_port")) == ("db.internal", "5432")
    assert (f.get("cache_host"), f.get("cache_port")) == ("127.0.0.1", "11211")
    assert f.get("failing_path") == "/srv/shop/cache/p.html" and f.get("full_mount") == "/srv/shop/cache"
    assert f.get("redis_host") is None and f.get("url") == "http://127.0.0.1:8080/"
