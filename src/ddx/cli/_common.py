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


MAX_COUNT = 1000  # --top, --checks: more than anyone reads


def count_arg(text: str) -> int:
    """An argparse type: a whole number from 0 to ``MAX_COUNT``."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= n <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_COUNT}: {text!r}")
    return n


def seconds_arg(text: str) -> float:
    """An argparse type: seconds, from 0 to ``ddx.config.MAX_SECONDS``."""
    from ddx.config import MAX_SECONDS

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= v <= MAX_SECONDS:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_SECONDS:g}: {text!r}")
    return v


def positive_seconds_arg(text: str) -> float:
    """An argparse type: seconds, more than 0 and at most ``ddx.config.MAX_SECONDS``."""
    v = seconds_arg(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return v


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def window_arg(text: str) -> float:
    """An argparse type: seconds as ``seconds_arg``, or with a unit: ``90s``, ``15m``, ``1h``."""
    t = text.strip()
    if t[-1:] in _UNITS and t[:-1].strip():
        try:
            v = float(t[:-1]) * _UNITS[t[-1]]
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a duration such as 30, 90s, 15m or 1h: {text!r}") from None
        return seconds_arg(repr(v))
    return seconds_arg(t)
