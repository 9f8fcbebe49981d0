"""Network probe: parsers on real /proc and ss text, the judgement on
sample pairs, and a real accept-queue overflow on a listener of our own."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.base import registry
from ddx.probes.parsers.sockets import parse_proc_net_tcp, parse_ss
from ddx.probes.runner import run_probes
from ddx.probes.system.net import (
    DEFAULTS,
    FINDINGS,
    IfCounters,
    Listener,
    NetSample,
    judge,
    listeners_of,
    parse_counters,
    parse_net_dev,
)

SNMP = """\
Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 2655 0 0 0 0 0 2655 2001 0 0 0 0 0 0 0 0 0 2001
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 44 2 0 7 0 2569 1945 3 0 93 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 85 0 0 86 0 0 0 0 0
"""

NETSTAT = """\
TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed EmbryonicRsts PruneCalled ListenOverflows ListenDrops TCPSynRetrans
TcpExt: 0 0 0 0 0 12 12 4
IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts
IpExt: 0 0 0 0
"""

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 72270734    2630    1    2    0     0          0         0   204565    1984    0    3    0     0       0          0
"""

SS = """\
State  Recv-Q Send-Q Local Address:Port Peer Address:PortProcess
LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*
LISTEN 129    128          0.0.0.0:8080      0.0.0.0:*
LISTEN 0      511             [::]:80           [::]:*
LISTEN 3      511                *:443             *:*
"""

PROC_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1589 1 0000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000005 00:00000000 00000000     0        0 1590 1 0000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1591 1 0000 20 4 30 10 -1
"""

PROC_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 1600 1 0000 100 0 0 10 0
"""


def test_parse_counters_pairs_headers_with_values() -> None:
    c = parse_counters(SNMP + NETSTAT)
    assert c["Tcp"]["RetransSegs"] == 3 and c["Tcp"]["OutSegs"] == 1945 and c["Tcp"]["MaxConn"] == -1
    assert c["TcpExt"]["ListenOverflows"] == 12
    assert c["Udp"]["InDatagrams"] == 85


def test_parse_counters_skips_a_mismatched_pair() -> None:
    assert parse_counters("Tcp: A B\nTcp: 1\n") == {}


def test_parse_net_dev() -> None:
    dev = parse_net_dev(NET_DEV)
    assert set(dev) == {"lo", "eth0"}
    assert dev["eth0"] == IfCounters(2630, 1, 2, 0, 1984, 0, 3, 0)
    assert dev["eth0"].lost == 6 and dev["eth0"].packets == 4614


def test_listeners_read_queue_and_backlog() -> None:
    ls = listeners_of(parse_ss(SS))
    assert [(ln.local, ln.port, ln.queue, ln.backlog) for ln in ls] == [
        ("127.0.0.53%lo:53", 53, 0, 4096),
        ("0.0.0.0:8080", 8080, 129, 128),
        ("[::]:80", 80, 0, 511),
        ("*:443", 443, 3, 511),
    ]
    assert [ln.full for ln in ls] == [False, True, False, False]
    assert ls[1].describe() == "0.0.0.0:8080 accept queue 129/128"


def test_listeners_without_header_or_state_column() -> None:
    assert listeners_of(parse_ss("LISTEN 2 2 127.0.0.1:9000 0.0.0.0:*\n")) == [Listener("127.0.0.1:9000", 9000, 2, 2)]
    assert listeners_of(parse_ss("0 128 [::1]:631 [::]:*\n")) == [Listener("[::1]:631", 631, 0, 128)]


def test_listener_with_backlog_zero_is_full_only_with_a_queued_connection() -> None:
    assert not Listener("a:1", 1, 0, 0).full
    assert Listener("a:1", 1, 1, 0).full


def test_listeners_of_proc_net_tcp() -> None:
    ls = listeners_of(parse_proc_net_tcp(PROC_TCP) + parse_proc_net_tcp(PROC_TCP6))
    assert [(ln.local, ln.queue, ln.backlog) for ln in ls] == [
        ("0.0.0.0:2024", 0, None),
        ("127.0.0.1:8080", 5, None),
        ("[::1]:8080", 2, None),
    ]
    assert not any(ln.full for ln in ls)  # backlog unknown: never claimed full
    assert ls[1].describe() == "127.0.0.1:8080 accept queue 5/?"


# --- judge --------------------------------------------------------------------


def _sample(t: float, tcp: dict[str, int] | None = None, ext: dict[str, int] | None = None,
            dev: dict[str, IfCounters] | None = None, listeners: tuple[Listener, ...] = ()) -> NetSample:
    base_tcp = {"ActiveOpens": 0, "PassiveOpens": 0, "AttemptFails": 0, "EstabResets": 0, "OutSegs": 0,
                "RetransSegs": 0, "OutRsts": 0}
    base_ext = {"ListenOverflows": 0, "ListenDrops": 0, "TCPSynRetrans": 0}
    return NetSample(t, {"Tcp": {**base_tcp, **(tcp or {})}, "TcpExt": {**base_ext, **(ext or {})}},
                     dev or {}, listeners, "ss -ltn")


