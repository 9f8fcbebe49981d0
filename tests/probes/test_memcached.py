"""memcached probe: parsers on real reply text, the judgement on sample pairs,
and real memcached servers (Debian package) in the faults the probe names."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from ddx.config import Config
from ddx.drill.sandbox import free_port
from ddx.host import LiveHost
from ddx.inventory import Inventory, Listen, Service
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.services.cacheproto import (
    Listening,
    ProbeTargetError,
    inventory_listeners,
    memcached_query,
    parse_memcached_stats,
    parse_target,
)
from ddx.probes.services.memcached import judge

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"

STATS = (
    "STAT pid 4286\r\nSTAT uptime 2\r\nSTAT version 1.6.18\r\nSTAT max_connections 1024\r\n"
    "STAT curr_connections 1\r\nSTAT rejected_connections 0\r\nSTAT get_hits 0\r\nSTAT get_misses 0\r\n"
    "STAT store_too_large 1\r\nSTAT limit_maxbytes 1048576\r\nSTAT conn_yields 0\r\nSTAT evictions 0\r\nEND\r\n"
)


def sample(**kv: int) -> dict[str, str]:
    base = {"uptime": 100, "version": "1.6.18", "get_hits": 0, "get_misses": 0, "evictions": 0,
            "evicted_unfetched": 0, "rejected_connections": 0, "listen_disabled_num": 0,
            "store_too_large": 0, "cmd_set": 0, "cmd_flush": 0, "conn_yields": 0, "bytes": 0, "limit_maxbytes": 1 << 20,
            "curr_connections": 2, "max_connections": 1024, "settings.item_size_max": 1024}
    base.update(kv)
    return {k: str(v) for k, v in base.items()}


def by_id(rows: list[tuple[str, bool, object]]) -> dict[str, bool]:
    return {fid: present for fid, present, _ in rows}


# --- parsers -----------------------------------------------------------------------


def test_parse_stats_reads_stat_lines_up_to_end() -> None:
    s = parse_memcached_stats(STATS)
    assert s["store_too_large"] == "1" and s["version"] == "1.6.18" and s["limit_maxbytes"] == "1048576"


@pytest.mark.parametrize(
    "text, why",
    [
        ("ERROR\r\n", "server replied"),
        ("HTTP/1.1 400 Bad Request\r\n\r\n", "garbage reply"),
        ("STAT pid 1\r\nSTAT uptime 2\r\n", "without END"),
    ],
)
def test_parse_stats_rejects_what_is_not_a_stats_reply(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_memcached_stats(text)


def test_inventory_listeners_one_per_service_and_port() -> None:
    inv = Inventory("t", services=(
        Service("memcached", "memcached", 4286, (4286,), listens=(Listen("tcp", "127.0.0.1", 11211),)),
        Service("redis-server", "redis-server", 77, (77, 78), listens=(
            Listen("tcp", "::", 6379), Listen("tcp", "0.0.0.0", 6379), Listen("unix", path="/run/r.sock"))),
        Service("nginx", "nginx", 5, (5,), listens=(Listen("tcp", "0.0.0.0", 80),)),
    ))
    got = inventory_listeners(inv, ("memcached", "redis-server"))
    assert [(x.pid, x.port, x.address) for x in got] == [(77, 6379, "0.0.0.0"), (4286, 11211, "127.0.0.1")]
    assert got[1] == Listening("memcached", 4286, "127.0.0.1", 11211) and got[0].connect_host() == "127.0.0.1"


def test_target_url_errors_never_show_the_password() -> None:
    with pytest.raises(ValueError) as err:
        parse_target("memcached://u:s3cret@host:notaport", ("memcached",), 11211)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)
    t = parse_target("memcached://10.0.0.5", ("memcached",), 11211)
    assert (t.host, t.port, t.name) == ("10.0.0.5", 11211, "memcached://10.0.0.5")


def test_memcached_query_sends_only_stats() -> None:
    with pytest.raises(ValueError):
        memcached_query("127.0.0.1", 1, ["flush_all"], 1.0)


# --- judgement on sample pairs ----------------------------------------------------


def test_a_window_of_misses_after_a_warm_cache_is_a_hit_rate_drop() -> None:
    a = sample(get_hits=900, get_misses=100)
    b = sample(get_hits=905, get_misses=195)
    rows = judge(a, b, 1.0, {}, "memcached://x:1")
    assert by_id(rows)["svc.cache_hit_rate_drop"] is True
    assert by_id(rows)["svc.down"] is False


def test_a_steady_hit_rate_is_absent_and_too_few_gets_stay_unknown() -> None:
    a = sample(get_hits=900, get_misses=100)
    assert by_id(judge(a, sample(get_hits=990, get_misses=110), 1.0, {}, "s"))["svc.cache_hit_rate_drop"] is False
    assert "svc.cache_hit_rate_drop" not in by_id(judge(a, sample(get_hits=900, get_misses=105), 1.0, {}, "s"))


def test_a_cache_started_minutes_ago_that_misses_most_lookups_is_cold() -> None:
    a = sample(uptime=300, get_hits=10, get_misses=90)
    rows = judge(a, sample(uptime=301, get_hits=15, get_misses=185), 1.0, {}, "s")
    assert by_id(rows)["svc.cache_cold"] is True
    # started as recently but already hitting, or read by nobody: not cold for its clients
    assert "svc.cache_cold" not in by_id(judge(a, sample(uptime=301, get_hits=100, get_misses=95), 1.0, {}, "s"))
    assert "svc.cache_cold" not in by_id(judge(a, sample(uptime=301, get_hits=10, get_misses=90), 1.0, {}, "s"))


def test_a_cache_up_for_days_is_not_cold_unless_flushed() -> None:
    a = sample(uptime=300000, get_hits=9000, get_misses=1000, cmd_flush=0)
    assert by_id(judge(a, sample(uptime=300001, get_hits=9100, get_misses=1010), 1.0, {}, "s"))["svc.cache_cold"] is False
    flushed = judge(a, sample(uptime=300001, cmd_flush=1, get_hits=9000, get_misses=1100), 1.0, {}, "s")
    assert by_id(flushed)["svc.cache_cold"] is True
    # flushed at some time since the start, not in the window: when, the counter cannot say
    old = sample(uptime=300000, cmd_flush=2)
    assert "svc.cache_cold" not in by_id(judge(old, sample(uptime=300001, cmd_flush=2), 1.0, {}, "s"))


def test_evictions_in_the_window_count_not_those_since_start() -> None:
    old = judge(sample(evictions=50000), sample(evictions=50000), 1.0, {}, "s")
    assert by_id(old)["svc.cache_evictions_high"] is False
    new = judge(sample(evictions=50000), sample(evictions=50040), 1.0, {}, "s")
    assert by_id(new)["svc.cache_evictions_high"] is True


def test_rejected_or_listen_disabled_connections_are_refusals() -> None:
    assert "net.connections_refused" not in by_id(judge(sample(), sample(), 1.0, {}, "s"))
    assert by_id(judge(sample(), sample(rejected_connections=3), 1.0, {}, "s"))["net.connections_refused"]
    assert by_id(judge(sample(), sample(listen_disabled_num=1), 1.0, {}, "s"))["net.connections_refused"]


def test_too_large_sets_in_the_window_or_since_the_start_with_that_scope() -> None:
    assert by_id(judge(sample(), sample(store_too_large=2), 1.0, {}, "s"))["http.request_too_large"]
    none = sample(store_too_large=0, cmd_set=10000)
    assert by_id(judge(none, none, 1.0, {}, "s"))["http.request_too_large"] is False
    # eight refused sets a minute before ddx looked: the window saw nothing, the counter did
    earlier = sample(store_too_large=8, cmd_set=10_000, uptime=600, time=1_800_000_000)
    (fid, present, ev), = [v for v in judge(earlier, earlier, 1.0, {}, "s") if v[0] == "http.request_too_large"]
    assert present and ev.since == "2027-01-15T07:50:00Z" and "since memcached started 10 min ago" in ev.summary
    rej = sample(rejected_connections=4, uptime=600, time=1_800_000_000)
    ev = next(v[2] for v in judge(rej, rej, 1.0, {}, "s") if v[0] == "net.connections_refused")
    assert ev.since and "rejected_connections 4" in ev.summary


def test_a_count_since_a_long_ago_start_weighs_little() -> None:
    from ddx.engine.timing import weigh_by_time
    from ddx.kb.loader import load_kb
    from ddx.model import Finding, State

    kb = load_kb()
    now = 1_800_000_000.0
    for up, firm in ((600, True), (40 * 86400, False)):
        s = sample(store_too_large=8, cmd_set=10_000, uptime=up, time=int(now))
        ev = next(v[2] for v in judge(s, s, 1.0, {}, "s") if v[0] == "http.request_too_large")
        (f,), _ = weigh_by_time([Finding("http.request_too_large", State.PRESENT, "probe:memcached", (ev,))], kb, now)
        assert (f.strength == 1.0) is firm and (f.strength < 0.55) is not firm


def test_a_restart_in_the_window_or_a_missing_second_sample_judges_no_counter() -> None:
    a = sample(uptime=1000, get_hits=900, get_misses=100, evictions=10)
    b = sample(uptime=1, get_hits=0, get_misses=50, evictions=0)
    assert set(by_id(judge(a, b, 1.0, {}, "s"))) == {"svc.down"}
    assert set(by_id(judge(a, None, 0.0, {}, "s"))) == {"svc.down"}


# --- real servers ------------------------------------------------------------------




def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    end = time.monotonic() + 10
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextmanager
def memcached_server(*extra: str) -> Iterator[int]:
    if not os.path.exists(MEMCACHED):
        pytest.skip("memcached is not installed (apt-get install memcached)")
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [MEMCACHED, *user, "-l", "127.0.0.1", "-p", str(port), "-U", "0", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )
    try:
        wait_listening(port, proc, "memcached")
        yield port
    finally:
        stop(proc)


class Client:
    """A tiny memcached text-protocol client for making load (the test's, not the probe's)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 2)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self.buf += self.sock.recv(65536)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def set(self, key: str, size: int) -> bytes:
        self.sock.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (key.encode(), size, b"x" * size))
        return self._line()

    def get(self, key: str) -> bool:
        self.sock.sendall(b"get %s\r\n" % key.encode())
        line = self._line()
        if line == b"END":
            return False
        n = int(line.split()[3])
        while len(self.buf) < n + 2 + 5:
            self.buf += self.sock.recv(65536)
        self.buf = self.buf[n + 2 + 5:]
        return True

    def close(self) -> None:
        self.sock.close()


