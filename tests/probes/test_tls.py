"""The tls probe: the DER walk on real certificates, a real nginx serving expired and expiring ones."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_http import NGINX, Nginx, free_port, tcp_server

from ddx.config import Config
from ddx.host import BundleHost, CommandResult, LiveHost, build_bundle
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.services.tls import cert_info, judge_cert

crypto = pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

UTC = dt.timezone.utc


def make_cert(cn: str, not_before: dt.datetime, not_after: dt.datetime) -> tuple[bytes, bytes, bytes]:
    """(DER, certificate PEM, key PEM) of a self-signed certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ddx test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.DER), cert.public_bytes(serialization.Encoding.PEM), key_pem


def _now() -> dt.datetime:
    return dt.datetime.now(UTC).replace(microsecond=0)


# --- DER ------------------------------------------------------------------------------------------


def test_cert_info_reads_utctime_validity_and_names() -> None:
    nb, na = _now() - dt.timedelta(days=400), _now() - dt.timedelta(days=3)
    der, _, _ = make_cert("old.example", nb, na)
    info = cert_info(der)
    assert (info.not_before, info.not_after) == (nb.timestamp(), na.timestamp())
    assert info.subject == "old.example" and info.self_signed


def test_cert_info_reads_generalized_time_after_2049() -> None:
    nb, na = dt.datetime(2049, 6, 1, tzinfo=UTC), dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=UTC)
    info = cert_info(make_cert("far.example", nb, na)[0])
    assert info.not_after == na.timestamp() and info.not_before == nb.timestamp()


def test_cert_info_rejects_what_is_not_a_certificate() -> None:
    der = make_cert("x", _now(), _now() + dt.timedelta(days=1))[0]
    for bad in (b"", b"\x30\x82\xff\xff", der[:60], b"\x02\x01\x00", b"hello world"):
        with pytest.raises(ValueError, match="not a certificate"):
            cert_info(bad)


def test_judge_cert_expired_expiring_valid() -> None:
    now = time.time()
    der = make_cert("a", _now() - dt.timedelta(days=30), _now() + dt.timedelta(days=5))[0]
    got = {f: (p, ev) for f, p, ev in judge_cert(cert_info(der), "h:443", now, {})}
    assert got["tls.cert_expiring"][0] and not got["tls.cert_expired"][0]
    assert "valid for 5.0 more days" in got["tls.cert_expiring"][1].summary
    got = {f: p for f, p, _ in judge_cert(cert_info(der), "h:443", now, {"expiring_days": 3})}
    assert got == {"tls.cert_expired": False, "tls.cert_expiring": False}
    got = {f: p for f, p, _ in judge_cert(cert_info(der), "h:443", now + 6 * 86400, {})}
    assert got == {"tls.cert_expired": True, "tls.cert_expiring": False}


# --- the probe ------------------------------------------------------------------------------------


def _run(opts: dict[str, Any], host: Any = None) -> Any:
    coll = run_probes(host or LiveHost(), Config(probes={"tls": opts}), only=["tls"])
    return coll.results[0], {f.id: f for f in coll.findings}


def test_hanging_and_non_tls_targets_give_reasons() -> None:
    with tcp_server("hang") as port:
        t0 = time.monotonic()
        res, _ = _run({"discover": False, "targets": [f"https://127.0.0.1:{port}/"], "timeout_s": 0.5})
        assert time.monotonic() - t0 < 3.0
    assert res.status == "failed"
    assert f"could not probe https://127.0.0.1:{port}: no TLS handshake within 0.5 s" in res.reason
    with tcp_server("garbage") as port:
        res, _ = _run({"discover": False, "targets": [f"127.0.0.1:{port}"]})
    assert res.status == "failed" and f"could not probe https://127.0.0.1:{port}: not TLS" in res.reason


def test_bad_target_and_bundle() -> None:
    res, _ = _run({"discover": False, "targets": ["http://x.example/"]})
    assert res.status == "failed" and "is not an https:// URL" in res.reason


def test_bundle_replay_says_not_recorded(tmp_path: Path) -> None:
    b = build_bundle(str(tmp_path / "b"), commands={("ss", "-ltnpH"): CommandResult(("ss",), 0, "", "")})
    res, _ = _run({"targets": ["https://127.0.0.1:8443"]}, BundleHost(b))
    assert res.status == "failed" and "not recorded in bundles" in res.reason


@pytest.fixture(scope="module")
def tls_nginx() -> Iterator[dict[str, Any]]:
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (apt-get install nginx-light or nginx)")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    now = _now()
    certs = {
        "expired": make_cert("expired.test", now - dt.timedelta(days=400), now - dt.timedelta(days=3)),
        "soon": make_cert("soon.test", now - dt.timedelta(days=80), now + dt.timedelta(days=5)),
        "good": make_cert("good.test", now - dt.timedelta(days=1), now + dt.timedelta(days=90)),
    }
    files: dict[str, bytes | str] = {}
    for name, (_der, pem, key) in certs.items():
        files[f"{name}.crt"], files[f"{name}.key"] = pem, key
    ports = {name: free_port() for name in certs}
    plain = free_port()
    servers = "".join(
        f"server {{ listen 127.0.0.1:{p} ssl; ssl_certificate @DIR@/{n}.crt; ssl_certificate_key @DIR@/{n}.key;"
        f" location / {{ return 200; }} }}\n" for n, p in ports.items())
    conf = f"""user root; worker_processes 1; pid @DIR@/nginx.pid; error_log @DIR@/logs/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; client_body_temp_path @DIR@/tmp; proxy_temp_path @DIR@/tmp; fastcgi_temp_path @DIR@/tmp;
uwsgi_temp_path @DIR@/tmp; scgi_temp_path @DIR@/tmp;
server {{ listen 127.0.0.1:{plain}; location / {{ return 200; }} }}
{servers}}}
"""
    srv = Nginx(conf, files)
    try:
        srv.start([plain, *ports.values()])
        yield {"ports": ports, "plain": plain}
    finally:
        srv.stop()


@pytest.mark.root
def test_real_nginx_expired_and_expiring_certificates(tls_nginx: dict[str, Any], kb: Any) -> None:
    res, got = _run({})
    assert res.status == "ok", res.reason
    ports = tls_nginx["ports"]
    exp = got["tls.cert_expired"]
    assert exp.state is State.PRESENT
    assert [e.source for e in exp.evidence if e.value is not None] == [f"127.0.0.1:{ports['expired']} (nginx)"]
    assert "CN=expired.test (self-signed) expired 3.0 days ago" in exp.evidence[0].summary
    soon = got["tls.cert_expiring"]
    assert soon.state is State.PRESENT and soon.evidence[0].source == f"127.0.0.1:{ports['soon']} (nginx)"
    # the plain-HTTP port was tried and skipped quietly
    assert all(str(tls_nginx["plain"]) not in e.summary for f in got.values() for e in f.evidence)
    from ddx.engine.diagnosis import diagnose

    d = diagnose(kb, list(got.values()))
    assert d.hypotheses[0].id == "tls-certificate-expired"


@pytest.mark.root
def test_real_nginx_valid_certificate_is_absent(tls_nginx: dict[str, Any]) -> None:
    port = tls_nginx["ports"]["good"]
    res, got = _run({"discover": False, "targets": [f"https://127.0.0.1:{port}"]})
    assert res.status == "ok", res.reason
    assert got["tls.cert_expired"].state is State.ABSENT and got["tls.cert_expiring"].state is State.ABSENT
    assert "CN=good.test (self-signed) valid for 90.0 more days" in got["tls.cert_expired"].evidence[0].summary
