"""Importing ddx.logs and the logs command costs nothing until they are used."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return set(out.split())


def test_import_ddx_logs_loads_nothing_else():
    before = _modules_after("import ddx")
    after = _modules_after("import ddx.logs")
    assert after - before <= {"ddx.logs", "__future__"}


def test_building_the_cli_does_not_import_the_library():
    mods = _modules_after("from ddx.cli import build_parser; build_parser()")
    assert "ddx.cli.logs" in mods
    assert not {m for m in mods if m == "ddx.logs" or m.startswith("ddx.logs.")}


def test_lazy_public_names_resolve():
    import ddx.logs

    assert ddx.logs.TemplateMiner().add("x 1").template == "x <*>"
    assert callable(ddx.logs.summarize) and callable(ddx.logs.log_findings)
    assert ddx.logs.template_id("a") == ddx.logs.template_id("a")
