"""ports: the local port range spent towards one destination; a real exhaustion in a network
namespace of its own (the host's port range and sockets are never touched)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import pytest

from ddx.host import BundleHost, build_bundle
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.system.ports import parse_port_range, ports, split_port


def test_parse_port_range_and_addresses() -> None:
    assert parse_port_range("32768\t60999\n") == (32768, 60999)
    assert parse_port_range("60999 32768") is None and parse_port_range("") is None
    assert split_port("10.0.0.5:5432") == ("10.0.0.5", 5432)
    assert split_port("[::ffff:10.0.0.5]:6379") == ("[::ffff:10.0.0.5]", 6379)
    assert split_port("*:*") is None


def _ss(rows: list[tuple[str, str, str]]) -> str:
    return "".join(f"{st} 0 0 {local} {peer}\n" for st, local, peer in rows)


def _run(ss_out: str, rng: str = "40000 40099") -> list[Finding]:
    with tempfile.TemporaryDirectory() as d:
        path = build_bundle(d, files={"/proc/sys/net/ipv4/ip_local_port_range": rng},
                            commands={("ss", "-Hatn"): ss_out})
        ctx = ProbeContext(host=BundleHost(path), config=dict(registry["ports"].options), window=0.0,
                           probe_name="ports")
        return ports(ctx)


def test_a_destination_holding_the_range_is_exhausted() -> None:
    rows = [("TIME-WAIT", f"10.0.0.2:{p}", "10.0.0.5:5432") for p in range(40000, 40080)]
    rows += [("ESTAB", f"10.0.0.2:{p}", "10.0.0.5:5432") for p in range(40080, 40095)]
    rows += [("ESTAB", f"10.0.0.2:{p}", "10.0.0.7:6379") for p in range(40000, 40050)]  # another peer: its own tuples
    rows += [("LISTEN", "0.0.0.0:40001", "0.0.0.0:*"), ("ESTAB", "10.0.0.2:22", "10.9.9.9:40002")]
    (f,) = _run(_ss(rows))
    assert f.state is State.PRESENT
    assert [e.summary for e in f.evidence] == [
        "95 of 100 local ports (40000-40099) in use towards 10.0.0.5:5432, 80 of them in TIME-WAIT"]


def test_many_connections_spread_over_destinations_are_not() -> None:
    rows = [("ESTAB", f"10.0.0.2:{40000 + i}", f"10.0.0.{5 + i % 4}:5432") for i in range(100)]
    (f,) = _run(_ss(rows))
    assert f.state is State.ABSENT and "holds 25 of 100 local ports" in f.evidence[0].summary


# The child runs in a network namespace of its own (unshare --net): loopback only, a port range
# of 64, a listener outside it; it connects until connect() fails, then runs the probe.
_CHILD = textwrap.dedent("""
    import json, socket, subprocess, sys
    from ddx.host import LiveHost
    from ddx.probes.base import ProbeContext, registry
    from ddx.probes.system.ports import ports
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    with open("/proc/sys/net/ipv4/ip_local_port_range", "w") as fh:
        fh.write("40000 40063")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 5555))
    srv.listen(512)
    conns, errno = [], None
    for _ in range(int(sys.argv[1])):
        c = socket.socket()
        try:
            c.connect(("127.0.0.1", 5555))
        except OSError as exc:
            errno = exc.errno
            c.close()
            break
        conns.append(c)
    ctx = ProbeContext(host=LiveHost(), config=dict(registry["ports"].options), window=0.0, probe_name="ports")
    (f,) = ports(ctx)
    print(json.dumps({"connected": len(conns), "errno": errno, "state": f.state.value,
                      "evidence": [e.summary for e in f.evidence]}))
""")


def _in_netns(connections: int) -> dict[str, Any]:
    proc = subprocess.run(["unshare", "--net", "--fork", sys.executable, "-c", _CHILD, str(connections)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.root
def test_real_exhaustion_in_a_namespace_is_present_and_a_few_connections_are_not() -> None:
    full = _in_netns(200)
    assert full["connected"] == 64 and full["errno"] == 99  # EADDRNOTAVAIL: the range is really spent
    assert full["state"] == "present", full
    assert full["evidence"] == ["64 of 64 local ports (40000-40063) in use towards 127.0.0.1:5555, 0 of them in TIME-WAIT"]
    few = _in_netns(10)
    assert few["connected"] == 10 and few["errno"] is None
    assert few["state"] == "absent" and "127.0.0.1:5555, holds 10 of 64 local ports" in few["evidence"][0], few
