"""Kernel-log probe: the parser on real kernel wording, the judgement on
parsed samples, and the probe on faults made for real (lines written to
/dev/kmsg, programs that really crash).

Other tests on this machine write to the same kernel log and the ring buffer
keeps old lines, so every live test restricts the probe to lines written
after it started (the ``since`` option)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.base import registry
from ddx.probes.parsers.kmsg import (
    KernelLine,
    boot_epoch,
    classify,
    parse_dmesg_raw,
    parse_journal_short_unix,
    parse_kmsg,
    program_key,
)
from ddx.probes.runner import run_probes
from ddx.probes.system.kernel import FINDINGS, PRESENT_ONLY, KernelLog, judge
from ddx.units import iso

SRC = Path(__file__).resolve().parents[2] / "src"

# --- classify: real kernel wording -------------------------------------------

POSITIVE = [
    ("mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 5: be00000000800400", "kernel.hardware_error", ""),
    ("mce: [Hardware Error]: Machine check events logged", "kernel.hardware_error", ""),
    (
        "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x1d1f04 "
        "offset:0x0 grain:32 syndrome:0x0 - area:DRAM err_code:0000:0091 socket:0 ha:0 channel_mask:2 rank:1)",
        "kernel.hardware_error",
        "",
    ),
    ("EDAC MC1: 1 UE memory scrub error on DIMM_B1 (channel:1 slot:0 page:0x0 offset:0x0)", "kernel.hardware_error", ""),
    ("EDAC skx MC2: HANDLING MCE MEMORY ERROR", "kernel.hardware_error", ""),
    ("pcieport 0000:00:1c.5: AER: Corrected error received: 0000:03:00.0", "kernel.hardware_error", ""),
    (
        "nvme 0000:03:00.0: PCIe Bus Error: severity=Corrected, type=Physical Layer, (Receiver ID)",
        "kernel.hardware_error",
        "",
    ),
    ("{1}[Hardware Error]: Hardware error from APEI Generic Hardware Error Source: 0", "kernel.hardware_error", ""),
    ("Memory failure: 0x7fa123: recovery action for dirty LRU page: Recovered", "kernel.hardware_error", ""),
    (
        "blk_update_request: I/O error, dev sda, sector 123456 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0",
        "disk.io_errors",
        "sda",
    ),
    ("Buffer I/O error on dev sda1, logical block 0, lost async page write", "disk.io_errors", "sda1"),
    ("I/O error, dev vdb, sector 2048 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 2", "disk.io_errors", "vdb"),
    (
        "blk_update_request: critical medium error, dev sdb, sector 1000 op 0x0:(READ) flags 0x0 phys_seg 1",
        "disk.io_errors",
        "sdb",
    ),
    ("sd 2:0:0:0: [sdb] tag#0 Sense Key : Medium Error [current]", "disk.io_errors", "sdb"),
    ('XFS (sdc1): metadata I/O error in "xfs_trans_read_buf_map" at daddr 0x2 len 1 error 5', "disk.io_errors", "sdc1"),
    ("ata1.00: error: { UNC }", "disk.io_errors", ""),
    ("ata3.00: failed command: WRITE FPDMA QUEUED", "disk.io_errors", ""),
    ("ata1.00: failed command: FLUSH CACHE EXT", "disk.io_errors", ""),
    (
        "sd 2:0:0:0: [sdc] tag#12 FAILED Result: hostbyte=DID_TIME_OUT driverbyte=DRIVER_OK cmd_age=30s",
        "disk.io_errors",
        "sdc",
    ),
    ("sd 0:0:0:0: timing out command, waited 180s", "disk.io_errors", ""),
    ("nvme nvme0: I/O 512 QID 7 timeout, aborting", "disk.io_errors", ""),
    ("nvme nvme0: controller is down; will reset: CSTS=0xffffffff, PCI_STATUS=0xffff", "disk.io_errors", ""),
    ("EXT4-fs (sda1): Remounting filesystem read-only", "disk.readonly_remount", "sda1"),
    ("BTRFS info (device sdb1: state EA): forced readonly", "disk.readonly_remount", "sdb1"),
    (
        "Out of memory: Killed process 1234 (java) total-vm:8123456kB, anon-rss:4000000kB, file-rss:0kB, "
        "shmem-rss:0kB, UID:1000 pgtables:9000kB oom_score_adj:0",
        "memory.oom_kill",
        "java",
    ),
    ("Memory cgroup out of memory: Killed process 4321 (python3) total-vm:1000kB", "memory.oom_kill", "python3"),
    ("Out of memory: Kill process 1234 (mysqld) score 912 or sacrifice child", "memory.oom_kill", "mysqld"),
    (
        "python3[1234]: segfault at 0 ip 00007f9307185ad8 sp 00007fffe4d83b18 error 4 in "
        "libc.so.6[167ad8,7f9307044000+156000] likely on CPU 1 (core 1, socket 0)",
        "procs.segfault",
        "python3",
    ),
    ("traps: node[99] general protection fault ip:55d0c8 sp:7ffd8 error:0 in node[400000+1e00000]", "procs.segfault", "node"),
    ("traps: php-fpm[77] trap invalid opcode ip:5601 sp:7ffc error:0 in php-fpm[5600+3000]", "procs.segfault", "php-fpm"),
    ("Web Content[4242]: segfault at 8 ip 00007f sp 00007ffd error 4 in libxul.so[7f+5000]", "procs.segfault", "Web Content"),
    (
        'audit: type=1701 audit(1700000000.123:456): auid=4294967295 uid=0 gid=0 ses=4294967295 '
        'subj=unconfined pid=4910 comm="ruby" exe="/usr/bin/ruby3.1" sig=11 res=1',
        "procs.segfault",
        "ruby",
    ),
    ("java/5555: potentially unexpected fatal signal 11.", "procs.segfault", "java"),
    (
        "nginx[812]: unhandled level 2 translation fault (11) at 0x00000008, esr 0x92000006, in nginx[aaaa+1000]",
        "procs.segfault",
        "nginx",
    ),
    ("INFO: task nginx:123 blocked for more than 120 seconds.", "kernel.hung_task", "nginx"),
    ("INFO: task kworker/u16:2:1234 blocked for more than 122 seconds.", "kernel.hung_task", "kworker/u16:2"),
    (
        "TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.  Check SNMP counters.",
        "kernel.syn_flood_warning",
        "8080",
    ),
    (
        "TCP: request_sock_TCP: Possible SYN flooding on port 0.0.0.0:8080. Sending cookies.",
        "kernel.syn_flood_warning",
        "0.0.0.0:8080",
    ),
    (
        "TCPv6: request_sock_TCPv6: Possible SYN flooding on port [::]:443. Dropping request.  Check SNMP counters.",
        "kernel.syn_flood_warning",
        "[::]:443",
    ),
    ("nf_conntrack: nf_conntrack: table full, dropping packet", "kernel.conntrack_full", ""),
    ("nf_conntrack: table full, dropping packet", "kernel.conntrack_full", ""),
    ("Clock: inserting leap second 23:59:60 UTC", "time.jump", ""),
    ("Clock: deleting leap second 23:59:59 UTC", "time.jump", ""),
    ("cgroup: fork rejected by pids controller in /system.slice/app.service", "procs.fork_failures", "/system.slice/app.service"),
    ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "kernel.oops", ""),
    ("BUG: unable to handle page fault for address: ffffc90000a3b000", "kernel.oops", ""),
    ("watchdog: BUG: soft lockup - CPU#3 stuck for 22s! [java:4242]", "kernel.oops", ""),
    ("kernel BUG at mm/slub.c:4018!", "kernel.oops", ""),
    ("Oops: 0000 [#1] PREEMPT SMP NOPTI", "kernel.oops", ""),
    ("general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] SMP PTI",
     "kernel.oops", ""),
    ("rcu: INFO: rcu_sched self-detected stall on CPU", "kernel.oops", ""),
    ("INFO: rcu_preempt detected stalls on CPUs/tasks:", "kernel.oops", ""),
    ("NMI watchdog: Watchdog detected hard LOCKUP on cpu 5", "kernel.oops", ""),
    ("Kernel panic - not syncing: Fatal exception in interrupt", "kernel.oops", ""),
]


@pytest.mark.parametrize(("line", "finding", "subject"), POSITIVE)
def test_classify_recognises_kernel_wording(line: str, finding: str, subject: str) -> None:
    events = classify(line)
    assert [e.finding for e in events] == [finding]
    assert events[0].subject == subject


NEGATIVE = [
    "EDAC MC: Ver: 3.0.0",
    "EDAC MC0: Giving out device to module skx_edac controller Skylake Socket#0 IMC#0: DEV 0000:3a:0a.0 (INTERRUPT)",
    "EDAC amd64: Node 0: DRAM ECC enabled.",
    "pcieport 0000:00:01.0: AER: enabled with IRQ 122",
    "acpi PNP0A08:00: _OSC: OS now controls [PCIeHotplug SHPCHotplug PME AER PCIeCapability LTR]",
    "mce: CPU0: Thermal monitoring enabled (TM1)",
    "MCE: In-kernel MCE decoding enabled.",
    "ERST: Error Record Serialization Table (ERST) support is initialized.",
    "EXT4-fs (vda): mounted filesystem 00000000-0000 ro without journal. Quota mode: none.",
    "VFS: Mounted root (ext4 filesystem) readonly on device 254:0.",
    "EXT4-fs (sda1): re-mounted. Opts: errors=remount-ro",
    "Code: e1 ff ff ff c3 66 2e 0f 1f 84 00 00 00 00 00 0f 1f 00 89 f8 62 a1 fd 00 ef c0 25 ff 0f 00",
    "systemd[1]: Started nginx.service - A high performance web server.",
    "oom_reaper: reaped process 1234 (java), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
    'audit: type=1701 audit(1700000000.1:7): pid=77 comm="python3" exe="/usr/bin/python3" sig=6 res=1',
    "clocksource: Switched to clocksource kvm-clock",
    "dbus-daemon[600]: unhandled method call from :1.42",
    "TCP: Hash tables configured (established 16384 bind 16384)",
    "rcu: Hierarchical RCU implementation.",
    "rcu: RCU calculated value of scheduler-enlistment delay is 25 jiffies.",
    "NMI watchdog: Enabled. Permanently consumes one hw-PMU counter.",
    "watchdog: Disabling watchdog on nohz_full cores by default",
    "WARNING: CPU: 1 PID: 812 at drivers/gpu/drm/drm_edid.c:1234 drm_edid_block_valid+0x1f0/0x210",
    # an empty port, an optical drive probed at boot, a log page some SSDs lack: not a disk failing
    "ata2: SATA link down (SStatus 0 SControl 300)",
    "ata2.00: failed command: IDENTIFY PACKET DEVICE",
    "ata1.00: failed command: READ LOG DMA EXT",
    "ata1.00: Read log 0x00 page 0x00 failed, Emask 0x1",
    "sd 2:0:0:0: [sdb] tag#0 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=0s",
    "sd 0:0:0:0: [sda] Synchronizing SCSI cache",
    "nvme nvme0: 8/0/0 default/read/poll queues",
]


@pytest.mark.parametrize("line", NEGATIVE)
def test_classify_ignores_lookalike_boot_and_benign_lines(line: str) -> None:
    assert classify(line) == []


def test_sense_key_hardware_error_is_a_disk_error_not_a_machine_error() -> None:
    events = classify("sd 0:0:0:0: [sda] tag#3 Sense Key : Hardware Error [current]")
    assert [e.finding for e in events] == ["disk.io_errors"]


def test_program_key_groups_threads_of_one_program() -> None:
    assert program_key("worker-1") == program_key("worker-12") == "worker"
    assert program_key("GC Thread#0") == program_key("GC Thread#3")
    assert program_key("python3") == "python3"
    assert program_key("python3") != program_key("perl")


# --- the three input formats ------------------------------------------------


def test_parse_dmesg_raw_converts_boot_seconds_to_epoch() -> None:
    text = (
        "<6>[    1.354860] EXT4-fs (vda): mounted filesystem r/w without journal.\n"
        "<3>[ 4036.862845] mce: [Hardware Error]: Machine check events logged\n"
        "\n"
        "no stamp here\n"
    )
    lines = parse_dmesg_raw(text, boot=1_000_000.0)
    assert [ln.time for ln in lines[:2]] == [pytest.approx(1_000_001.35486), pytest.approx(1_004_036.862845)]
    assert lines[1].text == "mce: [Hardware Error]: Machine check events logged"
    assert lines[2] == KernelLine(None, "no stamp here")


def test_parse_kmsg_records_skips_continuation_lines() -> None:
    text = (
        "3,1201,4036862845,-;pcieport 0000:00:1c.5: AER: Corrected error received: 0000:03:00.0\n"
        " SUBSYSTEM=pci\n"
        " DEVICE=+pci:0000:00:1c.5\n"
        "6,1202,4037033603,-,caller=T4910;python3[4910]: segfault at 0 ip 00007f sp 00007ffe error 4\n"
    )
    lines = parse_kmsg(text, boot=100.0)
    assert len(lines) == 2
    assert lines[0].time == pytest.approx(4136.862845)
    assert lines[1].text.startswith("python3[4910]: segfault at 0")


def test_parse_journal_short_unix_strips_the_kernel_identifier() -> None:
    text = (
        "-- Journal begins at Sun 2026-11-22 04:32:40 UTC. --\n"
        "1795325997.033651 web-1 kernel: python3[4910]: segfault at 0 ip 00007f sp 00007ffe error 4\n"
        "1795325998.5 web-1 kernel: Out of memory: Killed process 17 (java) total-vm:10kB\n"
        "-- No entries --\n"
    )
    lines = parse_journal_short_unix(text)
    assert [ln.time for ln in lines] == [pytest.approx(1795325997.033651), pytest.approx(1795325998.5)]
    assert lines[1].text.startswith("Out of memory: Killed process 17 (java)")


def test_boot_epoch_from_proc_uptime() -> None:
    assert boot_epoch("4009.16 7960.76\n", now=10_000.0) == pytest.approx(5990.84)
    with pytest.raises(ValueError, match="/proc/uptime"):
        boot_epoch("garbage", now=1.0)


# --- judge: the window and the aggregation ---------------------------------

NOW = 1_800_000_000.0


def _log(*entries: tuple[float, str], source: str = "dmesg -r") -> KernelLog:
    return KernelLog(tuple(KernelLine(NOW + dt, text) for dt, text in entries), source)


def _by_id(verdicts: list) -> dict:  # type: ignore[type-arg]
    return {fid: (present, ev) for fid, present, ev in verdicts}


def test_judge_counts_only_lines_in_the_window() -> None:
    log = _log(
        (-7200, "Out of memory: Killed process 1 (old) total-vm:1kB"),
        (-30, "Out of memory: Killed process 2 (java) total-vm:1kB"),
        (-20, "Out of memory: Killed process 3 (java) total-vm:1kB"),
        (-10, "Memory cgroup out of memory: Killed process 4 (redis-server) total-vm:1kB"),
    )
    got = _by_id(judge(log, since=NOW - 60))
    present, ev = got["memory.oom_kill"]
    assert present and ev.count == 3
    assert "java x2" in ev.summary and "redis-server" in ev.summary and "old" not in ev.summary
    assert ev.first_seen == iso(NOW - 30) and ev.last_seen == iso(NOW - 10)
    assert len(ev.samples) == 3 and all("Killed process" in s for s in ev.samples)
    # everything else was looked for and not seen
    assert got["kernel.hardware_error"][0] is False
    assert got["disk.io_errors"][0] is False
    assert "4 kernel-log lines since" not in got["disk.io_errors"][1].summary  # only the 3 recent ones count
    assert "3 kernel-log lines since" in got["disk.io_errors"][1].summary


def test_judge_old_lines_only_give_absent() -> None:
    log = _log((-7200, "mce: [Hardware Error]: Machine check events logged"), (-5, "random: crng reseeded"))
    got = _by_id(judge(log, since=NOW - 60))
    assert got["kernel.hardware_error"][0] is False


def test_two_different_programs_crashing_is_multiple_binaries() -> None:
    log = _log(
        (-9, "python3[10]: segfault at 0 ip 00007f sp 00007ffe error 4 in libc.so.6[7f+1000]"),
        (-8, "perl[11]: segfault at 1 ip 00007f sp 00007ffe error 4 in libc.so.6[7f+1000]"),
        (-7, "traps: node[12] general protection fault ip:55 sp:7ffd error:0 in node[400000+1000]"),
    )
    got = _by_id(judge(log, since=NOW - 60))
    assert got["procs.segfault"][0] is True
    present, ev = got["procs.segfaults_multiple_binaries"]
    assert present and ev.value == 3
    assert "node, perl, python3" in ev.summary
    assert any("perl[11]" in s for s in ev.samples) and any("python3[10]" in s for s in ev.samples)


def test_one_program_crashing_repeatedly_is_not_multiple_binaries() -> None:
    log = _log(
        (-9, "worker-1[10]: segfault at 0 ip 00007f sp 00007ffe error 4 in app[400000+1000]"),
        (-8, "worker-2[11]: segfault at 0 ip 00007f sp 00007ffe error 4 in app[400000+1000]"),
        (-7, "worker-1[12]: segfault at 0 ip 00007f sp 00007ffe error 4 in app[400000+1000]"),
    )
    got = _by_id(judge(log, since=NOW - 60))
    assert got["procs.segfault"] == (True, got["procs.segfault"][1])
    assert got["procs.segfault"][1].count == 3
    present, ev = got["procs.segfaults_multiple_binaries"]
    assert present is False and "only one program" in ev.summary


def test_one_crash_reported_twice_counts_once() -> None:
    log = _log(
        (-9, "python3[4910]: segfault at 0 ip 00007f sp 00007ffe error 4 in libc.so.6[7f+1000]"),
        (-9, 'audit: type=1701 audit(1.2:3): auid=0 uid=0 gid=0 pid=4910 comm="python3" exe="/usr/bin/x" sig=11 res=1'),
    )
    got = _by_id(judge(log, since=NOW - 60))
    assert got["procs.segfault"][1].count == 1


def test_crash_findings_unknown_when_the_kernel_does_not_log_crashes() -> None:
    log = _log((-5, "random: crng reseeded"))
    got = _by_id(judge(log, since=NOW - 60, segfaults_logged=False))
    assert "procs.segfault" not in got and "procs.segfaults_multiple_binaries" not in got
    assert got["memory.oom_kill"][0] is False


def test_fork_failures_and_time_jumps_are_never_reported_absent() -> None:
    got = _by_id(judge(_log((-5, "random: crng reseeded")), since=NOW - 60))
    assert not PRESENT_ONLY & set(got)
    got = _by_id(judge(_log(
        (-5, "cgroup: fork rejected by pids controller in /system.slice/app.service"),
        (-4, "Clock: inserting leap second 23:59:60 UTC"),
    ), since=NOW - 60))
    assert got["procs.fork_failures"][0] is True and "/system.slice/app.service" in got["procs.fork_failures"][1].summary
    assert got["time.jump"][0] is True


def test_evidence_says_when_the_buffer_does_not_reach_back_to_the_window() -> None:
    log = _log((-60, "random: crng reseeded"))
    ev = _by_id(judge(log, since=NOW - 6 * 3600))["disk.io_errors"][1]
    assert "reaches back only to" in ev.summary
    booted = KernelLog(log.lines, "dmesg -r", boot=NOW - 61)
    ev = _by_id(judge(booted, since=NOW - 6 * 3600))["disk.io_errors"][1]
    assert "booted at" in ev.summary


def test_declared_findings_are_in_the_vocabulary() -> None:
    from ddx.kb.loader import load_kb

    assert set(registry["kernel"].findings) == set(FINDINGS)
    assert set(FINDINGS) <= set(load_kb().findings)  # the contract's ids and ddx's own


def test_a_program_oom_killed_again_and_again_runs_out_of_memory_after_each_start() -> None:
    log = _log(
        (-300, "Memory cgroup out of memory: Killed process 101 (python3) total-vm:201352kB, anon-rss:190080kB"),
        (-200, "Memory cgroup out of memory: Killed process 102 (python3) total-vm:205464kB, anon-rss:194048kB"),
        (-100, "Memory cgroup out of memory: Killed process 103 (python3) total-vm:202380kB, anon-rss:191104kB"),
        (-50, "Out of memory: Killed process 7 (java) total-vm:1kB"),
    )
    present, ev = _by_id(judge(log, since=NOW - 3600))["memory.oom_kills_repeated"]
    assert present and ev.count == 3 and "python3 OOM-killed 3 times in 200 s" in ev.summary
    assert all("python3" in s for s in ev.samples)


@pytest.mark.parametrize("entries", [
    # kills of one program hours apart: a slow leak refilling memory
    [(-7000, "Out of memory: Killed process 11 (ruby) total-vm:1kB"),
     (-3500, "Out of memory: Killed process 12 (ruby) total-vm:1kB"),
     (-10, "Out of memory: Killed process 13 (ruby) total-vm:1kB")],
    # three kills within minutes, but of three programs
    [(-30, "Out of memory: Killed process 21 (java) total-vm:1kB"),
     (-20, "Out of memory: Killed process 22 (redis-server) total-vm:1kB"),
     (-10, "Out of memory: Killed process 23 (postgres) total-vm:1kB")],
    # one process reported twice is one kill
    [(-20, "Out of memory: Killed process 31 (node) total-vm:1kB"),
     (-20, "Memory cgroup out of memory: Killed process 31 (node) total-vm:1kB"),
     (-10, "Out of memory: Killed process 32 (node) total-vm:1kB")],
])
def test_oom_kills_that_are_not_one_program_restarting_into_the_limit(entries: list[tuple[float, str]]) -> None:
    present, ev = _by_id(judge(_log(*entries), since=NOW - 7200))["memory.oom_kills_repeated"]
    assert present is False and "no program OOM-killed 3 times within 10 min" in ev.summary


def test_without_oom_kills_repeated_kills_stay_unknown() -> None:
    got = _by_id(judge(_log((-10, "random: crng reseeded")), since=NOW - 60))
    assert got["memory.oom_kill"][0] is False and "memory.oom_kills_repeated" not in got


# --- live: real faults ------------------------------------------------------


def _kernel(since: float) -> tuple[str, dict]:  # type: ignore[type-arg]
    c = run_probes(LiveHost(), Config(probes={"kernel": {"since": since}}), only=["kernel"], window=0.0)
    (result,) = c.results
    return result.status, {f.id: f for f in c.findings}


@pytest.fixture
def crash_logging() -> Iterator[None]:
    """The kernel logs crashes only with debug.exception-trace = 1: switch it
    on for the test if it is off, and put it back."""
    path = "/proc/sys/debug/exception-trace"
    if not os.path.exists(path):
        pytest.skip("no debug.exception-trace on this kernel")
    old = Path(path).read_text().strip()
    if old != "1":
        Path(path).write_text("1\n")
    try:
        yield
    finally:
        if old != "1":
            Path(path).write_text(old + "\n")


def _crash(argv: list[str]) -> None:
    """Run a program that segfaults; the kernel must have said so."""
    proc = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    assert proc.returncode == -11, f"{argv[0]} did not segfault: rc={proc.returncode} {proc.stderr[-200:]!r}"


@pytest.mark.root
@pytest.mark.kernel_log
def test_probe_sees_real_hardware_error_lines_and_two_crashing_programs(crash_logging: None) -> None:
    token = uuid.uuid4().hex[:8]
    tmp = tempfile.mkdtemp(prefix="ddx-kernel-")
    try:
        since = time.time()
        time.sleep(0.05)  # the printk clock and /proc/uptime differ by a few ms
        with open("/dev/kmsg", "wb", buffering=0) as kmsg:  # one write() is one record
            kmsg.write(f"<3>mce: [Hardware Error]: CPU 0: Machine Check: 0 Bank 5: be00000000800400 ddx-{token}\n".encode())
            kmsg.write(f"<3>EDAC MC0: 1 CE memory read error on DIMM_A1 (channel:0 slot:0 page:0x0) ddx-{token}\n".encode())
            # a disk failing slowly: libata gives up on a write and resets the link, no I/O error yet
            kmsg.write(f"<3>ata3.00: failed command: WRITE FPDMA QUEUED ddx-{token}\n".encode())
        _crash([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"])
        if shutil.which("gcc"):
            exe = os.path.join(tmp, f"ddxcrash{token[:4]}")
            src = exe + ".c"
            Path(src).write_text("int main(void) { volatile int *p = 0; return *p; }\n")
            subprocess.run(["gcc", "-O0", "-o", exe, src], check=True, timeout=60)
            other = os.path.basename(exe)
            _crash([exe])
        else:
            other = "perl"
            _crash(["perl", "-e", "unpack(q{p}, pack(q{Q}, 1))"])

        status, found = _kernel(since)
        assert status == "ok"
        hw = found["kernel.hardware_error"]
        assert hw.state is State.PRESENT
        assert hw.evidence[0].count == 2 and all(f"ddx-{token}" in s for s in hw.evidence[0].samples)
        io = found["disk.io_errors"]
        assert io.state is State.PRESENT and any(f"ddx-{token}" in s for s in io.evidence[0].samples)
        seg = found["procs.segfault"]
        assert seg.state is State.PRESENT
        multi = found["procs.segfaults_multiple_binaries"]
        assert multi.state is State.PRESENT, multi.evidence[0].summary
        assert other[:15] in multi.evidence[0].summary
        assert multi.evidence[0].first_seen >= iso(since - 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.root
def test_healthy_window_reports_absent() -> None:
    since = time.time()
    if not subprocess.run(["dmesg", "-r"], capture_output=True, timeout=10).stdout.strip():
        # an emptied ring buffer (dmesg -C) is a probe failure by design; a plain notice is
        # not a fault (nothing a later diagnosis reads as one)
        with open("/dev/kmsg", "wb", buffering=0) as kmsg:
            kmsg.write(b"<5>ddx-test: a notice so that the kernel log is not empty\n")
    status, found = _kernel(since)
    assert status == "ok"
    assert "memory.oom_kills_repeated" not in found or found["memory.oom_kill"].state is State.PRESENT
    for fid in FINDINGS:
        if fid in PRESENT_ONLY or fid == "memory.oom_kills_repeated":  # judged only where OOM kills were
            continue
        f = found[fid]
        if f.state is State.PRESENT:
            # another test on this machine wrote a matching line meanwhile: it must be a new one
            assert f.evidence[0].first_seen and f.evidence[0].first_seen >= iso(since - 1), f.evidence[0]
        else:
            assert f.state is State.ABSENT
            assert "since " + iso(since) in f.evidence[0].summary
    assert found["kernel.hardware_error"].state is State.ABSENT


@pytest.mark.root
def test_unprivileged_user_is_denied_or_reads_the_journal() -> None:
    """With kernel.dmesg_restrict = 1 an ordinary user cannot read the ring
    buffer: the probe is 'denied' (findings unknown), never 'absent'."""
    restrict = Path("/proc/sys/kernel/dmesg_restrict").read_text().strip()
    python = "/usr/bin/python3"
    if restrict != "1" or not os.access(python, os.X_OK):
        pytest.skip("needs kernel.dmesg_restrict=1 and /usr/bin/python3")
    code = (
        "from ddx.config import Config\n"
        "from ddx.host import LiveHost\n"
        "from ddx.probes.runner import run_probes\n"
        "c = run_probes(LiveHost(), Config(), only=['kernel'], window=0.0)\n"
        "r = c.results[0]\n"
        "print(r.status, len(c.findings), {e.source for f in c.findings for e in f.evidence})\n"
        "print(r.reason)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(SRC), "LC_ALL": "C"}
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60,
                          user="nobody", env=env, cwd="/", check=False)
    if proc.returncode != 0 and "Permission denied" in proc.stderr and "ddx" in proc.stderr:
        pytest.skip("the source tree is not readable by nobody")
    assert proc.returncode == 0, proc.stderr
    status = proc.stdout.split()[0]
    if status == "denied":
        assert proc.stdout.split()[1] == "0"
        assert "dmesg" in proc.stdout
    else:  # a readable journal is an honest source too
        assert status == "ok" and "journalctl -k" in proc.stdout


@pytest.mark.root
def test_recorded_bundle_replays_to_the_same_findings(tmp_path: Path) -> None:
    from ddx.host import BundleHost, RecordingHost

    rec = RecordingHost(LiveHost())
    live = run_probes(rec, Config(), only=["kernel"], window=0.0)
    path = rec.save(str(tmp_path / "kernel"), live)
    replay = run_probes(BundleHost(path), Config(), only=["kernel"], window=0.0)
    assert [r.status for r in replay.results] == [r.status for r in live.results] == ["ok"]
    assert [f.to_dict() for f in replay.findings] == [f.to_dict() for f in live.findings]


# A program that names itself (the kernel's OOM line says the task's comm) and touches more
# memory than its cgroup allows: the OOM killer kills it.
_HOG = """\
import ctypes, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME
held = b"x" * (96 << 20)
"""


@pytest.mark.root
@pytest.mark.slow
@pytest.mark.kernel_log
def test_live_a_job_rerun_into_its_memory_limit_is_oom_killed_again_and_again() -> None:
    """A real cgroup with a 32 MiB limit; the same job run three times is OOM-killed three
    times, a new process each time. Writes those OOM lines to the kernel log."""
    from ddx.drill.sandbox import Sandbox
    from ddx.drill.scenarios.capacity import set_memory_limit

    name = f"ddxoom{uuid.uuid4().hex[:6]}"
    with Sandbox("test-kernel-oom") as sb:
        cg = sb.memory_cgroup
        if cg is None:
            pytest.skip("no memory cgroup controller here")
        set_memory_limit(cg, 32 << 20)
        if (cg / "memory.swap.max").exists():
            (cg / "memory.swap.max").write_text("0")
        since = time.time()
        time.sleep(0.05)  # the printk clock and /proc/uptime differ by a few ms
        for _ in range(3):
            proc = sb.spawn([sys.executable, "-c", _HOG, name])
            assert proc.wait(timeout=30) == -9, "the job was not OOM-killed"
    status, found = _kernel(since - 1)
    assert status == "ok"
    rep = found["memory.oom_kills_repeated"]
    assert rep.state is State.PRESENT and f"{name} OOM-killed 3 times" in rep.evidence[0].summary, rep.evidence[0]


def test_io_errors_of_a_device_nothing_uses_are_not_the_hosts_storage_failing() -> None:
    log = _log((-60, "blk_update_request: I/O error, dev fd0, sector 0 op 0x0:(READ) flags 0x0"))
    got = _by_id(judge(log, since=NOW - 3600, devices=frozenset({"vda1", "vda"})))
    present, ev = got["disk.io_errors"]
    assert present is False and "devices that back no mounted filesystem or swap (fd0)" in ev.summary
    got = _by_id(judge(_log((-60, "blk_update_request: I/O error, dev vda, sector 2048 op 0x1:(WRITE)")),
                       since=NOW - 3600, devices=frozenset({"vda1"})))
    assert got["disk.io_errors"][0] is True  # the disk under a mounted partition
    got = _by_id(judge(log, since=NOW - 3600, devices=None))
    assert got["disk.io_errors"][0] is True  # usage unknown: counted


def test_crashes_of_two_programs_count_together_only_within_ten_minutes() -> None:
    """A chain of crashes a few minutes apart is not one window: a report job crashing every
    three minutes next to a crash half an hour ago is no 'several programs at once'."""
    lines = [(-1800.0, "thumbnailer[100]: segfault at 0 ip 0 sp 0 error 4 in thumbnailer[1000+1000]")]
    lines += [(-1800.0 + 180 * i, f"report-export[{200 + i}]: segfault at 0 ip 0 sp 0 error 4 in x[1000+1000]")
              for i in range(4, 11)]
    got = _by_id(judge(_log(*lines), since=NOW - 3600))
    assert got["procs.segfaults_multiple_binaries"][0] is False
    lines.append((-60.0, "nightly-report[300]: segfault at 0 ip 0 sp 0 error 4 in y[1000+1000]"))
    present, ev = _by_id(judge(_log(*lines), since=NOW - 3600))["procs.segfaults_multiple_binaries"]
    assert present and "nightly-report" in ev.summary and "thumbnailer" not in ev.summary
