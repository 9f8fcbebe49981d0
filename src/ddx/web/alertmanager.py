"""Alertmanager's webhook (payload version 4): the payload parsed and checked, and the
background work that turns alert groups into incidents with a diagnosis."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import DdxError
from ddx.watch.incidents import IncidentBook
from ddx.watch.store import Incident, StoreError
from ddx.web.settings import MAX_TARGETS, ServeSettings, targets_for

log = logging.getLogger("ddx.serve")

MAX_BODY = 1 << 20  # a request body: Alertmanager's payloads are a few KB, 1 MB holds thousands of alerts
MAX_PENDING = 1000  # alert payloads waiting to be handled; past this, 503 (Alertmanager sends again)
WORKERS = 4  # threads handling alert groups (different groups in parallel)
MAX_DIAGNOSES = 2  # diagnoses running at once, alerts' and on request's together: probing is not free
MAX_GROUPS = 10_000  # alert groups whose state is kept in memory (the store has the rest)

Diagnose = Callable[..., Mapping[str, Any]]




def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: Any, limit: int = 60) -> str:
    return clip(repr(value), limit)




# --- Alertmanager's payload -----------------------------------------------------------------


class PayloadError(ValueError):
    """A webhook payload ddx cannot use; the message is the one-line reason."""


@dataclass(frozen=True)
class Alert:
    status: str  # firing | resolved
    labels: Mapping[str, str]
    starts_at: str | None
    ends_at: str | None
    fingerprint: str


@dataclass(frozen=True)
class AlertGroup:
    """One webhook payload: the state of one alert group."""

    group_key: str
    status: str  # firing (at least one alert fires) | resolved (all of them resolved)
    receiver: str
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    external_url: str
    alerts: tuple[Alert, ...]
    truncated: int = 0

    @property
    def key(self) -> str:
        return f"alertmanager:{self.group_key}"


_STATUSES = ("firing", "resolved")


def _labels(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PayloadError(f"{where} must be an object of strings")
    return dict(value)


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where} must be a string")
    return value


def parse_webhook(body: bytes) -> AlertGroup:
    """An Alertmanager webhook payload (version 4) -> ``AlertGroup``; PayloadError with the reason."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except UnicodeDecodeError:
        raise PayloadError("the body is not JSON: not UTF-8 text") from None
    except RecursionError:
        raise PayloadError("the body is not JSON ddx reads: nested too deeply") from None
    if not isinstance(data, dict):
        raise PayloadError(f"the body must be a JSON object (Alertmanager's webhook payload), got {type(data).__name__}")
    if "version" not in data:
        raise PayloadError("no 'version': expected Alertmanager's webhook payload, version \"4\"")
    if data["version"] != "4":
        raise PayloadError(f"'version' is {shown(data['version'])}: ddx reads Alertmanager's webhook payload "
                           "version \"4\"")
    group_key = data.get("groupKey")
    if not isinstance(group_key, str) or not group_key:
        raise PayloadError("no 'groupKey': expected the alert group's key (a string)")
    if len(group_key) > 8192:
        raise PayloadError(f"'groupKey' is {len(group_key)} characters long, at most 8192")
    raw_alerts = data.get("alerts")
    if not isinstance(raw_alerts, list) or not all(isinstance(a, dict) for a in raw_alerts):
        raise PayloadError("'alerts' must be a list of objects")
    alerts = []
    for i, a in enumerate(raw_alerts):
        where = f"alerts[{i}]"
        status = a.get("status")
        if status not in _STATUSES:
            raise PayloadError(f"{where}.status must be \"firing\" or \"resolved\", got {shown(status)}")
        labels = _labels(a.get("labels"), f"{where}.labels")
        fingerprint = _text(a.get("fingerprint"), f"{where}.fingerprint")
        if not fingerprint:  # Alertmanager sends one; without it, the labels identify the alert
            fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        alerts.append(Alert(status, labels, _text(a.get("startsAt"), f"{where}.startsAt"),
                            _text(a.get("endsAt"), f"{where}.endsAt"), clip(fingerprint, 128)))
    status = data.get("status")
    if status is None:
        status = "firing" if any(a.status == "firing" for a in alerts) else "resolved"
    if status not in _STATUSES:
        raise PayloadError(f"'status' must be \"firing\" or \"resolved\", got {shown(status)}")
    truncated = data.get("truncatedAlerts")
    return AlertGroup(
        group_key, status, _text(data.get("receiver"), "'receiver'") or "",
        _labels(data.get("groupLabels"), "'groupLabels'"), _labels(data.get("commonLabels"), "'commonLabels'"),
        _text(data.get("externalURL"), "'externalURL'") or "", tuple(alerts),
        truncated if isinstance(truncated, int) and not isinstance(truncated, bool) else 0)


