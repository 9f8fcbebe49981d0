"""Services a supervisor runs: found from the supervisor, alive or between two lives.

A service that crashes at every start (a crash loop) is seldom listening at the
moment ddx looks, so it is not found from the listening sockets. Its supervisor
is always there, and says what it runs:

- **runit** (``runsv DIR``) and **s6** (``s6-supervise DIR``): the service folder's
  ``run`` script. Its ``cd DIR`` is the service's folder; its ``exec`` line is the
  command, after ``env``/``chpst``/``setuidgid`` wrappers and ``VAR=value``
  assignments (its environment); its redirections (``>> FILE``, ``2> FILE``) are
  its logs, and so is ``log/main/current`` when ``svlogd`` keeps it.
- **supervisord**: its configuration's ``[program:NAME]`` sections (``command``,
  ``directory``, ``environment``, ``stdout_logfile``, ``stderr_logfile``), with the
  ``[include]`` files.

The command is then read like any service's (``ddx.inventory.programs``): its
settings files, logs, data folders and dependencies. Nothing is executed.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from ddx.host import Host
from ddx.inventory.files import MAX_CONFIG_BYTES, expand_glob, has_glob, is_file, why
from ddx.probes.parsers.proctable import Proc, ProcTable, program_of

__all__ = ["SUPERVISORS", "Supervised", "supervised_services"]

SUPERVISORS = ("runsv", "s6-supervise", "supervisord")
_WRAPPERS = {"env", "chpst", "setuidgid", "envuidgid", "nice", "ionice", "softlimit", "exec", "su-exec", "gosu",
             "runuser", "sudo", "setsid", "nohup", "stdbuf"}
_REDIRECT = re.compile(r"(?:^|\s)(?:[12&]?>>?|&>>?)\s*([^\s;&|]+)")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
MAX_PROGRAMS = 64


@dataclass
class Supervised:
    """One supervised service: its supervisor, the command it runs, where it logs."""

    name: str
    supervisor: Proc
    definition: str  # the run script or the supervisord configuration file
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = ""
    logs: list[tuple[str, str]] = field(default_factory=list)  # (path, how it is named)
    notes: list[str] = field(default_factory=list)

    @property
    def program(self) -> str:
        return program_of(self.argv) if self.argv else self.supervisor.program


def _command(words: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The command of an ``exec`` line's words, without its wrappers and assignments,
    and the environment those assignments give it."""
    env: dict[str, str] = {}
    out = list(words)
    while out:
        w = out[0]
        m = _ASSIGN.match(w)
        if m:
            env[m.group(1)] = m.group(2)
            out.pop(0)
        elif posixpath.basename(w) in _WRAPPERS:
            out.pop(0)
            while out and out[0].startswith("-"):  # the wrapper's own options (chpst -u app)
                opt = out.pop(0)
                if opt in ("-u", "-U", "-n", "-l", "-L", "-m", "-o", "-p", "-c") and out:
                    out.pop(0)
            if posixpath.basename(w) in ("setuidgid", "envuidgid", "su-exec", "gosu") and out:
                out.pop(0)  # the user
        else:
            break
    return out, env


