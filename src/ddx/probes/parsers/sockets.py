"""Sockets: the one parser of ``ss`` output and of ``/proc/net/{tcp,tcp6,unix}``.

Every probe that needs to know who listens where, or which connections a
process holds, reads sockets through these functions (pure, on text):

- ``parse_ss``: any ``ss`` table: TCP/UDP (``-t``/``-u``) or unix (``-x``),
  with or without the header (``-H``), the ``Netid`` column (several kinds at
  once), the ``State`` column (absent with ``-l`` on some versions) and the
  owning processes (``-p``: ``users:(("nginx",pid=12,fd=6),...)``).
- ``parse_proc_net_tcp``: ``/proc/net/tcp`` or ``tcp6`` (addresses are 32-bit
  words in host order), with each socket's inode for matching ``/proc/PID/fd``.
- ``parse_proc_net_unix``: ``/proc/net/unix``; a listening socket carries
  ``__SO_ACCEPTCON`` in its flags.

For a listening socket ``recv_q`` is its accept queue and ``send_q`` its
backlog (``ss``; ``/proc/net/tcp`` does not show the backlog: None).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = [
    "Owner",
    "Socket",
    "dedupe_listeners",
    "parse_proc_net_tcp",
    "parse_proc_net_unix",
    "parse_ss",
]

_OWNER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)')
_NETIDS = frozenset({"tcp", "udp", "raw", "sctp", "dccp", "mptcp", "nl", "p_raw", "p_dgr", "v_str", "v_dgr",
                     "u_str", "u_dgr", "u_seq", "unix", "xdp", "tipc"})
_TCP_STATES = {  # include/net/tcp_states.h
    "01": "ESTAB", "02": "SYN-SENT", "03": "SYN-RECV", "04": "FIN-WAIT-1", "05": "FIN-WAIT-2",
    "06": "TIME-WAIT", "07": "UNCONN", "08": "CLOSE-WAIT", "09": "LAST-ACK", "0A": "LISTEN", "0B": "CLOSING",
}
SO_ACCEPTCON = 0x10000  # /proc/net/unix flags of a listening socket


@dataclass(frozen=True)
class Owner:
    """A process holding the socket (``ss -p``)."""

    program: str  # its comm, as ss shows it
    pid: int
    fd: int


@dataclass(frozen=True)
class Socket:
    """One socket. ``local`` and ``peer`` are as ``ss`` writes them:
    ``127.0.0.1:80``, ``[::]:443``, ``*:80``, ``0.0.0.0%lo:53``; for a unix
    socket a path (``/run/php/php-fpm.sock``), an abstract name (``@name``) or ``*``."""

    netid: str  # tcp, udp, u_str, ...
    state: str  # LISTEN, ESTAB, UNCONN, ...
    recv_q: int
    send_q: int | None
    local: str
    peer: str = ""
    owners: tuple[Owner, ...] = field(default=())
    inode: int | None = None

    @property
    def unix(self) -> bool:
        return self.netid.startswith("u_") or self.netid == "unix"

    @property
    def listening(self) -> bool:
        return self.state == "LISTEN"

    @property
    def address(self) -> str:
        """The local address without the port (``127.0.0.1``, ``::``, ``*``); a unix socket's path."""
        if self.unix:
            return self.local
        host = self.local.rpartition(":")[0]
        return host.split("%")[0].strip("[]")

    @property
    def port(self) -> int | None:
        if self.unix:
            return None
        port = self.local.rpartition(":")[2]
        return int(port) if port.isdigit() else None

    @property
    def path(self) -> str:
        """A unix socket's path ("" for unnamed and abstract ones, and for TCP)."""
        return self.local if self.unix and self.local.startswith("/") else ""

    @property
    def port_key(self) -> str:
        """What an accepted connection shares with its listener: the port (inet) or the path (unix)."""
        return self.local if self.unix else f":{self.port}"

    @property
    def pids(self) -> frozenset[int]:
        return frozenset(o.pid for o in self.owners)

    @property
    def programs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(o.program for o in self.owners))

    @property
    def connect_host(self) -> str:
        """Where a client on this host connects: the wildcard addresses mean loopback."""
        a = self.address
        if a in ("0.0.0.0", "*", ""):
            return "127.0.0.1"
        if a == "::":
            return "::1"
        return a

    @property
    def loopback_only(self) -> bool:
        a = self.address
        return a.startswith("127.") or a == "::1"


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_ss(text: str, netid: str = "tcp") -> list[Socket]:
    """Sockets of an ``ss`` table. ``netid`` is the kind when the table has no
    ``Netid`` column (``ss -t`` gives tcp, ``ss -x`` unix: pass ``u_str``).
    Lines that do not parse (a header, a truncated line) are skipped."""
    out: list[Socket] = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0] in ("State", "Netid", "Recv-Q"):
            continue
        kind = netid
        if words[0] in _NETIDS:
            kind = words.pop(0)
        state = "LISTEN"  # `ss -l` without a State column lists listeners only
        if words and _int(words[0]) is None:
            state = words.pop(0)
        if len(words) < 3:
            continue
        recv_q, send_q = _int(words[0]), _int(words[1])
        if recv_q is None or send_q is None:
            continue
        unix = kind.startswith("u_") or kind == "unix"
        local = words[2]
        inode = None
        if unix:
            inode = _int(words[3]) if len(words) > 3 else None
            peer = words[4] if len(words) > 4 else ""
        else:
            if ":" not in local:
                continue
            peer = words[3] if len(words) > 3 and not words[3].startswith("users:") else ""
        owners = tuple(Owner(m.group(1), int(m.group(2)), int(m.group(3))) for m in _OWNER.finditer(line))
        out.append(Socket(kind, state, recv_q, send_q, local, peer, owners, inode))
    return out