def _by_id(verdicts: list) -> dict:  # type: ignore[type-arg]
    return {fid: (present, ev) for fid, present, ev in verdicts}


def test_quiet_counters_are_absent() -> None:
    dev = {"lo": IfCounters(10, 0, 0, 0, 10, 0, 0, 0), "eth0": IfCounters(100, 0, 0, 0, 100, 0, 0, 0)}
    dev2 = {"lo": IfCounters(20, 0, 9, 0, 20, 0, 0, 0), "eth0": IfCounters(200, 0, 0, 0, 200, 0, 0, 0)}
    got = _by_id(judge(_sample(0.0, dev=dev), _sample(1.0, tcp={"OutSegs": 500}, dev=dev2), {}))
    assert set(got) == set(FINDINGS)
    assert not any(present for present, _ in got.values())
    assert "no drops or errors on eth0" in got["net.packet_loss"][1].summary  # lo ignored


def test_listen_overflows_rising_names_the_full_listener() -> None:
    full = Listener("127.0.0.1:8080", 8080, 129, 128)
    got = _by_id(judge(
        _sample(0.0, ext={"ListenOverflows": 10, "ListenDrops": 10}, listeners=(full,)),
        _sample(2.0, ext={"ListenOverflows": 52, "ListenDrops": 52}, listeners=(full,)),
        {},
    ))
    present, ev = got["net.listen_overflows"]
    assert present and ev.value == 42
    assert "ListenOverflows +42" in ev.summary and "127.0.0.1:8080 accept queue 129/128" in ev.summary


def test_listen_overflows_from_counters_alone_says_no_queue_was_seen_full() -> None:
    got = _by_id(judge(_sample(0.0), _sample(1.0, ext={"ListenDrops": 3}), {}))
    present, ev = got["net.listen_overflows"]
    assert present and "no listener's queue was at its backlog" in ev.summary


def test_old_overflows_that_do_not_rise_are_absent() -> None:
    got = _by_id(judge(_sample(0.0, ext={"ListenOverflows": 9000}), _sample(1.0, ext={"ListenOverflows": 9000}), {}))
    assert got["net.listen_overflows"][0] is False


def test_resets_need_both_the_rate_and_the_count() -> None:
    got = _by_id(judge(_sample(0.0), _sample(2.0, tcp={"EstabResets": 30, "OutRsts": 40}), {}))
    present, ev = got["net.connection_resets"]
    assert present and ev.value == 15.0 and "OutRsts +40" in ev.summary
    got = _by_id(judge(_sample(0.0), _sample(60.0, tcp={"EstabResets": 30}), {}))
    assert got["net.connection_resets"][0] is False  # 0.5/s is background noise


def test_retransmit_ratio() -> None:
    high = _by_id(judge(_sample(0.0), _sample(1.0, tcp={"OutSegs": 1000, "RetransSegs": 50}), {}))
    assert high["net.retransmits_high"][0] is True and high["net.retransmits_high"][1].value == 5.0
    low = _by_id(judge(_sample(0.0), _sample(1.0, tcp={"OutSegs": 100000, "RetransSegs": 50}), {}))
    assert low["net.retransmits_high"][0] is False
    few = _by_id(judge(_sample(0.0), _sample(1.0, tcp={"OutSegs": 20, "RetransSegs": 3}), {}))
    assert few["net.retransmits_high"][0] is False  # below retrans_min
    strict = _by_id(judge(_sample(0.0), _sample(1.0, tcp={"OutSegs": 100000, "RetransSegs": 50}),
                          {"retrans_ratio": 0.0001}))
    assert strict["net.retransmits_high"][0] is True  # options override the defaults


def test_syn_retransmits_of_connects_this_hosts_full_queue_dropped_are_not_network_loss() -> None:
    # A local client retries SYNs that its own host's full accept queue dropped.
    local = _by_id(judge(_sample(0.0), _sample(1.0, tcp={"OutSegs": 800, "RetransSegs": 43},
                                                 ext={"TCPSynRetrans": 40, "ListenDrops": 104}), {}))
    present, ev = local["net.retransmits_high"]
    assert not present and ev.value == 0.38 and "40 of them retry handshakes" in ev.summary
    # SYNs lost on the way out while nothing here drops: the network's.
    remote = _by_id(judge(_sample(0.0), _sample(1.0, tcp={"OutSegs": 800, "RetransSegs": 43},
                                                  ext={"TCPSynRetrans": 40}), {}))
    assert remote["net.retransmits_high"][0] is True


def test_packet_loss_per_interface() -> None:
    a = {"eth0": IfCounters(1000, 0, 0, 0, 1000, 0, 0, 0), "eth1": IfCounters(0, 0, 0, 0, 0, 0, 0, 0)}
    b = {"eth0": IfCounters(2000, 10, 30, 0, 2000, 0, 0, 0), "eth1": IfCounters(5, 0, 0, 0, 5, 0, 0, 0)}
    present, ev = _by_id(judge(_sample(0.0, dev=a), _sample(1.0, dev=b), {}))["net.packet_loss"]
    assert present and "eth0: 40 lost of 2040 packets" in ev.summary


