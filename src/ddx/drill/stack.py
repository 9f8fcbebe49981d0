"""The sandbox web stack: nginx -> gunicorn (drillapp) -> memcached + PostgreSQL, with load.

Everything comes from Debian packages and runs on loopback, on free ports,
with data in the sandbox folder: the same parts, wired the same way, as the
small sites ddx is for. ``Stack.start()`` returns once the load generator sees
the site answering; scenarios then break one part of it.

Folders (all inside the sandbox):
  nginx/     nginx.conf, logs/access.log, logs/error.log, tls/ (a valid self-signed certificate)
  app/       drillapp.py, app.json (its settings), log/app.log, gunicorn.log
  app/cache      a 16 MiB tmpfs: rendered pages
  app/sessions   a tmpfs limited to 4096 inodes: session files
  pg/        PostgreSQL data and log;  memcached/  its log
  ddx.toml   the configuration a user of this stack would give ddx
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ddx.drill.sandbox import Sandbox, SandboxError, free_port

__all__ = ["PG_BIN", "Stack", "StackOptions", "missing_requirements"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
NGINX = "/usr/sbin/nginx"
MEMCACHED = "/usr/bin/memcached"
SYSTEM_PYTHON = "/usr/bin/python3"
APP_USER = "nobody"
DB_PASSWORD = "drillpw"


def _pg_bin() -> Path:
    base = Path("/usr/lib/postgresql")
    versions = sorted((p for p in base.glob("*/bin") if (p / "postgres").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else PG_BIN


def missing_requirements() -> list[str]:
    """What the stack needs and this host lacks, each with how to get it."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (the drill mounts tmpfs, creates cgroups and runs services as other users)")
    for path, pkg in ((NGINX, "nginx"), (MEMCACHED, "memcached"), (str(_pg_bin() / "postgres"), "postgresql"),
                      (SYSTEM_PYTHON, "python3")):
        if not os.path.exists(path):
            missing.append(f"{path} (apt-get install {pkg})")
    if os.path.exists(SYSTEM_PYTHON):
        for mod, pkg in (("gunicorn", "python3-gunicorn"), ("psycopg2", "python3-psycopg2")):
            r = subprocess.run([SYSTEM_PYTHON, "-c", f"import {mod}"], capture_output=True, timeout=20)
            if r.returncode != 0:
                missing.append(f"the {mod} module for {SYSTEM_PYTHON} (apt-get install {pkg})")
    for tool, pkg in (("runuser", "util-linux"), ("openssl", "openssl")):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (apt-get install {pkg})")
    for user in (APP_USER, "postgres"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            missing.append(f"the system user {user!r}")
    return missing


@dataclass
class StackOptions:
    """Knobs a scenario may set before the stack starts."""

    workers: int = 3
    backlog: int = 64
    worker_connections: int = 256
    memcached_item_max: str = "1m"
    memcached_memory_mb: int = 64
    pg_max_connections: int = 20
    client_max_body_size: str = "1m"
    load_rate: float = 20.0
    load_clients: int = 4
    cache_size: str = "16m"
    session_inodes: int = 4096
    supervisor: str = ""  # "runit": the app server runs under runsv, which restarts it when it exits
    ddx_config: bool = True  # write the ddx.toml a user of this stack would give ddx (the wild variant gives none)
    extra_nginx_http: str = ""
    app_settings: dict[str, Any] = field(default_factory=dict)


class Stack:
    """A running sandbox stack. Build with ``Stack(sandbox, options).start()``."""

    def __init__(self, sandbox: Sandbox, options: StackOptions | None = None, seed: int = 0) -> None:
        self.sb = sandbox
        self.opt = options or StackOptions()
        self.seed = seed
        self.dir = sandbox.dir
        self.started_at = time.time()
        self.ports = {name: free_port() for name in ("web", "tls", "status", "app", "memcached", "postgres")}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_bin = _pg_bin()

    # --- paths -------------------------------------------------------------------------

    @property
    def nginx_conf(self) -> Path:
        return self.dir / "nginx" / "nginx.conf"

    @property
    def app_config(self) -> Path:
        return self.dir / "app" / "app.json"

    @property
    def app_log(self) -> Path:
        return self.dir / "app" / "log" / "app.log"

    @property
    def cache_dir(self) -> Path:
        return self.dir / "app" / "cache"

    @property
    def sessions_dir(self) -> Path:
        return self.dir / "app" / "sessions"

    @property
    def access_log(self) -> Path:
        return self.dir / "nginx" / "logs" / "access.log"

    @property
    def error_log(self) -> Path:
        return self.dir / "nginx" / "logs" / "error.log"

    @property
    def pg_log(self) -> Path:
        return self.dir / "pg" / "postgresql.log"

    @property
    def memcached_log(self) -> Path:
        return self.dir / "memcached" / "memcached.log"

    @property
    def pidfile(self) -> Path:
        """The app server's pid file: under the sandbox's run folder, as /run on a host."""
        return self.dir / "run" / "gunicorn.pid"

    @property
    def gunicorn_log(self) -> Path:
        return self.dir / "app" / "log" / "gunicorn.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['web']}/"

    @property
    def db_url(self) -> str:
        return f"postgresql://app:{DB_PASSWORD}@127.0.0.1:{self.ports['postgres']}/drill"

    @property
    def logs(self) -> list[Path]:
        return [self.access_log, self.error_log, self.app_log, self.gunicorn_log, self.pg_log, self.memcached_log]

    # --- start -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Stack:
        missing = missing_requirements()
        if missing:
            raise SandboxError("the drill stack cannot start; missing: " + "; ".join(missing))
        self.started_at = time.time()
        deadline = time.monotonic() + timeout
        self._start_postgres(deadline)
        self._start_memcached(deadline)
        self._start_app(deadline)
        self._start_nginx(deadline)
        self.settle_config()
        if self.opt.ddx_config:
            self.write_ddx_config()
        self._start_load()
        self.wait_healthy(deadline)
        return self

    def settle_config(self, age: float = 3600.0) -> None:
        """Date the stack's configuration back by ``age`` seconds. The stack stands in for
        one that has served for a while: its settings were not written seconds before the
        fault, and a scenario's own edits (a deploy, a drifted setting) stand out as they
        would on a real host. Only the sandbox's own nginx and app folders and PostgreSQL's
        settings files; logs, caches and session folders (other mounts) are left alone."""
        t = self.started_at - age
        for conf in (self.dir / "pg" / "data").glob("*.conf"):  # PostgreSQL's settings, written by initdb
            os.utime(conf, (t, t), follow_symlinks=False)
        for top in (self.dir / "nginx", self.dir / "app"):
            dev = top.stat().st_dev
            for root, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if d not in ("log", "logs")
                           and os.lstat(os.path.join(root, d)).st_dev == dev]
                for name in files:
                    with contextlib.suppress(OSError):
                        os.utime(os.path.join(root, name), (t, t), follow_symlinks=False)
                os.utime(root, (t, t))

    def _wait_port(self, name: str, deadline: float) -> None:
        port = self.ports[name]
        proc = self.procs.get(name)
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
            if proc is not None and proc.poll() is not None:
                raise SandboxError(f"{name} exited with status {proc.returncode} before listening on port {port}"
                                   f"{self._log_tail(name)}")
            if time.monotonic() > deadline:
                raise SandboxError(f"{name} did not listen on 127.0.0.1:{port} in time{self._log_tail(name)}")
            time.sleep(0.05)

    def _log_tail(self, name: str) -> str:
        log = {"postgres": self.pg_log, "memcached": self.memcached_log, "app": self.gunicorn_log,
               "web": self.error_log}.get(name)
        if log is None or not log.exists():
            return ""
        return f"; last lines of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-8:])

    def _pg(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=self.dir / "pg")

    def sql(self, sql: str, *, db: str = "drill", timeout: float = 20) -> str:
        """Run SQL as the superuser through the sandbox's socket; returns unaligned rows."""
        r = subprocess.run(
            [str(self.pg_bin / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             f"host={self.dir / 'pg'} port={self.ports['postgres']} user=postgres dbname={db}", "-c", sql],
            capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise SandboxError(f"SQL failed on the sandbox database: {r.stderr.strip()}")
        return r.stdout.strip()

    def _start_postgres(self, deadline: float) -> None:
        pg = self.sb.path("pg", owner="postgres")
        r = self._pg(str(self.pg_bin / "initdb"), "-D", str(pg / "data"), "-U", "postgres", "-A", "trust",
                     "--no-sync", "--no-instructions")
        if r.returncode != 0:
            raise SandboxError(f"initdb failed: {r.stderr.strip()[-500:]}")
        with open(pg / "data" / "postgresql.conf", "a") as f:
            f.write(f"port = {self.ports['postgres']}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{pg}'\nmax_connections = {self.opt.pg_max_connections}\n"
                    "superuser_reserved_connections = 3\nfsync = off\nsynchronous_commit = off\n"
                    "shared_buffers = 16MB\nlog_line_prefix = '%m [%p] %q%u@%d '\nlog_lock_waits = on\n"
                    "deadlock_timeout = 1s\nlog_min_duration_statement = 2000\n")
        (pg / "data" / "pg_hba.conf").write_text(
            "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
        self.pg_log.touch()
        shutil.chown(self.pg_log, "postgres")
        self.procs["postgres"] = self.sb.spawn([str(self.pg_bin / "postgres"), "-D", str(pg / "data")],
                                               user="postgres", log=self.pg_log, cwd=pg)
        self._wait_port("postgres", deadline)
        while True:  # listening is not accepting queries yet (startup recovery)
            ready = subprocess.run([str(self.pg_bin / "pg_isready"), "-h", str(pg), "-p", str(self.ports["postgres"])],
                                   capture_output=True, timeout=5)
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SandboxError(f"PostgreSQL did not become ready{self._log_tail('postgres')}")
            time.sleep(0.1)
        self.sql(f"CREATE ROLE app LOGIN PASSWORD '{DB_PASSWORD}'", db="postgres")
        self.sql("CREATE DATABASE drill OWNER app", db="postgres")
        self.sql(
            "CREATE TABLE items (id integer PRIMARY KEY, title text NOT NULL, body text NOT NULL);"
            "INSERT INTO items SELECT i, 'Item ' || i, repeat('lorem ipsum ', 20) FROM generate_series(0, 199) i;"
            "CREATE TABLE visits (id serial PRIMARY KEY, page integer NOT NULL, at timestamptz NOT NULL DEFAULT now());"
            "ALTER TABLE items OWNER TO app; ALTER TABLE visits OWNER TO app;"
            "ALTER SEQUENCE visits_id_seq OWNER TO app;")

    def _start_memcached(self, deadline: float) -> None:
        self.sb.path("memcached")
        self.procs["memcached"] = self.sb.spawn(
            [MEMCACHED, "-l", "127.0.0.1", "-p", str(self.ports["memcached"]), "-U", "0", "-u", "nobody",
             "-m", str(self.opt.memcached_memory_mb), "-I", self.opt.memcached_item_max, "-c", "512", "-v"],
            log=self.memcached_log)
        self._wait_port("memcached", deadline)

    def app_settings(self) -> dict[str, Any]:
        return {
            "log_file": str(self.app_log),
            "cache_dir": str(self.cache_dir),
            "sessions_dir": str(self.sessions_dir),
            "cache_servers": [f"127.0.0.1:{self.ports['memcached']}"],
            "database": self.db_url,
            **self.opt.app_settings,
        }

    def write_app_config(self, settings: dict[str, Any]) -> None:
        tmp = self.app_config.with_suffix(".tmp")
        tmp.write_text(json.dumps(settings, indent=2) + "\n")
        os.chmod(tmp, 0o644)
        tmp.replace(self.app_config)

    def _start_app(self, deadline: float) -> None:
        app = self.sb.path("app")
        self.sb.path("app", "log", owner=APP_USER)
        self.sb.mount_tmpfs(self.cache_dir, self.opt.cache_size, owner=APP_USER)
        self.sb.mount_tmpfs(self.sessions_dir, "16m", owner=APP_USER, nr_inodes=str(self.opt.session_inodes))
        (app / "drillapp.py").write_text(resources.files("ddx.drill").joinpath("drillapp.py").read_text())
        self.write_app_config(self.app_settings())
        for log in (self.app_log, self.gunicorn_log):
            log.touch()
            shutil.chown(log, APP_USER, _gid(APP_USER))
        self.sb.path("run")
        if self.opt.supervisor == "runit":
            self.procs["app"] = self._start_runsv()
        elif self.opt.supervisor:
            raise SandboxError(f"unknown supervisor {self.opt.supervisor!r} (known: runit)")
        else:
            self.procs["app"] = self.sb.spawn(self.gunicorn_argv(self.ports["app"]), log=self.gunicorn_log, cwd=app,
                                              env={"DRILL_APP_CONFIG": str(self.app_config)})
        self._wait_port("app", deadline)

    def _start_runsv(self) -> subprocess.Popen[bytes]:
        """The app server as a runit service: runsv runs ``service/app/run`` and starts it
        again a second after it exits, as on a host supervised by runit."""
        runsv = shutil.which("runsv")
        if runsv is None:
            raise SandboxError("supervisor runit asked for, but runsv is not installed (apt-get install runit)")
        svc = self.sb.path("service", "app")
        argv = " ".join(self.gunicorn_argv(self.ports["app"]))
        run = svc / "run"
        run.write_text("#!/bin/sh\n"
                       f"echo \"$(date '+%F %T') runsv: starting app\" >> {self.gunicorn_log}\n"
                       f"cd {self.dir / 'app'}\n"
                       f"exec env DRILL_APP_CONFIG={self.app_config} {argv} >> {self.gunicorn_log} 2>&1\n")
        os.chmod(run, 0o755)
        return self.sb.spawn([runsv, str(svc)], log=self.dir / "run" / "runsv.log")

    def gunicorn_argv(self, port: int, *, workers: int | None = None, module: str = "drillapp:app",
                      pidfile: Path | None = None) -> list[str]:
        app = self.dir / "app"
        return [SYSTEM_PYTHON, "-m", "gunicorn", "--workers", str(workers or self.opt.workers),
                "--bind", f"127.0.0.1:{port}", "--backlog", str(self.opt.backlog), "--timeout", "30",
                "--graceful-timeout", "5", "--chdir", str(app), "--pid", str(pidfile or self.pidfile),
                "--user", APP_USER, "--group", _group_name(APP_USER), "--name", f"drill-{self.dir.name}",
                module]

    def _start_nginx(self, deadline: float) -> None:
        ng = self.sb.path("nginx")
        self.sb.path("nginx", "logs")
        self.sb.path("nginx", "tmp")
        tls = self.sb.path("nginx", "tls")
        self.make_certificate(tls / "site.crt", tls / "site.key", days=90)
        self.nginx_conf.write_text(self.render_nginx_conf())
        self.procs["web"] = self.sb.spawn([NGINX, "-p", str(ng), "-c", str(self.nginx_conf), "-g", "daemon off;"],
                                          log=self.dir / "nginx" / "logs" / "stderr.log")
        self._wait_port("web", deadline)

    def render_nginx_conf(self, upstream_servers: list[str] | None = None) -> str:
        ng = self.dir / "nginx"
        servers = upstream_servers or [f"127.0.0.1:{self.ports['app']}"]
        upstream = "\n".join(f"        server {s} max_fails=0;" for s in servers)
        return f"""\
worker_processes 1;
pid {ng}/nginx.pid;
error_log {ng}/logs/error.log;
events {{ worker_connections {self.opt.worker_connections}; }}
http {{
    log_format timed '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
                     '"$http_referer" "$http_user_agent" $request_time $upstream_addr $upstream_status';
    access_log {ng}/logs/access.log timed;
    client_body_temp_path {ng}/tmp/body; proxy_temp_path {ng}/tmp/proxy; fastcgi_temp_path {ng}/tmp/fastcgi;
    uwsgi_temp_path {ng}/tmp/uwsgi; scgi_temp_path {ng}/tmp/scgi;
    client_max_body_size {self.opt.client_max_body_size};
    proxy_connect_timeout 2s;
    proxy_read_timeout 10s;
    upstream app {{
{upstream}
    }}
{self.opt.extra_nginx_http}
    server {{
        listen 127.0.0.1:{self.ports['web']};
        listen 127.0.0.1:{self.ports['tls']} ssl;
        ssl_certificate {ng}/tls/site.crt;
        ssl_certificate_key {ng}/tls/site.key;
        location / {{ proxy_pass http://app; proxy_set_header Host $host; }}
    }}
    server {{
        listen 127.0.0.1:{self.ports['status']};
        access_log off;
        location = /nginx_status {{ stub_status; }}
    }}
}}
"""

    def reload_nginx(self) -> None:
        """Test the configuration, then signal the master to reload it, as `nginx -s reload` does."""
        r = subprocess.run([NGINX, "-t", "-p", str(self.dir / "nginx"), "-c", str(self.nginx_conf)],
                           capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            raise SandboxError(f"nginx rejected the drill's configuration: {r.stderr.strip()}")
        os.kill(self.procs["web"].pid, signal.SIGHUP)

    def make_certificate(self, crt: Path, key: Path, *, days: int = 90, expired: bool = False) -> None:
        """A self-signed certificate for 127.0.0.1: valid for ``days``, or one that expired yesterday."""
        argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        if expired:
            self._expired_certificate(crt, key)
            return
        subprocess.run([*argv, "-days", str(days)], check=True, capture_output=True, timeout=30)

    @staticmethod
    def _expired_certificate(crt: Path, key: Path) -> None:
        """A self-signed certificate that expired a day ago. `openssl req` cannot backdate
        and `x509 -not_before` is OpenSSL 3.4+, so `openssl ca -selfsign` sets the dates."""
        d = crt.parent / "ca"
        d.mkdir(exist_ok=True)
        csr = d / "site.csr"
        subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                        "-out", str(csr), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=30)
        (d / "index.txt").write_text("")
        (d / "serial").write_text("01\n")
        conf = d / "ca.cnf"
        conf.write_text(f"""[ ca ]
default_ca = drill
[ drill ]
database = {d}/index.txt
serial = {d}/serial
new_certs_dir = {d}
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[ any ]
commonName = supplied
""")
        start = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 30 * 86400))
        end = time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() - 86400))
        subprocess.run(["openssl", "ca", "-batch", "-config", str(conf), "-selfsign", "-keyfile", str(key),
                        "-in", str(csr), "-out", str(crt), "-startdate", start, "-enddate", end],
                       check=True, capture_output=True, timeout=30)

    def _start_load(self) -> None:
        self.procs["load"] = self.sb.spawn(
            [sys.executable, "-m", "ddx.drill.load", "--url", self.url, "--rate", str(self.opt.load_rate),
             "--clients", str(self.opt.load_clients), "--stats", str(self.dir / "load.json"), "--seed", str(self.seed)],
            log=self.dir / "load.log")

    def load_stats(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.dir / "load.json").read_text()))
        except (OSError, ValueError):
            return {}

    def wait_healthy(self, deadline: float, min_requests: int = 20) -> None:
        """Until the load generator sees the site answer (at least 95% 2xx over its last seconds)."""
        while True:
            s = self.load_stats()
            if s.get("recent_requests", 0) >= min_requests and s["recent_ok"] >= 0.95 * s["recent_requests"]:
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"the stack did not become healthy: load generator saw {s or 'nothing'}"
                                   f"{self._log_tail('app')}")
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise SandboxError(f"{name} exited with status {p.returncode} during start{self._log_tail(name)}")
            time.sleep(0.2)

    def write_ddx_config(self, extra: str = "") -> Path:
        """The ddx.toml a user of this stack would write: its logs, its services. Times
        start at the stack's start: earlier kernel and log lines belong to something else."""
        since = self.started_at
        q = json.dumps
        logs = ", ".join(q(str(p)) for p in self.logs)
        text = f"""\
# written by ddx drill for the sandbox stack in {self.dir}
[ddx]
budget = 20

[probe.kernel]
since = {since}

[probe.logfiles]
since = {since}
paths = [{logs}]
discover = false
journal = "never"

[probe.changes]
since = {since}
config_paths = [{q(str(self.dir / 'nginx'))}, {q(str(self.dir / 'app'))}]
log_paths = [{logs}]

[probe.http]
since = {since}
targets = [{q(self.url)}, {q(f"https://127.0.0.1:{self.ports['tls']}/")}]
access_logs = [{q(str(self.access_log))}]
status_urls = [{q(f"http://127.0.0.1:{self.ports['status']}/nginx_status")}]
discover = false

[probe.tls]
targets = [{q(f"https://127.0.0.1:{self.ports['tls']}/")}]
discover = false

[probe.drift]
nginx_conf = [{q(str(self.nginx_conf))}]
paths = [{q(str(self.app_config))}]
discover = false

[probe.memcached]
targets = [{q(f"memcached://127.0.0.1:{self.ports['memcached']}")}]
discover = false

[probe.postgres]
targets = [{q(self.db_url)}]
discover = false

[probe.redis]
discover = false

[probe.mysql]
discover = false

[probe.haproxy]
discover = false
{extra}"""
        path = self.dir / "ddx.toml"
        path.write_text(text)
        return path

    # --- helpers for scenarios -----------------------------------------------------------

    def gunicorn_master(self) -> int:
        return int(self.pidfile.read_text().split()[0])

    def gunicorn_workers(self, master: int | None = None) -> list[int]:
        master = master or self.gunicorn_master()
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (d / "stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                        out.append(int(d.name))
        return sorted(out)


def _gid(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _group_name(user: str) -> str:
    import grp

    return grp.getgrgid(_gid(user)).gr_name
