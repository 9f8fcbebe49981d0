"""`ddx inventory`: what ddx thinks runs on this host, and where it looks for evidence."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddx.cli._common import add_command

DESCRIPTION = """\
Show the services ddx finds on this host in one discovery pass, as every probe
sees them: each service's program, master pid, user and start, the
configuration it was started with (and how ddx knows), the files it logs to,
its data directories and their filesystems, and the addresses its
configuration names. A service ddx did not find, or a log it missed, can be
added in ddx.toml's [inventory] table (docs/config.md).
"""

EXAMPLES = """\
  ddx inventory                          this host
  ddx inventory --json                   the same, as JSON (docs/json-output.md)
  ddx inventory --from bundle.tar.gz     the inventory a bundle was collected with
"""


def register(sub: Any) -> None:
    p = add_command(sub, "inventory", help="what runs on this host: services, configuration, logs",
                    description=DESCRIPTION, examples=EXAMPLES, func=run)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--from", dest="bundle", metavar="BUNDLE", help="the inventory saved in a bundle")
    p.add_argument("--config", metavar="FILE", help="settings file (default: $DDX_CONFIG, ./ddx.toml, /etc/ddx/ddx.toml)")


def run(args: argparse.Namespace) -> int:
    from ddx.config import load_config
    from ddx.probes.runner import take_inventory

    config = load_config(args.config)
    if args.bundle is not None and not args.bundle.strip():
        from ddx.errors import UsageError

        raise UsageError("--from: an empty file name")
    if args.bundle:
        from ddx.host import BundleHost

        host: Any = BundleHost(args.bundle)
    else:
        from ddx.host import LiveHost

        host = LiveHost()
    inv = take_inventory(host, config)
    if args.json:
        from ddx.render.safe import json_text

        sys.stdout.write(json_text(inv.to_dict()) + "\n")
    else:
        from ddx.render.inventory import render_inventory

        sys.stdout.write(render_inventory(inv, host.time()))
    return 0
