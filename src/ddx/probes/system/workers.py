"""Managers and their workers: who owns whom, who was left behind, who is too many.

Pure rules on a ``ProcTable`` (no I/O); ``ddx.probes.system.procs`` applies them.

The pattern that generalises across pre-fork servers (gunicorn, uwsgi,
php-fpm, Passenger, unicorn, puma, Apache, nginx, postgres) is structural,
not a list of names: a **manager** is a process whose children run the same
program as itself (``program_of``: the title's first word or the script an
interpreter runs); those children are its **workers**. Workers of one manager
share a normalised command line (``ProcTable`` key) and usually a uid.

**Orphaned workers** are processes that look like a manager's workers but are
not its children, in one of two ways:

a. *the manager restarted*: a live manager M exists; process X runs M's
   program with the same normalised command line and uid as M's workers, is
   not M's child, not a manager itself, not M's ancestor, its parent does not
   run that program, it was *adopted* (its parent is init, or its process
   group came from a process that is no longer its parent: ``adopted``), and
   X started **before** M. A daemon with ``ppid 1`` is normal and never matches: it is a
   manager itself, or has no live manager with workers like it, or started
   after it.
b. *the manager is gone*: X's title says it is a worker (``worker_title``,
   e.g. ``gunicorn: worker``, ``nginx: worker process``, ``php-fpm: pool``),
   it is not a manager, its parent does not run its program, and its process
   group leader (``pgid``, inherited from the manager that forked it) is dead
   or a zombie. A service started by systemd or a shell with job control leads
   its own group, so a queue consumer named ``worker`` that runs as a normal
   daemon does not match.

Programs whose children are *sessions* meant to outlive a restart of their
parent (sshd, cron, login shells, terminal multiplexers, container shims) are
never managers or orphans (``session_programs``); nor are shell scripts, which
fork subshells with their own command line all the time.

**Excess**: a manager's group is its countable workers plus the orphans of
rule (a). It is too large when it has more members than the manager's
configured size (a ``--workers``/``-w``/``--processes`` flag on its command
line; nginx ``worker_processes``), or, with no configured size, than the
manager has live children (the orphans are the excess). Pools the user
configures (``pools``: name, regex on the command line, expected count) are
checked as given. A baseline of the group's usual size ("larger than its
recent normal") needs history and is left to a watching daemon.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ddx.probes.parsers.proctable import Proc, ProcTable, argv_words

__all__ = [
    "DEFAULT_SESSION_PROGRAMS",
    "DEFAULT_WORKER_TITLE",
    "Excess",
    "Manager",
    "Orphan",
    "Pool",
    "adopted",
    "countable_workers",
    "find_excess",
    "find_managers",
    "find_orphans",
    "nginx_conf_path",
    "nginx_worker_processes",
    "parse_pools",
    "pool_excess",
    "size_from_cmdline",
]

# Their children are per-login/per-job sessions that legitimately outlive a
# restart of the parent (an sshd restart keeps open sessions, by design).
DEFAULT_SESSION_PROGRAMS: tuple[str, ...] = (
    "sshd",
    "sshd-session",
    "sshd-auth",
    "cron",
    "CRON",
    "crond",
    "atd",
    "anacron",
    "login",
    "su",
    "sudo",
    "bash",
    "sh",
    "dash",
    "zsh",
    "ksh",
    "fish",
    "tmux",
    "screen",
    "SCREEN",
    "systemd",
    "(sd-pam)",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "conmon",
    "runc",
    "tini",
    "dumb-init",
    "make",
    "xargs",
)

# Titles that say "I am a worker of some manager".
DEFAULT_WORKER_TITLE = r"(?i)worker|^php-fpm[\w.-]*: pool |^Passenger (?:RubyApp|AppPreloader)"

# Children of a manager that are helpers, not members of its pool.
_HELPER_TITLE = re.compile(r"(?i)\b(?:mule|spooler|cache manager|cache loader|emperor)\b")


@dataclass(frozen=True)
class Manager:
    proc: Proc
    workers: tuple[Proc, ...]  # live children running the same program

    @property
    def worker_keys(self) -> frozenset[str]:
        return frozenset(w.key for w in self.workers)

    @property
    def worker_uids(self) -> frozenset[int]:
        return frozenset(w.uid for w in self.workers)


@dataclass(frozen=True)
class Orphan:
    proc: Proc
    manager: Proc | None  # the live manager it looks like a worker of; None when that is gone
    reason: str


@dataclass(frozen=True)
class Excess:
    name: str
    count: int
    expected: int
    basis: str  # where ``expected`` comes from
    members: tuple[Proc, ...]
    manager: Proc | None = None


@dataclass(frozen=True)
class Pool:
    """A configured worker pool: processes whose command line matches
    ``pattern`` should number ``expected``."""

    name: str
    pattern: re.Pattern[str]
    expected: int


def parse_pools(raw: Any, where: str = "[probe.procs] pools") -> list[Pool]:
    """Validate the ``pools`` option; errors name the entry and the key."""
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where}: expected a list of tables, got {type(raw).__name__}")
    out: list[Pool] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{at}: expected a table {{name, match, expected}}, got {type(item).__name__}")
        unknown = sorted(set(item) - {"name", "match", "expected"})
        if unknown:
            raise ValueError(f"{at}: unknown key {unknown[0]!r} (known: expected, match, name)")
        match = item.get("match")
        if not isinstance(match, str) or not match:
            raise ValueError(f"{at}: 'match' must be a non-empty regular expression string")
        try:
            pattern = re.compile(match)
        except re.error as exc:
            raise ValueError(f"{at}: 'match' is not a valid regular expression: {exc}") from None
        expected = item.get("expected")
        if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
            raise ValueError(f"{at}: 'expected' must be a whole number >= 0, got {expected!r}")
        name = item.get("name", match)
        if not isinstance(name, str):
            raise ValueError(f"{at}: 'name' must be a string")
        out.append(Pool(name or match, pattern, expected))
    return out


def _cmdline_text(p: Proc) -> str:
    return " ".join(argv_words(p.argv))


_SHELLS = frozenset({"bash", "sh", "dash", "zsh", "ksh", "fish", "busybox", "ash", "mksh", "tcsh", "csh"})


def _shell(p: Proc) -> bool:
    """A shell script: it forks subshells with its own command line all the
    time, which is not a worker pool."""
    words = argv_words(p.argv)
    return bool(words) and words[0].lstrip("-").rsplit("/", 1)[-1] in _SHELLS


def adopted(table: ProcTable, x: Proc) -> bool:
    """Was ``x`` adopted (by init or a subreaper) rather than started by its
    parent? Its parent is init; or its process group is neither its own, nor
    its parent's, nor that of a sibling (a shell pipeline): the group came from
    the process that forked it, which is no longer its parent."""
    if x.ppid == 1:
        return True
    parent = table.get(x.ppid)
    if parent is None or x.pgid in (x.pid, parent.pgid, 0):
        return False
    leader = table.get(x.pgid)
    return not (leader is not None and not leader.zombie and leader.ppid == x.ppid)


def find_managers(table: ProcTable, session_programs: Iterable[str] = DEFAULT_SESSION_PROGRAMS) -> list[Manager]:
    """Processes (not init, not kernel threads, not session programs, not
    shell scripts) with at least one live child running their own program."""
    skip = frozenset(session_programs)
    out = []
    for p in table.user_procs():
        if p.pid == 1 or p.zombie or p.program in skip or not p.program or _shell(p):
            continue
        kids = tuple(
            c for c in table.children(p.pid) if not c.zombie and not c.kernel_thread and c.program == p.program
        )
        if kids:
            out.append(Manager(p, kids))
    return out


def _ancestors(table: ProcTable, pid: int) -> set[int]:
    seen: set[int] = set()
    p = table.get(pid)
    while p is not None and p.ppid not in seen and p.ppid > 0:
        seen.add(p.ppid)
        p = table.get(p.ppid)
    return seen


def find_orphans(
    table: ProcTable,
    managers: list[Manager],
    session_programs: Iterable[str] = DEFAULT_SESSION_PROGRAMS,
    worker_title: str | re.Pattern[str] = DEFAULT_WORKER_TITLE,
) -> list[Orphan]:
    """Orphaned workers by rules (a) and (b) of the module docstring."""
    skip = frozenset(session_programs)
    title_re = re.compile(worker_title) if isinstance(worker_title, str) else worker_title
    manager_pids = {m.proc.pid for m in managers}
    by_program: dict[str, list[Proc]] = {}
    for p in table.user_procs():
        by_program.setdefault(p.program, []).append(p)
    found: dict[int, Orphan] = {}
    for m in managers:
        mp = m.proc
        keys, uids = m.worker_keys, m.worker_uids
        above = _ancestors(table, mp.pid)
        for x in by_program.get(mp.program, ()):
            if (
                x.pid in found
                or x.zombie
                or x.pid == mp.pid
                or x.ppid == mp.pid
                or x.pid in manager_pids
                or x.pid in above
                or x.program != mp.program
                or x.key not in keys
                or x.uid not in uids
                or x.starttime >= mp.starttime
            ):
                continue
            parent = table.get(x.ppid)
            if parent is not None and parent.program == mp.program:
                continue  # it has a live manager of its own
            if not adopted(table, x):
                continue  # started by its parent: another instance, not a leftover
            found[x.pid] = Orphan(x, mp, f"started before manager {mp.pid} (restarted); adopted by {x.ppid}")
    for x in table.user_procs():
        if x.pid in found or x.zombie or x.pid in manager_pids or x.pid == 1 or x.program in skip or _shell(x):
            continue
        if not title_re.search(_cmdline_text(x)):
            continue
        if x.pgid in (0, x.pid):
            continue
        leader = table.get(x.pgid)
        if leader is not None and not leader.zombie:
            continue
        parent = table.get(x.ppid)
        if parent is not None and parent.program == x.program:
            continue
        found[x.pid] = Orphan(x, None, f"its process group leader {x.pgid} is gone; adopted by {x.ppid}")
    return sorted(found.values(), key=lambda o: o.proc.pid)


def countable_workers(m: Manager) -> tuple[Proc, ...]:
    """The manager's pool members: its same-program children without helpers
    (uwsgi mules and spoolers, nginx cache manager/loader)."""
    if m.proc.program == "nginx":
        return tuple(w for w in m.workers if "worker process" in w.title(200))
    return tuple(w for w in m.workers if not _HELPER_TITLE.search(w.title(200)))


# Command-line flags giving a pre-fork server's pool size.
_SIZE_FLAGS: dict[str, tuple[str, ...]] = {
    "gunicorn": ("-w", "--workers"),
    "uwsgi": ("-p", "--processes", "--workers"),
    "puma": ("-w", "--workers"),
}


def size_from_cmdline(p: Proc) -> tuple[int, str] | None:
    """``(workers, "gunicorn --workers 4")`` when the manager's command line
    states its pool size; None when it does not (a title hides the flags)."""
    flags = _SIZE_FLAGS.get(p.program)
    if not flags:
        return None
    words = argv_words(p.argv)
    for i, w in enumerate(words):
        value: str | None = None
        used = w
        if w in flags and i + 1 < len(words):
            value = words[i + 1]
        else:
            for f in flags:
                if w.startswith(f + "="):
                    value, used = w[len(f) + 1 :], f
                elif not f.startswith("--") and w.startswith(f) and w[len(f) :].isdigit():
                    value, used = w[len(f) :], f
        if value is not None and value.isdigit():
            return int(value), f"{p.program} {used} {value}"
    return None


_NGINX_WP = re.compile(r"^\s*worker_processes\s+([^;\s]+)\s*;", re.M)


def nginx_worker_processes(conf_text: str, ncpu: int) -> int | None:
    """``worker_processes`` of an nginx main config (``auto``: the CPU count;
    absent: nginx's default of 1). None when the value is unreadable."""
    text = re.sub(r"#[^\n]*", "", conf_text)
    m = _NGINX_WP.search(text)
    if not m:
        return 1
    val = m.group(1)
    if val == "auto":
        return ncpu
    return int(val) if val.isdigit() else None


def nginx_conf_path(p: Proc) -> str:
    """The config the nginx master was started with (``-c PATH``), else the default."""
    words = argv_words(p.argv)
    for i, w in enumerate(words):
        if w == "-c" and i + 1 < len(words):
            return words[i + 1]
    return "/etc/nginx/nginx.conf"


def find_excess(
    table: ProcTable,
    managers: list[Manager],
    orphans: list[Orphan],
    sizes: Mapping[int, tuple[int, str]] | None = None,
) -> list[tuple[Manager, Excess | None]]:
    """For each manager: its group and, when too large, the ``Excess``.
    ``sizes`` maps manager pid to its configured size and where it comes from
    (command line, config file); without one the live children are the norm."""
    sizes = sizes or {}
    by_manager: dict[int, list[Proc]] = {}
    for o in orphans:
        if o.manager is not None:
            by_manager.setdefault(o.manager.pid, []).append(o.proc)
    out: list[tuple[Manager, Excess | None]] = []
    for m in managers:
        pool = countable_workers(m)
        if not pool:
            continue
        extra = tuple(by_manager.get(m.proc.pid, ()))
        members = extra + pool  # the leftovers first: they are the excess
        if m.proc.pid in sizes:
            expected, basis = sizes[m.proc.pid]
        else:
            expected, basis = len(pool), f"manager {m.proc.pid}'s live children"
        name = f"{m.proc.program} workers of {m.proc.pid}"
        exc = Excess(name, len(members), expected, basis, members, m.proc) if len(members) > expected else None
        out.append((m, exc))
    return out


def pool_excess(table: ProcTable, pools: list[Pool]) -> list[tuple[Pool, Excess]]:
    """Each configured pool with its members (``Excess.count``); the caller
    compares ``count`` with ``expected``."""
    out = []
    for pool in pools:
        members = tuple(
            p for p in table.user_procs() if not p.zombie and p.argv and pool.pattern.search(_cmdline_text(p))
        )
        out.append((pool, Excess(pool.name, len(members), pool.expected, "configured pool", members)))
    return out
