"""Clock: is the system clock synchronised, and how far off is it?

Sources, first that answers wins (a time daemon knows the offset, the kernel
only knows whether someone disciplines the clock):

1. ``chronyc -c tracking`` (chronyd): leap status and the current offset;
2. ``ntpq -c rv`` (ntpd): leap indicator, sync source, offset;
3. ``timedatectl show`` (systemd-timesyncd and friends): ``NTP=yes`` says a
   sync service is enabled, ``NTPSynchronized`` whether it has synchronised;
4. the kernel's own state, ``adjtimex(2)`` with modes 0 (read-only): the
   ``STA_UNSYNC`` status bit and the maximum error.

Rule for ``time.unsynchronized``: present when a daemon says it is not
synchronised or its offset is above ``max_offset_s`` (1 s, the finding's
definition). When no daemon answers, the kernel's ``STA_UNSYNC`` bit is all
there is: the kernel sets it itself once nothing has corrected the clock for
hours (maximum error grown to 16 s, the rule of node_exporter's
HostClockNotSynchronising alert). Many VMs run no time daemon and keep a good
clock from the hypervisor (kvm-clock), so the bit alone does not say the clock
is wrong: by default the finding then stays unknown and the probe reports
``not_applicable`` with the reason; set ``kernel_flag_counts = true`` to count
the bit as present. A clear bit (someone disciplines the clock, e.g. a
container's host) is reported absent.

The Host interface has no adjtimex call, so the probe runs a two-line Python
program that makes it (``python3 -c``); a bundle records its output like any
command.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from ddx.errors import ProbeError
from ddx.host import Host
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe

__all__ = [
    "ClockState",
    "KernelClock",
    "clock",
    "judge",
    "parse_adjtimex",
    "parse_chronyc_tracking",
    "parse_ntpq_rv",
    "parse_timedatectl",
]

FINDING = "time.unsynchronized"
STA_UNSYNC = 0x0040
STA_NANO = 0x2000
NTP_PHASE_LIMIT_US = 16_000_000  # the kernel caps maxerror here and sets STA_UNSYNC
CMD_TIMEOUT = 2.0

# Reads the kernel clock state with adjtimex(2), modes=0 (read-only). struct
# timex is declared field by field so ctypes lays it out as the C ABI does.
ADJTIMEX_PROGRAM = (
    "import ctypes as c\n"
    "L=c.c_long\n"
    "class T(c.Structure):_fields_=[('modes',c.c_uint),('offset',L),('freq',L),('maxerror',L),"
    "('esterror',L),('status',c.c_int),('constant',L),('precision',L),('tolerance',L),"
    "('sec',L),('usec',L),('tick',L),('ppsfreq',L),('jitter',L),('shift',c.c_int),('stabil',L),"
    "('jitcnt',L),('calcnt',L),('errcnt',L),('stbcnt',L),('tai',c.c_int),('pad',c.c_int*16)]\n"
    "t=T();lib=c.CDLL(None,use_errno=True);r=lib.adjtimex(c.byref(t))\n"
    "print('adjtimex',r,c.get_errno() if r<0 else 0,t.status,t.maxerror,t.esterror,t.offset)\n"
)


@dataclass(frozen=True)
class ClockState:
    """What a time daemon says. ``offset`` in seconds (None when not shown)."""

    source: str
    synchronised: bool
    offset: float | None
    detail: str


@dataclass(frozen=True)
class KernelClock:
    """The kernel's clock state from adjtimex (microseconds)."""

    status: int
    maxerror_us: int
    esterror_us: int
    state: int  # return value: 0 TIME_OK ... 5 TIME_ERROR

    @property
    def unsync(self) -> bool:
        return bool(self.status & STA_UNSYNC)


# --- parsers --------------------------------------------------------------


