"""node_exporter and two Prometheus servers watching the drill host, for the side-by-side.

One Prometheus loads the awesome-prometheus-alerts node_exporter rules as
shipped, ``for:`` durations kept; the other a copy with every ``for:`` at 0s (the
most eager threshold alerting can be). Both scrape one node_exporter every
``interval`` seconds and evaluate their rules as often, so an alert can fire
within the same time budget ddx has.

The pure parts (rule rewriting, configuration, reading the HTTP API's answers)
are separate from the processes so tests feed them samples.

The sandbox's disks are tmpfs mounts (so a drill never fills a real disk), and
the shipped disk rules skip tmpfs (``fstype!~"^(fuse.*|tmpfs|cifs|nfs)"``): left
alone they could never see a drill's full disk, which on a real host would be
ext4 or xfs. The scrape relabels the ``fstype`` of tmpfs mounts *inside the drill
folder* only (to ``drill-tmpfs``), so the rules stay as shipped and the host's own
tmpfs mounts (/run, /dev/shm) stay excluded as they would be in production.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "AlertSeen",
    "Monitors",
    "MonitorError",
    "VARIANTS",
    "alert_timeline",
    "collector_status",
    "exposed_metrics",
    "prometheus_config",
    "rule_metrics",
    "rules_of",
    "summarise_variant",
    "zero_for",
]

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
RELABELLED_FSTYPE = "drill-tmpfs"

# variant name -> how the docs call it
VARIANTS = {"shipped": "for: as shipped", "for0": "for: 0s"}

# collectors the shipped rules read (node_scrape_collector_success names)
NEEDED_COLLECTORS = ("cpu", "meminfo", "vmstat", "filesystem", "diskstats", "netdev", "netclass", "stat",
                     "edac", "hwmon", "mdadm", "bonding", "conntrack", "timex", "uname")


class MonitorError(Exception):
    """node_exporter or Prometheus could not be started or asked."""


# --- rules (pure) -----------------------------------------------------------------------

def rules_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every alerting rule of a Prometheus rules document, in file order."""
    return [r for g in doc.get("groups") or [] for r in g.get("rules") or [] if "alert" in r]


