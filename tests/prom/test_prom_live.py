"""ddx diagnose --prometheus and ddx fleet against a real Prometheus (Debian package,
scrape interval 1 s, private tsdb) scraping real exporters on loopback:

- job ``node``: five node_exporters with only their textfile collector, serving
  simulated hosts in node_exporter's names; web0's root filesystem has 0 bytes free,
  web1 counts new EDAC memory errors;
- job ``batch``: four such hosts, every one with a full disk (a fleet-wide fault);
- job ``memcached``: one simulated memcached_exporter (no Debian package), memcached down;
- job ``host``: a node_exporter with its default collectors (this machine);
- job ``redis``: prometheus-redis-exporter against a redis-server the test starts and stops;
- job ``blackbox``: prometheus-blackbox-exporter probing an HTTPS server (Python's ssl) whose
  certificate expired 3 days ago and a loopback port where nothing listens.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from promstack import (  # noqa: E402
    BLACKBOX_EXPORTER,
    REDIS_EXPORTER,
    PromStack,
    SimHost,
    Writer,
    free_port,
    missing_tools,
    wait_port,
)

from ddx.model import State  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (apt-get install prometheus "
                                                        "prometheus-node-exporter)"),
]

DIAGNOSIS = json.loads((ROOT / "docs" / "schema" / "diagnosis.schema.json").read_text())
FLEET = json.loads((ROOT / "docs" / "schema" / "fleet.schema.json").read_text())
WINDOW = "1m"

MEMCACHED_DOWN = """\
memcached_up 0
memcached_current_connections 0
memcached_max_connections 1024
memcached_items_evicted_total 0
"""


@dataclass
class Fleet:
    stack: PromStack
    url: str
    web: list[str]
    batch: list[str]
    memcached: str
    real: str
    redis_exporter: str | None
    redis: subprocess.Popen[bytes] | None
    expired_https: str | None
    dead_tcp: str | None
    gone: str


def ddx(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ddx", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DDX_PROMETHEUS_TOKEN": ""})


def diagnose_json(fleet: Fleet, instance: str, *extra: str) -> dict[str, Any]:
    r = ddx("diagnose", "--prometheus", fleet.url, "--instance", instance, "--window", WINDOW, "--json", *extra)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    jsonschema.validate(out, DIAGNOSIS)
    return out


def states(out: dict[str, Any]) -> dict[str, str]:
    return {f["id"]: f["state"] for f in out["findings"]}


def stack_https(folder: Path) -> Any:
    """An HTTPS server on a free loopback port (port 0) whose certificate expired 3 days ago."""
    import datetime as dt
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired.test")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=400))
            .not_valid_after(now - dt.timedelta(days=3)).sign(key, hashes.SHA256()))
    (folder / "expired.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "expired.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "expired.crt", folder / "expired.key")
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def fleet() -> Iterator[Fleet]:
    with tempfile.TemporaryDirectory(prefix="ddx-prom-") as tmp:
        stack = PromStack(Path(tmp))
        writer = None
        servers: list[Any] = []
        try:
            web = [(stack.textfile_host(f"web{i}", "node"), SimHost()) for i in range(5)]
            web[0][1].fs_avail = 0  # the root filesystem of web0 is full
            web[1][1].edac_per_s = 0.5  # web1 counts new EDAC memory errors
            batch = [(stack.textfile_host(f"batch{i}", "batch"), SimHost(fs_avail=0)) for i in range(4)]
            mc = (stack.textfile_host("memcached", "memcached"), SimHost(node=False, extra=MEMCACHED_DOWN))
            gone = (stack.textfile_host("gone", "gone"), SimHost())  # its exporter is stopped by a test
            writer = Writer([*web, *batch, mc, gone])
            real = stack.node_exporter("real", "host")
            redis_exporter, redis = None, None
            if os.access(REDIS_EXPORTER, os.X_OK) and shutil.which("redis-server"):
                rport, eport = free_port(), free_port()
                (Path(tmp) / "redis").mkdir()
                redis = stack.spawn("redis", ["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                                              "--appendonly", "no", "--dir", str(Path(tmp) / "redis")])
                wait_port(rport, "redis-server", redis)
                exporter = stack.spawn("redis-exporter", [REDIS_EXPORTER, f"-redis.addr=redis://127.0.0.1:{rport}",
                                                          f"-web.listen-address=127.0.0.1:{eport}"])
                wait_port(eport, "redis exporter", exporter)
                redis_exporter = f"127.0.0.1:{eport}"
                stack.target("redis", redis_exporter)
            expired_https, dead_tcp = None, None
            if os.access(BLACKBOX_EXPORTER, os.X_OK):
                https = stack_https(Path(tmp))
                servers.append(https)
                expired_https = f"https://127.0.0.1:{https.server_address[1]}/"
                dead_tcp = f"127.0.0.1:{free_port()}"
                stack.blackbox("blackbox", {
                    "https": {"prober": "http", "timeout": "2s", "http": {"tls_config": {"insecure_skip_verify": True}}},
                    "tcp": {"prober": "tcp", "timeout": "1s"},
                }, {"https": [expired_https], "tcp": [dead_tcp]})
            url = stack.prometheus()
            # rate() and increase() need a few samples of every target
            n = len(stack.jobs["node"]) + len(stack.jobs["batch"]) + 3 + (1 if redis_exporter else 0) \
                + (2 if expired_https else 0)
            stack.wait_until("count_over_time(up[1m]) >= 5", "scrapes", count=n)
            yield Fleet(stack, url, [h.address for h, _ in web], [h.address for h, _ in batch], mc[0].address, real,
                        redis_exporter, redis, expired_https, dead_tcp, gone[0].address)
        finally:
            if writer is not None:
                writer.close()
            stack.close()
            for srv in servers:
                srv.shutdown()
                srv.server_close()


def test_one_host_with_a_full_disk_is_diagnosed_as_this_host_alone(fleet: Fleet) -> None:
    out = diagnose_json(fleet, fleet.web[0])
    assert out["mode"] == "prometheus" and out["host"] == fleet.web[0]
    assert out["hypotheses"][0]["id"] == "disk-full"
    s = states(out)
    assert s["disk.space_exhausted"] == "present"
    assert s["scope.single_host"] == "present"
    assert s["scope.all_hosts"] == "absent"
    assert s.get("scope.peer_host_healthy_same_software", "unknown") == "unknown"  # not stated twice
    # one host alone does not make a full disk look like failing hardware
    probs = {h["id"]: h["probability"] for h in out["hypotheses"]}
    assert probs["disk-full"] > 0.9 and probs.get("hardware-fault", 0.0) < 0.05, probs
    full = next(f for f in out["findings"] if f["id"] == "disk.space_exhausted")
    ev = full["evidence"][0]
    assert "node_filesystem_avail_bytes" in ev["source"] and fleet.web[0] in ev["source"]
    assert ev["value"] == 0 and ev["threshold"] == 1.0
    peers = out["prometheus"]["peers"]
    assert peers["peers"] == 4 and peers["shares"]["disk.space_exhausted"] == {"showing": 0, "read": 4}
    outlier = {o["metric"]: o for o in out["prometheus"]["outliers"]}
    assert outlier["filesystem space free"]["peer_median"] == pytest.approx(60.0)
    # the terminal view says it in words
    r = ddx("diagnose", "--prometheus", fleet.url, "--instance", fleet.web[0], "--window", WINDOW, "--color", "never")
    assert r.returncode == 0, r.stderr
    assert "Disk full" in r.stdout.split("Most likely causes")[1].splitlines()[1]
    assert "this host alone" in r.stdout


def test_edac_errors_on_one_host_rank_a_hardware_fault_first(fleet: Fleet) -> None:
    out = diagnose_json(fleet, fleet.web[1])
    assert out["hypotheses"][0]["id"] == "hardware-fault"
    s = states(out)
    assert s["kernel.hardware_error"] == "present" and s["scope.single_host"] == "present"
    ev = next(f for f in out["findings"] if f["id"] == "kernel.hardware_error")["evidence"][0]
    assert "node_edac_correctable_errors_total" in ev["source"] and ev["value"] > 0


def test_a_fault_on_every_host_of_the_job_is_fleet_wide(fleet: Fleet) -> None:
    out = diagnose_json(fleet, fleet.batch[2])
    s = states(out)
    assert s["disk.space_exhausted"] == "present"
    assert s["scope.all_hosts"] == "present"
    assert s["scope.single_host"] == "absent"
    assert s.get("scope.peer_host_healthy_same_software", "unknown") == "unknown"


def test_a_healthy_host_has_no_scope_and_nothing_wrong(fleet: Fleet) -> None:
    out = diagnose_json(fleet, fleet.web[3])
    s = states(out)
    assert s["disk.space_exhausted"] == "absent" and s["memory.available_low"] == "absent"
    assert not any(k.startswith("scope.") for k in s)
    assert out["status"] == "nothing_wrong"


def test_fewer_than_three_peers_leave_the_scope_unknown(fleet: Fleet) -> None:
    out = diagnose_json(fleet, fleet.memcached)
    s = states(out)
    assert s["svc.down"] == "present"  # memcached_up 0, in memcached_exporter's names
    assert not any(k.startswith("scope.") for k in s)
    assert "fewer than 3 peers" in out["prometheus"]["peers"]["reason"]


def test_a_metric_not_exported_is_unknown_not_absent(fleet: Fleet) -> None:
    from ddx import api
    from ddx.prom.assess import instance_evidence
    from ddx.prom.client import PromClient

    out = diagnose_json(fleet, fleet.web[3])
    s = states(out)
    # the simulated hosts export no md arrays, PSI, swap activity or conntrack: never "absent"
    for fid in ("disk.io_errors", "memory.swapping_active", "kernel.conntrack_full", "svc.down"):
        assert fid not in s, fid
    a = instance_evidence(PromClient(fleet.url), fleet.web[3], api.load_knowledge(), window=WINDOW, baseline=None)
    by_id = {f.id: f for f in a.findings}
    assert by_id["disk.io_errors"].state is State.UNKNOWN
    assert "does not export node_md_disks" in by_id["disk.io_errors"].evidence[0].summary
    assert by_id["memory.available_low"].state is State.ABSENT


def test_this_machine_through_its_own_node_exporter(fleet: Fleet) -> None:
    out = diagnose_json(fleet, fleet.real)
    s = states(out)
    # node_exporter's default collectors on Linux: memory, filesystems, CPU, file handles are read
    for fid in ("memory.available_low", "disk.space_exhausted", "cpu.saturated", "fd.exhausted"):
        assert s.get(fid) in ("present", "absent"), fid
    # alone in its job: no scope finding is known, and the report says why
    assert not any(k.startswith("scope.") for k in s)
    assert out["prometheus"]["peers"]["peers"] == 0 and out["prometheus"]["peers"]["reason"]
    srcs = [e["source"] for f in out["findings"] if f["source"] == "prometheus" for e in f.get("evidence", [])]
    assert srcs and all(x.startswith("prometheus: ") for x in srcs)


def test_redis_exporter_reports_the_stopped_redis_as_down(fleet: Fleet) -> None:
    if fleet.redis is None or fleet.redis_exporter is None:
        pytest.skip("needs redis-server and prometheus-redis-exporter")
    assert states(diagnose_json(fleet, fleet.redis_exporter))["svc.down"] == "absent"
    fleet.stack.stop(fleet.redis)
    fleet.stack.wait_until(f'redis_up{{instance="{fleet.redis_exporter}"}} == 0', "redis_up 0", timeout=30)
    out = diagnose_json(fleet, fleet.redis_exporter)
    assert states(out)["svc.down"] == "present"
    ev = next(f for f in out["findings"] if f["id"] == "svc.down")["evidence"][0]
    assert "redis_up" in ev["source"]


def test_fleet_lists_the_sick_instances_first(fleet: Fleet) -> None:
    r = ddx("fleet", "--prometheus", fleet.url, "--job", "node", "--window", WINDOW, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    jsonschema.validate(out, FLEET)
    assert [e["instance"] for e in out[:2]] == fleet.web[:2]  # the full disk (rarer and an outlier), then EDAC
    assert out[0]["cause"] == "disk-full" and out[1]["cause"] == "hardware-fault"
    assert {e["instance"] for e in out} == set(fleet.web) and {e["job"] for e in out} == {"node"}
    assert all(e["sickness"] == 0 and e["findings"] == [] for e in out[2:])
    assert out[1]["sickness"] > 0
    assert "disk.space_exhausted" in {f["id"] for f in out[0]["findings"]}
    assert out[0]["scope"] == "scope.single_host"
    # every job: the batch hosts are fleet-wide, the terminal view has them all
    r = ddx("fleet", "--prometheus", fleet.url, "--window", WINDOW, "--json")
    everyone = json.loads(r.stdout)
    jsonschema.validate(everyone, FLEET)
    assert {e["scope"] for e in everyone if e["job"] == "batch"} == {"scope.all_hosts"}
    r = ddx("fleet", "--prometheus", fleet.url, "--window", WINDOW, "--top", "50")
    assert r.returncode == 0, r.stderr
    assert all(addr in r.stdout for addr in fleet.web + fleet.batch)
    assert r.stdout.index(fleet.web[0]) < r.stdout.index(fleet.web[3])


@pytest.mark.parametrize("case", ["unreachable", "not-prometheus", "unknown-instance", "unknown-job", "bad-window",
                                  "no-instance"])
def test_bad_input_is_one_line_and_exit_2(fleet: Fleet, case: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    node = f"http://{fleet.web[0]}"
    args, says = {
        "unreachable": (["diagnose", "--prometheus", dead, "--instance", "x:9100"], f"cannot reach Prometheus at {dead}"),
        "not-prometheus": (["diagnose", "--prometheus", node, "--instance", "x:9100"],
                           f"{node} does not look like Prometheus"),
        "unknown-instance": (["diagnose", "--prometheus", fleet.url, "--instance", "nosuch:9100"],
                             "--instance nosuch:9100: no such target"),
        "unknown-job": (["fleet", "--prometheus", fleet.url, "--job", "nosuch"], "no targets of job nosuch"),
        "bad-window": (["fleet", "--prometheus", fleet.url, "--window", "15 minutes"], "--window '15 minutes'"),
        "no-instance": (["diagnose", "--prometheus", fleet.url], "--prometheus and --instance go together"),
    }[case]
    r = ddx(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_peers_given_as_label_matchers(fleet: Fleet) -> None:
    # against the batch hosts, which all have a full disk, web0's full disk is fleet-wide
    out = diagnose_json(fleet, fleet.web[0], "--peers", 'job="batch"')
    s = states(out)
    assert s["scope.all_hosts"] == "present" and s["scope.single_host"] == "absent"
    assert out["prometheus"]["peers"]["peers"] == 4 and out["prometheus"]["peer_group"] == 'job="batch"'


def test_the_instance_against_its_own_history(fleet: Fleet) -> None:
    from ddx import api

    report = api.diagnose_prometheus(fleet.url, fleet.web[0], window="5s", baseline="20s")
    hist = {h["metric"]: h for h in report.meta["prometheus"]["history"]}
    assert hist["filesystem space free"]["baseline_median"] == 0  # full from the start: no shift
    assert hist["filesystem space free"]["z"] == 0
    assert hist["memory available"]["baseline_median"] == pytest.approx(50.0)


def test_blackbox_reports_an_expired_certificate_and_a_dead_port(fleet: Fleet) -> None:
    if fleet.expired_https is None or fleet.dead_tcp is None:
        pytest.skip("needs prometheus-blackbox-exporter")
    out = diagnose_json(fleet, fleet.expired_https)
    s = states(out)
    assert s["tls.cert_expired"] == "present" and s["svc.down"] == "absent"  # it answers, with an expired certificate
    assert out["hypotheses"][0]["id"] == "tls-certificate-expired"
    ev = next(f for f in out["findings"] if f["id"] == "tls.cert_expired")["evidence"][0]
    assert "probe_ssl_earliest_cert_expiry" in ev["source"] and -4 * 86400 < ev["value"] < -2 * 86400
    assert "-3.0 days" in ev["summary"]
    s = states(diagnose_json(fleet, fleet.dead_tcp))
    assert s["svc.down"] == "present" and "tls.cert_expired" not in s  # a TCP probe reads no certificate


def test_a_target_prometheus_cannot_scrape_is_said_and_ranked(fleet: Fleet) -> None:
    exporter = next(p for name, p in fleet.stack.procs if name == "gone")
    fleet.stack.stop(exporter)
    fleet.stack.wait_until(f'up{{instance="{fleet.gone}"}} == 0', "up 0", timeout=30)
    r = ddx("diagnose", "--prometheus", fleet.url, "--instance", fleet.gone, "--window", WINDOW, "--json")
    assert r.returncode == 0, r.stderr
    assert f"warning: Prometheus cannot scrape {fleet.gone} now" in r.stderr
    out = json.loads(r.stdout)
    jsonschema.validate(out, DIAGNOSIS)
    assert out["prometheus"]["target_down"] == ["gone"]
    s = states(out)
    # gauges read now are stale (unknown, not absent); counters over the window still count what
    # was scraped in it before the target went away
    assert "disk.space_exhausted" not in s and "memory.available_low" not in s
    assert "present" not in s.values()
    r = ddx("fleet", "--prometheus", fleet.url, "--job", "gone", "--window", WINDOW, "--json")
    entry = json.loads(r.stdout)[0]
    assert entry["up"] is False and entry["sickness"] == 1.0