def parse_chronyc_tracking(text: str) -> ClockState | None:
    """``chronyc -c tracking``: one CSV line; field 5 the system clock's offset
    from NTP time (seconds), the last field the leap status."""
    for line in text.splitlines():
        f = line.strip().split(",")
        if len(f) < 14:
            continue
        try:
            stratum = int(f[2])
            offset = float(f[4])
        except ValueError:
            continue
        leap = f[13].strip()
        synced = leap != "Not synchronised" and stratum > 0 and f[0].strip("0") != ""
        detail = f"chronyc: reference {f[1] or f[0]}, stratum {stratum}, leap status {leap}, offset {offset:+.6f}s"
        return ClockState("chronyc -c tracking", synced, offset, detail)
    return None


def parse_ntpq_rv(text: str) -> ClockState | None:
    """``ntpq -c rv``: ``leap=11`` (alarm) or ``sync_unspec`` in the status
    mean not synchronised; ``offset`` is in milliseconds."""
    flat = " ".join(text.split())
    leap = re.search(r"\bleap=(\d\d)\b", flat)
    if leap is None and "status=" not in flat:
        return None
    stratum = re.search(r"\bstratum=(\d+)", flat)
    off = re.search(r"\boffset=([-+]?\d+(?:\.\d+)?)", flat)
    offset = float(off.group(1)) / 1000.0 if off else None
    unsynced = (
        (leap is not None and leap.group(1) == "11")
        or "sync_unspec" in flat
        or (stratum is not None and int(stratum.group(1)) >= 16)
    )
    detail = (
        f"ntpq: leap={leap.group(1) if leap else '?'}, stratum={stratum.group(1) if stratum else '?'}"
        + (f", offset {offset:+.6f}s" if offset is not None else "")
    )
    return ClockState("ntpq -c rv", not unsynced, offset, detail)


