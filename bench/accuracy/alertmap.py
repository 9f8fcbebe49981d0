"""Which root cause, if any, each node_exporter alert names.

The benchmark asks of every alert that fired: does it tell the on-call *what*
broke, in the terms of ddx's conditions (``ddx kb list``)?
An alert "names" a condition when an engineer reading only its name and summary
would go straight to that cause. Alerts about a symptom with many causes
(context switches, an idle machine) name none.

The table is deliberately generous to Prometheus: where an alert points at two
plausible causes, both count (``HostSystemdServiceCrashed`` is a crash loop or,
when the unit is a backing service, a dependency that is down). It is as strict
as ddx's own scoring in one respect: a memory alert names memory-exhaustion, not
process-leak or memory-leak, just as ddx ranking memory-exhaustion first in the
process-leak scenario counts as wrong.

Every rule of the shipped file must appear here (a test checks it), so a new
upstream rule cannot be silently ignored.
"""

from __future__ import annotations

__all__ = ["ALERT_CONDITIONS", "conditions_named", "names"]

ALERT_CONDITIONS: dict[str, tuple[str, ...]] = {
    # --- memory ---------------------------------------------------------------------------
    "HostOutOfMemory": ("memory-exhaustion",),
    # a high rate of major page faults is the thrashing of a host short of memory
    "HostMemoryUnderMemoryPressure": ("memory-exhaustion",),
    "HostMemoryIsUnderutilized": (),  # capacity planning: nothing is broken
    # swap fills when memory runs out; the leak behind it (if any) is not named
    "HostSwapIsFillingUp": ("memory-exhaustion",),
    # node_vmstat_oom_kill counts every OOM kill, the ones inside a memory cgroup too
    "HostOomKillDetected": ("memory-exhaustion",),
    # --- network --------------------------------------------------------------------------
    # more than 80% of the link's bandwidth: load beyond normal
    "HostUnusualNetworkThroughputIn": ("traffic-surge",),
    "HostUnusualNetworkThroughputOut": ("traffic-surge",),
    # interface errors come from the physical layer (NIC, cable, switch port), and they
    # make the network lose packets: either reading is fair
    "HostNetworkReceiveErrors": ("hardware-fault", "network-partition"),
    "HostNetworkTransmitErrors": ("hardware-fault", "network-partition"),
    # a bond member is down: a NIC, cable or switch port failed; redundancy is lost
    "HostNetworkBondDegraded": ("hardware-fault", "network-partition"),
    # a full conntrack table drops new connections: a connection limit, the kernel's
    "HostConntrackLimit": ("connection-limit",),
    # --- disks ----------------------------------------------------------------------------
    "HostDiskIoUtilizationHigh": ("io-saturation",),
    "HostUnusualDiskIo": ("io-saturation",),
    "HostUnusualDiskReadLatency": ("io-saturation",),
    "HostUnusualDiskWriteLatency": ("io-saturation",),
    "HostCpuHighIowait": ("io-saturation",),
    "HostOutOfDiskSpace": ("disk-full",),
    "HostDiskMayFillIn24Hours": ("disk-full",),  # a forecast, but of exactly this cause
    "HostOutOfInodes": ("inode-exhaustion",),
    "HostInodesMayFillIn24Hours": ("inode-exhaustion",),
    # statfs failed on a mount: the summary says "device error", and an engineer would look
    # at the disk first (on a network mount it is the network)
    "HostFilesystemDeviceError": ("hardware-fault", "network-partition"),
    # --- CPU ------------------------------------------------------------------------------
    "HostHighCpuLoad": ("cpu-saturation",),
    "HostCpuIsUnderutilized": (),  # capacity planning
    # the hypervisor gives the CPU to others: this host is CPU-starved
    "HostCpuStealNoisyNeighbor": ("cpu-saturation",),
    # twice the daily context-switch rate: a symptom of load, locks, or a busy loop alike
    "HostContextSwitchingHigh": (),
    # --- services -------------------------------------------------------------------------
    # a unit in "failed" state: it died (and exhausted its restarts, a crash loop); when the
    # unit is a database or cache, that is a dependency down
    "HostSystemdServiceCrashed": ("crash-loop", "dependency-down"),
    # --- hardware -------------------------------------------------------------------------
    "HostPhysicalComponentTooHot": ("hardware-fault",),
    "HostNodeOvertemperatureAlarm": ("hardware-fault",),
    "HostSoftwareRaidInsufficientDrives": ("hardware-fault",),
    "HostSoftwareRaidDiskFailure": ("hardware-fault",),
    "HostEdacCorrectableErrorsDetected": ("hardware-fault",),
    "HostEdacUncorrectableErrorsDetected": ("hardware-fault",),
    # --- system ---------------------------------------------------------------------------
    # the kernel changed: a package upgrade, the change to suspect first
    "HostKernelVersionDeviations": ("package-upgrade-regression",),
    "HostClockSkew": ("clock-skew",),
    "HostClockNotSynchronising": ("clock-skew",),
}


def conditions_named(alert: str) -> tuple[str, ...]:
    """The conditions ``alert`` names; () for a symptom-only or unknown alert."""
    return ALERT_CONDITIONS.get(alert, ())


def names(alert: str, condition: str) -> bool:
    """Whether ``alert`` names ``condition`` as the cause."""
    return bool(condition) and condition in conditions_named(alert)
