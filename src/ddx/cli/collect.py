"""``ddx collect``: save what this host shows into a bundle, to replay later.

Also the options every command that runs probes shares (``ddx diagnose``):
``add_collection_options`` and ``collection_from_args``.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from typing import Any

from ddx.cli._common import add_command, positive_seconds_arg, window_arg
from ddx.units import size

__all__ = ["add_collection_options", "collection_from_args", "register"]

DESCRIPTION = """\
Run the probes on this host and save the raw evidence they read (files and
command outputs) into a bundle, a .tar.gz that `ddx diagnose --from BUNDLE`
replays anywhere. Secrets are redacted: process environments are never saved,
passwords and tokens in command lines, URLs and config text are masked.
Prints one line on stderr: what was saved, and which probes could not run.
"""

EXAMPLES = """\
  ddx collect -o incident.tar.gz              save this host's evidence
  ddx collect -o /tmp/                        file named ddx-HOST-TIME.tar.gz in /tmp
  ddx collect -o disk.tar.gz --only disk,memory --window 3
  ddx diagnose --from incident.tar.gz         diagnose it later, elsewhere
  ddx collect --ssh root@db1 -o /tmp/         a remote host's evidence, over SSH (docs/ssh.md)
"""


def add_collection_options(parser: argparse.ArgumentParser) -> None:
    """The options of a run of the probes."""
    g = parser.add_argument_group("probes")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (default: $DDX_CONFIG, ./ddx.toml, /etc/ddx/ddx.toml if present)",
    )
    g.add_argument(
        "--only",
        metavar="PROBE,...",
        action="append",
        default=[],
        help="run only these probes (comma-separated, repeatable)",
    )
    g.add_argument("--probe-timeout", metavar="S", type=positive_seconds_arg, help="seconds each probe may take (default 2)")
    g.add_argument("--budget", metavar="S", type=positive_seconds_arg, help="seconds the whole run may take (default 10)")
    g.add_argument("--window", metavar="S", type=window_arg,
                   help="sampling window for rates on a host (default 1 s; 90s, 2m); for `ddx diagnose --prometheus`, "
                        "the incident window (default 15m)")
    g.add_argument(
        "--target",
        metavar="URL",
        action="append",
        default=[],
        help="also probe this service (http://, https://, memcached://, redis://, postgresql://, mysql://; repeatable)",
    )


def _only(args: argparse.Namespace) -> list[str] | None:
    names = [n.strip() for item in getattr(args, "only", None) or [] for n in item.split(",") if n.strip()]
    return names or None


def _run(args: argparse.Namespace, host: Any) -> Any:
    from ddx.config import load_config, with_targets
    from ddx.probes.runner import run_probes

    config = with_targets(load_config(getattr(args, "config", None)), getattr(args, "target", None) or [])
    return run_probes(
        host,
        config,
        only=_only(args),
        window=getattr(args, "window", None),
        timeout=getattr(args, "probe_timeout", None),
        budget=getattr(args, "budget", None),
    ), config


def collection_from_args(args: argparse.Namespace, bundle: str | None = None) -> Any:
    """Run the probes as the options say: on this host, or replayed from
    ``bundle``. Returns a ``ddx.probes.runner.Collection``."""
    if bundle is None:
        from ddx.host import LiveHost

        host: Any = LiveHost()
    else:
        from ddx.host import BundleHost

        host = BundleHost(bundle)
    collection, _ = _run(args, host)
    return collection


def _output_path(out: str, host: str) -> str:
    if os.path.isdir(out):
        stamp = time.strftime("%Y%m%dT%H%M%S")
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in host) or "host"
        return os.path.join(out, f"ddx-{safe}-{stamp}.tar.gz")
    return out


def _check_output(out: str) -> None:
    """Refuse, before any probe runs, an output that cannot be a bundle: an
    empty name, a device, a FIFO, a socket."""
    from ddx.errors import UsageError
    from ddx.readfile import file_kind

    if not out.strip():
        raise UsageError("-o: an empty file name")
    try:
        mode = os.stat(out).st_mode
    except OSError:
        return  # a new file; a folder that is not there is reported when the bundle is written
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UsageError(f"-o {out}: is {file_kind(mode)}, not a bundle file or a folder")


def cmd_collect(args: argparse.Namespace) -> int:
    from ddx.errors import DdxError
    from ddx.host import LiveHost, RecordingHost

    _check_output(args.output)
    ssh = _ssh_host(args)
    inner: Any = ssh.connect() if ssh is not None else LiveHost()
    host = RecordingHost(inner)
    try:
        collection, config = _run(args, host)
        if ssh is not None:
            ssh.check(inner)
    finally:
        if ssh is not None:
            inner.close()
    target = _output_path(args.output, host.name)
    extra: dict[str, Any] = {"config": config.path, **({"ssh": ssh.target} if ssh is not None else {})}
    try:
        path = host.save(target, collection, extra=extra)
    except OSError as exc:
        raise DdxError(f"cannot write bundle {target}: {exc.strerror or exc}") from None
    calls = host.calls()
    n_out = sum(len(c["outcomes"]) for c in calls)
    bad = collection.failed()
    tail = "; could not run: " + ", ".join(f"{r.name} ({r.status}: {r.reason})" for r in bad) if bad else ""
    from ddx.host.redact import redact_text
    from ddx.render.safe import printable

    print(printable(redact_text(
        f"ddx: saved {n_out} reads by {len(collection.results)} probes, {len(collection.findings)} findings, "
        f"to {path} ({size(os.path.getsize(path))}) in {collection.seconds:.1f}s{tail}")),
        file=sys.stderr,
    )
    return 0


def _ssh_host(args: argparse.Namespace) -> Any:
    """The remote host --ssh names (``ddx.api.SshOptions``), or None for this one."""
    if not args.ssh:
        return None
    from ddx.api import SshOptions
    from ddx.cli._ssh import ssh_targets
    from ddx.errors import UsageError

    targets = ssh_targets(args)
    if len(targets) > 1:
        raise UsageError("--ssh: ddx collect saves one host's bundle at a time")
    return SshOptions(targets[0], args.ssh_config, tuple(args.ssh_option), args.connect_timeout)


def register(sub: Any) -> None:
    parser = add_command(
        sub,
        "collect",
        help="save this host's evidence into a bundle",
        description=DESCRIPTION,
        examples=EXAMPLES,
        func=cmd_collect,
    )
    parser.add_argument("-o", "--output", metavar="BUNDLE", required=True, help="bundle file to write (.tar.gz)")
    add_collection_options(parser)
    from ddx.cli._ssh import add_ssh_options

    add_ssh_options(parser, several=False)
