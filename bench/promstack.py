"""A private Prometheus and its scrape targets on loopback, for the fleet tests and benchmark.

One helper in one place (tests/prom and bench/fleet import it): real processes from
the Debian packages (``/usr/bin/prometheus``, ``/usr/bin/prometheus-node-exporter``, the
service exporters), each in a folder of the stack's own temporary directory, on free
loopback ports; ``close`` stops every process it started and removes nothing it did not
make. A simulated host is a node_exporter with only its textfile collector, serving the
metrics a test writes in node_exporter's names.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
BLACKBOX_EXPORTER = "/usr/bin/prometheus-blackbox-exporter"


def free_port() -> int:
    from ddx.drill.sandbox import free_port as pick

    return pick()


def wait_port(port: int, what: str, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} does not listen on 127.0.0.1:{port} after {timeout:g} s")
        time.sleep(0.1)


@dataclass
class Textfile:
    """A simulated host: a node_exporter serving what ``write`` puts in its textfile folder."""

    port: int
    folder: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def write(self, text: str) -> None:
        """Replace the host's metrics (Prometheus text format) atomically."""
        tmp = self.folder / ".metrics.prom.tmp"
        tmp.write_text(text)
        tmp.rename(self.folder / "metrics.prom")


@dataclass
class PromStack:
    """Processes of one stack; ``jobs`` maps a job name to its target addresses."""

    root: Path
    interval: str = "1s"
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    jobs: dict[str, list[str]] = field(default_factory=dict)
    custom: list[dict[str, Any]] = field(default_factory=list)  # scrape configs as written (blackbox jobs)
    port: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # what our own requests to Prometheus send

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with open(self.root / f"{name}.log", "ab") as log:
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        self.procs.append((name, p))
        return p

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        """Stop one process this stack started (SIGTERM, then SIGKILL to its group)."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(15)

    def close(self) -> None:
        for _, p in reversed(self.procs):
            self.stop(p)

    def log(self, name: str) -> str:
        try:
            return (self.root / f"{name}.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def textfile_host(self, name: str, job: str = "node") -> Textfile:
        """A node_exporter with only the textfile collector: a simulated host of ``job``."""
        folder = self.root / name
        folder.mkdir()
        port = free_port()
        p = self.spawn(name, [NODE_EXPORTER, "--collector.disable-defaults", "--collector.textfile",
                              f"--collector.textfile.directory={folder}", f"--web.listen-address=127.0.0.1:{port}"])
        wait_port(port, f"node_exporter {name}", p)
        host = Textfile(port, folder)
        self.jobs.setdefault(job, []).append(host.address)
        return host

    def node_exporter(self, name: str, job: str) -> str:
        """A node_exporter with its default collectors: this machine."""
        port = free_port()
        p = self.spawn(name, [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
                              f"--collector.textfile.directory={self.root / name}"])
        wait_port(port, f"node_exporter {name}", p)
        address = f"127.0.0.1:{port}"
        self.jobs.setdefault(job, []).append(address)
        return address

    def blackbox(self, job: str, modules: dict[str, Any], targets: dict[str, list[str]],
                 exporter: str = BLACKBOX_EXPORTER) -> str:
        """A blackbox_exporter with ``modules``, and a scrape job per module probing its ``targets``
        (the target becomes the ``instance`` label, as the exporter's documentation configures it)."""
        cfg = self.root / f"{job}.yml"
        cfg.write_text(yaml.safe_dump({"modules": modules}))
        port = free_port()
        p = self.spawn(job, [exporter, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{port}"])
        wait_port(port, "blackbox_exporter", p)
        for module, addrs in targets.items():
            self.custom.append({
                "job_name": f"{job}-{module}" if len(targets) > 1 else job, "metrics_path": "/probe",
                "params": {"module": [module]}, "static_configs": [{"targets": addrs}],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": f"127.0.0.1:{port}"},
                ],
            })
        return f"127.0.0.1:{port}"

    def target(self, job: str, address: str) -> None:
        self.jobs.setdefault(job, []).append(address)

    def prometheus(self, timeout: float = 60.0, extra: dict[str, Any] | None = None, flags: list[str] | None = None,
                   ready_auth: tuple[str, str] | None = None) -> str:
        """Start Prometheus scraping every job's targets every ``interval``; its URL once ready
        (``flags``: more command-line flags; ``ready_auth``: the basic auth its web config wants)."""
        cfg = {
            "global": {"scrape_interval": self.interval, "scrape_timeout": self.interval},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in self.jobs.items()] + self.custom,
            **(extra or {}),
        }
        path = self.root / "prometheus.yml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        data = self.root / "tsdb"
        data.mkdir(exist_ok=True)
        self.port = free_port()
        p = self.spawn("prometheus", [PROMETHEUS, f"--config.file={path}", f"--storage.tsdb.path={data}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d",
                                      *(flags or [])])
        if ready_auth is not None:
            import base64

            self.headers["Authorization"] = "Basic " + base64.b64encode(":".join(ready_auth).encode()).decode()
        deadline = time.monotonic() + timeout
        while True:
            if p.poll() is not None:
                raise RuntimeError(f"prometheus exited ({p.returncode}): {self.log('prometheus')}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(urllib.request.Request(f"{self.url}/-/ready", headers=self.headers),
                                            timeout=2) as r:
                    if r.status == 200:
                        return self.url
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready: {self.log('prometheus')}")
            time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(urllib.request.Request(url, headers=self.headers), timeout=10) as r:
            return list(json.loads(r.read())["data"]["result"])

    def wait_until(self, expr: str, what: str, timeout: float = 60.0, count: int = 1) -> None:
        """Until ``expr`` returns at least ``count`` series."""
        deadline = time.monotonic() + timeout
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError):
                got = self.query(expr)
                if len(got) >= count:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{what}: {expr} gave {len(got)} series of {count} after {timeout:g} s")


