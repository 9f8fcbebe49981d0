"""What the PostgreSQL and MariaDB/MySQL probes share: their findings, errors, option checks.

Both answer the same questions of a database server (connection slots, lock
waits, id sequences, replication, read-only, down), target by target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from ddx.errors import ProbeError
from ddx.model import Evidence, Finding, State
from ddx.probes.base import ProbeContext

__all__ = ["FINDINGS", "TargetError", "check_options", "combine_targets", "probe_targets", "quote"]

FINDINGS = (
    "svc.db_connections_near_max",
    "svc.db_locks_blocked",
    "svc.db_sequence_near_max",
    "svc.db_replication_lag_high",
    "svc.db_readonly",
    "svc.down",
)

_ROLES = ("auto", "primary", "replica")


class TargetError(Exception):
    """A target could not be read; ``kind`` says how ("refused", "too_many",
    "auth", "timeout", "other") and the message is the reason."""

    def __init__(self, reason: str, kind: str = "other") -> None:
        super().__init__(reason)
        self.kind = kind


def quote(text: Any) -> str:
    """A query or message on one line, cut at 120 characters."""
    return " ".join(str(text or "").split())[:120]


def combine_targets(ctx: ProbeContext, judged: list[tuple[str, bool, Evidence]], failures: list[str]) -> list[Finding]:
    """One finding per id (``ctx.combine``); the targets that could not be read are
    added to the evidence of absent findings, and their coverage says so."""
    lost = [Evidence(source=f.split(": ", 1)[0].removeprefix("could not probe "), summary=f) for f in failures]
    out = []
    for f in ctx.combine(judged, limit=1000, missing=list(failures)):
        if f.state is State.ABSENT and f.id != "svc.down" and lost:
            f = replace(f, evidence=f.evidence + tuple(lost))
        out.append(f)
    return out


def probe_targets(
    ctx: ProbeContext, targets: Sequence[Any], failures: list[str], read: Callable[[Any], Any],
    judge: Callable[[Any], list[tuple[str, bool, Evidence]]], timeout: float,
) -> list[Finding]:
    """Read every target at once (``read`` returns a reading with ``errors``, or raises
    ``TargetError``), judge each reading, and combine: the targets that could not be
    read, or only in part, go into ``failures`` and the findings' coverage."""
    from ddx.host import parallel_map

    results = parallel_map(read, list(targets), timeout + 0.5)
    judged: list[tuple[str, bool, Evidence]] = []
    for t, r in zip(targets, results):
        if isinstance(r, BaseException):
            why = (str(r) if isinstance(r, TargetError) else f"no reply within {timeout:.1f}s"
                   if isinstance(r, TimeoutError) else f"{type(r).__name__}: {r}")
            failures.append(f"could not probe {t.name}: {why}")
            continue
        judged += judge(r)
        if r.errors:
            failed = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items()))
            failures.append(f"could not probe {t.name} in part: {failed}")
    if not judged:
        raise ProbeError("; ".join(failures) or "no target could be probed")
    return combine_targets(ctx, judged, failures)


def check_options(opt: Mapping[str, Any], name: str = "postgres") -> None:
    if str(opt["role"]) not in _ROLES:
        raise ProbeError(f"probe.{name} role must be one of {', '.join(_ROLES)}, got {opt['role']!r}")
    for key in ("connections_percent", "sequence_percent"):
        if not 0 < float(opt[key]) <= 100:
            raise ProbeError(f"probe.{name} {key} must be in (0, 100], got {opt[key]}")
    for key in ("timeout", "long_transaction_seconds", "replication_lag_seconds"):
        if float(opt[key]) <= 0:
            raise ProbeError(f"probe.{name} {key} must be > 0, got {opt[key]}")
