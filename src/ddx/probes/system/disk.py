"""disk: space and inodes per real filesystem, read-only remounts, growth over
the sampling window, I/O latency, and array members slower than their peers.

Which filesystems count ("real" ones, the ones services write to):

- skipped by type: kernel pseudo filesystems (proc, sysfs, cgroup, devtmpfs,
  devpts, debugfs, ...), read-only images (squashfs snaps, iso9660), lxcfs and
  snapfuse; ``overlay`` except when it is ``/`` (a container's root: the other
  overlay mounts are container roots seen from the host, whose space is the
  filesystem holding /var/lib/docker, checked on its own);
- skipped by place: anything under /proc, /sys, /run/user (per-user tmpfs),
  /run/credentials (systemd credentials: read-only and full by design), /snap;
- tmpfs elsewhere counts (/tmp, /dev/shm, /run, an application's cache):
  services write there too and a full /dev/shm breaks PostgreSQL as surely as a
  full disk;
- space and inodes are judged only on writable mounts: a read-only filesystem
  is not written to, so its free space says nothing;
- bind mounts of one filesystem are reported once (shortest mount point).

Read-only remount: ``/proc/mounts`` ``ro`` alone does not tell a kernel remount
from a filesystem mounted read-only on purpose (an image, a ``mount -o ro``).
The probe calls it a remount when (a) the superblock is read-only
(``ro``/``emergency_ro`` in mountinfo's super options) while the mount itself
is read-write: what the kernel does on ``errors=remount-ro`` or an aborted
journal; or (b) the mount is read-only now but ``/etc/fstab`` or the
``expect_rw`` option says it should be read-write. A mount that is read-only
at both levels and not expected read-write is taken as intended. The kernel log
line "Remounting filesystem read-only" is the kernel probe's evidence.

I/O: latency from /proc/diskstats deltas over the window (time spent per
completed request, and requests in flight that never complete), plus PSI io.
A long wait per request counts only when tasks are held up by it: where the
kernel has PSI, tasks must have stalled on I/O for ``io_psi_some_percent`` both
over the window and over PSI's last 10 s. A writeback burst (a database
initialising, a package install flushing) queues requests for hundreds of
milliseconds for a second or two while nothing waits on them; a saturated or
failing disk holds tasks back for as long as it lasts. Without PSI the wait
alone decides. PSI io "full" (every non-idle task stalled) counts on its own,
again over both the window and the last 10 s. I/O *errors* are the kernel
probe's.

Array members: the members of an md RAID array or of a volume striped or
mirrored over several disks (``/sys/block/HOLDER/slaves``) share its load, so
one that takes ``member_slow_factor`` times its peers' median per request (and
at least ``io_await_ms``), or whose requests never complete while theirs do, is
failing, not busy: ``disk.array_member_slow``. A disk failing slowly retries
inside before it answers, long before the kernel logs an error. Without such
devices, or with too little I/O to compare, the finding stays unknown.

Growth: free space is read at the start, the middle and the end of the window.
A filesystem grows fast when, at the rate of the whole window, it fills within
``growth_horizon_seconds`` and each half took at least ``growth_held_share`` of
the growth: a writer that keeps going fills both halves, a one-off burst (a
database creating its files, a package unpacking) only one. Bundles recorded
before the middle read existed replay its end read in its place, so growth in
them does not count.
"""

from __future__ import annotations

from ddx.host import Host, VfsResult, call_timeout, parallel_map
from ddx.model import Evidence, Finding
from ddx.probes.base import ProbeContext, probe
from ddx.probes.parsers.diskstats import (
    DiskStat,
    array_members,
    io_latency,
    is_partition,
    parse_diskstats,
    slow_members,
)
from ddx.probes.parsers.mounts import (
    PSEUDO_TYPES,
    SKIP_PREFIXES,
    Mount,
    parse_fstab,
    parse_mountinfo,
    parse_mounts,
    real_filesystems,
)
from ddx.probes.parsers.psi import held_pressure, read_psi, window_pressure
from ddx.units import size

__all__ = ["DiskStat", "disk", "io_latency", "is_partition", "parse_diskstats"]

MB = 1 << 20


