"""Kernel-log lines: parse the formats the log comes in, classify what they say.

Pure functions on text, no I/O: the kernel probe (``ddx.probes.system.kernel``) reads
the log and feeds it here, tests feed samples.

Three input formats, all turned into ``KernelLine`` (epoch time + message):

- ``dmesg -r``: ``<6>[ 4037.033603] python3[4910]: segfault at 0 ...``; the
  time is seconds since boot on the printk clock, converted with the boot time
  (``now - /proc/uptime``). The printk clock stops during suspend, so on a
  laptop-style host that suspended, converted times come out too early.
- ``/dev/kmsg`` records: ``6,345,4036862845,-;message`` (microseconds since
  boot), continuation lines (`` SUBSYSTEM=...``) ignored.
- ``journalctl -k -o short-unix``: ``1795325997.033651 host kernel: message``.

``classify`` maps one message to the findings it is evidence of. The patterns
are the kernel's own wording (with the variants of older and newer kernels)
and deliberately skip the look-alike boot messages (``EDAC MC: Ver: 3.0.0``,
``AER: enabled with IRQ``, ``mounted filesystem ... ro``) that report no fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "KernelEvent",
    "KernelLine",
    "boot_epoch",
    "classify",
    "parse_dmesg_raw",
    "parse_journal_short_unix",
    "parse_kmsg",
    "program_key",
]


@dataclass(frozen=True)
class KernelLine:
    """One kernel-log message. ``time`` is epoch seconds, None when unknown."""

    time: float | None
    text: str


@dataclass(frozen=True)
class KernelEvent:
    """What one line is evidence of: a finding id and its subject (program,
    device, port, cgroup; "" when the line names none)."""

    finding: str
    subject: str = ""
    pid: int | None = None


def boot_epoch(uptime_text: str, now: float) -> float:
    """Wall-clock boot time from ``/proc/uptime`` text and the time it was read."""
    try:
        return now - float(uptime_text.split()[0])
    except (IndexError, ValueError):
        raise ValueError(f"/proc/uptime: unexpected content {uptime_text[:40]!r}") from None


_DMESG_RAW = re.compile(r"^(?:<(\d+)>)?\[\s*(\d+(?:\.\d+)?)\]\s?(.*)$")


def parse_dmesg_raw(text: str, boot: float) -> list[KernelLine]:
    """``dmesg -r`` (or plain ``dmesg``) output. Lines without a ``[seconds]``
    stamp get no time (they cannot be placed in the window)."""
    out: list[KernelLine] = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        m = _DMESG_RAW.match(raw)
        if m:
            out.append(KernelLine(boot + float(m.group(2)), m.group(3)))
        else:
            out.append(KernelLine(None, re.sub(r"^<\d+>", "", raw)))
    return out


_KMSG = re.compile(r"^(\d+),(\d+),(\d+),[^;]*;(.*)$")


def parse_kmsg(text: str, boot: float) -> list[KernelLine]:
    """Records read from ``/dev/kmsg`` (one per line, dictionary continuation
    lines starting with a space are skipped)."""
    out: list[KernelLine] = []
    for raw in text.splitlines():
        if not raw or raw[0] == " ":
            continue
        m = _KMSG.match(raw)
        if m:
            out.append(KernelLine(boot + int(m.group(3)) / 1e6, m.group(4)))
    return out


_JOURNAL = re.compile(r"^(\d+(?:\.\d+)?)\s+\S+\s+(.*)$")


def parse_journal_short_unix(text: str) -> list[KernelLine]:
    """``journalctl -k -o short-unix`` output; ``-- ... --`` marker lines skipped.
    The ``kernel: `` identifier is removed so the message reads as in dmesg."""
    out: list[KernelLine] = []
    for raw in text.splitlines():
        if not raw.strip() or raw.startswith("--"):
            continue
        m = _JOURNAL.match(raw)
        if not m:
            continue
        out.append(KernelLine(float(m.group(1)), m.group(2).removeprefix("kernel: ")))
    return out


# --- classification -------------------------------------------------------

_I = re.IGNORECASE

_HARDWARE = [
    re.compile(r"\[Hardware Error\]"),  # MCE records and APEI/GHES ("{1}[Hardware Error]: ...")
    # "Hardware error from APEI ...", "GHES: Fatal hardware error"; a SCSI
    # "Sense Key : Hardware Error" is the disk's own report: disk.io_errors.
    re.compile(r"(?<!Sense Key : )\bhardware error\b", _I),
    re.compile(r"\bMachine check events logged\b", _I),
    re.compile(r"\bMachine Check Exception\b", _I),
    re.compile(r"\bMCE: Killing \S+ due to hardware memory corruption"),
    re.compile(r"^Memory failure: "),  # poisoned page handling (memory-failure.c)
    re.compile(r"\bEDAC\b.*\b(?:CE|UE)\b"),  # "EDAC MC0: 1 CE memory read error on ...", old "EDAC MC0: CE page ..."
    re.compile(r"\bEDAC\b.*\b(?:memory error|(?:un)?correct(?:ed|able) error)", _I),
    re.compile(r"\bAER: .*\berror\b", _I),  # "AER: Corrected error received: ...", not "AER: enabled with IRQ"
    re.compile(r"\bPCIe Bus Error\b"),
]

_BLOCK_DEV = re.compile(
    r"(?:\bdev(?:ice)?\s+|\(|\[)((?:sd|vd|xvd|hd|nvme|mmcblk|dm-|md|loop|nbd|rbd|sr|fd)[\w-]*)"
)

_IO = [
    re.compile(r"\bI/O error\b", _I),  # blk_update_request/print_req_error/Buffer I/O error/XFS metadata
    re.compile(r"\berror, dev \S+, sector \d+"),  # "critical medium error, dev sdb, sector 0", "timeout error, dev ..."
    re.compile(r"Sense Key : (?:Medium|Hardware) Error"),
    re.compile(r"\bata\d+(?:\.\d+)?: .*\{ ?(?:UNC|IDNF|AMNF|ICRC)\b"),
    re.compile(r"\bnvme\S*: I/O \d+ QID \d+ timeout"),
    # A disk that is failing slowly times out and is reset before (or instead of) an I/O error:
    # libata names the data command that failed (not the ATAPI probes or log reads at boot),
    # SCSI a command the host adapter gave up on, NVMe a controller that stopped answering.
    re.compile(r"\bata\d+(?:\.\d+)?: failed command: (?:READ|WRITE|FLUSH)\b(?! LOG)"),
    re.compile(r"\bFAILED Result: hostbyte=DID_(?:TIME_OUT|ERROR|ABORT|BAD_TARGET|NO_CONNECT|RESET)\b"),
    re.compile(r"\btiming out command, waited \d+s"),
    re.compile(r"\bnvme\S*: controller is down; will reset\b"),
]

_READONLY = [
    re.compile(r"remounting (?:the )?file ?system read-?only", _I),
    re.compile(r"\bforced read-?only\b", _I),  # btrfs
    re.compile(r"\bEXT\d-fs error\b.*\bread-?only\b", _I),
]
_FS_DEV = re.compile(r"\((?:device )?([^)\s:]+)")

_OOM = re.compile(r"(?:Out of memory|out of memory): Kill(?:ed)? process (\d+) \((.*?)\)")

_SEGV = re.compile(
    r"^(?:traps: )?(?P<name>.+?)\[(?P<pid>\d+)\]:? "
    r"(?:segfault at|general protection|trap |bus error|unhandled [\w ]*?(?:fault|exception))"
)
_FATAL_SIGNAL = re.compile(r"^(?P<name>.+?)/(?P<pid>\d+): potentially unexpected fatal signal (?:4|7|8|11)\b")
# audit ANOM_ABEND records (kauditd writes them to the kernel log when no
# auditd runs); only the crash signals: SIGILL, SIGBUS, SIGFPE, SIGSEGV.
_AUDIT_ABEND = re.compile(r'\btype=1701\b.*?\bpid=(?P<pid>\d+)\b.*?\bcomm="(?P<name>[^"]*)".*?\bsig=(?:4|7|8|11)\b')

_HUNG = re.compile(r"\btask (?P<name>.+?):(?P<pid>\d+) blocked for more than \d+ seconds")
_SYN = re.compile(r"Possible SYN flooding on port (\S+?)\.(?:\s|$)")
_CONNTRACK = re.compile(r"conntrack: table full, dropping packet")
_TIME_JUMP = [
    re.compile(r"\bClock: (?:inserting|deleting) leap second\b"),
    re.compile(r"\bSystem clock was stepped by\b"),  # chronyd
    re.compile(r"\btime (?:reset|step(?:ped)?) [-+]?\d", _I),  # ntpd "time reset +3.2 s"
    re.compile(r"\bTime has been (?:set|changed)\b"),  # systemd
    re.compile(r"\bclock (?:was )?stepped\b", _I),
]
_FORK = re.compile(r"fork rejected by pids controller(?: in (\S+))?")
# The kernel's own bugs: an oops, BUG()/BUG_ON, a kernel-mode general protection fault (a
# user program's GPF reads "traps: prog[pid] general protection fault" and is a crash of
# that program, see _SEGV), soft and hard lockups, RCU stalls, a panic. WARN() lines are
# left out: drivers print them for harmless surprises on ordinary hosts.
_OOPS = [
    re.compile(r"\bBUG: (?:unable to handle|kernel NULL pointer|soft lockup|scheduling while atomic|workqueue lockup"
               r"|Bad page|sleeping function called|spinlock|KASAN|KFENCE|Bad rss-counter)"),
    re.compile(r"\bkernel BUG at \S+"),
    re.compile(r"^Oops: .*\[#\d+\]|^Oops: \d{4}\b"),
    re.compile(r"^general protection fault\b"),
    re.compile(r"\brcu(?:_\w+)?:? .*\bdetected stalls?\b|\bself-detected stall on CPU\b"),
    re.compile(r"\bhard LOCKUP\b"),
    re.compile(r"\bKernel panic - not syncing\b"),
]


def _first(patterns: list[re.Pattern[str]], text: str) -> bool:
    return any(p.search(text) for p in patterns)


def classify(text: str) -> list[KernelEvent]:
    """The findings one kernel message is evidence of (usually none, at most
    one event per finding)."""
    events: list[KernelEvent] = []
    if _first(_HARDWARE, text):
        events.append(KernelEvent("kernel.hardware_error"))
    if _first(_IO, text):
        m = _BLOCK_DEV.search(text)
        events.append(KernelEvent("disk.io_errors", m.group(1) if m else ""))
    if _first(_READONLY, text):
        m = _FS_DEV.search(text)
        events.append(KernelEvent("disk.readonly_remount", m.group(1) if m else ""))
    m = _OOM.search(text)
    if m:
        events.append(KernelEvent("memory.oom_kill", m.group(2), int(m.group(1))))
    m = _SEGV.match(text) or _FATAL_SIGNAL.match(text) or _AUDIT_ABEND.search(text)
    if m:
        events.append(KernelEvent("procs.segfault", m.group("name"), int(m.group("pid"))))
    if _first(_OOPS, text):
        events.append(KernelEvent("kernel.oops"))
    m = _HUNG.search(text)
    if m:
        events.append(KernelEvent("kernel.hung_task", m.group("name"), int(m.group("pid"))))
    m = _SYN.search(text)
    if m:
        events.append(KernelEvent("kernel.syn_flood_warning", m.group(1)))
    if _CONNTRACK.search(text):
        events.append(KernelEvent("kernel.conntrack_full"))
    if _first(_TIME_JUMP, text):
        events.append(KernelEvent("time.jump"))
    m = _FORK.search(text)
    if m:
        events.append(KernelEvent("procs.fork_failures", m.group(1) or ""))
    return events


_THREAD_SUFFIX = re.compile(r"[-_:#/. ]\d+$")


def program_key(name: str) -> str:
    """The name segfault lines are grouped by. The kernel prints the crashing
    *thread's* name, so ``worker-1`` and ``worker-2`` (or ``GC Thread#0`` and
    ``GC Thread#3``) are one program; ``python3`` stays ``python3``."""
    key = name.strip()
    while True:
        new = _THREAD_SUFFIX.sub("", key)
        if new == key or not new:
            return key
        key = new
