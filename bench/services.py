#!/usr/bin/env python3
"""What the service probes cost: `ddx diagnose` with and without a full stack running.

    .venv/bin/python bench/services.py [--runs 5]

Starts on loopback, each in its own temporary folder and on free ports: nginx (stub_status, an
access log), a gunicorn app, memcached, Redis, PostgreSQL and MariaDB, from the Debian packages.
Runs `ddx diagnose --json` as a whole process N times without them, then N times with them, and
prints the median wall time and each service probe's median time. Stops everything at the end.
Needs root (the servers drop to their own users).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DDX = str(ROOT / ".venv" / "bin" / "ddx")
SERVICE_PROBES = ("http", "tls", "memcached", "redis", "postgres", "mysql", "pools", "drift", "haproxy")
SAMPLING = {"memcached", "redis", "pools"}  # they wait the 1 s sampling window, concurrently with the host probes
WINDOW = 1.0
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    sys.exit(f"{what} did not start listening on {port}")


def as_user(user: str, argv: list[str]) -> list[str]:
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", *argv]


@contextlib.contextmanager
def stack() -> Iterator[dict[str, int]]:
    base = Path(tempfile.mkdtemp(prefix="ddx-bench-stack-"))
    os.chmod(base, 0o755)
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}

    def start(name: str, argv: list[str], port: int) -> None:
        log = open(base / f"{name}.out", "wb")
        procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        ports[name] = port
        wait_port(port, name)

    try:
        p = free_port()
        start("memcached", ["memcached", "-u", "nobody", "-l", "127.0.0.1", "-p", str(p), "-m", "16"], p)
        p = free_port()
        start("redis", ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", str(base)], p)
        app = base / "app.py"
        app.write_text("def app(environ, start_response):\n"
                       "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
                       "    return [b'ok']\n")
        gport = free_port()
        start("gunicorn", ["/usr/bin/python3", "-m", "gunicorn", "--workers", "3", "--chdir", str(base),
                           "-b", f"127.0.0.1:{gport}", "app:app"], gport)
        nport = free_port()
        (base / "logs").mkdir()
        (base / "nginx.conf").write_text(f"""
user nobody nogroup;
worker_processes 2;
pid {base}/nginx.pid;
error_log {base}/logs/error.log;
events {{ worker_connections 256; }}
http {{
    access_log {base}/logs/access.log;
    client_body_temp_path {base}/tmp;
    proxy_temp_path {base}/tmp;
    fastcgi_temp_path {base}/tmp;
    uwsgi_temp_path {base}/tmp;
    scgi_temp_path {base}/tmp;
    upstream app {{ server 127.0.0.1:{gport}; }}
    server {{
        listen 127.0.0.1:{nport};
        location /nginx_status {{ stub_status; }}
        location / {{ proxy_pass http://app; }}
    }}
}}
""")
        (base / "tmp").mkdir()
        start("nginx", ["nginx", "-p", f"{base}/", "-c", str(base / "nginx.conf"), "-g", "daemon off;"], nport)
        for _ in range(20):  # a little traffic for the access log
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", nport), 1).sendall(b"GET / HTTP/1.0\r\n\r\n")
        if (PG_BIN / "initdb").exists():
            pg = base / "pg"
            pg.mkdir()
            shutil.chown(pg, "postgres", "postgres")
            subprocess.run(as_user("postgres", [str(PG_BIN / "initdb"), "-D", str(pg), "-A", "trust", "-U", "postgres"]),
                           check=True, capture_output=True)
            pport = free_port()
            start("postgres", as_user("postgres", [str(PG_BIN / "postgres"), "-D", str(pg), "-p", str(pport),
                                                   "-c", "listen_addresses=127.0.0.1", "-k", str(pg)]), pport)
        if shutil.which("mariadb-install-db") and shutil.which("mariadbd"):
            my = base / "my"
            my.mkdir()
            subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={my}", "--auth-root-authentication-method=normal",
                            "--skip-test-db"], check=True, capture_output=True)
            mport = free_port()
            start("mariadb", ["mariadbd", "--no-defaults", "--user=root", f"--datadir={my}", f"--port={mport}",
                              "--bind-address=127.0.0.1", f"--socket={my}/mysqld.sock", f"--pid-file={my}/mysqld.pid",
                              "--skip-log-bin"], mport)
        yield ports
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def diagnose(runs: int, targets: list[str]) -> tuple[float, dict[str, float], dict[str, str]]:
    walls: list[float] = []
    per: dict[str, list[float]] = {}
    status: dict[str, str] = {}
    argv = [DDX, "diagnose", "--json"] + [a for t in targets for a in ("--target", t)]
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        walls.append(time.perf_counter() - t0)
        out = json.loads(r.stdout)
        for p in out["probes"]:
            per.setdefault(p["name"], []).append(p["seconds"])
            status[p["name"]] = p["status"]
    return statistics.median(walls), {k: statistics.median(v) for k, v in per.items()}, status


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/services.py needs root")
    wall0, per0, st0 = diagnose(a.runs, [])
    with stack() as ports:
        targets = []
        if "postgres" in ports:
            targets.append(f"postgresql://postgres@127.0.0.1:{ports['postgres']}/postgres")
        if "mariadb" in ports:
            targets.append(f"mysql://root@127.0.0.1:{ports['mariadb']}/mysql")
        wall1, per1, st1 = diagnose(a.runs, targets)
    print(f"ddx diagnose --json, median of {a.runs} runs as a whole process")
    print(f"  no services running:             {wall0:.3f} s")
    print(f"  with {', '.join(ports)}: {wall1:.3f} s (+{wall1 - wall0:.3f} s)")
    print("  service probe        without        with   status with services")
    for name in SERVICE_PROBES:
        if name in per1:
            print(f"  {name:<14} {per0.get(name, 0.0):10.3f} s {per1[name]:9.3f} s   {st1.get(name)} (was {st0.get(name)})")
    added = [per1[n] - per0.get(n, 0.0) - (WINDOW if n in SAMPLING else 0.0)
             for n in SERVICE_PROBES if n in per1 and st1.get(n) == "ok"]
    if added:
        print(f"  median work a service probe adds when it finds its service (sampling window excluded): "
              f"{statistics.median(added):.3f} s; probes run concurrently, so the wall time grows by less")


if __name__ == "__main__":
    main()