def _pct(part: float, total: float) -> float:
    return 100.0 * part / total if total else 0.0


@probe(
    "disk",
    findings=(
        "disk.space_exhausted",
        "disk.space_low",
        "disk.space_growing_fast",
        "disk.inodes_exhausted",
        "disk.readonly_remount",
        "disk.io_latency_high",
        "disk.array_member_slow",
    ),
    timeout=3.0,
    options={
        # findings.yaml: "below 1% free" makes a filesystem exhausted.
        "space_exhausted_percent": 1.0,
        # "or a few MB free": on a filesystem already above space_low_percent,
        # less than this is exhausted too (a log rotation or a temp file no longer fits).
        "space_exhausted_bytes": 8 * MB,
        # findings.yaml: "above 90% full"; also the usual df alert threshold.
        "space_low_percent": 90.0,
        # The same rule as space: below 1% of inodes left.
        "inodes_exhausted_percent": 1.0,
        # findings.yaml: "fills within the next hour" at the rate seen in the window.
        "growth_horizon_seconds": 3600.0,
        # Growth below this in the window is journal/atime noise, not a trend.
        "growth_min_bytes": 1 * MB,
        # Each half of the window must take at least this share of the growth: a burst (a
        # database initialising, a package unpacking) lands in one half, a filling disk in both.
        "growth_held_share": 0.25,
        # Per mount: a live filesystem answers statvfs in microseconds, a dead NFS never.
        "statvfs_timeout": 1.0,
        # findings.yaml: "await in the hundreds of ms"; SSDs answer in ~1 ms, disks in ~10-20 ms.
        "io_await_ms": 100.0,
        # Fewer requests than this in the window are too few to judge latency.
        "io_min_requests": 5,
        # A member of a RAID array or multi-disk volume this many times slower per request than
        # the median of its peers (and above io_await_ms) is failing: the members share the load.
        "member_slow_factor": 5.0,
        # PSI io "full": share of time all non-idle tasks waited on I/O, over the window and
        # over the last 10 s (the lower of the two); 10% is a sustained stall.
        "io_psi_full_percent": 10.0,
        # PSI io "some", judged the same way: a long await counts only when tasks stalled on
        # I/O at least this share of the time (a writeback burst nobody waits on does not).
        "io_psi_some_percent": 10.0,
        # Mount points that must be read-write (besides those /etc/fstab mounts rw).
        "expect_rw": [],
        # Filesystem types that are not storage services write to (kernel pseudo
        # filesystems, read-only images); see the module docstring.
        "skip_types": list(PSEUDO_TYPES),
        # Mount points under these are skipped (per-user and credential tmpfs, snaps).
        "skip_prefixes": list(SKIP_PREFIXES),
    },
)
def disk(ctx: ProbeContext) -> list[Finding]:
    """Filesystem space, inodes, read-only remounts, growth, I/O latency."""
    host = ctx.host
    try:
        mounts = parse_mountinfo(host.read_text("/proc/self/mountinfo"))
        mount_src = "/proc/self/mountinfo"
    except FileNotFoundError:
        mounts = parse_mounts(host.read_text("/proc/mounts"))
        mount_src = "/proc/mounts"
    try:
        fstab = parse_fstab(host.read_text("/etc/fstab", max_bytes=1 << 20))
    except (FileNotFoundError, PermissionError, LookupError):
        fstab = {}
    fss = real_filesystems(mounts, ctx.opt("skip_types"), ctx.opt("skip_prefixes"))
    findings: list[Finding] = []
    findings.append(_readonly(ctx, fss, fstab, mount_src))

    writable = [m for m in fss if m.writable]
    points = [m.point for m in writable]
    t_vfs = float(ctx.opt("statvfs_timeout"))
    vfs0 = _statvfs_all(host, points, points, t_vfs)
    try:
        disk0 = parse_diskstats(host.read_text("/proc/diskstats"))
    except (FileNotFoundError, PermissionError, LookupError):
        disk0 = None
    psi0 = read_psi(host, "io") if ctx.window > 0 else None
    arrays = array_members(host) if disk0 is not None else {}
    t0 = host.time()
    dt = 0.0
    vfs_mid: list[VfsResult | BaseException] = []
    vfs1: list[VfsResult | BaseException] = []
    disk1 = None
    if ctx.window > 0:
        alive = [p for p, v in zip(points, vfs0, strict=True) if isinstance(v, VfsResult)]
        host.sleep(ctx.window / 2)
        vfs_mid = _statvfs_all(host, points, alive, t_vfs)
        host.sleep(ctx.window / 2)
        vfs1 = _statvfs_all(host, points, alive, t_vfs)
        if disk0 is not None:
            try:
                disk1 = parse_diskstats(host.read_text("/proc/diskstats"))
            except (FileNotFoundError, PermissionError, LookupError):
                disk1 = None
        dt = host.time() - t0
        if dt <= 0:
            dt = ctx.window

    findings.extend(_space(ctx, writable, vfs0, vfs_mid, vfs1, dt))
    io = _io(ctx, disk0, disk1, psi0, dt)
    if io is not None:
        findings.append(io)
    if arrays and disk0 is not None and disk1 is not None and dt > 0:
        findings.extend(_members(ctx, arrays, disk0, disk1, dt))
    return findings


