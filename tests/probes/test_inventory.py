"""The inventory: real services started from their own paths, found as they run.

Each test starts its own processes (nginx from a prefix of its own with an
include tree, Python servers whose settings an environment variable names,
logs opened per write, held open, or only written lately) and checks what the
discovery pass says of them, by their pids: other services on the host are
not this test's business.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.drill.sandbox import free_port
from ddx.host import BundleHost, LiveHost, RecordingHost
from ddx.inventory import Inventory, build_inventory, inventory_from_dict
from ddx.inventory.programs import _kv_conf, scan_settings
from ddx.model import State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.runner import run_probes

NGINX = "/usr/sbin/nginx"

# A server that listens on a port, logs each request to the log its settings name
# (opened per write) and prints to its standard output (held open by the shell redirect).
APP = r"""
import json, os, socket, sys, time
cfg = json.load(open(os.environ["SHOP_CONFIG"]))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
if cfg.get("log_file"):
    with open(cfg["log_file"], "a") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S") + " INFO started\n")
while True:
    c, _ = s.accept(); c.close()
"""

# A server with no configuration that writes its own log in its folder, opened per write.
QUIET = r"""
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
if len(sys.argv) > 2:
    with open(sys.argv[2], "a") as f:
        f.write(time.strftime("%Y-%m-%d %H:%M:%S") + " ERROR [Errno 28] No space left on device\n")
while True:
    time.sleep(1)
"""


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open")


class Procs:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], port: int, **kw: object) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, start_new_session=True, **kw)  # type: ignore[call-overload]
        self.procs.append(p)
        _wait_port(port, p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(timeout=10)


@pytest.fixture
def shop() -> Iterator[dict[str, object]]:
    """nginx from /<tmp>/shop with -p/-c and an include, an app whose settings come from
    SHOP_CONFIG, a quiet server with a per-write log, and one that logs nowhere."""
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = Path(tempfile.mkdtemp(prefix="ddx-inv-"))
    os.chmod(root, 0o755)
    procs = Procs()
    try:
        web, app_port, quiet_port, mute_port = free_port(), free_port(), free_port(), free_port()
        (root / "conf" / "conf.d").mkdir(parents=True)
        (root / "logs").mkdir()
        (root / "tmp").mkdir()
        (root / "conf" / "shop.conf").write_text(f"""
