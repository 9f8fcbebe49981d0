"""The knowledge base: contract coverage, lint errors, generated catalogs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import DATA, ROOT, run_ddx

from ddx.errors import KBError
from ddx.kb.catalog import conditions_markdown, findings_markdown
from ddx.kb.loader import DATA_DIR, lint_paths, load_kb


def test_every_contract_finding_is_in_the_vocabulary(kb):
    contract = yaml.safe_load((DATA / "contract_ids.yaml").read_text())["findings"]
    missing = sorted(set(contract) - set(kb.findings))
    assert not missing, f"contract findings missing from the knowledge base: {missing}"


def test_every_contract_condition_has_a_file(kb):
    contract = yaml.safe_load((DATA / "contract_ids.yaml").read_text())["conditions"]
    missing = sorted(set(contract) - set(kb.conditions))
    assert not missing, f"contract conditions missing from the knowledge base: {missing}"


def test_every_condition_has_checks_remedies_and_references(kb):
    for c in kb.conditions.values():
        assert c.checks, c.id
        assert c.remedies, c.id
        assert c.references, c.id
        own = [kb.checks[x] for x in c.checks if kb.checks[x].condition == c.id]
        assert own, f"{c.id} defines no check of its own"


def test_priors_leave_room_for_unlisted_causes(kb):
    assert 0.1 <= kb.unlisted_prior < 0.5


def test_every_finding_is_used_or_revealed(kb):
    used = {f for c in kb.conditions.values() for f in c.likelihoods}
    assert set(kb.findings) <= used, sorted(set(kb.findings) - used)


def _user_kb(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "kb"
    d.mkdir(exist_ok=True)
    (d / name).write_text(textwrap.dedent(text))
    return d


GOOD = """\
    id: slow-nfs
    name: Slow NFS server
    summary: An NFS server answers slowly and every process touching the mount hangs.
    prior: 0.01
    evidence:
      kernel.hung_task: 0.8
      disk.io_latency_high: 0.6
      cpu.saturated: 0.02
    checks:
      - id: nfs-stats
        title: NFS client retransmissions
        run: nfsstat -c
        outcomes:
          - seen: retrans rising
            means: the server or the network is slow
        cost: 20
        auto: true
        reveals: [kernel.hung_task]
      - io-stat
    remedies: [Fail over the NFS server]
    references: [nfs(5)]
