"""`ddx collect -o BUNDLE` then `ddx diagnose --from BUNDLE`, as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
from live_helpers import ROOT

SCHEMA = json.loads((ROOT / "docs" / "schema" / "diagnosis.schema.json").read_text())
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _ddx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ddx", *args], capture_output=True, text=True, timeout=120, env=ENV)


def test_collect_then_replay(tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.tar.gz"
    r = _ddx("collect", "-o", str(bundle))
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""  # a summary on stderr, nothing else
    assert bundle.exists() and bundle.stat().st_size > 1000
    one = _ddx("diagnose", "--from", str(bundle), "--json")
    two = _ddx("diagnose", "--from", str(bundle), "--json")
    assert one.returncode == 0, one.stderr
    assert one.stdout == two.stdout  # a replay is deterministic
    out = json.loads(one.stdout)
    jsonschema.validate(out, SCHEMA)
    assert out["mode"] == "bundle"
    assert {p["name"] for p in out["probes"]} >= {"disk", "memory", "cpu", "procs", "kernel", "net"}
    # a person's word still wins over the replayed evidence
    r = _ddx("diagnose", "--from", str(bundle), "--saw", "disk.space_exhausted", "--json")
    f = {x["id"]: x for x in json.loads(r.stdout)["findings"]}["disk.space_exhausted"]
    assert f["state"] == "present" and f["source"] == "cli"


def test_replaying_a_missing_or_broken_bundle_fails_clearly(tmp_path: Path) -> None:
    r = _ddx("diagnose", "--from", str(tmp_path / "nope.tar.gz"))
    assert r.returncode == 2 and r.stdout == "" and "nope.tar.gz" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tarball")
    r = _ddx("diagnose", "--from", str(bad))
    assert r.returncode == 2 and r.stdout == "" and "bad.tar.gz" in r.stderr and "Traceback" not in r.stderr


def test_invalid_config_names_key_and_file(tmp_path: Path) -> None:
    cfg = tmp_path / "ddx.toml"
    cfg.write_text("[probe.disk]\nlow_pct = 80\n")
    r = _ddx("diagnose", "--config", str(cfg))
    assert r.returncode == 2 and r.stdout == ""
    assert str(cfg) in r.stderr and "low_pct" in r.stderr
