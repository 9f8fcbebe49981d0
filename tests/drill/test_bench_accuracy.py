"""The pure parts of bench/accuracy: alert -> condition table, the for: 0s rules,
Prometheus answers, the docs sections, and docs/drill.md's scenario list."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench" / "accuracy"
RULES = ROOT / "bench" / "data" / "awesome-prometheus-alerts-node-exporter.yml"
CONDITIONS = ROOT / "tests" / "data" / "contract_ids.yaml"
sys.path.insert(0, str(BENCH))

import alertmap  # noqa: E402
import calibration  # noqa: E402
import prometheus  # noqa: E402
import report  # noqa: E402


@pytest.fixture(scope="module")
def shipped() -> dict:
    return yaml.safe_load(RULES.read_text())


# --- alert map ----------------------------------------------------------------------------

def test_every_shipped_rule_is_mapped(shipped: dict) -> None:
    names = [r["alert"] for r in prometheus.rules_of(shipped)]
    assert len(names) > 30
    assert sorted(set(names) - set(alertmap.ALERT_CONDITIONS)) == []


def test_mapped_conditions_exist_in_the_contract() -> None:
    known = set(yaml.safe_load(CONDITIONS.read_text())["conditions"])
    used = {c for cs in alertmap.ALERT_CONDITIONS.values() for c in cs}
    assert used <= known, used - known


@pytest.mark.parametrize(("alert", "condition", "named"), [
    ("HostOutOfDiskSpace", "disk-full", True),
    ("HostOutOfInodes", "inode-exhaustion", True),
    ("HostOomKillDetected", "memory-exhaustion", True),
    ("HostOomKillDetected", "process-leak", False),  # a symptom of the leak, not the leak
    ("HostHighCpuLoad", "cpu-saturation", True),
    ("HostContextSwitchingHigh", "cpu-saturation", False),
    ("HostEdacUncorrectableErrorsDetected", "hardware-fault", True),
    ("HostClockSkew", "clock-skew", True),
    ("HostSomethingNew", "disk-full", False),
    ("HostOutOfDiskSpace", "", False),  # the healthy control expects nothing
])
def test_names(alert: str, condition: str, named: bool) -> None:
    assert alertmap.names(alert, condition) is named


# --- rules --------------------------------------------------------------------------------

def test_zero_for_sets_every_for_and_changes_nothing_else(shipped: dict) -> None:
    zero = yaml.safe_load(prometheus.dump_rules(prometheus.zero_for(shipped)))  # through text, as written
    before, after = prometheus.rules_of(shipped), prometheus.rules_of(zero)
    assert len(before) == len(after)
    assert any(r.get("for") not in (None, "0m", "0s") for r in before)  # there was something to change
    assert all(r["for"] == "0s" for r in after)
    for a, b in zip(before, after):
        assert {k: v for k, v in a.items() if k != "for"} == {k: v for k, v in b.items() if k != "for"}
    assert yaml.safe_load(RULES.read_text()) == shipped  # the input is not modified


def test_zero_for_leaves_recording_rules_alone() -> None:
    doc = {"groups": [{"name": "g", "rules": [
        {"record": "job:up:sum", "expr": "sum(up)"},
        {"alert": "A", "expr": "up == 0", "for": "5m"},
        {"alert": "B", "expr": "up == 0"},
    ]}]}
    out = prometheus.zero_for(doc)
    assert out["groups"][0]["rules"][0] == {"record": "job:up:sum", "expr": "sum(up)"}
    assert [r["for"] for r in out["groups"][0]["rules"][1:]] == ["0s", "0s"]
    assert doc["groups"][0]["rules"][1]["for"] == "5m"


def test_rule_metrics() -> None:
    expr = ('(node_filesystem_files_free / node_filesystem_files < .10 and ON (instance, device, mountpoint) '
            'node_filesystem_readonly == 0) and rate(node_disk_io_time_seconds_total[5m]) > 0')
    assert prometheus.rule_metrics(expr) == {"node_filesystem_files_free", "node_filesystem_files",
                                             "node_filesystem_readonly", "node_disk_io_time_seconds_total"}


def test_prometheus_config_relabels_only_drill_tmpfs(tmp_path: Path) -> None:
    cfg = yaml.safe_load(prometheus.prometheus_config("127.0.0.1:9100", tmp_path / "r.yml", interval=1.0,
                                                      drill_root=Path("/tmp/ddx-drill")))
    assert cfg["global"] == {"scrape_interval": "1000ms", "scrape_timeout": "1000ms", "evaluation_interval": "1000ms"}
    assert cfg["rule_files"] == [str(tmp_path / "r.yml")]
    (job,) = cfg["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:9100"]}]
    (rl,) = job["metric_relabel_configs"]
    import re

    rx = re.compile(rl["regex"])  # Prometheus anchors relabel regexes: fullmatch
    assert rx.fullmatch("tmpfs;/tmp/ddx-drill/disk-full-abc/app/cache")
    assert not rx.fullmatch("tmpfs;/run")
    assert not rx.fullmatch("ext4;/tmp/ddx-drill/x")
    assert not rx.fullmatch("tmpfs;/tmp/ddx-drill-other/x")
    # the relabelled type escapes the shipped rules' exclusion; plain tmpfs does not
    excl = re.compile("^(fuse.*|tmpfs|cifs|nfs)")
    assert not excl.fullmatch(rl["replacement"]) and excl.fullmatch("tmpfs")
    plain = yaml.safe_load(prometheus.prometheus_config("h:1", tmp_path / "r.yml", interval=0.5, drill_root=None))
    assert "metric_relabel_configs" not in plain["scrape_configs"][0]
    assert plain["global"]["evaluation_interval"] == "500ms"


NODE_SAMPLE = """\
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="edac"} 1
node_scrape_collector_success{collector="hwmon"} 0
node_filesystem_avail_bytes{device="/dev/vda",fstype="ext4",mountpoint="/"} 8.45e+10
node_vmstat_oom_kill 3
"""


def test_node_exporter_scrape_parsing() -> None:
    assert prometheus.collector_status(NODE_SAMPLE) == {"edac": True, "hwmon": False}
    assert prometheus.exposed_metrics(NODE_SAMPLE) == {"node_scrape_collector_success",
                                                       "node_filesystem_avail_bytes", "node_vmstat_oom_kill"}


# --- Prometheus answers -------------------------------------------------------------------

T0 = 1_700_000_000.0


def _series(name: str, state: str, times: list[float], **labels: str) -> dict:
    return {"metric": {"__name__": "ALERTS", "alertname": name, "alertstate": state, "instance": "127.0.0.1:9",
                       "job": "node", "severity": "warning", **labels},
            "values": [[T0 + t, "1"] for t in times]}


SAMPLE = {"status": "success", "data": {"resultType": "matrix", "result": [
    # fired after the injection, on the drill's cache mount
    _series("HostOutOfDiskSpace", "pending", [1.5, 2.0], mountpoint="/tmp/ddx-drill/x/app/cache"),
    _series("HostOutOfDiskSpace", "firing", [3.0, 3.5, 4.0], mountpoint="/tmp/ddx-drill/x/app/cache"),
    # active since before the injection: carried over
    _series("HostOomKillDetected", "firing", [-3.0, -2.0, 0.0, 5.0]),
    # pending only (its for: is longer than the budget)
    _series("HostHighCpuLoad", "pending", [7.0, 8.0]),
    # one old series and one new one: a new alert
    _series("HostDiskMayFillIn24Hours", "firing", [-3.0, 1.0], mountpoint="/"),
    _series("HostDiskMayFillIn24Hours", "firing", [6.0], mountpoint="/tmp/ddx-drill/x/app/cache"),
]}}


def test_alert_timeline_and_verdict() -> None:
    seen = {a.name: a for a in prometheus.alert_timeline(SAMPLE, T0, alertmap.conditions_named)}
    assert set(seen) == {"HostOutOfDiskSpace", "HostOomKillDetected", "HostHighCpuLoad", "HostDiskMayFillIn24Hours"}
    disk = seen["HostOutOfDiskSpace"]
    assert (disk.first_pending_s, disk.first_firing_s, disk.carried_over) == (1.5, 3.0, False)
    assert disk.targets == ("mountpoint=/tmp/ddx-drill/x/app/cache",)
    assert seen["HostOomKillDetected"].carried_over
    assert seen["HostHighCpuLoad"].first_firing_s is None
    fill = seen["HostDiskMayFillIn24Hours"]
    assert not fill.carried_over and fill.first_firing_s == 6.0
    assert fill.targets == ("mountpoint=/tmp/ddx-drill/x/app/cache",)

    v = prometheus.summarise_variant(list(seen.values()), "disk-full")
    assert v["fired"] == ["HostDiskMayFillIn24Hours", "HostOutOfDiskSpace"]
    assert v["pending_only"] == ["HostHighCpuLoad"]
    assert v["carried_over"] == ["HostOomKillDetected"]
    assert v["names_cause"] and v["first_naming_s"] == 3.0
    # a carried-over alert naming the cause does not count for the new fault
    mem = prometheus.summarise_variant(list(seen.values()), "memory-exhaustion")
    assert not mem["names_cause"] and mem["naming"] == [] and mem["carried_naming"] == ["HostOomKillDetected"]
    assert v["carried_naming"] == []
    cpu = prometheus.summarise_variant(list(seen.values()), "cpu-saturation")
    assert not cpu["names_cause"] and cpu["pending_names_cause"]


def test_alert_timeline_rejects_errors_and_reads_empty_answers() -> None:
    with pytest.raises(prometheus.MonitorError, match="bad_data"):
        prometheus.alert_timeline({"status": "error", "errorType": "bad_data", "error": "x"}, T0, alertmap.conditions_named)
    with pytest.raises(prometheus.MonitorError, match="matrix"):
        prometheus.alert_timeline({"status": "success", "data": {"resultType": "vector", "result": []}}, T0,
                                  alertmap.conditions_named)
    empty = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    assert prometheus.alert_timeline(empty, T0, alertmap.conditions_named) == []
    v = prometheus.summarise_variant([], "disk-full")
    assert v["fired"] == [] and not v["names_cause"] and v["first_naming_s"] is None


# --- docs -----------------------------------------------------------------------------------

B, E = report.ACCURACY_BEGIN, report.ACCURACY_END


def test_replace_section_between_markers_keeps_the_rest() -> None:
    text = f"# Benchmarks\n\n## A\n\ntext a\n\n{B}\nold\n{E}\n\n## C\n\ntext c\n"
    out = report.replace_section(text, "## Accuracy\n\nnew body\n", B, E, heading=report.ACCURACY_HEADING)
    assert out == f"# Benchmarks\n\n## A\n\ntext a\n\n{B}\n## Accuracy\n\nnew body\n{E}\n\n## C\n\ntext c\n"
    assert report.replace_section(out, "## Accuracy\n\nnew body\n", B, E) == out  # idempotent


def test_replace_section_under_a_bare_heading_then_append() -> None:
    h = report.ACCURACY_HEADING
    text = f"# B\n\n{h}\n\nhand-written\n\n### sub\n\nmore\n\n## Next\n\nkeep\n"
    out = report.replace_section(text, f"{h}\n\ngenerated", B, E, heading=h)
    assert out == f"# B\n\n{B}\n{h}\n\ngenerated\n{E}\n\n## Next\n\nkeep\n"
    appended = report.replace_section("# B\n\n## A\n\nx\n", "body", B, E, heading=h)
    assert appended == f"# B\n\n## A\n\nx\n\n{B}\nbody\n{E}\n"


def _result(scenario: str, expected: str, seed: int, top: list[tuple[str, float]], ttc: float | None,
            fired: dict[str, list[str]], naming_s: float | None = None) -> dict:
    ok1 = bool(top) and (top[0][0] == expected if expected else top[0][1] <= 0.5)
    return {
        "scenario": scenario, "expected": expected, "seed": seed, "error": "", "passed": ok1,
        "top3": [{"id": i, "probability": p} for i, p in top], "top1_ok": ok1,
        "top3_ok": (expected in [i for i, _ in top]) if expected else ok1,
        "probability": dict(top).get(expected, 0.0) if expected else top[0][1], "time_to_correct_s": ttc,
        "runs": [{"cpu_s": 0.4, "rss_mib": 30.0, "error": ""}, {"cpu_s": 0.6, "rss_mib": 33.0, "error": ""}],
        "extra": {"variants": {v: {"fired": f, "pending_only": [], "carried_over": [],
                                   "names_cause": any(alertmap.names(a, expected) for a in f),
                                   "first_naming_s": naming_s if any(alertmap.names(a, expected) for a in f) else None}
                               for v, f in fired.items()}},
    }


def test_render_accuracy_rows_and_totals() -> None:
    data = {"schema": "ddx.bench.accuracy/1", "command": ".venv/bin/python bench/accuracy/run.py --repeats 2",
            "date": "2026-11-22 10:00 UTC", "machine": {"nproc": 2, "ram_gib": 23.5, "kernel": "6.1"},
            "budget_s": 30, "repeats": 2, "elapsed_s": 600,
            "monitors": {"rules": 35, "interval_s": 1, "tmpfs_relabelled_below": "/tmp/ddx-drill",
                         "rules_without_metrics": {"HostEdacCorrectableErrorsDetected": ["node_edac_correctable_errors_total"]}},
            "results": [
                _result("healthy", "", 0, [("disk-full", 0.2)], None, {"shipped": [], "for0": ["HostHighCpuLoad"]}),
                _result("disk-full", "disk-full", 0, [("disk-full", 0.9)], 3.0,
                        {"shipped": [], "for0": ["HostOutOfDiskSpace"]}, 2.0),
                _result("disk-full", "disk-full", 1, [("inode-exhaustion", 0.6), ("disk-full", 0.3)], None,
                        {"shipped": [], "for0": []}),
                _result("memory-exhaustion", "memory-exhaustion", 0, [("memory-exhaustion", 0.8)], 5.0,
                        {"shipped": [], "for0": []}),
                {"scenario": "hardware-fault", "expected": "hardware-fault", "seed": 0, "runs": [], "top3": [],
                 "error": "not run: missing /dev/kmsg", "extra": {}},
            ]}
    data["results"][3]["extra"]["variants"]["for0"]["carried_naming"] = ["HostOomKillDetected"]
    md = report.render_accuracy(data)
    assert md.startswith(report.ACCURACY_HEADING + "\n")
    rows = {line.split(" | ")[0].strip("| ").rstrip(" ⚠"): line for line in md.splitlines() if line.startswith("| ")}
    assert "1/2" in rows["disk-full"] and "3.0 s" in rows["disk-full"]  # top-1 right once; time of that run
    assert "disk-full ×1" in rows["disk-full"] and "inode-exhaustion ×1" in rows["disk-full"]
    assert "HostOutOfDiskSpace (1/2)" in rows["disk-full"]
    assert "0.5 s" in rows["disk-full"] and "33 MiB" in rows["disk-full"]  # median CPU, max RSS
    assert "quiet" in rows["healthy"] and "NOT" not in rows["healthy"]
    assert "not run: missing /dev/kmsg" in rows["hardware-fault"]
    assert rows["memory-exhaustion"].endswith("| no | — | no (already active) |")
    assert "top-1 right: 2/3 (67%)" in md and "top-3 right: 3/3 (100%)" in md
    assert "median time from injection to a correct top-1: 4.0 s" in md and "1 run(s) never right" in md
    assert "healthy control quiet: 1/1 (100%) runs" in md
    assert "false alarms in the healthy control: HostHighCpuLoad" in md
    assert "a firing alert named the cause in 1/3 (33%)" in md and "a firing alert named the cause in 0/3 (0%)" in md
    assert "(in 1 more, one naming it was already active at the injection)" in md
    assert "not run: hardware-fault" in md
    assert "`HostEdacCorrectableErrorsDetected` (node_edac_correctable_errors_total)" in md
    tot = report.totals(report.aggregate(data["results"]))
    assert tot["variants"]["for0"]["false_alarms"] == Counter({"HostHighCpuLoad": 1})


def _wild(name: str, expected: str, probs: dict[str, float], runs: int = 1) -> dict:
    top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
    ids = [i for i, _ in top]
    return {"scenario": name, "expected": expected, "seed": 0, "wild": True, "error": "",
            "top3": [{"id": i, "probability": p} for i, p in top],
            "top1_ok": (ids[0] == expected) if expected else top[0][1] <= 0.5, "top3_ok": expected in ids or not expected,
            "probability": probs.get(expected, 0.0) if expected else top[0][1],
            "runs": [{"wall_s": 2.0, "cpu_s": 1.0, "rss_mib": 40.0, "error": "", "probs": probs,
                      "next_check": {"title": "Free space", "purpose": "confirm"}}] * runs}


def test_calibration_brier_and_reliability() -> None:
    runs = [("disk-full", {"disk-full": 0.9, "bad-deploy": 0.05}),     # right at 90%
            ("disk-full", {"disk-full": 0.2, "bad-deploy": 0.75}),     # wrong at 75%
            ("", {"disk-full": 0.1})]                                  # healthy, quiet: right
    b = calibration.brier(runs)
    assert abs(b - ((0.01 + 0.0025) + (0.64 + 0.5625) + 0.01) / 3) < 1e-9
    rows = {r["bin"][0]: r for r in calibration.reliability(runs)}
    assert rows[0.9]["n"] == 1 and rows[0.9]["right"] == 1.0
    assert rows[0.7]["n"] == 1 and rows[0.7]["right"] == 0.0 and rows[0.7]["stated"] == 0.75
    assert rows[0.0]["n"] == 1 and rows[0.0]["right"] == 1.0
    results = [{"expected": "disk-full", "runs": [{"probs": {"disk-full": 0.1}}, {"probs": {"disk-full": 0.9}}]},
               {"expected": "", "runs": [{"probs": {"a": 0.1}}, {"probs": {"a": 0.2}}]},
               {"expected": "x", "error": "not run: missing", "runs": []}]
    assert calibration.calibration_runs(results) == [("disk-full", {"disk-full": 0.9}), ("", {"a": 0.1}),
                                                      ("", {"a": 0.2})]


def test_render_wild_and_calibration_sections() -> None:
    data = {"results": [_wild("healthy", "", {"disk-full": 0.3}, runs=3),
                        _wild("disk-full", "disk-full", {"disk-full": 0.95, "hardware-fault": 0.03}),
                        _wild("config-drift", "config-drift", {"dependency-down": 0.6, "config-drift": 0.35})],
            "wild": {"noise_lead_s": 90, "fault_lead_s": 90}}
    md = report.render_accuracy(data)
    assert "No clean variant was run." in md and "### Wild variants" in md and "### Calibration" in md
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in md.splitlines() if ln.startswith("| ")}
    assert "| yes | yes | 95% | Free space (confirm) |" in rows["disk-full"]
    assert "| **no** | yes | 35% |" in rows["config-drift"]
    assert "quiet" in rows["healthy"]
    assert "top-1 right: 1/2 (50%)" in md and "median probability of the right cause: 65%" in md
    assert "healthy control with noise quiet: 1/1 (100%), highest top cause 30%" in md
    assert "Brier score (all runs):" in md and "over 5 runs" in md


# --- docs/drill.md --------------------------------------------------------------------------

def test_drill_doc_lists_exactly_the_registered_scenarios() -> None:
    from ddx.drill.scenarios import all_scenarios

    text = (ROOT / "docs" / "drill.md").read_text()
    i, j = text.find(report.SCENARIOS_BEGIN), text.find(report.SCENARIOS_END)
    assert i != -1 and j > i, "docs/drill.md lost its scenario markers"
    current = text[i + len(report.SCENARIOS_BEGIN):j].strip()
    assert current == report.render_scenarios(all_scenarios().values()), (
        "docs/drill.md's scenario list is out of date: run `.venv/bin/python bench/accuracy/run.py --drill-doc`")


# --- the real monitors ----------------------------------------------------------------------

@pytest.mark.root
@pytest.mark.slow
@pytest.mark.skipif(bool(prometheus.missing_tools()), reason="prometheus / node_exporter not installed")
def test_monitors_report_alerts_of_both_variants(tmp_path: Path) -> None:
    """node_exporter and the two Prometheus servers, for real, on a two-rule file: an alert
    without `for:` fires in both; one with `for: 1h` is pending as shipped and fires at 0s.
    A tmpfs in the drill folder reaches the rules as drill-tmpfs."""
    import time

    from ddx.drill.sandbox import DRILL_ROOT, Sandbox

    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": [
        {"alert": "HostOutOfDiskSpace", "expr": 'node_filesystem_avail_bytes{fstype="drill-tmpfs"} >= 0'},
        {"alert": "HostHighCpuLoad", "expr": 'up{job="node"} == 1', "for": "1h"},
    ]}]}))
    with Sandbox("test-bench-accuracy") as sb:
        sb.mount_tmpfs(sb.dir / "disk", "1m")
        t0 = time.time()
        mon = prometheus.Monitors(sb, rules, interval=0.5, drill_root=DRILL_ROOT).start(timeout=60)
        assert mon.info["rules"] == 2 and mon.dead() == []
        deadline = time.monotonic() + 20
        while True:
            seen = {v: {a.name: a for a in prometheus.alert_timeline(mon.alerts(v, t0, time.time()), t0,
                                                                       alertmap.conditions_named)}
                    for v in prometheus.VARIANTS}
            if all(len(s) == 2 for s in seen.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    shipped, zero = seen["shipped"], seen["for0"]
    assert shipped["HostOutOfDiskSpace"].fired and not shipped["HostOutOfDiskSpace"].carried_over
    assert any(f"{sb.dir}/disk" in t for t in shipped["HostOutOfDiskSpace"].targets)
    assert not shipped["HostHighCpuLoad"].fired and shipped["HostHighCpuLoad"].first_pending_s is not None
    assert zero["HostHighCpuLoad"].fired and zero["HostOutOfDiskSpace"].fired
    assert not sb.dir.exists()  # everything went with the sandbox
