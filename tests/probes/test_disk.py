"""disk: parsers on samples, the probe on a fixture tree, real faults on tmpfs."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ddx.host import BundleHost, LiveHost, VfsResult, build_bundle
from ddx.model import Finding, State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.parsers.diskstats import slow_members
from ddx.probes.parsers.mounts import (
    parse_fstab,
    parse_mountinfo,
    parse_mounts,
    real_filesystems,
    unescape_mount,
)
from ddx.probes.system.disk import (
    DiskStat,
    disk,
    io_latency,
    is_partition,
    parse_diskstats,
)

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24684084k
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
28 27 254:0 /srv /mnt/bind rw,relatime - ext4 /dev/vda rw,discard
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 27 7:1 / /snap/core/1 ro,nodev,relatime - squashfs /dev/loop1 ro
41 27 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b
42 27 7:0 / /data rw,relatime - ext4 /dev/loop0 rw,errors=remount-ro,emergency_ro
43 27 7:2 / /old ro,relatime - ext4 /dev/loop2 ro,errors=remount-ro
44 27 0:51 / /run/user/1000 rw,nosuid - tmpfs tmpfs rw,size=100k
45 27 0:52 / /mnt/my\\040cache rw,relatime - tmpfs tmpfs rw,size=1024k
46 27 0:53 / /media/iso ro,relatime - ext4 /dev/sdb1 ro
47 27 8:17 / /var/lib/pg rw,relatime - xfs /dev/sdb1 rw
48 27 0:54 / /var/lib/pg ro,relatime - xfs /dev/sdc1 ro
"""

FSTAB = """\
# /etc/fstab
UUID=1234 /          ext4 defaults,errors=remount-ro 0 1
/dev/sdc1 /var/lib/pg xfs  defaults 0 2
/dev/sdb1 /media/iso ext4 ro 0 0
/swapfile none swap sw 0 0
"""


def test_unescape_and_parse_mountinfo() -> None:
    assert unescape_mount(r"/mnt/my\040cache") == "/mnt/my cache"
    ms = parse_mountinfo(MOUNTINFO + "garbage line\n")
    assert len(ms) == MOUNTINFO.count("\n")
    data = next(m for m in ms if m.point == "/data")
    assert data.fstype == "ext4" and data.source == "/dev/loop0" and data.dev == "7:0"
    assert not data.mount_ro and data.super_ro and not data.writable
    assert next(m for m in ms if m.point == "/").writable


def test_parse_proc_mounts() -> None:
    ms = parse_mounts("/dev/vda / ext4 rw,relatime 0 0\ntmpfs /mnt/a\\040b tmpfs ro,size=4k 0 0\nshort\n")
    assert [(m.point, m.mount_ro) for m in ms] == [("/", False), ("/mnt/a b", True)]


def test_real_filesystems_rules() -> None:
    points = [m.point for m in real_filesystems(parse_mountinfo(MOUNTINFO))]
    # tmpfs services write to count; pseudo filesystems, snaps, per-user tmpfs,
    # host-side overlays and cgroup tmpfs do not; the bind mount of / is folded
    # into /, and the over-mounted /var/lib/pg is the visible (last) one.
    assert points == ["/", "/data", "/dev/shm", "/media/iso", "/mnt/my cache", "/old", "/var/lib/pg"]
    overlay_root = parse_mountinfo("1 0 0:9 / / rw - overlay overlay rw,lowerdir=/x\n")
    assert [m.point for m in real_filesystems(overlay_root)] == ["/"]


def test_parse_fstab() -> None:
    assert parse_fstab(FSTAB) == {
        "/": ("defaults", "errors=remount-ro"),
        "/var/lib/pg": ("defaults",),
        "/media/iso": ("ro",),
    }


