"""`ddx fleet`: every instance Prometheus scrapes, diagnosed and ranked sickest first."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddx.cli._common import add_command, count_arg, positive_seconds_arg

DESCRIPTION = """\
Diagnose every instance of a job (or of every job) from its metrics in
Prometheus, each against the other instances of its job, and list them
sickest first with the leading cause and its probability. How sick an
instance looks: the rarity of its present symptoms plus its outliers against
its peers (docs/fleet.md).
"""

EXAMPLES = """\
  ddx fleet --prometheus http://prom:9090                 every job, sickest first
  ddx fleet --prometheus http://prom:9090 --job node --window 30m
  ddx fleet --prometheus http://prom:9090 --json          a JSON list (docs/schema/fleet.schema.json)
"""


def register(sub: Any) -> None:
    p = add_command(sub, "fleet", help="rank every instance in Prometheus, sickest first",
                    description=DESCRIPTION, examples=EXAMPLES, func=run)
    p.add_argument("--prometheus", metavar="URL", required=True, help="the Prometheus server (http://host:9090)")
    p.add_argument("--job", metavar="JOB", help="only the instances of this job (default: every job)")
    p.add_argument("--window", metavar="DURATION", default="15m", help="the incident window (default 15m)")
    p.add_argument("--timeout", metavar="S", type=positive_seconds_arg, default=10.0,
                   help="seconds each query to Prometheus may take (default 10)")
    p.add_argument("--json", action="store_true", help="print a JSON list, sickest first")
    p.add_argument("--top", type=count_arg, default=20, metavar="N", help="instances shown in the table (default 20)")


def run(args: argparse.Namespace) -> int:
    from ddx import api

    entries = api.fleet(args.prometheus, job=args.job, window=args.window, timeout=args.timeout, kb_dirs=args.kb)
    if args.json:
        from ddx.render.fleet import render_fleet_json

        sys.stdout.write(render_fleet_json(entries))
    else:
        from ddx.render.fleet import render_fleet_terminal

        sys.stdout.write(render_fleet_terminal(entries, top=args.top))
    return 0
