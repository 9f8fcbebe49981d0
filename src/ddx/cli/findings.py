"""`ddx findings`: the finding vocabulary."""

from __future__ import annotations

import argparse
from typing import Any

from ddx.cli._common import add_command


def register(sub: Any) -> None:
    p = add_command(
        sub, "findings", help="list the finding vocabulary",
        description=("List every finding id ddx reasons about, with its kind, its leak (how often it shows up "
                     "when none of the conditions that list it is the cause) and its meaning."),
        examples="  ddx findings\n  ddx findings disk\n  ddx findings --json\n", func=run)
    p.add_argument("area", nargs="?", help="only the findings of one area (disk, memory, logs, ...)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from ddx.errors import UsageError
    from ddx.kb.loader import load_kb

    kb = load_kb(args.kb)
    items = [f for f in kb.findings.values() if not args.area or f.area == args.area]
    if args.area and not items:
        areas = sorted({f.area for f in kb.findings.values()})
        raise UsageError(f"no findings in area {args.area!r}; areas: {', '.join(areas)}")
    if args.json:
        from ddx.render.safe import json_text

        print(json_text([{"id": f.id, "kind": f.kind, "fp_rate": f.fp_rate, "description": f.description,
                          "seen_by": f.seen_by} for f in items]))
        return 0
    from ddx.render.safe import printable

    width = max(len(f.id) for f in items)
    for f in items:
        print(printable(f"{f.id:<{width}}  {f.kind:<7}  {f.fp_rate:<5}  {f.description}"))
    return 0
