"""An instance against its peers and against its own history, with robust statistics.

Peers are the other instances of the same job (or those other label matchers
select). For every row of the metric map read on the instance and on at least
``MIN_PEERS`` peers: the peers' median and MAD, and the instance's robust
z-score ``(x - median) / max(1.4826 MAD, 5% of the row's line)`` counted in the
direction of the row's line (higher is worse for ``>``, lower for ``<``). The floor
keeps identical peers (MAD 0) from making a tiny difference an outlier.
An outlier is a z-score above ``OUTLIER_Z`` (3.5, Iglewicz and Hoaglin's cut for the
modified z-score).

The scope findings the knowledge base weighs come from the instance's present
symptom findings and how many of its peers show the same:

- ``scope.single_host`` present: for some symptom, at most ``ALONE_SHARE`` (10%) of the
  peers that were read show it (this host alone; a symptom of its own outweighs a
  fleet-wide one beside it); ``scope.all_hosts`` absent;
- else ``scope.all_hosts`` present: for some symptom, more than half (``FLEET_SHARE``)
  of the peers show it too (fleet-wide); ``scope.single_host`` absent;
- in between (some peers, not most): ``scope.single_host`` and ``scope.all_hosts`` absent;
- unknown, with the reason in ``Scope.reason``: the instance shows no symptom, or fewer
  than ``MIN_PEERS`` peers were read for its symptoms.

``scope.peer_host_healthy_same_software`` stays unknown: metrics do not say that the
peers run the same version and configuration (a job label does not), and "the peers
are healthy" is the very observation ``scope.single_host`` already carries; stated as
a second finding it would count twice in the engine, which takes findings as
independent, and push every single-host fault towards a hardware fault.

The own-history shift: the same expression's median and interquartile range over
the baseline before the window (``quantile_over_time`` over a subquery of about 100 steps), and the
robust z of the value now against them (IQR / 1.349 is the robust sigma).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ddx.model import Evidence, Finding, State
from ddx.prom.client import PromClient
from ddx.prom.instance import SOURCE, Key, Table, query_of, show_value
from ddx.prom.metricmap import ROWS, Row

__all__ = ["ALONE_SHARE", "Counts", "peer_counts", "robust_z", "FLEET_SHARE", "MIN_PEERS", "OUTLIER_Z", "PeerStat", "Scope", "Shift", "history",
           "peer_stats", "robust", "scope_findings"]

MIN_PEERS = 3
OUTLIER_Z = 3.5
FLEET_SHARE = 0.5  # more than this share of the peers show it: fleet-wide
ALONE_SHARE = 0.1  # at most this share of the peers show it: this host alone
MAD_SIGMA = 1.4826  # MAD to standard deviation for normal data
IQR_SIGMA = 1.349  # IQR to standard deviation for normal data
Z_CAP = 1000.0  # beyond this a z-score says nothing more
SCOPE_IDS = ("scope.all_hosts", "scope.peer_host_healthy_same_software", "scope.single_host")
# Never stated from metrics (see above): the same observation as scope.single_host, and the
# metrics do not show the peers' version and configuration.
_SAME_SOFTWARE = Finding("scope.peer_host_healthy_same_software", State.UNKNOWN, SOURCE,
                         note="metrics do not show that the peers run the same version and configuration")


def robust(values: Sequence[float]) -> tuple[float, float]:
    """Median and median absolute deviation."""
    med = statistics.median(values)
    return med, statistics.median(abs(v - med) for v in values)


def robust_z(row: Row, x: float, center: float, spread: float) -> float:
    """How far ``x`` lies from ``center`` in units of ``spread`` (floored at 5% of the row's line), worse positive."""
    scale = max(spread, 0.05 * abs(row.threshold), 1e-9)
    z = (x - center) / scale
    z = -z if row.op == "<" else z
    return max(-Z_CAP, min(Z_CAP, z))


@dataclass(frozen=True)
class PeerStat:
    """One row on the instance against its peers."""

    row: Row
    value: float
    peers: int
    median: float
    mad: float
    z: float

    @property
    def outlier(self) -> bool:
        return self.z > OUTLIER_Z

    def to_dict(self) -> dict[str, object]:
        return {"finding": self.row.finding, "metric": self.row.label, "value": _r(self.value), "peers": self.peers,
                "peer_median": _r(self.median), "peer_mad": _r(self.mad), "z": _r(self.z), "outlier": self.outlier}


def _r(v: float) -> float:
    return round(v, 4) if math.isfinite(v) else v


def peer_stats(table: Table, key: Key, peers: Sequence[Key]) -> list[PeerStat]:
    """Every row read on ``key`` and on at least ``MIN_PEERS`` of ``peers``."""
    out = []
    for i, row in enumerate(ROWS):
        mine = table.value(i, key)
        if mine.value is None:
            continue
        vals = [v.value for v in (table.value(i, p) for p in peers) if v.value is not None]
        if len(vals) < MIN_PEERS:
            continue
        med, mad = robust(vals)
        out.append(PeerStat(row, mine.value, len(vals), med, mad, robust_z(row, mine.value, med, MAD_SIGMA * mad)))
    return out


@dataclass
class Scope:
    """The scope findings of one instance and why."""

    findings: list[Finding] = field(default_factory=list)
    reason: str = ""
    peers: int = 0
    shares: dict[str, tuple[int, int]] = field(default_factory=dict)  # symptom -> (peers showing it, peers read)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"peers": self.peers}
        if self.reason:
            out["reason"] = self.reason
        out["shares"] = {k: {"showing": a, "read": b} for k, (a, b) in sorted(self.shares.items())}
        return out


@dataclass
class Counts:
    """How many peers show each finding and how many were read for it; how many were read and
    show no symptom (``healthy``)."""

    showing: dict[str, int] = field(default_factory=dict)
    read: dict[str, int] = field(default_factory=dict)
    healthy: int = 0
    peers: int = 0

    def add(self, findings: Sequence[Finding], symptoms: set[str], sign: int = 1) -> None:
        """Count one peer's findings (``sign`` -1 takes one out again)."""
        sick = read = False
        for f in findings:
            if f.state is State.UNKNOWN:
                continue
            read = True
            self.read[f.id] = self.read.get(f.id, 0) + sign
            if f.state is State.PRESENT:
                self.showing[f.id] = self.showing.get(f.id, 0) + sign
                sick = sick or f.id in symptoms
        self.healthy += sign if read and not sick else 0  # a peer nothing could be read of is not healthy
        self.peers += sign

    def without(self, findings: Sequence[Finding], symptoms: set[str]) -> Counts:
        """These counts with one member taken out (a job's totals less the instance itself)."""
        out = Counts(dict(self.showing), dict(self.read), self.healthy, self.peers)
        out.add(findings, symptoms, -1)
        return out


def peer_counts(peers: Iterable[Sequence[Finding]], symptoms: set[str]) -> Counts:
    c = Counts()
    for fs in peers:
        c.add(fs, symptoms)
    return c


def scope_findings(mine: Sequence[Finding], peers: Counts, symptoms: set[str],
                   stats: Sequence[PeerStat], what: str) -> Scope:
    """The three scope findings for an instance with findings ``mine`` among peers counted in
    ``peers``; ``symptoms`` the ids that are symptoms (not context); ``what`` names the peer
    group in the evidence (``job "node"``)."""
    scope = Scope(peers=peers.peers)
    sick = [f.id for f in mine if f.state is State.PRESENT and f.id in symptoms]

    def unknown(reason: str) -> Scope:
        scope.reason = reason
        scope.findings = [Finding(fid, State.UNKNOWN, SOURCE, (Evidence(source=f"{SOURCE}: peers of {what}",
                                                                            summary=reason),)) for fid in SCOPE_IDS]
        return scope

    if not sick:
        return unknown("no symptom on this instance to compare with its peers")
    decided = {fid: (peers.showing.get(fid, 0), peers.read.get(fid, 0)) for fid in sick}
    scope.shares = decided
    usable = {fid: (a, b) for fid, (a, b) in decided.items() if b >= MIN_PEERS}
    if not usable:
        return unknown(f"fewer than {MIN_PEERS} peers of {what} read for {', '.join(sick)} "
                       f"({max((b for _, b in decided.values()), default=0)} read)")
    shares = {fid: a / b for fid, (a, b) in usable.items()}
    detail = "; ".join(f"{fid}: {a} of {b} peers" for fid, (a, b) in sorted(usable.items()))
    medians = "; ".join(f"{s.row.label} {show_value(s.value, s.row.unit)} here, peer median "
                        f"{show_value(s.median, s.row.unit)} (z {s.z:.1f})"
                        for s in stats if s.row.finding in usable and s.row.crosses(s.value))
    src = f"{SOURCE}: peers of {what}"
    alone = min(shares.values()) <= ALONE_SHARE
    fleet = not alone and max(shares.values()) > FLEET_SHARE

    def f(fid: str, present: bool, summary: str) -> Finding:
        return Finding(fid, State.PRESENT if present else State.ABSENT, SOURCE,
                       (Evidence(source=src, summary=summary, samples=(medians,) if medians else ()),))

    if fleet:
        scope.findings = [
            f("scope.all_hosts", True, f"most peers show the same: {detail}"),
            f("scope.single_host", False, f"not this host alone: {detail}"),
            _SAME_SOFTWARE,
        ]
    elif alone:
        scope.findings = [
            f("scope.single_host", True, f"this host alone: {detail}"),
            f("scope.all_hosts", False, f"not fleet-wide: {detail} ({peers.healthy} of {peers.peers} peers of "
                                        f"{what} show no symptom)"),
            _SAME_SOFTWARE,
        ]
    else:
        scope.findings = [
            f("scope.single_host", False, f"some peers show it too: {detail}"),
            f("scope.all_hosts", False, f"not most peers: {detail}"),
            _SAME_SOFTWARE,
        ]
    return scope


@dataclass(frozen=True)
class Shift:
    """One row's value now against the instance's own baseline."""

    row: Row
    value: float
    median: float
    spread: float  # IQR / 1.349
    z: float

    def to_dict(self) -> dict[str, object]:
        return {"finding": self.row.finding, "metric": self.row.label, "value": _r(self.value),
                "baseline_median": _r(self.median), "baseline_sigma": _r(self.spread), "z": _r(self.z)}


def history(client: PromClient, table: Table, key: Key, baseline: str, step: str = "5m") -> list[Shift]:
    """The instance's rows now against their median and IQR over ``baseline`` before the window,
    sampled every ``step`` (rows without history, or not read now, are left out)."""
    from ddx.prom.instance import selector

    rows = [(i, row) for i, row in enumerate(ROWS) if table.value(i, key).value is not None]
    if not rows:
        return []
    sel = selector(key[0], key[1])
    exprs = []
    for _, row in rows:
        inner = f"({query_of(row, sel, table.window)})[{baseline}:{step}] offset {table.window}"
        exprs.append(f"quantile_over_time(0.5, {inner})")
        exprs.append(f"quantile_over_time(0.75, {inner}) - quantile_over_time(0.25, {inner})")
    answers = client.query_many(exprs, at=table.at)
    out = []
    for n, (i, row) in enumerate(rows):
        med, iqr = answers[2 * n], answers[2 * n + 1]
        now = table.value(i, key).value
        if not med or not iqr or now is None or math.isnan(med[0].value):
            continue
        spread = iqr[0].value / IQR_SIGMA
        out.append(Shift(row, now, med[0].value, spread, robust_z(row, now, med[0].value, spread)))
    return out
