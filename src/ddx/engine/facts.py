"""Facts of this host that fill the knowledge base's check commands.

A check's command names what it needs as ``{{name}}`` (``tail -n 50 {{app_log}}``,
``psql -h {{db_host}} -p {{db_port}}``), or ``{{name|default}}`` where a
default makes sense (``du -xh {{full_mount|/}}``). A command line that starts
with ``? `` is optional: it is left out when one of its facts is unknown (the
Apache variant of a check on an nginx host), unless every line would be.
``facts_from`` collects the values
from the inventory (the web server's configuration and access log, the
application's folder, configuration and log, the database and caches it
uses) and from the findings (the full filesystem, the path a permission error
names, the address that does not answer, the certificate's host and port).
``fill`` puts them in; a value ddx did not find stays a named placeholder,
``<app_log>``, and the check says which ones are left to fill in.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ddx.inventory.model import Inventory, Service
from ddx.model import Finding, State

__all__ = ["FACTS", "Facts", "facts_from", "fill", "fill_all", "placeholders"]

# The names a check command may use, with what each stands for (``ddx kb lint`` checks them).
FACTS: dict[str, str] = {
    "access_log": "the web server's access log",
    "web_conf": "the web server's main configuration file",
    "web_conf_dir": "the folder of the web server's configuration",
    "error_log": "the web server's error log",
    "status_url": "the web server's status page (nginx stub_status, Apache server-status)",
    "app_dir": "the application's folder (its working directory)",
    "app_config": "the application's settings file",
    "app_log": "the application's log",
    "service": "the service that reports the errors (its systemd unit, else its name)",
    "service_pid": "the pid of that service's master process",
    "service_user": "the user that service runs as",
    "db_host": "the database server's host",
    "db_port": "the database server's port",
    "cache_host": "the memcached server's host",
    "cache_port": "the memcached server's port",
    "redis_host": "the Redis server's host",
    "redis_port": "the Redis server's port",
    "tls_host": "the host whose certificate is checked",
    "tls_port": "the TLS port whose certificate is checked",
    "url": "a URL of the site",
    "full_mount": "the filesystem that is full or nearly so",
    "failing_path": "the path the permission errors name",
    "dependency_host": "the address a configuration names that does not answer (host)",
    "dependency_port": "... and its port",
    "disk_device": "the block device with errors",
}

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*(?:\|([^}]*))?\}\}")


@dataclass(frozen=True)
class Facts:
    """Values by name, each with where ddx found it."""

    values: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        return self.values.get(name)


def placeholders(command: str) -> list[str]:
    """The fact names a command uses, in order."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(command)]


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./:@%+=,-]+", value) else shlex.quote(value)


def fill(command: str, facts: Facts | None) -> tuple[str, list[str]]:
    """The command with the facts filled in (defaults where the fact is unknown), and
    the names left as ``<name>`` placeholders."""
    missing: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = facts.get(name) if facts is not None else None
        if value:
            return _quote(value)
        if default is not None:
            return default.strip()
        if name not in missing:
            missing.append(name)
        return f"<{name}>"

    return _PLACEHOLDER.sub(sub, command.removeprefix("? ")), missing


def fill_all(commands: Sequence[str], facts: Facts | None) -> tuple[list[str], list[str]]:
    """Every line of a check filled; optional lines (``? ``) with an unknown fact left
    out, unless that would leave none. Returns (lines, names left as placeholders)."""
    done: list[tuple[str, list[str], bool]] = [(*fill(c, facts), c.startswith("? ")) for c in commands]
    kept = [d for d in done if not (d[2] and d[1])] or done
    missing: list[str] = []
    for _text, names, _opt in kept:
        missing += [n for n in names if n not in missing]
    return [text for text, _n, _o in kept], missing


# --- collecting ----------------------------------------------------------------------------------


_APP_PROGRAMS = ("gunicorn", "uwsgi", "unicorn", "puma", "node", "java", "rails")


def _first(items: Iterable[str | None]) -> str | None:
    return next((x for x in items if x), None)


def _app(inv: Inventory) -> Service | None:
    cands = [s for s in inv.services if s.pid > 0 and (s.program in _APP_PROGRAMS or s.program.startswith("php-fpm"))]
    cands += [s for s in inv.services if s.pid > 0 and s not in cands and s.configs
              and s.program not in ("nginx", "apache2", "httpd", "haproxy", "postgres", "mysqld", "mariadbd",
                                    "memcached", "redis-server")]
    return cands[0] if cands else None


def _host_port(svc: Service) -> tuple[str, str] | None:
    tcp = [ln for ln in svc.listens if ln.proto == "tcp" and ln.port]
    if not tcp:
        return None
    ln = sorted(tcp, key=lambda ln: (":" in ln.address, ln.address))[0]
    return ln.connect_host, str(ln.port)