@contextmanager
def background(work: Callable[[Client, int], None], port: int) -> Iterator[None]:
    """Run ``work(client, i)`` in a loop until the block ends (the probe's window)."""
    stop_ev = threading.Event()
    errors: list[BaseException] = []

    def loop() -> None:
        c = Client(port)
        try:
            i = 0
            while not stop_ev.is_set():
                work(c, i)
                i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            c.close()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop_ev.set()
        t.join(5)
    assert not errors, errors


def probe(options: dict[str, object], window: float = 1.0):  # type: ignore[no-untyped-def]
    col = run_probes(LiveHost(), Config(probes={"memcached": {"discover": False, **options}}),
                     only=["memcached"], window=window)
    (res,) = col.results
    return res, {f.id: f for f in col.findings}


def top_condition(findings: dict[str, object]) -> tuple[str, list[str]]:
    from ddx.engine.diagnosis import diagnose
    from ddx.kb.loader import load_kb

    d = diagnose(load_kb(), list(findings.values()))  # type: ignore[arg-type]
    return d.hypotheses[0].id, [h.id for h in d.hypotheses[:5]]


@pytest.mark.root
def test_sets_over_the_item_size_limit_are_requests_too_large() -> None:
    with memcached_server("-m", "8", "-I", "1k", "-o", "slab_chunk_max=1024") as port:
        url = f"memcached://127.0.0.1:{port}"
        c = Client(port)
        assert c.set("small", 100) == b"STORED"
        assert c.set("big", 4000) == b"SERVER_ERROR object too large for cache"
        c.close()
        with background(lambda cl, i: cl.set(f"big{i}", 2000) and time.sleep(0.01), port):
            res, found = probe({"targets": [url]})
    assert res.status == "ok", res.reason
    f = found["http.request_too_large"]
    assert f.state is State.PRESENT
    assert "item_size_max 1 KB" in f.evidence[0].summary and f.evidence[0].source == url
    assert found["svc.down"].state is State.ABSENT
    top, ranking = top_condition(found)
    assert top == "request-size-limit", ranking


