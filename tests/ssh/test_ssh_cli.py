"""``ddx diagnose --ssh`` and ``ddx collect --ssh`` as a user runs them: whole processes
against the test sshd on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, default_signals, run_ddx
from sshserver import Sshd, sshd_server  # noqa: F401 - the sshd fixture

pytestmark = pytest.mark.slow


def _validate(out: object, name: str) -> None:
    """``out`` against docs/schema/NAME (which may refer to the diagnosis schema)."""
    import jsonschema
    from referencing import Registry, Resource

    folder = ROOT / "docs" / "schema"
    diagnosis = json.loads((folder / "diagnosis.schema.json").read_text())
    registry = Registry().with_resource(diagnosis["$id"], Resource.from_contents(diagnosis))
    jsonschema.Draft202012Validator(json.loads((folder / name).read_text()), registry=registry).validate(out)


def _ssh(sshd: Sshd, *targets: str) -> list[str]:
    return [a for t in targets for a in ("--ssh", t)] + ["--ssh-config", str(sshd.client_config)]


def _drained(sshd: Sshd) -> bool:
    end = time.monotonic() + 5
    while sshd.sessions() and time.monotonic() < end:
        time.sleep(0.05)
    return sshd.sessions() == []


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_http() -> Iterator[tuple[int, type[_Counting]]]:
    """An HTTP server on this machine's loopback, counting the requests it gets."""
    handler = type("Handler", (_Counting,), {"hits": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_diagnose_over_ssh_end_to_end(sshd: Sshd, local_http: tuple[int, type[_Counting]]) -> None:
    port, handler = local_http
    r = run_ddx("diagnose", *_ssh(sshd, "sshtest"), "--json", "--target", f"http://127.0.0.1:{port}/health",
                "--budget", "20")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    _validate(out, "diagnosis.schema.json")
    assert out["ssh"] == "sshtest" and out["host"] == socket.gethostname() and out["mode"] == "host"
    probes = {p["name"]: p for p in out["probes"]}
    assert probes["disk"]["status"] == "ok" and probes["memory"]["status"] == "ok"
    assert probes["procs"]["status"] == "ok"
    # the check is made from the remote host (its agent connects there; here that host is this machine)
    assert probes["http"]["status"] == "ok", probes["http"]
    assert handler.hits >= 1
    assert _drained(sshd)


def test_the_terminal_view_names_the_remote_host(sshd: Sshd) -> None:
    r = run_ddx("diagnose", *_ssh(sshd, "root@sshtest"), "--only", "disk,memory")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"ddx diagnosis: {socket.gethostname()} (over SSH: root@sshtest)")


def test_several_hosts_in_one_command(sshd: Sshd) -> None:
    r = run_ddx("diagnose", *_ssh(sshd, "sshtest", "dead", "sshtest2"), "--json", "--only", "disk,memory")
    assert r.returncode == 2  # one target failed; the others are still diagnosed
    out = json.loads(r.stdout)
    _validate(out, "ssh-diagnoses.schema.json")
    assert [o["ssh"] for o in out] == ["sshtest", "dead", "sshtest2"]
    assert out[1] == {"ssh": "dead", "error": "ssh dead: connection refused"}
    assert all(o["schema"] == "ddx.diagnosis/1" and o["hypotheses"] for o in (out[0], out[2]))
    text = run_ddx("diagnose", *_ssh(sshd, "sshtest", "dead"), "--only", "disk")
    assert text.returncode == 2
    assert text.stderr.strip() == "ddx: error: ssh dead: connection refused"
    assert text.stdout.startswith("== sshtest (") and "ddx diagnosis:" in text.stdout
    assert _drained(sshd)


def test_an_unreachable_host_is_one_line_exit_2(sshd: Sshd) -> None:
    r = run_ddx("diagnose", *_ssh(sshd, "dead"), timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "ddx: error: ssh dead: connection refused\n")
    r = run_ddx("diagnose", "--ssh=-oProxyCommand=x", timeout=30)
    assert r.returncode == 2 and "not a host" in r.stderr and "Traceback" not in r.stderr
    r = run_ddx("diagnose", "--ssh", "sshtest", "--from", "x.tar.gz", timeout=30)
    assert r.returncode == 2 and "--ssh" in r.stderr


def test_collect_over_ssh_then_replay(sshd: Sshd, tmp_path: Path) -> None:
    bundle = tmp_path / "remote.tar.gz"
    secret = "http://admin:Ssh-Bundle-Secret-42@127.0.0.1:9/status"
    r = run_ddx("collect", *_ssh(sshd, "sshtest"), "-o", str(bundle), "--only", "disk,memory,procs,http",
                "--target", secret)
    assert r.returncode == 0, r.stderr
    assert bundle.exists() and "Ssh-Bundle-Secret-42" not in r.stderr
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("ddx-bundle/manifest.json"))  # type: ignore[arg-type]
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    assert manifest["ssh"] == "sshtest" and manifest["host"] == socket.gethostname()
    assert b"Ssh-Bundle-Secret-42" not in blob
    replay = run_ddx("diagnose", "--from", str(bundle), "--json")
    assert replay.returncode == 0, replay.stderr
    out = json.loads(replay.stdout)
    assert out["mode"] == "bundle" and out["host"] == socket.gethostname()
    assert {p["name"]: p["status"] for p in out["probes"]}["disk"] == "ok"
    r = run_ddx("collect", *_ssh(sshd, "sshtest", "sshtest2"), "-o", str(tmp_path))
    assert r.returncode == 2 and "one host" in r.stderr



