"""``ddx watch``: sample, detect symptoms, keep one incident per fault.

The loop, every ``interval`` seconds:

1. take a cheap sample (``ddx.watch.sampler``) and feed the detector
   (``ddx.watch.detect``: limits, baselines, hysteresis);
2. when symptoms are open and no incident is: open one, run a full diagnosis
   (saving an evidence bundle), and record it; the notifiers say "opened";
3. while the incident is open: a symptom that joins or leaves goes on its
   timeline; a symptom that joins triggers a new diagnosis (at most one per
   ``rediagnose_s``), and a different leading cause goes on the timeline and to
   the notifiers ("changed");
4. when every symptom has cleared (after its quiet period), the incident is
   resolved ("resolved").

One incident per fault, not per symptom: the symptoms of one fault (swap, load,
timeouts) open within minutes of each other and clear together, and the
incident holds them all. The detector's state and the incident are saved, so a
daemon killed mid-incident and started again goes on with the same incident
and sends nothing twice.

A diagnosis is injected (``diagnose(bundle_path) -> report dict``) so tests and
other front ends can supply their own; ``ddx watch`` uses ``ddx.api``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ddx.watch.detect import Detector
from ddx.watch.incidents import IncidentBook
from ddx.watch.sampler import Sampler
from ddx.watch.settings import WatchSettings
from ddx.watch.store import Incident

__all__ = ["Watch", "host_diagnosis"]

log = logging.getLogger("ddx.watch")
STATE = "watch.detector"


def host_diagnosis(config: str | None, budget: float) -> Callable[[str | None], dict[str, Any]]:
    """The real diagnosis of this host as the daemon runs it: ``ddx.api.diagnose_host``,
    saving a bundle at the path given (when not None), as the JSON the CLI prints."""

    def run(bundle: str | None) -> dict[str, Any]:
        from ddx.api import diagnose_host_json

        return diagnose_host_json(config=config, budget=budget, save_bundle=bundle)

    return run


class Watch:
    """The watch loop on one host. ``step()`` is one cycle; ``run(stop)`` loops."""

    def __init__(self, sampler: Sampler, book: IncidentBook, settings: WatchSettings,
                 diagnose: Callable[[str | None], Mapping[str, Any]], *, hostname: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.sampler = sampler
        self.book = book
        self.settings = settings
        self.diagnose = diagnose
        self.hostname = hostname
        self.clock = clock
        self.key = f"watch:{hostname}"
        self.detector = Detector(down=settings.down, down_multiplier=settings.down_multiplier,
                                 down_max=settings.down_max, baseline_samples=settings.baseline_samples)
        self.incident: Incident | None = None
        self._last_diagnosis = 0.0
        self._diagnosed_symptoms: set[str] = set()
        self._saved_state_at = 0.0
        self._restore()

    def _restore(self) -> None:
        store = self.book.store
        if store is not None:
            try:
                self.detector.load_state(store.get_state(STATE))
            except Exception as exc:  # noqa: BLE001 - a state that cannot be read: start afresh
                log.warning("ddx watch: saved state not read (%s); starting afresh", exc)
        self.incident = self.book.find_open(self.key)
        if self.incident is not None:
            log.info("ddx watch: going on with open incident %s", self.incident.id)
            self._diagnosed_symptoms = set(self.incident.symptoms)
            self._last_diagnosis = self.incident.updated_at

    def _save_state(self, now: float, changed: bool) -> None:
        if not changed and now - self._saved_state_at < 60.0:
            return
        state = self.detector.to_state()
        self.book.write(lambda s: s.put_state(STATE, state, now))
        self._saved_state_at = now

    def step(self) -> None:
        sample = self.sampler.take()
        changes = self.detector.feed(sample.at, sample.values, {"ports": sample.missing_ports})
        for c in changes:
            log.info("ddx watch: symptom %s %s", "opened" if c[0] == "+" else "cleared", c[1:])
        self._handle(sample.at)
        self._save_state(sample.at, bool(changes))
        self.book.flush()

    def _handle(self, now: float) -> None:
        active = self.detector.active()
        names = sorted(active)
        if active and self.incident is None:
            title = "; ".join(active[n] for n in names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")
            self.incident, _ = self.book.open(self.key, "watch", self.hostname, title, symptoms=names, at=now)
            self._run_diagnosis(now, names)
            return
        if self.incident is None:
            return
        if not active:
            self.book.resolve(self.incident, "every symptom cleared", at=now)
            self.incident = None
            self._diagnosed_symptoms = set()
            return
        self.book.update_symptoms(self.incident, names, at=now)
        new = set(names) - self._diagnosed_symptoms
        if new and now - self._last_diagnosis >= self.settings.rediagnose_s:
            self._run_diagnosis(now, names)

    def _run_diagnosis(self, now: float, names: list[str]) -> None:
        assert self.incident is not None
        bundle = None
        if self.incident.diagnosed == 0 and self.settings.max_bundles > 0:
            bundle = os.path.join(self.settings.bundles, f"ddx-{self.incident.id}.tar.gz")
            try:
                os.makedirs(self.settings.bundles, mode=0o750, exist_ok=True)
                self._prune_bundles()
            except OSError as exc:
                log.warning("ddx watch: no bundle for %s: %s", self.incident.id, exc)
                bundle = None
        try:
            report = dict(self.diagnose(bundle))
        except Exception as exc:  # noqa: BLE001 - a failed diagnosis is recorded, watching goes on
            log.error("ddx watch: diagnosis failed: %s", exc)
            self.book.event(self.incident, "note", f"diagnosis failed: {exc}", at=now)
            report = {}
        self._last_diagnosis = self.clock()
        self._diagnosed_symptoms = set(names)
        if report:
            self.book.diagnosis(self.incident, report, at=self._last_diagnosis)

    def _prune_bundles(self) -> None:
        d = self.settings.bundles
        files = sorted((e for e in os.scandir(d) if e.name.startswith("ddx-") and e.name.endswith(".tar.gz")),
                       key=lambda e: e.stat().st_mtime)
        for e in files[: max(0, len(files) - self.settings.max_bundles + 1)]:
            try:
                os.unlink(e.path)
            except OSError:
                pass

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set; a failed cycle is logged and the loop goes on."""
        next_prune = 0.0
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.step()
                now = self.clock()
                if now >= next_prune and self.book.store is not None:
                    self.book.write(lambda s: s.prune(now))
                    next_prune = now + 3600.0
            except Exception as exc:  # noqa: BLE001 - one bad cycle must not end the watch
                log.exception("ddx watch: cycle failed: %s", exc)
            stop.wait(max(0.0, self.settings.interval - (time.monotonic() - started)))