DISKSTATS_A = """\
   7       0 loop0 10 0 80 5 0 0 0 0 0 4 5 0 0 0 0
 254       0 vda 1000 0 8000 2000 500 0 4000 1000 0 3000 3000 0 0 0 0
 254       1 vda1 900 0 7000 1900 400 0 3000 900 0 2800 2800 0 0 0 0
   8       0 sda 100 0 800 100 100 0 800 100 2 500 500
"""
DISKSTATS_B = """\
   7       0 loop0 9999 0 80 99999 0 0 0 0 0 4 5 0 0 0 0
 254       0 vda 1010 0 8100 4000 510 0 4100 3000 0 4000 5000 0 0 0 0
 254       1 vda1 910 0 7100 3900 410 0 3100 2900 0 3800 4800 0 0 0 0
   8       0 sda 100 0 800 100 100 0 800 100 2 1500 1500
"""


def test_diskstats_latency_and_stuck_requests() -> None:
    a, b = parse_diskstats(DISKSTATS_A), parse_diskstats(DISKSTATS_B)
    assert a["vda"] == DiskStat("vda", 1000, 2000, 500, 1000, 0, 3000)
    assert is_partition("vda1") and is_partition("nvme0n1p2") and not is_partition("nvme0n1")
    lat = {name: (ms, ops, stuck) for name, ms, ops, stuck in io_latency(a, b, 1.0)}
    assert "loop0" not in lat and "vda1" not in lat  # virtual devices and partitions skipped
    assert lat["vda"] == (200.0, 20, False)  # (2000 + 2000) ms over 20 requests
    assert lat["sda"] == (0.0, 0, True)  # 2 requests in flight, none done, busy all second


def _ctx(host, window: float = 0.0, **opts) -> ProbeContext:  # type: ignore[no-untyped-def]
    options = dict(registry["disk"].options)
    options.update(opts)
    return ProbeContext(host=host, config=options, window=window, probe_name="disk")


def _by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def _mentions(f: Finding, text: str) -> bool:
    """The finding is present and its evidence names ``text``."""
    return f.state is State.PRESENT and _says(f, text)


def _says(f: Finding, text: str) -> bool:
    return any(text in e.summary for e in f.evidence)


def test_probe_on_a_bundle_readonly_rules_and_exhaustion() -> None:
    full = VfsResult(total=100 << 30, free=50 << 20, files=1000, files_free=500, readonly=False)
    ok = VfsResult(total=100 << 30, free=60 << 30, files=1000, files_free=5, readonly=False)
    with tempfile.TemporaryDirectory() as d:
        path = build_bundle(
            d,
            files={
                "/proc/self/mountinfo": MOUNTINFO,
                "/etc/fstab": FSTAB,
                "/proc/diskstats": [DISKSTATS_A, DISKSTATS_B],
                "/proc/pressure/io": "some avg10=1.00 avg60=0 avg300=0 total=1\nfull avg10=0.50 avg60=0 avg300=0 total=1\n",
            },
            statvfs={"/": full, "/dev/shm": ok, "/mnt/my cache": ok},
            times=[1000.0, 1001.0],
        )
        got = _by_id(disk(_ctx(BundleHost(path), window=1.0)))
    ro = got["disk.readonly_remount"]
    assert ro.state is State.PRESENT
    assert _mentions(ro, "/data") and _mentions(ro, "emergency_ro")  # kernel forced it underneath
    assert _mentions(ro, "/var/lib/pg") and _mentions(ro, "fstab")  # fstab says rw
    assert not _mentions(ro, "/media/iso") and not _mentions(ro, "/old")  # read-only on purpose
    ex = got["disk.space_exhausted"]
    assert ex.state is State.PRESENT and _mentions(ex, "/ (ext4 on /dev/vda)")
    assert ex.evidence[0].value == pytest.approx(0.05, abs=0.01) and ex.evidence[0].threshold == 1.0
    assert got["disk.inodes_exhausted"].state is State.PRESENT
    assert _mentions(got["disk.inodes_exhausted"], "/dev/shm")
    assert got["disk.space_low"].state is State.ABSENT
    io = got["disk.io_latency_high"]
    assert io.state is State.PRESENT and _mentions(io, "sda")  # requests that never complete
    assert not _mentions(io, "vda")  # 200 ms per request, but PSI shows no task held up by it