def _statvfs_all(host: Host, points: list[str], alive: list[str], timeout: float) -> list[VfsResult | BaseException]:
    """statvfs of the ``alive`` mount points (all of them at the window's start, then those that
    answered), in parallel, aligned with ``points``."""
    with call_timeout(timeout):
        got = dict(zip(alive, parallel_map(host.statvfs, alive, timeout + 0.2), strict=True))
    return [got.get(p, TimeoutError("not sampled")) for p in points]


def _readonly(ctx: ProbeContext, fss: list[Mount], fstab: dict[str, tuple[str, ...]], src: str) -> Finding:
    expect = {p.rstrip("/") or "/" for p in ctx.opt("expect_rw") if p}
    bad: list[Evidence] = []
    for m in fss:
        why = ""
        if m.super_ro and not m.mount_ro:
            flag = "emergency_ro" if "emergency_ro" in m.super_opts else "ro"
            why = f"filesystem went read-only underneath a read-write mount (superblock {flag})"
        elif m.mount_ro or m.super_ro:
            fst = fstab.get(m.point)
            if fst is not None and "ro" not in fst:
                why = "read-only, but /etc/fstab mounts it read-write"
            elif m.point in expect:
                why = "read-only, but expected read-write (expect_rw)"
        if why:
            bad.append(Evidence(src, f"{m.point} ({m.fstype} on {m.source}): {why}", value="ro", threshold="rw"))
    if bad:
        return ctx.finding("disk.readonly_remount", True, *bad)
    return ctx.finding(
        "disk.readonly_remount",
        False,
        Evidence(src, f"{len(fss)} filesystems checked, none remounted read-only"),
    )