@pytest.mark.root
def test_a_full_cache_evicting_during_the_window() -> None:
    with memcached_server("-m", "1", "-I", "1k", "-o", "slab_chunk_max=1024") as port:
        c = Client(port)
        for i in range(3000):  # fill it: 3000 x 600 B is well over 1 MB
            assert c.set(f"fill{i}", 600) == b"STORED"
        c.close()
        with background(lambda cl, i: cl.set(f"k{i}", 600), port):
            res, found = probe({"targets": [f"memcached://127.0.0.1:{port}"]})
    assert res.status == "ok", res.reason
    f = found["svc.cache_evictions_high"]
    assert f.state is State.PRESENT, f.evidence
    assert "evictions +" in f.evidence[0].summary


@pytest.mark.root
def test_a_warm_cache_that_only_misses_in_the_window_drops_its_hit_rate() -> None:
    with memcached_server("-m", "8") as port:
        c = Client(port)
        for i in range(50):
            c.set(f"hot{i}", 10)
        for i in range(500):
            assert c.get(f"hot{i % 50}")
        c.close()
        with background(lambda cl, i: cl.get(f"cold{i}") or time.sleep(0.002), port):
            res, found = probe({"targets": [f"memcached://127.0.0.1:{port}"]})
        # the same server with only hits in the window: no drop
        with background(lambda cl, i: cl.get(f"hot{i % 50}") and time.sleep(0.002), port):
            _, steady = probe({"targets": [f"memcached://127.0.0.1:{port}"]})
    assert res.status == "ok", res.reason
    assert found["svc.cache_hit_rate_drop"].state is State.PRESENT, found["svc.cache_hit_rate_drop"].evidence
    assert steady["svc.cache_hit_rate_drop"].state is State.ABSENT