def _psi(some: float, full: float, some_total: int, full_total: int) -> str:
    return (f"some avg10={some:.2f} avg60=0 avg300=0 total={some_total}\n"
            f"full avg10={full:.2f} avg60=0 avg300=0 total={full_total}\n")


QUIET_DISK = DISKSTATS_A.replace("\n   8       0 sda 100 0 800 100 100 0 800 100 2 500 500", "")
SLOW_DISK = DISKSTATS_B.replace("\n   8       0 sda 100 0 800 100 100 0 800 100 2 1500 1500", "")


@pytest.mark.parametrize(
    ("psi", "present", "says"),
    [
        # tasks stalled 40% of the window and 30% of the last 10 s: the wait holds them up
        ([_psi(30, 5, 1_000_000, 0), _psi(30, 5, 1_400_000, 50_000)], True, "tasks stalled on I/O 40.0% of the 1.0s window"),
        # a writeback burst: the same 200 ms, but nothing waited on it
        ([_psi(1, 0, 1_000_000, 0), _psi(1, 0, 1_010_000, 0)], False, "a burst no one waited on"),
        # a blip: stalled in the window, but not over the last 10 s
        ([_psi(2, 1, 1_000_000, 0), _psi(2, 1, 1_600_000, 0)], False, "60.0% of the 1.0s window, 2.0% of the last 10 s"),
        # a stall that ended before the window: avg10 still high, the window clean
        ([_psi(45, 20, 1_000_000, 500_000), _psi(45, 20, 1_000_000, 500_000)], False, "0.0% of the 1.0s window"),
        # every task stalled, over the window and the last 10 s: present on its own
        ([_psi(50, 35, 1_000_000, 0), _psi(50, 35, 1_700_000, 600_000)], True, "all non-idle tasks stalled on I/O 60.0%"),
        # no PSI on this kernel: the wait alone decides
        (FileNotFoundError(2, "No such file or directory", "/proc/pressure/io"), True, "vda: 200 ms"),
    ],
    ids=["stalled", "writeback-burst", "blip", "ended", "full-stall", "no-psi"],
)
def test_a_long_wait_counts_when_tasks_are_held_up_by_it(psi: object, present: bool, says: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = build_bundle(
            d,
            files={
                "/proc/self/mountinfo": MOUNTINFO,
                "/proc/diskstats": [QUIET_DISK, SLOW_DISK],
                "/proc/pressure/io": psi,
            },
            statvfs={p: VfsResult(total=100 << 30, free=60 << 30, files=1000, files_free=900, readonly=False)
                     for p in ("/", "/dev/shm", "/mnt/my cache")},
            times=[1000.0, 1001.0],
        )
        io = _by_id(disk(_ctx(BundleHost(path), window=1.0)))["disk.io_latency_high"]
    assert (io.state is State.PRESENT) is present and io.state is not State.UNKNOWN
    assert _says(io, says), [e.summary for e in io.evidence]


def _stats(rows: dict[str, tuple[int, int, int, int]]) -> str:
    """diskstats lines from name -> (reads, read_ms, writes, write_ms); nothing in flight."""
    return "".join(f"   8  {i} {n} {r} 0 0 {rms} {w} 0 0 {wms} 0 {rms + wms} {rms + wms}\n"
                   for i, (n, (r, rms, w, wms)) in enumerate(rows.items()))


ARRAY_BEFORE = _stats({"sda": (1000, 5000, 1000, 5000), "sda1": (1000, 5000, 1000, 5000),
                       "sdb": (1000, 5000, 1000, 5000), "sdb1": (1000, 5000, 1000, 5000),
                       "sdc": (1000, 5000, 1000, 5000), "sdc1": (1000, 5000, 1000, 5000),
                       "md0": (3000, 20000, 2000, 15000)})


def _after(sdb1: tuple[int, int, int, int], peer: tuple[int, int, int, int] = (1030, 5150, 1030, 5150)) -> str:
    return _stats({"sda": peer, "sda1": peer, "sdb": sdb1, "sdb1": sdb1, "sdc": peer, "sdc1": peer,
                   "md0": (3100, 30000, 2100, 25000)})


@pytest.mark.parametrize(
    ("after", "slow", "compared"),
    [
        # sdb1 takes 480 ms per request where its peers take 5 ms: failing
        (_after((1005, 7400, 1005, 7400)), ["sdb1"], 1),
        # every member at 480 ms: the array is saturated, no member is to blame
        (_after((1005, 7400, 1005, 7400), peer=(1005, 7400, 1005, 7400)), [], 1),
        # 40 ms against 5 ms: slower, but within what a busy disk does
        (_after((1030, 6200, 1030, 6200)), [], 1),
        # one slow request is not a pattern
        (_after((1001, 5480, 1000, 5000)), [], 1),
        # the peers did too little to compare with
        (_after((1005, 7400, 1005, 7400), peer=(1001, 5005, 1001, 5005)), [], 1),
        # nothing did enough to judge: no comparison at all (the finding stays unknown)
        (_after((1001, 5005, 1001, 5005), peer=(1001, 5005, 1001, 5005)), [], 0),
    ],
    ids=["failing", "saturated", "busy", "one-request", "idle-peers", "quiet"],
)
def test_slow_members_compares_a_member_with_its_peers(after: str, slow: list[str], compared: int) -> None:
    got, n = slow_members({"md0": ["sda1", "sdb1", "sdc1"]}, parse_diskstats(ARRAY_BEFORE),
                          parse_diskstats(after), 1.0, await_ms=100.0, factor=5.0, min_requests=5)
    assert [s.member for s in got] == slow and n == compared


def test_a_member_that_stopped_answering_is_slow() -> None:
    before = ARRAY_BEFORE.replace(" sdb1 1000 0 0 5000 1000 0 0 5000 0 10000", " sdb1 1000 0 0 5000 1000 0 0 5000 3 10000")
    after = _after((1000, 5000, 1000, 5000)).replace(" sdb1 1000 0 0 5000 1000 0 0 5000 0 10000",
                                                     " sdb1 1000 0 0 5000 1000 0 0 5000 3 11000")
    got, compared = slow_members({"md0": ["sda1", "sdb1"]}, parse_diskstats(before), parse_diskstats(after), 1.0,
                                 await_ms=100.0, factor=5.0, min_requests=5)
    assert [(s.member, s.requests.stuck) for s in got] == [("sdb1", True)] and compared == 1


@pytest.mark.parametrize(
    ("after", "state", "says"),
    [
        (_after((1005, 7400, 1005, 7400)), State.PRESENT,
         "sdb1 (member of md0): 480 ms per request over 10 requests; its peers under the same load: sda1 5 ms, sdc1 5 ms"),
        (_after((1030, 5150, 1030, 5150)), State.ABSENT, "the members of md0 (sda1, sdb1, sdc1) answer alike"),
    ],
    ids=["failing", "healthy"],
)
def test_probe_compares_the_members_of_a_raid_array(after: str, state: State, says: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = build_bundle(
            d,
            files={"/proc/self/mountinfo": MOUNTINFO, "/proc/diskstats": [ARRAY_BEFORE, after]},
            listdirs={"/sys/block": ["sda", "sdb", "sdc", "md0", "dm-0", "loop0"],
                      "/sys/block/md0/slaves": ["sdb1", "sda1", "sdc1"],
                      "/sys/block/dm-0/slaves": ["md0"],  # LVM on the array: one member, nothing to compare
                      },
            statvfs={p: _free(60)[0] for p in ("/", "/dev/shm", "/mnt/my cache")},
            times=[1000.0, 1001.0],
        )
        got = _by_id(disk(_ctx(BundleHost(path), window=1.0)))
    m = got["disk.array_member_slow"]
    assert m.state is state and _says(m, says), [e.summary for e in m.evidence]


def test_no_array_no_member_finding() -> None:
    """A host without md or multi-disk volumes (most VMs) has no members to compare: unknown."""
    with tempfile.TemporaryDirectory() as d:
        path = build_bundle(
            d,
            files={"/proc/self/mountinfo": MOUNTINFO, "/proc/diskstats": [DISKSTATS_A, DISKSTATS_B]},
            listdirs={"/sys/block": ["vda", "loop0"]},
            statvfs={p: _free(60)[0] for p in ("/", "/dev/shm", "/mnt/my cache")},
            times=[1000.0, 1001.0],
        )
        got = _by_id(disk(_ctx(BundleHost(path), window=1.0)))
    assert "disk.array_member_slow" not in got and "disk.io_latency_high" in got


def _free(*gib_free: float) -> list[VfsResult]:
    return [VfsResult(total=100 << 30, free=int(g * (1 << 30)), files=1000, files_free=900, readonly=False)
            for g in gib_free]


@pytest.mark.parametrize(
    ("root", "present", "says"),
    [
        # 2 GiB free, 0.5 GiB written in each half: full within seconds, and the rate held
        (_free(2, 1.5, 1), True, "written through both halves of 1.0s"),
        # the same 1 GiB, all of it in the first half: a burst (a database creating its files)
        (_free(2, 1, 1), False, "/ took 1 GB in 1.0s, 1 GB of it in one half: a burst, not a trend"),
        # most of it in the second half, a little in the first: still a burst
        (_free(2, 1.9, 1), False, "a burst, not a trend"),
        # steady, but at that rate 60 GiB last past the hour
        (_free(60, 59.995, 59.99), False, "none fills within 60 min"),
        # a bundle recorded before the middle read: its end read replays in the middle's place
        (_free(2, 1), False, "a burst, not a trend"),
    ],
    ids=["filling", "burst", "late-burst", "slow", "old-bundle"],
)
def test_growth_counts_when_it_holds_through_the_window(root: list[VfsResult], present: bool, says: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = build_bundle(
            d,
            files={"/proc/self/mountinfo": MOUNTINFO},
            statvfs={"/": root, "/dev/shm": _free(60), "/mnt/my cache": _free(60)},
            times=[1000.0, 1001.0],
        )
        g = _by_id(disk(_ctx(BundleHost(path), window=1.0)))["disk.space_growing_fast"]
    assert (g.state is State.PRESENT) is present and g.state is not State.UNKNOWN
    assert _says(g, says), [e.summary for e in g.evidence]


# --- real faults (root) ---------------------------------------------------------------


@contextmanager
def tmpfs(options: str) -> Iterator[Path]:
    """A tmpfs of our own under a unique directory; always unmounted."""
    base = Path(tempfile.mkdtemp(prefix="ddx-disk-test-"))
    point = base / "mnt"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "ddx-test", str(point)], check=True, timeout=10)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, timeout=10)
        shutil.rmtree(base, ignore_errors=True)