"""


def test_a_valid_user_condition_joins_the_ranking(tmp_path):
    d = _user_kb(tmp_path, "slow-nfs.yaml", GOOD)
    kb = load_kb([d])
    assert "slow-nfs" in kb.conditions
    assert kb.checks["nfs-stats"].condition == "slow-nfs"
    r = run_ddx("diagnose", "--kb", str(d), "--no-probes", "--saw", "kernel.hung_task",
                "--saw", "disk.io_latency_high", "--json")
    assert r.returncode == 0, r.stderr
    assert '"slow-nfs"' in r.stdout


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda t: t.replace("kernel.hung_task: 0.8", "kernel.hung_tsak: 0.8"),
         [":6: evidence[kernel.hung_tsak]: unknown finding id 'kernel.hung_tsak' (did you mean kernel.hung_task?)"]),
        (lambda t: t.replace("prior: 0.01", "prior: 1.5"), [":4: prior: 1.5 is not a probability"]),
        (lambda t: t.replace("cpu.saturated: 0.02", "cpu.saturated: 0"), [":8: evidence[cpu.saturated]: 0 is not a probability"]),
        (lambda t: t.replace("summary:", "sumary:"), ["sumary: unknown key (did you mean summary?)", "missing field 'summary'"]),
        (lambda t: t.replace("    cost: 20\n", ""), [":10: checks[0]: missing field 'cost'"]),
        (lambda t: t.replace("  - io-stat", "  - io-stats"), [":19: checks[1]: no check with id 'io-stats' is defined (did you mean io-stat?)"]),
        (lambda t: t.replace("    reveals: [kernel.hung_task]", "    reveals: [kernel.hung_task, disk.nope]"),
         [":18: checks[0].reveals[1]: unknown finding id 'disk.nope'"]),
        (lambda t: t.replace("    auto: true", "    auto: maybe"), ["checks[0].auto: true or false"]),
        (lambda t: t.replace("  cpu.saturated: 0.02\n", "  cpu.saturated: 0.02\n  kernel.hung_task: 0.5\n"),
         ["evidence[kernel.hung_task]: duplicate key 'kernel.hung_task' (line 9)"]),
        (lambda t: t.replace("id: slow-nfs", "id: slow-nfs-2"), [":1: id: id 'slow-nfs-2' differs from the file name 'slow-nfs.yaml'"]),
        (lambda t: t.replace("id: nfs-stats", "id: io-stat"), ["checks[0].id: duplicate check id 'io-stat' (also in io-saturation)"]),
        (lambda t: t + "  bogus: [\n", ["not valid YAML"]),
    ],
)
def test_lint_names_file_line_and_field(tmp_path, mutate, expected):
    d = _user_kb(tmp_path, "slow-nfs.yaml", mutate(textwrap.dedent(GOOD)))
    with pytest.raises(KBError) as exc:
        lint_paths([d])
    text = str(exc.value)
    for part in expected:
        assert part in text, text
    assert "slow-nfs.yaml" in text


def test_duplicate_condition_id_with_the_bundled_kb(tmp_path):
    src = (DATA_DIR / "conditions" / "disk-full.yaml").read_text()
    d = _user_kb(tmp_path, "disk-full.yaml", src.replace("id: df-space", "id: df-space2").replace(
        "id: disk-growth", "id: disk-growth2"))
    with pytest.raises(KBError, match="duplicate condition id 'disk-full'"):
        load_kb([d])


def test_lint_cli_exit_codes(tmp_path):
    ok = run_ddx("kb", "lint")
    assert ok.returncode == 0 and ok.stdout.startswith("ok:"), ok.stderr
    d = _user_kb(tmp_path, "slow-nfs.yaml", textwrap.dedent(GOOD).replace("prior: 0.01", "prior: -1"))
    bad = run_ddx("kb", "lint", str(d / "slow-nfs.yaml"))
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert "slow-nfs.yaml:4: prior: -1 is not a probability" in bad.stderr


def test_user_findings_file_extends_the_vocabulary(tmp_path):
    d = _user_kb(tmp_path, "slow-nfs.yaml", textwrap.dedent(GOOD).replace(
        "  cpu.saturated: 0.02\n", "  cpu.saturated: 0.02\n  nfs.server_not_responding: 0.9\n"))
    (d / "findings.yaml").write_text(textwrap.dedent("""\
        nfs.server_not_responding:
          description: 'The kernel reports "nfs: server X not responding".'
          fp_rate: 0.002
    """))
    kb = load_kb([d])
    assert kb.conditions["slow-nfs"].likelihoods["nfs.server_not_responding"] == 0.9


def test_bundled_kb_loads_fast_and_strict_alike():
    assert load_kb().conditions.keys() == load_kb(strict=True).conditions.keys()


def test_generated_catalogs_match_the_knowledge_base(kb):
    docs = ROOT / "docs"
    assert (docs / "findings.md").read_text() == findings_markdown(kb), "run: ddx kb docs docs/"
    assert (docs / "conditions.md").read_text() == conditions_markdown(kb), "run: ddx kb docs docs/"


def test_kb_show_and_list():
    r = run_ddx("kb", "show", "hardware-fault")
    assert r.returncode == 0
    assert "procs.segfaults_multiple_binaries" in r.stdout and "peer-host-compare" in r.stdout
    r = run_ddx("kb", "show", "hardware-falt")
    assert r.returncode == 2 and "did you mean hardware-fault" in r.stderr
    r = run_ddx("kb", "list")
    assert "connection-limit" in r.stdout and "(unlisted)" in r.stdout


def test_kb_docs_writes_into_a_folder(tmp_path):
    r = run_ddx("kb", "docs", str(tmp_path / "out"))
    assert r.returncode == 0
    assert (tmp_path / "out" / "conditions.md").read_text().startswith("# Condition catalog")


def test_copy_of_bundled_conditions_lints_clean(tmp_path):
    """A user can start from a bundled file: renamed, it lints."""
    d = tmp_path / "mine"
    d.mkdir()
    text = (DATA_DIR / "conditions" / "crash-loop.yaml").read_text()
    text = text.replace("id: crash-loop", "id: my-crash-loop").replace("id: crash-history", "id: my-crash-history")
    (d / "my-crash-loop.yaml").write_text(text)
    kb = lint_paths([d])
    assert "my-crash-loop" in kb.conditions


def _first(present: list[str], absent: list[str]) -> tuple[str, float]:
    from ddx.engine.diagnosis import diagnose
    from ddx.model import Finding, State

    findings = [Finding(f, State.PRESENT, "test") for f in present] + [Finding(f, State.ABSENT, "test") for f in absent]
    top = diagnose(load_kb(), findings).hypotheses[0]
    return top.id, top.probability


def test_a_slow_array_member_turns_slow_io_into_a_failing_disk() -> None:
    """Slow I/O on one host with nothing changed reads as a disk too slow for its load, until
    one member of the array is seen answering far slower than its peers (a disk failing slowly,
    long before it logs an error)."""
    slow_io = ["disk.io_latency_high", "http.latency_high", "scope.single_host"]
    quiet = ["disk.io_errors", "cpu.saturated", "change.recent_deploy", "http.requests_surge"]
    assert _first(slow_io, quiet)[0] == "io-saturation"
    cid, p = _first(slow_io + ["disk.array_member_slow"], quiet)
    assert cid == "hardware-fault" and p >= 0.5, (cid, p)


@pytest.mark.parametrize(
    ("present", "absent", "want"),
    [
        # a proxy whose connects to its upstream fail with EADDRNOTAVAIL while the upstream is up
        (["logs.addr_not_available", "http.gateway_errors", "scope.intermittent"], ["svc.down", "cpu.saturated"],
         "ephemeral-port-exhaustion"),
        (["net.ephemeral_ports_exhausted", "http.5xx_rate_high"], [], "ephemeral-port-exhaustion"),
        # packets of new connections dropped by a full conntrack table, the services idle
        (["kernel.conntrack_full", "logs.timeouts", "http.latency_high"], ["cpu.saturated"], "conntrack-table-full"),
    ],
    ids=["eaddrnotavail-in-logs", "ports-held", "conntrack-full"],
)
def test_the_network_table_limits_lead_on_their_own_evidence(present: list[str], absent: list[str], want: str) -> None:
    cid, p = _first(present, absent)
    assert cid == want and p >= 0.5, (cid, p)
