"""The ddx command line: a thin shell over the library.

Each command lives in its own module with a ``register(subparsers)`` function
that adds its parser and sets ``func``. Modules import what they need inside
their functions, so ``ddx --help`` and ``ddx diagnose --case`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ddx import __version__
from ddx.errors import DdxError

# Command modules, in the order `ddx --help` lists them.
COMMAND_MODULES = ("diagnose", "inventory", "collect", "kb", "findings", "logs", "drill")

DESCRIPTION = """\
ddx: differential diagnosis for production systems.

Collects evidence from a host (or reads a case file), ranks the root causes
that explain it with probabilities, shows the evidence for and against each,
and proposes the next check that best separates the leading causes.
"""

EPILOG = """\
examples:
  ddx diagnose                          diagnose this host
  ddx diagnose --case incident.yaml     diagnose a described incident
  ddx diagnose --saw disk.space_exhausted --saw logs.enospc
  ddx kb show disk-full                 one condition: its evidence and checks
  ddx COMMAND --help                    help and examples for one command
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in epilogs as written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddx", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ddx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ddx.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DdxError as exc:
        if args.debug:
            raise
        print(f"ddx: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ddx: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
