"""What the drill scenario tests share: one whole `ddx diagnose --json` against a
broken stack, and a scenario run that must pass and leave nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddx.drill.runner import DrillResult, run_scenario
from ddx.drill.scenarios import all_scenarios
from ddx.drill.stack import Stack


def diagnose_json(stack: Stack, timeout: float = 120.0) -> dict[str, Any]:
    """ddx's JSON diagnosis of the stack as a user of it would run it (its ddx.toml)."""
    r = subprocess.run([sys.executable, "-m", "ddx", "diagnose", "--json", "--config", str(stack.dir / "ddx.toml")],
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-400:]
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def present(out: dict[str, Any]) -> list[str]:
    return sorted(f["id"] for f in out["findings"] if f["state"] == "present")


def run_passing(name: str, hold: Callable[[Stack, float, float], Any], **kw: Any) -> DrillResult:
    """Run scenario ``name``: it must pass (its condition first within 30 s) and its
    sandbox must be gone; ``hold`` reads the broken stack before the clean-up."""
    res = run_scenario(all_scenarios()[name], budget=30.0, hold=hold, **kw)
    assert not res.error, res.error
    assert res.cleanup_problems == []
    assert not Path(res.sandbox).exists(), "the sandbox was not removed"
    assert res.passed and res.top3[0][0] == name, res.top3
    assert res.time_to_correct_s is not None and res.time_to_correct_s <= 30.0
    return res
