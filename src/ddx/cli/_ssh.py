"""``--ssh``: the options of ``ddx diagnose`` and ``ddx collect`` that probe remote
hosts over SSH (``docs/ssh.md``), and the output of a diagnosis of several hosts."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_ssh_options", "run_diagnose_ssh", "ssh_targets"]


def add_ssh_options(parser: argparse.ArgumentParser, *, several: bool = True) -> None:
    from ddx.cli._common import positive_seconds_arg

    g = parser.add_argument_group("remote hosts (docs/ssh.md)")
    g.add_argument("--ssh", metavar="[USER@]HOST", action="append", default=[],
                   help="probe this host over SSH instead of this one (needs only ssh and python3 there; "
                        + ("repeatable: several hosts in parallel)" if several else "one host)"))
    g.add_argument("--ssh-config", metavar="FILE", help="ssh client configuration file (ssh -F)")
    g.add_argument("--ssh-option", metavar="OPT", action="append", default=[],
                   help="an ssh option, as for ssh -o (repeatable), e.g. Port=2222")
    g.add_argument("--connect-timeout", metavar="S", type=positive_seconds_arg, default=10.0,
                   help="seconds to connect and log in to each host (default 10)")


def ssh_targets(args: argparse.Namespace) -> list[str]:
    """The --ssh targets, checked (a target can never be read as an ssh option)."""
    from ddx.host.ssh import check_target

    targets = [check_target(t) for item in args.ssh for t in item.split(",") if t.strip()]
    if not targets:
        from ddx.errors import UsageError

        raise UsageError("--ssh: no host given")
    return targets


def run_diagnose_ssh(args: argparse.Namespace, person: Any) -> int:
    """``ddx diagnose --ssh``: one host prints as ``ddx diagnose`` does (an error is
    one line, exit 2); several print one section each (``--json``: a list, one
    object per target in the order given, ``{"ssh", "error"}`` for a failed one)
    and exit 2 if any target failed, after printing the others."""
    from ddx import api
    from ddx.host.redact import redact_text
    from ddx.render.safe import printable

    targets = ssh_targets(args)
    only = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()] or None
    results = api.diagnose_ssh(
        targets, ssh_config=args.ssh_config, ssh_options=args.ssh_option, connect_timeout=args.connect_timeout,
        config=args.config, only=only, window=args.window, timeout=args.probe_timeout, budget=args.budget,
        targets=args.target, observations=person, kb_dirs=args.kb, checks=args.checks)
    if len(results) == 1 and isinstance(results[0], Exception):
        raise results[0]
    failed = 0
    if args.json:
        import json

        from ddx.render.jsonout import render_json, to_dict

        if len(results) == 1:
            sys.stdout.write(render_json(results[0].diagnosis))  # type: ignore[union-attr]
            return 0
        out: list[dict[str, Any]] = []
        for target, r in zip(targets, results):
            if isinstance(r, api.Report):
                out.append(to_dict(r.diagnosis))
            else:
                failed += 1
                out.append({"ssh": target, "error": redact_text(str(r))})
        sys.stdout.write(json.dumps(out, indent=2, sort_keys=False) + "\n")
    else:
        for i, (target, r) in enumerate(zip(targets, results)):
            if not isinstance(r, api.Report):
                failed += 1
                print(f"ddx: error: {printable(redact_text(str(r)))}", file=sys.stderr)
                continue
            if len(results) > 1:
                sys.stdout.write(("\n" if i else "") + f"== {printable(target)} ({printable(r.host)}) ==\n")
            sys.stdout.write(_render(args, r))
    return 2 if failed else 0


def _render(args: argparse.Namespace, report: Any) -> str:
    if args.markdown:
        from ddx.render.markdown import render_markdown

        return render_markdown(report.diagnosis, top=args.top)
    from ddx.render.terminal import render_terminal, use_colour

    colour = args.color == "always" or (args.color == "auto" and use_colour(sys.stdout))
    return render_terminal(report.diagnosis, colour=colour, top=args.top)
