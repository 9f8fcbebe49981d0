"""The watch daemon on this host, with real faults: a filesystem filled to the last block."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_store import Sent, fill, tiny_tmpfs
from webhook import Receiver

from ddx.host import LiveHost
from ddx.watch.daemon import Watch
from ddx.watch.incidents import IncidentBook
from ddx.watch.sampler import Sampler
from ddx.watch.settings import WatchSettings
from ddx.watch.store import Store

pytestmark = pytest.mark.root


def disk_diagnosis(bundle: str | None) -> dict[str, Any]:
    """ddx's real diagnosis, limited to the probes a full filesystem needs (fast)."""
    from ddx.api import diagnose_host
    from ddx.render.jsonout import to_dict

    report = diagnose_host(only=["disk", "memory"], budget=10, save_bundle=bundle)
    out = to_dict(report.diagnosis)
    out.update({k: v for k, v in report.meta.items() if k in ("bundle", "bundle_error")})
    return out


def make_watch(tmp: Path, sender: Any = None, **kw: Any) -> tuple[Watch, Store]:
    settings = WatchSettings(**{"interval": 0.2, "store": str(tmp / "ddx.db"), "bundles": str(tmp / "bundles"),
                                "down": 1.0, "down_max": 10.0, "rediagnose_s": 0.0, **kw})
    store = Store(settings.store)
    book = IncidentBook(store, sender)
    return Watch(Sampler(LiveHost()), book, settings, disk_diagnosis, hostname="test-host"), store


def steps(w: Watch, until: Any, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        w.step()
        if until():
            return
        time.sleep(w.settings.interval)
    raise AssertionError("the watch did not get there in time")


def ours(w: Watch, mount: Path) -> bool:
    return any(k.startswith("disk.used_pct:") and k.endswith(str(mount)) for k in w.detector.active())


def test_a_full_filesystem_is_one_incident_diagnosed_then_resolved(tmp_path: Path) -> None:
    sent = Sent()
    w, store = make_watch(tmp_path, sent)
    with tiny_tmpfs("2m") as d:
        steps(w, lambda: True)  # a first healthy sample for the rates
        filler = fill(d)
        steps(w, lambda: ours(w, d) and w.incident is not None and w.incident.diagnosed > 0)
        inc = w.incident
        assert inc is not None
        assert any(str(d) in s for s in inc.symptoms) and f"{d}" in inc.title
        assert inc.cause == "disk-full", inc
        assert inc.bundle and os.path.getsize(inc.bundle) > 0
        for _ in range(5):  # the fault goes on: the same incident, nothing new to say
            w.step()
        filler.unlink()
        steps(w, lambda: w.incident is None)
    got = store.get(inc.id)
    assert got is not None and got.status == "resolved"
    assert [k for k, _ in sent.kinds] == ["opened", "resolved"]
    assert store.count() == 1
    kinds = [e.kind for e in store.events(inc.id)]
    assert kinds[0] == "opened" and kinds[-1] == "resolved" and kinds.count("opened") == 1


def test_a_fault_toggling_on_and_off_is_one_incident_and_at_most_two_notifications(tmp_path: Path) -> None:
    """The issue's 20 s on / 20 s off for 10 minutes, at 1/40 of the time: every 0.5 s for 15 s,
    sampled every 0.2 s, with a quiet period of 1 s that grows as it comes back. The notifications
    go through the real notifier to a real webhook endpoint."""
    from ddx.watch.notify import Notifier, notify_settings

    receiver = Receiver()
    notifier = Notifier(notify_settings({"webhook": {"url": receiver.url, "min_interval": 0}}, "test"))
    w, store = make_watch(tmp_path, notifier, down=1.0, down_multiplier=1.5, down_max=30.0)
    stop = threading.Event()
    with tiny_tmpfs("2m") as d:
        steps(w, lambda: True)

        def toggle() -> None:
            while not stop.is_set():
                f = fill(d)
                stop.wait(0.5)
                f.unlink()
                stop.wait(0.5)

        t = threading.Thread(target=toggle, daemon=True)
        t.start()
        end = time.monotonic() + 15.0
        try:
            while time.monotonic() < end:
                w.step()
                time.sleep(0.2)
        finally:
            stop.set()
            t.join(5)
            notifier.close(10)
            receiver.close()
    assert store.count() == 1, [i.title for i in store.incidents()]
    kinds = [m["kind"] for m in receiver.got]
    assert 1 <= len(kinds) <= 2 and kinds[0] == "opened", kinds
    assert receiver.got[0]["causes"] and receiver.got[0]["causes"][0]["id"] == "disk-full"


def _ddx(*args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ddx", *args], stdout=subprocess.DEVNULL, stderr=stderr,
                            text=True, start_new_session=True)


def _wait(cond: Any, limit: float = 60.0) -> None:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            if cond():
                return
        except Exception:  # noqa: BLE001 - the store may be mid-write or not there yet
            pass
        time.sleep(0.2)
    raise AssertionError("timed out")


def _config(tmp: Path, store: Path) -> Path:
    cfg = tmp / "ddx.toml"
    cfg.write_text(f'[watch]\nstore = "{store}"\nbundles = "{tmp / "bundles"}"\ndown = 1.0\ndown_max = 10.0\n'
                   'interval = 0.3\ndiagnose_budget = 10\n\n[ddx]\nbudget = 10\n')
    return cfg


def _stop(p: subprocess.Popen[str]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)


def test_killed_mid_incident_and_started_again_it_goes_on_with_the_same_incident(tmp_path: Path) -> None:
    db = tmp_path / "ddx.db"
    cfg = _config(tmp_path, db)
    host = socket.gethostname()
    with tiny_tmpfs("2m") as d:
        first = _ddx("watch", "--config", str(cfg), stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            filler = fill(d)
            _wait(lambda: (i := Store(str(db)).find_open(f"watch:{host}")) is not None and i.diagnosed > 0)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(5)
        finally:
            _stop(first)
        before = Store(str(db)).find_open(f"watch:{host}")
        assert before is not None
        second = _ddx("watch", "--config", str(cfg), stderr=subprocess.DEVNULL)
        try:
            time.sleep(3.0)  # ten cycles with the fault still there
            store = Store(str(db))
            assert store.count() == 1
            assert [e.kind for e in store.events(before.id)].count("opened") == 1
            filler.unlink()
            _wait(lambda: Store(str(db)).get(before.id).status == "resolved")  # type: ignore[union-attr]
        finally:
            _stop(second)
    assert Store(str(db)).count() == 1


def test_with_the_store_on_a_full_disk_it_keeps_watching_and_says_it_cannot_write(tmp_path: Path) -> None:
    with tiny_tmpfs("1m") as d:
        db = d / "ddx.db"
        cfg = _config(tmp_path, db)
        p = _ddx("watch", "--config", str(cfg))
        try:
            _wait(lambda: db.exists() and Store(str(db)).count() == 0)
            time.sleep(1.0)
            filler = fill(d)  # the fault is the store's own disk
            assert p.stderr is not None
            lines: list[str] = []

            def said() -> bool:
                lines.append(p.stderr.readline())  # type: ignore[union-attr]
                return "cannot write the incident store" in lines[-1]

            _wait(said, 60.0)
            assert p.poll() is None  # still watching
            filler.unlink()
            _wait(lambda: Store(str(db)).count() == 1)  # what it kept in memory is written
            inc = Store(str(db)).incidents()[0]
            assert str(d) in inc.title
        finally:
            _stop(p)
