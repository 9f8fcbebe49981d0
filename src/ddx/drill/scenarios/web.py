"""Faults in the web tier of the sandbox stack: its cache, database, configuration,
upstream pool and certificate.

Each fault is what breaks real sites of this shape, done the way it happens there:

- request-size-limit: a content import makes some pages bigger than memcached's
  item limit (``-I``); the editor's save drops their cache entries, and every
  view of those pages renders a page memcached refuses to store
  ("SERVER_ERROR object too large for cache"). Small pages keep working.
- dependency-down: PostgreSQL is stopped (a fast shutdown, as ``pg_ctl stop -m
  fast`` does); every page view needs it.
- config-drift: the app's settings gain a cache node that nothing serves (a node
  named in the list before it was provisioned, or after it was terminated); the
  workers re-read the settings on a gunicorn HUP and the keys hashed to that
  node fail.
- unready-backend: a second application server joins nginx's upstream pool from
  a half-finished deploy: its request handlers import a module the deploy did
  not copy yet, so every request it gets answers 500 while its peer is fine.
- tls-certificate-expired: the site's certificate runs out. Time cannot be moved
  for one process, so an expired certificate for the same name takes its place
  with the files' old modification times (nothing was changed: time ran out),
  and nginx reloads, as it does when logs rotate.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from ddx.drill.sandbox import SandboxError, free_port
from ddx.drill.scenarios import Scenario, register
from ddx.drill.stack import Stack

# Pages that grow past the cache's item limit: every fifth item (a fifth of the page views),
# by this factor over memcached's -I.
_BIG_EVERY = 5
_BIG_FACTOR = 1.3


def _wait_for_log(path: Path, words: str, timeout: float = 20.0, start: int = 0) -> bool:
    """Until ``words`` appears in ``path`` after byte ``start`` (the app has met the
    fault), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                if words.encode() in f.read():
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _item_limit(spec: str) -> int:
    """memcached's ``-I`` argument in bytes (``1m``, ``512k``, ``2097152``)."""
    spec = spec.strip().lower()
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(spec[-1:], 1)
    return int(spec.rstrip("kmg")) * scale


def _memcached_delete(port: int, keys: list[str], timeout: float = 5.0) -> None:
    """Drop cache entries the way the app's invalidation does (``delete KEY``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(b"delete %s noreply\r\n" % k.encode() for k in keys) + b"version\r\n")
        buf = b""
        while b"VERSION" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk


# --- request-size-limit ----------------------------------------------------------------------


def _grow_pages(stack: Stack) -> None:
    """An import fills some items with long documents; their pages outgrow the cache's item limit."""
    pages = int(stack.app_settings().get("pages", 50))
    big = [i for i in range(pages) if i % _BIG_EVERY == _BIG_EVERY - 2]
    repeat = int(_item_limit(stack.opt.memcached_item_max) * _BIG_FACTOR) // len("lorem ipsum ") + 1
    mark = _size(stack.app_log)
    stack.sql(f"UPDATE items SET body = repeat('lorem ipsum ', {repeat}) "
              f"WHERE id IN ({', '.join(str(i) for i in big)})")
    _memcached_delete(stack.ports["memcached"], [f"page:{i}" for i in big])
    _wait_for_log(stack.app_log, "too large", start=mark)


register(Scenario(
    name="request-size-limit",
    expected="request-size-limit",
    summary="an import makes a fifth of the pages bigger than memcached's item limit (-I); "
            "their views fail with SERVER_ERROR object too large for cache, small pages still work",
    inject=_grow_pages,
))


# --- dependency-down ---------------------------------------------------------------------------


def _stop_postgres(stack: Stack) -> None:
    """PostgreSQL goes away (a fast shutdown: clients are disconnected, the port closes)."""
    pid_file = stack.dir / "pg" / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])  # the stack started it through runuser
    mark = _size(stack.app_log)
    os.kill(postmaster, signal.SIGINT)
    try:
        stack.procs["postgres"].wait(timeout=20)  # runuser returns when the postmaster has exited
    except subprocess.TimeoutExpired:
        raise SandboxError("PostgreSQL did not stop within 20 s of a fast shutdown request") from None
    _wait_for_log(stack.app_log, "failed", start=mark)


