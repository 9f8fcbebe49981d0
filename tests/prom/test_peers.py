"""The pure parts of the Prometheus source: judging a row, robust statistics, the scope
findings, durations, the client's checks of its URL (no server needed)."""

from __future__ import annotations

import argparse

import pytest

from ddx.errors import UsageError
from ddx.model import Finding, State
from ddx.prom.client import PromClient, PromError
from ddx.prom.instance import Table, findings_of
from ddx.prom.metricmap import ROWS, exported_names
from ddx.prom.peers import Counts, peer_counts, robust, scope_findings

SYMPTOMS = {"disk.space_exhausted", "kernel.hardware_error", "svc.down"}


def f(fid: str, state: State = State.PRESENT) -> Finding:
    return Finding(fid, state, "prometheus")


def peers(*hosts: list[Finding]) -> Counts:
    return peer_counts(hosts, SYMPTOMS)


def scope(mine: list[Finding], counts: Counts) -> dict[str, State]:
    return {x.id: x.state for x in scope_findings(mine, counts, SYMPTOMS, [], "job node").findings}


def test_robust_is_the_median_and_the_mad() -> None:
    assert robust([1, 2, 3, 4, 100]) == (3, 1)
    assert robust([5, 5, 5]) == (5, 0)


def test_a_symptom_no_peer_shows_is_this_host_alone() -> None:
    ok = [f("disk.space_exhausted", State.ABSENT)]
    got = scope([f("disk.space_exhausted")], peers(ok, ok, ok, ok))
    # "the peers are healthy" is what scope.single_host says already: stated twice, the engine
    # (findings taken as independent) would count it twice, towards a hardware fault
    assert got == {"scope.single_host": State.PRESENT, "scope.all_hosts": State.ABSENT,
                   "scope.peer_host_healthy_same_software": State.UNKNOWN}


def test_a_symptom_most_peers_show_is_fleet_wide() -> None:
    sick, ok = [f("disk.space_exhausted")], [f("disk.space_exhausted", State.ABSENT)]
    got = scope([f("disk.space_exhausted")], peers(sick, sick, sick, ok))
    assert got == {"scope.single_host": State.ABSENT, "scope.all_hosts": State.PRESENT,
                   "scope.peer_host_healthy_same_software": State.UNKNOWN}


def test_a_symptom_some_peers_show_is_neither() -> None:
    sick, ok = [f("disk.space_exhausted")], [f("disk.space_exhausted", State.ABSENT)]
    got = scope([f("disk.space_exhausted")], peers(sick, ok, ok, ok))
    assert got["scope.single_host"] is State.ABSENT and got["scope.all_hosts"] is State.ABSENT
    assert got["scope.peer_host_healthy_same_software"] is State.UNKNOWN


def test_a_symptom_of_its_own_beside_a_fleet_wide_one_is_this_host_alone() -> None:
    peer = [f("svc.down"), f("disk.space_exhausted", State.ABSENT)]
    got = scope([f("svc.down"), f("disk.space_exhausted")], peers(peer, peer, peer))
    assert got["scope.single_host"] is State.PRESENT


def test_fewer_than_three_peers_read_or_no_symptom_leave_the_scope_unknown() -> None:
    ok = [f("disk.space_exhausted", State.ABSENT)]
    unread: list[Finding] = []  # a peer that does not export the metric
    s = scope_findings([f("disk.space_exhausted")], peers(ok, ok, unread, unread), SYMPTOMS, [], "job node")
    assert {x.state for x in s.findings} == {State.UNKNOWN}
    assert "fewer than 3 peers" in s.reason and "(2 read)" in s.reason
    s = scope_findings([f("disk.space_exhausted", State.ABSENT)], peers(ok, ok, ok), SYMPTOMS, [], "job node")
    assert {x.state for x in s.findings} == {State.UNKNOWN} and "no symptom" in s.reason


def test_counts_without_one_member_are_the_others() -> None:
    a, b = [f("svc.down")], [f("svc.down", State.ABSENT)]
    total = peers(a, b, b)
    rest = total.without(a, SYMPTOMS)
    assert (rest.showing.get("svc.down", 0), rest.read["svc.down"], rest.healthy, rest.peers) == (0, 2, 2, 2)


def _table(values: dict[str, float], exported: set[str]) -> Table:
    key = ("node", "h:9100")
    t = Table('job="node"', "5m", targets={key: 1.0}, exported={key: exported})
    t.values = [{key: values[r.label]} if r.label in values else {} for r in ROWS]
    t.also = [{} for _ in ROWS]
    return t


def test_a_row_not_exported_is_unknown_and_one_read_within_its_line_is_absent() -> None:
    t = _table({"filesystem space free": 40.0}, {"node_filesystem_avail_bytes", "node_filesystem_size_bytes"})
    by_id = {x.id: x for x in findings_of(t, ("node", "h:9100"))}
    assert by_id["disk.space_exhausted"].state is State.ABSENT
    assert by_id["disk.space_exhausted"].evidence[0].value == 40.0
    assert by_id["kernel.hardware_error"].state is State.UNKNOWN
    assert "does not export node_edac_correctable_errors_total" in by_id["kernel.hardware_error"].evidence[0].summary


