"""The one socket parser: every ss table shape and /proc/net, on samples."""

from __future__ import annotations

from ddx.probes.parsers.sockets import (
    dedupe_listeners,
    parse_proc_net_tcp,
    parse_proc_net_unix,
    parse_ss,
)


def test_ss_listeners_with_owners_and_without():
    text = (
        'LISTEN 0      5      127.0.0.1:58331   0.0.0.0:*     users:(("python3",pid=4410,fd=6))\n'
        'LISTEN 0      511    [::]:80           [::]:*        users:(("nginx",pid=10,fd=7),("nginx",pid=11,fd=7))\n'
        "LISTEN 0      128      0.0.0.0:2024    0.0.0.0:*\n"
    )
    socks = parse_ss(text)
    assert [(s.address, s.port, s.pids, s.programs) for s in socks] == [
        ("127.0.0.1", 58331, frozenset({4410}), ("python3",)),
        ("::", 80, frozenset({10, 11}), ("nginx",)),
        ("0.0.0.0", 2024, frozenset(), ()),
    ]
    assert socks[1].connect_host == "::1" and socks[2].connect_host == "127.0.0.1"
    assert socks[0].loopback_only and not socks[1].loopback_only
    assert all(s.listening and s.send_q in (5, 511, 128) for s in socks)


def test_ss_with_header_without_state_column_and_with_netid():
    text = (
        "Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
        "3      128    127.0.0.1:8000     0.0.0.0:*\n"
        "Netid State  Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
        "tcp   ESTAB  0      0      127.0.0.1:8000     127.0.0.1:51234 users:((\"gunicorn\",pid=12,fd=9))\n"
    )
    a, b = parse_ss(text)
    assert (a.state, a.recv_q, a.send_q, a.port) == ("LISTEN", 3, 128, 8000)  # -l without a State column
    assert (b.netid, b.state, b.peer, b.pids) == ("tcp", "ESTAB", "127.0.0.1:51234", frozenset({12}))
    assert b.port_key == ":8000"


def test_ss_unix_sockets():
    text = ('u_str LISTEN 0 128 /run/php/php8.2-fpm.sock 23456 * 0 users:(("php-fpm8.2",pid=700,fd=8))\n'
            "u_str ESTAB  0 0   /run/php/php8.2-fpm.sock 23460 * 23459 users:((\"php-fpm8.2\",pid=701,fd=4))\n"
            "u_str ESTAB  0 0   * 261 * 260\n")
    a, b, c = parse_ss(text, "u_str")
    assert a.unix and a.listening and a.path == "/run/php/php8.2-fpm.sock" and a.inode == 23456
    assert b.port_key == "/run/php/php8.2-fpm.sock" and b.pids == frozenset({701})
    assert c.path == "" and c.port is None


def test_proc_net_tcp_and_unix():
    tcp = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
           "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000004 00:00000000 00000000  1000        0 51234 1\n"
           "   1: 0100007F:1F90 0100007F:C8F2 01 00000000:00000000 00:00000000 00000000  1000        0 51240 1\n")
    listen, conn = parse_proc_net_tcp(tcp)
    assert (listen.local, listen.state, listen.recv_q, listen.send_q, listen.inode) == (
        "127.0.0.1:8080", "LISTEN", 4, None, 51234)
    assert conn.state == "ESTAB" and conn.peer == "127.0.0.1:51442"
    tcp6 = ("   0: 00000000000000000000000000000000:0050 00000000000000000000000000000000:0000 0A "
            "00000000:00000000 00:00000000 00000000     0        0 777 1\n")
    (v6,) = parse_proc_net_tcp(tcp6)
    assert v6.local == "[::]:80" and v6.address == "::" and v6.port == 80
    unix = ("Num       RefCount Protocol Flags    Type St Inode Path\n"
            "0000000000000000: 00000002 00000000 00010000 0001 01 23456 /run/php/php-fpm.sock\n"
            "0000000000000000: 00000003 00000000 00000000 0001 03 23460\n")
    lst, est = parse_proc_net_unix(unix)
    assert lst.listening and lst.path == "/run/php/php-fpm.sock" and lst.inode == 23456
    assert not est.listening and est.local == "*"


def test_dedupe_keeps_one_listener_per_process_and_port():
    text = ('LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=10,fd=6))\n'
            'LISTEN 0 511 [::]:80 [::]:* users:(("nginx",pid=10,fd=7))\n'
            'LISTEN 0 511 127.0.0.1:81 0.0.0.0:* users:(("nginx",pid=10,fd=8))\n')
    assert [(s.address, s.port) for s in dedupe_listeners(parse_ss(text))] == [("0.0.0.0", 80), ("127.0.0.1", 81)]


def test_garbage_lines_are_skipped():
    assert parse_ss("hello\nLISTEN x y z\n\n" + "LISTEN 0 5 nocolon 0.0.0.0:*\n") == []
    assert parse_proc_net_tcp("0: zz:zz 00:00 0A q\n") == []
