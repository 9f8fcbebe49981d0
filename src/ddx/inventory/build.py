"""One discovery pass: what serves on this host, how it was started, where it logs.

From the process table and the listening sockets:

1. **Services.** Every process holding a listening TCP socket (or a unix one,
   for application servers and databases) is a seed; its master is the
   topmost ancestor running the same program, and the service is that master
   with its descendants of the same program (nginx's workers, PostgreSQL's
   backends, gunicorn's workers). ddx itself, pid 1 and the desktop's and
   system's plumbing (systemd, dbus...) are left out.
2. **Configuration**, as that process was started (``ddx.inventory.programs``):
   its command line (``-c``, ``--config``, ``-f``, a positional file), its
   environment (``*_CONFIG`` variables naming a file, ``PGDATA``), else the
   program's default; includes followed.
3. **Logs**: named in its configuration; held open for writing by one of its
   processes (``/proc/PID/fd`` with ``/proc/PID/fdinfo`` flags; its standard
   output and error included); and written within ``lookback_hours`` in
   /var/log (by its user, in its program's folder, or named after it) or in
   its own folders (working directory, the folders of its configuration and
   its ``log``/``logs`` subfolders). A service run by systemd also logs to
   the journal (``journal``).
   A service under **runit, s6 or supervisord** is found from its supervisor
   even while it is down between two crashes (``ddx.inventory.supervised``):
   its run script or ``[program:]`` section gives its command, folder,
   environment and logs.
4. **Data directories** (from its configuration, and folders its settings
   name) and the **filesystems** under them, its working folder and its logs.
5. **Dependencies**: the addresses its configuration names.

Everything is read through the Host (so a recording saves it) and bounded:
``max_procs`` processes, ``max_fd_links`` open-file links, ``max_log_entries``
directory entries looked at for recent logs, and a time ``budget`` after which
the pass stops where it is (``complete`` is then False).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat as stat_mod
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ddx.host import Host, is_live, redact_cmdline
from ddx.inventory.files import expand_glob, has_glob, stat_or_none, why
from ddx.inventory.model import ConfigFile, Inventory, Listen, LogFile, Service
from ddx.inventory.processes import read_proc_table
from ddx.inventory.programs import KINDS, LOG_FOLDERS, Found, read_program
from ddx.inventory.sockets import read_sockets
from ddx.inventory.supervised import Supervised, supervised_services
from ddx.probes.parsers.mounts import parse_mountinfo, parse_mounts, real_filesystems
from ddx.probes.parsers.proctable import Proc, ProcTable, argv_words

__all__ = ["InventoryOptions", "build_inventory", "service_kind"]

# Programs that are the system's plumbing, never "a service" of the host's own (even when they listen).
_PLUMBING = re.compile(
    r"^(?:systemd.*|init|dbus-daemon|dbus-broker.*|polkitd|udisksd|accounts-daemon|rsyslogd|syslog-ng|"
    r"journald|cron|crond|atd|agetty|login|snapd|gdm.*|Xorg|Xwayland|pulseaudio|pipewire.*|wireplumber|"
    r"NetworkManager|ModemManager|wpa_supplicant|avahi-daemon|cupsd|cups-browsed|bluetoothd|upowerd|"
    r"packagekitd|thermald|irqbalance|multipathd|containerd-shim.*|ddx|runsv|runsvdir|supervisord|"
    r"s6-supervise|tini|dumb-init|sshd-session|sd-pam)$"
)
# Interpreters and runtimes whose unix listeners make a service (a gunicorn on a socket behind nginx).
_APP_RUNTIMES = re.compile(r"^(?:python[\d.]*|ruby[\d.]*|node|nodejs|java|php[\d.-]*|perl[\d.]*|dotnet|beam\.smp)$")
_ROTATED = re.compile(r"(?:\.\d+|\.gz|\.xz|\.bz2|\.zst|\.lz4|\.old)$")
_LOGGY = re.compile(r"(?i)(?:\.log|\.err|\.out|_log|-log|\.log\.json|\.jsonl)$|/logs?/[^/]+$")
_SUPERVISORS = ("runsv", "supervisord", "s6-supervise", "pm2", "PM2", "circusd", "monit", "god", "tini",
                "dumb-init", "containerd-shim", "containerd-shim-runc-v2")
_FD_PIDS = 8  # processes of one service whose open files are read (the master and some workers)


@dataclass(frozen=True)
class InventoryOptions:
    """Bounds and additions of a discovery pass (``[inventory]`` in ddx.toml)."""

    lookback_hours: float = 6.0  # "recently written" for logs found by their time alone
    max_procs: int = 4000
    max_fd_links: int = 20000
    max_log_entries: int = 4000
    budget: float = 2.0  # seconds for the whole pass
    logs: tuple[str, ...] = ()  # extra logs (globs) ddx.toml names
    services: tuple[Mapping[str, Any], ...] = ()  # ddx.toml [[inventory.services]]
    exclude_pids: frozenset[int] = field(default_factory=frozenset)


def service_kind(program: str) -> str:
    if program.startswith("php-fpm"):
        return "app"
    return KINDS.get(program, "other")


class _Clock:
    def __init__(self, budget: float) -> None:
        self.end = time.monotonic() + budget

    def out(self) -> bool:
        return time.monotonic() >= self.end


def _names(host: Host) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for line in host.read_text("/etc/passwd", max_bytes=1 << 20).splitlines():
            f = line.split(":")
            if len(f) > 2 and f[2].isdigit():
                out.setdefault(int(f[2]), f[0])
    except (OSError, LookupError, TimeoutError):
        pass
    return out


def _mounts(host: Host) -> tuple[list[str], dict[str, str]]:
    """(mount points of real filesystems, longest first; point -> canonical point of its filesystem)."""
    try:
        mounts = parse_mountinfo(host.read_text("/proc/self/mountinfo"))
    except (OSError, LookupError, TimeoutError):
        try:
            mounts = parse_mounts(host.read_text("/proc/mounts"))
        except (OSError, LookupError, TimeoutError):
            return [], {}
    canon = {m.dev: m.point for m in real_filesystems(mounts) if m.dev}
    points: dict[str, str] = {}
    for m in real_filesystems(mounts):
        points[m.point] = m.point
    for m in mounts:  # bind mounts of a real filesystem: the same filesystem under another name
        if m.dev in canon and m.point not in points and not m.point.startswith(("/proc", "/sys")):
            points[m.point] = canon[m.dev]
    return sorted(points, key=lambda p: (-len(p), p)), points


def _mount_of(path: str, points: Sequence[str], canon: Mapping[str, str]) -> str:
    for p in points:
        if path == p or path.startswith(p.rstrip("/") + "/"):
            return canon.get(p, p)
    return "/"


def _master(table: ProcTable, pid: int) -> Proc | None:
    p = table.get(pid)
    if p is None:
        return None
    while True:
        parent = table.get(p.ppid)
        if parent is None or parent.pid <= 1 or parent.program != p.program:
            return p
        p = parent


def _family(table: ProcTable, master: Proc) -> list[Proc]:
    out = [master]
    todo = [master.pid]
    while todo and len(out) < 2000:
        for c in table.children(todo.pop()):
            if c.program == master.program and not c.zombie:
                out.append(c)
                todo.append(c.pid)
    return out


def _unit(host: Host, table: ProcTable, p: Proc) -> str:
    try:
        text = host.read_text(f"/proc/{p.pid}/cgroup", max_bytes=8192)
    except (OSError, LookupError, TimeoutError):
        text = ""
    for line in text.splitlines():
        path = line.rpartition(":")[2]
        for part in reversed(path.split("/")):
            if part.endswith(".service") and not part.startswith(("user@", "session-")):
                return part
    parent = table.get(p.ppid)
    if parent is not None and parent.program in _SUPERVISORS:
        return parent.program
    return ""


def _environ(host: Host, pid: int) -> dict[str, str]:
    """The master's environment: only names and values that look like paths or
    addresses are kept by the readers; nothing of it is stored in the inventory."""
    over_ssh: object = getattr(host, "remote", None)  # a bundle never holds one; a host over SSH reads it
    if not (is_live(host) or over_ssh):
        return {}
    try:
        raw = host.read_text(f"/proc/{pid}/environ", max_bytes=64 << 10)
    except (OSError, LookupError, TimeoutError):
        return {}
    out: dict[str, str] = {}
    for item in raw.split("\0"):
        k, sep, v = item.partition("=")
        if sep and k and len(v) < 4096:
            out[k] = v
    return out


def _fdinfo_writes(host: Host, pid: int, fd: str) -> bool | None:
    try:
        text = host.read_text(f"/proc/{pid}/fdinfo/{fd}", max_bytes=4096)
    except (OSError, LookupError, TimeoutError):
        return None
    m = re.search(r"^flags:\s*([0-7]+)", text, re.M)
    if not m:
        return None
    return (int(m.group(1), 8) & 0o3) in (os.O_WRONLY, os.O_RDWR)


@dataclass
class _Open:
    logs: list[LogFile] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    stdio_socket: bool = False
    links: int = 0


def _open_files(host: Host, pids: Sequence[int], budget: int, clock: _Clock) -> _Open:
    """Files the service's processes hold open for writing: logs (log-like names,
    or its standard output and error), and the folders of its other written files."""
    out = _Open()
    for pid in pids[:_FD_PIDS]:
        if out.links >= budget or clock.out():
            break
        try:
            fds = host.listdir(f"/proc/{pid}/fd")
        except (OSError, LookupError, TimeoutError):
            continue
        for fd in fds[:2000]:
            out.links += 1
            try:
                target = host.readlink(f"/proc/{pid}/fd/{fd}")
            except (OSError, LookupError, TimeoutError):
                continue
            if fd in ("1", "2") and target.startswith("socket:"):
                out.stdio_socket = True
            if not target.startswith("/") or target.startswith(("/dev/", "/proc/", "/sys/", "/run/systemd/")):
                continue
            path = target[:-10] if target.endswith(" (deleted)") else target
            loggy = fd in ("1", "2") or bool(_LOGGY.search(path))
            if not loggy and len(out.data) >= 16:
                continue
            if _fdinfo_writes(host, pid, fd) is not True:
                continue
            if loggy:
                if all(lg.path != path for lg in out.logs):
                    detail = f"{'standard output' if fd == '1' else 'standard error' if fd == '2' else f'fd {fd}'}"
                    detail += f" of pid {pid}" + (" (deleted file)" if target.endswith(" (deleted)") else "")
                    out.logs.append(LogFile(path, "open", detail, "access" if "access" in path.rsplit("/", 1)[-1] else ""))
            else:
                d = posixpath.dirname(path)
                if d not in out.data:
                    out.data.append(d)
    return out


@dataclass(frozen=True)
class _Recent:
    path: str
    uid: int
    mtime: float


def _recent_files(host: Host, roots: Iterable[str], cutoff: float, budget: list[int], depth: int = 2) -> list[_Recent]:
    """Regular files written at or after ``cutoff`` under ``roots`` (``depth`` levels),
    rotated and compressed ones left out; ``budget[0]`` entries looked at at most."""
    out: list[_Recent] = []
    todo = [(r.rstrip("/") or "/", 0) for r in roots]
    seen: set[str] = set()
    while todo and budget[0] > 0:
        d, level = todo.pop(0)
        if d in seen:
            continue
        seen.add(d)
        try:
            names = host.listdir(d)
        except (OSError, LookupError, TimeoutError):
            continue
        for n in names[:500]:
            budget[0] -= 1
            if budget[0] <= 0:
                break
            path = posixpath.join(d, n)
            st = stat_or_none(host, path)
            if st is None:
                continue
            if stat_mod.S_ISDIR(st.mode):
                if level < depth and not n.startswith(".") and n not in ("journal", "private", "installer"):
                    todo.append((path, level + 1))
            elif stat_mod.S_ISREG(st.mode) and st.mtime >= cutoff and not _ROTATED.search(n) and st.size > 0:
                out.append(_Recent(path, st.uid, st.mtime))
    return out


def _own_log_dirs(own: Iterable[str]) -> list[str]:
    """Where a service's own logs live under its own folders: the folder itself,
    its ``log``/``logs`` subfolders, ``var/log`` and ``storage/logs`` (Laravel)."""
    out: list[str] = []
    for d in own:
        for sub in ("", "log", "logs", "var/log", "storage/logs", "tmp/log"):
            p = posixpath.join(d, sub) if sub else d
            if p not in out:
                out.append(p)
    return out


def _belongs(r: _Recent, program: str, unit: str, uids: set[int], folders: tuple[str, ...]) -> str:
    """Why a recently written file in /var/log is this service's log ("" when it is not)."""
    rel = r.path[len("/var/log/"):] if r.path.startswith("/var/log/") else ""
    top = rel.split("/", 1)[0] if "/" in rel else ""
    name = posixpath.basename(r.path)
    import fnmatch

    if top and any(fnmatch.fnmatchcase(top, f) for f in folders):
        return f"in /var/log/{top}/"
    stem = unit.removesuffix(".service") if unit.endswith(".service") else ""
    for word in (program, stem):
        if word and len(word) >= 3 and (name.startswith(word) or top == word):
            return f"named after {word}"
    if r.uid in uids and r.uid != 0:
        return "written by its user"
    return ""