@pytest.mark.root
def test_a_just_started_cache_that_its_clients_miss_is_cold_and_a_flush_makes_it_cold() -> None:
    with memcached_server("-m", "8") as port:
        url = f"memcached://127.0.0.1:{port}"
        with background(lambda cl, i: cl.get(f"page{i}") or time.sleep(0.002), port):
            res, found = probe({"targets": [url]})
        assert res.status == "ok", res.reason
        f = found["svc.cache_cold"]
        assert f.state is State.PRESENT, f.evidence
        assert "started" in f.evidence[0].summary and "misses" in f.evidence[0].summary
        # the same server judged as if it had run for days: a flush during the window is what makes it cold
        c = Client(port)

        def flush(cl: Client, i: int) -> None:
            if i == 0:
                time.sleep(0.3)
                cl.sock.sendall(b"flush_all\r\n")
                assert cl._line() == b"OK"
            time.sleep(0.01)

        c.close()
        with background(flush, port):
            res, found = probe({"targets": [url], "cold_uptime": 0})
    assert found["svc.cache_cold"].state is State.PRESENT, found["svc.cache_cold"].evidence
    assert "flushed 1 time" in found["svc.cache_cold"].evidence[0].summary


@pytest.mark.root
def test_discovery_finds_a_listening_memcached_by_its_process() -> None:
    with memcached_server("-m", "8") as port:
        col = run_probes(LiveHost(), Config(probes={"memcached": {}}), only=["memcached"], window=0.3)
    (res,) = col.results
    assert res.status == "ok", res.reason
    down = {f.id: f for f in col.findings}["svc.down"]
    assert any(e.source.startswith(f"memcached://127.0.0.1:{port} (pid ") for e in down.evidence)


def test_a_configured_target_that_refuses_is_down() -> None:
    port = free_port()
    res, found = probe({"targets": [f"memcached://127.0.0.1:{port}"]}, window=0.2)
    assert res.status == "ok", res.reason
    down = found["svc.down"]
    assert down.state is State.PRESENT and down.evidence[0].source == f"memcached://127.0.0.1:{port}"


@contextmanager
def fake_server(reply: bytes | None) -> Iterator[int]:
    """Accepts connections; answers ``reply`` to the first bytes, or never (None)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    done = threading.Event()
    conns: list[socket.socket] = []

    def serve() -> None:
        while not done.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            conns.append(c)
            if reply is not None:
                c.settimeout(1)
                try:
                    c.recv(1024)
                    c.sendall(reply)
                    c.close()
                except OSError:
                    pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield int(srv.getsockname()[1])
    finally:
        done.set()
        t.join(2)
        for c in conns:
            c.close()
        srv.close()


def test_a_server_that_never_answers_is_a_clear_timeout_within_the_probe_timeout() -> None:
    with fake_server(None) as port:
        t0 = time.monotonic()
        res, found = probe({"targets": [f"memcached://127.0.0.1:{port}"], "target_timeout": 0.5}, window=0.2)
        took = time.monotonic() - t0
    assert res.status == "failed" and not found
    assert res.reason.startswith(f"ProbeError: could not probe memcached://127.0.0.1:{port}: no complete reply")
    assert took < 3.0 + 0.2  # the probe's own timeout plus the window: it never hangs


def test_garbage_is_a_clear_reason_and_does_not_hide_a_good_target() -> None:
    with fake_server(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as port:
        res, _ = probe({"targets": [f"memcached://127.0.0.1:{port}"]}, window=0.2)
        assert res.status == "failed" and "garbage reply: b'HTTP/1.1 400" in res.reason
        refused = free_port()
        res2, found = probe({"targets": [f"memcached://127.0.0.1:{port}", f"memcached://127.0.0.1:{refused}"]},
                            window=0.2)
    assert res2.status == "ok" and found["svc.down"].state is State.PRESENT


def test_a_bad_target_url_is_a_clear_error() -> None:
    res, _ = probe({"targets": ["http://127.0.0.1:80"]}, window=0.2)
    assert res.status == "failed" and "target http://127.0.0.1:80: scheme must be memcached://" in res.reason


def test_refuses_to_talk_to_the_network_on_a_replayed_bundle() -> None:
    from ddx.host import BundleHost

    host = BundleHost.__new__(BundleHost)  # no bundle needed: the probe must refuse before any read
    with pytest.raises(ProbeTargetError, match="not recorded in bundles"):
        from ddx.probes.services.cacheproto import live_network

        live_network(host)