def _words(line: str) -> list[str]:
    """A shell line's words up to its first redirection or separator."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        words = line.split()
    out = []
    for w in words:
        if w in (";", "&&", "||", "|", "&") or re.match(r"^[12&]?>", w) or w.startswith("<"):
            break
        out.append(w)
    return out


def parse_run_script(text: str, service_dir: str) -> tuple[list[str], dict[str, str], str, list[str]]:
    """(command, environment, working folder, redirected log files) of a runit or s6
    ``run`` script. Pure."""
    cwd = service_dir
    argv: list[str] = []
    env: dict[str, str] = {}
    logs: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = _words(line)
        if words[:1] == ["cd"] and len(words) > 1:
            cwd = posixpath.normpath(posixpath.join(cwd, words[1]))
        elif words[:1] == ["export"]:
            for w in words[1:]:
                m = _ASSIGN.match(w)
                if m:
                    env[m.group(1)] = m.group(2)
        elif words[:1] == ["exec"]:
            cmd, more = _command(words[1:])
            env.update(more)
            if cmd:
                argv = cmd
        for m in _REDIRECT.finditer(line):
            target = m.group(1)
            if target.startswith("/") and target != "/dev/null" and not target.startswith("&"):
                logs.append(target)
    return argv, env, cwd, logs


def parse_supervisord(text: str) -> tuple[list[dict[str, str]], list[str]]:
    """(the ``[program:NAME]`` sections as key -> value, the ``[include] files`` patterns)
    of a supervisord configuration. Pure."""
    programs: list[dict[str, str]] = []
    includes: list[str] = []
    section = ""
    cur: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].rstrip() if not raw.lstrip().startswith(("command", "environment")) else raw.rstrip()
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        m = re.match(r"^\s*\[([^\]]+)\]\s*$", line)
        if m:
            section = m.group(1).strip()
            if section.startswith("program:"):
                cur = {"name": section.split(":", 1)[1]}
                programs.append(cur)
            continue
        k, sep, v = line.partition("=")
        if not sep:
            continue
        k, v = k.strip().lower(), v.strip()
        if section.startswith("program:"):
            cur[k] = v
        elif section == "include" and k == "files":
            includes += v.split()
    return programs[:MAX_PROGRAMS], includes


def _supervisord_env(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)="?([^",]*)"?', text):
        env[m.group(1)] = m.group(2)
    return env


def supervised_services(host: Host, table: ProcTable) -> list[Supervised]:
    """Every service a runit, s6 or supervisord supervisor on the host runs."""
    out: list[Supervised] = []
    for p in table.user_procs():
        if p.program not in SUPERVISORS or p.zombie:
            continue
        try:
            cwd = host.readlink(f"/proc/{p.pid}/cwd")
        except (OSError, LookupError, TimeoutError):
            cwd = ""
        if p.program in ("runsv", "s6-supervise"):
            arg = next((a for a in p.argv[1:] if not a.startswith("-")), "")
            svc_dir = posixpath.normpath(posixpath.join(cwd or "/", arg)) if arg else cwd
            if not svc_dir:
                continue
            run = posixpath.join(svc_dir, "run")
            s = Supervised(f"{posixpath.basename(svc_dir)} ({p.program})", p, run)
            try:
                text = host.read_text(run, max_bytes=MAX_CONFIG_BYTES)
            except (OSError, LookupError, TimeoutError) as exc:
                s.notes.append(f"its run script {run} could not be read: {why(exc)}")
                out.append(s)
                continue
            s.argv, s.env, s.cwd, redirects = parse_run_script(text, svc_dir)
            s.logs += [(lg, f"redirected in {run}") for lg in redirects]
            current = posixpath.join(svc_dir, "log", "main", "current")  # svlogd's
            if is_file(host, current):
                s.logs.append((current, "svlogd's log of the service"))
            out.append(s)
            continue
        conf = next((p.argv[i + 1] for i, a in enumerate(p.argv[:-1]) if a in ("-c", "--configuration")),
                    "/etc/supervisor/supervisord.conf")
        queue: list[str] = [conf]
        seen: set[str] = set()
        while queue and len(seen) < 32:
            path = queue.pop(0)
            if path in seen:
                continue
            seen.add(path)
            try:
                text = host.read_text(path, max_bytes=MAX_CONFIG_BYTES)
            except (OSError, LookupError, TimeoutError):
                continue
            programs, includes = parse_supervisord(text)
            for inc in includes:
                pat = inc if inc.startswith("/") else posixpath.join(posixpath.dirname(path), inc)
                queue += expand_glob(host, pat, files_only=True) if has_glob(pat) else [pat]
            for prog in programs:
                s = Supervised(f"{prog['name']} (supervisord)", p, path)
                s.argv = _words(prog.get("command", ""))
                s.env = _supervisord_env(prog.get("environment", ""))
                s.cwd = prog.get("directory", "")
                s.logs += [(prog[k], f"{k} in {path}") for k in ("stdout_logfile", "stderr_logfile")
                           if prog.get(k, "").startswith("/")]
                out.append(s)
    return out
