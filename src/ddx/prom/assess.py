"""One instance's evidence from Prometheus: its findings, its peers, its history.

``find_instance`` resolves the instance a person named (its ``up`` series);
``instance_evidence`` reads the metric map for its peer group in one batch,
judges the instance, compares it with the peers and with its own baseline, and
returns the findings (scope findings included) with what ddx read, for the
report's ``meta["prometheus"]``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ddx.kb.model import KnowledgeBase
from ddx.model import Finding
from ddx.prom.client import PromClient, PromError
from ddx.prom.instance import Key, Table, findings_of, quote, read_table, selector
from ddx.prom.peers import (
    PeerStat,
    Scope,
    Shift,
    history,
    peer_counts,
    peer_stats,
    scope_findings,
)

__all__ = ["Assessment", "check_duration", "duration_seconds", "find_instance", "instance_evidence", "symptom_ids"]

_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m|h|d|w)$")


def check_duration(text: str, option: str) -> str:
    """A PromQL duration (``15m``, ``1h``, ``900s``); a plain number is seconds."""
    t = text.strip()
    if re.fullmatch(r"[0-9]+", t) and int(t) > 0:
        return f"{int(t)}s"
    if not _DURATION.match(t):
        from ddx.errors import UsageError

        raise UsageError(f"{option} {text!r}: not a duration such as 900s, 15m, 1h or 1d")
    return t


_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_seconds(text: str) -> float:
    """Seconds of a duration ``check_duration`` accepted."""
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h|d|w)", text)
    return float(m.group(1)) * _SECONDS[m.group(2)] if m else 0.0


def symptom_ids(kb: KnowledgeBase) -> set[str]:
    return {fid for fid, d in kb.findings.items() if d.kind != "context"}


def find_instance(client: PromClient, instance: str, *, at: float | None = None) -> list[str]:
    """The jobs whose targets carry the label ``instance``; an error naming the known ones if none."""
    if not instance.strip():
        raise PromError("--instance: an empty instance name")
    got = client.query(f"max by (job, instance) (up{{{selector(instance=instance)}}})", at=at)
    jobs = sorted({s.labels.get("job", "") for s in got})
    if not jobs:
        known = sorted({s.labels.get("instance", "") for s in client.query("max by (instance) (up)", at=at)})
        hint = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        raise PromError(f"--instance {instance}: no such target in Prometheus at {client.shown}"
                        + (f" (known: {hint})" if known else " (it has no targets)"))
    return jobs


@dataclass
class Assessment:
    """What ddx read about one instance."""

    instance: str
    jobs: list[str]
    findings: list[Finding]
    scope: Scope
    stats: list[PeerStat]
    shifts: list[Shift] = field(default_factory=list)
    baseline_note: str = ""
    down: list[str] = field(default_factory=list)  # jobs whose target of this instance Prometheus cannot scrape

    def meta(self, shown_url: str, window: str, peers: str) -> dict[str, Any]:
        return {
            "url": shown_url, "instance": self.instance, "jobs": self.jobs, "window": window, "peer_group": peers,
            "peers": self.scope.to_dict(),
            "peer_stats": [s.to_dict() for s in self.stats],
            "outliers": [s.to_dict() for s in self.stats if s.outlier],
            "history": [s.to_dict() for s in self.shifts] if self.shifts else [],
            **({"history_note": self.baseline_note} if self.baseline_note else {}),
            **({"target_down": self.down} if self.down else {}),
        }

    def warnings(self) -> list[str]:
        """What a person must know beside the diagnosis."""
        if not self.down:
            return []
        return [f"Prometheus cannot scrape {self.instance} now (up == 0 in job {', '.join(self.down)}): "
                "its metrics are missing, so their findings are unknown; the host or its exporter may be down"]


def group_peers(table: Table, mine: Sequence[Key], by_job: bool) -> list[Key]:
    """The peers of an instance in a table: the other instances of its jobs (or every other one)."""
    jobs = {k[0] for k in mine}
    instances = {k[1] for k in mine}
    return [k for k in table.keys if k[1] not in instances and (not by_job or k[0] in jobs)]


def instance_evidence(
    client: PromClient, instance: str, kb: KnowledgeBase, *, window: str = "15m", peers: str | None = None,
    baseline: str | None = "24h", at: float | None = None,
) -> Assessment:
    """Findings for ``instance`` from the metric map, scope against its peers (its jobs, or the
    instances the label matchers ``peers`` select), and its shift against ``baseline`` of history."""
    jobs = find_instance(client, instance, at=at)
    by_job = peers is None
    if not by_job:
        sel = selector(matchers=peers)
    elif len(jobs) == 1:
        sel = selector(job=jobs[0])
    else:  # a regular expression in a PromQL string: its backslashes doubled
        sel = selector(matchers=f'job=~"{quote("|".join(re.escape(j) for j in jobs))}"')
    table = read_table(client, sel, window, at=at)
    mine = [(j, instance) for j in jobs]
    if not any(k in table.targets or k in table.exported for k in mine):  # --peers left the instance out
        own = read_table(client, selector(instance=instance), window, at=at)
        table.merge(own)
    findings = findings_of(table, mine[0], mine[1:])
    group = group_peers(table, mine, by_job)
    symptoms = symptom_ids(kb)
    counts = peer_counts((findings_of(table, p, detail=False) for p in group), symptoms)
    stats = [s for key in mine for s in peer_stats(table, key, [p for p in group if not by_job or p[0] == key[0]])]
    what = f"job {', '.join(jobs)}" if by_job else f"{{{peers}}}"
    scope = scope_findings(findings, counts, symptoms, stats, what)
    shifts: list[Shift] = []
    note = ""
    if baseline:
        for key in mine:
            shifts += history(client, table, key, baseline, step=f"{max(1, int(duration_seconds(baseline) / 100))}s")
        if not shifts:
            note = f"no history in the {baseline} before the window"
    known = [f for f in findings if f.id in kb.findings] + [f for f in scope.findings if f.id in kb.findings]
    down = [k[0] for k in mine if table.up(k) is False]
    return Assessment(instance, jobs, known, scope, stats, shifts, note, down)
