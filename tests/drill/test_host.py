"""Drill scenarios of host faults, each run whole on the real sandbox stack: the fault
is injected for real and ddx must rank the expected condition first, for the right
reasons (the findings that carry the diagnosis are present while the fault is in place)."""

from __future__ import annotations

from typing import Any

import pytest
from drillcheck import diagnose_json, present

from ddx.drill.runner import DrillResult, run_scenario
from ddx.drill.scenarios import all_scenarios
from ddx.drill.stack import Stack

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _findings_while_broken(stack: Stack, _started: float, _budget: float) -> dict[str, Any]:
    """One more whole `ddx diagnose --json` while the fault is still in place: the
    findings present and their evidence (the runner keeps only the ranking)."""
    out = diagnose_json(stack)
    return {
        "present": present(out),
        "evidence": {f["id"]: " | ".join(e["summary"] + " " + " ".join(e.get("samples") or ())
                                         for e in f.get("evidence", [])) for f in out["findings"]},
        "sandbox": str(stack.dir),
    }


def _run(name: str, *, allow_host_effects: bool = False) -> DrillResult:
    res = run_scenario(all_scenarios()[name], budget=30.0, hold=_findings_while_broken,
                       allow_host_effects=allow_host_effects)
    assert not res.error, res.error
    assert not res.cleanup_problems, res.cleanup_problems
    return res


def _assert_top1(res: DrillResult, expected: str) -> None:
    assert res.passed, (res.top3, [r.top for r in res.runs])
    assert res.top3[0][0] == expected and res.top3[0][1] > 0.5, res.top3
    assert res.time_to_correct_s is not None and res.time_to_correct_s <= 30.0


def test_inode_exhaustion(drill_ready: None) -> None:
    res = _run("inode-exhaustion")
    _assert_top1(res, "inode-exhaustion")
    present = set(res.extra["present"])
    assert {"disk.inodes_exhausted", "logs.enospc"} <= present, present
    assert "disk.space_exhausted" not in present  # inodes ran out; the bytes did not
    assert "/app/sessions" in res.extra["evidence"]["disk.inodes_exhausted"]


def test_permission_error(drill_ready: None) -> None:
    res = _run("permission-error")
    _assert_top1(res, "permission-error")
    present = set(res.extra["present"])
    assert {"logs.permission_denied", "config.path_permissions_deny_service"} <= present, present
    ev = res.extra["evidence"]["config.path_permissions_deny_service"]
    assert "nobody" in ev and "/app/cache (owner root:root, mode 0755)" in ev, ev


def test_fd_exhaustion(drill_ready: None) -> None:
    res = _run("fd-exhaustion")
    _assert_top1(res, "fd-exhaustion")
    present = set(res.extra["present"])
    assert {"fd.exhausted", "logs.too_many_open_files"} <= present, present
    assert "gunicorn" in res.extra["evidence"]["fd.exhausted"]


@pytest.mark.kernel_log
def test_hardware_fault(drill_ready: None) -> None:
    """Writes hardware-error lines to this host's kernel log (they stay until reboot)."""
    scenario = all_scenarios()["hardware-fault"]
    missing = scenario.needs() if scenario.needs else []
    if missing:
        pytest.skip("; ".join(missing))
    res = _run("hardware-fault", allow_host_effects=True)
    _assert_top1(res, "hardware-fault")
    present = set(res.extra["present"])
    assert {"kernel.hardware_error", "procs.segfault", "procs.segfaults_multiple_binaries"} <= present, present
    ev = res.extra["evidence"]["procs.segfaults_multiple_binaries"]
    assert "thumbnailer" in ev and "nightly-report" in ev, ev


def test_hardware_fault_needs_permission_for_host_effects(drill_ready: None) -> None:
    res = run_scenario(all_scenarios()["hardware-fault"], budget=1.0)
    assert res.error.startswith("not run: it writes hardware-error lines to the kernel log")
    assert not res.sandbox and not res.runs
