"""Job queues kept in Redis: how many jobs wait, and how long the oldest has waited.

Background-job frameworks keep their queues in Redis lists with a registry of
queue names, each in its own layout:

- Sidekiq: the set ``queues`` names the queues, ``queue:NAME`` is a list of
  JSON jobs pushed on the left, so the oldest is at index -1; each job carries
  ``enqueued_at`` (epoch seconds, or milliseconds since Sidekiq 8).
- Resque: the set ``resque:queues``, lists ``resque:queue:NAME`` (no enqueue time).
- RQ: the set ``rq:queues`` holds the queue keys ``rq:queue:NAME``, lists of job
  ids pushed on the right (oldest at index 0); the job's hash ``rq:job:ID`` has
  ``enqueued_at`` (ISO 8601, UTC).
- Celery with a Redis broker: the list ``celery`` (the default queue; no
  enqueue time in the message).

The oldest job's age is what the frameworks' own dashboards call queue latency,
and the signal that matters: a long queue that drains in seconds is busy, a short
one whose oldest job waited an hour is stuck. Reads only: SMEMBERS, LLEN, LINDEX
and HGET on the keys above, at most ``MAX_QUEUES`` queues, no SCAN.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

__all__ = ["MAX_QUEUES", "Queue", "read_queues"]

MAX_QUEUES = 20

Query = Callable[[Sequence[Sequence[str]]], list[Any]]


@dataclass(frozen=True)
class Queue:
    """One job queue: its framework, name, length and the enqueue time (epoch
    seconds) of its oldest job (None when the layout keeps none)."""

    framework: str
    name: str
    length: int
    oldest: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "name": self.name, "length": self.length, "oldest": self.oldest}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Queue:
        return cls(str(d["framework"]), str(d["name"]), int(d["length"]), d.get("oldest"))


def _names(reply: Any) -> list[str]:
    if not isinstance(reply, list):
        return []  # an error reply (WRONGTYPE) or nothing: no such registry
    return sorted(str(x) for x in reply if isinstance(x, str))


def _int(reply: Any) -> int:
    return reply if isinstance(reply, int) else 0


def _epoch(value: Any) -> float | None:
    """``enqueued_at`` as epoch seconds: a number (seconds or milliseconds) or ISO 8601 (UTC when no zone)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v / 1000.0 if v > 1e11 else v  # milliseconds (Sidekiq 8)
    if isinstance(value, str) and value:
        try:
            return _epoch(float(value))
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    return None


def _sidekiq_enqueued(job: Any) -> float | None:
    if not isinstance(job, str):
        return None
    try:
        data = json.loads(job)
    except ValueError:
        return None
    return _epoch(data.get("enqueued_at")) if isinstance(data, dict) else None


def read_queues(query: Query) -> list[Queue]:
    """The job queues this Redis holds, with lengths and the oldest job's
    enqueue time where the layout keeps one. ``query(commands)`` sends the
    commands pipelined and returns their replies (errors as values)."""
    reg = query([["SMEMBERS", "queues"], ["SMEMBERS", "resque:queues"], ["SMEMBERS", "rq:queues"],
                 ["LLEN", "celery"]])
    plan: list[tuple[str, str, str, str]] = []  # framework, name, list key, where the oldest is
    plan += [("sidekiq", n, f"queue:{n}", "-1") for n in _names(reg[0])]
    plan += [("resque", n, f"resque:queue:{n}", "") for n in _names(reg[1])]
    plan += [("rq", k.removeprefix("rq:queue:"), k, "0") for k in _names(reg[2]) if k.startswith("rq:queue:")]
    if _int(reg[3]):
        plan.append(("celery", "celery", "celery", ""))
    plan = plan[:MAX_QUEUES]
    if not plan:
        return []
    cmds: list[list[str]] = []
    for _, _, key, where in plan:
        cmds.append(["LLEN", key])
        if where:
            cmds.append(["LINDEX", key, where])
    replies = iter(query(cmds))
    rows: list[tuple[str, str, int, Any]] = []
    for framework, name, _, where in plan:
        length = _int(next(replies))
        rows.append((framework, name, length, next(replies) if where else None))
    rq_ids = [str(oldest) for fw, _, n, oldest in rows if fw == "rq" and n and isinstance(oldest, str)]
    rq_times = dict(zip(rq_ids, query([["HGET", f"rq:job:{i}", "enqueued_at"] for i in rq_ids]))) if rq_ids else {}
    out: list[Queue] = []
    for framework, name, length, oldest in rows:
        when = None
        if length and framework == "sidekiq":
            when = _sidekiq_enqueued(oldest)
        elif length and framework == "rq" and isinstance(oldest, str):
            when = _epoch(rq_times.get(oldest))
        out.append(Queue(framework, name, length, when))
    return out
