"""The process table: parse ``/proc/PID/*`` text into values, group processes.

Pure functions on text, no I/O: ``ddx.probes.system.procs`` and ``ddx.probes.system.fds``
read the files through a ``Host`` and feed them here; tests feed samples.

What a process is known by:

- ``program``: what runs, independent of paths, arguments and titles. It is
  the first word of the command line (basename, trailing ``:`` dropped), so
  both ``/usr/bin/gunicorn -w 4 app:app`` and the titles a pre-fork server
  gives its processes (``gunicorn: worker [app]``, ``nginx: worker process``,
  ``php-fpm: pool www``, ``postgres: 15/main: checkpointer``) give the same
  program. For an interpreter (python, ruby, perl, node, php, shells) it is the
  script or ``-m`` module it runs: ``python3 /srv/app/run.py`` is ``run.py``.
  ``comm`` is not used: setproctitle changes it (``gunicorn: maste``) and it
  differs between versions (``php-fpm8.2``).
- ``normalised command line``: the command line with the program's directory
  dropped and every run of digits in the arguments replaced by ``N``, so that
  ``unicorn worker[0]`` and ``unicorn worker[3]``, or ``puma: cluster worker 1:
  812`` and ``... 2: 812``, fall into one group while two applications in
  different directories stay apart.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from ddx.units import duration

__all__ = [
    "CpuTimes",
    "Group",
    "Limit",
    "Proc",
    "ProcTable",
    "StatInfo",
    "StatusInfo",
    "argv_words",
    "clk_tck",
    "group_processes",
    "normalise_cmdline",
    "parse_cmdline",
    "parse_cpu_times",
    "parse_file_nr",
    "parse_limits",
    "parse_loadavg_tasks",
    "parse_stat",
    "parse_status",
    "parse_uptime",
    "program_of",
]

PF_KTHREAD = 0x00200000  # task flag of kernel threads (include/linux/sched.h)


def clk_tck() -> int:
    """Clock ticks per second of the times in ``/proc/PID/stat`` (USER_HZ: 100
    on every mainstream Linux architecture; asked of the OS when possible)."""
    try:
        return int(os.sysconf("SC_CLK_TCK")) or 100
    except (ValueError, OSError, AttributeError):
        return 100


# --- /proc/PID/stat ------------------------------------------------------------------


@dataclass(frozen=True)
class StatInfo:
    """The fields of ``/proc/PID/stat`` ddx uses. Times are in clock ticks;
    ``starttime`` counts from boot."""

    pid: int
    comm: str
    state: str
    ppid: int
    pgid: int
    sid: int
    flags: int
    utime: int
    stime: int
    threads: int
    starttime: int
    rss_pages: int

    @property
    def kernel_thread(self) -> bool:
        return bool(self.flags & PF_KTHREAD) or self.pid == 2 or self.ppid == 2


def parse_stat(text: str) -> StatInfo:
    """One ``/proc/PID/stat`` line. ``comm`` may hold spaces and parentheses,
    so the fields after it are found from the *last* ``)``."""
    open_ = text.find("(")
    close = text.rfind(")")
    if open_ < 0 or close < open_:
        raise ValueError(f"/proc/PID/stat: no '(comm)' in {text[:60]!r}")
    try:
        pid = int(text[:open_].strip())
        rest = text[close + 1 :].split()
        return StatInfo(
            pid=pid,
            comm=text[open_ + 1 : close],
            state=rest[0],
            ppid=int(rest[1]),
            pgid=int(rest[2]),
            sid=int(rest[3]),
            flags=int(rest[6]),
            utime=int(rest[11]),
            stime=int(rest[12]),
            threads=int(rest[17]),
            starttime=int(rest[19]),
            rss_pages=int(rest[21]),
        )
    except (IndexError, ValueError):
        raise ValueError(f"/proc/PID/stat: unexpected content {text[:80]!r}") from None


# --- /proc/PID/status ----------------------------------------------------------------


@dataclass(frozen=True)
class StatusInfo:
    """What ``/proc/PID/status`` adds to stat: the real uid, the size of the fd
    table (an upper bound of the open fds, always a power of two >= 64 for a
    user process), the thread count and the resident memory."""

    name: str
    uid: int
    fdsize: int
    threads: int
    kernel_thread: bool = False
    rss: int | None = None  # VmRSS in bytes; None without the line (kernel threads, zombies)


def parse_status(text: str) -> StatusInfo:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        uid = int(fields["Uid"].split()[0])
    except (KeyError, IndexError, ValueError):
        raise ValueError("/proc/PID/status: no readable 'Uid:' line") from None

    def num(key: str) -> int:
        try:
            return int(fields.get(key, "0").split()[0])
        except (IndexError, ValueError):
            return 0

    kthread = fields.get("Kthread", "0") == "1" or fields.get("PPid") == "2"
    rss = num("VmRSS") * 1024 if "VmRSS" in fields else None
    return StatusInfo(fields.get("Name", ""), uid, num("FDSize"), num("Threads"), kthread, rss)


# --- /proc/PID/limits ----------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """A resource limit; None means unlimited."""

    soft: int | None
    hard: int | None


_LIMIT_LINE = re.compile(r"^(\S.*?)\s{2,}(\S+)\s+(\S+)(?:\s+\S+)?\s*$")


def parse_limits(text: str) -> dict[str, Limit]:
    """``/proc/PID/limits`` as ``{"Max open files": Limit(1024, 524288), ...}``."""
    out: dict[str, Limit] = {}

    def val(s: str) -> int | None:
        if s == "unlimited":
            return None
        return int(s)

    for line in text.splitlines()[1:]:
        m = _LIMIT_LINE.match(line)
        if not m:
            continue
        try:
            out[m.group(1).strip()] = Limit(val(m.group(2)), val(m.group(3)))
        except ValueError:
            continue
    return out


# --- /proc/PID/cmdline ---------------------------------------------------------------


def parse_cmdline(text: str) -> tuple[str, ...]:
    """NUL-separated arguments. Empty ones are dropped: programs that rewrite
    their title pad the old argv area with NULs (nginx, setproctitle)."""
    return tuple(a for a in text.split("\0") if a)


def argv_words(argv: tuple[str, ...] | list[str]) -> list[str]:
    """Arguments as words: a title written as one string with spaces
    (``gunicorn: worker [app]``) is split on whitespace."""
    if len(argv) == 1 and (" " in argv[0] or "\t" in argv[0]):
        return argv[0].split()
    return list(argv)


_INTERPRETER = re.compile(
    r"^(?:python[\d.]*|pypy[\d.]*|ruby[\d.]*|perl[\d.]*|node|nodejs|php[\d.]*|bash|sh|dash|zsh|ksh|busybox)$"
)
# Interpreter options that take a value as the next argument (python -W x, ruby -I dir, perl -I dir).
_OPT_WITH_VALUE = frozenset({"-W", "-X", "-I", "-r", "-C", "--require", "-Q"})
# Options whose value is program text: the interpreter itself is the program.
_CODE_OPTS = frozenset({"-c", "-e", "-E", "--eval"})


def _base(word: str) -> str:
    word = word.lstrip("-")  # login shells: -bash
    return word.rstrip("/").rsplit("/", 1)[-1].rstrip(":")


def _program_at(words: list[str], comm: str = "") -> tuple[str, int]:
    """(program, index of the last word that names it) of a command line's words."""
    if not words:
        return comm, -1
    prog = _base(words[0]) or comm
    if not _INTERPRETER.match(prog):
        return prog, 0
    i = 1
    while i < len(words):
        w = words[i]
        if w == "-m" and i + 1 < len(words):
            return words[i + 1], i + 1
        if w.startswith("-m") and len(w) > 2 and prog.startswith("python"):
            return w[2:], i
        if w in _CODE_OPTS:
            return prog, 0
        if w in _OPT_WITH_VALUE:
            i += 2
            continue
        if w.startswith("-"):
            i += 1
            continue
        script = _base(w)
        if script == "__main__.py":  # a package run as a script: what `python -m PACKAGE` runs
            script = _base(w.rstrip("/").rsplit("/", 1)[0]) if "/" in w else script
        return script or prog, i
    return prog, 0


