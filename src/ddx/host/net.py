"""Network connections as a host sees them: ``can_connect``, ``open_connection``.

A probe that talks to a service (an HTTP request, a TLS handshake, memcached's
or redis's stats, a php-fpm status page) opens its connection through the host
it examines, so that 127.0.0.1:PORT means *that* host's loopback: on the
running machine a plain socket; on a host read over SSH a socket whose bytes the
agent there relays (``SshHost.connect``); on a replayed bundle none at all (the
exchanges were not recorded, and the replaying machine's loopback is another
host's), which ``offline_reason`` explains.
"""

from __future__ import annotations

import socket
from typing import Any

from ddx.host.base import is_live

__all__ = ["can_connect", "open_connection"]


def can_connect(host: Any) -> bool:
    """May a probe open network connections as ``host``?"""
    return is_live(host) or callable(getattr(host, "connect", None))


def open_connection(host: Any, address: tuple[str, int] | str, timeout: float) -> socket.socket:
    """A stream socket connected as ``host`` to ``address`` ((host, port) over TCP,
    or the path of a Unix socket; an abstract one starts with NUL), its timeout
    set to ``timeout``; ``host`` None is this machine. Raises what
    ``socket.create_connection`` raises (``ConnectionRefusedError``,
    ``TimeoutError``, ``socket.gaierror``, ``OSError``), and ``LookupError`` for a
    host no connection can be made as (a bundle: check ``can_connect`` first)."""
    connect = getattr(host, "connect", None)
    if callable(connect):
        sock: socket.socket = connect(address, timeout)
        return sock
    if host is not None and not is_live(host):
        raise LookupError("no network connection can be made as a replayed bundle")
    if isinstance(address, str):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock
    return socket.create_connection(address, timeout=timeout)
