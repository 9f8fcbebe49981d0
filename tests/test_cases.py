"""Whole diagnoses on case files: the seed incidents (examples/) and our own (tests/cases/),
in-process and through the command line as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, OWN_CASES, run_ddx

from ddx.cases import load_case
from ddx.engine.diagnosis import diagnose

CASES = sorted(EXAMPLES.glob("*.yaml")) + sorted(OWN_CASES.glob("*.yaml"))


def _as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def expectation_problems(path: Path, ranked: list[str], first_check_tests: list[str] | None) -> list[str]:
    """What a diagnosis (conditions ranked, the tests of the first next check, None when no
    check was proposed) gets wrong against the case's ``expect``: ``top1``, ``top3``, ``next_check_for``."""
    exp = yaml.safe_load(path.read_text()).get("expect") or {}
    problems = []
    if "top1" in exp and (not ranked or ranked[0] not in _as_list(exp["top1"])):
        problems.append(f"top1 is {ranked[:1]}, want one of {_as_list(exp['top1'])}")
    for cid in _as_list(exp.get("top3", [])):
        if cid not in ranked[:3]:
            problems.append(f"{cid} not in top3 {ranked[:3]}")
    if "next_check_for" in exp:
        want = set(_as_list(exp["next_check_for"]))
        if first_check_tests is None:
            problems.append("no next check proposed")
        elif not want & set(first_check_tests):
            problems.append(f"first next check tests {sorted(first_check_tests)}, want one of {sorted(want)}")
    return problems


def test_there_are_the_seed_examples_and_ten_own_cases():
    assert len(list(EXAMPLES.glob("*.yaml"))) == 8
    assert len(list(OWN_CASES.glob("*.yaml"))) >= 10


@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_case_expectations(path, kb):
    """The expectations in-process, one test per case."""
    case = load_case(str(path), kb.findings.keys())
    d = diagnose(kb, case.findings)
    first = list(d.next_checks[0].tests) if d.next_checks else None
    assert not expectation_problems(path, [h.id for h in d.hypotheses], first)


def test_every_case_through_the_command_line():
    """`ddx diagnose --case FILE --json` on every case, as CI and the case authors run it."""
    failed = {}
    for path in CASES:
        r = run_ddx("diagnose", "--case", str(path), "--json")
        assert r.returncode == 0, f"{path.name}: exit {r.returncode}: {r.stderr}"
        out = json.loads(r.stdout)
        checks = out.get("next_checks") or []
        first = list(checks[0].get("tests", [])) if checks else None
        problems = expectation_problems(path, [h["id"] for h in out["hypotheses"]], first)
        if problems:
            failed[path.name] = problems
    assert not failed, failed


def test_the_check_catches_a_wrong_expectation(tmp_path):
    """The expectation check itself can fail: a case expecting the wrong cause is reported."""
    wrong = tmp_path / "wrong.yaml"
    data = yaml.safe_load((EXAMPLES / "shmoocon-noon-sale.yaml").read_text())
    data["expect"] = {"top1": "disk-full", "top3": ["clock-skew"], "next_check_for": ["dns-failure"]}
    wrong.write_text(yaml.safe_dump(data))
    out = json.loads(run_ddx("diagnose", "--case", str(wrong), "--json").stdout)
    first = list(out["next_checks"][0]["tests"]) if out.get("next_checks") else None
    problems = expectation_problems(wrong, [h["id"] for h in out["hypotheses"]], first)
    assert len(problems) == 3, problems
