"""`ddx serve`: the incidents over HTTP, diagnosis on request, Alertmanager's webhook."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

from ddx.cli._common import add_command

DESCRIPTION = """\
Serve the incident store over HTTP (JSON), diagnose this host on request, and
receive Alertmanager's webhook: each alert group becomes one incident with a
diagnosis of this host (and of the targets its [[alertmanager.route]] names),
notified through [notify.*] and resolved when the group resolves.

Every request but GET /healthz needs `Authorization: Bearer TOKEN`; the token
comes from $DDX_TOKEN or [serve] token_file, and without one ddx serve does not
start. It listens on 127.0.0.1:8923 unless told otherwise ([serve] listen or
--listen). Routes: GET /api/v1/incidents, GET /api/v1/incidents/ID,
POST /api/v1/diagnose, POST /api/v1/alertmanager, GET /healthz.
"""

EXAMPLES = """\
  DDX_TOKEN=$(cat /etc/ddx/token) ddx serve           127.0.0.1:8923, store /var/lib/ddx/ddx.db
  ddx serve --config /etc/ddx/ddx.toml                [serve], [alertmanager], [notify.*] from that file
  ddx serve --listen 10.0.0.5:8923 --store ./ddx.db   listen on another address, a store of your own
  curl -H "Authorization: Bearer $DDX_TOKEN" http://127.0.0.1:8923/api/v1/incidents?status=open
"""


def register(sub: Any) -> None:
    p = add_command(sub, "serve", help="serve incidents over HTTP; diagnose on request and on Alertmanager alerts",
                    description=DESCRIPTION, examples=EXAMPLES, func=run)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="address to listen on (default: [serve] listen, 127.0.0.1:8923)")
    p.add_argument("--config", metavar="FILE", help="settings file (default: $DDX_CONFIG, ./ddx.toml, /etc/ddx/ddx.toml)")
    p.add_argument("--store", metavar="PATH", help="incident store (default: [serve] store, /var/lib/ddx/ddx.db)")


def host_diagnosis(config: str | None, budget: float, kb_dirs: list[str] | None = None
                   ) -> Callable[..., dict[str, Any]]:
    """The real diagnosis ``ddx serve`` runs: this host and the targets given, as JSON."""

    def run(targets: list[str] | None = None) -> dict[str, Any]:
        from ddx.api import diagnose_host_json

        return diagnose_host_json(config=config, budget=budget, targets=list(targets or ()), kb_dirs=kb_dirs or ())

    return run


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from ddx.config import load_config
    from ddx.errors import UsageError
    from ddx.watch.incidents import IncidentBook
    from ddx.watch.store import Store
    from ddx.web.settings import is_loopback, parse_listen, read_token, serve_settings

    config = load_config(args.config)
    settings = serve_settings(config.service, config.path or "ddx.toml")
    if args.listen is not None:
        parse_listen(args.listen, "--listen")
        settings = replace(settings, listen=args.listen)
    if args.store is not None:
        if not args.store.strip():
            raise UsageError("--store: an empty file name")
        settings = replace(settings, store=args.store)
    host, port = parse_listen(settings.listen, "--listen" if args.listen is not None else
                              f"{settings.where}: [serve] key 'listen':")
    token = read_token(settings, warn=_warn)
    if not is_loopback(host):
        _warn(f"listening on {settings.listen}, reachable from other machines: only the token guards the API, "
              "and it travels in clear over HTTP (put a TLS proxy in front, or listen on 127.0.0.1)")

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    store = Store(settings.store)
    from ddx.watch.notify import build_notifier

    notifier = build_notifier(config, store)
    book = IncidentBook(store, notifier)
    try:
        _serve(book, token, settings, host, port, host_diagnosis(config.path, settings.diagnose_budget, args.kb))
    finally:
        book.close(5.0)
    return 0


def _serve(book: Any, token: str, settings: Any, host: str, port: int, diagnose: Callable[..., Any]) -> None:
    """Serve until SIGINT or SIGTERM. uvicorn stops gracefully on either (the
    requests in hand finish, the alert intake stops), then raises the signal
    again, which ddx's own handler turns into its usual stop (``ddx.cli.stop``)."""
    import uvicorn

    from ddx.web.app import create_app

    app = create_app(book, token=token, diagnose=diagnose, settings=settings, this_host=socket.gethostname())
    sock = _bind(host, port, settings.listen)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                          server_header=False, proxy_headers=False))
    shown = f"[{host}]" if ":" in host else host
    logging.getLogger("ddx.serve").info("ddx serve: listening on http://%s:%d, store %s", shown, port,
                                        settings.store)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int, listen: str) -> socket.socket:
    """A listening socket on host:port; DdxError saying why not (in use, not an address of this host)."""
    from ddx.errors import DdxError

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                                                          socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise DdxError(f"cannot listen on {listen}: {getattr(exc, 'strerror', None) or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise DdxError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
    return sock


def _warn(message: str) -> None:
    from ddx.render.safe import printable

    print(f"ddx serve: warning: {printable(message)}", file=sys.stderr, flush=True)
