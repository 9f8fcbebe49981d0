"""`ddx kb`: list, show and lint the knowledge base; `ddx kb docs` writes the catalogs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ddx.cli._common import add_command


def register(sub: Any) -> None:
    p: Any = add_command(
        sub, "kb", help="list, show and lint the knowledge base of conditions",
        description="Inspect the knowledge base: the conditions ddx ranks, their evidence and checks.",
        examples="""\
  ddx kb list                      every condition with its prior
  ddx kb show disk-full            one condition: evidence table, checks, remedies
  ddx kb lint                      validate the bundled knowledge base
  ddx kb lint my-conditions/       validate your own condition files with it
  ddx kb docs docs/                regenerate docs/findings.md and docs/conditions.md
""", func=lambda a: _help(p))
    ksub = p.add_subparsers(dest="kb_command", metavar="SUBCOMMAND")
    add_command(ksub, "list", help="list the conditions", description="List every condition with its prior.",
                examples="  ddx kb list\n  ddx kb list --kb my-conditions/\n", func=run_list)
    show = add_command(ksub, "show", help="show one condition", description=(
        "Show one condition: its summary, the findings that argue for and against it "
        "(with P(finding | condition), the finding's leak and the weight in decibans), its checks and remedies."),
        examples="  ddx kb show hardware-fault\n  ddx kb show connection-limit --kb my-conditions/\n", func=run_show)
    show.add_argument("id", help="condition id (see `ddx kb list`)")
    lint = add_command(ksub, "lint", help="validate knowledge-base files", description=(
        "Validate the bundled knowledge base and, if given, your own condition files or folders. "
        "Every problem is reported with file, line and field; exit code 2 when there is any."),
        examples="  ddx kb lint\n  ddx kb lint my-conditions/\n  ddx kb lint my-conditions/slow-nfs.yaml\n", func=run_lint)
    lint.add_argument("paths", nargs="*", metavar="PATH", help="condition files or folders to validate with the bundled ones")
    docs = add_command(ksub, "docs", help="write the finding and condition catalogs", description=(
        "Write findings.md and conditions.md (generated from the knowledge base) into a folder."),
        examples="  ddx kb docs docs/\n", func=run_docs)
    docs.add_argument("folder", help="output folder")


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def run_list(args: argparse.Namespace) -> int:
    from ddx.kb.loader import load_kb
    from ddx.render.safe import printable

    kb = load_kb(args.kb)
    width = max(len(c) for c in kb.conditions)
    for cid in sorted(kb.conditions):
        c = kb.conditions[cid]
        print(printable(f"{cid:<{width}}  {c.prior:>6.3f}  {c.name}"))
    print(f"{'(unlisted)':<{width}}  {kb.unlisted_prior:>6.3f}  a cause not in the knowledge base")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from ddx.errors import UsageError
    from ddx.kb.catalog import condition_text
    from ddx.kb.loader import load_kb

    kb = load_kb(args.kb)
    if args.id not in kb.conditions:
        import difflib

        close = difflib.get_close_matches(args.id, list(kb.conditions), n=1)
        hint = f" (did you mean {close[0]}?)" if close else " (see `ddx kb list`)"
        raise UsageError(f"no condition {args.id!r}{hint}")
    from ddx.render.safe import printable

    sys.stdout.write(printable(condition_text(kb, args.id), multiline=True))
    return 0


def run_lint(args: argparse.Namespace) -> int:
    from ddx.kb.loader import lint_paths

    kb = lint_paths([*args.paths, *args.kb])
    print(f"ok: {len(kb.conditions)} conditions, {len(kb.checks)} checks, {len(kb.findings)} findings")
    return 0


def run_docs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ddx.kb.catalog import conditions_markdown, findings_markdown
    from ddx.kb.loader import load_kb

    kb = load_kb(args.kb, strict=True)
    out = Path(args.folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / "findings.md").write_text(findings_markdown(kb), encoding="utf-8")
    (out / "conditions.md").write_text(conditions_markdown(kb), encoding="utf-8")
    print(f"wrote {out / 'findings.md'} and {out / 'conditions.md'}", file=sys.stderr)
    return 0
