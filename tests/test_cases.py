"""Whole diagnoses on case files: the seed incidents and our own, via shared/tools/check_cases.py."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from conftest import OWN_CASES, ROOT, SEEDS, SHARED

from ddx.cases import load_case
from ddx.engine.diagnosis import diagnose

CASES = sorted(SEEDS.glob("*.yaml")) + sorted(OWN_CASES.glob("*.yaml"))


def test_there_are_ten_own_cases():
    assert len(list(OWN_CASES.glob("*.yaml"))) >= 10


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_case_expectations(path, kb):
    """The same rules as check_cases.py, in-process, one test per case."""
    case = load_case(str(path), kb.findings.keys())
    d = diagnose(kb, case.findings)
    exp = yaml.safe_load(path.read_text()).get("expect") or {}
    ranked = [h.id for h in d.hypotheses]
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    if "top1" in exp:
        assert ranked[0] in as_list(exp["top1"]), ranked[:3]
    for cid in as_list(exp.get("top3", [])):
        assert cid in ranked[:3], ranked[:3]
    if "next_check_for" in exp:
        assert d.next_checks, "no next check proposed"
        assert set(d.next_checks[0].tests) & set(as_list(exp["next_check_for"])), d.next_checks[0]


def test_shared_check_cases_tool_passes():
    """The project's acceptance tool, as CI and the seed authors run it."""
    ddx = ROOT / ".venv" / "bin" / "ddx"
    cmd = [sys.executable, str(SHARED / "tools" / "check_cases.py")]
    if ddx.exists():
        cmd += ["--ddx", str(ddx)]
    else:
        cmd += ["--ddx", f"{sys.executable} -m ddx"]
    r = subprocess.run(cmd + [str(SEEDS), str(OWN_CASES)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(CASES)} passed, 0 failed" in r.stdout
