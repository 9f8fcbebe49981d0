"""Text from a host or a file, made safe to show.

Log lines, host names, file names, case titles and knowledge-base text are
written by others. Before any of it reaches a terminal, a Markdown block or a
spreadsheet, it goes through one of these:

- ``printable``: control characters (C0, DEL, C1), and with them every escape
  sequence, and the Unicode controls that reorder or break a line (bidi
  overrides and isolates, line and paragraph separators) are shown as escapes
  (``\\x1b``) instead of acting on the terminal;
- ``md_text``: ``printable`` on one line, with the Markdown characters that
  could break a table or start markup escaped;
- ``csv_cell``: a cell that a spreadsheet could run as a formula (``=``,
  ``+``, ``-``, ``@``, tab or carriage return first) gets a leading quote, as
  the OWASP rule on CSV injection says;
- ``json_text``: JSON with the C1 and line-reordering characters escaped
  (JSON itself escapes C0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["csv_cell", "json_text", "md_text", "printable"]

# C0 but tab and newline, DEL, C1, bidi embeddings/overrides/isolates and marks, line/paragraph separators.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE_LINE = re.compile(f"[\t\n{_UNSAFE}]")
_UNSAFE_MULTI = re.compile(f"[{_UNSAFE}]")
_UNSAFE_JSON = re.compile("[\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    if c == "\t":
        return " "
    if c == "\n":
        return "\\n"
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(text: Any, *, multiline: bool = False) -> str:
    """``text`` (made a string) with every control character shown as an
    escape, so that it cannot move the cursor, retitle the window, hide what
    follows or fake a line. One line unless ``multiline`` (then newlines and
    tabs stay)."""
    s = text if isinstance(text, str) else str(text)
    pattern = _UNSAFE_MULTI if multiline else _UNSAFE_LINE
    return pattern.sub(_escape, s) if pattern.search(s) else s


def md_text(text: Any) -> str:
    """``text`` on one line, safe inside Markdown prose or a table cell:
    control characters escaped, and backslash, backtick, ``*``, ``_``,
    brackets, angle brackets, ``|`` and ``~`` escaped with a backslash."""
    return _MD_SPECIAL.sub(r"\\\1", printable(text))


def csv_cell(text: Any) -> str:
    """``text`` as a spreadsheet cell that cannot be run as a formula: a
    leading ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a ``'``
    in front (OWASP, CSV injection)."""
    s = text if isinstance(text, str) else str(text)
    return "'" + s if s.startswith(_FORMULA_START) else s


def json_text(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON (UTF-8 characters as they are), with the characters a
    terminal would act on escaped: JSON escapes C0 itself; this adds DEL, C1
    and the line-reordering Unicode controls (``\\u009b``). The data is the same."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _UNSAFE_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def host_title(meta: Mapping[str, Any], default: str = "") -> str:
    """A diagnosis's title: its own, "this host" for a probed host, the remote
    host's name and SSH target for one probed over SSH, else ``default``."""
    if meta.get("title"):
        return str(meta["title"])
    if meta.get("ssh"):
        return f"{meta.get('host') or meta['ssh']} (over SSH: {meta['ssh']})"
    return "this host" if meta.get("mode") == "host" else default
