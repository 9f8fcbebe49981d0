"""A drill scenario under ddx watch: the drill's real stack, its real fault, the real daemon
loop and diagnosis: one incident, the right leading cause, resolved once the fault is removed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_store import Sent

from ddx.drill.scenarios import all_scenarios
from ddx.host import LiveHost
from ddx.watch.daemon import Watch, host_diagnosis
from ddx.watch.incidents import IncidentBook
from ddx.watch.sampler import Sampler
from ddx.watch.settings import WatchSettings
from ddx.watch.store import Store

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_the_disk_full_drill_under_watch(tmp_path: Path) -> None:
    from ddx.drill.runner import run_scenario

    sent = Sent()
    settings = WatchSettings(interval=0.5, store=str(tmp_path / "ddx.db"), bundles=str(tmp_path / "bundles"),
                             down=2.0, down_max=20.0, rediagnose_s=30.0, diagnose_budget=20.0)
    store = Store(settings.store)
    seen: dict[str, Any] = {}

    def hold(stack: Any, started: float, budget: float) -> dict[str, Any]:
        watch = Watch(Sampler(LiveHost()), IncidentBook(store, sent), settings,
                      host_diagnosis(str(stack.dir / "ddx.toml"), settings.diagnose_budget), hostname="drill-host")
        stop = threading.Event()
        loop = threading.Thread(target=watch.run, args=(stop,), daemon=True)
        loop.start()
        try:
            end = time.monotonic() + 90
            while time.monotonic() < end and not (watch.incident and watch.incident.diagnosed):
                time.sleep(0.5)
            seen["open"] = store.incidents(status="open")
            for f in stack.cache_dir.glob("export*.tmp"):  # the fix: the runaway export's files go
                f.unlink()
            end = time.monotonic() + 60
            while time.monotonic() < end and store.incidents(status="open"):
                time.sleep(0.5)
        finally:
            stop.set()
            loop.join(30)
        return {}

    res = run_scenario(all_scenarios()["disk-full"], hold=hold, budget=60.0)
    assert not res.error, res.error
    assert len(seen["open"]) == 1, seen
    incidents = store.incidents()
    assert len(incidents) == 1, [i.title for i in incidents]
    inc = incidents[0]
    assert inc.status == "resolved"
    first = store.diagnoses(inc.id)[0][1]
    assert first["hypotheses"][0]["id"] == "disk-full", first["hypotheses"][:3]
    assert [k for k, _ in sent.kinds] == ["opened", "resolved"]