def test_counter_that_goes_backwards_is_no_change() -> None:
    got = _by_id(judge(_sample(0.0, tcp={"EstabResets": 1000}), _sample(1.0, tcp={"EstabResets": 5}), {}))
    assert got["net.connection_resets"][1].count == 0


def test_too_short_a_window_leaves_counter_findings_unknown() -> None:
    full = Listener("127.0.0.1:8080", 8080, 5, 4)
    got = _by_id(judge(_sample(0.0), _sample(0.0, listeners=(full,)), {}))
    assert set(got) == {"net.listen_overflows"}
    assert got["net.listen_overflows"][0] is True


def test_declared_options_are_the_defaults() -> None:
    assert dict(registry["net"].options) == DEFAULTS
    assert set(registry["net"].findings) == set(FINDINGS)
    assert "net.connections_refused" not in FINDINGS  # the counters cannot tell it


# --- live: a real accept-queue overflow ------------------------------------


@pytest.fixture
def stuck_listener() -> Iterator[tuple[socket.socket, int]]:
    """A listener on 127.0.0.1 with a backlog of 2 that never accepts."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        srv.bind(("127.0.0.1", 0))
        srv.listen(2)
        yield srv, srv.getsockname()[1]
    finally:
        srv.close()


def _flood(port: int, stop: threading.Event, clients: list[socket.socket], limit: int = 300) -> None:
    """Keep opening non-blocking connections until told to stop."""
    while not stop.is_set() and len(clients) < limit:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        clients.append(c)
        c.setblocking(False)
        err = c.connect_ex(("127.0.0.1", port))
        assert err in (0, errno.EINPROGRESS, errno.EAGAIN), err
        stop.wait(0.02)


@contextlib.contextmanager
def _flooding(port: int) -> Iterator[list[socket.socket]]:
    """Connections opened at the port in the background until the block ends; then closed."""
    stop = threading.Event()
    clients: list[socket.socket] = []
    flood = threading.Thread(target=_flood, args=(port, stop, clients), daemon=True)
    try:
        flood.start()
        yield clients
    finally:
        stop.set()
        flood.join(5)
        for s in clients:
            s.close()


def test_probe_sees_a_real_accept_queue_overflow(stuck_listener: tuple[socket.socket, int]) -> None:
    _, port = stuck_listener
    with _flooding(port) as clients:
        deadline = time.monotonic() + 10
        while len(clients) < 10 and time.monotonic() < deadline:  # the queue is full before the window opens
            time.sleep(0.01)
        c = run_probes(LiveHost(), Config(), only=["net"], window=1.0)
    (result,) = c.results
    assert result.status == "ok", result.reason
    found = {f.id: f for f in c.findings}
    lo = found["net.listen_overflows"]
    assert lo.state is State.PRESENT
    ev = lo.evidence[0]
    assert f"127.0.0.1:{port} accept queue" in ev.summary
    assert ev.value and int(ev.value) > 0  # ListenOverflows rose during the window


def test_clients_retrying_into_a_full_queue_here_are_not_a_lossy_network(
        stuck_listener: tuple[socket.socket, int]) -> None:
    """Local clients whose SYNs the full queue dropped send them again (TCPSynRetrans):
    the overflow is reported, not packet loss on the way."""
    _, port = stuck_listener
    with _flooding(port):
        time.sleep(1.5)  # the first dropped SYNs are resent after 1 s: inside the window
        c = run_probes(LiveHost(), Config(), only=["net"], window=1.5)
    found = {f.id: f for f in c.findings}
    assert found["net.listen_overflows"].state is State.PRESENT
    rt = found["net.retransmits_high"]
    assert "SYN retransmits" in rt.evidence[0].summary, rt.evidence[0].summary  # the retries happened
    assert "retry handshakes this host's full accept queues dropped" in rt.evidence[0].summary
    assert rt.state is State.ABSENT, rt.evidence[0].summary


def test_live_probe_on_this_host_gives_known_states() -> None:
    c = run_probes(LiveHost(), Config(), only=["net"], window=0.3)
    (result,) = c.results
    assert result.status == "ok", result.reason
    assert {f.id for f in c.findings} == set(FINDINGS)


def test_recorded_bundle_replays_to_the_same_findings(tmp_path: Path) -> None:
    from ddx.host import BundleHost, RecordingHost

    rec = RecordingHost(LiveHost())
    live = run_probes(rec, Config(), only=["net"], window=0.3)
    path = rec.save(str(tmp_path / "net"), live)
    replay = run_probes(BundleHost(path), Config(), only=["net"], window=0.3)
    assert [r.status for r in replay.results] == [r.status for r in live.results] == ["ok"]
    assert [f.to_dict() for f in replay.findings] == [f.to_dict() for f in live.findings]
