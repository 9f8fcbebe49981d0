"""The fleet view: one line per instance, sickest first (terminal), or a JSON list
(schema: docs/schema/fleet.schema.json)."""

from __future__ import annotations

from collections.abc import Sequence

from ddx.prom.fleet import FleetEntry
from ddx.render.safe import json_text, printable
from ddx.render.terminal import _pct, clip

__all__ = ["render_fleet_json", "render_fleet_terminal"]

SCOPE = {"scope.single_host": "this host alone", "scope.all_hosts": "fleet-wide"}


def render_fleet_json(entries: Sequence[FleetEntry]) -> str:
    return json_text([e.to_dict() for e in entries]) + "\n"


def render_fleet_terminal(entries: Sequence[FleetEntry], *, top: int = 20, width: int = 150) -> str:
    """A table of the ``top`` sickest instances and a count of the rest."""
    sick = sum(1 for e in entries if e.sickness > 0)
    lines = [f"{len(entries)} instance(s), {sick} with symptoms or outliers; sickest first (docs/fleet.md)", ""]
    head = f"{'#':>3}  {'instance':<24} {'job':<12} {'sick':>5}  {'leading cause':<26} {'prob':>6}  {'scope':<15} findings"
    lines.append(head)
    for n, e in enumerate(entries[:top], 1):
        present = [f.id for f in e.present if not f.id.startswith("scope.")] + ([] if e.up else ["(target down)"])
        quiet = e.sickness == 0 and e.status == "nothing_wrong" and e.up
        cause, prob = ("(nothing wrong)", "-") if quiet else (e.cause, _pct(e.probability))
        row = (f"{n:>3}  {clip(printable(e.instance), 24):<24} {clip(printable(e.job), 12):<12} {e.sickness:>5.1f}  "
               f"{clip(cause, 26):<26} {prob:>6}  {SCOPE.get(e.scope, ''):<15} "
               + (", ".join(present) or ("outlier: " + ", ".join(s.row.label for s in e.outliers[:2]) if e.outliers else "-")))
        lines.append(clip(row, width))
    if len(entries) > top:
        lines.append(f"     ... {len(entries) - top} more (--top N, or --json for all)")
    return "\n".join(lines) + "\n"
