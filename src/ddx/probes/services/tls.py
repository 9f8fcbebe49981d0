"""TLS: certificates that expired or expire soon, on every HTTPS listener and target.

Which endpoints: the ``https://`` URLs in ``targets`` and, with ``discover``,
every listening port of a web server process (nginx, apache2/httpd, haproxy...,
from ``ss -ltnpH``): a handshake is tried on each with a short timeout, and a
port that does not speak TLS is skipped quietly (nginx answers a ClientHello
on a plain port with an HTTP 400, which OpenSSL reports at once). Ports that
the nginx configuration marks ``ssl`` (and 443) must speak TLS: a failure there
is reported.

The certificate is fetched WITHOUT verification (an expired or self-signed
one is exactly what we want to see) and its validity is read by a minimal DER
walk (``cert_info``): ``cryptography`` is not a runtime dependency and the
stdlib decodes only verified certificates. Only the leaf certificate is read
(the chain is not available from ``ssl`` without verification), and a
listener serving several names by SNI shows its default certificate unless the
name is given as a target (``https://name:port``, resolved normally).

The handshake (``fetch_cert``) does not go through the Host: on a replayed
bundle it fails with "not recorded" and the findings stay unknown.
"""

from __future__ import annotations

import datetime as _dt
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ddx.errors import ProbeError
from ddx.host import Host, offline_reason, parallel_map
from ddx.host.net import can_connect, open_connection
from ddx.model import Evidence, Finding, State
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.services.web import hostport, web_servers
from ddx.units import iso
from ddx.urls import mask_url, split_url

__all__ = ["CertInfo", "NotTLS", "cert_info", "fetch_cert", "judge_cert", "tls"]

FINDINGS = ("tls.cert_expired", "tls.cert_expiring")

DEFAULTS: dict[str, Any] = {
    "targets": [],  # https:// URLs (or host:port) to check
    "discover": True,  # try every listening port of a web server process on this host
    # Days before notAfter that count as "expiring": the usual renewal alert
    # (Let's Encrypt warns at 20 and renews at 30; most monitoring at 14).
    "expiring_days": 14.0,
    "timeout_s": 1.0,  # per handshake
}


# --- DER ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertInfo:
    not_before: float  # epoch seconds
    not_after: float
    subject: str  # the subject CN (or the whole subject's first value)
    issuer: str

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def _tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """(tag, value start, value end) of the DER element at ``i``."""
    if i + 2 > len(data):
        raise ValueError("truncated DER")
    tag, ln = data[i], data[i + 1]
    i += 2
    if ln & 0x80:
        n = ln & 0x7F
        if n == 0 or n > 4 or i + n > len(data):
            raise ValueError("bad DER length")
        ln = int.from_bytes(data[i:i + n], "big")
        i += n
    if i + ln > len(data):
        raise ValueError("truncated DER")
    return tag, i, i + ln


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    i = start
    while i < end:
        tag, s, e = _tlv(data, i)
        out.append((tag, s, e))
        i = e
    return out


def _time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]Z: years 50-99 are 19xx (RFC 5280)
        yy = int(text[:2])
        text = f"{1900 + yy if yy >= 50 else 2000 + yy}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMM[SS]Z
        raise ValueError(f"not a time (tag 0x{tag:02x})")
    if not text.endswith("Z"):
        raise ValueError(f"time without Z: {text!r}")
    digits = text[:-1].split(".")[0]
    fmt = "%Y%m%d%H%M%S" if len(digits) == 14 else "%Y%m%d%H%M"
    return _dt.datetime.strptime(digits, fmt).replace(tzinfo=_dt.timezone.utc).timestamp()


_CN = bytes([0x55, 0x04, 0x03])