def _listens(socks: Iterable[Any]) -> list[Listen]:
    out: list[Listen] = []
    for s in socks:
        item = Listen("unix", path=s.local) if s.unix else Listen("tcp", s.address, s.port)
        if item not in out:
            out.append(item)
    return out


def _name(program: str, argv: Sequence[str], taken: set[str]) -> str:
    words = argv_words(list(argv))
    name = program
    if program in ("gunicorn", "uwsgi", "unicorn", "puma") and words:
        app = next((w for w in reversed(words) if ":" in w and not w.startswith(("-", "/", "127.", "0.0."))), "")
        if app:
            name = f"{program} {app}"
    base, n = name, 2
    while name in taken:
        name = f"{base} #{n}"
        n += 1
    taken.add(name)
    return name


def _descendants(table: ProcTable, root: Proc) -> list[Proc]:
    out: list[Proc] = []
    todo = [root.pid]
    while todo and len(out) < 2000:
        for c in table.children(todo.pop()):
            if not c.zombie:
                out.append(c)
                todo.append(c.pid)
    return out


def _supervised_family(table: ProcTable, sup: Supervised) -> list[Proc]:
    """The processes of one supervised service: what runsv/s6-supervise runs (not its
    log process), or the supervisord child that runs the program's command."""
    kids = [c for c in table.children(sup.supervisor.pid) if not c.zombie and c.program not in ("svlogd", "s6-log")]
    if sup.supervisor.program == "supervisord":
        head = posixpath.basename(sup.argv[0]) if sup.argv else ""
        kids = [c for c in kids if head and c.argv and (posixpath.basename(c.argv[0]) == head
                                                         or c.program == sup.program)]
    return [x for c in kids for x in (c, *_descendants(table, c))]