def _space(
    ctx: ProbeContext,
    mounts: list[Mount],
    vfs0: list[VfsResult | BaseException],
    vfs_mid: list[VfsResult | BaseException],
    vfs1: list[VfsResult | BaseException],
    dt: float,
) -> list[Finding]:
    ex_pct = float(ctx.opt("space_exhausted_percent"))
    ex_bytes = int(ctx.opt("space_exhausted_bytes"))
    low_pct = float(ctx.opt("space_low_percent"))
    ino_pct = float(ctx.opt("inodes_exhausted_percent"))
    horizon = float(ctx.opt("growth_horizon_seconds"))
    min_growth = int(ctx.opt("growth_min_bytes"))
    held_share = float(ctx.opt("growth_held_share"))
    exhausted: list[Evidence] = []
    low: list[Evidence] = []
    inodes: list[Evidence] = []
    growing: list[Evidence] = []
    bursts: list[str] = []
    unread: list[str] = []
    checked = 0
    grown_checked = 0
    tightest: tuple[float, str] | None = None
    for i, m in enumerate(mounts):
        v = vfs0[i]
        if not isinstance(v, VfsResult):
            unread.append(f"{m.point} ({_why(v)})")
            continue
        if v.total <= 0:
            continue
        checked += 1
        src = f"statvfs {m.point}"
        free_pct = _pct(v.free, v.total)
        used_pct = 100.0 - free_pct
        where = f"{m.point} ({m.fstype} on {m.source})"
        if tightest is None or free_pct < tightest[0]:
            tightest = (free_pct, m.point)
        if free_pct < ex_pct or (v.free < ex_bytes and used_pct >= low_pct):
            exhausted.append(
                Evidence(
                    src,
                    f"{where}: {size(v.free)} free of {size(v.total)} ({free_pct:.1f}% free)",
                    value=round(free_pct, 2),
                    threshold=ex_pct,
                    unit="% free",
                )
            )
        elif used_pct >= low_pct:
            low.append(
                Evidence(
                    src,
                    f"{where}: {used_pct:.1f}% used, {size(v.free)} free of {size(v.total)}",
                    value=round(used_pct, 1),
                    threshold=low_pct,
                    unit="% used",
                )
            )
        if v.files > 0:
            ifree_pct = _pct(v.files_free, v.files)
            if ifree_pct < ino_pct:
                inodes.append(
                    Evidence(
                        src,
                        f"{where}: {v.files_free} of {v.files} inodes free ({ifree_pct:.1f}%)",
                        value=round(ifree_pct, 2),
                        threshold=ino_pct,
                        unit="% inodes free",
                    )
                )
        mid = vfs_mid[i] if i < len(vfs_mid) else None
        w = vfs1[i] if i < len(vfs1) else None
        if dt > 0 and isinstance(mid, VfsResult) and isinstance(w, VfsResult):
            grown_checked += 1
            grew = v.free - w.free
            if grew >= min_growth:
                rate = grew / dt
                eta = w.free / rate
                halves = (v.free - mid.free, mid.free - w.free)
                if eta >= horizon:
                    pass
                elif min(halves) < grew * held_share:
                    bursts.append(f"{m.point} took {size(grew)} in {dt:.1f}s, "
                                  f"{size(max(halves))} of it in one half")
                else:
                    growing.append(
                        Evidence(
                            src,
                            f"{where}: {size(rate)}/s written through both halves of {dt:.1f}s, "
                            f"full in about {eta / 60:.0f} min",
                            value=round(eta),
                            threshold=horizon,
                            unit="s to full",
                        )
                    )
    note = f"; could not read {', '.join(unread)}" if unread else ""
    tight = f"; least free: {tightest[1]} {tightest[0]:.1f}%" if tightest else ""
    summary = f"{checked} writable filesystems checked{tight}{note}"
    out: list[Finding] = []
    if checked == 0 and unread:
        raise TimeoutError(f"statvfs failed on every filesystem: {', '.join(unread)}")
    for fid, ev in (
        ("disk.space_exhausted", exhausted),
        ("disk.space_low", low),
        ("disk.inodes_exhausted", inodes),
    ):
        out.append(ctx.finding(fid, True, *ev) if ev else ctx.finding(fid, False, Evidence("statvfs", summary)))
    if growing:
        out.append(ctx.finding("disk.space_growing_fast", True, *growing))
    elif grown_checked:
        out.append(
            ctx.finding(
                "disk.space_growing_fast",
                False,
                Evidence(
                    "statvfs",
                    f"{grown_checked} filesystems sampled over {dt:.1f}s, none fills within {horizon / 60:.0f} min"
                    + (f" at a rate that held ({'; '.join(bursts)}: a burst, not a trend)" if bursts else ""),
                ),
            )
        )
    return out


def _why(exc: object) -> str:
    if isinstance(exc, TimeoutError):
        return "statvfs did not answer: hung mount?"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def _stall(psi: dict[str, dict[str, float]], psi0: dict[str, dict[str, float]] | None, line: str,
           dt: float) -> tuple[float, str]:
    """PSI io ``line`` that holds (``held_pressure``: not a blip, nor a stall that ended
    seconds ago), with the words for it."""
    avg10 = psi.get(line, {}).get("avg10", 0.0)
    now = window_pressure(psi0, psi, dt, line)
    words = f"{avg10:.1f}% of the last 10 s" if now is None else \
        f"{now:.1f}% of the {dt:.1f}s window, {avg10:.1f}% of the last 10 s"
    return held_pressure(psi, now, line) or 0.0, words