def zero_for(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy of a rules document with every alerting rule's ``for:`` set to 0s
    (the input is left alone)."""
    out = copy.deepcopy(doc)
    for rule in rules_of(out):
        rule["for"] = "0s"
    return out


def dump_rules(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=10_000)


_METRIC = re.compile(r"\b(node_[A-Za-z0-9_]+)\b")


def rule_metrics(expr: str) -> set[str]:
    """The node_exporter metric names a rule expression reads (they all start with node_)."""
    return set(_METRIC.findall(expr))


def _shown_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it: results carry no
    absolute path of the machine that ran them."""
    root = Path(__file__).resolve().parents[2]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return path.name


def prometheus_config(node_target: str, rules_file: Path, *, interval: float, drill_root: Path | None) -> str:
    """prometheus.yml: scrape one node_exporter, evaluate one rules file, every ``interval``
    seconds; with ``drill_root``, tmpfs mounts below it are relabelled so the disk rules
    (which skip tmpfs) see them as the disks they stand for."""
    every = f"{int(interval * 1000)}ms"
    job: dict[str, Any] = {"job_name": "node", "static_configs": [{"targets": [node_target]}]}
    if drill_root is not None:
        job["metric_relabel_configs"] = [{
            "source_labels": ["fstype", "mountpoint"],
            "regex": f"tmpfs;{re.escape(str(drill_root))}/.+",
            "target_label": "fstype",
            "replacement": RELABELLED_FSTYPE,
        }]
    cfg = {
        "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
        "rule_files": [str(rules_file)],
        "scrape_configs": [job],
    }
    return yaml.safe_dump(cfg, sort_keys=False)


# --- node_exporter output (pure) ----------------------------------------------------------

def exposed_metrics(text: str) -> set[str]:
    """Metric names present in a Prometheus text exposition."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def collector_status(text: str) -> dict[str, bool]:
    """node_scrape_collector_success per collector, from a node_exporter scrape."""
    out = {}
    for m in re.finditer(r'^node_scrape_collector_success\{collector="([^"]+)"\}\s+(\S+)', text, re.M):
        out[m.group(1)] = float(m.group(2)) == 1.0
    return out


# --- alerts (pure) ------------------------------------------------------------------------

_NOISE_LABELS = {"__name__", "alertname", "alertstate", "instance", "job", "severity"}


@dataclass(frozen=True)
class AlertSeen:
    """One alert (by name) seen active in a window, times relative to the injection."""

    name: str
    first_pending_s: float | None
    first_firing_s: float | None
    carried_over: bool  # already active when the fault was injected (an earlier scenario's)
    conditions: tuple[str, ...]
    targets: tuple[str, ...] = field(default_factory=tuple)  # e.g. mountpoint=/..., the series' labels

    @property
    def fired(self) -> bool:
        return self.first_firing_s is not None


def alert_timeline(payload: dict[str, Any], t0: float, conditions: Any) -> list[AlertSeen]:
    """Read the answer to a range query on ``ALERTS`` (the series Prometheus writes for
    pending and firing alerts at each evaluation) into one AlertSeen per alert name. ``t0``: the injection
    (unix time); a series whose first sample is at or before it was already active.
    ``conditions(name)`` gives the conditions an alert names."""
    if payload.get("status") != "success":
        raise MonitorError(f"Prometheus query failed: {payload.get('errorType', '')} {payload.get('error', '')}")
    data = payload.get("data") or {}
    if data.get("resultType") != "matrix":
        raise MonitorError(f"expected a matrix from a range query, got {data.get('resultType')!r}")
    per_series: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, float]] = {}
    for s in data.get("result") or []:
        labels = s.get("metric") or {}
        name, state = labels.get("alertname", "?"), labels.get("alertstate", "")
        key = (name, tuple(sorted((k, v) for k, v in labels.items() if k not in ("__name__", "alertstate"))))
        times = [float(ts) for ts, v in s.get("values") or [] if v not in ("0", "NaN")]
        if not times:
            continue
        firsts = per_series.setdefault(key, {})
        firsts[state] = min(firsts.get(state, float("inf")), min(times))
    by_name: dict[str, list[tuple[tuple[tuple[str, str], ...], dict[str, float]]]] = {}
    for (name, labels), firsts in per_series.items():
        by_name.setdefault(name, []).append((labels, firsts))
    out = []
    for name in sorted(by_name):
        series = by_name[name]
        new = [(lab, f) for lab, f in series if min(f.values()) > t0]
        counted = new or series  # an alert with a new series is new; else all of it was already there
        pend = [f["pending"] for _l, f in counted if "pending" in f]
        fire = [f["firing"] for _l, f in counted if "firing" in f]
        targets = sorted({",".join(f"{k}={v}" for k, v in lab if k not in _NOISE_LABELS) for lab, _f in counted} - {""})
        out.append(AlertSeen(
            name=name,
            first_pending_s=round(min(pend) - t0, 1) if pend else None,
            first_firing_s=round(min(fire) - t0, 1) if fire else None,
            carried_over=not new,
            conditions=tuple(conditions(name)),
            targets=tuple(targets),
        ))
    return out


def summarise_variant(alerts: list[AlertSeen], expected: str) -> dict[str, Any]:
    """What one Prometheus said about one scenario: the alerts that fired (or were only
    pending) after the injection, those carried over from before, and whether any new
    firing alert names the expected condition (and when it first fired)."""
    new = [a for a in alerts if not a.carried_over]
    fired = [a for a in new if a.fired]
    naming = [a for a in fired if expected and expected in a.conditions]
    pending_naming = [a for a in new if not a.fired and expected and expected in a.conditions]
    return {
        "fired": [a.name for a in fired],
        "pending_only": [a.name for a in new if not a.fired],
        "carried_over": [a.name for a in alerts if a.carried_over],
        "names_cause": bool(naming),
        "naming": [a.name for a in naming],
        "first_naming_s": min((a.first_firing_s for a in naming if a.first_firing_s is not None), default=None),
        "pending_names_cause": bool(pending_naming),
        # active before the injection and naming the cause: said before the fault, so it does not
        # count, but it was on the dashboard during the incident (back-to-back scenarios only)
        "carried_naming": [a.name for a in alerts if a.carried_over and expected and expected in a.conditions],
        "alerts": [{**asdict(a), "conditions": list(a.conditions), "targets": list(a.targets)} for a in alerts],
    }


# --- processes --------------------------------------------------------------------------

def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
        return r.read()


def _version(binary: str) -> str:
    try:
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    first = (r.stdout or r.stderr).strip().splitlines()
    m = re.match(r"(\S+), version (\S+)", first[0]) if first else None
    return f"{m.group(1)} {m.group(2)}" if m else (first[0] if first else "unknown")


def missing_tools() -> list[str]:
    return [f"{p} (apt-get install {pkg})" for p, pkg in
            ((PROMETHEUS, "prometheus"), (NODE_EXPORTER, "prometheus-node-exporter")) if not Path(p).exists()]


@dataclass
class PromServer:
    variant: str
    port: int
    rules_file: Path
    rules: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        url = f"{self.base}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            body = _get(url, timeout=10)
        except urllib.error.HTTPError as exc:  # Prometheus answers errors as JSON with 4xx
            body = exc.read()
        except (OSError, urllib.error.URLError) as exc:
            raise MonitorError(f"Prometheus {self.variant} on port {self.port}: {exc}") from exc
        return json.loads(body)

    def alerts_between(self, start: float, end: float) -> dict[str, Any]:
        """Every ALERTS sample in (start, end], with the times of the evaluations that wrote
        them (a range selector returns raw samples: no step, no look-back)."""
        window_ms = max(1, round((end - start) * 1000))
        return self.api("query", query=f"ALERTS[{window_ms}ms]", time=f"{end:.3f}")


class Monitors:
    """node_exporter plus one Prometheus per variant, all spawned in ``sb`` (so the
    sandbox's clean-up stops them and removes their data)."""

    def __init__(self, sb: Any, rules_src: Path, *, interval: float = 1.0, relabel_tmpfs: bool = True,
                 drill_root: Path | None = None) -> None:
        self.sb = sb
        self.rules_src = rules_src
        self.interval = interval
        self.relabel_root = drill_root if relabel_tmpfs else None
        self.node_port = 0
        self.servers: dict[str, PromServer] = {}
        self.info: dict[str, Any] = {}
        self.procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}

    def dead(self) -> list[str]:
        """Monitor processes that exited, each with its status and the end of its log."""
        out = []
        for name, (proc, log) in self.procs.items():
            if proc.poll() is not None:
                try:
                    tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
                except OSError:
                    tail = "(no log)"
                out.append(f"{name} exited with status {proc.returncode}: {tail}")
        return out

    def start(self, timeout: float = 60.0) -> Monitors:
        from ddx.drill.sandbox import free_port

        missing = missing_tools()
        if missing:
            raise MonitorError("missing: " + "; ".join(missing))
        try:
            doc = yaml.safe_load(self.rules_src.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise MonitorError(f"cannot read the rules {self.rules_src}: {exc}") from exc
        rules = rules_of(doc)
        if not rules:
            raise MonitorError(f"{self.rules_src}: no alerting rules")
        deadline = time.monotonic() + timeout

        self.node_port = free_port()
        textfiles = self.sb.path("node-exporter", "textfile")
        node_argv = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{self.node_port}",
                     f"--collector.textfile.directory={textfiles}"]
        if Path("/run/systemd/system").is_dir():  # systemd is PID 1: HostSystemdServiceCrashed can see units
            node_argv.append("--collector.systemd")
        # as root: a drill's 0700 folders must not turn into statfs errors a real host would not have
        self.procs["node_exporter"] = (self.sb.spawn(node_argv, log=self.sb.dir / "node-exporter" / "log"),
                                       self.sb.dir / "node-exporter" / "log")
        metrics = self._wait_node(deadline)

        user = _service_user()
        for variant in VARIANTS:
            folder = self.sb.path(f"prometheus-{variant}", owner=user)
            rules_file = folder / "rules.yml"
            if variant == "shipped":
                shutil.copyfile(self.rules_src, rules_file)  # byte for byte
            else:
                rules_file.write_text(dump_rules(zero_for(doc)))
            cfg = folder / "prometheus.yml"
            cfg.write_text(prometheus_config(f"127.0.0.1:{self.node_port}", rules_file, interval=self.interval,
                                             drill_root=self.relabel_root))
            _promtool_check(cfg)
            data = self.sb.path(f"prometheus-{variant}", "data", owner=user)
            port = free_port()
            proc = self.sb.spawn([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={data}",
                                  f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=2d"],
                                 log=folder / "log", user=user)
            self.procs[f"prometheus {variant}"] = (proc, folder / "log")
            self.servers[variant] = PromServer(variant, port, rules_file)
        for srv in self.servers.values():
            self._wait_prometheus(srv, len(rules), deadline)

        status = collector_status(metrics)
        present = exposed_metrics(metrics)
        self.info = {
            "prometheus": _version(PROMETHEUS),
            "node_exporter": _version(NODE_EXPORTER),
            "rules_file": _shown_path(self.rules_src),
            "rules": len(rules),
            "interval_s": self.interval,
            "tmpfs_relabelled_below": str(self.relabel_root) if self.relabel_root else None,
            "collectors_failing": sorted(c for c in NEEDED_COLLECTORS if not status.get(c, False)),
            # rules that cannot fire on this host: a metric they read is not exposed here
            # (no EDAC controller, no hwmon sensors, no md RAID, no bond in a VM)
            "rules_without_metrics": {
                r["alert"]: sorted(m for m in rule_metrics(r["expr"]) if m not in present)
                for r in rules if any(m not in present for m in rule_metrics(r["expr"]))
            },
        }
        return self

    def _wait_node(self, deadline: float) -> str:
        url = f"http://127.0.0.1:{self.node_port}/metrics"
        while True:
            try:
                return _get(url).decode("utf-8", errors="replace")
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise MonitorError(f"node_exporter did not answer on {url}: {exc}; see "
                                       f"{self.sb.dir / 'node-exporter' / 'log'}") from exc
                time.sleep(0.2)

    def _wait_prometheus(self, srv: PromServer, n_rules: int, deadline: float) -> None:
        """Until the server is ready, has loaded every rule, and has a few scrapes of the
        node (rate() needs two samples)."""
        last = ""
        while time.monotonic() < deadline:
            try:
                groups = srv.api("rules").get("data", {}).get("groups", [])
                srv.rules = sum(1 for g in groups for r in g.get("rules", []) if r.get("type") == "alerting")
                ok = srv.api("query", query="count_over_time(up{job=\"node\"}[1m]) >= 3 and up == 1")
                if srv.rules == n_rules and ok.get("data", {}).get("result"):
                    return
                last = f"{srv.rules}/{n_rules} rules loaded, node scraped fewer than 3 times"
            except (MonitorError, ValueError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise MonitorError(f"Prometheus {srv.variant} not ready: {last}; see {srv.rules_file.parent / 'log'}")

    def alerts(self, variant: str, start: float, end: float) -> dict[str, Any]:
        """The raw ALERTS samples between two unix times."""
        try:
            return self.servers[variant].alerts_between(start, end)
        except MonitorError as exc:
            dead = self.dead()
            raise MonitorError("; ".join([str(exc), *dead])) from exc


def _service_user() -> str:
    import pwd

    for user in ("prometheus", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    return "root"


def _promtool_check(cfg: Path) -> None:
    """`promtool check config` (which also checks the rule files) when promtool is there."""
    if not Path(PROMTOOL).exists():
        return
    r = subprocess.run([PROMTOOL, "check", "config", str(cfg)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise MonitorError(f"promtool rejects {cfg}:\n{(r.stdout + r.stderr).strip()}")
