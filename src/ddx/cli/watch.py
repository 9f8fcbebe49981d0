"""`ddx watch`: the daemon for one host (docs/watch.md)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from typing import Any

from ddx.cli._common import add_command

DESCRIPTION = """\
Watch this host: a cheap sample every few seconds (CPU, memory, swap, disks,
file handles, listen queues, listening ports), symptoms judged against fixed
limits and the host's own baselines, with hysteresis so a flapping signal
stays one symptom. When symptoms open, ddx runs a full diagnosis, saves an
evidence bundle and opens one incident for the fault; it diagnoses again when
new symptoms join, records each change of the leading cause, and resolves the
incident when every symptom has cleared. Notifiers ([notify.*] in ddx.toml)
hear of each incident when it opens, when its leading cause changes and when
it resolves, never per sample. Incidents go to the store (SQLite), where
`ddx incident list` and `ddx serve` find them.
"""

EXAMPLES = """\
  ddx watch                                  defaults: every 10 s, store /var/lib/ddx/ddx.db
  ddx watch --config /etc/ddx/ddx.toml       [watch] and [notify.*] from that file
  ddx watch --store ./ddx.db --interval 5    a store of your own, a sample every 5 s
"""


def register(sub: Any) -> None:
    p = add_command(sub, "watch", help="watch this host: incidents with their diagnosis, notifications",
                    description=DESCRIPTION, examples=EXAMPLES, func=run)
    p.add_argument("--config", metavar="FILE", help="settings file (default: $DDX_CONFIG, ./ddx.toml, /etc/ddx/ddx.toml)")
    p.add_argument("--store", metavar="PATH", help="incident store (default: [watch] store, /var/lib/ddx/ddx.db)")
    p.add_argument("--interval", type=float, metavar="SECONDS", help="seconds between samples (default 10)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ddx.config import load_config
    from ddx.errors import UsageError
    from ddx.host import LiveHost
    from ddx.watch.daemon import Watch, host_diagnosis
    from ddx.watch.incidents import IncidentBook
    from ddx.watch.sampler import Sampler
    from ddx.watch.settings import watch_settings
    from ddx.watch.store import Store

    config = load_config(args.config)
    where = config.path or "ddx.toml"
    settings = watch_settings(config.service.get("watch"), where)
    if args.store is not None:
        if not args.store.strip():
            raise UsageError("--store: an empty file name")
        settings = replace(settings, store=args.store)
    if args.interval is not None:
        if not 0.1 <= args.interval <= 3600:
            raise UsageError(f"--interval: {args.interval:g} is outside 0.1..3600 seconds")
        settings = replace(settings, interval=args.interval)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    store = Store(settings.store, retention_days=settings.retention_days, max_incidents=settings.max_incidents)
    from ddx.watch.notify import build_notifier

    notifier = build_notifier(config, store)
    book = IncidentBook(store, notifier)
    watch = Watch(Sampler(LiveHost()), book, settings, host_diagnosis(config.path, settings.diagnose_budget),
                  hostname=socket.gethostname())
    logging.getLogger("ddx.watch").info("ddx watch: sampling every %gs, store %s", settings.interval, settings.store)
    try:
        watch.run(threading.Event())
    finally:
        book.close(5.0)
    return 0