def _members(ctx: ProbeContext, arrays: dict[str, list[str]], disk0: dict[str, DiskStat],
             disk1: dict[str, DiskStat], dt: float) -> list[Finding]:
    slow, compared = slow_members(
        arrays, disk0, disk1, dt,
        await_ms=float(ctx.opt("io_await_ms")),
        factor=float(ctx.opt("member_slow_factor")),
        min_requests=int(ctx.opt("io_min_requests")),
    )
    src = "/proc/diskstats"
    if slow:
        ev = []
        for s in slow:
            peers = ", ".join(f"{n} {p.ms:.0f} ms" for n, p in sorted(s.peers.items()))
            mine = (f"requests in flight, none completed in {dt:.1f}s" if s.requests.stuck else
                    f"{s.requests.ms:.0f} ms per request over {s.requests.ops} requests")
            ev.append(Evidence(src, f"{s.member} (member of {s.holder}): {mine}; its peers under the same load: {peers}",
                               value="stuck" if s.requests.stuck else round(s.requests.ms, 1),
                               threshold=round(max(s.peers_ms, 1.0) * float(ctx.opt("member_slow_factor")), 1),
                               unit="ms"))
        return [ctx.finding("disk.array_member_slow", True, *ev)]
    if not compared:
        return []  # arrays, but too little I/O in the window to compare their members: unknown
    names = ", ".join(f"{h} ({', '.join(m)})" for h, m in arrays.items())
    return [ctx.finding("disk.array_member_slow", False,
                        Evidence(src, f"the members of {names} answer alike over {dt:.1f}s"))]


def _io(ctx: ProbeContext, disk0: dict[str, DiskStat] | None, disk1: dict[str, DiskStat] | None,
        psi0: dict[str, dict[str, float]] | None, dt: float) -> Finding | None:
    await_ms = float(ctx.opt("io_await_ms"))
    min_req = int(ctx.opt("io_min_requests"))
    psi_full = float(ctx.opt("io_psi_full_percent"))
    psi_some = float(ctx.opt("io_psi_some_percent"))
    stuck: list[Evidence] = []
    waits: list[Evidence] = []
    looked = False
    summary = []
    if disk0 is not None and disk1 is not None and dt > 0:
        looked = True
        worst = None
        for name, lat, ops, hung in io_latency(disk0, disk1, dt):
            if hung:
                stuck.append(
                    Evidence(
                        "/proc/diskstats",
                        f"{name}: {disk1[name].in_flight} requests in flight, none completed in {dt:.1f}s",
                        value="stuck",
                        threshold=await_ms,
                        unit="ms",
                    )
                )
            elif ops >= min_req and lat >= await_ms:
                waits.append(
                    Evidence(
                        "/proc/diskstats",
                        f"{name}: {lat:.0f} ms per request over {ops} requests in {dt:.1f}s",
                        value=round(lat, 1),
                        threshold=await_ms,
                        unit="ms",
                    )
                )
            if ops and (worst is None or lat > worst[1]):
                worst = (name, lat)
        summary.append(f"worst await {worst[0]} {worst[1]:.1f} ms" if worst else "no disk requests in the window")
    slow = list(stuck)
    psi = read_psi(ctx.host, "io")
    if psi is not None and "full" in psi:
        looked = True
        full, full_words = _stall(psi, psi0, "full", dt)
        some, some_words = _stall(psi, psi0, "some", dt)
        if full >= psi_full:
            slow.append(Evidence("/proc/pressure/io", f"all non-idle tasks stalled on I/O {full_words}",
                                 value=round(full, 2), threshold=psi_full, unit="%"))
        if waits and some >= psi_some:
            slow.extend(waits)
            slow.append(Evidence("/proc/pressure/io", f"tasks stalled on I/O {some_words}",
                                 value=round(some, 2), threshold=psi_some, unit="%"))
        elif waits:
            summary = [f"{e.summary}, but tasks stalled on I/O only {some_words}: a burst no one waited on"
                       for e in waits]
        else:
            summary.append(f"PSI io full {full_words}")
    else:
        slow.extend(waits)
    if not looked:
        return None
    if slow:
        return ctx.finding("disk.io_latency_high", True, *slow)
    return ctx.finding("disk.io_latency_high", False, Evidence("/proc/diskstats", "; ".join(summary)))
