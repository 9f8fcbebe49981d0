"""Coverage across probes: an absence judged against where that finding would show.

The log probe says which services' logs it read. Some findings show in the logs
of particular services only: "No space left on device" is written by the
processes that write to the full filesystem. When the disk probe found a full
filesystem and none of the services writing there had a log read, not seeing
ENOSPC says nothing: ``logs.enospc`` then tells nothing (strength 0.5), and the
reports say whose logs were missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ddx.inventory.model import Inventory
from ddx.model import Coverage, Finding, State, absent_strength

__all__ = ["WRITER_FINDINGS", "refine_coverage"]

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
