"""Reading YAML and JSON that other people wrote, within limits.

Case files, knowledge-base folders and bundles come from colleagues, from the
internet, or from someone who planted them for ddx to read as root. A parser
builds whatever the text describes: an alias expanded a billion times ("billion
laughs") takes tens of gigabytes as soon as anything walks it, and lists nested
fifty thousand deep crash the C YAML loader and overflow every recursive walk.
So the text is checked before any object is built: its size, its nesting depth,
and for YAML how many nodes it makes once every alias is followed. Every reader
of such input goes through this module, so the limits are the same everywhere.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import yaml

__all__ = [
    "MAX_ALIASES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_JSON_VALUES",
    "MAX_YAML_NODES",
    "LoadError",
    "check_json",
    "check_yaml",
    "compose_yaml",
    "load_json",
    "load_yaml",
    "read_limited",
]

MAX_FILE_BYTES = 1 << 20  # a case file or a knowledge-base file: ours are a few KiB
MAX_DEPTH = 64  # nesting of lists and mappings; ours go a handful of levels deep
MAX_YAML_NODES = 200_000  # nodes of one YAML text with every alias expanded
MAX_ALIASES = 1_000  # aliases in one YAML text (ours use none)
MAX_JSON_VALUES = 1_000_000  # values in one JSON text (a bundle's calls.json holds tens of thousands)

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# A JSON string (escapes included); the rest of a JSON text has no quote marks.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_EMPTY_PAIR = re.compile(r"\[\]|\{\}")


class LoadError(ValueError):
    """A text that cannot be read or exceeds a limit. ``reason`` says why in a
    few words; ``line`` (1-based) says where when known."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason, self.line = reason, line
        super().__init__(f"line {line}: {reason}" if line else reason)


def read_limited(path: str | os.PathLike[str], limit: int = MAX_FILE_BYTES) -> str:
    """The UTF-8 text of ``path``, a regular file of at most ``limit`` bytes
    (``ddx.readfile.read_regular``: ``/dev/zero``, a FIFO or a huge file cost
    nothing). ``LoadError`` when it is not one; ``OSError`` and
    ``UnicodeDecodeError`` pass through for the caller to word."""
    from ddx.readfile import FileRefused, read_regular

    try:
        return read_regular(path, limit).decode("utf-8")
    except FileRefused as exc:
        raise LoadError(f"it {exc}") from None


def _yaml_problem(exc: yaml.YAMLError) -> LoadError:
    mark = getattr(exc, "problem_mark", None)
    lines = str(exc).splitlines()
    reason = getattr(exc, "problem", None) or (lines[0] if lines else type(exc).__name__)
    return LoadError(reason, mark.line + 1 if mark else None)


def check_yaml(text: str) -> None:
    """Raise ``LoadError`` if building ``text`` would nest deeper than
    ``MAX_DEPTH``, use more than ``MAX_ALIASES`` aliases, make more than
    ``MAX_YAML_NODES`` nodes with aliases expanded, or hold an alias inside
    the node it names (a structure that contains itself). Only parser events
    are looked at, and the scan stops at the first excess, so a bomb costs
    what its first few events cost."""
    weights: dict[str, int] = {}  # anchor -> nodes it stands for
    frames: list[list[Any]] = []  # open collections: [anchor, nodes so far]
    total = aliases = 0
    try:
        for ev in yaml.parse(text, Loader=_LOADER):
            line = ev.start_mark.line + 1 if ev.start_mark else None
            if isinstance(ev, yaml.CollectionStartEvent):
                if len(frames) >= MAX_DEPTH:
                    raise LoadError(f"nested deeper than {MAX_DEPTH} levels", line)
                frames.append([ev.anchor, 1])
                n = 1
            elif isinstance(ev, yaml.CollectionEndEvent):
                anchor, size = frames.pop()
                if anchor is not None:
                    weights[anchor] = size
                if frames:
                    frames[-1][1] += size
                continue
            elif isinstance(ev, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_ALIASES:
                    raise LoadError(f"more than {MAX_ALIASES} aliases", line)
                if any(f[0] == ev.anchor for f in frames):
                    raise LoadError(f"alias *{ev.anchor} is inside the node it names", line)
                n = weights.get(ev.anchor, 1)  # an unknown anchor: the loader says so
            elif isinstance(ev, yaml.ScalarEvent):
                n = 1
                if ev.anchor is not None:
                    weights[ev.anchor] = 1
            else:
                continue
            if frames and not isinstance(ev, yaml.CollectionStartEvent):
                frames[-1][1] += n
            total += n
            if total > MAX_YAML_NODES:
                raise LoadError(f"more than {MAX_YAML_NODES} nodes once its aliases are expanded", line)
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc) from None


def load_yaml(text: str) -> Any:
    """The value of one YAML document (safe tags only), after ``check_yaml``.
    Every failure is a ``LoadError``."""
    check_yaml(text)
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
        raise LoadError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


def compose_yaml(text: str) -> yaml.Node | None:
    """The node tree of one YAML document (with lines, for messages), after
    ``check_yaml``. Every failure is a ``LoadError``."""
    check_yaml(text)
    try:
        return yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise _yaml_problem(exc) from None


def check_json(text: str) -> None:
    """Raise ``LoadError`` if ``text`` nests deeper than ``MAX_DEPTH`` or
    holds more than ``MAX_JSON_VALUES`` values. Works on the text alone (the
    strings cut out, then the brackets paired off a level at a time), so a
    bomb is refused before the parser builds or recurses into anything. A
    text that is not JSON is left for the parser to word."""
    skeleton = _JSON_STRING.sub('""', text)
    values = skeleton.count(",") + skeleton.count("[") + skeleton.count("{") + 1
    if values > MAX_JSON_VALUES:
        raise LoadError(f"more than {MAX_JSON_VALUES} values")
    brackets = _NOT_BRACKET.sub("", skeleton)
    for _ in range(MAX_DEPTH):
        if not brackets:
            return
        shorter = _EMPTY_PAIR.sub("", brackets)
        if len(shorter) == len(brackets):  # unbalanced: not JSON
            return
        brackets = shorter
    if brackets and _EMPTY_PAIR.search(brackets):
        raise LoadError(f"nested deeper than {MAX_DEPTH} levels")


def load_json(text: str | bytes) -> Any:
    """The value of a JSON text (bytes are UTF-8), after ``check_json``.
    Every failure is a ``LoadError``."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not UTF-8 (byte {exc.start})") from None
    check_json(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LoadError(f"{exc.msg} (column {exc.colno})", exc.lineno) from None
    except (ValueError, RecursionError) as exc:  # an integer of 5,000 digits
        raise LoadError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
