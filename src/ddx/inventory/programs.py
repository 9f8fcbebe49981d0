"""What ddx knows of common server programs: where their configuration is, what it says.

For each program a reader takes the master's command line and environment and
finds its configuration files (as that process was started: ``-c``,
``--config``, ``-f``, a positional file, an environment variable, the
program's default as the fallback), reads them (includes followed, bounded)
and collects the files it logs to, its data directories and the addresses of
its dependencies. Programs without a reader of their own (an application
server, a Java or Node service) get the generic one: configuration named on
the command line or in the environment, read as settings.

Readers never execute anything and treat an unreadable file as a note with the
reason, never as an error.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ddx.host import Host
from ddx.inventory.files import (
    MAX_CONFIG_BYTES,
    expand_glob,
    has_glob,
    is_dir,
    is_file,
    why,
)
from ddx.inventory.model import ConfigFile, Dependency, LogFile
from ddx.inventory.nginx import nginx_paths, read_nginx
from ddx.probes.parsers.endpoints import Endpoint, parse_settings

__all__ = ["KINDS", "LOG_FOLDERS", "Found", "read_program", "scan_settings"]

MAX_CONFIGS = 64  # configuration files read per service at most

# program -> kind of service (what the other probes look for)
KINDS: dict[str, str] = {
    **dict.fromkeys(("nginx", "apache2", "httpd", "lighttpd", "caddy", "envoy", "traefik"), "web"),
    "haproxy": "proxy",
    **dict.fromkeys(("postgres", "postmaster", "mysqld", "mariadbd", "mongod"), "database"),
    **dict.fromkeys(("redis-server", "valkey-server", "memcached"), "cache"),
    **dict.fromkeys(("gunicorn", "uwsgi", "unicorn", "puma", "php-fpm", "node", "java", "rails"), "app"),
}

# program -> folders under /var/log that belong to it (a glob per entry)
LOG_FOLDERS: dict[str, tuple[str, ...]] = {
    "nginx": ("nginx",),
    "apache2": ("apache2",),
    "httpd": ("httpd", "apache2"),
    "haproxy": ("haproxy",),
    "postgres": ("postgresql",),
    "postmaster": ("postgresql",),
    "mysqld": ("mysql", "mariadb"),
    "mariadbd": ("mysql", "mariadb"),
    "redis-server": ("redis",),
    "memcached": ("memcached",),
    "php-fpm": ("php*-fpm", "php-fpm"),
    "gunicorn": ("gunicorn",),
    "uwsgi": ("uwsgi",),
}

# Command-line options that name a configuration file, for any program.
CONFIG_OPTIONS = ("-c", "--config", "--conf", "--config-file", "--configfile", "-f", "--settings", "--env-file",
                  "--ini", "--yaml", "--json", "--defaults-file", "--fpm-config", "-y")
# Environment variables naming a configuration file: any name with one of these words.
_ENV_CONFIG = re.compile(r"(?i)(?:CONFIG|CONF|SETTINGS|INI|YAML|DOTENV|ENV_FILE)")
_ENV_LOG = re.compile(r"(?i)LOG")
_ENV_ADDRESS = re.compile(r"(?i)(?:URL|URI|DSN|HOST|ADDR|SERVER|ENDPOINT|BROKER)")

# In settings: a key with an absolute path as its value.
_PATH_KV = re.compile(r"""["']?([A-Za-z_][A-Za-z0-9_.\[\]-]*)["']?\s*(?:=>|[=:])\s*["']?(/[^\s"',;}\]]*)""")
_LOG_KEY = re.compile(r"(?i)(?:^|[_.\-\[])(?:log|logs|logfile|logpath|log_?file|log_?dir|log_?path|errorlog|error_log"
                      r"|accesslog|access_log|logto|slowlog)(?:$|[_.\-\]])|log$")
_DATA_KEY = re.compile(r"(?i)(?:dir|directory|path|root|folder|cache|upload|session|storage|data|spool|tmp|temp"
                       r"|media|static|files|store)")
_LOG_NAME = re.compile(r"(?i)(?:\.log|\.err|\.out|_log|-log)(?:\.\d+)?$")


@dataclass
class Found:
    """What a reader found for one service."""

    configs: list[ConfigFile] = field(default_factory=list)
    logs: list[LogFile] = field(default_factory=list)
    data_dirs: list[str] = field(default_factory=list)
    deps: list[Dependency] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    own_dirs: list[str] = field(default_factory=list)  # folders of its own where recent logs may be
    log_dirs: list[str] = field(default_factory=list)  # folders its configuration logs into

    def config(self, path: str, how: str, detail: str = "", problem: str = "") -> None:
        if all(c.path != path for c in self.configs):
            self.configs.append(ConfigFile(path, how, detail, problem))
        if problem:
            self.notes.append(f"configuration {path}: {problem}")

    def log(self, path: str, how: str, detail: str = "", kind: str = "") -> None:
        if path and all(lg.path != path for lg in self.logs):
            self.logs.append(LogFile(path, how, detail, kind))

    def data(self, path: str) -> None:
        """A data directory; one inside another already listed adds nothing, and a
        parent replaces the ones inside it."""
        path = path.rstrip("/") or "/"
        if path in ("/", "/tmp", "/var", "/usr", "/etc") or _system_dir(path) and not path.startswith("/var/"):
            return
        if any(path == d or path.startswith(d + "/") for d in self.data_dirs):
            return
        self.data_dirs[:] = [d for d in self.data_dirs if not d.startswith(path + "/")]
        self.data_dirs.append(path)

    def dep(self, e: Endpoint) -> None:
        d = Dependency(e.host, e.port, e.where, e.what, getattr(e, "scheme", ""))
        if all((x.host, x.port) != (d.host, d.port) for x in self.deps):
            self.deps.append(d)

    def own(self, path: str) -> None:
        path = path.rstrip("/")
        if path and path not in self.own_dirs and not _system_dir(path):
            self.own_dirs.append(path)


def _system_dir(path: str) -> bool:
    """Folders that belong to the system, not to one service (never scanned as its own)."""
    top = ("/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/var", "/var/log", "/var/lib", "/tmp", "/run",
           "/root", "/home", "/opt", "/srv", "/proc", "/sys", "/dev", "/boot")
    return path in top or path.startswith(("/usr/", "/proc/", "/sys/", "/dev/", "/etc/", "/boot/", "/run/"))


def _opt(argv: Sequence[str], *names: str) -> tuple[str, str] | None:
    """(option, value) of the first of ``names`` on a command line (``-c F``, ``-cF``, ``--config=F``)."""
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return n, argv[i + 1]
            if n.startswith("--") and a.startswith(n + "="):
                return n, a.split("=", 1)[1]
            if not n.startswith("--") and len(n) == 2 and a.startswith(n) and len(a) > 2 and a[2] != "-":
                return n, a[2:]
    return None


def _abs(path: str, base: str) -> str:
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(base or "/", path))


