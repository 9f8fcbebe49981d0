"""Permission errors checked against the file system: may the service's user use the path?

A "Permission denied" line says a service failed; it does not say why. An SRE
takes the path from the message and checks it against the user the service
runs as (``namei -l PATH``; ``sudo -u USER test -w DIR``). This module holds the
pure parts of that check, so tests feed them samples:

- ``denied_path(line)``: the absolute path a permission error names, the one
  nearest the words "Permission denied" / EACCES (Python ``[Errno 13] Permission
  denied: '/srv/cache/x'``, nginx ``open() "/srv/x" failed (13: Permission denied)``,
  PHP ``file_put_contents(/srv/x): failed to open stream``, coreutils
  ``/srv/x: Permission denied``);
- ``parse_creds(status)``: the file-system uid, gid and groups of a process from
  ``/proc/PID/status``;
- ``access_problem(path, stats, creds)``: what keeps those credentials from
  the path, from the ``stat`` of the path and each of its ancestors: search
  permission on every directory on the way, and for the path itself read and
  write (the failed operation is unknown, and had the process had both it would
  not have been refused), or write and search on its folder when it does not
  exist (a file being created).

Only the owner/group/other mode bits are judged: ACLs, SELinux or AppArmor may
deny what the bits allow (then the check finds nothing, which it says), and root
(file-system uid 0) passes every check, as with CAP_DAC_OVERRIDE.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Creds", "access_problem", "ancestors", "denied_path", "parse_creds", "parse_names"]

_DENIED = re.compile(r"Permission denied|\bEACCES\b|failed to open stream|is not writable|Unable to write in",
                     re.IGNORECASE)
_CANDIDATES = (
    re.compile(r"""(['"`])(/[^'"`\n]{0,4095}?)\1"""),  # '/path' "/path"
    re.compile(r"\((/[^()\s,]{1,4095})\)"),  # fopen(/path)
    re.compile(r"(?:^|[\s:])(/[^\s:'\"()]{1,4095}):\s*(?:Permission denied|EACCES)", re.IGNORECASE),  # /path: ...
)


def denied_path(line: str) -> str | None:
    """The absolute path a permission-error line names (nearest to the words of the
    error), or None when it names none."""
    m = _DENIED.search(line)
    if m is None:
        return None
    found: list[tuple[int, str]] = []
    for rx in _CANDIDATES:
        for c in rx.finditer(line):
            path = c.group(c.lastindex or 0)
            if "//" in path or path.rstrip("/") == "" or " " in path.strip():
                continue  # a URL's tail, "/" itself, or prose in quotes
            start, end = c.span(c.lastindex or 0)
            dist = m.start() - end if end <= m.start() else start - m.end() if start >= m.end() else 0
            found.append((abs(dist), path.rstrip("/")))
    if not found:
        return None
    return min(found)[1]


def ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/", "/a", "/a/b"]``."""
    parts = [p for p in path.split("/") if p]
    return ["/"] + ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]


@dataclass(frozen=True)
class Creds:
    """The credentials the kernel checks file access with (fsuid/fsgid and groups)."""

    uid: int
    gid: int
    groups: frozenset[int] = frozenset()


def parse_creds(status: str) -> Creds:
    """The file-system uid and gid (fourth fields of ``Uid:``/``Gid:``) and ``Groups:``
    of ``/proc/PID/status``; ValueError when they are missing."""
    fields: dict[str, list[str]] = {}
    for line in status.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.split()
    try:
        uid, gid = int(fields["Uid"][-1]), int(fields["Gid"][-1])
        groups = frozenset(int(g) for g in fields.get("Groups", []))
    except (KeyError, IndexError, ValueError):
        raise ValueError("/proc/PID/status: no readable Uid/Gid lines") from None
    return Creds(uid, gid, groups)


def parse_names(text: str) -> dict[int, str]:
    """id -> name from /etc/passwd or /etc/group text (malformed lines skipped)."""
    out: dict[int, str] = {}
    for line in text.splitlines():
        f = line.split(":")
        if len(f) >= 3 and f[2].isdigit():
            out.setdefault(int(f[2]), f[0])
    return out


class _Stat(Protocol):
    @property
    def mode(self) -> int: ...
    @property
    def uid(self) -> int: ...
    @property
    def gid(self) -> int: ...


_DIR = 0o040000
_FMT = 0o170000


def _allows(st: _Stat, creds: Creds, want: int) -> bool:
    if creds.uid == 0:
        return True
    if st.uid == creds.uid:
        bits = (st.mode >> 6) & 7
    elif st.gid == creds.gid or st.gid in creds.groups:
        bits = (st.mode >> 3) & 7
    else:
        bits = st.mode & 7
    return bits & want == want


def _describe(path: str, st: _Stat, users: Mapping[int, str], groups: Mapping[int, str]) -> str:
    owner = users.get(st.uid, str(st.uid))
    group = groups.get(st.gid, str(st.gid))
    return f"{path} (owner {owner}:{group}, mode {st.mode & 0o7777:04o})"


def access_problem(path: str, stats: Mapping[str, _Stat | None], creds: Creds, *,
                   users: Mapping[int, str] | None = None, groups: Mapping[int, str] | None = None) -> str | None:
    """Why ``creds`` cannot use ``path``, or None when the mode bits allow it (or the
    question cannot be answered: an ancestor is missing from ``stats``). ``stats``
    maps the path and each ancestor to its stat, None for one that does not exist."""
    users = users or {}
    groups = groups or {}
    chain = ancestors(path)
    for d in chain:
        st = stats.get(d)
        if st is None:
            return None  # a missing folder: ENOENT, not EACCES; or not looked at
        if not _allows(st, creds, 1):
            return f"cannot enter {_describe(d, st, users, groups)}: no search (x) permission"
    target = stats.get(path)
    parent = chain[-1]
    if target is None:
        pst = stats[parent]
        if pst is None:  # checked in the loop above
            return None
        if not _allows(pst, creds, 2 | 1):
            return f"cannot create files in {_describe(parent, pst, users, groups)}: no write permission"
        return None
    want = 4 | 2 | (1 if target.mode & _FMT == _DIR else 0)
    if not _allows(target, creds, want):
        missing = "".join(c for bit, c in ((4, "r"), (2, "w"), (1, "x"))
                          if want & bit and not _allows(target, creds, bit))
        kind = "folder" if target.mode & _FMT == _DIR else "file"
        return f"cannot use the {kind} {_describe(path, target, users, groups)}: no {missing} permission"
    return None
