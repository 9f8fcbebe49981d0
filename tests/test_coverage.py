"""Absences judged against where the finding would show (pure, on made-up findings)."""

from __future__ import annotations

from ddx.engine.coverage import refine_down_coverage
from ddx.engine.diagnosis import diagnose
from ddx.kb.loader import load_kb
from ddx.model import Evidence, Finding, State

KB = load_kb()


def test_enospc_unseen_where_nobody_looked_tells_nothing():
    """A full filesystem whose writers' logs were not read: not seeing ENOSPC says nothing."""
    from ddx.engine.coverage import refine_coverage
    from ddx.inventory import Inventory, LogFile, Service
    from ddx.model import Coverage

    app = Service("shop", "gunicorn", 10, (10,), filesystems=("/srv/cache",))
    web = Service("nginx", "nginx", 5, (5,), logs=(LogFile("/var/log/nginx/error.log", "config"),), filesystems=("/",))
    inv = Inventory("h", (app, web), mounts=("/srv/cache", "/"))
    full = Finding("disk.space_exhausted", State.PRESENT, "probe:disk",
                   (Evidence(source="statvfs /srv/cache", summary="0 B free"),))
    cov = Coverage(("nginx: /var/log/nginx/error.log",), ("shop (pid 10): no log found",), 0.5)
    unseen = Finding("logs.enospc", State.ABSENT, "probe:logfiles", (Evidence(source="x", summary="no line"),),
                     coverage=cov, strength=1 / 1.5)
    out = {f.id: f for f in refine_coverage([full, unseen], inv)}
    e = out["logs.enospc"]
    assert e.strength == 0.5 and e.coverage is not None and e.coverage.share == 0.0
    assert any("shop (pid 10), which writes to /srv/cache" in m for m in e.coverage.missing)
    # when the writer's log was read, the absence stands as the log probe judged it
    cov2 = Coverage(("shop: /srv/shop/log/app.log",), (), 1.0)
    seen = Finding("logs.enospc", State.ABSENT, "probe:logfiles", coverage=cov2)
    assert refine_coverage([full, seen], inv)[1] == seen


def _unreachable(*rows: str) -> Finding:
    return Finding("config.references_unreachable_endpoint", State.PRESENT, "probe:drift",
                   (Evidence(source="/srv/app/app.json", summary="dead", samples=rows),))


def test_a_dependency_nobody_could_probe_leaves_svc_down_unknown_for_it():
    """The database the app names refuses connections and is not running, so no service probe
    found it; memcached was probed and is up: svc.down unseen covers memcached only."""
    dead = _unreachable("127.0.0.1:5432: connection refused <- /srv/app/app.json:8 (database)")
    up = Finding("svc.down", State.ABSENT, "probe:memcached",
                 (Evidence(source="memcached://127.0.0.1:11211 (pid 7)", summary="answers"),))
    out = {f.id: f for f in refine_down_coverage([dead, up])}
    down = out["svc.down"]
    assert down.coverage is not None and down.coverage.share == 0.5 and down.strength < 1.0
    assert any(m.startswith("127.0.0.1:5432 (named in /srv/app/app.json:8 (database))") for m in down.coverage.missing)
    # the dead address was probed and found up by a service probe: the absence stands
    probed = Finding("svc.down", State.ABSENT, "probe:postgres",
                     (Evidence(source="postgres://app@localhost:5432/shop (pid 9)", summary="answers"),))
    assert refine_down_coverage([dead, probed])[1] == probed
    # nothing named is dead: nothing to soften
    assert refine_down_coverage([up])[0] == up


def test_a_dead_database_with_no_change_before_it_is_a_dependency_down():
    """The wild dependency-down: the app's database address refuses, its errors fill the log,
    nothing was changed before them; no probe could see the stopped database itself."""
    findings = [
        _unreachable("127.0.0.1:5432: connection refused <- /srv/app/app.json:8 (database)"),
        Finding("logs.connection_refused", State.PRESENT, "probe:logfiles"),
        Finding("http.5xx_rate_high", State.PRESENT, "probe:http"),
        Finding("load.low", State.PRESENT, "probe:cpu"),
        Finding("svc.down", State.ABSENT, "probe:memcached",
                (Evidence(source="memcached://127.0.0.1:11211 (pid 7)", summary="answers"),)),
        Finding("change.recent_config_change", State.ABSENT, "probe:changes"),
        Finding("change.errors_began_after_change", State.ABSENT, "probe:changes"),
    ]
    top = diagnose(KB, refine_down_coverage(findings)).hypotheses[0]
    assert top.id == "dependency-down" and top.probability > 0.6, (top.id, top.probability)
