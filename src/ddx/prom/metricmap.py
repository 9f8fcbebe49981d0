"""The metric map: which exporter metrics, read how, give which finding, at which line.

Data, not code: each ``Row`` is one PromQL expression over a family of metrics,
aggregated ``by (job, instance)`` so that one query answers for every instance
of a job, the comparison that makes the finding present, and the metric names
the instance must export for a missing answer to mean "normal". Several rows of
one finding are alternatives (any present makes it present).

The thresholds are the local probes' defaults (``ddx.probes.system.*``,
``ddx.probes.services.*``) so a finding means the same from either source.

Templates: ``$SEL`` is the label matchers of the instances asked about (the job,
or the instance), ``$W`` the incident window (a PromQL duration), ``$FS`` the
matchers that skip pseudo filesystems (as the disk probe does), ``$NIC`` those
that skip the loopback interface.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

from ddx.probes.parsers.mounts import PSEUDO_TYPES, SKIP_PREFIXES

__all__ = ["BY", "ROWS", "Cond", "Row", "exported_names", "render"]

BY = "job, instance"  # every row is aggregated by these labels: one query answers for a whole job

_OPS: dict[str, Callable[[float, float], bool]] = {">": operator.gt, ">=": operator.ge, "<": operator.lt}

FS = (f'$SEL,fstype!~"{"|".join(t.replace(".", "[.]") for t in PSEUDO_TYPES)}",'
      f'mountpoint!~"{"|".join(p + ".*" for p in SKIP_PREFIXES)}"')
NIC = '$SEL,device!="lo"'
DAY = 86400.0
SERVICES = (("postgres", "pg_up"), ("redis", "redis_up"), ("memcached", "memcached_up"), ("nginx", "nginx_up"),
            ("mysql", "mysql_up"))  # (family, the exporter's "service answers" gauge)


@dataclass(frozen=True)
class Cond:
    """A second condition a row needs (a floor of events so that noise does not count)."""

    label: str
    expr: str
    op: str
    threshold: float
    agg: str = "max"

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


@dataclass(frozen=True)
class Row:
    """One way to read one finding from Prometheus.

    ``expr`` gives a number per (job, instance) after ``agg``; the finding is
    present when ``value op threshold`` (and ``also`` holds), absent when the
    value was read and does not cross. ``needs``: the metric names an instance
    must export for the row to apply; when it exports them but the expression
    has no answer (no swap, no disk request in the window), the value is
    ``default`` (None: unknown). ``why`` says where the threshold comes from."""

    finding: str
    label: str
    agg: str
    expr: str
    op: str
    threshold: float
    unit: str
    needs: tuple[str, ...]
    why: str
    default: float | None = None
    also: Cond | None = None
    family: str = "node"

    def crosses(self, value: float) -> bool:
        return _OPS[self.op](value, self.threshold)


def render(template: str, sel: str, window: str) -> str:
    """A template with its selector and window filled in."""
    return template.replace("$FS", FS).replace("$NIC", NIC).replace("$SEL", sel).replace("$W", window)


def _rate_share(mode: str) -> str:
    return (f'100 * sum by ({BY}) (rate(node_cpu_seconds_total{{$SEL,mode=~"{mode}"}}[$W])) '
            f'/ count by ({BY}) (node_cpu_seconds_total{{$SEL,mode="idle"}})')


_AVAIL = "min_over_time(node_filesystem_avail_bytes{$FS}[$W])"
_SIZE = "(node_filesystem_size_bytes{$FS} > 0)"
_LOST = " + ".join(f"rate(node_network_{d}_{k}_total{{$NIC}}[$W])" for d in ("receive", "transmit") for k in ("errs", "drop"))
_PACKETS = " + ".join(f"rate(node_network_{d}_packets_total{{$NIC}}[$W])" for d in ("receive", "transmit"))
_NET_NEEDS = ("node_network_receive_errs_total", "node_network_receive_drop_total", "node_network_transmit_errs_total",
              "node_network_transmit_drop_total", "node_network_receive_packets_total", "node_network_transmit_packets_total")
_CPU = ("node_cpu_seconds_total",)

ROWS: tuple[Row, ...] = (
    # --- disk ---------------------------------------------------------------------------
    Row("disk.space_exhausted", "filesystem space free", "min", f"100 * {_AVAIL} / {_SIZE}", "<", 1.0, "%",
        ("node_filesystem_avail_bytes", "node_filesystem_size_bytes"), "disk probe space_exhausted_percent"),
    Row("disk.space_low", "filesystem space used", "max", f"100 - 100 * {_AVAIL} / {_SIZE}", ">", 90.0, "%",
        ("node_filesystem_avail_bytes", "node_filesystem_size_bytes"), "disk probe space_low_percent"),
    Row("disk.inodes_exhausted", "filesystem inodes free", "min",
        "100 * min_over_time(node_filesystem_files_free{$FS}[$W]) / (node_filesystem_files{$FS} > 0)", "<", 1.0, "%",
        ("node_filesystem_files_free", "node_filesystem_files"), "disk probe inodes_exhausted_percent"),
    Row("disk.readonly_remount", "filesystems mounted read-only", "max",
        "max_over_time(node_filesystem_readonly{$FS}[$W])", ">", 0.0, "",
        ("node_filesystem_readonly",), "a storage filesystem read-only (pseudo and image filesystems skipped)"),
    Row("disk.io_latency_high", "disk request wait (await)", "max",
        "1000 * (rate(node_disk_read_time_seconds_total{$SEL}[$W]) + rate(node_disk_write_time_seconds_total{$SEL}[$W]))"
        " / ((rate(node_disk_reads_completed_total{$SEL}[$W]) + rate(node_disk_writes_completed_total{$SEL}[$W])) > 0)",
        ">", 100.0, "ms",
        ("node_disk_read_time_seconds_total", "node_disk_write_time_seconds_total",
         "node_disk_reads_completed_total", "node_disk_writes_completed_total"),
        "disk probe io_await_ms", default=0.0,
        also=Cond("disk requests in the window", "increase(node_disk_reads_completed_total{$SEL}[$W])"
                  " + increase(node_disk_writes_completed_total{$SEL}[$W])", ">=", 5.0)),
    Row("disk.io_latency_high", "I/O pressure (PSI io full)", "max",
        "100 * rate(node_pressure_io_stalled_seconds_total{$SEL}[$W])", ">", 10.0, "%",
        ("node_pressure_io_stalled_seconds_total",), "disk probe io_psi_full_percent"),
    Row("disk.io_errors", "md array members failed", "max", 'node_md_disks{$SEL,state="failed"}', ">", 0.0, "",
        ("node_md_disks",), "a RAID member marked failed"),
    # --- memory -------------------------------------------------------------------------
    Row("memory.available_low", "memory available", "min",
        "100 * min_over_time(node_memory_MemAvailable_bytes{$SEL}[$W]) / (node_memory_MemTotal_bytes{$SEL} > 0)",
        "<", 5.0, "%", ("node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"),
        "memory probe available_low_percent"),
    Row("memory.swap_used_high", "swap used", "max",
        "100 - 100 * node_memory_SwapFree_bytes{$SEL} / (node_memory_SwapTotal_bytes{$SEL} > 0)", ">", 50.0, "%",
        ("node_memory_SwapFree_bytes", "node_memory_SwapTotal_bytes"), "memory probe swap_used_high_percent",
        default=0.0),
    Row("memory.swapping_active", "pages swapped in+out", "max",
        "rate(node_vmstat_pswpin{$SEL}[$W]) + rate(node_vmstat_pswpout{$SEL}[$W])", ">", 256.0, "pages/s",
        ("node_vmstat_pswpin", "node_vmstat_pswpout"), "memory probe swap_pages_per_second"),
    Row("memory.oom_kill", "OOM kills in the window", "max", "increase(node_vmstat_oom_kill{$SEL}[$W])", ">", 0.0, "",
        ("node_vmstat_oom_kill",), "any OOM kill (/proc/vmstat oom_kill, as the memory probe)"),
    # --- cpu, load ----------------------------------------------------------------------
    Row("cpu.saturated", "CPU busy (not idle, iowait or steal)", "max", _rate_share("idle|iowait|steal").replace(
        "100 * sum", "100 - 100 * sum", 1), ">=", 90.0, "%", _CPU + ("node_load1",), "cpu probe saturated_busy_percent",
        also=Cond("1-minute load per core", f"avg_over_time(node_load1{{$SEL}}[$W]) / on ({BY}) "
                  f'count by ({BY}) (node_cpu_seconds_total{{$SEL,mode="idle"}})', ">=", 1.0)),
    Row("cpu.saturated", "CPU pressure (PSI cpu some)", "max",
        "100 * rate(node_pressure_cpu_waiting_seconds_total{$SEL}[$W])", ">=", 40.0, "%",
        ("node_pressure_cpu_waiting_seconds_total",), "cpu probe saturated_psi_some_percent"),
    Row("cpu.steal_high", "CPU steal", "max", _rate_share("steal"), ">", 10.0, "%", _CPU,
        "cpu probe steal_high_percent", default=0.0),
    # --- file descriptors, clock, kernel ---------------------------------------------------
    Row("fd.exhausted", "file handles allocated of fs.file-max", "max",
        "100 * max_over_time(node_filefd_allocated{$SEL}[$W]) / (node_filefd_maximum{$SEL} > 0)", ">=", 95.0, "%",
        ("node_filefd_allocated", "node_filefd_maximum"), "fds probe file_max_percent"),
    # The clock probe by default does not count the kernel's STA_UNSYNC bit alone (VMs without a
    # time daemon keep time from the hypervisor): with sync_status 0 the offset is not known, and the
    # finding stays unknown.
    Row("time.unsynchronized", "clock offset (kernel synchronised)", "max",
        f"abs(node_timex_offset_seconds{{$SEL}}) and on ({BY}) (node_timex_sync_status{{$SEL}} == 1)", ">", 1.0, "s",
        ("node_timex_offset_seconds", "node_timex_sync_status"), "clock probe max_offset_s"),
    Row("kernel.hardware_error", "EDAC correctable memory errors in the window", "max",
        f"sum by ({BY}) (increase(node_edac_correctable_errors_total{{$SEL}}[$W]))", ">", 0.0, "",
        ("node_edac_correctable_errors_total",), "any new EDAC error (the kernel probe counts every EDAC line)"),
    Row("kernel.hardware_error", "EDAC uncorrectable memory errors in the window", "max",
        f"sum by ({BY}) (increase(node_edac_uncorrectable_errors_total{{$SEL}}[$W]))", ">", 0.0, "",
        ("node_edac_uncorrectable_errors_total",), "any new EDAC error"),
    Row("kernel.conntrack_full", "conntrack table used", "max",
        "100 * max_over_time(node_nf_conntrack_entries{$SEL}[$W]) / (node_nf_conntrack_entries_limit{$SEL} > 0)",
        ">=", 95.0, "%", ("node_nf_conntrack_entries", "node_nf_conntrack_entries_limit"),
        "at the limit the kernel drops new flows; 95% as for file handles"),
    # --- network ------------------------------------------------------------------------
    Row("net.packet_loss", "packets lost (errors + drops) of all", "max",
        f"100 * sum by ({BY}) ({_LOST}) / (sum by ({BY}) ({_PACKETS}) > 0)", ">", 1.0, "%", _NET_NEEDS,
        "net probe loss_ratio", default=0.0,
        also=Cond("packets lost in the window", f"sum by ({BY}) ({_LOST.replace('rate(', 'increase(')})", ">=", 5.0)),
    Row("net.listen_overflows", "listen queue drops in the window", "max",
        "increase(node_netstat_TcpExt_ListenDrops{$SEL}[$W])", ">", 0.0, "", ("node_netstat_TcpExt_ListenDrops",),
        "any accept-queue drop, as the net probe"),
    Row("net.retransmits_high", "TCP segments retransmitted", "max",
        "100 * rate(node_netstat_Tcp_RetransSegs{$SEL}[$W]) / (rate(node_netstat_Tcp_OutSegs{$SEL}[$W]) > 0)", ">", 2.0,
        "%", ("node_netstat_Tcp_RetransSegs", "node_netstat_Tcp_OutSegs"), "net probe retrans_ratio", default=0.0,
        also=Cond("segments retransmitted in the window", "increase(node_netstat_Tcp_RetransSegs{$SEL}[$W])", ">=", 10.0)),
    # --- services (their exporters) -----------------------------------------------------------
    *(Row("svc.down", f"{name} answering the exporter (1 up)", "min", f"min_over_time({metric}{{$SEL}}[$W])", "<", 1.0,
          "", (metric,), f"{name} exporter: {metric} 0 when it cannot reach the service", family=name)
      for name, metric in SERVICES),
    # Some exporters fail the whole scrape when their service is gone (postgres_exporter 0.11 answers
    # HTTP 500): then no `pg_up 0` comes, the target's `up` drops to 0. A target that exported the
    # service's `*_up` in the window and could not be scraped in it: the service or its exporter is down.
    *(Row("svc.down", f"{name} exporter scraped (up; 1 yes)", "min",
          f"min_over_time(up{{$SEL}}[$W]) and on ({BY}) group by ({BY}) (max_over_time({metric}{{$SEL}}[$W]))", "<",
          1.0, "", (metric,), f"{name} exporter target failing its scrapes after it exported {metric}", family=name)
      for name, metric in SERVICES),
    Row("svc.down", "blackbox probe succeeding (1 yes)", "min", "min_over_time(probe_success{$SEL}[$W])", "<", 1.0, "",
        ("probe_success",), "blackbox exporter: the probed endpoint did not answer as expected", family="blackbox"),
    # The postgres probe's share: sessions of the slots ordinary roles may use (max_connections less the
    # superuser reserve); postgres_exporter counts sessions by database and state, its own one included.
    Row("svc.db_connections_near_max", "postgres sessions of the slots ordinary roles may use", "max",
        f"100 * sum by ({BY}) (pg_stat_activity_count{{$SEL}}) / max by ({BY}) "
        "((pg_settings_max_connections{$SEL} - pg_settings_superuser_reserved_connections{$SEL}) > 0)",
        ">=", 90.0, "%", ("pg_stat_activity_count", "pg_settings_max_connections",
                          "pg_settings_superuser_reserved_connections"), "postgres probe connections_percent",
        family="postgres"),
    Row("svc.db_connections_near_max", "redis clients of maxclients", "max",
        "100 * max_over_time(redis_connected_clients{$SEL}[$W]) / (redis_config_maxclients{$SEL} > 0)", ">=", 90.0, "%",
        ("redis_connected_clients", "redis_config_maxclients"), "as the postgres probe's connections_percent",
        family="redis"),
    Row("svc.db_connections_near_max", "memcached connections of max", "max",
        "100 * max_over_time(memcached_current_connections{$SEL}[$W]) / (memcached_max_connections{$SEL} > 0)", ">=",
        90.0, "%", ("memcached_current_connections", "memcached_max_connections"),
        "as the postgres probe's connections_percent", family="memcached"),
    *(Row("svc.db_replication_lag_high", "postgres replica lag", "max", f"max_over_time({metric}{{$SEL}}[$W])",
          ">", 30.0, "s", (metric,), "redis probe replication_lag_s (the same line for postgres)", family="postgres")
      # postgres_exporter 0.11 names it pg_replication_lag; 0.13 and later pg_replication_lag_seconds
      for metric in ("pg_replication_lag", "pg_replication_lag_seconds")),
    Row("svc.cache_evictions_high", "redis keys evicted", "max", "rate(redis_evicted_keys_total{$SEL}[$W])", ">=", 1.0,
        "/s", ("redis_evicted_keys_total",), "redis probe evictions_per_s", family="redis",
        also=Cond("keys evicted in the window", "increase(redis_evicted_keys_total{$SEL}[$W])", ">=", 5.0)),
    Row("svc.cache_evictions_high", "memcached items evicted", "max", "rate(memcached_items_evicted_total{$SEL}[$W])",
        ">=", 1.0, "/s", ("memcached_items_evicted_total",), "memcached probe evictions_per_s", family="memcached",
        also=Cond("items evicted in the window", "increase(memcached_items_evicted_total{$SEL}[$W])", ">=", 5.0)),
    Row("tls.cert_expired", "certificate valid for", "min", "probe_ssl_earliest_cert_expiry{$SEL} - time()", "<", 0.0,
        "s", ("probe_ssl_earliest_cert_expiry",), "expired: valid until a time in the past", family="blackbox"),
    Row("tls.cert_expiring", "certificate valid for", "min", "probe_ssl_earliest_cert_expiry{$SEL} - time()", "<",
        14 * DAY, "s", ("probe_ssl_earliest_cert_expiry",), "tls probe expiring_days (14)", family="blackbox"),
)


def exported_names() -> tuple[str, ...]:
    """Every metric name a row needs, once, sorted."""
    return tuple(sorted({n for row in ROWS for n in row.needs}))