worker_processes 1;
pid {root}/nginx.pid;
events {{ worker_connections 32; }}
http {{
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    include conf.d/*.conf;
}}
""")
        (root / "conf" / "conf.d" / "site.conf").write_text(f"""
error_log {root}/logs/shop-error.log;
upstream app {{ server 127.0.0.1:{app_port}; }}
server {{
    listen 127.0.0.1:{web};
    access_log {root}/logs/shop-access.log;
    location / {{ proxy_pass http://app; }}
}}
""")
        nginx = procs.start([NGINX, "-p", f"{root}/", "-c", f"{root}/conf/shop.conf", "-g", "daemon off;"], web,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        app_dir = root / "app"
        (app_dir / "log").mkdir(parents=True)
        (app_dir / "cache").mkdir()
        settings = app_dir / "settings.json"
        settings.write_text(json.dumps({
            "log_file": str(app_dir / "log" / "app.log"),
            "cache_dir": str(app_dir / "cache"),
            "database_url": "postgresql://shop:s3cretpw@127.0.0.1:5999/shop",
        }, indent=1))
        (app_dir / "server.py").write_text(APP)
        out = open(app_dir / "log" / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        app = procs.start([sys.executable, str(app_dir / "server.py"), str(app_port)], app_port, cwd=app_dir,
                          stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "SHOP_CONFIG": str(settings)})
        out.close()
        quiet_dir = root / "quiet"
        (quiet_dir / "logs").mkdir(parents=True)
        (quiet_dir / "serve.py").write_text(QUIET)
        quiet_log = quiet_dir / "logs" / "quiet.log"
        quiet = procs.start([sys.executable, str(quiet_dir / "serve.py"), str(quiet_port), str(quiet_log)],
                            quiet_port, cwd=quiet_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        mute_dir = root / "mute"
        mute_dir.mkdir()
        (mute_dir / "serve.py").write_text(QUIET)
        mute = procs.start([sys.executable, str(mute_dir / "serve.py"), str(mute_port)], mute_port, cwd=mute_dir,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.2)
        yield {"root": root, "nginx": nginx, "app": app, "quiet": quiet, "mute": mute, "web": web,
               "app_port": app_port, "quiet_log": quiet_log}
    finally:
        procs.stop()
        shutil.rmtree(root, ignore_errors=True)


def _svc(inv: Inventory, pid: int):  # type: ignore[no-untyped-def]
    s = inv.service_of(pid)
    assert s is not None, f"pid {pid} not in the inventory: {[x.label for x in inv.services]}"
    return s


@pytest.mark.root
def test_services_found_as_they_were_started(shop: dict[str, object]) -> None:
    root: Path = shop["root"]  # type: ignore[assignment]
    inv = build_inventory(LiveHost())
    nginx = _svc(inv, shop["nginx"].pid)  # type: ignore[attr-defined]
    assert nginx.program == "nginx" and nginx.pid == shop["nginx"].pid  # type: ignore[attr-defined]
    assert [c.path for c in nginx.configs] == [f"{root}/conf/shop.conf", f"{root}/conf/conf.d/site.conf"]
    assert nginx.configs[0].how == "argv" and nginx.configs[1].how == "include"
    logs = {lg.path: lg for lg in nginx.logs}
    assert logs[f"{root}/logs/shop-error.log"].how == "config"
    assert logs[f"{root}/logs/shop-access.log"].kind == "access"
    assert any(d.port == shop["app_port"] for d in nginx.deps)
    assert any(ln.port == shop["web"] for ln in nginx.listens)

    app = _svc(inv, shop["app"].pid)  # type: ignore[attr-defined]
    assert [(c.path, c.how, c.detail) for c in app.configs] == [(str(root / "app" / "settings.json"), "env",
                                                                 "SHOP_CONFIG")]
    logs = {lg.path: lg for lg in app.logs}
    assert logs[str(root / "app" / "log" / "app.log")].how == "config"  # opened per write: only the config names it
    assert logs[str(root / "app" / "log" / "stdout.log")].how == "open"
    assert str(root / "app" / "cache") in app.data_dirs and app.cwd == str(root / "app")
    assert any((d.host, d.port) == ("127.0.0.1", 5999) for d in app.deps)
    assert "s3cretpw" not in json.dumps(inv.to_dict())

    quiet = _svc(inv, shop["quiet"].pid)  # type: ignore[attr-defined]
    assert [(lg.path, lg.how) for lg in quiet.logs] == [(str(shop["quiet_log"]), "recent")]
    mute = _svc(inv, shop["mute"].pid)  # type: ignore[attr-defined]
    assert not mute.logs and any("no log found" in n for n in mute.notes)


@pytest.mark.root
def test_logs_of_services_are_read_and_coverage_says_what_was_not(shop: dict[str, object]) -> None:
    inv = build_inventory(LiveHost())
    spec = registry["logfiles"]
    ctx = ProbeContext(host=LiveHost(), config={**spec.options, "journal": "never", "discover": True},
                       probe_name="logfiles", inventory=inv)
    found = {f.id: f for f in spec.func(ctx)}
    enospc = found["logs.enospc"]
    assert enospc.state is State.PRESENT and str(shop["quiet_log"]) in [e.source for e in enospc.evidence]
    absent = found["logs.too_many_open_files"]
    mute = _svc(inv, shop["mute"].pid)  # type: ignore[attr-defined]
    assert absent.state is State.ABSENT and absent.coverage is not None
    assert any(m.startswith(mute.label) and "no log found" in m for m in absent.coverage.missing)
    assert 0.5 < absent.strength < 1.0  # looked in part of where it would show: a softer absence


@pytest.mark.root
def test_the_inventory_travels_in_the_bundle(shop: dict[str, object], tmp_path: Path) -> None:
    rec = RecordingHost(LiveHost())
    col = run_probes(rec, __import__("ddx.config", fromlist=["Config"]).Config(), only=["disk"], window=0.0)
    path = rec.save(str(tmp_path / "b.tar.gz"), col)
    replay = BundleHost(path)
    assert replay.inventory is not None
    assert {s.pid for s in replay.inventory.services} == {s.pid for s in col.inventory.services}  # type: ignore[union-attr]
    nginx = _svc(replay.inventory, shop["nginx"].pid)  # type: ignore[attr-defined]
    assert nginx.configs[0].path.endswith("shop.conf")


def test_inventory_json_round_trip_and_malformed() -> None:
    from ddx.inventory import ConfigFile, Dependency, Listen, LogFile, Service

    inv = Inventory("h", (Service("nginx", "nginx", 1, (1, 2), listens=(Listen("tcp", "0.0.0.0", 80),),
                                  configs=(ConfigFile("/etc/nginx/nginx.conf", "default"),),
                                  logs=(LogFile("/var/log/nginx/a.log", "config", kind="access"),),
                                  deps=(Dependency("10.0.0.1", 8080, "/etc/nginx/x.conf:3", "upstream app"),),
                                  data_dirs=("/srv/www",), journal=True),), mounts=("/srv", "/"))
    back = inventory_from_dict(json.loads(json.dumps(inv.to_dict())))
    assert back.services == inv.services and back.mounts == inv.mounts
    assert back.mount_of("/srv/www/x") == "/srv" and back.mount_of("/etc") == "/"
    for bad in ([], {"services": [1]}, {"services": [{"name": "x"}]}):
        with pytest.raises(ValueError):
            inventory_from_dict(bad)


def test_settings_scan_finds_logs_folders_and_addresses_never_passwords() -> None:
    text = ('{"log_file": "/srv/app/log/app.log", "cache_dir": "/srv/app/cache",\n'
            ' "database": "postgresql://u:hunter2@db:5432/x", "static_root": "/srv/app/static"}\n'
            "ERROR_LOG=/var/log/app/error.log\n")
    deps, logs, dirs = scan_settings(text, "/srv/app/settings.json")
    assert [v for _k, v, _l in logs] == ["/srv/app/log/app.log", "/var/log/app/error.log"]
    assert [v for _k, v, _l in dirs] == ["/srv/app/cache", "/srv/app/static"]
    assert [(d.host, d.port) for d in deps] == [("db", 5432)] and "hunter2" not in repr(deps)
    assert _kv_conf("# c\ndata_directory = '/var/lib/pg'\nlogfile /var/log/redis.log\n") == {
        "data_directory": "/var/lib/pg", "logfile": "/var/log/redis.log"}
