"""Reading files through a Host: globs, bounded reads, existence. One helper each."""

from __future__ import annotations

import fnmatch
import posixpath
import stat as stat_mod

from ddx.host import Host, StatResult
from ddx.host.batch import listdir_each, stat_each

__all__ = ["MAX_CONFIG_BYTES", "expand_glob", "has_glob", "is_dir", "is_file", "read_capped", "stat_or_none", "why"]

MAX_GLOB = 200  # paths one glob may expand to
MAX_CONFIG_BYTES = 1 << 20  # a configuration file read at most (a generated one may be big; more is not config)


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def why(exc: BaseException) -> str:
    """An exception as a short reason: ``Permission denied``, ``timed out after 2s``."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def stat_or_none(host: Host, path: str) -> StatResult | None:
    try:
        return host.stat(path)
    except (OSError, LookupError, TimeoutError):
        return None


def is_file(host: Host, path: str) -> bool:
    st = stat_or_none(host, path)
    return st is not None and stat_mod.S_ISREG(st.mode)


def is_dir(host: Host, path: str) -> bool:
    st = stat_or_none(host, path)
    return st is not None and stat_mod.S_ISDIR(st.mode)


def expand_glob(host: Host, pattern: str, limit: int = MAX_GLOB, *, files_only: bool = False) -> list[str]:
    """Paths matching an absolute shell glob (``*``, ``?``, ``[..]`` in any
    component), found with the host's ``listdir``; hidden names match only a
    pattern that starts with a dot (shell rules). Sorted, at most ``limit``.
    A pattern without wildcards is returned as is (whether it exists or not),
    unless ``files_only``, which keeps only regular files that exist."""
    if not has_glob(pattern):
        return [pattern] if not files_only or is_file(host, pattern) else []
    parts = [p for p in pattern.split("/") if p]
    found = ["/"]
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        nxt: list[str] = []
        if not has_glob(part):
            nxt = [posixpath.join(base, part) for base in found]
        else:  # every folder of this level listed in one batched call (ddx.host.batch)
            for base, names in zip(found, listdir_each(host, found)):
                if isinstance(names, BaseException):
                    continue
                nxt.extend(posixpath.join(base, n) for n in names if fnmatch.fnmatchcase(n, part)
                           and (part.startswith(".") or not n.startswith(".")))
                if len(nxt) > limit * 4 and not last:
                    break
        found = nxt[: limit * 4]
        if not found:
            return []
    out = sorted(found)
    if files_only:
        out = [p for p, st in zip(out, stat_each(host, out))
               if not isinstance(st, BaseException) and stat_mod.S_ISREG(st.mode)]
    return out[:limit]


def read_capped(host: Host, path: str, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """A configuration file's text (its first ``max_bytes``); raises as the host does."""
    return host.read_text(path, max_bytes=max_bytes)
