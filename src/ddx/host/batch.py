"""Many host calls of one kind at once: ``stat_each``, ``listdir_each``, ``read_each``.

A host read over SSH answers every call with a round trip on the network; a
probe that stats each file under /etc or reads /proc/PID/stat of each process
would wait for hundreds of them one after the other (at 30 ms a round trip, a
thousand stats are half a minute). A host with a ``batch(op, calls)`` method
(``SshHost``, and ``RecordingHost`` around any host) makes them in one request;
any other host (``LiveHost``, ``BundleHost``) is called once per item, as a
probe would. Either way each item gets its value or the exception its own call
would have raised (``OSError``, ``LookupError``, ``TimeoutError``), in order,
and a recording keeps each item as the single call it stands for, so a bundle
replays it with nothing new.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ddx.host.base import StatResult

__all__ = ["BATCHED", "Outcome", "batch", "listdir_each", "parsed", "read_each", "stat_each"]

BATCHED = ("read_text", "listdir", "stat", "readlink")  # the calls that may be batched
Outcome = Any  # a call's value, or the exception it raised

_FAILURES = (OSError, LookupError, TimeoutError)
T = TypeVar("T")


def one_by_one(host: Any, op: str, calls: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """``op`` called once per item of ``calls`` (keyword arguments of the Host method)."""
    method = getattr(host, op)
    out: list[Outcome] = []
    for args in calls:
        try:
            out.append(method(**args))
        except _FAILURES as exc:
            out.append(exc)
    return out


def batch(host: Any, op: str, calls: Sequence[Mapping[str, Any]]) -> list[Outcome]:
    """Per item of ``calls``, what ``getattr(host, op)(**item)`` returns or raises."""
    if op not in BATCHED:
        raise ValueError(f"{op} cannot be batched")
    if not calls:
        return []
    fn = getattr(host, "batch", None)
    if fn is None:
        return one_by_one(host, op, calls)
    try:
        out = list(fn(op, list(calls)))
    except _FAILURES as exc:  # the session is gone, the probe's time is up
        return [exc] * len(calls)
    if len(out) != len(calls):
        raise RuntimeError(f"{op}: {len(out)} outcomes for {len(calls)} calls")
    return out


def stat_each(host: Any, paths: Sequence[str]) -> list[StatResult | BaseException]:
    return batch(host, "stat", [{"path": p} for p in paths])


def listdir_each(host: Any, paths: Sequence[str]) -> list[list[str] | BaseException]:
    return batch(host, "listdir", [{"path": p} for p in paths])


def read_each(host: Any, paths: Sequence[str], *, max_bytes: int = 4 << 20, tail: bool = False
              ) -> list[str | BaseException]:
    return batch(host, "read_text", [{"path": p, "max_bytes": max_bytes, "tail": tail} for p in paths])


def parsed(parse: Callable[[str], T], outcome: str | BaseException) -> T | None:
    """``parse`` of a text read in a batch; None when the read failed or the text does
    not parse (``ValueError``): the file went away or is not what it should be."""
    if isinstance(outcome, BaseException):
        return None
    try:
        return parse(outcome)
    except ValueError:
        return None