@contextlib.contextmanager
def prom_stack(root: Path, interval: str = "1s") -> Iterator[PromStack]:
    stack = PromStack(root, interval)
    try:
        yield stack
    finally:
        stack.close()


def missing_tools(*paths: str) -> list[str]:
    return [p for p in (PROMETHEUS, NODE_EXPORTER, *paths) if not os.access(p, os.X_OK)]


@dataclass
class SimHost:
    """The metrics of a simulated host in node_exporter's names, as a function of time:
    counters grow at the rates given (CPU seconds by mode, packets, segments, EDAC errors),
    gauges are as set. Change a field to give the host a fault."""

    cpus: int = 2
    busy: float = 0.15  # share of CPU time busy (user)
    iowait: float = 0.01
    load1: float = 0.3
    fs_size: float = 100e9
    fs_avail: float = 60e9
    fs_files: float = 6e6
    fs_files_free: float = 5e6
    mem_total: float = 8e9
    mem_avail: float = 4e9
    edac_per_s: float = 0.0
    packets_per_s: float = 1000.0
    segs_per_s: float = 500.0
    retrans_per_s: float = 1.0
    start: float = field(default_factory=time.time)
    edac_since: float = field(default_factory=time.time)
    edac_base: float = 0.0  # errors counted before the last change of edac_per_s
    extra: str = ""
    node: bool = True  # False: only ``extra`` (a service exporter simulated)

    def set_edac(self, per_s: float, now: float | None = None) -> None:
        """Errors from now on at ``per_s`` (the counter keeps what it counted: it never goes down)."""
        now = time.time() if now is None else now
        self.edac_base += self.edac_per_s * (now - self.edac_since)
        self.edac_per_s, self.edac_since = per_s, now

    def text(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        if not self.node:
            return self.extra
        t = max(0.0, now - self.start) + 10_000.0
        lines = []
        idle = max(0.0, 1.0 - self.busy - self.iowait)
        for c in range(self.cpus):
            for mode, share in (("idle", idle), ("user", self.busy), ("iowait", self.iowait), ("steal", 0.0)):
                lines.append(f'node_cpu_seconds_total{{cpu="{c}",mode="{mode}"}} {share * t:.3f}')
        fs = 'device="/dev/vda1",fstype="ext4",mountpoint="/"'
        lines += [
            f"node_load1 {self.load1}",
            f"node_filesystem_size_bytes{{{fs}}} {self.fs_size:.0f}",
            f"node_filesystem_avail_bytes{{{fs}}} {self.fs_avail:.0f}",
            f"node_filesystem_files{{{fs}}} {self.fs_files:.0f}",
            f"node_filesystem_files_free{{{fs}}} {self.fs_files_free:.0f}",
            f"node_filesystem_readonly{{{fs}}} 0",
            f"node_memory_MemTotal_bytes {self.mem_total:.0f}",
            f"node_memory_MemAvailable_bytes {self.mem_avail:.0f}",
            "node_memory_SwapTotal_bytes 0",
            "node_memory_SwapFree_bytes 0",
            "node_vmstat_oom_kill 0",
            "node_filefd_allocated 1024",
            "node_filefd_maximum 1000000",
            "node_timex_offset_seconds 0.0002",
            "node_timex_sync_status 1",
            "node_timex_maxerror_seconds 0.02",
            f'node_edac_correctable_errors_total{{controller="0"}} {self.edac_base + self.edac_per_s * (now - self.edac_since):.0f}',
            'node_edac_uncorrectable_errors_total{controller="0"} 0',
            f"node_netstat_Tcp_OutSegs {self.segs_per_s * t:.0f}",
            f"node_netstat_Tcp_RetransSegs {self.retrans_per_s * t:.0f}",
            "node_netstat_TcpExt_ListenDrops 0",
        ]
        for d in ("receive", "transmit"):
            lines.append(f'node_network_{d}_packets_total{{device="eth0"}} {self.packets_per_s * t:.0f}')
            lines.append(f'node_network_{d}_errs_total{{device="eth0"}} 0')
            lines.append(f'node_network_{d}_drop_total{{device="eth0"}} 0')
        return "\n".join(lines) + "\n" + self.extra


class Writer:
    """Rewrites each simulated host's textfile every ``every`` seconds (counters grow) until closed."""

    def __init__(self, hosts: list[tuple[Textfile, SimHost]], every: float = 0.5) -> None:
        import threading

        self.hosts = hosts
        self.every = every
        self.done = threading.Event()
        self.write()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def write(self) -> None:
        now = time.time()
        for tf, sim in self.hosts:
            tf.write(sim.text(now))

    def _run(self) -> None:
        while not self.done.wait(self.every):
            with contextlib.suppress(OSError):
                self.write()

    def close(self) -> None:
        self.done.set()
        self.thread.join(10)