def _name(data: bytes, s: int, e: int) -> str:
    first = ""
    for _t, rs, re_ in _children(data, s, e):  # RDN SETs
        for _t2, as_, ae in _children(data, rs, re_):  # AttributeTypeAndValue
            parts = _children(data, as_, ae)
            if len(parts) < 2:
                continue
            oid = data[parts[0][1]:parts[0][2]]
            val = data[parts[1][1]:parts[1][2]].decode("utf-8", "replace")
            if oid == _CN:
                return val
            first = first or val
    return first


def cert_info(der: bytes) -> CertInfo:
    """Validity and names of a DER certificate. Raises ValueError when the
    bytes are not one (the position of validity is fixed in TBSCertificate:
    [0] version?, serial, signature algorithm, issuer, validity, subject)."""
    try:
        tag, s, e = _tlv(der, 0)
        if tag != 0x30:
            raise ValueError("not a SEQUENCE")
        tag, ts, te = _tlv(der, s)
        if tag != 0x30:
            raise ValueError("no TBSCertificate")
        kids = _children(der, ts, te)
        if kids and kids[0][0] == 0xA0:
            kids = kids[1:]
        if len(kids) < 5:
            raise ValueError("TBSCertificate too short")
        issuer, validity, subject = kids[2], kids[3], kids[4]
        times = _children(der, validity[1], validity[2])
        if len(times) != 2:
            raise ValueError("validity is not two times")
        nb = _time(times[0][0], der[times[0][1]:times[0][2]])
        na = _time(times[1][0], der[times[1][1]:times[1][2]])
        return CertInfo(nb, na, _name(der, subject[1], subject[2]), _name(der, issuer[1], issuer[2]))
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a certificate: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"not a certificate: {exc}") from None


# --- network -------------------------------------------------------------------------------------


class NotTLS(Exception):
    """The port answered, but not with TLS (a plain HTTP port)."""