def _fill(point: Path) -> None:
    """Write until ENOSPC."""
    with open(point / "fill", "wb") as fh:
        chunk = b"\0" * (64 << 10)
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError:
            pass
    for i in range(64):  # the last partial page
        try:
            (point / f"tail{i}").write_bytes(b"x" * 512)
        except OSError:
            break


@pytest.mark.root
def test_full_tmpfs_is_exhausted_with_its_mount_point() -> None:
    with tmpfs("size=2m,mode=0755") as full, tmpfs("size=64m") as healthy:
        _fill(full)
        got = _by_id(disk(_ctx(LiveHost())))
        ex = got["disk.space_exhausted"]
        assert ex.state is State.PRESENT
        assert _mentions(ex, str(full))
        assert not _mentions(ex, str(healthy))
        assert ex.evidence[0].source.startswith("statvfs")


@pytest.mark.root
def test_tmpfs_above_90_percent_is_low_not_exhausted() -> None:
    with tmpfs("size=200m") as point:
        with open(point / "big", "wb") as fh:
            fh.truncate(0)
            fh.write(b"\0" * (185 << 20))
        got = _by_id(disk(_ctx(LiveHost())))
        assert _mentions(got["disk.space_low"], str(point))
        assert not _mentions(got["disk.space_exhausted"], str(point))