def program_of(argv: tuple[str, ...] | list[str], comm: str = "") -> str:
    """The program a command line runs (see the module docstring). ``comm`` is
    the fallback when there is no command line (zombies, some exotic titles)."""
    return _program_at(argv_words(argv), comm)[0]


_DIGITS = re.compile(r"\d+")


def normalise_cmdline(argv: tuple[str, ...] | list[str], comm: str = "", limit: int = 160) -> str:
    """The grouping key of a command line: program's directory dropped, digits
    in the arguments replaced by ``N``, whitespace collapsed, cut at ``limit`` characters."""
    words = argv_words(argv)
    if not words:
        return f"[{comm}]"
    first = words[0]
    head = first.rsplit("/", 1)[-1] if "/" in first and not first.endswith(":") else first
    prog, at = _program_at(words, comm)
    if at > 0:
        # an interpreter's program however it is named (``-m gunicorn``, ``.../gunicorn/__main__.py``,
        # ``/usr/bin/gunicorn``): a server that re-executes itself names it differently
        words = [words[0], prog, *words[at + 1 :]]
    text = " ".join([head, *(_DIGITS.sub("N", w) for w in words[1:])])
    return text[:limit]


# --- system-wide files --------------------------------------------------------------


def parse_uptime(text: str) -> float:
    """Seconds since boot from ``/proc/uptime``."""
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/uptime: unexpected content {text[:40]!r}") from None


