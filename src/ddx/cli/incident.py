"""`ddx incident list|show ID`: the incidents of the store."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddx.cli._common import add_command

DESCRIPTION = """\
The incidents that `ddx watch` and `ddx serve` (Alertmanager alerts, "diagnose
now") recorded: `list` shows them newest first with their leading cause; `show
ID` shows one with its differential, next check and timeline, `--json`
everything recorded for it, `--markdown` a postmortem draft (timeline, how the
differential changed, evidence, what was ruled out, the checks proposed, the
resolution).
"""

EXAMPLES = """\
  ddx incident list                          newest first
  ddx incident list --status open --json     the open ones, as JSON
  ddx incident show 20261206-093012-a1b2
  ddx incident show 20261206-093012-a1b2 --markdown > postmortem.md
"""


def register(sub: Any) -> None:
    p = add_command(sub, "incident", help="incidents recorded by ddx watch and ddx serve",
                    description=DESCRIPTION, examples=EXAMPLES, func=_missing)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    ls = add_command(actions, "list", help="incidents, newest first", description="Incidents, newest first.",
                     examples="  ddx incident list\n  ddx incident list --status open --host web-1 --json\n",
                     func=cmd_list)
    _common(ls)
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.add_argument("--status", choices=("open", "resolved"))
    ls.add_argument("--host")
    ls.add_argument("--cause", help="leading cause id")
    ls.add_argument("--limit", type=int, default=50)
    show = add_command(actions, "show", help="one incident", description="One incident: its differential, next "
                       "check and timeline; everything as JSON; or a postmortem draft in Markdown.",
                       examples="  ddx incident show 20261206-093012-a1b2\n"
                                "  ddx incident show 20261206-093012-a1b2 --markdown > postmortem.md\n",
                       func=cmd_show)
    _common(show)
    show.add_argument("id")
    fmt = show.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="everything recorded, as JSON")
    fmt.add_argument("--markdown", action="store_true", help="a postmortem draft in Markdown")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="PATH", help="incident store (default: [watch] store, /var/lib/ddx/ddx.db)")
    p.add_argument("--config", metavar="FILE", help="settings file (default: $DDX_CONFIG, ./ddx.toml, /etc/ddx/ddx.toml)")


def _missing(args: argparse.Namespace) -> int:
    from ddx.errors import UsageError

    raise UsageError("ddx incident: say list or show ID")


def _store(args: argparse.Namespace) -> Any:
    import os

    from ddx.config import load_config
    from ddx.errors import UsageError
    from ddx.watch.settings import watch_settings
    from ddx.watch.store import Store

    config = load_config(args.config)
    path = args.store if args.store is not None else watch_settings(config.service.get("watch"),
                                                                     config.path or "ddx.toml").store
    if not path.strip():
        raise UsageError("--store: an empty file name")
    if not os.path.exists(path):
        raise UsageError(f"--store {path}: no incident store there (ddx watch or ddx serve creates it)")
    return Store(path)


def cmd_list(args: argparse.Namespace) -> int:
    from ddx.errors import UsageError

    if not 1 <= args.limit <= 100_000:
        raise UsageError(f"--limit: {args.limit} is outside 1..100000")
    store = _store(args)
    try:
        incidents = store.incidents(status=args.status, host=args.host, cause=args.cause, limit=args.limit)
    finally:
        store.close()
    if args.json:
        from ddx.render.safe import json_text

        sys.stdout.write(json_text([i.to_dict() for i in incidents]) + "\n")
    else:
        from ddx.render.incident import render_list

        sys.stdout.write(render_list(incidents))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from ddx.errors import UsageError

    store = _store(args)
    try:
        inc = store.get(args.id)
        if inc is None:
            raise UsageError(f"no incident {args.id!r} in {store.path} (ddx incident list shows them)")
        events, diagnoses = store.events(inc.id), store.diagnoses(inc.id)
        alerts, notes = store.alerts(inc.id), store.notifications(inc.id)
    finally:
        store.close()
    if args.json:
        from ddx.render.incident import incident_dict
        from ddx.render.safe import json_text

        sys.stdout.write(json_text(incident_dict(inc, events, diagnoses, alerts, notes)) + "\n")
    elif args.markdown:
        from ddx.render.incident import render_postmortem

        sys.stdout.write(render_postmortem(inc, events, diagnoses, alerts))
    else:
        from ddx.render.incident import render_incident

        sys.stdout.write(render_incident(inc, events, diagnoses))
    return 0
