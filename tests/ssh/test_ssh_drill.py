"""A real fault diagnosed over SSH: the disk-full drill (its stack, its fault: the app's
cache tmpfs filled by a runaway export) read through SshHost from the test sshd, whose
"remote" host is this machine. The drill writes nothing to the kernel log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sshserver import Sshd, sshd_server  # noqa: F401 - the sshd fixture

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "drill"))
from drillcheck import run_passing  # noqa: E402

pytestmark = pytest.mark.slow


def test_disk_full_over_ssh(drill_ready: None, sshd: Sshd) -> None:
    from ddx.api import SshOptions, diagnose_host
    from ddx.render.jsonout import to_dict

    got: dict[str, Any] = {}

    def hold(stack: Any, started: float, budget: float) -> dict[str, Any]:
        report = diagnose_host(config=str(stack.dir / "ddx.toml"), budget=20,
                               ssh=SshOptions("sshtest", str(sshd.client_config)))
        got["report"] = {**to_dict(report.diagnosis), "host": report.host}
        return {}

    run_passing("disk-full", hold)
    out = got["report"]
    assert out["ssh"] == "sshtest"
    assert out["hypotheses"][0]["id"] == "disk-full", [(h["id"], h["probability"]) for h in out["hypotheses"][:3]]
    present = {f["id"] for f in out["findings"] if f["state"] == "present"}
    assert {"disk.space_exhausted", "logs.enospc"} <= present, present
    assert _drains(sshd)


def _drains(sshd: Sshd) -> bool:
    import time

    end = time.monotonic() + 5
    while sshd.sessions() and time.monotonic() < end:
        time.sleep(0.05)
    return sshd.sessions() == []
