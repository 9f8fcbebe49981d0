"""The log probe's template mining: new error messages and error bursts as findings."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from ddx.config import Config
from ddx.host import LiveHost
from ddx.model import State
from ddx.probes.runner import run_probes


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S,000")


def _run(log: Path) -> dict:
    cfg = Config(probes={"logfiles": {"paths": [str(log)], "discover": False, "journal": "never",
                                      "incident_minutes": 10.0}})
    c = run_probes(LiveHost(), cfg, only=["logfiles"])
    (r,) = c.results
    assert r.status == "ok", r.reason
    return {f.id: f for f in c.findings}


def test_new_error_template_and_burst_after_a_quiet_baseline(tmp_path: Path) -> None:
    now = time.time()
    lines = []
    for i in range(120):  # an hour of ordinary traffic, 30 s apart
        t = now - 3600 + i * 30
        lines.append(f"{_ts(t)} INFO app[42]: request GET /items/{i} served in {10 + i % 7} ms")
        if i % 40 == 0:
            lines.append(f"{_ts(t)} ERROR app[42]: payment gateway answered 502 for order {9000 + i}")
    for i in range(40):  # the last five minutes: a new error, many times
        t = now - 300 + i * 7
        lines.append(f"{_ts(t)} ERROR app[42]: could not write session file /var/lib/app/sess_{i:04x}: disk quota exceeded")
    log = tmp_path / "app.log"
    log.write_text("\n".join(lines) + "\n")
    found = _run(log)
    new = found["logs.new_error_signature"]
    assert new.state is State.PRESENT
    text = " ".join(e.summary for e in new.evidence)
    assert "could not write session file" in text
    assert "payment gateway" not in text  # seen in the baseline: not new
    assert new.evidence[0].samples and new.evidence[0].first_seen
    assert found["logs.error_burst"].state is State.PRESENT


def test_steady_log_has_no_new_errors(tmp_path: Path) -> None:
    now = time.time()
    lines = []
    for i in range(240):
        t = now - 3600 + i * 15
        lines.append(f"{_ts(t)} INFO app[42]: request GET /items/{i} served in {10 + i % 7} ms")
        if i % 20 == 0:
            lines.append(f"{_ts(t)} ERROR app[42]: payment gateway answered 502 for order {9000 + i}")
    log = tmp_path / "app.log"
    log.write_text("\n".join(lines) + "\n")
    found = _run(log)
    assert found["logs.new_error_signature"].state is State.ABSENT
    assert found["logs.error_burst"].state is State.ABSENT
