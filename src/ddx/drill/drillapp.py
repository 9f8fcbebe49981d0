"""The sandbox's web application: a small WSGI app like the ones ddx diagnoses.

It runs under Debian's gunicorn and /usr/bin/python3 (not ddx's environment),
so it uses only the standard library and psycopg2 (python3-psycopg2). Each page
view does what a typical app does, so each fault has a real path to break:

- a session file written in the sessions folder (its own inode-limited tmpfs);
- the page looked up in memcached (every node in ``cache_servers``), else read
  from PostgreSQL and stored back;
- the rendered page written to the cache folder (its own small tmpfs);
- a row inserted in ``visits`` (an int4 id fed by a sequence).

Errors are logged with Python logging to ``log_file`` (held open, or with
``log_per_write`` opened and closed for each record) and answered with 500,
as a real app would. Settings come from the JSON file named by DRILL_APP_CONFIG,
re-read when a worker starts (a gunicorn HUP reloads them).
"""

import json
import logging
import os
import random
import socket
import time
import zlib

CONFIG = json.load(open(os.environ["DRILL_APP_CONFIG"]))
_FORMAT = "%(asctime)s %(levelname)s app[%(process)d]: %(message)s"


class _PerWrite(logging.Handler):
    """Opens the log, appends one record and closes it, as many PHP and shell-written logs do:
    no process holds the file open between writes."""

    def emit(self, record):
        try:
            with open(CONFIG["log_file"], "a") as f:
                f.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 - logging must never break a request
            self.handleError(record)


if CONFIG.get("log_per_write"):
    _handler = _PerWrite()
    _handler.setFormatter(logging.Formatter(_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[_handler])
else:
    logging.basicConfig(filename=CONFIG["log_file"], level=logging.INFO, format=_FORMAT)
log = logging.getLogger("drillapp")

try:
    import psycopg2
except ImportError:  # the drill checks for python3-psycopg2 before it starts
    psycopg2 = None

_db = None
_cache: dict[str, object] = {}
# What a real app's worker holds from its start (loaded models, warmed caches): touched, so resident.
_resident = b"\1" * (int(CONFIG.get("worker_memory_mb", 0)) << 20)


def _database():
    global _db
    if _db is None or _db.closed:
        _db = psycopg2.connect(CONFIG["database"], connect_timeout=3)
        _db.autocommit = True
    return _db


def _cache_sock(server):
    s = _cache.get(server)
    if s is None:
        host, port = server.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=2)
        _cache[server] = s
    return s


def _cache_call(server, payload, until):
    """One memcached text-protocol exchange; returns the reply up to ``until``."""
    try:
        s = _cache_sock(server)
        s.sendall(payload)
        buf = b""
        while not buf.endswith(until) and not buf.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed by the cache server")
            buf += chunk
        if buf.startswith((b"SERVER_ERROR", b"CLIENT_ERROR", b"ERROR")):
            _cache.pop(server, None)
            s.close()
            raise RuntimeError("memcached %s: %s" % (server, buf.split(b"\r\n")[0].decode(errors="replace")))
        return buf
    except OSError:
        _cache.pop(server, None)
        raise


def _server_for(key):
    servers = CONFIG["cache_servers"]
    return servers[zlib.crc32(key.encode()) % len(servers)]


def cache_get(key):
    server = _server_for(key)
    reply = _cache_call(server, b"get " + key.encode() + b"\r\n", b"END\r\n")
    if reply.startswith(b"VALUE"):
        header, _, rest = reply.partition(b"\r\n")
        n = int(header.split()[3])
        return rest[:n]
    return None


def cache_set(key, value):
    server = _server_for(key)
    _cache_call(server, b"set %s 0 300 %d\r\n%s\r\n" % (key.encode(), len(value), value), b"\r\n")


def write_atomic(folder, name, data):
    tmp = os.path.join(folder, ".%s.%d.tmp" % (name, os.getpid()))
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, os.path.join(folder, name))


def _render(cpu_ms):
    """Template rendering and serialisation: CPU time a real page costs (``page_cpu_ms``)."""
    end = time.thread_time() + cpu_ms / 1000.0
    while time.thread_time() < end:
        zlib.crc32(b"x" * 4096)


def page(environ):
    n = random.randrange(CONFIG.get("pages", 50))
    _render(CONFIG.get("page_cpu_ms", 0))
    session = "sess_%08x" % random.getrandbits(32)
    write_atomic(CONFIG["sessions_dir"], session, b"user=%d;t=%f" % (n, time.time()))
    # sessions expire: keep the folder to a steady size, as a session GC would
    if random.random() < 0.5:
        names = [x for x in os.listdir(CONFIG["sessions_dir"]) if x.startswith("sess_")]
        if len(names) > CONFIG.get("max_sessions", 200):
            for old in names[: len(names) - CONFIG.get("max_sessions", 200)]:
                try:
                    os.unlink(os.path.join(CONFIG["sessions_dir"], old))
                except FileNotFoundError:
                    pass
    key = "page:%d" % n
    body = cache_get(key)
    if body is None:
        cur = _database().cursor()
        cur.execute("SELECT title, body FROM items WHERE id = %s", (n,))
        row = cur.fetchone()
        body = ("<h1>%s</h1><p>%s</p>" % row).encode() if row else b"<h1>not found</h1>"
        body += b"<!-- " + b"x" * CONFIG.get("page_padding", 2048) + b" -->"
        cache_set(key, body)
    write_atomic(CONFIG["cache_dir"], "page_%d.html" % n, body)
    cur = _database().cursor()
    cur.execute("INSERT INTO visits (page) VALUES (%s)", (n,))
    return body


def report(environ):
    """A slow page: a report that waits on the database for a while."""
    cur = _database().cursor()
    cur.execute("SELECT pg_sleep(%s)", (CONFIG.get("report_seconds", 2.0),))
    return b"report done\n"


def upload(environ):
    size = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(size)
    cache_set("upload:%d" % random.getrandbits(16), data)
    return b"stored %d bytes\n" % len(data)


ROUTES = {"/": page, "/report": report, "/upload": upload, "/health": lambda environ: b"ok\n"}


def app(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", "/"))
    if handler is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    try:
        body = handler(environ)
    except Exception as exc:  # what a real app's error handler does: log it, answer 500
        global _db
        log.error("%s %s failed: %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"),
                  type(exc).__name__, str(exc).strip().replace("\n", " "))
        if psycopg2 is not None and isinstance(exc, psycopg2.Error) and _db is not None and _db.closed:
            _db = None
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"internal error\n"]
    start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
    return [body]