def _host_part(instance: str) -> str:
    """The host of an ``instance`` label: ``10.0.0.5:9100`` -> ``10.0.0.5``, ``[::1]:9100`` -> ``::1``."""
    text = instance.strip()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def _is_this_host(name: str, this_host: str, other_names: tuple[str, ...]) -> bool:
    low = name.lower().rstrip(".")
    mine = {this_host.lower(), this_host.lower().split(".")[0], "localhost", "localhost.localdomain",
            *(n.lower() for n in other_names)}
    if low in mine:
        return True
    try:
        return ipaddress.ip_address(low).is_loopback
    except ValueError:
        return False


def alert_host(instance: str, this_host: str, other_names: tuple[str, ...] = ()) -> str:
    """The host an alert is about, from its ``instance`` label: that host, or
    ``this_host`` when there is none or it names this host."""
    host = _host_part(instance) if instance else ""
    if not host or _is_this_host(host, this_host, other_names):
        return this_host
    return clip(host, 253)


# --- the background work --------------------------------------------------------------------


@dataclass
class _Group:
    incident_id: str
    alerts: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # fingerprint -> (status, startsAt)
    last_diagnosis: float | None = None  # wall clock


class AlertIntake:
    """Alertmanager payloads, handled by a few worker threads. Payloads of one
    group are handled one at a time in the order they came; different groups in
    parallel. ``submit`` returns at once."""

    def __init__(self, book: IncidentBook, diagnose: Diagnose, settings: ServeSettings, *, this_host: str,
                 gate: threading.Semaphore | None = None, workers: int = WORKERS,
                 max_pending: int = MAX_PENDING) -> None:
        self.book = book
        self.diagnose = diagnose
        self.settings = settings
        self.this_host = this_host
        self.gate = gate or threading.BoundedSemaphore(MAX_DIAGNOSES)
        self.workers = workers
        self.max_pending = max_pending
        self._cond = threading.Condition()
        self._pending: dict[str, deque[AlertGroup]] = {}  # group key -> payloads waiting (present while handled)
        self._ready: deque[str] = deque()  # group keys no worker handles yet
        self._count = 0  # payloads submitted and not yet handled
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._groups: dict[str, _Group] = {}  # only the group's own worker touches its entry

    # --- the queue ------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._threads or self._closing:
                return
            for n in range(self.workers):
                t = threading.Thread(target=self._work, name=f"ddx-alerts-{n}", daemon=True)
                self._threads.append(t)
                t.start()

    def submit(self, group: AlertGroup) -> bool:
        """Queue the payload; False when too many wait (or the server stops)."""
        self.start()
        with self._cond:
            if self._closing or self._count >= self.max_pending:
                return False
            self._count += 1
            waiting = self._pending.get(group.key)
            if waiting is None:
                self._pending[group.key] = deque([group])
                self._ready.append(group.key)
                self._cond.notify()
            else:
                waiting.append(group)  # the worker of this group takes it after the one it handles
            return True

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._ready and not self._closing:
                    self._cond.wait()
                if not self._ready:
                    return
                key = self._ready.popleft()
            while True:
                with self._cond:
                    waiting = self._pending[key]
                    if not waiting or self._closing:
                        self._count -= len(waiting)
                        del self._pending[key]
                        self._cond.notify_all()
                        break
                    group = waiting.popleft()
                try:
                    self.handle(group)
                except Exception:  # noqa: BLE001 - a bug must not stop the intake
                    log.exception("ddx serve: alert group %s: not handled", clip(group.group_key, 120))
                finally:
                    with self._cond:
                        self._count -= 1
                        self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every submitted payload is handled; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._count == 0, timeout)

    @property
    def waiting(self) -> int:
        return self._count

    def close(self, timeout: float = 5.0) -> None:
        """Drop what waits, let the payloads in hand finish (up to ``timeout``)."""
        with self._cond:
            self._closing = True
            for key in self._ready:
                self._count -= len(self._pending.pop(key, ()))
            self._ready.clear()
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # --- one payload ----------------------------------------------------------------------

    def handle(self, group: AlertGroup) -> None:
        """Record one payload: the incident, its alerts, a diagnosis when due, the resolution."""
        book = self.book
        firing = [a for a in group.alerts if a.status == "firing"]
        if group.status == "resolved":
            inc = book.find_open(group.key)
            self._groups.pop(group.key, None)
            if inc is None:
                log.info("ddx serve: alert group %s resolved, no open incident for it", clip(group.group_key, 120))
                return
            self._record_alerts(inc, group, None)
            book.resolve(inc, "Alertmanager: every alert of the group is resolved")
            return
        instance = group.common_labels.get("instance", "")
        if not instance:
            seen = {a.labels.get("instance", "") for a in (firing or group.alerts)}
            instance = seen.pop() if len(seen) == 1 else ""
        host = alert_host(instance, self.this_host, self.settings.host_names)
        name = group.common_labels.get("alertname") or group.group_labels.get("alertname")
        if not name:
            shown = ", ".join(f"{k}={v}" for k, v in sorted(group.group_labels.items()))
            name = f"alert group {{{shown}}}" if shown else "alert group"
        inc, new = book.open(group.key, "alertmanager", host, clip(f"{name} on {host}"),
                             labels=group.common_labels)
        state = self._groups.get(group.key)
        if state is None or state.incident_id != inc.id:
            state = self._seed(inc, new)
            self._groups.pop(group.key, None)
            self._groups[group.key] = state
            while len(self._groups) > MAX_GROUPS:  # groups that never resolve (send_resolved: false)
                with contextlib.suppress(StopIteration, KeyError, RuntimeError):
                    del self._groups[next(iter(self._groups))]
        fresh = self._record_alerts(inc, group, state)
        now = book.clock()
        due = state.last_diagnosis is None or now - state.last_diagnosis >= self.settings.rediagnose_s
        if not (new or fresh or due):
            return
        targets, notes = self._targets(firing or list(group.alerts))
        if not targets and instance and host != self.this_host:
            notes.append(f"no [[alertmanager.route]] gives targets for instance {clip(instance, 120)!r}: "
                         "diagnosed this host alone")
        for note in notes:
            book.event(inc, "note", note)
        try:
            with self.gate:
                report = dict(self.diagnose(targets=targets))
        except Exception as exc:  # noqa: BLE001 - any failure of a diagnosis is one line on the timeline
            from ddx.host.redact import redact_text

            why = redact_text(str(exc) if isinstance(exc, DdxError) else f"{type(exc).__name__}: {exc}")
            log.warning("ddx serve: alert group %s: diagnosis failed: %s", clip(group.group_key, 120), why)
            book.event(inc, "note", clip(f"diagnosis failed: {why}", 500))
            state.last_diagnosis = book.clock()
            return
        report.setdefault("host", self.this_host)
        state.last_diagnosis = book.clock()
        book.diagnosis(inc, report)

    def _seed(self, inc: Incident, new: bool) -> _Group:
        """The state of a group whose incident this process has not handled yet
        (opened before a restart): its alerts and last diagnosis from the store."""
        state = _Group(inc.id)
        if new or self.book.store is None:
            return state
        try:
            state.alerts = {a["fingerprint"]: (a["status"], a["starts_at"]) for a in self.book.store.alerts(inc.id)}
        except StoreError:
            pass
        if inc.diagnosed:
            state.last_diagnosis = inc.updated_at
        return state

    def _record_alerts(self, inc: Incident, group: AlertGroup, state: _Group | None) -> bool:
        """Store each alert by its fingerprint and the payload on the timeline when it
        changed something; True when a firing alert is new (or fires again)."""
        fresh, resolved = [], []
        for a in group.alerts:
            before = state.alerts.get(a.fingerprint) if state is not None else None
            if a.status == "firing" and before != ("firing", a.starts_at):
                fresh.append(a.fingerprint)
            elif a.status == "resolved" and (before is None or before[0] != "resolved"):
                resolved.append(a.fingerprint)
            if state is not None:
                state.alerts[a.fingerprint] = (a.status, a.starts_at)
            self.book.put_alert(inc, a.fingerprint, a.status, a.labels, a.starts_at, a.ends_at)
        if fresh or resolved or state is None:
            firing = sum(a.status == "firing" for a in group.alerts)
            text = (f"Alertmanager ({group.receiver or 'webhook'}): {group.status}, {firing} firing, "
                    f"{len(group.alerts) - firing} resolved")
            if fresh:
                text += f", {len(fresh)} new"
            data: dict[str, Any] = {"group_key": group.group_key, "status": group.status, "receiver": group.receiver,
                    "new": fresh, "resolved": resolved, "external_url": group.external_url}
            if group.truncated:
                data["truncated"] = group.truncated
            self.book.event(inc, "alert", clip(text, 500), data)
        return bool(fresh)

    def _targets(self, alerts: list[Alert]) -> tuple[list[str], list[str]]:
        targets: list[str] = []
        notes: list[str] = []
        for a in alerts:
            urls, why = targets_for(self.settings.routes, a.labels)
            for u in urls:
                if u not in targets and len(targets) < MAX_TARGETS:
                    targets.append(u)
            notes += [n for n in why if n not in notes]
        return targets, notes[:20]