# --- generic settings --------------------------------------------------------------------------


def scan_settings(text: str, path: str) -> tuple[list[Endpoint], list[tuple[str, str, int]], list[tuple[str, str, int]]]:
    """(dependency addresses, log paths, directory paths) named in a settings
    file of any usual format (``.env``, YAML, INI, TOML, JSON, Python assignments).
    A log path is the value of a key about logs or any path ending like a log;
    a directory path is the value of a key about folders (caller checks it is one).
    Paths are (key, value, line)."""
    deps = parse_settings(text, path)
    logs: list[tuple[str, str, int]] = []
    dirs: list[tuple[str, str, int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("#", ";", "//")):
            continue
        for m in _PATH_KV.finditer(line):
            key, value = m.group(1), m.group(2).rstrip(".")
            if len(value) < 2 or "$" in value or "{" in value:
                continue
            if _LOG_KEY.search(key) or _LOG_NAME.search(value):
                logs.append((key, value, lineno))
            elif _DATA_KEY.search(key):
                dirs.append((key, value, lineno))
    return deps, logs, dirs


def read_settings(host: Host, path: str, how: str, detail: str, found: Found, base: str = "") -> None:
    """Read one settings file and add what it names to ``found``."""
    text = _read_config(host, path, how, detail, found)
    if text is None:
        return
    found.own(posixpath.dirname(path))
    deps, logs, dirs = scan_settings(text, path)
    for e in deps:
        found.dep(e)
    for key, value, line in logs:
        full = _abs(value, base or posixpath.dirname(path))
        if is_dir(host, full):
            found.log_dirs.append(full)
        else:
            found.log(full, "config", f"{key} in {path}:{line}")
    for _key, value, _line in dirs:
        full = _abs(value, base or posixpath.dirname(path))
        if is_dir(host, full):
            found.data(full)


# --- per program ---------------------------------------------------------------------------------


Reader = Callable[[Host, Sequence[str], Mapping[str, str], str, Found], None]


def _nginx(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    from ddx.probes.parsers.httpparse import Stmt

    conf, prefix, how = nginx_paths(argv)
    tree = read_nginx(host, conf, prefix)
    for i, f in enumerate(tree.files):
        found.config(f, ("argv" if how == "-c" else "default") if i == 0 else "include",
                     how if i == 0 else f"included by {conf}")
    for p in tree.problems:
        found.notes.append(f"configuration {p}")
    if not tree.files:
        found.config(conf, "argv" if how == "-c" else "default", how, "not readable")
    error_logs: list[tuple[str, str]] = []
    access_logs: list[tuple[str, str]] = []

    def walk(items: Sequence[Stmt]) -> None:
        for s in items:
            if s.name in ("error_log", "access_log") and s.args:
                p = s.args[0]
                if p != "off" and "$" not in p and not p.startswith(("syslog:", "memory:", "stderr")):
                    (error_logs if s.name == "error_log" else access_logs).append(
                        (_abs(p, prefix), f"{s.name} in {s.file}:{s.line}"))
            elif s.name.endswith("_temp_path") and s.args:
                found.data(_abs(s.args[0], prefix))
            elif s.name == "root" and s.args and "$" not in s.args[0]:
                found.data(_abs(s.args[0], prefix))
            if s.block is not None:
                walk(s.block)

    walk(tree.stmts)
    # nginx's compiled-in defaults where the configuration names no log (Debian's build: /var/log/nginx)
    default_dir = "/var/log/nginx" if prefix.rstrip("/") == DEFAULT_NGINX_PREFIX else posixpath.join(prefix, "logs")
    if not error_logs:
        error_logs.append((posixpath.join(default_dir, "error.log"), "nginx's default error_log"))
    if not access_logs and tree.files:
        access_logs.append((posixpath.join(default_dir, "access.log"), "nginx's default access_log"))
    for p, detail in error_logs:
        found.log(p, "config" if " in " in detail else "default", detail)
    for p, detail in access_logs:
        found.log(p, "config" if " in " in detail else "default", detail, "access")
    for e in tree.addresses():
        found.dep(e)
    found.own(prefix.rstrip("/"))


DEFAULT_NGINX_PREFIX = "/usr/share/nginx"


def _kv_conf(text: str) -> dict[str, str]:
    """``key = value`` / ``key value`` lines (PostgreSQL, Redis, my.cnf sections flattened), last wins."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith(("[", ";")):
            continue
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_.-]*)\s*(?:=\s*|\s+)(.*)$", line)
        if m:
            out[m.group(1).lower().replace("-", "_")] = m.group(2).strip().strip("'\"")
    return out


def _postgres(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    data = _opt(argv, "-D", "--pgdata")
    datadir = data[1] if data else env.get("PGDATA", "")
    if datadir:
        datadir = _abs(datadir, cwd)
    cfg_opt = next((a.split("=", 1)[1] for i, a in enumerate(argv) if a.startswith("config_file=")
                    and i > 0 and argv[i - 1] == "-c"), None) or next(
        (a.split("=", 1)[1] for a in argv if a.startswith("--config-file=") or a.startswith("--config_file=")), None)
    conf = cfg_opt or (posixpath.join(datadir, "postgresql.conf") if datadir else "")
    if not conf:
        found.notes.append("no data directory on its command line (-D) or in PGDATA: configuration not found")
        return
    settings: dict[str, str] = {}
    queue = [(conf, "argv" if cfg_opt else "datadir", "-c config_file" if cfg_opt else "in -D")]
    while queue and len(found.configs) < MAX_CONFIGS:
        path, how, detail = queue.pop(0)
        text = _read_config(host, path, how, detail, found)
        if text is None:
            continue
        kv = _kv_conf(text)
        for key in ("include", "include_if_exists"):
            if key in kv:
                queue.append((_abs(kv.pop(key), posixpath.dirname(path)), "include", f"included by {path}"))
        if "include_dir" in kv:
            d = _abs(kv.pop("include_dir"), posixpath.dirname(path))
            queue += [(f, "include", f"included by {path}") for f in expand_glob(host, d + "/*.conf", files_only=True)]
        settings.update(kv)
        for e in parse_settings(text, path):
            if e.what.lower().startswith(("primary_conninfo", "host")):
                found.dep(e)
    datadir = _abs(settings.get("data_directory", datadir), cwd) if settings.get("data_directory") or datadir else ""
    if datadir:
        found.data(datadir)
    collector = settings.get("logging_collector", "off").lower() in ("on", "true", "yes", "1")
    dest = settings.get("log_destination", "stderr").lower()
    if collector and ("stderr" in dest or "csvlog" in dest or "jsonlog" in dest):
        logdir = settings.get("log_directory", "log")
        found.log_dirs.append(_abs(logdir, datadir or posixpath.dirname(conf)))
    for key in ("stats_temp_directory",):
        if key in settings:
            found.data(_abs(settings[key], datadir))


def _mysql(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    opt = _opt(argv, "--defaults-file")
    mains = [opt[1]] if opt else ["/etc/mysql/my.cnf", "/etc/my.cnf"]
    settings: dict[str, str] = {}
    queue = [(p, "argv" if opt else "default", "--defaults-file" if opt else "") for p in mains]
    while queue and len(found.configs) < MAX_CONFIGS:
        path, how, detail = queue.pop(0)
        try:
            text = host.read_text(path, max_bytes=MAX_CONFIG_BYTES)
        except FileNotFoundError:
            continue
        except (OSError, LookupError, TimeoutError) as exc:
            found.config(path, how, detail, why(exc))
            continue
        found.config(path, how, detail)
        section = ""
        for line in text.splitlines():
            s = line.strip()
            if s.startswith("!include "):
                queue.append((_abs(s.split(None, 1)[1], posixpath.dirname(path)), "include", f"included by {path}"))
            elif s.startswith("!includedir "):
                d = _abs(s.split(None, 1)[1], posixpath.dirname(path))
                queue += [(f, "include", f"included by {path}") for f in expand_glob(host, d + "/*.cnf", files_only=True)]
            elif s.startswith("["):
                section = s.strip("[]").strip().lower()
            elif section in ("mysqld", "mariadb", "server", "mariadbd") or section.startswith("mariadb-"):
                settings.update(_kv_conf(s))
    for a in argv:  # command-line options win over the files
        if a.startswith("--") and "=" in a:
            k, v = a[2:].split("=", 1)
            settings[k.replace("-", "_")] = v
    datadir = _abs(settings.get("datadir", "/var/lib/mysql"), cwd)
    found.data(datadir)
    for key in ("log_error", "general_log_file", "slow_query_log_file"):
        v = settings.get(key, "")
        if v and v not in ("stderr",):
            found.log(_abs(v, datadir), "config", key)


def _read_config(host: Host, path: str, how: str, detail: str, found: Found) -> str | None:
    """A configuration file's text, noted in ``found`` (with the reason when it cannot be read)."""
    try:
        text = host.read_text(path, max_bytes=MAX_CONFIG_BYTES)
    except (OSError, LookupError, TimeoutError) as exc:
        found.config(path, how, detail, why(exc))
        return None
    found.config(path, how, detail)
    return text


def _redis(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    conf = next((a for a in argv[1:] if not a.startswith("-") and a.endswith(".conf")), "")
    how = "argv" if conf else "default"
    if not conf:
        conf = next((p for p in ("/etc/redis/redis.conf", "/etc/redis.conf") if is_file(host, p)), "")
    if not conf:
        return
    text = _read_config(host, conf, how, "", found)
    if text is None:
        return
    kv = _kv_conf(text)
    base = _abs(kv.get("dir", cwd or "/"), cwd or "/")
    found.data(base)
    if kv.get("logfile"):
        found.log(_abs(kv["logfile"], base), "config", f"logfile in {conf}")
    for key in ("replicaof", "slaveof"):
        if key in kv and len(kv[key].split()) == 2 and kv[key].split()[1].isdigit():
            h, p = kv[key].split()
            found.dep(Endpoint(h, int(p), conf, 0, key))


def _apache(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    opt = _opt(argv, "-f")
    root_opt = _opt(argv, "-d")
    debian = is_file(host, "/etc/apache2/apache2.conf")
    root = root_opt[1] if root_opt else ("/etc/apache2" if debian else "/etc/httpd")
    main = _abs(opt[1], root) if opt else (posixpath.join(root, "apache2.conf") if debian
                                           else posixpath.join(root, "conf/httpd.conf"))
    envvars: dict[str, str] = {}
    try:
        for line in host.read_text(posixpath.join(root, "envvars"), max_bytes=65536).splitlines():
            m = re.match(r"^\s*export\s+([A-Z_]+)=(\S+)", line)
            if m:
                envvars[m.group(1)] = m.group(2).split("$SUFFIX")[0].strip("'\"")
    except (OSError, LookupError, TimeoutError):
        pass
    queue = [(main, "argv" if opt else "default", "-f" if opt else "")]
    while queue and len(found.configs) < MAX_CONFIGS:
        path, how, detail = queue.pop(0)
        try:
            text = host.read_text(path, max_bytes=MAX_CONFIG_BYTES)
        except (OSError, LookupError, TimeoutError) as exc:
            if how != "include":
                found.config(path, how, detail, why(exc))
            continue
        found.config(path, how, detail)
        for lineno, line in enumerate(text.splitlines(), 1):
            words = line.strip().split()
            if not words or words[0].startswith("#"):
                continue
            head = words[0].lower()
            arg = re.sub(r"\$\{(\w+)\}", lambda m: envvars.get(m.group(1), m.group(0)), words[1]) if len(words) > 1 else ""
            arg = arg.strip("\"'")
            if head in ("include", "includeoptional") and arg:
                pat = _abs(arg, root)
                files = expand_glob(host, pat, files_only=True) if has_glob(pat) else [pat]
                if not has_glob(pat) and is_dir(host, pat):
                    files = expand_glob(host, pat + "/*", files_only=True)
                queue += [(f, "include", f"included by {path}:{lineno}") for f in files]
            elif head in ("errorlog",) and arg and not arg.startswith(("|", "syslog")):
                found.log(_abs(arg, root), "config", f"ErrorLog in {path}:{lineno}")
            elif head in ("customlog", "transferlog") and arg and not arg.startswith("|"):
                found.log(_abs(arg, root), "config", f"{words[0]} in {path}:{lineno}", "access")
        for e in parse_settings(text, path):
            if e.what.lower() in ("proxypass", "balancermember", "value") or "://" in e.what:
                found.dep(e)


def _haproxy(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-f"] or ["/etc/haproxy/haproxy.cfg"]
    for f in files[:MAX_CONFIGS]:
        paths = expand_glob(host, f.rstrip("/") + "/*.cfg", files_only=True) if is_dir(host, f) else [f]
        for path in paths:
            try:
                text = host.read_text(path, max_bytes=MAX_CONFIG_BYTES)
            except (OSError, LookupError, TimeoutError) as exc:
                found.config(path, "argv" if "-f" in argv else "default", "-f", why(exc))
                continue
            found.config(path, "argv" if "-f" in argv else "default", "-f")
            for lineno, line in enumerate(text.splitlines(), 1):
                words = line.split("#", 1)[0].split()
                if len(words) >= 3 and words[0] == "server":
                    host_port = words[2]
                    h, _, p = host_port.rpartition(":")
                    if p.isdigit() and h:
                        found.dep(Endpoint(h.strip("[]"), int(p), path, lineno, f"server {words[1]}"))


def _phpfpm(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    opt = _opt(argv, "--fpm-config", "-y")
    text_argv = " ".join(argv)
    m = re.search(r"\((/[^)]+\.conf)\)", text_argv)  # "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"
    main = opt[1] if opt else (m.group(1) if m else "")
    if not main:
        cands = expand_glob(host, "/etc/php/*/fpm/php-fpm.conf", files_only=True) or expand_glob(
            host, "/etc/php-fpm.conf", files_only=True)
        main = cands[-1] if cands else ""
    if not main:
        return
    queue = [(main, "argv" if (opt or m) else "default", "")]
    while queue and len(found.configs) < MAX_CONFIGS:
        path, how, detail = queue.pop(0)
        text = _read_config(host, path, how, detail, found)
        if text is None:
            continue
        kv = _kv_conf(text)
        if "include" in kv:
            pat = _abs(kv["include"], posixpath.dirname(path))
            queue += [(f, "include", f"included by {path}") for f in expand_glob(host, pat, files_only=True)]
        for key in ("error_log", "slowlog", "access.log", "php_admin_value[error_log]", "php_value[error_log]"):
            v = kv.get(key.replace("-", "_"))
            if v and v not in ("syslog",):
                found.log(_abs(v, "/var/log"), "config", f"{key} in {path}")


def _gunicorn(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    for opts, kind in ((("--error-logfile", "--log-file"), ""), (("--access-logfile",), "access")):
        o = _opt(argv, *opts)
        if o and o[1] not in ("-", "") and not o[1].startswith("syslog"):
            found.log(_abs(o[1], cwd), "config", o[0], kind)
    chdir = _opt(argv, "--chdir")
    if chdir:
        found.own(_abs(chdir[1], cwd))


def _uwsgi(host: Host, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    for opts in (("--logto", "--logto2"), ("--daemonize",)):
        o = _opt(argv, *opts)
        if o:
            found.log(_abs(o[1], cwd), "config", o[0])
    chdir = _opt(argv, "--chdir")
    if chdir:
        found.own(_abs(chdir[1], cwd))


READERS: dict[str, Reader] = {
    "nginx": _nginx,
    "postgres": _postgres,
    "postmaster": _postgres,
    "mysqld": _mysql,
    "mariadbd": _mysql,
    "redis-server": _redis,
    "valkey-server": _redis,
    "apache2": _apache,
    "httpd": _apache,
    "haproxy": _haproxy,
    "php-fpm": _phpfpm,
    "gunicorn": _gunicorn,
    "uwsgi": _uwsgi,
}
# Programs whose -c/-f is not a settings file to scan generically (handled by their reader, or not a file).
_OWN_CONFIG = frozenset({"nginx", "postgres", "postmaster", "mysqld", "mariadbd", "redis-server", "valkey-server",
                         "apache2", "httpd", "haproxy", "php-fpm", "memcached"})


def _generic(host: Host, program: str, argv: Sequence[str], env: Mapping[str, str], cwd: str, found: Found) -> None:
    """Configuration named on the command line or in the environment, read as settings."""
    if program not in _OWN_CONFIG:
        named: list[tuple[str, str]] = []
        for i, a in enumerate(argv[1:], 1):
            if a in CONFIG_OPTIONS and i + 1 < len(argv):
                named.append((a, argv[i + 1]))
            elif a.startswith("--") and "=" in a and a.split("=", 1)[0] in CONFIG_OPTIONS:
                named.append(tuple(a.split("=", 1)))  # type: ignore[arg-type]
        for opt, value in named:
            path = _abs(value, cwd)
            if len(found.configs) < MAX_CONFIGS and is_file(host, path):
                read_settings(host, path, "argv", opt, found, cwd)
    for name in sorted(env):
        value = env[name]
        if not value.startswith("/") or len(found.configs) >= MAX_CONFIGS:
            continue
        if _ENV_CONFIG.search(name) and is_file(host, value):
            read_settings(host, value, "env", name, found, cwd)
        elif _ENV_LOG.search(name):
            if is_dir(host, value):
                found.log_dirs.append(value)
            elif _LOG_NAME.search(value) or is_file(host, value):
                found.log(value, "config", f"environment variable {name}")
    lines = [f"{k}={v}" for k, v in sorted(env.items()) if _ENV_ADDRESS.search(k) and "/" not in k]
    if lines:
        for e in parse_settings("\n".join(lines), "environment"):
            found.dep(Endpoint(e.host, e.port, "environment", 0, e.what))


def read_program(host: Host, program: str, argv: Sequence[str], env: Mapping[str, str], cwd: str) -> Found:
    """Everything the program's configuration says, as far as it could be read."""
    found = Found()
    reader = READERS.get(program) or (READERS["php-fpm"] if program.startswith("php-fpm") else None)
    if reader is not None:
        try:
            reader(host, argv, env, cwd, found)
        except (OSError, LookupError, TimeoutError, ValueError) as exc:
            found.notes.append(f"reading {program}'s configuration failed: {why(exc)}")
    try:
        _generic(host, program, argv, env, cwd, found)
    except (OSError, LookupError, TimeoutError, ValueError) as exc:
        found.notes.append(f"reading the configuration named on its command line failed: {why(exc)}")
    return found
