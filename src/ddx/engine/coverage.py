"""Coverage across probes: an absence judged against where that finding would show.

The log probe says which services' logs it read. Some findings show in the logs
of particular services only: "No space left on device" is written by the
processes that write to the full filesystem. When the disk probe found a full
filesystem and none of the services writing there had a log read, not seeing
ENOSPC says nothing: ``logs.enospc`` then tells nothing (strength 0.5), and the
reports say whose logs were missing.

The service probes judge ``svc.down`` on the services they found running. A
dependency that went down is no longer running, so no service probe looks at it;
when the configuration names an address that does not answer and no service
probe probed that address, ``svc.down`` unseen covers only the services that
were probed: its absence is softened by that share (``absent_strength``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from ddx.inventory.model import Inventory
from ddx.model import Coverage, Finding, State, absent_strength

__all__ = ["WRITER_FINDINGS", "refine_coverage", "refine_down_coverage"]

# finding -> the findings whose evidence names the filesystem its writers' logs would show it for
WRITER_FINDINGS: dict[str, tuple[str, ...]] = {
    "logs.enospc": ("disk.space_exhausted", "disk.inodes_exhausted"),
    "logs.readonly_database": ("disk.readonly_remount",),
}


def _mounts(f: Finding) -> list[str]:
    out = []
    for ev in f.evidence:
        src = ev.source.removeprefix("statvfs ").split(",")[0].strip()
        if src.startswith("/"):
            out.append(src)
    return out


def refine_coverage(findings: Sequence[Finding], inv: Inventory | None) -> list[Finding]:
    """``findings`` with the absences of ``WRITER_FINDINGS`` judged against the logs of
    the services that write to the filesystem in question."""
    if inv is None:
        return list(findings)
    by_id = {f.id: f for f in findings}
    out = []
    for f in findings:
        sources = WRITER_FINDINGS.get(f.id)
        if not sources or f.state is not State.ABSENT or f.coverage is None:
            out.append(f)
            continue
        mounts = [m for s in sources if (g := by_id.get(s)) and g.state is State.PRESENT for m in _mounts(g)]
        if not mounts:
            out.append(f)
            continue
        filesystems = {inv.mount_of(m) for m in mounts} | set(mounts)
        writers = [s for s in inv.services if s.pid > 0 and filesystems & set(s.filesystems)]
        if not writers:
            out.append(f)
            continue
        read = [w for w in writers if any(r.startswith(f"{w.name}: ") for r in f.coverage.read)]
        missing = [f"{w.label}, which writes to {', '.join(sorted(filesystems & set(w.filesystems)))}: "
                   f"its logs were not read" for w in writers if w not in read]
        share = len(read) / len(writers)
        if share >= f.coverage.share and not missing:
            out.append(f)
            continue
        cov = Coverage(f.coverage.read, tuple(dict.fromkeys([*missing, *f.coverage.missing])),
                       min(share, f.coverage.share))
        out.append(replace(f, coverage=cov, strength=min(f.strength, absent_strength(cov.share))))
    return out


_DEAD = re.compile(r"^(\S+?): (.*?) <- (.*)$")


def _norm(addr: str) -> str:
    host, _, port = addr.rpartition(":")
    host = host.strip("[]").lower()
    return f"{'127.0.0.1' if host in ('localhost', '::1', '0.0.0.0', '::') else host}:{port}"


def _probed(source: str) -> str:
    """``host:port`` a service probe's evidence source names (``memcached://h:p (pid 4)``)."""
    rest = source.split("://", 1)[-1].split(" ", 1)[0].split("/", 1)[0].rsplit("@", 1)[-1]
    return _norm(rest) if ":" in rest else ""


def refine_down_coverage(findings: Sequence[Finding]) -> list[Finding]:
    """``findings`` with every ``svc.down`` absence judged against the addresses the
    configuration names that do not answer and that no service probe looked at."""
    drift = next((f for f in findings if f.id == "config.references_unreachable_endpoint"
                  and f.state is State.PRESENT), None)
    if drift is None:
        return list(findings)
    dead: dict[str, str] = {}
    for ev in drift.evidence:
        for row in ev.samples:
            m = _DEAD.match(row)
            if m:
                dead.setdefault(_norm(m.group(1)), f"{m.group(1)} (named in {m.group(3)}): {m.group(2)}")
    probed = {_probed(ev.source) for f in findings if f.id == "svc.down" for ev in f.evidence} - {""}
    unseen = {a: why for a, why in dead.items() if a not in probed}
    if not unseen:
        return list(findings)
    out = []
    for f in findings:
        if f.id != "svc.down" or f.state is not State.ABSENT:
            out.append(f)
            continue
        looked = [ev.source for ev in f.evidence]
        missing = [f"{why}, and no service probe could look at it" for why in unseen.values()]
        prior = f.coverage or Coverage(tuple(looked), (), 1.0)
        share = min(prior.share, len(looked) / (len(looked) + len(unseen))) if looked else 0.0
        cov = Coverage(prior.read or tuple(looked), tuple(dict.fromkeys([*missing, *prior.missing])), share)
        out.append(replace(f, coverage=cov, strength=min(f.strength, absent_strength(share))))
    return out
