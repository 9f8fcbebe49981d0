"""Clock probe: parsers on real chronyc/ntpq/timedatectl output, the rule on
their results, the probe on hand-made bundles (hosts with chrony, with ntpd,
with no daemon at all) and on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.host import BundleHost, LiveHost
from ddx.model import State
from ddx.probes.runner import run_probes
from ddx.probes.system.clock import (
    ADJTIMEX_PROGRAM,
    FINDING,
    ClockState,
    KernelClock,
    judge,
    parse_adjtimex,
    parse_chronyc_tracking,
    parse_ntpq_rv,
    parse_timedatectl,
    read_kernel_clock,
)

CHRONY_OK = (
    "A9FEA97B,169.254.169.123,4,1795325997.123456789,-0.000012345,-0.000003210,0.000021000,"
    "-12.345,-0.001,0.020,0.000512000,0.000210000,64.2,Normal\n"
)
CHRONY_UNSYNC = (
    "00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,"
    "1.000000000,1.000000000,0.0,Not synchronised\n"
)
CHRONY_FAR = CHRONY_OK.replace("-0.000012345", "3.250000000")

NTPQ_OK = """\
associd=0 status=0615 leap_none, sync_ntp, 1 event, clock_sync,
version="ntpd 4.2.8p15@1.3728-o Wed Sep 23 11:46:38 UTC 2020 (1)",
processor="x86_64", system="Linux/5.10.0-21-amd64", leap=00, stratum=3,
precision=-23, rootdelay=24.017, rootdisp=34.375, refid=192.0.2.10,
reftime=e8f6b0a2.1a2b3c4d  Sun, Nov 22 2026  5:00:02.102,
clock=e8f6b2c1.5e6f7a8b  Sun, Nov 22 2026  5:09:05.368, peer=12345, tc=10,
mintc=3, offset=-0.412, frequency=-11.270, sys_jitter=0.301,
clk_jitter=0.274, clk_wander=0.012
"""
NTPQ_UNSYNC = """\
associd=0 status=c618 leap_alarm, sync_unspec, 1 event, no_sys_peer,
leap=11, stratum=16, precision=-23, rootdelay=0.000, rootdisp=2.460, refid=INIT,
offset=0.000000, frequency=0.000, sys_jitter=0.000000
"""


def test_parse_chronyc_tracking() -> None:
    ok = parse_chronyc_tracking(CHRONY_OK)
    assert ok is not None and ok.synchronised and ok.offset == pytest.approx(-0.000012345)
    assert "169.254.169.123" in ok.detail and "stratum 4" in ok.detail
    bad = parse_chronyc_tracking(CHRONY_UNSYNC)
    assert bad is not None and not bad.synchronised
    assert parse_chronyc_tracking("506 Cannot talk to daemon\n") is None


def test_parse_ntpq_rv() -> None:
    ok = parse_ntpq_rv(NTPQ_OK)
    assert ok is not None and ok.synchronised and ok.offset == pytest.approx(-0.000412)
    bad = parse_ntpq_rv(NTPQ_UNSYNC)
    assert bad is not None and not bad.synchronised
    assert parse_ntpq_rv("ntpq: read: Connection refused\n") is None


def test_parse_timedatectl_and_adjtimex_output() -> None:
    assert parse_timedatectl("NTP=yes\nNTPSynchronized=no\n") == {"NTP": "yes", "NTPSynchronized": "no"}
    k = parse_adjtimex("adjtimex 5 0 64 16000000 16000000 0\n")
    assert k == KernelClock(status=64, maxerror_us=16_000_000, esterror_us=16_000_000, state=5)
    assert k.unsync
    assert parse_adjtimex("adjtimex -1 1 0 0 0 0\n") is None  # the call failed
    assert parse_adjtimex("Traceback ...") is None


def test_rule_trusts_a_daemon_first() -> None:
    synced = ClockState("chronyc -c tracking", True, 0.0004, "chronyc: ...")
    present, ev = judge(synced, KernelClock(64, 16_000_000, 0, 5))  # type: ignore[misc]
    assert present is False and "synchronised" in ev.summary
    far = ClockState("chronyc -c tracking", True, -2.5, "chronyc: ...")
    present, ev = judge(far, None)  # type: ignore[misc]
    assert present is True and ev.value == -2.5 and ev.threshold == 1.0
    present, _ = judge(far, None, max_offset_s=5.0)  # type: ignore[misc]
    assert present is False
    unsynced = ClockState("timedatectl", False, None, "timedatectl: NTP=yes, NTPSynchronized=no")
    present, ev = judge(unsynced, None)  # type: ignore[misc]
    assert present is True and "not synchronised" in ev.summary


def test_rule_without_a_daemon_uses_the_kernel_bit_and_says_so() -> None:
    present, ev = judge(None, KernelClock(0x40, 16_000_000, 16_000_000, 5), notes=("chronyc: not installed",))  # type: ignore[misc]
    assert present is True
    assert "no time daemon answered" in ev.summary and "16 s cap" in ev.summary and "chronyc: not installed" in ev.summary
    present, ev = judge(None, KernelClock(0x2001, 120_000, 5_000, 0))  # type: ignore[misc]
    assert present is False and "STA_UNSYNC clear" in ev.summary
    assert judge(None, None) is None


# --- the probe on hand-made bundles ----------------------------------------

CHRONYC = ["chronyc", "-c", "tracking"]
NTPQ = ["ntpq", "-c", "rv"]
TIMEDATECTL = ["timedatectl", "show", "-p", "NTP", "-p", "NTPSynchronized"]
ADJTIMEX = ["python3", "-c", ADJTIMEX_PROGRAM]
MISSING = {"error": "FileNotFoundError", "errno": 2, "message": "No such file or directory", "filename": None}


def _bundle(tmp: Path, commands: list[tuple[list[str], dict | tuple[int, str, str]]]) -> BundleHost:  # type: ignore[type-arg]
    """A bundle folder in which each command had the given outcome."""
    (tmp / "commands").mkdir()
    calls = []
    for i, (argv, outcome) in enumerate(commands):
        if isinstance(outcome, dict):
            oc = outcome
        else:
            rc, out, err = outcome
            name = f"commands/{i:03d}.out"
            (tmp / name).write_text(out)
            oc = {"returncode": rc, "stdout_file": name, "stderr": err}
        calls.append({"op": "run", "args": {"argv": argv}, "probe": "clock", "outcomes": [oc]})
    (tmp / "calls.json").write_text(json.dumps(calls))
    (tmp / "manifest.json").write_text(json.dumps({"format": "ddx-bundle/1", "host": "fixture"}))
    return BundleHost(str(tmp))


def _clock(host: object) -> tuple[str, object]:
    c = run_probes(host, Config(), only=["clock"])
    (result,) = c.results
    found = {f.id: f for f in c.findings}
    return result.status, found.get(FINDING)


def test_host_with_synchronised_chrony(tmp_path: Path) -> None:
    status, f = _clock(_bundle(tmp_path, [(CHRONYC, (0, CHRONY_OK, ""))]))
    assert status == "ok" and f.state is State.ABSENT  # type: ignore[attr-defined]


def test_host_with_chrony_far_off(tmp_path: Path) -> None:
    status, f = _clock(_bundle(tmp_path, [(CHRONYC, (0, CHRONY_FAR, ""))]))
    assert status == "ok" and f.state is State.PRESENT  # type: ignore[attr-defined]
    assert "3.250s off" in f.evidence[0].summary  # type: ignore[attr-defined]


def test_host_with_ntpd_only(tmp_path: Path) -> None:
    host = _bundle(tmp_path, [(CHRONYC, MISSING), (NTPQ, (0, NTPQ_UNSYNC, ""))])
    status, f = _clock(host)
    assert status == "ok" and f.state is State.PRESENT  # type: ignore[attr-defined]
    assert f.evidence[0].source == "ntpq -c rv"  # type: ignore[attr-defined]


def test_chronyd_stopped_falls_back_to_the_kernel(tmp_path: Path) -> None:
    host = _bundle(tmp_path, [
        (CHRONYC, (1, "", "506 Cannot talk to daemon\n")),
        (NTPQ, MISSING),
        (TIMEDATECTL, (0, "NTP=no\nNTPSynchronized=no\n", "")),
        (ADJTIMEX, (0, "adjtimex 5 0 64 16000000 16000000 0\n", "")),
    ])
    # By default the kernel's bit alone leaves the finding unknown, with the reason.
    c = run_probes(host, Config(), only=["clock"])
    (result,) = c.results
    assert result.status == "not_applicable" and "STA_UNSYNC" in result.reason
    assert not c.findings
    # Counted when asked to: present, and the evidence says why.
    c = run_probes(host, Config(probes={"clock": {"kernel_flag_counts": True}}), only=["clock"])
    f = {f.id: f for f in c.findings}[FINDING]
    assert f.state is State.PRESENT
    summary = f.evidence[0].summary
    assert "no time daemon answered" in summary and "506 Cannot talk to daemon" in summary and "NTP=no" in summary


def test_nothing_readable_fails_instead_of_guessing(tmp_path: Path) -> None:
    host = _bundle(tmp_path, [(CHRONYC, MISSING), (NTPQ, MISSING), (TIMEDATECTL, MISSING),
                              (ADJTIMEX, (1, "", "Traceback: no ctypes\n"))])
    status, f = _clock(host)
    assert status == "failed" and f is None


# --- live --------------------------------------------------------------------


def test_live_probe_returns_a_state() -> None:
    status, f = _clock(LiveHost())
    if status == "not_applicable":  # no time daemon here and the kernel says "unsynchronised"
        assert f is None
        return
    assert status == "ok"
    assert f is not None and f.state in (State.PRESENT, State.ABSENT)  # type: ignore[attr-defined]
    assert f.evidence and f.evidence[0].summary  # type: ignore[attr-defined]


def test_live_adjtimex_reads_the_kernel_state() -> None:
    k = read_kernel_clock(LiveHost())
    assert k is not None
    assert 0 <= k.maxerror_us <= 16_000_000 and 0 <= k.state <= 5