@dataclass
class _Pass:
    """What one discovery pass shares between the services it describes."""

    host: Host
    table: ProcTable
    users: dict[int, str]
    points: list[str]
    canon: dict[str, str]
    var_log: list[_Recent]
    cutoff: float
    now: float
    clock: _Clock
    fd_budget: int = 20000
    var_log_budget: int = 4000

    def service(
        self, name: str, program: str, master: Proc, family: Sequence[Proc], socks: Sequence[Any], *,
        argv: Sequence[str], env: dict[str, str], cwd: str, unit: str,
        named_logs: Sequence[tuple[str, str]] = (), notes: Sequence[str] = (),
        configs: Sequence[tuple[str, str, str]] = (),
    ) -> Service:
        """One service: its configuration, logs, data and dependencies (the module docstring)."""
        host, now = self.host, self.now
        pids = tuple(dict.fromkeys(p.pid for p in family))
        found: Found = read_program(host, program, argv, env, cwd)
        for path, how, detail in configs:
            if all(c.path != path for c in found.configs):
                found.configs.insert(0, ConfigFile(path, how, detail))
        for path, detail in named_logs:
            found.log(path, "config", detail)
        workers = [p for p in pids if p != master.pid]
        opened = _open_files(host, [master.pid, *workers], self.fd_budget, self.clock)
        self.fd_budget -= opened.links
        for lg in opened.logs:
            if all(x.path != lg.path for x in found.logs):
                found.logs.append(lg)
        for d in opened.data:
            found.data(d)
        if cwd:
            found.own(cwd)
        uids = {p.uid for p in family if p.uid >= 0}
        folders = LOG_FOLDERS.get(program, ()) or (LOG_FOLDERS["php-fpm"] if program.startswith("php-fpm") else ())
        for r in self.var_log:
            reason = _belongs(r, program, unit, uids, folders)
            if reason and all(x.path != r.path for x in found.logs):
                found.logs.append(LogFile(r.path, "recent", f"written {int((now - r.mtime) // 60)} min ago, {reason}",
                                          "access" if "access" in posixpath.basename(r.path) else ""))
        own_roots = [d for d in _own_log_dirs(found.own_dirs) if not d.startswith("/var/log")]
        own_roots += [d for d in found.log_dirs if d not in own_roots]
        budget = [min(800, max(0, self.var_log_budget))]
        for r in _recent_files(host, own_roots, self.cutoff, budget, depth=0):
            named_dir = posixpath.dirname(r.path) in found.log_dirs
            in_log_dir = posixpath.basename(posixpath.dirname(r.path)) in ("log", "logs")
            if (named_dir or in_log_dir or _LOGGY.search(r.path)) and all(x.path != r.path for x in found.logs):
                why_ = "in the folder its configuration logs to" if named_dir else "in its own folder"
                found.logs.append(LogFile(r.path, "recent", f"written {int((now - r.mtime) // 60)} min ago, {why_}",
                                          "access" if "access" in posixpath.basename(r.path) else ""))
        self.var_log_budget -= 800 - budget[0]
        journal = unit.endswith(".service") or (opened.stdio_socket and "." in unit)  # a systemd unit, not a supervisor
        all_notes = [*notes, *found.notes]
        if not found.logs and not journal:
            all_notes.append("no log found: nothing in its configuration, no file it holds open for writing, "
                             "nothing it wrote lately in /var/log or its own folders")
        fs_paths = [*found.data_dirs, *(p for p in [cwd] if p), *(posixpath.dirname(lg.path) for lg in found.logs)]
        filesystems = tuple(dict.fromkeys(_mount_of(p, self.points, self.canon) for p in fs_paths if p.startswith("/")))
        uid = next((u for u in sorted(uids) if u != 0), master.uid)
        return Service(
            name=name,
            program=program,
            pid=master.pid,
            pids=pids,
            user=self.users.get(uid, str(uid)),
            uid=uid,
            started=self.table.start_epoch(master),
            version=_version(host, program, found.data_dirs),
            argv=tuple(redact_cmdline(list(argv))),
            cwd=cwd,
            unit=unit,
            listens=tuple(_listens(socks)),
            configs=tuple(found.configs),
            logs=tuple(found.logs),
            journal=journal,
            data_dirs=tuple(found.data_dirs),
            filesystems=filesystems,
            deps=tuple(found.deps),
            notes=tuple(all_notes),
        )