def _interrupt(proc: subprocess.Popen[str], sshd: Sshd, *, sessions: int, connect_s: float, settle_s: float,
               end_s: float) -> None:
    """Once ddx holds ``sessions`` SSH sessions, SIGINT it: it must say so, exit 130 and leave
    no session behind."""
    try:
        end = time.monotonic() + connect_s
        while len(sshd.sessions()) < sessions and time.monotonic() < end:
            time.sleep(0.05)
        assert len(sshd.sessions()) >= sessions, f"ddx never held {sessions} session(s)"
        time.sleep(settle_s)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=end_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and "stopped by SIGINT" in err
    assert _drained(sshd)

def test_sigint_ends_the_ssh_session(sshd: Sshd) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "ddx", "diagnose", *_ssh(sshd, "sshtest"), "--window", "20",
                             "--probe-timeout", "30", "--budget", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    _interrupt(proc, sshd, sessions=1, connect_s=15, settle_s=1.0, end_s=20)  # settle: the probes are reading


def test_many_hosts_are_spread_over_worker_processes(sshd: Sshd) -> None:
    from ddx import api
    from ddx.errors import SshError

    res = api.diagnose_ssh(["sshtest", "dead", "sshtest2"], ssh_config=str(sshd.client_config), processes=2,
                           only=["disk", "memory"])
    assert [type(r).__name__ for r in res] == ["Report", "SshError", "Report"]
    assert isinstance(res[1], SshError) and str(res[1]) == "ssh dead: connection refused" and res[1].exit_code == 2
    assert [r.meta["ssh"] for r in res if isinstance(r, api.Report)] == ["sshtest", "sshtest2"]
    assert all(r.host == socket.gethostname() and r.diagnosis.hypotheses for r in res if isinstance(r, api.Report))
    assert _drained(sshd)


def test_sigint_with_many_hosts_ends_every_session(sshd: Sshd) -> None:
    """16 hosts: spread over worker processes where there are CPUs for them."""
    proc = subprocess.Popen([sys.executable, "-m", "ddx", "diagnose", *_ssh(sshd, *["sshtest"] * 16), "--json",
                             "--window", "20", "--probe-timeout", "30", "--budget", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
    _interrupt(proc, sshd, sessions=16, connect_s=20, settle_s=0.0, end_s=30)
