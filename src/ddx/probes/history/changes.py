"""Changes: what changed on the host shortly before the incident, and whether
the errors began right after one of them.

"Recent" is the last ``lookback_hours`` (24 h: a change made yesterday
afternoon is still the prime suspect for this morning's failure; the evidence
gives every change's exact time and age, so a person or the engine can weigh
an upgrade 10 minutes ago above one 20 hours ago), or from ``since``.

Sources:

- packages: ``/var/log/dpkg.log`` (and ``.1``) install/upgrade/remove lines,
  ``/var/log/apt/history.log`` (the command behind them), RPM hosts'
  ``/var/log/dnf.rpm.log`` and ``/var/log/yum.log``; pip/gem/npm installs
  from the modification times of the entries of ``package_dirs``
  (``*.dist-info``, ``*.gemspec``, global ``node_modules``). Only these
  logs make the finding absent: without a package log the finding stays
  unknown.
- configuration: files under ``config_paths`` (``/etc``), and the
  configuration files the running services were started with (the
  inventory's, wherever they live), modified in the window. The walk is bounded (``max_depth``, ``max_config_files``).
  Modification time only: dpkg and image extraction set the change time
  (ctime) of every file they touch, and package changes have their own
  finding. A directory modified in the window while none of its entries was
  says an entry was removed or renamed there. Ignored (``config_ignore``):
  files rewritten by the system all the time (``/etc/mtab``,
  ``/etc/resolv.conf`` from DHCP/resolvconf, ``/etc/adjtime``,
  ``/etc/ld.so.cache``, locks, ``passwd-`` backups) and bulk directories
  (``/etc/ssl/certs``, ``/etc/alternatives``, LVM's metadata archives);
  a service's state kept beside its settings (logs, pid files, sockets,
  ``tmp``/``cache``/``sessions`` folders, and the logs of ``log_paths``);
  ``/etc/hosts`` and ``/etc/hostname`` only when written within seconds of
  ``/etc/resolv.conf``, which is what container runtimes and cloud-init do at
  every start.
- deploys: ``deploy_markers`` (files or directories whose modification time
  is a deploy's time), and the application directories of ``app_dirs``: a
  git checkout's last reflog entry (``.git/logs/HEAD``: time and message),
  or the ``current`` symlink of a Capistrano-style ``releases/`` layout (the
  release's timestamped name, else its modification time); and each running
  service's working folder (from the inventory): a git checkout or release
  layout there as above, else its newest code file (``.py``, ``.rb``,
  ``.php``, ``.js``, ``.jar``...; caches, logs and dependencies not walked),
  code copied in place being a deploy too. With none of
  these on the host the finding stays unknown (nothing tells how code gets
  here).
- service restarts: systemd units whose ``ActiveEnterTimestamp`` is in the
  window (at most ``max_units`` units), except those started with the machine
  (within ``BOOT_GRACE`` of boot). A restart is not by itself a deploy; it
  counts as a change for the alignment below.

``change.errors_began_after_change``: for each error signature of the logs
(``ddx.probes.history.logfiles``), its first line after a change came within
``after_minutes`` of it, with at least the signature's ``min_count`` lines in
that span, and no line of the same signature in the ``before_minutes``
before the change (errors that were already there did not begin with it).
When only the tail of a busy log was read and it does not reach back that
far, the change is not aligned: nobody can tell whether the errors were
already there. Nor is it when the errors, once begun, came so steadily that
the clean stretch between the change and the first of them would have held
more than ``QUIET_EXPECTED`` of them: a change starts its errors as soon as
traffic reaches what it changed (a restart, a reload), so an unrelated edit
20 minutes before a database crash, or the setting-up of a service that then
served cleanly, is not what broke it. Limits: a change whose effect waits
(a time bomb on cache expiry, a service restarted later by hand) or a quiet
stretch without traffic is missed when its errors come steadily afterwards;
bursts (a cron job) do not count as steady. Absent when no change was found
or no error began that way; unknown when no log could be read.

``change.errors_began_after_config_change``: the same alignment, with a
configuration edit as the change (a deploy or a package upgrade does not
count): what separates a configuration that now names a wrong address from a
dependency that died on its own. Absent when no configuration change was found
or none was followed by new errors.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import fnmatch
import os
import re
import stat as stat_mod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from ddx.host import Host
from ddx.host.base import StatResult
from ddx.host.batch import listdir_each, stat_each
from ddx.inventory.files import expand_glob
from ddx.model import Evidence, Finding, event_times
from ddx.probes.base import ProbeContext, probe
from ddx.probes.history.logfiles import collect_logs, host_zone
from ddx.units import duration, iso

__all__ = [
    "Change",
    "FINDINGS",
    "align",
    "changes",
    "parse_apt_history",
    "parse_dnf_rpm_log",
    "parse_dpkg_log",
    "parse_git_reflog",
    "parse_release_name",
    "parse_systemctl_show",
    "parse_yum_log",
    "walk_configs",
]

FINDINGS = (
    "change.recent_package_upgrade",
    "change.recent_config_change",
    "change.recent_deploy",
    "change.errors_began_after_change",
    "change.errors_began_after_config_change",
)

PACKAGE_LOGS = ("/var/log/dpkg.log", "/var/log/dpkg.log.1", "/var/log/apt/history.log",
                "/var/log/dnf.rpm.log", "/var/log/yum.log")
BOOT_GRACE = 300.0  # units that became active within this many seconds of boot started with the machine
CONTAINER_FILES_SKEW = 5.0  # /etc/hosts, /etc/hostname written this close to /etc/resolv.conf: by the runtime
MAX_SAMPLES = 20  # changes listed in one evidence
_LOG_TAIL = 2 << 20  # bytes read from the end of each package log
# Errors that begin with a change: at their own rate, fewer than this many would have fallen in
# the quiet stretch between the change and the first of them (Poisson: P(none | 5 expected) < 1%).
QUIET_EXPECTED = 5.0
QUIET_MIN_ERRORS = 5  # errors after the change needed to measure their rate...
LOG_RESOLUTION = 1.0  # seconds: the coarsest time stamp of common logs (syslog, nginx, gunicorn)
QUIET_MIN_SPAN = 0.25  # ...coming for at least this share of the quiet stretch (not one burst)


@dataclass(frozen=True)
class Change:
    """One change: its kind (package, config, deploy, restart), when, what,
    and where that was read."""

    kind: str
    time: float
    what: str
    source: str

    def line(self, now: float) -> str:
        return f"{iso(self.time)} ({duration(now - self.time)} ago) {self.what}"


# --- package logs -------------------------------------------------------------------------


def _naive(text: str, tz: _dt.tzinfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> float | None:
    try:
        return _dt.datetime.strptime(text, fmt).replace(tzinfo=tz).timestamp()
    except ValueError:
        return None


_DPKG = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (install|upgrade|remove|trigproc|configure|purge) "
                   r"(\S+) (\S+) (\S+)\s*$")


def parse_dpkg_log(text: str, tz: _dt.tzinfo, source: str = "/var/log/dpkg.log") -> list[Change]:
    """Package installs, upgrades (and downgrades) and removals in a dpkg log::

        2026-11-22 05:30:01 upgrade openssl:amd64 3.0.11-1~deb12u1 3.0.13-1~deb12u1
        2026-11-22 05:30:02 install libfoo:amd64 <none> 1.2-3
        2026-11-22 05:31:00 remove libbar:amd64 4.5-6 <none>

    (times are local). ``status``/``configure``/``trigproc`` lines repeat the
    same change and are skipped, as is ``purge`` (follows a remove)."""
    out = []
    for line in text.splitlines():
        m = _DPKG.match(line)
        if m is None or m.group(2) not in ("install", "upgrade", "remove"):
            continue
        t = _naive(m.group(1), tz)
        if t is None:
            continue
        action, pkg, old, new = m.group(2), m.group(3), m.group(4), m.group(5)
        if action == "upgrade" and old != "<none>":
            what = f"upgrade {pkg} {old} -> {new}"
        elif action == "remove":
            what = f"remove {pkg} {old}"
        else:
            what = f"install {pkg} {new}"
        out.append(Change("package", t, what, source))
    return out


_APT_ITEM = re.compile(r"([^\s,()]+) \(([^)]*)\)")


def parse_apt_history(text: str, tz: _dt.tzinfo, source: str = "/var/log/apt/history.log") -> list[Change]:
    """Changes in apt's history log, one per package, at the run's
    ``Start-Date``::

        Start-Date: 2026-11-22  05:30:00
        Commandline: apt-get upgrade -y
        Upgrade: openssl:amd64 (3.0.11-1, 3.0.13-1), libssl3:amd64 (3.0.11-1, 3.0.13-1)
        Install: libfoo:amd64 (1.2-3, automatic)
        End-Date: 2026-11-22  05:30:09
    """
    out: list[Change] = []
    start: float | None = None
    command = ""
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        value = value.strip()
        if key == "Start-Date":
            start = _naive(" ".join(value.split()), tz)
            command = ""
        elif key == "Commandline":
            command = value
        elif key in ("Install", "Upgrade", "Downgrade", "Remove", "Purge", "Reinstall") and start is not None:
            for pkg, vers in _APT_ITEM.findall(value):
                parts = [v.strip() for v in vers.split(",")]
                parts = [p for p in parts if p != "automatic"]
                if key in ("Upgrade", "Downgrade") and len(parts) >= 2:
                    what = f"{key.lower()} {pkg} {parts[0]} -> {parts[1]}"
                else:
                    what = f"{key.lower()} {pkg} {parts[0] if parts else ''}".rstrip()
                if command:
                    what += f" (apt: {command[:120]})"
                out.append(Change("package", start, what, source))
    return out


_DNF = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})([+-]\d{4}|Z)? \w+ "
                  r"(Upgrade|Upgraded|Installed|Install|Erase|Downgrade|Reinstall|Obsoleted|Removed): (\S+)")


def parse_dnf_rpm_log(text: str, tz: _dt.tzinfo, source: str = "/var/log/dnf.rpm.log") -> list[Change]:
    """Changes in dnf's RPM log (``2026-11-22T05:30:01+0000 SUBDEBUG Upgrade:
    openssl-1:3.0.7-25.el9.x86_64``). The ``Upgraded``/``Obsoleted`` lines
    name the old package of an upgrade and are skipped."""
    out = []
    for line in text.splitlines():
        m = _DNF.match(line)
        if m is None or m.group(3) in ("Upgraded", "Obsoleted"):
            continue
        zone: _dt.tzinfo = tz
        if m.group(2) == "Z":
            zone = _dt.timezone.utc
        elif m.group(2):
            sign = -1 if m.group(2)[0] == "-" else 1
            zone = _dt.timezone(sign * _dt.timedelta(hours=int(m.group(2)[1:3]), minutes=int(m.group(2)[3:5])))
        t = _naive(m.group(1), zone, "%Y-%m-%dT%H:%M:%S")
        if t is None:
            continue
        action = {"Installed": "install", "Install": "install", "Upgrade": "upgrade", "Erase": "remove",
                  "Removed": "remove", "Downgrade": "downgrade", "Reinstall": "reinstall"}[m.group(3)]
        out.append(Change("package", t, f"{action} {m.group(4)}", source))
    return out


_YUM = re.compile(r"^(\w{3}) +(\d{1,2}) (\d{2}:\d{2}:\d{2}) (Installed|Updated|Erased|Downgraded): (\S+)")


def parse_yum_log(text: str, tz: _dt.tzinfo, now: float, source: str = "/var/log/yum.log") -> list[Change]:
    """Changes in yum's log (``Nov 22 05:30:01 Updated: openssl-1.0.2k-26.el7_9.x86_64``;
    no year: the latest one that is not in the future)."""
    from ddx.probes.parsers.logtime import TimeParser

    parser = TimeParser(tz, now)
    out = []
    for line in text.splitlines():
        m = _YUM.match(line)
        if m is None:
            continue
        t = parser.parse(line)
        if t is None:
            continue
        action = {"Installed": "install", "Updated": "upgrade", "Erased": "remove", "Downgraded": "downgrade"}
        out.append(Change("package", t, f"{action[m.group(4)]} {m.group(5)}", source))
    return out


def _dedupe_packages(changes: list[Change]) -> list[Change]:
    """The same package change read from dpkg.log and apt's history: keep one
    (dpkg's, which has the exact time), matched on action, package and
    version within 10 minutes."""
    def key(c: Change) -> tuple[str, ...]:
        words = c.what.split(" (apt:")[0].split()
        pkg = words[1].split(":")[0] if len(words) > 1 else ""
        return (words[0], pkg, words[-1])

    kept: list[Change] = []
    times: dict[tuple[str, ...], list[float]] = {}
    for c in sorted(changes, key=lambda c: (c.source.endswith("history.log"), c.time)):
        seen = times.setdefault(key(c), [])
        if any(abs(t - c.time) <= 600 for t in seen):
            continue
        seen.append(c.time)
        kept.append(c)
    return sorted(kept, key=lambda c: c.time)


def _package_dir_name(name: str) -> str | None:
    for suffix in (".dist-info", ".egg-info", ".gemspec"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            m = re.match(r"^(.+?)-(\d[\w.+!-]*)$", base)
            return f"{m.group(1)} {m.group(2)}" if m else base
    return None


# --- configuration ------------------------------------------------------------------------


def _ignored(path: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


@dataclass(frozen=True)
class ConfigWalk:
    """Files (and unexplained directory changes) modified at or after the
    cutoff, how many entries were looked at, and whether a bound was hit."""

    changed: tuple[Change, ...]
    looked: int
    truncated: bool
    roots: tuple[str, ...]


def walk_configs(
    host: Host,
    roots: Iterable[str],
    *,
    cutoff: float,
    ignore: Sequence[str],
    max_depth: int,
    max_files: int,
) -> ConfigWalk:
    """Walk the config trees breadth first (bounded), listing what was
    modified at or after ``cutoff`` (see the module docstring). A level of the
    tree is read with a few batched calls (``ddx.host.batch``): over SSH a
    thousand files cost a handful of round trips, not a thousand."""
    changed: list[Change] = []
    looked = 0
    truncated = cut_short = False
    walked: list[str] = []
    children_times: dict[str, list[float]] = {}  # directory -> modification times of its entries
    level: list[tuple[str, int]] = []
    for root in roots:
        for r in expand_glob(host, root):
            level.append((r.rstrip("/") or "/", 0))
    seen_dirs: set[tuple[int, int]] = set()
    dir_changes: list[tuple[str, float, list[float]]] = []
    while level and not cut_short:
        chunk, level = level[: max_files + 1 - looked], level[max_files + 1 - looked:]
        to_list: list[tuple[str, int, StatResult]] = []
        for (path, depth), st in zip(chunk, stat_each(host, [p for p, _ in chunk])):
            if isinstance(st, BaseException):
                continue
            if depth == 0:
                walked.append(path)
            else:
                children_times.setdefault(os.path.dirname(path), []).append(st.mtime)
            looked += 1
            if looked > max_files:
                truncated = cut_short = True
                break
            if stat_mod.S_ISDIR(st.mode):
                key = (st.ino, st.mode)
                if st.ino and key in seen_dirs:
                    continue
                seen_dirs.add(key)
                if depth >= max_depth:
                    truncated = True
                    continue
                to_list.append((path, depth, st))
            elif st.mtime >= cutoff and stat_mod.S_ISREG(st.mode):  # sockets and FIFOs hold no settings
                changed.append(Change("config", st.mtime, f"modified {path}", path))
        if cut_short:
            break
        ignored: list[tuple[list[float], str]] = []  # (its directory's list of entry times, entry)
        deeper: list[tuple[str, int]] = []
        for (path, depth, st), names in zip(to_list, listdir_each(host, [p for p, _, _ in to_list])):
            if isinstance(names, BaseException):
                continue
            child_times: list[float] = []
            for child in (os.path.join(path, n) for n in names):
                if _ignored(child, ignore):
                    ignored.append((child_times, child))
                else:
                    deeper.append((child, depth + 1))
            if st.mtime >= cutoff:
                dir_changes.append((path, st.mtime, child_times))
        for (times, _child), cst in zip(ignored, stat_each(host, [c for _, c in ignored])):
            if not isinstance(cst, BaseException):
                times.append(cst.mtime)
        level = level + deeper
    # A directory modified in the window with no entry modified at about that time: an entry went away.
    for path, mtime, ignored_times in [] if cut_short else dir_changes:  # unvisited entries explain nothing
        inside = children_times.get(path, []) + ignored_times
        if not any(abs(t - mtime) <= 2.0 or t > mtime for t in inside):
            changed.append(Change("config", mtime, f"entry removed or renamed in {path}/", path))
    return ConfigWalk(tuple(sorted(changed, key=lambda c: c.time)), looked, truncated, tuple(walked))


def _container_managed(host: Host) -> set[str]:
    """/etc/hosts and /etc/hostname when written together with resolv.conf
    (a container runtime or cloud-init at start-up)."""
    try:
        ref = host.stat("/etc/resolv.conf").mtime
    except (OSError, LookupError, TimeoutError):
        return set()
    out = set()
    for p in ("/etc/hosts", "/etc/hostname"):
        try:
            if abs(host.stat(p).mtime - ref) <= CONTAINER_FILES_SKEW:
                out.add(p)
        except (OSError, LookupError, TimeoutError):
            pass
    return out


# --- deploys --------------------------------------------------------------------------------


_REFLOG = re.compile(r"^([0-9a-f]{7,64}) ([0-9a-f]{7,64}) (.*?) <[^>]*> (\d{9,11}) ([+-]\d{4})\t?(.*)$")


def parse_git_reflog(text: str) -> tuple[float, str, str] | None:
    """The last entry of a git reflog (``.git/logs/HEAD``): (time, new
    commit, message), or None."""
    for line in reversed(text.splitlines()):
        m = _REFLOG.match(line.strip("\r"))
        if m:
            return float(m.group(4)), m.group(2), m.group(6).strip()
    return None


def parse_release_name(name: str) -> float | None:
    """The time in a Capistrano release name (``20261122053000``, UTC), or None."""
    if not re.fullmatch(r"\d{14}", name):
        return None
    try:
        return _dt.datetime.strptime(name, "%Y%m%d%H%M%S").replace(tzinfo=_dt.timezone.utc).timestamp()
    except ValueError:
        return None


def _git_dir(host: Host, app: str) -> str | None:
    gd = os.path.join(app, ".git")
    try:
        st = host.stat(gd)
    except (OSError, LookupError, TimeoutError):
        return None
    if stat_mod.S_ISDIR(st.mode):
        return gd
    try:  # a worktree or submodule: "gitdir: PATH"
        text = host.read_text(gd, max_bytes=4096).strip()
    except (OSError, LookupError, TimeoutError):
        return None
    if text.startswith("gitdir:"):
        target = text.split(":", 1)[1].strip()
        return target if target.startswith("/") else os.path.normpath(os.path.join(app, target))
    return None


def find_deploys(host: Host, apps: Iterable[str], markers: Iterable[str]) -> tuple[list[Change], list[str]]:
    """Deploy events (latest per place) and the places that were found
    (git checkouts, release layouts, markers), recent or not."""
    found: list[Change] = []
    places: list[str] = []
    for pattern in markers:
        for path in expand_glob(host, pattern):
            try:
                st = host.stat(path)
            except (OSError, LookupError, TimeoutError):
                continue
            places.append(path)
            found.append(Change("deploy", st.mtime, f"deploy marker {path} modified", path))
    app_paths: list[str] = []
    for pattern in apps:
        app_paths.extend(p for p in expand_glob(host, pattern) if p not in app_paths)
    for app in app_paths[:200]:
        gd = _git_dir(host, app)
        if gd is not None:
            places.append(app)
            entry = None
            try:
                entry = parse_git_reflog(host.read_text(os.path.join(gd, "logs/HEAD"), max_bytes=16384, tail=True))
            except (OSError, LookupError, TimeoutError):
                pass
            if entry is not None:
                t, commit, msg = entry
                found.append(Change("deploy", t, f"git checkout {app} at {commit[:12]}: {msg[:120]}",
                                    os.path.join(gd, "logs/HEAD")))
            else:
                times = []
                for name in ("HEAD", "ORIG_HEAD"):
                    try:
                        times.append(host.stat(os.path.join(gd, name)).mtime)
                    except (OSError, LookupError, TimeoutError):
                        pass
                if times:
                    found.append(Change("deploy", max(times), f"git checkout {app}: HEAD moved",
                                        os.path.join(gd, "HEAD")))
        current = os.path.join(app, "current")
        try:
            target = host.readlink(current)
        except (OSError, LookupError, TimeoutError):
            continue
        places.append(current)
        full = target if target.startswith("/") else os.path.normpath(os.path.join(app, target))
        when = parse_release_name(os.path.basename(full.rstrip("/")))
        if when is None:
            try:
                when = host.stat(full).mtime
            except (OSError, LookupError, TimeoutError):
                continue
        found.append(Change("deploy", when, f"release {current} -> {target}", current))
    return found, places


_CODE = re.compile(r"\.(?:py|rb|php|js|mjs|cjs|ts|go|jar|war|ear|class|pl|pm|lua|ex|exs|erb|jinja2?|tmpl|html)$")
_NOT_CODE_DIRS = frozenset({"__pycache__", "node_modules", ".git", "log", "logs", "tmp", "cache", "sessions",
                            "uploads", "media", "storage", "vendor"})
CODE_MAX_ENTRIES = 2000  # entries of one application folder looked at for code files
CODE_MAX_DEPTH = 3


def find_code_changes(host: Host, dirs: Iterable[str], cutoff: float) -> tuple[list[Change], list[str]]:
    """Code deployed without git or a release layout: the newest code file
    (``.py``, ``.rb``, ``.php``, ``.js``, ``.jar``...) of each application folder
    (a service's working folder), as a deploy when it was written at or after
    ``cutoff``; caches, logs, dependencies and sessions are not walked. Returns
    (deploys, the folders that hold code)."""
    found: list[Change] = []
    places: list[str] = []
    for top in dirs:
        newest: tuple[float, str] | None = None
        queue: deque[tuple[str, int]] = deque([(top, 0)])
        looked = 0
        while queue and looked < CODE_MAX_ENTRIES:
            d, depth = queue.popleft()
            try:
                names = host.listdir(d)
            except (OSError, LookupError, TimeoutError):
                continue
            names = names[: CODE_MAX_ENTRIES - looked]
            looked += len(names)
            kept = [n for n in names if not (n.startswith(".") or n in _NOT_CODE_DIRS)]
            for n, st in zip(kept, stat_each(host, [os.path.join(d, n) for n in kept])):
                if isinstance(st, BaseException):
                    continue
                path = os.path.join(d, n)
                if stat_mod.S_ISDIR(st.mode):
                    if depth < CODE_MAX_DEPTH:
                        queue.append((path, depth + 1))
                elif stat_mod.S_ISREG(st.mode) and _CODE.search(n) and (newest is None or st.mtime > newest[0]):
                    newest = (st.mtime, path)
        if newest is None:
            continue
        places.append(top)
        if newest[0] >= cutoff:
            found.append(Change("deploy", newest[0], f"code in {top} written: {newest[1]}", newest[1]))
    return found, places


# --- service restarts ----------------------------------------------------------------------


def parse_systemctl_show(text: str, tz: _dt.tzinfo) -> list[tuple[str, float]]:
    """(unit, time it last became active) from ``systemctl show -p Id -p
    ActiveEnterTimestamp UNIT...`` (blocks separated by blank lines; times like
    ``Sun 2026-11-22 05:32:09 UTC`` in the host's zone)."""
    out = []
    for block in re.split(r"\n\s*\n", text):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        unit, stamp = props.get("Id", ""), props.get("ActiveEnterTimestamp", "")
        m = re.search(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?: (\S+))?", stamp)
        if not unit or m is None:
            continue
        zone = _dt.timezone.utc if m.group(2) in ("UTC", "GMT") else tz
        t = _naive(m.group(1), zone)
        if t is not None:
            out.append((unit, t))
    return out


def find_restarts(host: Host, tz: _dt.tzinfo, max_units: int) -> list[Change] | None:
    """Running services and when they became active, or None without systemd."""
    try:
        res = host.run(["systemctl", "list-units", "--type=service", "--state=running", "--no-legend", "--plain",
                        "--no-pager"], timeout=3.0)
    except (OSError, LookupError, TimeoutError):
        return None
    if res.returncode != 0:
        return None
    units = [ln.split()[0] for ln in res.stdout.splitlines() if ln.strip() and ln.split()[0].endswith(".service")]
    if not units:
        return []
    try:
        res = host.run(["systemctl", "show", "--no-pager", "-p", "Id", "-p", "ActiveEnterTimestamp", "--",
                        *units[:max_units]], timeout=3.0)
    except (OSError, LookupError, TimeoutError):
        return None
    if res.returncode != 0:
        return None
    boot = _boot_time(host)
    out = []
    for unit, t in parse_systemctl_show(res.stdout, tz):
        if boot is not None and t - boot <= BOOT_GRACE:
            continue
        out.append(Change("restart", t, f"service {unit} (re)started", "systemctl"))
    return out


def _boot_time(host: Host) -> float | None:
    try:
        m = re.search(r"^btime (\d+)", host.read_text("/proc/stat", max_bytes=1 << 16), re.M)
    except (OSError, LookupError, TimeoutError):
        return None
    return float(m.group(1)) if m else None


# --- errors after changes -----------------------------------------------------------------


@dataclass(frozen=True)
class Alignment:
    """An error signature that began shortly after a change."""

    change: Change
    signature: str
    finding: str
    first_error: float
    count_after: int


def align(
    changes: Sequence[Change],
    error_times: Mapping[str, tuple[str, int, Sequence[float]]],
    *,
    after: float,
    before: float,
    covered_from: Mapping[str, float] | None = None,
    quiet_expected: float = QUIET_EXPECTED,
) -> list[Alignment]:
    """Pure: which signatures began within ``after`` seconds of a change
    (with at least their min_count lines in that span) and had no line in the
    ``before`` seconds ahead of it. ``error_times`` maps signature name to
    (finding, min_count, hit times); ``covered_from`` gives, per signature,
    the time from which the logs holding it were read (only a tail of a busy
    log may be read: when it does not reach back to ``before`` ahead of the
    change, nobody can tell whether the errors were already there, and the
    change is not aligned). Errors a change starts begin as soon as traffic
    reaches what it changed: when, at the rate the errors came once they
    began, more than ``quiet_expected`` of them would have fallen in the
    error-free stretch between the change and the first one, something later
    started them, not this change (a service that ran cleanly for a while after
    being set up or reconfigured). One alignment per signature: the change
    closest before its first line. A line stamped up to ``LOG_RESOLUTION``
    before the change counts as after it: it may be the same second."""
    out = []
    covered_from = covered_from or {}
    for name, (finding, min_count, times) in sorted(error_times.items()):
        ts = sorted(times)
        best: Alignment | None = None
        for c in changes:
            # log times are often whole seconds: a line stamped in the change's own second may
            # come after it (file times have nanoseconds)
            lo = bisect.bisect_left(ts, c.time - LOG_RESOLUTION)
            hi = bisect.bisect_right(ts, c.time + after)
            if hi - lo < max(1, min_count):
                continue
            if c.time - before < covered_from.get(name, float("-inf")):
                continue
            if lo > 0 and ts[lo - 1] >= c.time - before:  # errors of this kind already came before it
                continue
            if _quiet_too_long(ts[lo:hi], c.time, quiet_expected):
                continue
            if best is None or ts[lo] - c.time < best.first_error - best.change.time:
                best = Alignment(c, name, finding, ts[lo], hi - lo)
        if best is not None:
            out.append(best)
    return sorted(out, key=lambda a: a.first_error - a.change.time)


def _quiet_too_long(times: Sequence[float], change: float, expected: float) -> bool:
    """True when the errors after a change came so steadily once they began that
    the quiet stretch before the first one would have held more than ``expected``
    of them. The rate is measured only on errors that have kept coming for at least
    a quarter of that stretch (``QUIET_MIN_SPAN``): a short burst (a cron job
    reaching the changed code at last) says nothing of a steady rate. Needs
    ``QUIET_MIN_ERRORS``; log times are often whole seconds, so a second of the gap
    is given away."""
    if len(times) < QUIET_MIN_ERRORS:
        return False
    quiet = max(0.0, times[0] - change - 1.0)
    span = times[-1] - times[0]
    if quiet <= 0.0 or span < QUIET_MIN_SPAN * quiet:
        return False
    rate = (len(times) - 1) / max(span, 1.0)
    return rate * quiet > expected


# --- the probe --------------------------------------------------------------------------------


def _read_tail(host: Host, path: str) -> str | None:
    try:
        return host.read_text(path, max_bytes=_LOG_TAIL, tail=True)
    except FileNotFoundError:
        return None
    except (OSError, LookupError, TimeoutError):
        return None


def find_packages(host: Host, tz: _dt.tzinfo, now: float, package_dirs: Iterable[str],
                  cutoff: float) -> tuple[list[Change], list[str]]:
    """Package changes at or after ``cutoff`` and the package logs that were read."""
    found: list[Change] = []
    read: list[str] = []
    for path in PACKAGE_LOGS:
        text = _read_tail(host, path)
        if text is None:
            continue
        read.append(path)
        if "dpkg.log" in path:
            found += parse_dpkg_log(text, tz, path)
        elif path.endswith("history.log"):
            found += parse_apt_history(text, tz, path)
        elif path.endswith("dnf.rpm.log"):
            found += parse_dnf_rpm_log(text, tz, path)
        else:
            found += parse_yum_log(text, tz, now, path)
    for pattern in package_dirs:
        for d in expand_glob(host, pattern, limit=20):
            try:
                names = host.listdir(d)[:5000]
            except (OSError, LookupError, TimeoutError):
                continue
            node = d.endswith("node_modules")
            for name in names:
                label = name if node and not name.startswith(".") else _package_dir_name(name)
                if label is None:
                    continue
                try:
                    st = host.stat(os.path.join(d, name))
                except (OSError, LookupError, TimeoutError):
                    continue
                if st.mtime >= cutoff:
                    found.append(Change("package", st.mtime, f"install {label} (in {d})", d))
    recent = [c for c in found if c.time >= cutoff]
    return _dedupe_packages(recent), read


def _evidence(kind_text: str, items: Sequence[Change], now: float, cutoff: float) -> Evidence:
    items = sorted(items, key=lambda c: c.time, reverse=True)
    latest = items[0]
    sources = ", ".join(dict.fromkeys(c.source for c in items[:MAX_SAMPLES]))
    return Evidence(
        source=sources[:300],
        summary=f"{len(items)} {kind_text} since {iso(cutoff)}; the latest {duration(now - latest.time)} ago: "
                f"{latest.what}",
        value=round((now - latest.time) / 60.0, 1),
        threshold=round((now - cutoff) / 60.0),
        unit="min ago",
        samples=tuple(c.line(now) for c in items[:MAX_SAMPLES]),
        first_seen=iso(min(c.time for c in items)),
        last_seen=iso(latest.time),
        count=len(items),
        times=event_times([c.time for c in items]),
    )


@probe(
    "changes",
    findings=FINDINGS,
    timeout=10.0,  # package logs, a bounded /etc walk, two systemctl calls, and the logs' tails
    options={
        # Hours that count as "recent" for a change (see the module docstring).
        "lookback_hours": 24.0,
        # Epoch seconds; when > 0, only changes and log lines at or after it count.
        "since": 0.0,
        # Configuration trees walked for modified files (globs allowed).
        "config_paths": ["/etc"],
        # Paths (globs) not counted as config changes: rewritten by the system, or bulk data.
        "config_ignore": [
            "/etc/mtab", "/etc/resolv.conf", "/etc/resolv.conf.*", "/etc/adjtime", "/etc/ld.so.cache",
            "/etc/*.lock", "/etc/.pwd.lock", "/etc/*-", "*~", "*.swp", "/etc/machine-id",
            "/etc/ssl/certs", "/etc/alternatives", "/etc/apparmor.d/cache", "/etc/lvm/archive",
            "/etc/lvm/backup", "/etc/lvm/cache", "/etc/.git", "/etc/cups/subscriptions.conf*",
            "/etc/ca-certificates.conf.dpkg-old",
            # A service's state beside its configuration is not configuration: logs (and their
            # rotations), pid files, sockets, temporary files, cache and session folders.
            "*/log", "*/logs", "*.log", "*.log.[0-9]*", "*.log-[0-9]*", "*.pid", "*.sock", "*.tmp",
            "*/tmp", "*/cache", "*/sessions",
        ],
        # Bounds of the walk: directory depth below each config path, and entries looked at.
        "max_depth": 6,
        "max_config_files": 20000,
        # Files or directories whose modification time marks a deploy (globs).
        "deploy_markers": [],
        # Where applications live: git checkouts or Capistrano-style roots with a `current` link.
        "app_dirs": ["/srv/*", "/var/www", "/var/www/*", "/opt/*", "/app", "/usr/src/app", "/home/*/app*"],
        # Directories of language packages installed outside the system package manager.
        "package_dirs": [
            "/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
            "/var/lib/gems/*/specifications", "/usr/local/lib/ruby/gems/*/specifications",
            "/usr/local/lib/node_modules", "/usr/lib/node_modules",
        ],
        # Look at systemd units' last start times.
        "restarts": True,
        "max_units": 300,
        # Errors "began after a change" when their first line came within this many minutes of it...
        "after_minutes": 30.0,
        # ...and none of the same kind came in this many minutes before it.
        "before_minutes": 60.0,
        # Extra logs (globs) searched for the first error time, besides the usual ones.
        "log_paths": [],
        # Bytes read from the end of each log for that.
        "log_max_bytes": 1 << 20,
    },
)
def changes(ctx: ProbeContext) -> list[Finding]:
    """Recent package upgrades, configuration changes, deploys and service
    restarts, and whether errors in the logs began within minutes after one."""
    host = ctx.host
    now = host.time()
    cutoff = ctx.window_start(now)
    tz = host_zone(host)
    out: list[Finding] = []
    scope = f"since {iso(cutoff)}"
    every: list[Change] = []

    # Packages.
    pkgs, pkg_logs = find_packages(host, tz, now, [str(p) for p in ctx.opt("package_dirs")], cutoff)
    every += pkgs
    if pkgs:
        out.append(ctx.finding("change.recent_package_upgrade", True,
                               _evidence("package change(s)", pkgs, now, cutoff)))
    elif pkg_logs:
        out.append(ctx.finding("change.recent_package_upgrade", False, Evidence(
            source=", ".join(pkg_logs), summary=f"no package installed, upgraded or removed {scope}", count=0)))

    # Configuration: the trees named, and the files the running services were started with.
    roots = [str(p) for p in ctx.opt("config_paths")]
    for svc in ctx.inv.services:
        for c in svc.configs:
            if not c.problem and not any(c.path == r or c.path.startswith(r.rstrip("/") + "/") for r in roots):
                roots.append(c.path)
    ignore = [str(p) for p in ctx.opt("config_ignore")]
    ignore += [p for p in (str(x) for x in ctx.opt("log_paths")) if p.startswith("/")]  # logs are not config
    ignore += [lg.path for lg, _svc in ctx.inv.all_logs()]
    walk = walk_configs(host, roots, cutoff=cutoff,
                        ignore=ignore + sorted(_container_managed(host)),
                        max_depth=int(ctx.opt("max_depth")), max_files=int(ctx.opt("max_config_files")))
    every += walk.changed
    bound = f" (walk stopped at {walk.looked} entries or depth {ctx.opt('max_depth')})" if walk.truncated else ""
    if walk.changed:
        ev = _evidence("configuration change(s)", list(walk.changed), now, cutoff)
        out.append(ctx.finding("change.recent_config_change", True,
                               replace(ev, summary=ev.summary + bound)))
    elif walk.roots:
        out.append(ctx.finding("change.recent_config_change", False, Evidence(
            source=", ".join(walk.roots),
            summary=f"no configuration file modified {scope} among {walk.looked} entries{bound}", count=0)))

    # Deploys and restarts.
    app_dirs = [str(p) for p in ctx.opt("app_dirs")]
    app_dirs += [svc.cwd for svc in ctx.inv.services if svc.cwd and svc.cwd not in app_dirs and _app_dir(svc.cwd)]
    deploys, places = find_deploys(host, app_dirs, [str(p) for p in ctx.opt("deploy_markers")])
    bare = [d for d in app_dirs if "*" not in d and d not in places and not any(p.startswith(d + "/") for p in places)
            and any(svc.cwd == d for svc in ctx.inv.services)]
    code, code_places = find_code_changes(host, bare, cutoff)
    deploys += code
    places += code_places
    recent_deploys = [d for d in deploys if d.time >= cutoff]
    every += recent_deploys
    restarts = find_restarts(host, tz, int(ctx.opt("max_units"))) if ctx.opt("restarts") else None
    recent_restarts = [r for r in restarts or [] if r.time >= cutoff]
    every += recent_restarts
    restart_note = (f"; {len(recent_restarts)} service(s) (re)started {scope}: "
                    + ", ".join(r.what.split()[1] for r in recent_restarts[:5])) if recent_restarts else ""
    if recent_deploys:
        ev = _evidence("deploy(s)", recent_deploys, now, cutoff)
        out.append(ctx.finding("change.recent_deploy", True,
                               replace(ev, summary=ev.summary + restart_note)))
    elif places:
        latest = max(deploys, key=lambda c: c.time, default=None)
        last = f"; the last one {duration(now - latest.time)} ago: {latest.what}" if latest else ""
        out.append(ctx.finding("change.recent_deploy", False, Evidence(
            source=", ".join(places[:8]), summary=f"no deploy {scope} in {len(places)} place(s){last}{restart_note}",
            count=0)))

    # Did errors begin right after one of them?
    out += _errors_after(ctx, every, cutoff, now)
    return out


def _app_dir(path: str) -> bool:
    """A service's working folder that may be an application checkout (not a system folder)."""
    return path.count("/") >= 2 and not path.startswith(("/proc", "/sys", "/dev", "/run", "/usr", "/etc", "/var/lib",
                                                         "/var/log", "/root"))


def _errors_after(ctx: ProbeContext, every: list[Change], cutoff: float, now: float) -> list[Finding]:
    """``change.errors_began_after_change`` and, for the changes that were configuration
    edits, ``change.errors_began_after_config_change`` (none when no log could be read)."""
    fid = "change.errors_began_after_change"
    cfid = "change.errors_began_after_config_change"
    scope = f"since {iso(cutoff)}"
    if not every:
        nothing = Evidence(source="changes", summary=f"no change found {scope}", count=0)
        return [ctx.finding(fid, False, nothing), ctx.finding(cfid, False, nothing)]
    after = float(ctx.opt("after_minutes")) * 60.0
    before = float(ctx.opt("before_minutes")) * 60.0
    first_change = min(c.time for c in every)
    read = collect_logs(ctx.host, cutoff=first_change - before, paths=[str(p) for p in ctx.opt("log_paths")],
                        found=[lg.path for lg, _svc in ctx.inv.all_logs() if lg.kind != "access"],
                        max_bytes=int(ctx.opt("log_max_bytes")))
    if not read.sources:
        return []  # no log: cannot tell when errors began
    floor = float(ctx.opt("since")) if float(ctx.opt("since")) > 0 else 0.0
    times: dict[str, tuple[str, int, list[float]]] = {}
    covered: dict[str, float] = {}
    for scan in read.scans:
        for h in scan.hits:
            entry = times.setdefault(h.signature.name, (h.signature.finding, h.signature.min_count, []))
            entry[2].extend(t for t in h.times if t >= floor)
            if scan.partial:  # only a tail was read: it says nothing of what came before its first line
                start = scan.head_time if scan.head_time is not None else float("inf")
                covered[h.signature.name] = max(covered.get(h.signature.name, float("-inf")), start)
    found = align(every, times, after=after, before=before, covered_from=covered)
    where = ", ".join(read.sources[:6])
    configs = [c for c in every if c.kind == "config"]
    after_config = [a for a in found if a.change.kind == "config"]
    if after_config:
        by_config = ctx.finding(cfid, True, *[_aligned(a, where, after, before) for a in after_config[:5]])
    else:
        what = (f"{len(configs)} configuration change(s) {scope}, no error signature began within "
                f"{after / 60:.0f} min after one" if configs else f"no configuration change {scope}")
        by_config = ctx.finding(cfid, False, Evidence(source=where, summary=what, count=0))
    if not found:
        return [ctx.finding(fid, False, Evidence(
            source=where,
            summary=f"no error signature in {len(read.sources)} log(s) began within {after / 60:.0f} min after "
                    f"any of {len(every)} change(s) {scope}",
            count=0)), by_config]
    return [ctx.finding(fid, True, *[_aligned(a, where, after, before) for a in found[:5]]), by_config]


def _aligned(a: Alignment, where: str, after: float, before: float) -> Evidence:
    gap = a.first_error - a.change.time
    return Evidence(
        source=where,
        summary=f"'{a.signature}' errors ({a.finding}) began {duration(gap)} after {a.change.kind} change: "
                f"{a.change.what}; first at {iso(a.first_error)}, {a.count_after} line(s) in the "
                f"{after / 60:.0f} min after it, none in the {before / 60:.0f} min before",
        value=round(gap / 60.0, 1),
        threshold=round(after / 60.0),
        unit="min",
        first_seen=iso(a.change.time),
        last_seen=iso(a.first_error),
        count=a.count_after,
    )