def build_inventory(host: Host, options: InventoryOptions | None = None) -> Inventory:
    """Discover the services of ``host`` (see the module docstring). Never raises
    because of what it reads: what could not be read is in ``problems`` and the
    services' ``notes``."""
    opt = options or InventoryOptions()
    clock = _Clock(opt.budget)
    t0 = time.monotonic()
    problems: list[str] = []
    now = host.time()
    cutoff = now - opt.lookback_hours * 3600.0
    try:
        table = read_proc_table(host, opt.max_procs, boot_time=True).table
    except (OSError, LookupError, TimeoutError, ValueError) as exc:
        return Inventory(host.name, problems=(f"the process table could not be read: {why(exc)}",),
                         seconds=time.monotonic() - t0, complete=False)
    users = _names(host)
    points, canon = _mounts(host)
    own_pids = set(opt.exclude_pids)
    if is_live(host):
        own_pids.add(os.getpid())
    socks = list(read_sockets(host).sockets)
    tread = read_sockets(host, unix=True)
    unix = list(tread.sockets)
    seeds: dict[int, list[Any]] = {}
    for s in socks + unix:
        for o in s.owners:
            p = table.get(o.pid)
            if p is None or p.pid <= 1 or p.pid in own_pids or p.kernel_thread or _PLUMBING.match(p.program):
                continue
            if s.unix and not (p.program in KINDS or p.program.startswith("php-fpm") or _APP_RUNTIMES.match(p.program)
                               or p.program in ("gunicorn", "uwsgi", "unicorn", "puma")):
                continue
            seeds.setdefault(o.pid, []).append(s)
    masters: dict[int, tuple[Proc, list[Any]]] = {}
    for pid, ss in seeds.items():
        m = _master(table, pid)
        if m is None or m.pid in own_pids:  # ddx itself is not one of the host's services
            continue
        entry = masters.setdefault(m.pid, (m, []))
        entry[1].extend(ss)
    services: list[Service] = []
    taken: set[str] = set()
    var_log_budget = [opt.max_log_entries]
    var_log = _recent_files(host, ["/var/log"], cutoff, var_log_budget, depth=2)
    ctx = _Pass(host, table, users, points, canon, var_log, cutoff, now, clock,
                fd_budget=opt.max_fd_links, var_log_budget=opt.max_log_entries)
    for sup in supervised_services(host, table):
        # the service a supervisor runs, alive or between two lives; a live child that
        # listens is the same service, not another one
        family = _supervised_family(table, sup)
        ss = [x for m in list(masters) if m in {p.pid for p in family} for x in masters.pop(m)[1]]
        child = next((p for p in family if p.pid != sup.supervisor.pid), None)
        services.append(ctx.service(
            _name(sup.name, [], taken), sup.program, sup.supervisor, [sup.supervisor, *family], ss,
            argv=sup.argv or (list(child.argv) if child else []), env=sup.env, cwd=sup.cwd,
            unit=sup.supervisor.program, named_logs=sup.logs, notes=sup.notes,
            configs=[(sup.definition, "argv", f"{sup.supervisor.program}'s definition of the service")]))
    for mpid in sorted(masters):
        if clock.out():
            problems.append(f"stopped after {len(services)} of {len(masters)} services: the "
                            f"{opt.budget:g} s budget of the discovery pass was used up")
            break
        master, ss = masters[mpid]
        try:
            cwd = host.readlink(f"/proc/{mpid}/cwd")
        except (OSError, LookupError, TimeoutError):
            cwd = ""
        services.append(ctx.service(
            _name(master.program, master.argv, taken), master.program, master, _family(table, master), ss,
            argv=list(master.argv), env=_environ(host, mpid), cwd=cwd, unit=_unit(host, table, master)))
    services, extra = _add_configured(host, services, opt, taken)
    return Inventory(
        host=host.name,
        services=tuple(sorted(services, key=lambda s: (service_kind(s.program) == "other", s.name))),
        extra_logs=tuple(extra),
        mounts=tuple(sorted(set(canon.values()), key=lambda p: (-len(p), p))),
        problems=tuple(problems),
        seconds=time.monotonic() - t0,
        complete=not problems,
    )