@pytest.mark.root
def test_tmpfs_out_of_inodes() -> None:
    with tmpfs("size=16m,nr_inodes=64") as point:
        for i in range(200):
            try:
                (point / f"f{i}").write_bytes(b"")
            except OSError:
                break
        got = _by_id(disk(_ctx(LiveHost())))
        ino = got["disk.inodes_exhausted"]
        assert ino.state is State.PRESENT and _mentions(ino, str(point))
        assert not _mentions(got["disk.space_exhausted"], str(point))  # space is fine


@pytest.mark.root
def test_readonly_on_purpose_vs_expected_rw() -> None:
    with tmpfs("size=1m,ro") as ro_mount, tmpfs("size=1m") as remounted:
        subprocess.run(["mount", "-o", "remount,ro", str(remounted)], check=True, timeout=10)
        got = _by_id(disk(_ctx(LiveHost())))
        # Mounted read-only on purpose and not expected otherwise: not a remount.
        assert not _mentions(got["disk.readonly_remount"], str(ro_mount))
        assert not _mentions(got["disk.readonly_remount"], str(remounted))
        # Told it must be read-write: the remount is reported.
        got = _by_id(disk(_ctx(LiveHost(), expect_rw=[str(remounted)])))
        rr = got["disk.readonly_remount"]
        assert rr.state is State.PRESENT and _mentions(rr, str(remounted)) and _mentions(rr, "expect_rw")
        # A read-only filesystem is not judged for space (nothing writes there).
        assert not _mentions(got["disk.space_exhausted"], str(ro_mount))


