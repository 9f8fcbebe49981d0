"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(
    sub: Any, name: str, *, help: str, description: str, examples: str, func: Any
) -> argparse.ArgumentParser:
    """Add a sub-command with a description and an ``examples:`` epilog."""
    from ddx.cli import HelpFormatter

    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=HelpFormatter,
    )
    parser.set_defaults(func=func)
    add_kb_option(parser)
    return parser


def add_kb_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kb",
        metavar="DIR",
        action="append",
        default=[],
        help="add a folder of your own condition files to the knowledge base (repeatable)",
    )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors")
