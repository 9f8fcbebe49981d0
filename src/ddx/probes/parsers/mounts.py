"""Mounts: parse /proc/self/mountinfo, /proc/mounts and /etc/fstab; pick the real filesystems.

Which filesystems are "real" (the ones services write to): not the kernel's
pseudo filesystems (proc, sysfs, cgroup, devtmpfs, ...), not read-only images
(squashfs, iso9660), not ``overlay`` except as ``/`` (a container's root), and
nothing under /proc, /sys, /run/user, /run/credentials or /snap. Bind mounts of
one filesystem count once (the shortest mount point).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "cgroup_roots",
    "PSEUDO_TYPES",
    "SKIP_PREFIXES",
    "Mount",
    "parse_fstab",
    "parse_mountinfo",
    "parse_mounts",
    "real_filesystems",
    "unescape_mount",
]

PSEUDO_TYPES = (
    "proc", "sysfs", "cgroup", "cgroup2", "devtmpfs", "devpts", "mqueue", "debugfs", "tracefs",
    "securityfs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs", "autofs", "binfmt_misc",
    "rpc_pipefs", "nsfs", "efivarfs", "selinuxfs", "squashfs", "iso9660", "udf", "fuse.lxcfs",
    "fuse.snapfuse", "fuse.portal", "fuse.gvfsd-fuse", "ramfs", "nfsd", "overlay_lower",
)  # fmt: skip
SKIP_PREFIXES = ("/proc", "/sys", "/run/user", "/run/credentials", "/snap")

@dataclass(frozen=True)
class Mount:
    point: str
    fstype: str
    source: str
    mount_opts: tuple[str, ...]  # per-mount options (rw/ro, nosuid, ...)
    super_opts: tuple[str, ...]  # superblock options; equal to mount_opts from /proc/mounts
    dev: str = ""  # "major:minor" (mountinfo only)

    @property
    def mount_ro(self) -> bool:
        return "ro" in self.mount_opts

    @property
    def super_ro(self) -> bool:
        return "ro" in self.super_opts or "emergency_ro" in self.super_opts

    @property
    def writable(self) -> bool:
        return not self.mount_ro and not self.super_ro


_ESC = re.compile(r"\\([0-7]{3})")


def unescape_mount(field: str) -> str:
    """Undo the octal escapes of /proc/mounts (``\\040`` for a space)."""
    return _ESC.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse /proc/self/mountinfo::

        36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 /dev/root rw,errors=continue

    Malformed lines are skipped."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 6 or len(rf) < 2:
            continue
        super_opts = tuple(rf[2].split(",")) if len(rf) > 2 else ()
        out.append(Mount(unescape_mount(lf[4]), rf[0], unescape_mount(rf[1]), tuple(lf[5].split(",")), super_opts, lf[2]))
    return out


def parse_mounts(text: str) -> list[Mount]:
    """Parse /proc/mounts (``source point fstype options 0 0``)."""
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        opts = tuple(f[3].split(","))
        out.append(Mount(unescape_mount(f[1]), f[2], unescape_mount(f[0]), opts, opts))
    return out


def cgroup_roots(mounts_text: str, controller: str) -> list[tuple[str, bool]]:
    """Mount points of a cgroup ``controller`` ("memory", "pids") in /proc/mounts:
    (path, is_v2). cgroup2 mounts always (the controller may be enabled below the
    root), v1 mounts of that controller."""
    return [(m.point, m.fstype == "cgroup2") for m in parse_mounts(mounts_text)
            if m.fstype == "cgroup2" or (m.fstype == "cgroup" and controller in m.mount_opts)]


def parse_fstab(text: str) -> dict[str, tuple[str, ...]]:
    """Mount point -> options from /etc/fstab (comments, swap and malformed
    lines skipped)."""
    out: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        f = line.split()
        if len(f) < 4 or f[2] == "swap" or f[1] in ("none", "swap"):
            continue
        out[unescape_mount(f[1]).rstrip("/") or "/"] = tuple(f[3].split(","))
    return out


def _under(point: str, prefixes: tuple[str, ...] | list[str]) -> bool:
    return any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes)


def real_filesystems(
    mounts: list[Mount],
    skip_types: tuple[str, ...] | list[str] = PSEUDO_TYPES,
    skip_prefixes: tuple[str, ...] | list[str] = SKIP_PREFIXES,
) -> list[Mount]:
    """The filesystems worth checking (rules in the module docstring), in
    mount-point order. When a point is mounted over, the last (visible) mount
    wins; bind mounts of one device keep the shortest mount point."""
    by_point: dict[str, Mount] = {}
    for m in mounts:
        if m.fstype in skip_types or _under(m.point, skip_prefixes):
            continue
        if m.fstype == "overlay" and m.point != "/":
            continue
        by_point[m.point] = m
    by_dev: dict[str, Mount] = {}
    rest: list[Mount] = []
    for m in by_point.values():
        if not m.dev:
            rest.append(m)
            continue
        cur = by_dev.get(m.dev)
        if cur is None or (len(m.point), m.point) < (len(cur.point), cur.point):
            by_dev[m.dev] = m
    return sorted([*by_dev.values(), *rest], key=lambda m: m.point)
