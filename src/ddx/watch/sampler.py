"""Cheap samples of one host, every few seconds, for the watch daemon.

A sample is a handful of small reads (``/proc/stat``, ``meminfo``, ``vmstat``,
``loadavg``, ``netstat``, ``file-nr``, ``statvfs`` of the real filesystems and
the listening TCP sockets), a few milliseconds in all: never a diagnosis. Each
read that fails leaves its signals out of that sample (noted once), and the
others still count.

Signals (name -> value; rates are per second since the previous sample):

- ``cpu.busy_pct``, ``cpu.iowait_pct``, ``cpu.steal_pct``: shares of CPU time;
- ``load.per_cpu``: the 1-minute load average per online CPU;
- ``mem.available_pct``, ``swap.used_pct``, ``swap.pages_per_s``;
- ``oom.kills``: OOM kills since the previous sample (``vmstat oom_kill``);
- ``disk.used_pct:MOUNT``, ``disk.inodes_used_pct:MOUNT`` for the real filesystems;
- ``fd.used_pct`` (``file-nr`` against ``file-max``), ``pids.used_pct`` (tasks
  against ``pid_max``);
- ``net.listen_overflows``: TcpExt ListenOverflows + ListenDrops since the previous sample;
- ``svc.listeners_missing``: listening ports seen when watching began (or
  since) that no longer listen; ``missing_ports`` in the sample names them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ddx.host import Host

__all__ = ["Sample", "Sampler"]

log = logging.getLogger("ddx.watch")


@dataclass
class Sample:
    at: float
    values: dict[str, float] = field(default_factory=dict)
    missing_ports: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class Sampler:
    """Takes samples of ``host``; keeps the previous counters for rates."""

    def __init__(self, host: Host, *, max_mounts: int = 50) -> None:
        self.host = host
        self.max_mounts = max_mounts
        self._prev_cpu: tuple[int, int, int, int] | None = None  # total, idle(+iowait), iowait, steal
        self._prev_vm: dict[str, int] | None = None
        self._prev_net: int | None = None
        self._prev_at: float | None = None
        self.known_ports: set[int] = set()
        self._warned: set[str] = set()

    def _note(self, sample: Sample, what: str, exc: BaseException) -> None:
        text = f"{what}: {exc}"
        sample.problems.append(text)
        if what not in self._warned:
            self._warned.add(what)
            log.warning("ddx watch: cannot read %s (its signals are left out)", text)

    def take(self) -> Sample:
        host = self.host
        s = Sample(host.time())
        dt = (s.at - self._prev_at) if self._prev_at is not None else None
        self._cpu(s)
        self._memory(s, dt)
        self._load(s)
        self._disks(s)
        self._tables(s)
        self._net(s, dt)
        self._ports(s)
        self._prev_at = s.at
        return s

    def _cpu(self, s: Sample) -> None:
        from ddx.probes.system.cpu import parse_stat

        try:
            agg, _ = parse_stat(self.host.read_text("/proc/stat"))
        except (OSError, ValueError) as exc:
            self._note(s, "/proc/stat", exc)
            return
        now = (agg.total, agg.idle + agg.iowait, agg.iowait, agg.steal)
        prev, self._prev_cpu = self._prev_cpu, now
        if prev is None or now[0] <= prev[0]:
            return
        total = now[0] - prev[0]
        s.values["cpu.busy_pct"] = round(100.0 * (total - (now[1] - prev[1])) / total, 2)
        s.values["cpu.iowait_pct"] = round(100.0 * (now[2] - prev[2]) / total, 2)
        s.values["cpu.steal_pct"] = round(100.0 * (now[3] - prev[3]) / total, 2)

    def _memory(self, s: Sample, dt: float | None) -> None:
        from ddx.probes.system.memory import (
            available_bytes,
            parse_meminfo,
            parse_vmstat,
        )

        try:
            mem = parse_meminfo(self.host.read_text("/proc/meminfo"))
            total = mem.get("MemTotal", 0)
            avail = available_bytes(mem)
            if total and avail is not None:
                s.values["mem.available_pct"] = round(100.0 * avail / total, 2)
            if mem.get("SwapTotal", 0):
                s.values["swap.used_pct"] = round(100.0 * (mem["SwapTotal"] - mem.get("SwapFree", 0))
                                                  / mem["SwapTotal"], 2)
        except (OSError, ValueError, KeyError) as exc:
            self._note(s, "/proc/meminfo", exc)
        try:
            vm = parse_vmstat(self.host.read_text("/proc/vmstat"))
        except (OSError, ValueError) as exc:
            self._note(s, "/proc/vmstat", exc)
            return
        prev, self._prev_vm = self._prev_vm, vm
        if prev is None or not dt:
            return
        swapped = (vm.get("pswpin", 0) - prev.get("pswpin", 0)) + (vm.get("pswpout", 0) - prev.get("pswpout", 0))
        s.values["swap.pages_per_s"] = round(max(0, swapped) / dt, 2)
        if "oom_kill" in vm:
            s.values["oom.kills"] = float(max(0, vm["oom_kill"] - prev.get("oom_kill", vm["oom_kill"])))

    def _load(self, s: Sample) -> None:
        from ddx.probes.system.cpu import parse_loadavg, parse_stat

        try:
            load = parse_loadavg(self.host.read_text("/proc/loadavg"))
            _, cores = parse_stat(self.host.read_text("/proc/stat"))
            s.values["load.per_cpu"] = round(load.load1 / cores, 3)
            pid_max = int(self.host.read_text("/proc/sys/kernel/pid_max").split()[0])
            s.values["pids.used_pct"] = round(100.0 * load.tasks / pid_max, 2)
        except (OSError, ValueError, IndexError) as exc:
            self._note(s, "/proc/loadavg", exc)

    def _disks(self, s: Sample) -> None:
        from ddx.probes.parsers.mounts import parse_mountinfo, real_filesystems

        try:
            mounts = real_filesystems(parse_mountinfo(self.host.read_text("/proc/self/mountinfo")))
        except (OSError, ValueError) as exc:
            self._note(s, "/proc/self/mountinfo", exc)
            return
        for m in mounts[: self.max_mounts]:
            try:
                v = self.host.statvfs(m.point)
            except (OSError, TimeoutError) as exc:  # a hung network mount: that mount is left out
                self._note(s, f"statvfs {m.point}", exc)
                continue
            if v.total:  # space usable by services: what is not free to unprivileged writers is used
                s.values[f"disk.used_pct:{m.point}"] = round(100.0 * (v.total - v.free) / v.total, 2)
            if v.files:
                s.values[f"disk.inodes_used_pct:{m.point}"] = round(100.0 * (v.files - v.files_free) / v.files, 2)

    def _tables(self, s: Sample) -> None:
        from ddx.probes.parsers.proctable import parse_file_nr

        try:
            used, most = parse_file_nr(self.host.read_text("/proc/sys/fs/file-nr"))
            if most:
                s.values["fd.used_pct"] = round(100.0 * used / most, 3)
        except (OSError, ValueError) as exc:
            self._note(s, "/proc/sys/fs/file-nr", exc)

    def _net(self, s: Sample, dt: float | None) -> None:
        from ddx.probes.system.net import parse_counters

        try:
            c = parse_counters(self.host.read_text("/proc/net/netstat")).get("TcpExt", {})
        except (OSError, ValueError) as exc:
            self._note(s, "/proc/net/netstat", exc)
            return
        now = c.get("ListenOverflows", 0) + c.get("ListenDrops", 0)
        prev, self._prev_net = self._prev_net, now
        if prev is not None and dt:
            s.values["net.listen_overflows"] = float(max(0, now - prev))

    def _ports(self, s: Sample) -> None:
        from ddx.probes.system.net import listening_sockets

        try:
            listeners, _ = listening_sockets(self.host)
        except (OSError, ValueError, RuntimeError) as exc:
            self._note(s, "listening sockets", exc)
            return
        ports = {ln.port for ln in listeners}
        missing = sorted(self.known_ports - ports)
        # A port that listened once is expected to listen again; a new one joins the expected set.
        self.known_ports |= ports
        s.missing_ports = missing
        s.values["svc.listeners_missing"] = float(len(missing))

    def forget_port(self, port: int) -> None:
        """A port that stays closed for long was retired on purpose: stop expecting it."""
        self.known_ports.discard(port)
