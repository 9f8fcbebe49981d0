"""An nginx configuration as the running master was started with it, includes followed.

One reader for the inventory and the probes that judge nginx (``http`` for
access logs, status pages and capacity; ``drift`` for upstreams and the
addresses it names): the master's ``-c`` (relative to ``-p``), else the
default, with every ``include`` expanded in place (globs sorted, each file
once, at most ``MAX_FILES`` files and ``MAX_DEPTH`` levels). Nothing is
executed: ``nginx -T`` would open, and may create, the log files it names.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from ddx.host import Host
from ddx.inventory.files import MAX_CONFIG_BYTES, expand_glob, has_glob, why
from ddx.probes.parsers.endpoints import (
    Endpoint,
    Upstream,
    parse_nginx,
    without_upstream_names,
)
from ddx.probes.parsers.httpparse import Stmt, parse_nginx_conf

__all__ = ["DEFAULT_CONF", "DEFAULT_PREFIX", "MAX_DEPTH", "MAX_FILES", "NginxTree", "nginx_paths", "read_nginx"]

DEFAULT_CONF = "/etc/nginx/nginx.conf"
DEFAULT_PREFIX = "/usr/share/nginx/"  # Debian's --prefix; relative paths in the configuration resolve against it
MAX_FILES = 200
MAX_DEPTH = 8


@dataclass
class NginxTree:
    """The expanded configuration: statements, the files read (main first)
    with their modification times, the addresses and upstream blocks they
    name, and what could not be read."""

    main: str
    prefix: str
    stmts: list[Stmt] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    mtimes: dict[str, float] = field(default_factory=dict)
    endpoints: list[Endpoint] = field(default_factory=list)
    upstreams: list[Upstream] = field(default_factory=list)
    http_upstreams: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def addresses(self) -> list[Endpoint]:
        """Dependency addresses, without ``*_pass`` targets that name an upstream block."""
        return without_upstream_names(self.endpoints, self.upstreams)


def _opt_after(args: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag) and len(a) > len(flag) and not a.startswith("--"):
            return a[len(flag):]
    return None


def nginx_paths(argv: Sequence[str]) -> tuple[str, str, str]:
    """(main configuration, prefix, how the configuration was named) from a
    master's command line (``nginx: master process /usr/sbin/nginx -p P -c C``)."""
    words = [w for a in argv for w in (a.split() if " " in a and len(argv) == 1 else [a])]
    prefix = _opt_after(words, "-p") or DEFAULT_PREFIX
    conf = _opt_after(words, "-c")
    how = "-c" if conf else "default"
    conf = conf or DEFAULT_CONF
    if not conf.startswith("/"):
        conf = posixpath.join(prefix, conf)
    return conf, prefix if prefix.endswith("/") else prefix + "/", how


def read_nginx(host: Host, main: str, prefix: str = DEFAULT_PREFIX) -> NginxTree:
    """Read ``main`` and everything it includes; never raises (problems are listed)."""
    tree = NginxTree(main, prefix)
    conf_dir = posixpath.dirname(main)
    seen: set[str] = set()

    def load(path: str, depth: int) -> list[Stmt]:
        if path in seen or len(seen) >= MAX_FILES or depth > MAX_DEPTH:
            return []
        seen.add(path)
        try:
            text = host.read_text(path, max_bytes=MAX_CONFIG_BYTES)
        except FileNotFoundError:
            tree.problems.append(f"{path}: no such file" + (" (included)" if depth else ""))
            return []
        except (OSError, LookupError, TimeoutError) as exc:
            tree.problems.append(f"{path}: {why(exc)}")
            return []
        tree.files.append(path)
        try:
            tree.mtimes[path] = host.stat(path).mtime
        except (OSError, LookupError, TimeoutError):
            pass
        conf = parse_nginx(text, path)
        tree.endpoints.extend(conf.endpoints)
        tree.upstreams.extend(conf.upstreams)
        tree.http_upstreams.update(conf.http_upstreams)
        return expand(parse_nginx_conf(text, path), depth)

    def expand(stmts: Sequence[Stmt], depth: int) -> list[Stmt]:
        out: list[Stmt] = []
        for s in stmts:
            if s.name == "include" and s.args:
                pat = s.args[0] if s.args[0].startswith("/") else posixpath.join(conf_dir, s.args[0])
                files = expand_glob(host, pat, files_only=True) if has_glob(pat) else [pat]
                for f in files:
                    out += load(f, depth + 1)
            elif s.block is not None:
                out.append(Stmt(s.name, s.args, tuple(expand(s.block, depth)), s.file, s.line))
            else:
                out.append(s)
        return out

    tree.stmts = load(main, 0)
    return tree
