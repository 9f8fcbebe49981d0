"""Run the probes concurrently, each within its timeout, all within a budget.

First the inventory (``ddx.inventory``): one discovery pass that every probe
reads (``ctx.inventory``), made through the same host (so a recording saves
its reads), or the one a replayed bundle carries.

Every probe runs in its own daemon thread. The runner waits for each until
its deadline and then stops waiting: a probe stuck in a hung syscall is
abandoned (daemon threads are not joined at exit, unlike a
ThreadPoolExecutor's workers), reported as ``timeout``, and its findings stay
unknown. A probe that raises is ``failed`` (``denied`` for PermissionError,
``not_applicable`` for NotApplicable); the others are unaffected.

A probe's deadline is its timeout plus the sampling window (probes that
measure rates spend the window sleeping between two reads), capped by the
run's budget.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ddx.config import Config, probe_options, probe_timeout
from ddx.errors import UsageError
from ddx.host import probe_scope
from ddx.inventory.model import Inventory
from ddx.model import Finding, merge_findings
from ddx.probes import load_probes
from ddx.probes.base import (
    NotApplicable,
    ProbeContext,
    ProbeResult,
    ProbeSpec,
    registry,
)
from ddx.units import iso_local

__all__ = ["Collection", "run_probes", "select_probes", "take_inventory"]


@dataclass(frozen=True)
class Collection:
    """What one run of the probes gave: merged findings and a result per probe
    (sorted by name), so the output can say which probes could not run."""

    host: str
    started: str  # ISO-8601 local time with offset; a bundle's recording time on replay
    seconds: float
    findings: tuple[Finding, ...]
    results: tuple[ProbeResult, ...]
    inventory: Inventory | None = None

    def failed(self) -> tuple[ProbeResult, ...]:
        """Probes whose findings stay unknown because they could not run."""
        return tuple(r for r in self.results if r.status in ("failed", "timeout", "denied"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "started": self.started,
            "seconds": round(self.seconds, 3),
            "results": [r.to_dict() for r in self.results],
            "findings": [f.to_dict() for f in self.findings],
        }


def take_inventory(host: Any, config: Config) -> Inventory:
    """The inventory a bundle carries, else one discovery pass on ``host`` (recorded
    as the calls of "inventory" when the host records)."""
    from ddx.config import inventory_options
    from ddx.inventory import build_inventory

    saved = getattr(host, "inventory", None)
    if saved is not None:
        return saved  # type: ignore[no-any-return]
    with probe_scope("inventory"):
        return build_inventory(host, inventory_options(config))


def select_probes(config: Config, only: Iterable[str] | None = None) -> list[ProbeSpec]:
    """The probes to run: ``only`` (exact names; unknown ones are a usage
    error) or every registered probe not disabled in the config."""
    load_probes()
    if only:
        names = list(dict.fromkeys(n.strip() for n in only if n.strip()))
        for n in names:
            if n not in registry:
                close = difflib.get_close_matches(n, list(registry), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(registry))})"
                raise UsageError(f"--only: unknown probe {n!r}{hint}")
        return [registry[n] for n in sorted(names)]
    return [registry[n] for n in sorted(registry) if n not in config.disable]


class _Run:
    """One probe in its thread."""

    def __init__(self, spec: ProbeSpec, ctx: ProbeContext, deadline: float) -> None:
        self.spec, self.ctx, self.deadline = spec, ctx, deadline
        self.done = threading.Event()
        self.result: ProbeResult | None = None
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._main, daemon=True, name=f"ddx-probe-{spec.name}")

    def _main(self) -> None:
        try:
            with probe_scope(self.spec.name, self.deadline):
                self.result = _call(self.spec, self.ctx, self.t0)
        except BaseException as exc:  # noqa: BLE001 - never let a probe kill the runner
            self.result = ProbeResult(self.spec.name, "failed", (), time.monotonic() - self.t0, _reason(exc))
        finally:
            self.done.set()


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    msg = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    return _one_line(f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__)


def _call(spec: ProbeSpec, ctx: ProbeContext, t0: float) -> ProbeResult:
    name = spec.name
    try:
        out = spec.func(ctx)
    except NotApplicable as exc:
        return ProbeResult(name, "not_applicable", (), time.monotonic() - t0, _one_line(str(exc) or "not applicable"))
    except PermissionError as exc:
        where = f": {exc.filename}" if exc.filename else (f": {exc}" if str(exc) else "")
        return ProbeResult(name, "denied", (), time.monotonic() - t0, _one_line(f"permission denied{where}"))
    except TimeoutError as exc:
        return ProbeResult(name, "timeout", (), time.monotonic() - t0, _one_line(str(exc) or "timed out"))
    except Exception as exc:  # noqa: BLE001 - a failing probe is a result, not a crash
        return ProbeResult(name, "failed", (), time.monotonic() - t0, _reason(exc))
    seconds = time.monotonic() - t0
    if out is None:
        out = []
    if not isinstance(out, (list, tuple)):
        return ProbeResult(name, "failed", (), seconds, f"probe returned {type(out).__name__}, not a list of findings")
    kept: list[Finding] = []
    bad: list[str] = []
    for f in out:
        if not isinstance(f, Finding):
            bad.append(f"non-finding {type(f).__name__}")
        elif f.id not in spec.findings:
            bad.append(f"undeclared finding {f.id!r}")
        else:
            kept.append(f)
    notes = list(ctx.notes)
    if bad:
        notes.append(f"dropped {', '.join(sorted(set(bad)))} (a bug in the probe)")
    return ProbeResult(name, "ok", tuple(kept), seconds, _one_line("; ".join(notes)))


def _iso_now() -> str:
    return iso_local(time.time())


def run_probes(
    host: Any,
    config: Config,
    *,
    only: Iterable[str] | None = None,
    window: float | None = None,
    timeout: float | None = None,
    budget: float | None = None,
) -> Collection:
    """Run the selected probes on ``host`` concurrently and collect their
    findings. ``window``, ``timeout`` (per probe) and ``budget`` (whole run)
    override the config. Never raises because of a probe."""
    broken = load_probes()
    specs = select_probes(config, only)
    win = config.window if window is None else max(0.0, float(window))
    total = config.budget if budget is None else float(budget)
    started = getattr(host, "evidence_time", None) or _iso_now()  # a bundle: when it was recorded
    t_start = time.monotonic()
    end = t_start + total
    inventory = take_inventory(host, config)
    t0 = time.monotonic()  # the probes' own time starts after the inventory; the budget covers both
    runs: list[_Run] = []
    for spec in specs:
        ctx = ProbeContext(host=host, config=probe_options(config, spec), window=win, probe_name=spec.name,
                           inventory=inventory)
        deadline = min(end, t0 + probe_timeout(config, spec, timeout) + win)
        runs.append(_Run(spec, ctx, deadline))
    for r in runs:
        r.thread.start()
    results: list[ProbeResult] = []
    for r in runs:
        r.done.wait(max(0.0, r.deadline - time.monotonic()))
        if r.done.is_set() and r.result is not None:
            results.append(r.result)
            continue
        limit = r.deadline - r.t0
        why = (
            f"run budget of {total:g}s used up"
            if r.deadline >= end
            else f"did not finish within {limit:.1f}s (abandoned)"
        )
        results.append(ProbeResult(r.spec.name, "timeout", (), time.monotonic() - r.t0, why))
    if not only:
        for module, why in sorted(broken.items()):
            if module not in {r.name for r in results}:
                results.append(ProbeResult(module, "failed", (), 0.0, _one_line(why)))
    for name in config.disable if not only else ():
        if name in registry:
            results.append(ProbeResult(name, "not_applicable", (), 0.0, f"disabled in {config.path}"))
    results.sort(key=lambda r: r.name)
    findings = merge_findings(*(r.findings for r in results))
    return Collection(
        host=str(getattr(host, "name", "")),
        started=started,
        seconds=time.monotonic() - t_start,
        findings=tuple(findings),
        results=tuple(results),
        inventory=inventory,
    )