def fetch_cert(host: Host, addr: str, port: int, server_name: str | None, *, timeout: float) -> bytes:
    """The leaf certificate (DER) the server presents, unverified. Raises
    ``TimeoutError``, ``NotTLS``, ``OSError`` (refused...), ``LookupError``
    on a bundle."""
    if not can_connect(host):
        raise LookupError(offline_reason(host, "TLS handshakes are not recorded in bundles"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")  # old or weak servers still show their certificate
    except ssl.SSLError:
        pass
    try:
        sock = open_connection(host, (addr, port), timeout)  # from the host examined (ddx.host.net)
    except (socket.timeout, TimeoutError):
        raise TimeoutError(f"no connection within {timeout:g} s") from None
    try:
        sock.settimeout(timeout)
        try:
            with ctx.wrap_socket(sock, server_hostname=server_name) as tls_sock:
                der = tls_sock.getpeercert(binary_form=True)
        except (socket.timeout, TimeoutError):
            raise TimeoutError(f"no TLS handshake within {timeout:g} s") from None
        except ssl.SSLError as exc:
            reason = exc.reason or str(exc)
            if reason in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE",
                          "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
                raise NotTLS(f"not TLS ({reason})") from None
            raise ConnectionError(f"TLS handshake failed: {reason}") from None
        except (ConnectionResetError, BrokenPipeError):
            raise NotTLS("connection closed during the handshake") from None
        if not der:
            raise ConnectionError("no certificate presented")
        return der
    finally:
        sock.close()


# --- judging -------------------------------------------------------------------------------------




def judge_cert(info: CertInfo, source: str, now: float, options: Mapping[str, Any]) -> list[tuple[str, bool, Evidence]]:
    """(finding, present, evidence) for one served certificate."""
    days = (info.not_after - now) / 86400.0
    limit = float({**DEFAULTS, **options}["expiring_days"])
    who = f"CN={info.subject or '?'}" + (" (self-signed)" if info.self_signed else f", issuer CN={info.issuer or '?'}")
    extra = f"; not valid before {iso(info.not_before)} (check this host's clock)" if info.not_before > now else ""
    if days < 0:
        text = f"certificate {who} expired {-days:.1f} days ago (notAfter {iso(info.not_after)}){extra}"
    else:
        text = f"certificate {who} valid for {days:.1f} more days (notAfter {iso(info.not_after)}){extra}"
    # Expired is a state seen at the time of looking (clients fail now), not an event at notAfter:
    # a certificate that ran out yesterday is as much this incident as one that ran out a minute ago.
    expired = Evidence(source=source, summary=text, value=round(days, 1), threshold=0, unit="days left")
    expiring = Evidence(source=source, summary=text, value=round(days, 1), threshold=limit, unit="days left")
    return [("tls.cert_expired", days < 0, expired), ("tls.cert_expiring", 0 <= days <= limit, expiring)]


@dataclass(frozen=True)
class _Endpoint:
    addr: str
    port: int
    sni: str | None
    label: str
    must_tls: bool  # a failure is worth reporting (a target, an ssl port)


def _target(url: str) -> _Endpoint:
    raw = url if "://" in url else f"https://{url}"
    u = split_url(raw)[0]
    if u.scheme != "https" or not u.hostname:
        raise ProbeError(f"probe.tls targets: {mask_url(url)!r} is not an https:// URL or host:port")
    try:
        port = u.port or 443
    except ValueError:
        raise ProbeError(f"probe.tls targets: bad port in {mask_url(url)!r}") from None
    host = u.hostname
    sni = None if _is_ip(host) else host
    return _Endpoint(host, port, sni, mask_url(f"https://{u.netloc}"), True)


def _is_ip(h: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in h else socket.AF_INET, h)
        return True
    except OSError:
        return False


@probe("tls", findings=FINDINGS, timeout=3.0, options=DEFAULTS)
def tls(ctx: ProbeContext) -> list[Finding]:
    """Certificate expiry (expired; expiring within ``expiring_days``) of every
    TLS listener of a web server on this host and every https target."""
    raw = ctx.opt("targets")
    targets = [raw] if isinstance(raw, str) and raw else list(raw or [])
    eps = [_target(str(t)) for t in targets]
    problems: list[str] = []
    if ctx.opt("discover"):
        for s in web_servers(ctx.host, ctx.inv):
            ssl_ports = set(s.info.tls_ports) if s.info else set()
            for ln in s.listeners:
                port = ln.port or 0
                must = port in ssl_ports or port == 443
                ep = _Endpoint(ln.connect_host, port, None, f"{hostport(ln)} ({s.program})", must)
                if all((e.addr, e.port) != (ep.addr, ep.port) for e in eps):
                    eps.append(ep)
    if not eps:
        raise NotApplicable("no web server or https target found" + (f" ({problems[0]})" if problems else ""))
    timeout = float(ctx.opt("timeout_s"))
    now = ctx.host.time()

    def one(ep: _Endpoint) -> CertInfo:
        return cert_info(fetch_cert(ctx.host, ep.addr, ep.port, ep.sni, timeout=timeout))

    results = parallel_map(one, eps, timeout * 2 + 0.5)
    verdicts: list[tuple[str, bool, Evidence]] = []
    for ep, res in zip(eps, results):
        if isinstance(res, NotTLS) and not ep.must_tls:
            continue
        if isinstance(res, BaseException):
            msg = str(res) or type(res).__name__
            if isinstance(res, OSError) and res.strerror:
                msg = res.strerror
            problems.append(f"could not probe {ep.label}: {msg}")
            continue
        verdicts += judge_cert(res, ep.label, now, ctx.config)
    if not verdicts:
        if problems:
            raise ProbeError("; ".join(problems[:4]))
        raise NotApplicable("no listener of a web server speaks TLS")
    out: list[Finding] = []
    for fid in FINDINGS:
        items = [(p, ev) for f, p, ev in verdicts if f == fid]
        present = any(p for p, _ in items)
        evs = tuple(ev for p, ev in items if p or not present)
        if problems:
            evs += (Evidence(source="probe:tls", summary="; ".join(problems[:4])),)
        out.append(Finding(fid, State.PRESENT if present else State.ABSENT, f"probe:{ctx.probe_name}", evs))
    return out