def parse_timedatectl(text: str) -> dict[str, str]:
    """``timedatectl show``: KEY=value lines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, val = line.partition("=")
        if sep:
            out[key.strip()] = val.strip()
    return out


def parse_adjtimex(text: str) -> KernelClock | None:
    """The output of ``ADJTIMEX_PROGRAM``: ``adjtimex RET ERRNO STATUS MAXERROR ESTERROR OFFSET``."""
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 6 and f[0] == "adjtimex":
            try:
                ret, _err, status, maxerr, esterr = (int(x) for x in f[1:6])
            except ValueError:
                return None
            if ret < 0:
                return None
            return KernelClock(status, maxerr, esterr, ret)
    return None


# --- judging --------------------------------------------------------------


def judge(
    daemon: ClockState | None,
    kernel: KernelClock | None,
    *,
    max_offset_s: float = 1.0,
    notes: tuple[str, ...] = (),
) -> tuple[bool, Evidence] | None:
    """Decide ``time.unsynchronized`` from a daemon's word, else the kernel's
    (None when neither is known). ``notes`` say which daemons did not answer."""
    tail = ("; " + "; ".join(notes)) if notes else ""
    if daemon is not None:
        off = daemon.offset
        big = off is not None and abs(off) > max_offset_s
        present = (not daemon.synchronised) or big
        if not daemon.synchronised:
            summary = "time daemon reports the clock not synchronised"
        elif big:
            summary = f"clock is {abs(off or 0):.3f}s off true time (limit {max_offset_s:g}s)"
        else:
            summary = "clock synchronised" + (f", offset {off:+.6f}s" if off is not None else "")
        return present, Evidence(
            source=daemon.source,
            summary=f"{summary} ({daemon.detail})",
            value=round(off, 6) if off is not None else ("unsynchronised" if not daemon.synchronised else None),
            threshold=max_offset_s if off is not None else None,
            unit="s" if off is not None else "",
        )
    if kernel is not None:
        maxerr_s = kernel.maxerror_us / 1e6
        if kernel.unsync:
            why = (
                "nothing has corrected it for hours (maximum error at the kernel's 16 s cap)"
                if kernel.maxerror_us >= NTP_PHASE_LIMIT_US
                else f"a time daemon marked it so (maximum error {maxerr_s:.3f}s)"
            )
            summary = (
                "no time daemon answered; the kernel marks the clock unsynchronised (STA_UNSYNC): "
                f"{why}; the real offset is unknown"
            )
        else:
            summary = (
                f"the kernel clock is synchronised (STA_UNSYNC clear, maximum error {maxerr_s:.3f}s); "
                "no time daemon answered here, so it is disciplined elsewhere (a container's host) "
                "or by a daemon ddx does not query"
            )
        return kernel.unsync, Evidence(
            source="adjtimex(2)",
            summary=summary + tail,
            value="STA_UNSYNC" if kernel.unsync else "synchronised",
        )
    return None


def _run(host: Host, argv: list[str]) -> tuple[str | None, str]:
    """stdout of a command that succeeded, else (None, why)."""
    try:
        r = host.run(argv, timeout=CMD_TIMEOUT)
    except FileNotFoundError:
        return None, f"{argv[0]}: not installed"
    except TimeoutError:
        return None, f"{argv[0]}: timed out"
    if r.returncode != 0:
        first = next((ln.strip() for ln in (r.stderr + "\n" + r.stdout).splitlines() if ln.strip()), "")
        return None, f"{' '.join(argv[:2])}: {first or f'exit status {r.returncode}'}"
    return r.stdout, ""


def read_daemon(host: Host) -> tuple[ClockState | None, list[str]]:
    """The first time daemon that answers, and why the others did not."""
    notes: list[str] = []
    out, why = _run(host, ["chronyc", "-c", "tracking"])
    if out is not None and (st := parse_chronyc_tracking(out)) is not None:
        return st, notes
    notes.append(why or "chronyc: unreadable output")
    out, why = _run(host, ["ntpq", "-c", "rv"])
    if out is not None and (st := parse_ntpq_rv(out)) is not None:
        return st, notes
    notes.append(why or "ntpq: unreadable output")
    out, why = _run(host, ["timedatectl", "show", "-p", "NTP", "-p", "NTPSynchronized"])
    if out is not None:
        kv = parse_timedatectl(out)
        if kv.get("NTP") == "yes" and "NTPSynchronized" in kv:
            synced = kv["NTPSynchronized"] == "yes"
            detail = f"timedatectl: NTP=yes, NTPSynchronized={kv['NTPSynchronized']}"
            return ClockState("timedatectl", synced, None, detail), notes
        no_ntp = kv.get("NTP") == "no"
        notes.append("timedatectl: no network time service enabled (NTP=no)" if no_ntp else "timedatectl: unreadable output")
    else:
        notes.append(why)
    return None, notes


def read_kernel_clock(host: Host) -> KernelClock | None:
    for python in ("python3", sys.executable):
        out, _ = _run(host, [python, "-c", ADJTIMEX_PROGRAM])
        if out is not None:
            return parse_adjtimex(out)
    return None


@probe(
    "clock",
    findings=(FINDING,),
    timeout=4.0,  # up to four short commands
    options={
        # Seconds off true time that count as unsynchronised (the finding's definition).
        "max_offset_s": 1.0,
        # With no time daemon, count the kernel's STA_UNSYNC bit as "unsynchronised"
        # (off by default: VMs without a daemon usually keep time from the hypervisor).
        "kernel_flag_counts": False,
    },
)
def clock(ctx: ProbeContext) -> list[Finding]:
    """Clock synchronisation: chrony, ntpd or timedatectl, else the kernel's STA_UNSYNC."""
    daemon, notes = read_daemon(ctx.host)
    kernel = None if daemon is not None else read_kernel_clock(ctx.host)
    verdict = judge(daemon, kernel, max_offset_s=float(ctx.opt("max_offset_s")), notes=tuple(notes))
    if verdict is None:
        raise ProbeError("clock state unknown: " + "; ".join([*notes, "adjtimex: could not be read"]))
    if daemon is None and verdict[0] and not ctx.opt("kernel_flag_counts"):
        raise NotApplicable(
            "no time daemon answers and the kernel only says nothing disciplines the clock (STA_UNSYNC); "
            "the offset is unknown (set [probe.clock] kernel_flag_counts = true to count this as unsynchronised)"
        )
    return [ctx.finding(FINDING, verdict[0], verdict[1])]