register(Scenario(
    name="dependency-down",
    expected="dependency-down",
    summary="PostgreSQL is stopped (fast shutdown); every page view needs it and fails",
    inject=_stop_postgres,
))


# --- config-drift ------------------------------------------------------------------------------


def _hup_app(stack: Stack) -> None:
    """What a deploy tool does after editing the settings: HUP the gunicorn master, whose
    new workers read them again."""
    os.kill(stack.gunicorn_master(), signal.SIGHUP)


def _add_dead_cache_node(stack: Stack) -> None:
    """The cache list gains a node that nothing serves; the app is reloaded with it."""
    settings = json.loads(stack.app_config.read_text())
    dead = free_port()  # nobody listens there: the node was never started (or is gone)
    settings["cache_servers"] = [*settings["cache_servers"], f"127.0.0.1:{dead}"]
    mark = _size(stack.app_log)
    stack.write_app_config(settings)
    _hup_app(stack)
    _wait_for_log(stack.app_log, "Connection refused", start=mark)


register(Scenario(
    name="config-drift",
    expected="config-drift",
    summary="the app's cache_servers gain a memcached node nothing serves; after a reload, "
            "keys hashed to it fail with connection refused",
    inject=_add_dead_cache_node,
))


# --- unready-backend ---------------------------------------------------------------------------

# The next release's entry point, half deployed: its views moved to a package the
# deploy has not copied yet. As with a framework's URL configuration, they load on
# the first request, so the workers boot and every request fails.
_NEXT_RELEASE = '''\
"""Release {release}: the request handlers moved to the drill_views package."""

import drillapp  # noqa: F401 - settings, logging, cache and database helpers


def app(environ, start_response):
    from drill_views import site  # loaded on the first request, like a URL configuration

    return site.app(environ, start_response)
'''


def _join_unready_backend(stack: Stack) -> None:
    """A second app server joins nginx's pool before its code is all there."""
    release = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    module = f"release_{release}"
    app_dir = stack.dir / "app"
    path = app_dir / f"{module}.py"
    path.write_text(_NEXT_RELEASE.format(release=release))
    os.chmod(path, 0o644)
    port = free_port()
    proc = stack.sb.spawn(stack.gunicorn_argv(port, workers=2, module=f"{module}:app",
                                              pidfile=stack.dir / "run" / f"gunicorn-{port}.pid"),
                          log=stack.gunicorn_log, cwd=app_dir, env={"DRILL_APP_CONFIG": str(stack.app_config)})
    stack.procs["app2"] = proc
    deadline = time.monotonic() + 20
    while True:  # up and accepting before it joins the pool (a TCP check passes)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SandboxError(f"the second app server did not listen on 127.0.0.1:{port}")
        time.sleep(0.05)
    mark = _size(stack.gunicorn_log)
    stack.nginx_conf.write_text(stack.render_nginx_conf(
        upstream_servers=[f"127.0.0.1:{stack.ports['app']}", f"127.0.0.1:{port}"]))
    stack.reload_nginx()
    _wait_for_log(stack.gunicorn_log, "No module named", start=mark)


register(Scenario(
    name="unready-backend",
    expected="unready-backend",
    summary="a second gunicorn joins nginx's upstream while its release lacks a module; "
            "it answers 500 to its share of the requests, its peer is fine",
    inject=_join_unready_backend,
))


# --- tls-certificate-expired -------------------------------------------------------------------


def _expire_certificate(stack: Stack) -> None:
    """The site's certificate has run out (it is replaced by one that expired
    yesterday, with the files' old times), and nginx reloads."""
    tls = stack.dir / "nginx" / "tls"
    crt, key = tls / "site.crt", tls / "site.key"
    scratch = stack.sb.path("expired-certificate")  # made outside nginx's folder, then copied in place
    stack.make_certificate(scratch / "site.crt", scratch / "site.key", expired=True)
    for src, dst in ((scratch / "site.crt", crt), (scratch / "site.key", key)):
        st = dst.stat()
        dst.write_bytes(src.read_bytes())
        os.utime(dst, (st.st_atime, st.st_mtime))
    stack.reload_nginx()
    time.sleep(0.5)  # the master re-reads the certificate and starts new workers


register(Scenario(
    name="tls-certificate-expired",
    expected="tls-certificate-expired",
    summary="nginx serves a certificate that expired yesterday; TLS clients fail the handshake",
    inject=_expire_certificate,
))
