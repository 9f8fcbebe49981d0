"""Network: accept-queue overflows, resets, retransmits and lost packets *during* the window.

The kernel's counters (``/proc/net/netstat``, ``/proc/net/snmp``,
``/proc/net/dev``) count from boot, so a large value says nothing about now:
the probe reads them twice, ``ctx.window`` seconds apart, and judges the
difference. Listening sockets come from ``ss -ltn`` (Recv-Q is the accept
queue, Send-Q the backlog); without ``ss``, ``/proc/net/tcp{,6}`` give the
queue but not the backlog, so a full queue cannot be told from there.

What the counters can and cannot say:

- ``net.listen_overflows``: TcpExt ListenOverflows / ListenDrops rising, or a
  listener whose accept queue is at its backlog when sampled. The counters are
  per network namespace and do not name the port; ``ss`` does.
- ``net.connection_resets``: Tcp EstabResets (established connections closed
  by a reset, sent or received) rising faster than ``resets_per_s``.
- ``net.retransmits_high``: RetransSegs / OutSegs over the window, less the SYN and
  SYN-ACK retransmits that retry handshakes this host's own full accept queues
  dropped (ListenDrops): that is saturation here, not a lossy network.
- ``net.packet_loss``: interface drop, error and FIFO-overrun counters against
  the packets that went through, per interface, loopback excluded.
- ``net.connections_refused`` is not declared: a refused connect() shows as
  OutRsts and AttemptFails, which also count port scans, aborted connections
  and other resets, so the counters cannot tell that clients were refused.

A window shorter than ``MIN_WINDOW`` gives no usable difference: the
counter-based findings stay unknown (a full accept queue is still reported).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ddx.errors import ProbeError
from ddx.host import Host
from ddx.inventory.sockets import read_sockets
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.sockets import Socket

__all__ = [
    "IfCounters",
    "Listener",
    "NetSample",
    "judge",
    "listeners_of",
    "listening_sockets",
    "net",
    "parse_counters",
    "parse_net_dev",
    "take_sample",
]

FINDINGS = ("net.listen_overflows", "net.connection_resets", "net.retransmits_high", "net.packet_loss")
MIN_WINDOW = 0.2  # seconds; below this two reads are the same instant
SS_TIMEOUT = 2.0

DEFAULTS: dict[str, Any] = {
    # Share of sent TCP segments that were retransmissions. Healthy LAN and
    # data-centre paths stay well under 1%; common alert rules warn at 1-2%.
    "retrans_ratio": 0.02,
    # ...and at least this many retransmitted segments in the window, so that
    # 1 of 20 segments on an idle host does not count.
    "retrans_min": 10,
    # Resets of established connections per second; netdata's
    # 10s_ip_tcp_resets_* alarms use 5 resets/s as their floor.
    "resets_per_s": 5.0,
    "resets_min": 5,
    # Lost (dropped + error + overrun) packets as a share of an interface's
    # traffic; awesome-prometheus-alerts HostNetworkReceiveErrors uses 1%.
    "loss_ratio": 0.01,
    "loss_min": 5,
}


# --- parsers --------------------------------------------------------------


def parse_counters(text: str) -> dict[str, dict[str, int]]:
    """``/proc/net/snmp`` and ``/proc/net/netstat``: pairs of lines, a header
    (``Tcp: RtoAlgorithm RtoMin ...``) then the values (``Tcp: 1 200 ...``)."""
    out: dict[str, dict[str, int]] = {}
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    i = 0
    while i + 1 < len(lines):
        head, vals = lines[i], lines[i + 1]
        if head and vals and head[0] == vals[0] and head[0].endswith(":") and len(head) == len(vals):
            try:
                out.setdefault(head[0][:-1], {}).update(zip(head[1:], (int(v) for v in vals[1:])))
            except ValueError:
                pass
            i += 2
        else:
            i += 1
    return out


@dataclass(frozen=True)
class IfCounters:
    """One interface's line of ``/proc/net/dev``."""

    rx_packets: int
    rx_errs: int
    rx_drop: int
    rx_fifo: int
    tx_packets: int
    tx_errs: int
    tx_drop: int
    tx_fifo: int

    @property
    def packets(self) -> int:
        return self.rx_packets + self.tx_packets

    @property
    def lost(self) -> int:
        return self.rx_errs + self.rx_drop + self.rx_fifo + self.tx_errs + self.tx_drop + self.tx_fifo


