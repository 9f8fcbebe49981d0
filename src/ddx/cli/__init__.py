"""The ddx command line: a thin shell over the library.

Each command lives in its own module with a ``register(subparsers)`` function
that adds its parser and sets ``func``. Modules import what they need inside
their functions, so ``ddx --help`` and ``ddx diagnose --case`` stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from typing import NoReturn

from ddx import __version__
from ddx.errors import DdxError

# Command modules, in the order `ddx --help` lists them.
COMMAND_MODULES = ("diagnose", "fleet", "inventory", "collect", "kb", "findings", "logs", "drill", "watch", "incident", "serve")

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


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (exit 2), like ddx's own."""

    def error(self, message: str) -> NoReturn:
        from ddx.host.redact import redact_text
        from ddx.render.safe import printable

        # The message may quote an argument: a URL with a password, a control character.
        self.exit(2, f"{self.prog}: error: {printable(redact_text(message))} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="ddx", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"ddx {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"ddx.cli.{name}").register(sub)
    return parser


def _say(message: str) -> None:
    """One message on stderr, its control characters shown as escapes, secrets it
    may quote (a URL's password) masked; nothing if stderr is gone."""
    from ddx.host.redact import redact_text
    from ddx.render.safe import printable

    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(f"ddx: {printable(redact_text(message), multiline=True)}", file=sys.stderr, flush=True)


def _kill_children() -> None:
    """Kill the commands the probes started that still run (only if any could have been started)."""
    live = sys.modules.get("ddx.host.live")
    if live is not None:
        live.kill_children()


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every way out goes through here: an error is one line
    on stderr (exit 2 for bad input, 1 at run time, 128 + N on signal N), the
    output is flushed and checked, and no command started by a probe survives."""
    from ddx.cli.output import silence_stdout
    from ddx.cli.stop import Stopped, StopSignals

    signals = StopSignals()
    try:
        return _run(argv)
    except Stopped as exc:  # also when the signal came while another error was being reported
        _say(f"stopped by {exc}")
        silence_stdout()
        return 128 + exc.signum
    finally:
        signals.quiet()  # a flood of signals cannot interrupt the cleanup
        _kill_children()
        signals.restore()


def _run(argv: list[str] | None) -> int:
    """Parse the arguments, run the command, flush its output; errors as one line."""
    from ddx.cli.output import OutputError, finish_stdout, guard_stdout, silence_stdout

    debug = False
    try:
        guard_stdout()
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            debug = bool(getattr(args, "debug", False))
            if not getattr(args, "func", None):
                parser.print_help()
                code = 2
            else:
                code = int(args.func(args) or 0)
        except SystemExit as exc:  # argparse after --help, --version or a usage error: flushed like the rest
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finish_stdout()
        return code
    except DdxError as exc:
        if isinstance(exc, OutputError):
            silence_stdout()
        elif debug:
            raise
        _say(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:  # SIGINT when ddx could not catch it (not the main thread)
        _say("interrupted")
        silence_stdout()
        return 130
    except BrokenPipeError:
        silence_stdout()  # the reader went away (| head): not an error
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: still one line, the traceback with --debug
        if debug:
            raise
        _say(f"internal error: {type(exc).__name__}: {exc} (a bug in ddx; --debug shows the traceback)")
        return 1
