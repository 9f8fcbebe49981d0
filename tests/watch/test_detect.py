"""Symptom detection: limits, baselines, hysteresis, and its state across a restart."""

from __future__ import annotations

import json

from ddx.watch.detect import Detector, Rule


def feed(d: Detector, start: float, step: float, values: list[dict[str, float]]) -> list[tuple[float, str]]:
    out = []
    for i, v in enumerate(values):
        at = start + i * step
        out += [(at, c) for c in d.feed(at, v)]
    return out


def test_a_limit_opens_after_holding_and_clears_after_the_quiet_period() -> None:
    d = Detector([Rule("mem.available_pct", "memory {value:.0f}%", below=5.0, hold=30.0)], down=60.0)
    low, ok = {"mem.available_pct": 2.0}, {"mem.available_pct": 50.0}
    changes = feed(d, 0.0, 10.0, [low] * 3)  # 0, 10, 20 s: not yet 30 s
    assert changes == [] and d.active() == {}
    changes = feed(d, 30.0, 10.0, [low] + [ok] * 6 + [ok])  # opens at 30; quiet from 40; clears at 100
    assert changes == [(30.0, "+mem.available_pct"), (100.0, "-mem.available_pct")]
    # a blip shorter than the hold never opens
    assert feed(d, 200.0, 10.0, [low, low, ok, low, ok]) == []


def test_a_symptom_flapping_every_20_seconds_for_10_minutes_stays_one_symptom() -> None:
    d = Detector([Rule("swap.pages_per_s", "swapping", above=256.0, hold=0.0)], down=300.0, down_multiplier=1.5,
                 down_max=3600.0)
    values = [{"swap.pages_per_s": 5000.0 if (i // 2) % 2 == 0 else 0.0} for i in range(60)]  # 20 s on, 20 s off
    changes = feed(d, 0.0, 10.0, values)
    assert changes == [(0.0, "+swap.pages_per_s")]
    # after the flapping stops it clears once, 5 minutes after the last bad sample
    tail = feed(d, 600.0, 10.0, [{"swap.pages_per_s": 0.0}] * 40)
    assert [c for _, c in tail] == ["-swap.pages_per_s"]


def test_a_symptom_back_soon_after_clearing_waits_longer_before_clearing_again() -> None:
    d = Detector([Rule("oom.kills", "oom", above=0.0, hold=0.0)], down=100.0, down_multiplier=2.0, down_max=1000.0)
    kill, calm = {"oom.kills": 1.0}, {"oom.kills": 0.0}
    feed(d, 0.0, 10.0, [kill] + [calm] * 12)  # clears at 110 (quiet from 10, 100 s)
    assert d.active() == {}
    assert d.symptoms["oom.kills"].delay == 100.0
    feed(d, 200.0, 10.0, [kill])  # back 90 s after clearing: a flap
    assert d.symptoms["oom.kills"].delay == 200.0
    feed(d, 210.0, 10.0, [calm] * 15)  # quiet 150 s: still open with the longer delay
    assert "oom.kills" in d.active()


def test_a_spike_against_the_baseline_and_the_incident_does_not_become_the_normal() -> None:
    rule = Rule("load.per_cpu", "load {value:.1f} against {median:.1f}", spike=True, k=6.0, min_delta=1.0,
                floor=1.5, hold=0.0)
    d = Detector([rule], down=30.0)
    calm = [{"load.per_cpu": 0.3 + 0.02 * (i % 5)} for i in range(30)]
    assert feed(d, 0.0, 10.0, calm) == []
    changes = feed(d, 300.0, 10.0, [{"load.per_cpu": 6.0}] * 100)  # a long incident
    assert changes == [(300.0, "+load.per_cpu~")]
    assert "against 0.3" in d.active()["load.per_cpu~"]
    # a host that always runs at 6 never spikes at 6
    busy = Detector([rule], down=30.0)
    assert feed(busy, 0.0, 10.0, [{"load.per_cpu": 6.0 + 0.1 * (i % 3)} for i in range(60)]) == []


def test_a_prefix_rule_judges_each_filesystem_on_its_own() -> None:
    d = Detector([Rule("disk.used_pct:", "{subject} {value:.0f}% full", above=95.0, hold=0.0)])
    d.feed(0.0, {"disk.used_pct:/": 40.0, "disk.used_pct:/var": 99.0})
    assert d.active() == {"disk.used_pct:/var": "/var 99% full"}


def test_the_state_survives_a_restart_as_json() -> None:
    d = Detector([Rule("oom.kills", "oom", above=0.0, hold=0.0)], down=100.0)
    d.feed(0.0, {"oom.kills": 2.0, "load.per_cpu": 0.5})
    state = json.loads(json.dumps(d.to_state()))
    again = Detector([Rule("oom.kills", "oom", above=0.0, hold=0.0)], down=100.0)
    again.load_state(state)
    assert again.active() == d.active() == {"oom.kills": "oom"}
    assert list(again.baselines["load.per_cpu"].values) == [0.5]
    # and it clears on the same schedule as it would have
    assert again.feed(101.0, {"oom.kills": 0.0}) == []
    assert again.feed(201.0, {"oom.kills": 0.0}) == ["-oom.kills"]
    again.load_state({"symptoms": {"x": {"bogus": 1}}, "baselines": {"y": "not a list"}})  # foreign state: ignored


def test_the_systemd_units_that_ship_are_valid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import pytest

    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    units = Path(__file__).resolve().parents[2] / "contrib" / "systemd"
    ddx = Path(sys.executable).with_name("ddx")
    for unit in ("ddx-watch.service", "ddx-serve.service"):
        text = (units / unit).read_text().replace("/usr/local/bin/ddx", str(ddx))
        (tmp_path / unit).write_text(text)
        r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                           timeout=60)
        problems = [ln for ln in (r.stdout + r.stderr).splitlines() if unit in ln]
        assert not problems, problems
