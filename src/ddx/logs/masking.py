"""Generic masking of variable parts of a log message.

One pre-compiled regular expression, applied with a constant replacement
(``re.sub`` with a string runs entirely in C), turns the parts of a message
that are values rather than words into the wildcard ``<*>``. The rules are the
same for every log type: there is no per-dataset configuration.

What is masked, in the order the alternatives are tried at each position:

- URLs (``scheme://...``) and Windows paths (``C:\\...``);
- absolute paths with at least two segments (``/var/lib/x``);
- dates with month names (``Mon Jul  4 12:52:44 2005``) and ISO-8601 times;
- MAC addresses and other colon- or dash-separated hex groups, UUIDs, IPv6;
- IPv4 addresses with an optional port;
- numbers followed by a size or duration unit (``5.2 KB``, ``30 ms``);
- hex numbers (``0x7f``);
- any run of letters and digits that contains a digit (``42``, ``blk_-17``
  becomes ``blk_<*>``, ``test9``, ``KB2656356``), with a leading minus sign.

Words without digits are never masked here: deciding whether a word is a
variable (a user name, a host) is the miner's job, from how many values it
takes at one position. Runs of consecutive wildcard tokens collapse into one,
so a variable-length list of numbers does not change the token count.
"""

from __future__ import annotations

import re

__all__ = ["WILDCARD", "mask"]

WILDCARD = "<*>"

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"

_HEXGROUPS = r"(?:[0-9a-fA-F]{2}[:\-]){3,}[0-9a-fA-F]{2}(?![0-9A-Za-z:])"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_IPV6 = (
    r"(?=[0-9a-fA-F]{0,4}:[0-9a-fA-F]{0,4}:)(?=[0-9a-fA-F:]*\d)"
    r"[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}(?![0-9A-Za-z:])"
)
_UNIT = r"(?:[KMGTP]i?B|[KMGT]|B|bytes|ms|us|µs|ns|s|secs?|min)(?![A-Za-z0-9])"

# The expression is arranged for speed: every rule starts where a run of
# letters and digits starts (one look-behind rejects all other positions), and
# the rules are grouped by the first character so that a plain word costs a
# few character tests.
_MASK_RE = re.compile(
    r"""
    (?<![A-Za-z0-9])
    (?:
      (?=\d)(?:                                                # starts with a digit
          \d{4}-\d\d-\d\d[T\ ]\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:Z|[+\-]\d\d:?\d\d)?   # ISO-8601
        | \d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?              # IPv4[:port]
        | """ + _HEXGROUPS + r"""                                 # MAC, hex groups
        | """ + _UUID + r"""
        | """ + _IPV6 + r"""
        | 0[xX][0-9a-fA-F]+                                     # hex number
        | \d++(?:\.\d+)?\ ?""" + _UNIT + r"""                       # size, duration
        | \d[A-Za-z0-9]*+                                       # number, word with a digit
      )
    | (?=[A-Za-z])(?:                                           # starts with a letter
          (?:""" + _DAY + r""",?\s+)?""" + _MONTH + r"""\s+\d{1,2}(?:,?\s+\d{4})?\s+\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?(?:\s+[A-Z]{3,4})?(?:\s+\d{4})?
        | (?=[a-fA-F]{2}[0-9a-fA-F:\-])(?:""" + _HEXGROUPS + "|" + _UUID + "|" + _IPV6 + r""")
        | [A-Za-z]:\\[^\s"'<>,;]*                                # Windows path
        | [A-Za-z]++(?:
              \d[A-Za-z0-9]*+                                   # word with a digit
            | [A-Za-z0-9+.\-]*+://[^\s"'<>\[\](){},;]*          # URL
          )
      )
    | (?<![\w./~\->])(?:/[^\s/:,;'"()\[\]{}<>=|]++){2,}/?        # absolute path (not glued to a wildcard)
    | -(?:\d++(?:\.\d+)?\ ?""" + _UNIT + r"""|[A-Za-z]*+\d[A-Za-z0-9]*+)  # negative number
    | (?=:[0-9a-fA-F]{0,4}:)""" + _IPV6 + r"""                    # IPv6 starting with ::
    )
    """,
    re.VERBOSE | re.ASCII,  # digits are 0-9: masking twice gives the same text
)
_RUN_RE = re.compile(r"(?<!\S)<\*>(?:[ \t]+<\*>)+(?!\S)")


def mask(message: str) -> str:
    """Return ``message`` with its variable parts replaced by ``<*>``."""
    out = _MASK_RE.sub(WILDCARD, message)
    if "> <" in out:
        out = _RUN_RE.sub(WILDCARD, out)
    return out
