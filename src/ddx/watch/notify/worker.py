"""The notifier: one worker thread delivering messages with retries, backoff and rate limits."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddx.watch.notify.channels import Channel, DeliveryError
from ddx.watch.notify.message import (
    KINDS,
    Message,
    build_message,
    one_line,
)
from ddx.watch.store import Incident

log = logging.getLogger("ddx.watch.notify")
MAX_REFS = 10_000       # Slack refs kept in memory
MAX_PENDING = 1000      # incidents waiting per channel; past it the oldest is dropped


@dataclass
class _Job:
    message: Message
    attempts: int = 0
    due: float = 0.0          # monotonic time before which it is not tried (a retry's backoff)
    last: str = ""            # the last failure


@dataclass
class _Lane:
    """One channel's waiting messages: incident id -> its latest, oldest incident first."""

    channel: Channel
    jobs: OrderedDict[str, _Job] = field(default_factory=OrderedDict)
    free_at: float = 0.0      # monotonic time of its next new message (min_interval)


Record = Callable[[str, str, str, str, str, str], None]
Refs = Callable[[str, str], str]


class Notifier:
    """Delivers notifications to ``channels`` from one daemon thread (see the
    module's doc). ``record(incident_id, channel, kind, status, detail, ref)``
    is called from that thread after each outcome; ``refs(incident_id,
    channel)`` gives the ref a channel stored for the incident (a restart);
    ``clock`` dates the events (``at`` of the webhook's JSON); ``backoff`` is
    the first retry's wait in seconds, doubled each time up to ``max_backoff``."""

    def __init__(self, channels: Sequence[Channel], *, record: Record | None = None, refs: Refs | None = None,
                 clock: Callable[[], float] = time.time, backoff: float = 1.0, max_backoff: float = 30.0) -> None:
        self.channels = list(channels)
        self.record = record
        self.refs = refs
        self.clock = clock
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self._inbox: queue.SimpleQueue[Message | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._count = 0                      # deliveries not yet sent or failed
        self._abandoned = 0                  # deliveries given up by close()
        self._closing = False
        self._deadline = math.inf            # monotonic: when close() gives up
        self._thread: threading.Thread | None = None
        self._lanes = [_Lane(c) for c in self.channels]
        self._refs: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._turn = 0                       # round robin among lanes ready at once

    def __repr__(self) -> str:
        return f"Notifier({self.channels!r})"

    # --- the caller's side ---------------------------------------------------------------------

    def send(self, kind: str, incident: Incident, report: Mapping[str, Any] | None) -> None:
        """Queue the notification of ``kind`` for ``incident``; returns at once."""
        if kind not in KINDS:
            raise ValueError(f"unknown notification kind {kind!r} (known: {', '.join(KINDS)})")
        if not self.channels:
            return
        try:
            message = build_message(kind, incident, report, at=self.clock())
        except Exception as exc:  # noqa: BLE001 - a bug here must not stop the caller's incident handling
            log.error("ddx: cannot build the %s notification of incident %s: %s: %s", kind, incident.id,
                      type(exc).__name__, one_line(exc))
            return
        with self._lock:
            if self._closing:
                log.warning("ddx: notification %s of incident %s not sent: the notifier is closed", kind, incident.id)
                return
            self._count += len(self.channels)
            # put under the lock: once the worker sees _closing, every message sent before is in the inbox
            self._inbox.put(message)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ddx-notify", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        """Deliveries (one per channel and message) not yet sent or given up."""
        with self._lock:
            return self._count

    def close(self, timeout: float = 10.0) -> bool:
        """Deliver what waits (without the rate limit's waits), at most
        ``timeout`` seconds, and stop the thread; True when nothing was left
        undelivered then (it is recorded as failed) and the thread has stopped."""
        end = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._closing = True
            self._deadline = min(self._deadline, end)
            thread = self._thread
        if thread is None:
            return True
        self._inbox.put(None)  # wake the worker
        thread.join(max(0.0, end - time.monotonic()) + 0.1)
        if thread.is_alive():
            log.warning("ddx: the notifier's thread is still in a delivery after %g s", timeout)
            return False
        with self._lock:
            return self._count == 0 and self._abandoned == 0

    # --- the worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        block: float | None = None
        while True:
            try:
                try:
                    item = self._inbox.get(timeout=block) if block is None or block > 0 else self._inbox.get_nowait()
                    self._take(item)
                    while True:
                        self._take(self._inbox.get_nowait())
                except queue.Empty:
                    pass
                with self._lock:
                    closing, deadline = self._closing, self._deadline
                now = time.monotonic()
                if closing and (now >= deadline or not any(lane.jobs for lane in self._lanes)):
                    self._give_up("not sent: the notifier was closed before it could deliver")
                    return
                pick = self._next(now, closing)
                if pick is None:
                    wake = self._wake(closing)
                    block = None if wake is None else max(0.0, wake - now)
                    if closing:
                        block = max(0.0, min(block if block is not None else math.inf, deadline - now))
                    continue
                self._attempt(pick, deadline if closing else math.inf)
                block = 0.0
            except Exception as exc:  # noqa: BLE001 - the worker never dies of a bug
                log.error("ddx: notifier error: %s: %s", type(exc).__name__, one_line(exc))
                block = 0.5

    def _take(self, message: Message | None) -> None:
        if message is None:
            return
        for lane in self._lanes:
            job = lane.jobs.get(message.incident_id)
            if job is not None:  # the incident's earlier message is not out yet: the latest replaces it
                job.message = message
                self._done(1)
                continue
            lane.jobs[message.incident_id] = _Job(message)
            if len(lane.jobs) > MAX_PENDING:
                _, old = lane.jobs.popitem(last=False)
                log.warning("ddx: %s: more than %d incidents wait, the oldest message is dropped",
                            lane.channel.name, MAX_PENDING)
                self._outcome(lane.channel, old.message, "failed", "dropped: too many incidents waiting", "")

    def _ready(self, lane: _Lane, closing: bool) -> float | None:
        if not lane.jobs:
            return None
        job = next(iter(lane.jobs.values()))
        return job.due if job.attempts or closing else max(job.due, lane.free_at)

    def _next(self, now: float, closing: bool) -> _Lane | None:
        n = len(self._lanes)
        ready = []
        for i in range(n):
            lane = self._lanes[(self._turn + i) % n]
            at = self._ready(lane, closing)
            if at is not None and at <= now:
                ready.append((at, i, lane))
        if not ready:
            return None
        _, i, lane = min(ready, key=lambda r: (r[0], r[1]))
        self._turn = (self._turn + i + 1) % n
        return lane

    def _wake(self, closing: bool) -> float | None:
        times = [t for t in (self._ready(lane, closing) for lane in self._lanes) if t is not None]
        return min(times) if times else None

    def _attempt(self, lane: _Lane, deadline: float) -> None:
        ch = lane.channel
        key, job = next(iter(lane.jobs.items()))
        msg = job.message
        start = time.monotonic()
        timeout = max(0.05, min(ch.timeout, deadline - start))
        job.attempts += 1
        ref = self._ref(key, ch) if ch.uses_ref else ""
        try:
            detail, new_ref = ch.deliver(msg, ref, timeout)
        except DeliveryError as exc:
            lane.free_at = time.monotonic() + ch.min_interval
            job.last = ch.scrub(exc.detail)
            if exc.retry and job.attempts < ch.retries:
                wait = min(self.max_backoff, self.backoff * 2 ** (job.attempts - 1))
                if exc.after is not None:
                    wait = max(wait, exc.after)
                job.due = time.monotonic() + wait
                log.info("ddx: %s: attempt %d of %d for incident %s failed (%s); trying again in %.3g s",
                         ch.name, job.attempts, ch.retries, key, job.last, wait)
                return
            del lane.jobs[key]
            tries = f" (after {job.attempts} attempts)" if job.attempts > 1 else ""
            self._outcome(ch, msg, "failed", job.last + tries, "")
            return
        except Exception as exc:  # noqa: BLE001 - a bug in a channel: that message fails, the others go on
            lane.free_at = time.monotonic() + ch.min_interval
            del lane.jobs[key]
            self._outcome(ch, msg, "failed", ch.scrub(f"{type(exc).__name__}: {exc}"), "")
            return
        lane.free_at = time.monotonic() + ch.min_interval
        del lane.jobs[key]
        if ch.uses_ref:
            self._keep_ref(key, ch, new_ref, msg.kind)
        tries = f" (attempt {job.attempts})" if job.attempts > 1 else ""
        self._outcome(ch, msg, "sent", ch.scrub(detail) + tries, new_ref)

    def _ref(self, incident_id: str, ch: Channel) -> str:
        ref = self._refs.get((incident_id, ch.name))
        if ref is not None:
            return ref
        if self.refs is None:
            return ""
        try:
            found = self.refs(incident_id, ch.name)
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read: post a new message
            log.warning("ddx: %s: cannot look up the message of incident %s: %s", ch.name, incident_id, one_line(exc))
            return ""
        return found if isinstance(found, str) else ""

    def _keep_ref(self, incident_id: str, ch: Channel, ref: str, kind: str) -> None:
        k = (incident_id, ch.name)
        if kind == "resolved":
            self._refs.pop(k, None)  # the store still has it, should the incident hear from us again
            return
        if ref:
            self._refs[k] = ref
            self._refs.move_to_end(k)
            while len(self._refs) > MAX_REFS:
                self._refs.popitem(last=False)

    def _outcome(self, ch: Channel, msg: Message, status: str, detail: str, ref: str) -> None:
        if status == "sent":
            log.info("ddx: %s: %s notification of incident %s sent: %s", ch.name, msg.kind, msg.incident_id, detail)
        else:
            log.warning("ddx: %s: %s notification of incident %s failed: %s", ch.name, msg.kind, msg.incident_id,
                        detail)
        if self.record is not None:
            try:
                self.record(msg.incident_id, ch.name, msg.kind, status, detail, ref)
            except Exception as exc:  # noqa: BLE001 - recording is the caller's; delivery goes on
                log.warning("ddx: cannot record the notification of incident %s: %s: %s", msg.incident_id,
                            type(exc).__name__, one_line(exc))
        self._done(1)

    def _give_up(self, reason: str) -> None:
        for lane in self._lanes:
            while lane.jobs:
                _, job = lane.jobs.popitem(last=False)
                self._abandoned += 1
                self._outcome(lane.channel, job.message, "failed", reason + (f"; {job.last}" if job.last else ""), "")
        while True:  # messages sent after the last look
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                for lane in self._lanes:
                    self._abandoned += 1
                    self._outcome(lane.channel, item, "failed", reason, "")

    def _done(self, n: int) -> None:
        with self._lock:
            self._count -= n


def build_notifier(config: Any, store: Any) -> Notifier | None:
    """The notifiers of ddx.toml's [notify.*] tables, recording each delivery in the incident
    store (which gives Slack's message refs back after a restart); None without any table.
    ``ddx watch`` and ``ddx serve`` both build theirs here."""
    from ddx.watch.notify.settings import notify_settings
    from ddx.watch.store import StoreError

    tables = config.service.get("notify") or {}
    if not tables:
        return None
    channels = notify_settings(tables, config.path or "ddx.toml")

    def record(incident_id: str, channel: str, kind: str, status: str, detail: str, ref: str) -> None:
        try:
            store.add_notification(incident_id, channel, kind, time.time(), status, detail, ref)
        except StoreError as exc:
            log.warning("ddx: notification not recorded: %s", exc)

    def refs(incident_id: str, channel: str) -> str:
        try:
            return str(store.notification_ref(incident_id, channel))
        except StoreError:
            return ""

    return Notifier(channels, record=record, refs=refs)