def test_an_expression_without_answer_is_normal_only_when_its_metrics_are_exported() -> None:
    swap = {"node_memory_SwapFree_bytes", "node_memory_SwapTotal_bytes"}  # no swap configured: no answer
    assert {x.id: x.state for x in findings_of(_table({}, swap), ("node", "h:9100"))}["memory.swap_used_high"] \
        is State.ABSENT
    assert {x.id: x.state for x in findings_of(_table({}, set()), ("node", "h:9100"))}["memory.swap_used_high"] \
        is State.UNKNOWN


def test_a_floor_keeps_a_few_events_from_counting() -> None:
    names = set(exported_names())
    t = _table({"redis keys evicted": 2.0}, names)
    i = next(i for i, r in enumerate(ROWS) if r.label == "redis keys evicted")
    key = ("node", "h:9100")
    t.also[i] = {key: 3.0}  # 2/s, but only 3 keys in the window
    assert t.value(i, key).state is State.ABSENT
    t.also[i] = {key: 120.0}
    assert t.value(i, key).state is State.PRESENT


def test_durations() -> None:
    from ddx.cli._common import window_arg
    from ddx.prom.assess import check_duration

    assert window_arg("15m") == 900 and window_arg("90s") == 90 and window_arg("1h") == 3600 and window_arg("2") == 2
    for bad in ("2h", "m", "fifteen"):
        with pytest.raises(argparse.ArgumentTypeError):
            window_arg(bad)
    assert check_duration("15m", "--window") == "15m" and check_duration("900", "--window") == "900s"
    with pytest.raises(UsageError, match="--window '15 minutes'"):
        check_duration("15 minutes", "--window")


def test_the_client_takes_only_http_urls_and_never_shows_a_password() -> None:
    with pytest.raises(PromError, match="not an http"):
        PromClient("ftp://prom:9090")
    with pytest.raises(PromError, match="not an http"):
        PromClient("")
    c = PromClient("http://admin:s3cret@127.0.0.1:9/", timeout=1)
    assert "s3cret" not in c.shown
    with pytest.raises(PromError) as err:
        c.query("up")
    assert "s3cret" not in str(err.value) and "cannot reach Prometheus at http://admin:" in str(err.value)


def test_label_values_are_quoted_for_promql() -> None:
    from ddx.prom.instance import selector

    assert selector(job='we"b\\1') == 'job="we\\"b\\\\1"'
    assert selector(job="node", instance="h:9100") == 'job="node",instance="h:9100"'
    assert selector() == 'job=~".+"'
    assert selector(matchers='{role="web"}') == 'role="web"'


def test_a_large_job_finds_its_outlier_with_the_jobs_own_median() -> None:
    from ddx.prom.fleet import EXACT_PEERS, _job_stats

    keys = [("web", f"h{i}:9100") for i in range(EXACT_PEERS + 10)]
    names = {"node_memory_MemAvailable_bytes", "node_memory_MemTotal_bytes"}
    t = Table('job="web"', "5m", targets={k: 1.0 for k in keys}, exported={k: set(names) for k in keys})
    i = next(n for n, r in enumerate(ROWS) if r.label == "memory available")
    t.values = [{} for _ in ROWS]
    t.values[i] = {k: 40.0 + (n % 5) for n, k in enumerate(keys)}
    t.values[i][keys[7]] = 3.0  # 3% available where the others have 40-44%
    t.also = [{} for _ in ROWS]
    stats = _job_stats(t, keys)
    assert [k for k in keys if any(s.outlier for s in stats[k])] == [keys[7]]
    s = stats[keys[7]][0]
    assert s.median == 42.0 and s.z > 3.5 and s.peers == len(keys) - 1


def test_sickness_counts_rare_symptoms_more_and_never_context() -> None:
    from ddx.api import load_knowledge
    from ddx.prom.fleet import sickness

    kb = load_knowledge()
    rare = sickness([f("disk.inodes_exhausted")], 0, kb)
    common = sickness([f("disk.space_low")], 0, kb)
    assert rare > common > 0
    assert sickness([f("scope.single_host"), f("disk.space_low", State.ABSENT)], 0, kb) == 0
    assert sickness([], 2, kb) == 1.0


def test_a_peer_nothing_was_read_of_is_not_healthy() -> None:
    c = peers([f("svc.down", State.ABSENT)], [], [f("svc.down", State.UNKNOWN)])
    assert (c.peers, c.healthy) == (3, 1)


def test_a_server_that_never_answers_is_one_line_after_the_timeout() -> None:
    import socket
    import subprocess
    import sys

    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        r = subprocess.run([sys.executable, "-m", "ddx", "fleet", "--prometheus", url, "--timeout", "1"],
                           capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"ddx: error: Prometheus at {url} did not answer within 1 s"


def test_a_token_file_that_cannot_be_read_is_one_clear_error(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    missing = Path(str(tmp_path)) / "no-such-token"
    monkeypatch.delenv("DDX_PROMETHEUS_TOKEN", raising=False)
    monkeypatch.setenv("DDX_PROMETHEUS_TOKEN_FILE", str(missing))
    with pytest.raises(PromError, match=f"DDX_PROMETHEUS_TOKEN_FILE: cannot read {missing}"):
        PromClient("http://127.0.0.1:9090")
