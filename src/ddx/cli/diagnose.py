"""`ddx diagnose`: rank the root causes of what this host (or a case) shows."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddx.cli._common import add_command, count_arg

DESCRIPTION = """\
Rank the root causes that explain the evidence, with the findings for and
against each, and the next checks that best separate the leading causes.

With no --case or --from, ddx probes this host (read-only, time-boxed). A case
file describes an incident in the finding vocabulary (see `ddx findings`);
--saw and --ruled-out add what you observed yourself, and a person's word wins
over a probe's.
"""

EXAMPLES = """\
  ddx diagnose                                   probe this host and diagnose it
  ddx diagnose --case incident.yaml              diagnose a described incident
  ddx diagnose --case incident.yaml --json       the same, as JSON (docs/json-output.md)
  ddx diagnose --saw logs.permission_denied --ruled-out change.recent_deploy
  ddx diagnose --no-probes --saw disk.space_exhausted --markdown
  ddx diagnose --from bundle.tar.gz              replay evidence saved by `ddx collect`
  ddx diagnose --ssh root@db1 --ssh web1         probe remote hosts over SSH, in parallel (docs/ssh.md)
  ddx diagnose --prometheus http://prom:9090 --instance web3:9100 --window 15m
                                                 one instance from its metrics, against its peers (docs/fleet.md)
"""


def register(sub: Any) -> None:
    p = add_command(sub, "diagnose", help="diagnose this host or a described incident",
                    description=DESCRIPTION, examples=EXAMPLES, func=run)
    src = p.add_argument_group("evidence")
    src.add_argument("--case", metavar="FILE", help="a case file (YAML or JSON) describing the incident")
    src.add_argument("--from", dest="bundle", metavar="BUNDLE", help="replay a bundle saved by `ddx collect`")
    src.add_argument("--saw", metavar="FINDING", action="append", default=[], help="a finding you observed (repeatable)")
    src.add_argument("--ruled-out", metavar="FINDING", action="append", default=[],
                     help="a finding you looked for and did not see (repeatable)")
    src.add_argument("--no-probes", action="store_true", help="do not probe this host: use only --saw/--ruled-out")
    prom = p.add_argument_group("prometheus (docs/fleet.md)")
    prom.add_argument("--prometheus", metavar="URL", help="read the evidence from this Prometheus server instead of probing")
    prom.add_argument("--instance", metavar="INSTANCE", help="the instance to diagnose, as its `instance` label reads")
    prom.add_argument("--peers", metavar="MATCHERS", help="its peers: label matchers such as 'role=\"web\"' (default: its job)")
    prom.add_argument("--baseline", metavar="DURATION", default="24h",
                      help="its own history compared with, before the window (default 24h; 0 for none)")
    out = p.add_argument_group("output")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (schema in docs/schema/diagnosis.schema.json)")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown block for an incident channel")
    out.add_argument("--top", type=count_arg, default=5, metavar="N", help="hypotheses shown in the terminal view (default 5)")
    out.add_argument("--checks", type=count_arg, default=3, metavar="N", help="next checks to propose (default 3)")
    out.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the terminal view")
    from ddx.cli.collect import add_collection_options

    add_collection_options(p)
    from ddx.cli._ssh import add_ssh_options

    add_ssh_options(p)


def run(args: argparse.Namespace) -> int:
    from ddx import api
    from ddx.cases import observations
    from ddx.errors import UsageError

    for option, value in (("--case", args.case), ("--from", args.bundle)):
        if value is not None and not value.strip():
            raise UsageError(f"{option}: an empty file name")
    if args.case and args.bundle:
        raise UsageError("give either --case or --from, not both")
    if args.ssh and (args.case or args.bundle or args.no_probes or args.prometheus is not None):
        raise UsageError("--ssh probes remote hosts: not with --case, --from, --no-probes or --prometheus")
    kb = api.load_knowledge(args.kb)
    person = observations(args.saw, args.ruled_out, kb.findings.keys())
    if args.prometheus is not None or args.instance is not None:
        report = _prometheus(args, person)
    elif args.case:
        report, warnings = api.diagnose_case(args.case, observations=person, kb_dirs=args.kb, checks=args.checks)
        from ddx.render.safe import printable

        for w in warnings:
            print(f"ddx: warning: {printable(w)}", file=sys.stderr)
    elif args.no_probes:
        if not person:
            raise UsageError("--no-probes needs at least one --saw or --ruled-out")
        report = api.diagnose_findings(person, kb_dirs=args.kb, checks=args.checks)
    elif args.ssh:
        from ddx.cli._ssh import run_diagnose_ssh

        return run_diagnose_ssh(args, person)
    else:
        only = [n.strip() for item in args.only or [] for n in item.split(",") if n.strip()] or None
        report = api.diagnose_host(
            bundle=args.bundle, config=args.config, only=only, window=args.window, timeout=args.probe_timeout,
            budget=args.budget, targets=args.target, observations=person, kb_dirs=args.kb, checks=args.checks)
    d = report.diagnosis
    if args.json:
        from ddx.render.jsonout import render_json

        text = render_json(d)
    elif args.markdown:
        from ddx.render.markdown import render_markdown

        text = render_markdown(d, top=args.top)
    else:
        from ddx.render.terminal import render_terminal, use_colour

        colour = args.color == "always" or (args.color == "auto" and use_colour(sys.stdout))
        text = render_terminal(d, colour=colour, top=args.top)
    sys.stdout.write(text)
    return 0


def _prometheus(args: argparse.Namespace, person: Any) -> Any:
    """``--prometheus URL --instance INSTANCE``: one instance from its metrics (ddx.api.diagnose_prometheus)."""
    from ddx import api
    from ddx.errors import UsageError
    from ddx.render.safe import printable

    if args.prometheus is None or args.instance is None:
        raise UsageError("--prometheus and --instance go together")
    for option, value in (("--case", args.case), ("--from", args.bundle), ("--target", args.target or None)):
        if value:
            raise UsageError(f"--prometheus reads the evidence from Prometheus: {option} does not apply")
    window = "15m" if args.window is None else f"{max(1, round(args.window))}s"
    baseline = None if args.baseline.strip() in ("0", "") else args.baseline
    timeout = args.probe_timeout or 10.0
    report = api.diagnose_prometheus(args.prometheus, args.instance, window=window, peers=args.peers,
                                     baseline=baseline, timeout=timeout, observations=person, kb_dirs=args.kb,
                                     checks=args.checks)
    for w in report.meta.get("warnings", []):
        print(f"ddx: warning: {printable(w)}", file=sys.stderr)
    return report