def parse_net_dev(text: str) -> dict[str, IfCounters]:
    """``/proc/net/dev``: interface name, 8 receive then 8 transmit counters."""
    out: dict[str, IfCounters] = {}
    for line in text.splitlines():
        if ":" not in line or "|" in line:
            continue
        name, _, rest = line.partition(":")
        cols = rest.split()
        if len(cols) < 16:
            continue
        try:
            v = [int(c) for c in cols[:16]]
        except ValueError:
            continue
        out[name.strip()] = IfCounters(v[1], v[2], v[3], v[4], v[9], v[10], v[11], v[12])
    return out


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: its address, accept queue and backlog (None
    when the source does not show it)."""

    local: str
    port: int
    queue: int
    backlog: int | None

    @property
    def full(self) -> bool:
        # The kernel drops when the queue is *above* the backlog; a queue at
        # the backlog drops the next connection. backlog 0 still queues one.
        return self.backlog is not None and self.queue > 0 and self.queue >= self.backlog

    def describe(self) -> str:
        limit = "?" if self.backlog is None else str(self.backlog)
        return f"{self.local} accept queue {self.queue}/{limit}"


def listeners_of(socks: Iterable[Socket]) -> list[Listener]:
    """The listening TCP sockets of a socket table, with their accept queue and backlog."""
    return [Listener(s.local, s.port, s.recv_q, s.send_q) for s in socks
            if s.listening and not s.unix and s.port is not None]


# --- sampling -------------------------------------------------------------


@dataclass(frozen=True)
class NetSample:
    """One reading of the counters at ``time`` (epoch seconds)."""

    time: float
    counters: Mapping[str, Mapping[str, int]]  # section -> name -> value (snmp + netstat)
    interfaces: Mapping[str, IfCounters]
    listeners: tuple[Listener, ...] = ()
    listeners_source: str = ""


def listening_sockets(host: Host) -> tuple[tuple[Listener, ...], str]:
    """This host's listening TCP sockets with their accept queues, and what was read:
    ``ss`` (which shows the backlog too), else ``/proc/net/tcp{,6}``."""
    read = read_sockets(host, owners=False)
    return tuple(listeners_of(read.sockets)), read.source


def take_sample(host: Host) -> NetSample:
    """Read every counter once. Raises when neither snmp nor netstat is readable."""
    counters: dict[str, dict[str, int]] = {}
    for path in ("/proc/net/snmp", "/proc/net/netstat"):
        try:
            for sect, vals in parse_counters(host.read_text(path)).items():
                counters.setdefault(sect, {}).update(vals)
        except FileNotFoundError:
            continue
    if not counters:
        raise ProbeError("no TCP counters: /proc/net/snmp and /proc/net/netstat are missing (no /proc?)")
    try:
        interfaces = parse_net_dev(host.read_text("/proc/net/dev"))
    except FileNotFoundError:
        interfaces = {}
    listeners, src = listening_sockets(host)
    return NetSample(host.time(), counters, interfaces, listeners, src)


# --- judging --------------------------------------------------------------


def _delta(a: NetSample, b: NetSample, sect: str, name: str) -> int | None:
    x, y = a.counters.get(sect, {}).get(name), b.counters.get(sect, {}).get(name)
    if x is None or y is None:
        return None
    return max(0, y - x)  # a counter that went back (reset, 32-bit wrap) counts as no change


def _listen(a: NetSample, b: NetSample, secs: float, use_counters: bool) -> tuple[bool, Evidence] | None:
    by_addr: dict[str, Listener] = {}
    for ln in (*a.listeners, *b.listeners):
        cur = by_addr.get(ln.local)
        if cur is None or ln.queue > cur.queue:
            by_addr[ln.local] = ln
    full = sorted((ln for ln in by_addr.values() if ln.full), key=lambda ln: -ln.queue)
    busy = sorted((ln for ln in by_addr.values() if ln.queue > 0 and not ln.full), key=lambda ln: -ln.queue)
    over = _delta(a, b, "TcpExt", "ListenOverflows") if use_counters else None
    drops = _delta(a, b, "TcpExt", "ListenDrops") if use_counters else None
    if over is None and drops is None and not full:
        return None  # nothing measured: unknown
    rose = bool(over) or bool(drops)
    parts = []
    if over is not None or drops is not None:
        parts.append(f"ListenOverflows +{over or 0}, ListenDrops +{drops or 0} in {secs:.1f}s")
    if full:
        parts.append("accept queue full: " + ", ".join(ln.describe() for ln in full[:3]))
    elif rose:
        parts.append("no listener's queue was at its backlog when sampled")
    src = b.listeners_source or a.listeners_source
    if by_addr and not src.startswith("ss"):
        parts.append(f"backlogs unknown ({src} does not show them; ss is missing)")
    summary = "; ".join(parts)
    samples = tuple(ln.describe() for ln in (full + busy)[:3])
    sources = "/proc/net/netstat" + (f", {src}" if by_addr else "")
    return rose or bool(full), Evidence(
        source=sources,
        summary=summary,
        value=over if over is not None else (full[0].queue if full else None),
        threshold=0 if over is not None else None,
        samples=samples,
        count=over,
    )


def judge(a: NetSample, b: NetSample, options: Mapping[str, Any]) -> list[tuple[str, bool, Evidence]]:
    """Compare two samples; (finding id, present, evidence) for each finding
    the samples can decide. Pure: tests feed it parsed samples."""
    opt = {**DEFAULTS, **options}
    secs = b.time - a.time
    use_counters = secs >= MIN_WINDOW
    out: list[tuple[str, bool, Evidence]] = []

    lo = _listen(a, b, secs, use_counters)
    if lo is not None:
        out.append(("net.listen_overflows", lo[0], lo[1]))
    if not use_counters:
        return out

    resets = _delta(a, b, "Tcp", "EstabResets")
    if resets is not None:
        rate = resets / secs
        extra = []
        for name in ("OutRsts", "AttemptFails"):
            d = _delta(a, b, "Tcp", name)
            if d is not None:
                extra.append(f"{name} +{d}")
        present = resets >= int(opt["resets_min"]) and rate >= float(opt["resets_per_s"])
        out.append(("net.connection_resets", present, Evidence(
            source="/proc/net/snmp",
            summary=f"EstabResets +{resets} in {secs:.1f}s ({rate:.1f}/s)"
            + (f"; {', '.join(extra)}" if extra else ""),
            value=round(rate, 2),
            threshold=float(opt["resets_per_s"]),
            unit="resets/s",
            count=resets,
        )))

    retrans = _delta(a, b, "Tcp", "RetransSegs")
    sent = _delta(a, b, "Tcp", "OutSegs")
    if retrans is not None and sent is not None:
        syn = _delta(a, b, "TcpExt", "TCPSynRetrans")
        # A handshake that this host's own full accept queue dropped (ListenDrops) is retried:
        # a local client sends its SYN again, this host its SYN-ACK to a remote one (both in
        # TCPSynRetrans). Those retransmits are the listener's saturation, not the network.
        local = min(syn or 0, _delta(a, b, "TcpExt", "ListenDrops") or 0)
        lost = retrans - local
        ratio = lost / sent if sent else (1.0 if lost else 0.0)
        present = lost >= int(opt["retrans_min"]) and ratio >= float(opt["retrans_ratio"])
        out.append(("net.retransmits_high", present, Evidence(
            source="/proc/net/snmp, /proc/net/netstat",
            summary=f"RetransSegs +{retrans} of OutSegs +{sent} in {secs:.1f}s"
            + (f"; of which SYN retransmits +{syn}" if syn else "")
            + (f"; {local} of them retry handshakes this host's full accept queues dropped (ListenDrops), "
               f"leaving {lost} ({ratio:.2%})" if local else f" ({ratio:.2%})"),
            value=round(ratio * 100, 2),
            threshold=round(float(opt["retrans_ratio"]) * 100, 2),
            unit="%",
            count=retrans,
        )))

    names = sorted(set(a.interfaces) & set(b.interfaces) - {"lo"})
    if names:
        rows = []
        worst_ratio, any_bad = 0.0, False
        for name in names:
            x, y = a.interfaces[name], b.interfaces[name]
            lost = max(0, y.lost - x.lost)
            pk = max(0, y.packets - x.packets)
            ratio = lost / (pk + lost) if lost else 0.0
            bad = lost >= int(opt["loss_min"]) and ratio >= float(opt["loss_ratio"])
            any_bad |= bad
            worst_ratio = max(worst_ratio, ratio)
            if lost or bad:
                rows.append((bad, ratio, f"{name}: {lost} lost of {pk + lost} packets ({ratio:.2%})"))
        rows.sort(key=lambda r: (not r[0], -r[1]))
        summary = (
            "; ".join(r[2] for r in rows[:3])
            if rows
            else f"no drops or errors on {', '.join(names[:6])} in {secs:.1f}s"
        )
        out.append(("net.packet_loss", any_bad, Evidence(
            source="/proc/net/dev",
            summary=summary,
            value=round(worst_ratio * 100, 2),
            threshold=round(float(opt["loss_ratio"]) * 100, 2),
            unit="%",
            samples=tuple(r[2] for r in rows[:3]),
        )))
    return out


@probe("net", findings=FINDINGS, timeout=3.0, options=DEFAULTS)
def net(ctx: ProbeContext) -> list[Finding]:
    """TCP and interface counters over the sampling window: accept-queue
    overflows (with the port), connection resets, retransmits, packet loss."""
    first = take_sample(ctx.host)
    ctx.host.sleep(ctx.window)
    second = take_sample(ctx.host)
    return [ctx.finding(fid, present, ev) for fid, present, ev in judge(first, second, ctx.config)]