def _version(host: Host, program: str, data_dirs: Sequence[str]) -> str:
    """A version where reading one file tells it (PostgreSQL's PG_VERSION); else ""."""
    if program in ("postgres", "postmaster"):
        for d in data_dirs:
            try:
                return "PostgreSQL " + host.read_text(posixpath.join(d, "PG_VERSION"), max_bytes=64).strip()
            except (OSError, LookupError, TimeoutError):
                continue
    return ""


def _add_configured(
    host: Host, services: list[Service], opt: InventoryOptions, taken: set[str]
) -> tuple[list[Service], list[LogFile]]:
    """What ddx.toml adds: logs of no particular service, and services (matched to a
    discovered one by name or program, else listed as configured and not found running)."""
    extra: list[LogFile] = []
    for pat in opt.logs:
        for p in expand_glob(host, pat) if has_glob(pat) else [pat]:
            extra.append(LogFile(p, "ddx.toml", "[inventory] logs"))
    out = list(services)
    for entry in opt.services:
        name = str(entry.get("name", ""))
        program = str(entry.get("program", "")) or name
        logs = [LogFile(p, "ddx.toml", f"[[inventory.services]] {name}")
                for pat in entry.get("logs", []) for p in (expand_glob(host, pat) if has_glob(pat) else [pat])]
        configs = [ConfigFile(p, "ddx.toml", f"[[inventory.services]] {name}") for p in entry.get("configs", [])]
        data = [str(d) for d in entry.get("data_dirs", [])]
        i = next((i for i, s in enumerate(out) if s.name == name or s.program == program), None)
        if i is None:
            taken.add(name)
            out.append(Service(name=name, program=program, pid=0, pids=(), logs=tuple(logs), configs=tuple(configs),
                               data_dirs=tuple(data), notes=("named in ddx.toml; no process of it found running",)))
            continue
        s = out[i]
        out[i] = replace(
            s,
            logs=s.logs + tuple(lg for lg in logs if lg.path not in s.log_paths),
            configs=s.configs + tuple(c for c in configs if all(c.path != x.path for x in s.configs)),
            data_dirs=s.data_dirs + tuple(d for d in data if d not in s.data_dirs),
            notes=tuple(n for n in s.notes if not n.startswith("no log found")) if logs else s.notes,
        )
    return out, extra
