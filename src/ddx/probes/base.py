"""The probe framework's contract: probe registration, the context a probe gets, results.

A probe reads evidence through a ``Host`` (the live machine, a saved bundle, a
fixture tree) and returns findings. It never writes to the system it inspects.

Writing a probe::

    from ddx.probes.base import ProbeContext, probe
    from ddx.model import Evidence, Finding, State

    @probe("memory", findings=("memory.available_low", "memory.swap_used_high"))
    def memory(ctx: ProbeContext) -> list[Finding]:
        text = ctx.host.read_text("/proc/meminfo")
        ...
        return [ctx.finding("memory.available_low", low, Evidence(...))]

Rules:
- Findings the probe declares but does not return stay *unknown*.
- Return ``absent`` only for a finding the probe really looked for.
- Raise (any exception) when the evidence cannot be read: the runner records
  the probe as failed with the reason and its findings stay unknown. Raise
  ``NotApplicable`` when the probe does not apply to this host (no such
  service): that is not an error.
- Parsers are pure functions on text, kept apart from the probe function, so
  tests feed them samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ddx.host.base import Host
from ddx.model import Coverage, Evidence, Finding, State, absent_strength

if TYPE_CHECKING:
    from ddx.inventory.model import Inventory

__all__ = [
    "NotApplicable",
    "ProbeContext",
    "ProbeResult",
    "ProbeSpec",
    "probe",
    "registry",
]


class NotApplicable(Exception):
    """The probe does not apply to this host (nothing to look at). Not an error."""


@dataclass
class ProbeContext:
    """What a probe function receives."""

    host: Host
    config: Mapping[str, Any] = field(default_factory=dict)  # the probe's options: defaults merged with [probe.NAME]
    window: float = 1.0  # sampling window in seconds for rate measurements
    probe_name: str = ""
    notes: list[str] = field(default_factory=list)  # what a probe that succeeded could not do
    inventory: Inventory | None = None  # the discovery pass's; built on first use when not given

    @property
    def inv(self) -> Inventory:
        """What runs on the host (``ddx.inventory``): the runner's one pass, or, for a
        probe called on its own, a pass made now on its host."""
        if self.inventory is None:
            from ddx.inventory import build_inventory

            self.inventory = build_inventory(self.host)
        return self.inventory

    def note(self, text: str) -> None:
        """Say what could not be done while the rest worked (one target of several
        unreachable, a log unreadable): shown with the probe's result."""
        self.notes.append(text)

    def opt(self, key: str) -> Any:
        """One of the probe's options (its default unless ddx.toml overrides it)."""
        return self.config[key]

    def combine(self, verdicts: list[tuple[str, bool, Evidence]], *, limit: int = 20,
                missing: list[str] | None = None, keep_firm: tuple[str, ...] = ("svc.down",)) -> list[Finding]:
        """One finding per id from per-target verdicts ``(id, present, evidence)``:
        present when any target shows it (with those targets' evidence), else
        absent with every target's evidence; at most ``limit`` evidence items.
        ``missing`` lists the targets that could not be read ("TARGET: reason"): an
        absence then covers only the targets that were, and says which were not
        (``Coverage``; a softer absence), except for the ids of ``keep_firm`` (a
        target that answered an error is not down)."""
        by_id: dict[str, list[tuple[bool, Evidence]]] = {}
        for fid, present, ev in verdicts:
            by_id.setdefault(fid, []).append((present, ev))
        out = []
        for fid in sorted(by_id):
            rows = by_id[fid]
            present = any(p for p, _ in rows)
            evs = [ev for p, ev in rows if p] if present else [ev for _, ev in rows]
            f = self.finding(fid, present, *evs[:limit])
            if not present and missing and fid not in keep_firm:
                read = tuple(dict.fromkeys(ev.source for _, ev in rows))
                share = len(read) / (len(read) + len(missing))
                f = replace(f, coverage=Coverage(read, tuple(missing), share), strength=absent_strength(share))
            out.append(f)
        return out

    def window_start(self, now: float) -> float:
        """Where "recent" begins for a probe that reads history (logs, changes):
        its ``since`` option (epoch seconds) when set, else ``lookback_hours``
        before ``now``. Such probes declare both options."""
        since = float(self.opt("since"))
        if since > 0:
            return since
        hours = float(self.opt("lookback_hours"))
        if hours <= 0:
            from ddx.errors import ProbeError

            raise ProbeError(f"probe.{self.probe_name} lookback_hours must be > 0, got {hours}")
        return now - hours * 3600.0

    def finding(self, finding_id: str, present: bool, *evidence: Evidence) -> Finding:
        """A present or absent finding from this probe."""
        state = State.PRESENT if present else State.ABSENT
        return Finding(finding_id, state, f"probe:{self.probe_name}", tuple(evidence))


ProbeFunc = Callable[[ProbeContext], list[Finding]]


@dataclass(frozen=True)
class ProbeSpec:
    """A registered probe. ``options`` are its settings with their defaults
    (thresholds, paths, sizes); ``ddx.toml`` may override them in a
    ``[probe.NAME]`` table, type-checked against the defaults."""

    name: str
    func: ProbeFunc
    findings: tuple[str, ...]
    timeout: float = 2.0
    description: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeResult:
    """What one probe run gave: its findings, or why it gave none."""

    name: str
    status: str  # "ok" | "failed" | "timeout" | "denied" | "not_applicable"
    findings: tuple[Finding, ...]
    seconds: float
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "status": self.status, "seconds": round(self.seconds, 3)}
        if self.reason:
            out["reason"] = self.reason
        return out


registry: dict[str, ProbeSpec] = {}


def probe(
    name: str,
    *,
    findings: tuple[str, ...],
    timeout: float = 2.0,
    options: Mapping[str, Any] | None = None,
) -> Callable[[ProbeFunc], ProbeFunc]:
    """Register a probe function under ``name`` declaring the findings it can
    produce and its options with defaults (a comment beside each default says
    where the number comes from)."""

    def deco(func: ProbeFunc) -> ProbeFunc:
        if name in registry:
            raise ValueError(f"probe {name!r} registered twice")
        registry[name] = ProbeSpec(
            name, func, tuple(findings), timeout, (func.__doc__ or "").strip(), dict(options or {})
        )
        return func

    return deco
