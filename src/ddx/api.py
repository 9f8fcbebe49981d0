"""The library entry point: evidence in, a typed report out.

The command line, a daemon and a web front end call these functions and render
the ``Report`` they return; nothing here prints. One pipeline, one direction::

    host or bundle -> inventory -> probes -> findings -> coverage, timing -> engine -> Report
    case file ----------------------------> findings ----------------^

- ``diagnose_host``: probe this host (or replay a bundle with ``bundle=``, or a
  remote host over SSH with ``ssh=SshOptions(...)``);
- ``diagnose_ssh``: several remote hosts over SSH, in parallel;
- ``diagnose_case``: an incident described in a case file;
- ``diagnose_findings``: findings a caller already has (``--saw``/``--ruled-out``);
- ``diagnose_prometheus``: one instance from its metrics in Prometheus, against its peers;
- ``fleet``: every instance of a job in Prometheus, sickest first.

Each takes ``observations``, a person's own findings, which win over the
probes'. Errors are ``ddx.errors.DdxError`` with one clear message.

Example::

    from ddx.api import diagnose_host
    report = diagnose_host()
    top = report.diagnosis.hypotheses[0]
    print(top.id, round(top.probability, 2), report.onset.basis)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ddx.engine.diagnosis import Diagnosis
from ddx.engine.timing import Onset
from ddx.errors import DdxError
from ddx.inventory.model import Inventory
from ddx.kb.model import KnowledgeBase
from ddx.model import Finding
from ddx.probes.base import ProbeResult

if TYPE_CHECKING:
    from ddx.prom.fleet import FleetEntry

__all__ = [
    "Report",
    "SshOptions",
    "diagnose_case",
    "diagnose_findings",
    "diagnose_host",
    "diagnose_host_json",
    "diagnose_prometheus",
    "diagnose_ssh",
    "fleet",
    "load_knowledge",
]


@dataclass(frozen=True)
class Report:
    """Everything one diagnosis made: the diagnosis, the findings as judged (with
    their strengths against the onset), what the probes did, the inventory."""

    diagnosis: Diagnosis
    findings: tuple[Finding, ...]
    onset: Onset | None = None
    inventory: Inventory | None = None
    probes: tuple[ProbeResult, ...] = ()
    host: str = ""
    started: str = ""
    seconds: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)


def load_knowledge(kb_dirs: Sequence[str] = ()) -> KnowledgeBase:
    from ddx.kb.loader import load_kb

    return load_kb(list(kb_dirs))


def _judge(
    kb: KnowledgeBase, evidence: Sequence[Finding], person: Sequence[Finding], now: float | None, meta: dict[str, Any],
    checks: int, facts: Any = None, inventory: Inventory | None = None,
) -> tuple[Diagnosis, list[Finding], Onset | None]:
    from ddx.engine.coverage import refine_coverage, refine_down_coverage
    from ddx.engine.diagnosis import diagnose
    from ddx.engine.timing import weigh_by_time
    from ddx.model import merge_findings

    onset = None
    evidence = refine_down_coverage(refine_coverage(evidence, inventory))
    if now is not None:
        evidence, onset = weigh_by_time(list(evidence), kb, now)
        meta["onset"] = onset.to_dict()
    findings = merge_findings(list(evidence), list(person))
    d = diagnose(kb, findings, meta=meta, checks=checks, facts=facts)
    return d, findings, onset


def diagnose_host(
    *,
    bundle: str | None = None,
    config: str | None = None,
    only: Iterable[str] | None = None,
    window: float | None = None,
    timeout: float | None = None,
    budget: float | None = None,
    targets: Sequence[str] = (),
    observations: Sequence[Finding] = (),
    kb_dirs: Sequence[str] = (),
    checks: int = 3,
    save_bundle: str | None = None,
    ssh: SshOptions | None = None,
) -> Report:
    """Probe this host (read-only, time-boxed), or replay ``bundle``, or probe the
    remote host ``ssh`` names over SSH (``docs/ssh.md``), and diagnose it.
    ``save_bundle``: also save what the probes read into an evidence bundle at that
    path (live and SSH hosts); ``meta["bundle"]`` is the path written, or the reason
    it could not be (``meta["bundle_error"]``). An SSH host that cannot be reached,
    or whose connection drops during the probes, raises ``ddx.errors.SshError``."""
    from ddx.config import load_config, with_targets
    from ddx.engine.facts import facts_from
    from ddx.host import RecordingHost
    from ddx.probes.runner import run_probes

    if bundle is not None and ssh is not None:
        from ddx.errors import UsageError

        raise UsageError("give either a bundle or an SSH host, not both")
    kb = load_knowledge(kb_dirs)
    cfg = with_targets(load_config(config), list(targets))
    inner: Any = None
    if ssh is not None:
        inner = ssh.connect()
    elif bundle is None:
        from ddx.host import LiveHost

        inner = LiveHost()
    try:
        if inner is None:
            from ddx.host import BundleHost

            host: Any = BundleHost(str(bundle))
        else:
            host = RecordingHost(inner) if save_bundle else inner
        col = run_probes(host, cfg, only=only, window=window, timeout=timeout, budget=budget)
        if ssh is not None:
            ssh.check(inner)
    finally:  # an SshHost's clock (host.time below) still answers once closed
        if ssh is not None:
            inner.close()
    saved: dict[str, str] = {}
    if save_bundle and bundle is None:
        try:
            saved["bundle"] = host.save(save_bundle, col, extra={"config": cfg.path})
        except OSError as exc:  # a full disk must not cost the diagnosis
            saved["bundle_error"] = f"cannot write bundle {save_bundle}: {exc.strerror or exc}"
    evidence = [f for f in col.findings if f.id in kb.findings]
    probes = [r.to_dict() for r in col.results]
    seconds = round(col.seconds, 3)
    if bundle is not None:
        # A replay reports the times the probes took on the recorded host, so that
        # replaying the same bundle gives the same bytes.
        recorded = host.manifest.get("collection") or {}
        took = {r.get("name"): r.get("seconds") for r in recorded.get("results", []) if isinstance(r, dict)}
        for p in probes:
            p["seconds"] = took.get(p["name"], 0.0)
        seconds = recorded.get("seconds", 0.0)
    meta: dict[str, Any] = {
        "mode": "bundle" if bundle else "host",
        "host": col.host,
        **({"ssh": ssh.target} if ssh is not None else {}),
        "probes": probes,
        "collection_seconds": seconds,
        **saved,
    }
    d, findings, onset = _judge(kb, evidence, observations, host.time(), meta, checks,
                                facts_from(col.inventory, evidence), col.inventory)
    return Report(d, tuple(findings), onset, col.inventory, col.results, col.host, col.started, col.seconds, meta)


@dataclass(frozen=True)
class SshOptions:
    """A remote host to probe over SSH: ``target`` is ``[user@]host`` or an ssh
    config alias; ``ssh_config`` is passed as ``ssh -F``, ``options`` as ``-o``."""

    target: str
    ssh_config: str | None = None
    options: tuple[str, ...] = ()
    connect_timeout: float = 10.0

    def connect(self) -> Any:
        from ddx.host.ssh import SshHost

        return SshHost(self.target, ssh_config=self.ssh_config, options=self.options,
                       connect_timeout=self.connect_timeout)

    def check(self, host: Any) -> None:
        """Refuse a diagnosis made while the connection dropped (its reads failed)."""
        from ddx.errors import SshError

        if host.lost is not None:
            raise SshError(f"ssh {self.target}: the connection dropped during the probes ({host.lost})")


def diagnose_ssh(hosts: Sequence[str], *, ssh_config: str | None = None, ssh_options: Sequence[str] = (),
                 connect_timeout: float = 10.0, save_bundles: Sequence[str | None] | None = None,
                 processes: int | None = None, **kwargs: Any) -> list[Report | DdxError]:
    """Probe several remote hosts over SSH in parallel and diagnose each: per host
    (``[user@]host`` or an ssh config alias), in the order given, its ``Report``
    or the ``DdxError`` saying why it could not be diagnosed (one host's failure
    never hides the others' diagnoses). One thread and one SSH connection per
    host, spread over worker processes for many hosts (``ddx.sshfleet``).
    ``kwargs`` are ``diagnose_host``'s (``config``, ``only``, ``budget``...);
    ``save_bundles``: one bundle path (or None) per host."""
    from ddx.sshfleet import diagnose_many

    paths = list(save_bundles) if save_bundles is not None else [None] * len(hosts)
    calls = [dict(kwargs, ssh=SshOptions(h, ssh_config, tuple(ssh_options), connect_timeout), save_bundle=p)
             for h, p in zip(hosts, paths)]
    return diagnose_many(calls, processes)


def diagnose_host_json(**kwargs: Any) -> dict[str, Any]:
    """``diagnose_host(**kwargs)`` as the JSON ``ddx diagnose --json`` prints, plus ``host``
    and, when a bundle was saved (or could not be), ``bundle`` / ``bundle_error``: what the
    watch daemon and the web server store with an incident."""
    from ddx.render.jsonout import to_dict

    report = diagnose_host(**kwargs)
    out = to_dict(report.diagnosis)
    out["host"] = report.host
    for key in ("bundle", "bundle_error"):
        if key in report.meta:
            out[key] = report.meta[key]
    return out


def diagnose_case(
    path: str, *, observations: Sequence[Finding] = (), kb_dirs: Sequence[str] = (), checks: int = 3
) -> tuple[Report, list[str]]:
    """Diagnose the incident a case file describes; returns the report and the case's warnings."""
    from ddx.cases import load_case

    kb = load_knowledge(kb_dirs)
    case = load_case(path, kb.findings.keys())
    meta: dict[str, Any] = {**case.meta, "mode": "case", "case_file": path}
    d, findings, _ = _judge(kb, case.findings, observations, None, meta, checks)
    return Report(d, tuple(findings), meta=meta), list(case.warnings)


def diagnose_findings(
    observations: Sequence[Finding], *, kb_dirs: Sequence[str] = (), checks: int = 3
) -> Report:
    """Diagnose from a person's observations alone."""
    kb = load_knowledge(kb_dirs)
    meta: dict[str, Any] = {"mode": "observations"}
    d, findings, _ = _judge(kb, [], observations, None, meta, checks)
    return Report(d, tuple(findings), meta=meta)


def diagnose_prometheus(
    url: str, instance: str, *, window: str = "15m", peers: str | None = None, baseline: str | None = "24h",
    timeout: float = 10.0, at: float | None = None, observations: Sequence[Finding] = (),
    kb_dirs: Sequence[str] = (), checks: int = 3,
) -> Report:
    """Diagnose ``instance`` (its ``instance`` label) from the metrics Prometheus at ``url`` holds
    over ``window`` (a PromQL duration) before ``at`` (now), against its peers (the other instances
    of its job, or those the label matchers ``peers`` select: ``'role="web"'``) and its own
    ``baseline`` of history (None: no history). ``meta["prometheus"]`` holds the peer statistics,
    ``meta["warnings"]`` what a person must know beside the diagnosis (the target is down)."""
    from ddx.prom.assess import check_duration, instance_evidence
    from ddx.prom.client import PromClient

    window = check_duration(window, "--window")
    baseline = check_duration(baseline, "--baseline") if baseline else None
    kb = load_knowledge(kb_dirs)
    client = PromClient(url, timeout=timeout)
    a = instance_evidence(client, instance, kb, window=window, peers=peers, baseline=baseline, at=at)
    meta: dict[str, Any] = {"mode": "prometheus", "host": instance, "warnings": a.warnings(),
                            "prometheus": a.meta(client.shown, window, peers or f'job="{",".join(a.jobs)}"')}
    d, findings, _ = _judge(kb, a.findings, observations, None, meta, checks)
    return Report(d, tuple(findings), host=instance, meta=meta)


def fleet(
    url: str, *, job: str | None = None, window: str = "15m", timeout: float = 10.0, at: float | None = None,
    kb_dirs: Sequence[str] = (),
) -> list[FleetEntry]:
    """Every instance of ``job`` (every job when None) in Prometheus at ``url``, diagnosed from
    its metrics and its peers and ranked sickest first (``ddx.prom.fleet.FleetEntry``; the
    score is in that module's docstring)."""
    from ddx.prom.assess import check_duration
    from ddx.prom.client import PromClient
    from ddx.prom.fleet import rank

    window = check_duration(window, "--window")
    if job is not None and not job.strip():
        from ddx.errors import UsageError

        raise UsageError("--job: an empty job name")
    return rank(PromClient(url, timeout=timeout), load_knowledge(kb_dirs), job=job, window=window, at=at)
