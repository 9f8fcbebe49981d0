"""`ddx drill` as a user runs it: the list, bad input, and a whole run with JSON output."""

from __future__ import annotations

import json
import os

import pytest
from conftest import run_ddx


def test_list_names_every_scenario_with_its_expected_cause() -> None:
    r = run_ddx("drill", "list", "--json")
    assert r.returncode == 0, r.stderr
    items = {s["name"]: s for s in json.loads(r.stdout)}
    assert {"healthy", "disk-full"} <= set(items)
    assert items["healthy"]["expected"] is None
    assert items["disk-full"]["expected"] == "disk-full"
    from ddx.kb.loader import load_kb

    kb = load_kb(strict=True)
    for s in items.values():  # every expected cause is a condition ddx knows
        assert s["expected"] is None or s["expected"] in kb.conditions, s


def test_scenario_order_follows_the_module_list_whatever_is_imported_first() -> None:
    """A test importing one scenario module directly (for a helper) must not reorder
    `ddx drill list` or the generated table in docs/drill.md."""
    import subprocess
    import sys

    from ddx.drill.scenarios import SCENARIO_MODULES

    code = ("import importlib, json, sys\n"
            "for m in sys.argv[1:]: importlib.import_module('ddx.drill.scenarios.' + m)\n"
            "from ddx.drill.scenarios import all_scenarios\n"
            "print(json.dumps([(s.name, s.inject.__module__.rpartition('.')[2]) for s in all_scenarios().values()]))")
    orders = []
    for first in (list(SCENARIO_MODULES), list(reversed(SCENARIO_MODULES))):
        r = subprocess.run([sys.executable, "-c", code, *first], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        orders.append(json.loads(r.stdout))
    assert orders[0] == orders[1]
    modules = [m for _, m in orders[0]]
    assert modules == sorted(modules, key=SCENARIO_MODULES.index)  # grouped in the list's order


@pytest.mark.parametrize(("args", "words"), [
    (["run"], "name at least one scenario"),
    (["run", "disk-ful"], "unknown scenario(s): disk-ful"),
    (["run", "disk-full", "--budget", "0"], "argument --budget: must be more than 0 seconds"),
])
def test_bad_input_exits_2_with_a_clear_message(args: list[str], words: str) -> None:
    r = run_ddx("drill", *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and r.stdout == ""


@pytest.mark.root
@pytest.mark.slow
def test_run_reports_top3_time_and_next_check_as_json(drill_ready: None) -> None:
    r = run_ddx("drill", "run", "disk-full", "healthy", "--json", timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    assert out["schema"] == "ddx.drill/1"
    full, healthy = out["results"]
    assert full["scenario"] == "disk-full" and full["passed"] and full["top1_ok"] and full["top3_ok"]
    assert full["top3"][0]["id"] == "disk-full" and full["probability"] > 0.5
    assert 0 < full["time_to_correct_s"] <= full["runs"][-1]["at_s"] + 1e-6
    assert full["next_check"]["command"]
    assert all(run["cpu_s"] > 0 and run["rss_mib"] > 1 for run in full["runs"])
    assert full["cleanup_problems"] == [] and not os.path.exists(full["sandbox"])
    assert healthy["passed"] and healthy["probability"] <= 0.5 and len(healthy["runs"]) == 3
    assert not os.path.exists(healthy["sandbox"])
