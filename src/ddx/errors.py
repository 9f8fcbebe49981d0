"""The ddx error tree.

Every error ddx raises on purpose is a ``DdxError``; the CLI prints its message
as one line on stderr and exits with its ``exit_code`` (``--debug`` shows the
traceback)::

    DdxError                    exit 1, something went wrong at run time
    +-- UsageError              exit 2, bad input from the person or a file
        +-- KBError             a knowledge-base file is invalid (lists every problem)
        +-- CaseError           a case file is unreadable or names unknown findings
        +-- ConfigError         ddx.toml / --config is invalid
    +-- ProbeError              a probe could not read its evidence (never fatal to a run)
    +-- SshError                exit 2, a remote host could not be reached or read over SSH
"""

from __future__ import annotations

__all__ = ["CaseError", "ConfigError", "DdxError", "KBError", "ProbeError", "SshError", "UsageError"]


class DdxError(Exception):
    """Base class of every error ddx raises on purpose."""

    exit_code = 1


class UsageError(DdxError):
    """Bad input from the person running ddx or from a file they named."""

    exit_code = 2


class KBError(UsageError):
    """One or more knowledge-base files are invalid.

    ``problems`` holds every problem found, each naming file, line and field,
    so that a user fixes them all in one go.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in the knowledge base:" if len(self.problems) > 1 else ""
        super().__init__("\n".join([head, *self.problems]) if head else self.problems[0])


class CaseError(UsageError):
    """A case file (or --saw/--ruled-out input) is unusable."""


class ConfigError(UsageError):
    """The configuration file is invalid."""


class ProbeError(DdxError):
    """A probe could not collect its evidence. Its findings stay unknown."""


class SshError(DdxError):
    """A remote host could not be reached or read over SSH: one line naming the
    target and ssh's reason (``ssh root@db1: connection refused``)."""

    exit_code = 2