def _dep(inv: Inventory, app: Service | None, schemes: Sequence[str], ports: Sequence[int],
         programs: Sequence[str]) -> tuple[str, str, str] | None:
    """(host, port, where) of a dependency of these kinds: the application's first, else a local server."""
    for svc in ([app] if app else []) + [s for s in inv.services if s is not app]:
        for d in svc.deps:
            if d.scheme in schemes or d.port in ports:
                return d.host, str(d.port), f"{d.what} in {d.where}"
    for svc in inv.services:
        if svc.program in programs and svc.pid > 0:
            hp = _host_port(svc)
            if hp:
                return hp[0], hp[1], f"{svc.name} listening"
    return None


def _findings(findings: Iterable[Finding], *, known: bool = False) -> dict[str, Finding]:
    return {f.id: f for f in findings if f.state is State.PRESENT or (known and f.state is State.ABSENT)}


def facts_from(inv: Inventory | None, findings: Iterable[Finding]) -> Facts:
    """The facts the inventory and the findings give (see the module docstring)."""
    values: dict[str, str] = {}
    sources: dict[str, str] = {}

    def put(name: str, value: str | None, source: str) -> None:
        if value and name not in values:
            values[name] = value
            sources[name] = source

    findings = list(findings)
    present = _findings(findings)
    looked = _findings(findings, known=True)  # present first is not needed: one source per id
    if inv is not None:
        web = next((s for s in inv.services if s.program in ("nginx", "apache2", "httpd") and s.pid > 0), None)
        if web is not None:
            put("web_conf", web.config, f"{web.name} (pid {web.pid})")
            put("web_conf_dir", posixpath.dirname(web.config) + "/" if web.config else None, web.name)
            put("access_log", _first(lg.path for lg in web.logs if lg.kind == "access"), web.name)
            put("error_log", _first(lg.path for lg in web.logs if lg.kind != "access"), web.name)
            hp = _host_port(web)
            if hp:
                put("url", f"http://{hp[0]}:{hp[1]}/", web.name)
        app = _app(inv)
        if app is not None:
            put("app_dir", app.cwd or None, app.name)
            put("app_config", app.config or None, app.name)
            put("app_log", _first(lg.path for lg in app.logs if lg.kind != "access"), app.name)
        svc = app or web
        if svc is not None:
            put("service", svc.unit if svc.unit.endswith(".service") else svc.name, svc.name)
            put("service_pid", str(svc.pid), svc.name)
            put("service_user", svc.user or None, svc.name)
        db = _dep(inv, app, ("postgresql", "postgres", "mysql", "mariadb"), (5432, 3306),
                  ("postgres", "mysqld", "mariadbd"))
        if db:
            put("db_host", db[0], db[2])
            put("db_port", db[1], db[2])
        cache = _dep(inv, app, ("memcached",), (11211,), ("memcached",))
        if cache:
            put("cache_host", cache[0], cache[2])
            put("cache_port", cache[1], cache[2])
        redis = _dep(inv, app, ("redis", "rediss"), (6379,), ("redis-server",))
        if redis:
            put("redis_host", redis[0], redis[2])
            put("redis_port", redis[1], redis[2])
    for fid in ("disk.space_exhausted", "disk.space_low", "disk.inodes_exhausted"):
        f = present.get(fid)
        if f and f.evidence:
            mount = f.evidence[0].source.removeprefix("statvfs ").split(",")[0].strip()
            put("full_mount", mount if mount.startswith("/") else None, fid)
    for fid in ("config.path_permissions_deny_service", "logs.permission_denied"):
        f = present.get(fid)
        if f:
            from ddx.logs.permissions import denied_path

            put("failing_path", _first(denied_path(s) for ev in f.evidence for s in ev.samples), fid)
    f = present.get("config.references_unreachable_endpoint")
    if f:
        for ev in f.evidence:
            for s in ev.samples:
                m = re.match(r"^\[?([A-Za-z0-9._:-]+?)\]?:(\d+)[: ]", s)
                if m:
                    put("dependency_host", m.group(1), fid)
                    put("dependency_port", m.group(2), fid)
    for fid in ("tls.cert_expired", "tls.cert_expiring"):
        f = present.get(fid) or looked.get(fid)
        if f and f.evidence:
            m = re.match(r"^\[?([A-Za-z0-9._:-]+?)\]?:(\d+)\b", f.evidence[0].source.removeprefix("https://"))
            if m:
                put("tls_host", m.group(1), fid)
                put("tls_port", m.group(2), fid)
    f = present.get("svc.worker_pool_saturated") or looked.get("svc.worker_pool_saturated")
    for ev in f.evidence if f else ():
        if ev.source.startswith("http") and "status" in ev.source:
            put("status_url", ev.source, "svc.worker_pool_saturated")
    f = present.get("disk.io_errors")
    for ev in f.evidence if f else ():
        for s in ev.samples:
            m = re.search(r"\bdev ([a-z]+[a-z0-9]*?)(?:\d+)?[, ]", s)
            if m:
                put("disk_device", f"/dev/{m.group(1)}", "disk.io_errors")
    return Facts(values, sources)
