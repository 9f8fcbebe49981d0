"""Every instance of a job (or of every job) diagnosed and ranked, sickest first.

How sick an instance looks (``sickness``), in one number:

    sickness = sum over its present symptom findings of log10(1 / fp_rate)
             + OUTLIER_WEIGHT * (rows of the metric map on which it is a robust outlier
                                 against its peers, in the bad direction)

A present symptom counts by how rare it is outside the causes that explain it
(its leak ``fp_rate`` in findings.yaml: inodes exhausted, 0.005, counts 2.3; a
full disk, 0.02, 1.7); an outlier that crosses no line counts half a point, so
an instance drifting away from its peers ranks above a healthy one but below
one with a symptom. A target Prometheus cannot scrape now (``up == 0``) adds
``DOWN_WEIGHT`` (1): its metrics, so its findings, are unknown, and the host or its
exporter may be down. Ties: the higher probability of the leading cause, then
job and instance. Context findings (scope) never count.

The diagnosis of each instance is the engine's with no next checks; instances
with the same findings (ids, states, strengths) share one diagnosis, so a fleet of
a thousand mostly healthy hosts costs a few engine runs, not a thousand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ddx.kb.model import KnowledgeBase
from ddx.model import Finding, State
from ddx.prom.client import PromClient, PromError
from ddx.prom.instance import Key, findings_of, read_table, selector
from ddx.prom.peers import (
    MIN_PEERS,
    OUTLIER_Z,
    PeerStat,
    peer_counts,
    robust,
    scope_findings,
)

__all__ = ["DOWN_WEIGHT", "OUTLIER_WEIGHT", "FleetEntry", "rank", "sickness"]

OUTLIER_WEIGHT = 0.5
DOWN_WEIGHT = 1.0  # a target Prometheus cannot scrape: its findings are unknown, but it is not healthy
EXACT_PEERS = 50  # above this many instances in a job, a row's peer median and MAD include the instance itself


@dataclass
class FleetEntry:
    """One instance in the fleet view."""

    instance: str
    job: str
    cause: str
    name: str
    probability: float
    sickness: float
    findings: list[Finding] = field(default_factory=list)
    outliers: list[PeerStat] = field(default_factory=list)
    scope: str = ""
    status: str = ""
    up: bool = True  # False: Prometheus cannot scrape the target now

    @property
    def present(self) -> list[Finding]:
        return [f for f in self.findings if f.state is State.PRESENT]

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "job": self.job, "cause": self.cause, "cause_name": self.name,
            "probability": round(self.probability, 4), "status": self.status, "sickness": round(self.sickness, 3),
            "up": self.up,
            "scope": self.scope or None,
            "findings": [f.to_dict() for f in self.present],
            "outliers": [s.to_dict() for s in self.outliers],
        }


def sickness(findings: Sequence[Finding], outliers: int, kb: KnowledgeBase) -> float:
    """The score above: rare present symptoms, plus half a point per peer outlier."""
    score = 0.0
    for f in findings:
        d = kb.findings.get(f.id)
        if f.state is State.PRESENT and d is not None and d.kind != "context":
            score += math.log10(1.0 / max(d.fp_rate, 1e-6))
    return score + OUTLIER_WEIGHT * outliers


def _job_stats(table: Any, keys: list[Key]) -> dict[Key, list[PeerStat]]:
    """Peer statistics of every instance of one job (exact leave-one-out for small jobs,
    the job's own median and MAD for large ones)."""
    from ddx.prom.metricmap import ROWS
    from ddx.prom.peers import MAD_SIGMA, peer_stats, robust_z

    if len(keys) <= EXACT_PEERS:
        return {k: peer_stats(table, k, [p for p in keys if p != k]) for k in keys}
    out: dict[Key, list[PeerStat]] = {k: [] for k in keys}
    for i, row in enumerate(ROWS):
        vals = {k: v.value for k in keys if (v := table.value(i, k)).value is not None}
        if len(vals) <= MIN_PEERS:
            continue
        med, mad = robust(list(vals.values()))
        for k, x in vals.items():
            out[k].append(PeerStat(row, x, len(vals) - 1, med, mad, robust_z(row, x, med, MAD_SIGMA * mad)))
    return out


def rank(client: PromClient, kb: KnowledgeBase, *, job: str | None = None, window: str = "15m",
         at: float | None = None) -> list[FleetEntry]:
    """Every instance of ``job`` (every job when None), sickest first."""
    from ddx.api import _judge
    from ddx.render.jsonout import status

    table = read_table(client, selector(job=job), window, at=at)
    if not table.keys:
        what = f"job {job}" if job is not None else "any job"
        raise PromError(f"--job: no targets of {what} in Prometheus at {client.shown}")
    symptoms = {fid for fid, d in kb.findings.items() if d.kind != "context"}
    by_job: dict[str, list[Key]] = {}
    for k in table.keys:
        by_job.setdefault(k[0], []).append(k)
    found = {k: [f for f in findings_of(table, k, detail=False) if f.id in kb.findings] for k in table.keys}
    cache: dict[tuple[Any, ...], tuple[str, str, float, str]] = {}
    out = []
    for jname, keys in by_job.items():
        stats = _job_stats(table, keys)
        totals = peer_counts((found[k] for k in keys), symptoms)
        for k in keys:
            mine = found[k]
            scope = scope_findings(mine, totals.without(mine, symptoms), symptoms, stats[k], f"job {jname}")
            evidence = mine + [f for f in scope.findings if f.id in kb.findings]
            sig = tuple(sorted((f.id, f.state.value, round(f.strength, 3)) for f in evidence if f.state is not State.UNKNOWN))
            if sig not in cache:
                d, _, _ = _judge(kb, evidence, [], None, {"mode": "prometheus"}, 0)
                top = d.hypotheses[0]
                cache[sig] = (top.id, top.name, top.probability, status(d))
            cause, name, prob, verdict = cache[sig]
            outliers = [s for s in stats[k] if s.z > OUTLIER_Z]
            where = next((f.id for f in scope.findings if f.state is State.PRESENT and f.id != "scope.peer_host_healthy_same_software"), "")
            up = table.up(k) is not False
            score = sickness(evidence, len(outliers), kb) + (0.0 if up else DOWN_WEIGHT)
            out.append(FleetEntry(k[1], jname, cause, name, prob, score, evidence, outliers, where, verdict, up))
    out.sort(key=lambda e: (-e.sickness, -e.probability, e.job, e.instance))
    return out
