"""ports: outgoing connections that have used up the local (ephemeral) port range.

A connect() without an explicit bind takes a local port from
``net.ipv4.ip_local_port_range`` (32768-60999 on Linux by default: 28,232
ports). The kernel needs the four-tuple (local address and port, peer address
and port) to be unique, so the range is spent per destination: an application
that opens a new connection to its database or upstream for every request, and
closes it, leaves each local port in TIME-WAIT for 60 s. At a few hundred
connections a second to one address the range runs out and connect() fails
with EADDRNOTAVAIL, "Cannot assign requested address", while the destination
is healthy and the host idle.

The probe counts the TCP sockets that are not listening and whose local port
lies in the range, per peer address, and calls the range exhausted for a peer
that holds ``share`` of it (90%: past that connect() fails at random, more
often as the last free ports are taken). The evidence names the peer, the
count, how many sit in TIME-WAIT (short-lived connections) and the range.
"""

from __future__ import annotations

from collections import Counter

from ddx.host import Host
from ddx.inventory.sockets import read_sockets
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe

__all__ = ["parse_port_range", "ports", "split_port"]

RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


def parse_port_range(text: str) -> tuple[int, int] | None:
    """``32768\\t60999`` -> (32768, 60999); None when malformed."""
    try:
        lo, hi = (int(x) for x in text.split())
    except ValueError:
        return None
    return (lo, hi) if 0 < lo <= hi <= 65535 else None


def split_port(addr: str) -> tuple[str, int] | None:
    """``10.0.0.5:5432`` or ``[::1]:80`` -> (address, port); None for ``*:*`` and the like."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host, int(port)


def _port_range(host: Host) -> tuple[int, int] | None:
    try:
        return parse_port_range(host.read_text(RANGE, max_bytes=256))
    except (OSError, LookupError):
        return None


@probe(
    "ports",
    findings=("net.ephemeral_ports_exhausted",),
    timeout=3.0,
    options={
        # Share of the local port range held towards one peer at which it counts as exhausted.
        "share": 0.9,
    },
)
def ports(ctx: ProbeContext) -> list[Finding]:
    """Local ports in use per destination against the ephemeral port range."""
    rng = _port_range(ctx.host)
    if rng is None:
        raise FileNotFoundError(f"{RANGE} could not be read")
    lo, hi = rng
    size = hi - lo + 1
    read = read_sockets(ctx.host, listening=False, owners=False)
    if not read.sockets and read.problems:
        raise OSError("; ".join(read.problems))
    used: Counter[str] = Counter()
    waiting: Counter[str] = Counter()
    for s in read.sockets:
        if s.listening:
            continue
        local, peer = split_port(s.local), split_port(s.peer)
        if local is None or peer is None or not lo <= local[1] <= hi or peer[1] == 0:
            continue
        used[s.peer] += 1
        waiting[s.peer] += s.state == "TIME-WAIT"
    share = float(ctx.opt("share"))
    where = f"{read.source}; local port range {lo}-{hi} ({size} ports, {RANGE})"
    full = [(p, n) for p, n in used.most_common() if n >= share * size]
    if full:
        return [ctx.finding(
            "net.ephemeral_ports_exhausted", True,
            *(Evidence(read.source,
                       f"{n} of {size} local ports ({lo}-{hi}) in use towards {p}, {waiting[p]} of them in TIME-WAIT",
                       value=n, threshold=round(share * size), unit="ports")
              for p, n in full))]
    if used:
        p, n = used.most_common(1)[0]
        summary = f"the busiest destination, {p}, holds {n} of {size} local ports; {where}"
    else:
        summary = f"no outgoing connection holds a local port; {where}"
    return [ctx.finding("net.ephemeral_ports_exhausted", False, Evidence(read.source, summary))]