@dataclass(frozen=True)
class CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat`` (clock ticks) and the CPU count."""

    total: int
    idle: int  # idle + iowait
    ncpu: int
    btime: int | None = None

    @property
    def busy(self) -> int:
        return self.total - self.idle


def parse_cpu_times(text: str) -> CpuTimes:
    """``/proc/stat``: the first eight fields of the ``cpu`` line (user nice
    system idle iowait irq softirq steal; guest time is already inside user),
    the number of ``cpuN`` lines and ``btime``."""
    total = idle = None
    ncpu = 0
    btime = None
    for line in text.splitlines():
        if line.startswith("cpu "):
            vals = [int(x) for x in line.split()[1:9]]
            total = sum(vals)
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
        elif line.startswith("cpu") and line[3:4].isdigit():
            ncpu += 1
        elif line.startswith("btime "):
            btime = int(line.split()[1])
    if total is None or idle is None:
        raise ValueError("/proc/stat: no aggregate 'cpu' line")
    return CpuTimes(total, idle, max(ncpu, 1), btime)


def parse_file_nr(text: str) -> tuple[int, int]:
    """``/proc/sys/fs/file-nr``: (allocated file handles, file-max)."""
    try:
        parts = text.split()
        return int(parts[0]), int(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/sys/fs/file-nr: unexpected content {text[:40]!r}") from None


def parse_loadavg_tasks(text: str) -> int:
    """The number of tasks (processes and threads, each holding a pid) from the
    ``running/total`` field of ``/proc/loadavg``."""
    try:
        return int(text.split()[3].split("/")[1])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/loadavg: unexpected content {text[:40]!r}") from None


# --- the table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """One process as read from /proc."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    comm: str
    state: str
    uid: int
    threads: int
    utime: int
    stime: int
    starttime: int  # clock ticks after boot
    argv: tuple[str, ...] = ()
    kernel_thread: bool = False
    fdsize: int = 0
    rss: int | None = None  # VmRSS in bytes, when status was read and has it

    @cached_property
    def program(self) -> str:
        return program_of(self.argv, self.comm)

    @cached_property
    def key(self) -> str:
        return normalise_cmdline(self.argv, self.comm)

    @property
    def zombie(self) -> bool:
        return self.state == "Z"

    def title(self, limit: int = 100) -> str:
        """The command line for people to read (``[comm]`` when there is none)."""
        text = " ".join(argv_words(self.argv)) if self.argv else f"[{self.comm}]"
        return text if len(text) <= limit else text[: limit - 1] + "…"

    @classmethod
    def from_parts(cls, stat: StatInfo, status: StatusInfo | None, argv: tuple[str, ...]) -> Proc:
        return cls(
            pid=stat.pid,
            ppid=stat.ppid,
            pgid=stat.pgid,
            sid=stat.sid,
            comm=stat.comm,
            state=stat.state,
            uid=status.uid if status else -1,
            threads=stat.threads,
            utime=stat.utime,
            stime=stat.stime,
            starttime=stat.starttime,
            argv=argv,
            kernel_thread=stat.kernel_thread or bool(status and status.kernel_thread),
            fdsize=status.fdsize if status else 0,
            rss=status.rss if status else None,
        )