@pytest.mark.root
@pytest.mark.kernel_log
def test_ext4_error_remount_is_a_readonly_remount() -> None:
    base = Path(tempfile.mkdtemp(prefix="ddx-disk-test-"))
    img, point = base / "img", base / "mnt"
    point.mkdir()
    subprocess.run(["truncate", "-s", "8M", str(img)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(img)], check=True, timeout=30)
    subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(img), str(point)], check=True, timeout=10)
    try:
        dev = subprocess.run(["findmnt", "-no", "SOURCE", str(point)], capture_output=True, text=True).stdout.strip()
        Path(f"/sys/fs/ext4/{os.path.basename(dev)}/trigger_fs_error").write_text("1")
        got = _by_id(disk(_ctx(LiveHost())))
        rr = got["disk.readonly_remount"]
        assert rr.state is State.PRESENT and _mentions(rr, str(point))
    finally:
        subprocess.run(["umount", "-l", str(point)], check=False, timeout=10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.root
def test_filesystem_filling_during_the_window_grows_fast() -> None:
    with tmpfs("size=300m") as point:
        stop = threading.Event()

        def writer() -> None:
            with open(point / "growing.log", "wb") as fh:
                for _ in range(200):  # at most 200 MB
                    if stop.is_set():
                        return
                    fh.write(b"x" * (1 << 20))
                    fh.flush()
                    stop.wait(0.01)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        try:
            got = _by_id(disk(_ctx(LiveHost(), window=1.0)))
        finally:
            stop.set()
            t.join(5)
        g = got["disk.space_growing_fast"]
        assert g.state is State.PRESENT and _mentions(g, str(point))


@pytest.mark.root
def test_a_write_burst_early_in_the_window_is_not_growth() -> None:
    """100 MB written at once right after the first read, then nothing (a database creating its
    files): at the window's rate the tmpfs would fill within the hour, but the second half took
    none of it."""
    with tmpfs("size=300m") as point:
        first_read = threading.Event()

        class Watched(LiveHost):
            def statvfs(self, path: str) -> VfsResult:
                got = super().statvfs(path)
                if path == str(point):
                    first_read.set()
                return got

        def burst() -> None:
            if first_read.wait(10):
                (point / "initdb.bin").write_bytes(b"x" * (100 << 20))

        t = threading.Thread(target=burst, daemon=True)
        t.start()
        try:
            got = _by_id(disk(_ctx(Watched(), window=1.0)))
        finally:
            t.join(10)
        g = got["disk.space_growing_fast"]
        assert not _mentions(g, str(point))
        assert _says(g, f"{point} took 100 MB") and _says(g, "a burst, not a trend"), [e.summary for e in g.evidence]


@pytest.mark.root
def test_healthy_tmpfs_gives_no_finding() -> None:
    with tmpfs("size=64m") as point:
        (point / "small").write_bytes(b"x" * 4096)
        got = _by_id(disk(_ctx(LiveHost(), window=0.2)))
        for f in got.values():
            if f.state is State.PRESENT:
                assert not _mentions(f, str(point)), f
        for fid in ("disk.space_exhausted", "disk.space_low", "disk.inodes_exhausted", "disk.readonly_remount"):
            assert fid in got  # looked at, so known


def test_hung_statvfs_is_abandoned_and_other_mounts_still_judged(tmp_path: Path) -> None:
    """A mount whose statvfs never answers (a FIFO stands in for the dead NFS
    server: statvfs itself cannot be made to hang without one) does not stop
    the probe; it is named in the evidence."""
    (tmp_path / "proc" / "self").mkdir(parents=True)
    (tmp_path / "proc" / "self" / "mountinfo").write_text(
        "1 0 8:1 / /good rw - ext4 /dev/sda1 rw\n2 0 0:99 / /nfs rw - nfs4 srv:/x rw\n"
    )
    (tmp_path / "good").mkdir()

    class HungNfs(LiveHost):
        """The live host, except that statvfs of /nfs blocks like a dead server."""

        gate = threading.Event()

        def statvfs(self, path: str) -> VfsResult:
            if path == "/nfs":
                return self._call(self.gate.wait, "statvfs /nfs", 60)  # type: ignore[return-value]
            return super().statvfs(path)

    try:
        got = _by_id(disk(_ctx(HungNfs(root=str(tmp_path)), statvfs_timeout=0.3)))
    finally:
        HungNfs.gate.set()
    ex = got["disk.space_exhausted"]
    assert ex.state is State.ABSENT
    assert _says(ex, "/nfs (statvfs did not answer")
    assert _says(ex, "1 writable filesystems checked")


def _psi_io(line: str) -> float | None:
    try:
        text = Path("/proc/pressure/io").read_text()
    except OSError:
        return None
    for row in text.splitlines():
        if row.startswith(line):
            return float(row.split("avg10=")[1].split()[0])
    return None


@pytest.mark.slow
def test_live_sync_writers_stall_the_disk_and_a_finished_flush_does_not() -> None:
    """Real I/O on the root disk: four writers of synchronous direct 4 KiB writes keep
    every task waiting on the disk (PSI io full), which is latency someone feels; a
    200 MB write flushed with fsync just before the look is not, though it queued
    requests a moment ago and PSI's 10 s average still holds it."""
    import time

    if _psi_io("full") is None:
        pytest.skip("no PSI io on this kernel")
    work = Path(tempfile.mkdtemp(prefix="ddx-io-test-", dir="/var/tmp"))
    writers: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={work / 'flush'}", "bs=1M", "count=200", "conv=fsync"],
                       check=True, capture_output=True, timeout=120)
        (work / "flush").unlink()
        time.sleep(0.3)
        calm = _by_id(disk(_ctx(LiveHost(), window=1.0)))["disk.io_latency_high"]
        assert calm.state is State.ABSENT, [e.summary for e in calm.evidence]

        writers = [subprocess.Popen(["dd", "if=/dev/zero", f"of={work / f'w{i}'}", "bs=4k", "count=2000000",
                                     "oflag=direct,dsync"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for i in range(4)]
        deadline = time.monotonic() + 40
        while (_psi_io("full") or 0.0) < 20.0 and time.monotonic() < deadline:
            time.sleep(0.5)
        busy = _by_id(disk(_ctx(LiveHost(), window=1.0)))["disk.io_latency_high"]
        assert busy.state is State.PRESENT, [e.summary for e in busy.evidence]
        assert _says(busy, "stalled on I/O")
    finally:
        for w in writers:
            w.kill()
            w.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
