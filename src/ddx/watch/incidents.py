"""The incident book: opens, updates and resolves incidents, records their
timeline, hands them to the notifiers, and keeps writing when the store cannot.

Both the watch daemon and ``ddx serve`` (Alertmanager alerts, "diagnose now")
go through it, so an incident is the same record whoever opened it.

Notifications follow the incident, never the samples: ``opened`` when its
first diagnosis is in, ``changed`` when a later diagnosis names another leading
cause, ``resolved`` when it closes. The notifier queues them and returns at
once (``ddx.watch.notify``).

When the store cannot be written (a full disk), the book keeps the incident in
memory, queues the writes in order (at most ``MAX_BACKLOG``), says so once in
the log and in ``store_error``, and writes them when the store accepts writes
again; watching never stops for it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from ddx.watch.store import Event, Incident, Store, StoreError, new_incident_id

__all__ = ["IncidentBook", "Sender", "leading"]

log = logging.getLogger("ddx.watch")
MAX_BACKLOG = 10_000


class Sender(Protocol):
    def send(self, kind: str, incident: Incident, report: Mapping[str, Any] | None) -> None: ...


def leading(report: Mapping[str, Any]) -> tuple[str | None, str | None, float | None]:
    """The leading cause of a diagnosis (its JSON form): id, name, probability;
    Nones when nothing looks wrong or no cause stands above the rest."""
    hyps = report.get("hypotheses") or []
    if report.get("status") == "nothing_wrong" or not hyps:
        return None, None, None
    top = hyps[0]
    return top.get("id"), top.get("name"), top.get("probability")


class IncidentBook:
    """Incidents of one store; thread-safe (the daemon's loop and the web server's
    workers share one book)."""

    def __init__(self, store: Store | None, sender: Sender | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self._lock = threading.RLock()
        self._open: dict[str, Incident] = {}  # key -> open incident (cache; the store is the record)
        self._backlog: deque[Callable[[Store], Any]] = deque()
        self.store_error = ""

    # --- writing through the backlog ------------------------------------------------------------

    def write(self, op: Callable[[Store], Any]) -> None:
        """Run a store operation now, or later when the store cannot be written now."""
        with self._lock:
            if self.store is None:
                return
            self._backlog.append(op)
            if len(self._backlog) > MAX_BACKLOG:
                self._backlog.popleft()  # the oldest timeline line goes first; the incident rows are rewritten
            self.flush()

    def close(self, timeout: float = 5.0) -> None:
        """The way out of ``ddx watch`` and ``ddx serve``: write what waits, let the notifier
        send what it holds (at most ``timeout`` seconds), close the store."""
        self.flush()
        close = getattr(self.sender, "close", None)
        if close is not None:
            close(timeout)
        if self.store is not None:
            self.store.close()

    def flush(self) -> bool:
        """Write what waits; True when nothing is left waiting."""
        with self._lock:
            if self.store is None:
                return True
            while self._backlog:
                try:
                    self._backlog[0](self.store)
                except StoreError as exc:
                    if not self.store_error:
                        log.error("ddx: cannot write the incident store, watching on and keeping %d change(s) "
                                  "in memory: %s", len(self._backlog), exc)
                    self.store_error = str(exc)
                    return False
                self._backlog.popleft()
            if self.store_error:
                log.warning("ddx: the incident store accepts writes again; the changes kept in memory are written")
                self.store_error = ""
            return True

    @property
    def pending(self) -> int:
        return len(self._backlog)

    def _save(self, inc: Incident) -> None:
        snapshot = replace(inc, symptoms=list(inc.symptoms), labels=dict(inc.labels))
        self.write(lambda s: s.save_incident(snapshot))

    def event(self, inc: Incident, kind: str, text: str, data: Mapping[str, Any] | None = None,
              at: float | None = None) -> None:
        ev = Event(inc.id, self.clock() if at is None else at, kind, text, dict(data or {}))
        self.write(lambda s: s.add_event(ev))

    # --- incidents ----------------------------------------------------------------------------

    def find_open(self, key: str) -> Incident | None:
        with self._lock:
            if key in self._open:
                return self._open[key]
            if self.store is None:
                return None
            try:
                inc = self.store.find_open(key)
            except StoreError:
                return None
            if inc is not None:
                self._open[key] = inc
            return inc

    def open(self, key: str, source: str, host: str, title: str, *, symptoms: list[str] | None = None,
             labels: Mapping[str, str] | None = None, at: float | None = None) -> tuple[Incident, bool]:
        """The open incident for ``key``, or a new one; True when it is new."""
        with self._lock:
            found = self.find_open(key)
            if found is not None:
                return found, False
            now = self.clock() if at is None else at
            inc = Incident(new_incident_id(now), key, source, host, title, "open", now, now,
                           symptoms=list(symptoms or []), labels=dict(labels or {}))
            self._open[key] = inc
            self._save(inc)
            self.event(inc, "opened", title, {"symptoms": inc.symptoms, "labels": inc.labels}, now)
            return inc, True

    def update_symptoms(self, inc: Incident, symptoms: list[str], at: float | None = None) -> None:
        with self._lock:
            if symptoms == inc.symptoms:
                return
            added = [s for s in symptoms if s not in inc.symptoms]
            gone = [s for s in inc.symptoms if s not in symptoms]
            inc.symptoms = list(symptoms)
            inc.updated_at = self.clock() if at is None else at
            self._save(inc)
            for s in added:
                self.event(inc, "symptom", f"symptom began: {s}", {"symptom": s}, inc.updated_at)
            for s in gone:
                self.event(inc, "cleared", f"symptom cleared: {s}", {"symptom": s}, inc.updated_at)

    def diagnosis(self, inc: Incident, report: Mapping[str, Any], at: float | None = None) -> str | None:
        """Record a diagnosis of the incident; returns the notification it caused
        (``opened`` for the first, ``changed`` when the leading cause moved) or None."""
        with self._lock:
            now = self.clock() if at is None else at
            first = inc.diagnosed == 0
            cause, name, p = leading(report)
            before = inc.cause
            inc.cause, inc.cause_name, inc.probability = cause, name, p
            inc.updated_at = now
            if report.get("bundle"):
                inc.bundle = str(report["bundle"])
            inc.diagnosed += 1
            self._save(inc)
            rep = dict(report)
            self.write(lambda s: s.add_diagnosis(inc.id, now, rep))
            shown = f"{name} ({p:.0%})" if name and p is not None else "no cause stands out"
            self.event(inc, "diagnosis", f"diagnosis: {shown}", {"cause": cause, "probability": p}, now)
            kind = None
            if first:
                kind = "opened"
            elif cause != before:
                self.event(inc, "cause-changed", f"leading cause changed: {before or 'none'} -> {cause or 'none'}",
                           {"from": before, "to": cause}, now)
                kind = "changed"
            if kind and self.sender is not None:
                self.sender.send(kind, inc, rep)
            return kind

    def resolve(self, inc: Incident, reason: str, at: float | None = None) -> None:
        with self._lock:
            if inc.status == "resolved":
                return
            now = self.clock() if at is None else at
            inc.status, inc.resolved_at, inc.updated_at = "resolved", now, now
            self._open.pop(inc.key, None)
            self._save(inc)
            self.event(inc, "resolved", reason, {}, now)
            if self.sender is not None:
                self.sender.send("resolved", inc, None)

    def put_alert(self, inc: Incident, fingerprint: str, status: str, labels: Mapping[str, str],
                  starts_at: str | None, ends_at: str | None) -> None:
        now = self.clock()
        lab = dict(labels)
        self.write(lambda s: s.put_alert(inc.id, fingerprint, status, lab, starts_at, ends_at, now))