@dataclass(frozen=True)
class ProcTable:
    """All processes at one moment, with the clock to turn start times into ages."""

    procs: Mapping[int, Proc]
    uptime: float  # seconds since boot when the table was read
    hz: int = 100
    btime: int | None = None  # boot time, epoch seconds

    @cached_property
    def _children(self) -> dict[int, list[Proc]]:
        out: dict[int, list[Proc]] = {}
        for p in self.procs.values():
            out.setdefault(p.ppid, []).append(p)
        for lst in out.values():
            lst.sort(key=lambda p: p.pid)
        return out

    def children(self, pid: int) -> list[Proc]:
        return self._children.get(pid, [])

    def get(self, pid: int) -> Proc | None:
        return self.procs.get(pid)

    def user_procs(self) -> list[Proc]:
        """Processes that are not kernel threads, by pid."""
        return [p for p in sorted(self.procs.values(), key=lambda p: p.pid) if not p.kernel_thread]

    def age(self, p: Proc) -> float:
        return max(0.0, self.uptime - p.starttime / self.hz)

    def start_epoch(self, p: Proc) -> float | None:
        return None if self.btime is None else self.btime + p.starttime / self.hz

    def row(self, p: Proc, extra: str = "") -> str:
        """One evidence line: ``pid 1234 ppid 1 age 3h gunicorn: worker [app]``."""
        tail = f" {extra}" if extra else ""
        return f"pid {p.pid} ppid {p.ppid} age {duration(self.age(p))} {p.title()}{tail}"


@dataclass(frozen=True)
class Group:
    """Processes with the same program and normalised command line."""

    program: str
    key: str
    pids: tuple[int, ...]
    parents: Mapping[int, int] = field(default_factory=dict)  # ppid -> members with that parent
    youngest: float = 0.0  # age in seconds
    oldest: float = 0.0

    @property
    def count(self) -> int:
        return len(self.pids)

    def row(self) -> str:
        """``4 x gunicorn: worker [app] (parents 210 x3, 1 x1; ages 2m-27h)``."""
        parents = ", ".join(f"{pp} x{n}" for pp, n in sorted(self.parents.items(), key=lambda kv: -kv[1])[:3])
        young, old = duration(self.youngest), duration(self.oldest)
        ages = young if young == old else f"{young}-{old}"
        return f"{self.count} x {self.key} (parents {parents}; ages {ages})"


def group_processes(table: ProcTable, procs: Iterable[Proc] | None = None) -> list[Group]:
    """Group (non-kernel, non-zombie) processes by program and normalised
    command line, largest groups first."""
    members: dict[tuple[str, str], list[Proc]] = {}
    for p in table.user_procs() if procs is None else procs:
        if p.kernel_thread or p.zombie:
            continue
        members.setdefault((p.program, p.key), []).append(p)
    out = []
    for (prog, key), ps in members.items():
        ages = [table.age(p) for p in ps]
        out.append(
            Group(
                prog,
                key,
                tuple(p.pid for p in ps),
                dict(Counter(p.ppid for p in ps)),
                min(ages),
                max(ages),
            )
        )
    out.sort(key=lambda g: (-g.count, g.program, g.key))
    return out