def _hex_ip(hexaddr: str) -> str:
    """An address of /proc/net/tcp{,6}: 32-bit words in host (little-endian) order."""
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        return ".".join(str(b) for b in words)
    groups = [f"{(words[i] << 8) | words[i + 1]:x}" for i in range(0, 16, 2)]
    text = ":".join(groups)
    text = re.sub(r"(^|:)0(:0)+(:|$)", "::", text, count=1)
    return f"[{text}]"


def parse_proc_net_tcp(text: str, netid: str = "tcp") -> list[Socket]:
    """Rows of ``/proc/net/tcp`` or ``tcp6``. The queues are ``tx_queue:rx_queue``;
    for a listener rx_queue is the accept queue, and the backlog is not shown."""
    out: list[Socket] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 10 or not parts[0].endswith(":") or ":" not in parts[1]:
            continue
        try:
            la, _, lp = parts[1].partition(":")
            ra, _, rp = parts[2].partition(":")
            tx, _, rx = parts[4].partition(":")
            local = f"{_hex_ip(la)}:{int(lp, 16)}"
            peer = f"{_hex_ip(ra)}:{int(rp, 16)}"
            state = _TCP_STATES.get(parts[3].upper(), parts[3])
            send = None if state == "LISTEN" else int(tx, 16)
            out.append(Socket(netid, state, int(rx, 16), send, local, peer, (), _int(parts[9])))
        except ValueError:
            continue
    return out


def parse_proc_net_unix(text: str) -> list[Socket]:
    """Rows of ``/proc/net/unix`` (``Num RefCount Protocol Flags Type St Inode Path``);
    a row whose flags carry ``__SO_ACCEPTCON`` listens."""
    kinds = {"0001": "u_str", "0002": "u_dgr", "0005": "u_seq"}
    out: list[Socket] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 7 or not parts[0].endswith(":"):
            continue
        try:
            flags = int(parts[3], 16)
        except ValueError:
            continue
        inode = _int(parts[6])
        path = parts[7] if len(parts) > 7 else "*"
        state = "LISTEN" if flags & SO_ACCEPTCON else ("ESTAB" if parts[5] == "03" else "UNCONN")
        out.append(Socket(kinds.get(parts[4], "u_str"), state, 0, None, path, "", (), inode))
    return out


def dedupe_listeners(socks: Iterable[Socket]) -> list[Socket]:
    """One listener per (process, port): a server listening on 0.0.0.0 and [::]
    is one service. IPv4 first (what local clients usually use); by port, then pid."""
    best: dict[tuple[frozenset[int], int | str | None], Socket] = {}
    for s in sorted(socks, key=lambda s: (":" in s.address, s.address)):
        best.setdefault((s.pids, s.port if not s.unix else s.local), s)
    return sorted(best.values(), key=lambda s: (s.port or 0, s.local, min(s.pids, default=0)))
