"""ddx.toml: defaults, search order, and one clear error per mistake."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ddx.config import (
    Config,
    load_config,
    probe_options,
    probe_timeout,
    render_config_doc,
)
from ddx.errors import ConfigError
from ddx.probes import load_probes
from ddx.probes.base import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Neither $DDX_CONFIG nor a ./ddx.toml of the working tree may leak in."""
    monkeypatch.delenv("DDX_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "ddx.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_no_file_gives_defaults() -> None:
    c = load_config(None)
    assert c == Config()
    assert (c.budget, c.window, c.timeout, c.disable) == (10.0, 1.0, None, ())


def test_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd_file = write(tmp_path, "[ddx]\nbudget = 3\n")
    assert load_config(None).path == "./ddx.toml" and load_config(None).budget == 3.0
    other = write(tmp_path, "[ddx]\nbudget = 4\n", "other.toml")
    monkeypatch.setenv("DDX_CONFIG", other)
    assert load_config(None).budget == 4.0
    explicit = write(tmp_path, "[ddx]\nbudget = 5\n", "explicit.toml")
    assert load_config(explicit).budget == 5.0
    assert cwd_file


def test_full_valid_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[ddx]
timeout = 3
budget = 12.5
window = 0
disable = ["memory"]

[probe.disk]
space_low_percent = 85       # an int where the default is a float
expect_rw = ["/srv/data"]
timeout = 4
""",
    )
    c = load_config(path)
    assert (c.timeout, c.budget, c.window, c.disable) == (3.0, 12.5, 0.0, ("memory",))
    disk = registry["disk"]
    opts = probe_options(c, disk)
    assert opts["space_low_percent"] == 85.0 and isinstance(opts["space_low_percent"], float)
    assert opts["expect_rw"] == ["/srv/data"]
    assert opts["space_exhausted_percent"] == disk.options["space_exhausted_percent"]
    assert "timeout" not in opts
    assert probe_timeout(c, disk) == 4.0
    assert probe_timeout(c, registry["cpu"]) == 3.0
    assert probe_timeout(c, disk, override=1.5) == 1.5
    assert probe_timeout(Config(), registry["cpu"]) == registry["cpu"].timeout


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[dx]\ntimeout = 1\n", r"unknown table \[dx\].*did you mean 'ddx'"),
        ("[ddx]\ntimout = 1\n", r"\[ddx\] unknown key 'timout'.*did you mean 'timeout'"),
        ("[ddx]\ntimeout = 'slow'\n", r"\[ddx\] key 'timeout': expected a number"),
        ("[ddx]\nbudget = -1\n", r"\[ddx\] key 'budget': must be > 0"),
        ("[ddx]\ndisable = ['dsk']\n", r"key 'disable': unknown probe 'dsk'.*did you mean 'disk'"),
        ("[ddx]\ndisable = 'disk'\n", r"key 'disable': expected a list"),
        ("[probe.dsk]\nx = 1\n", r"unknown table \[probe.dsk\].*did you mean 'disk'"),
        ("[probe.disk]\nspace_low_pct = 80\n", r"\[probe.disk\] unknown key 'space_low_pct'.*did you mean 'space_low_percent'"),
        ("[probe.disk]\nspace_low_percent = '80%'\n", r"\[probe.disk\] key 'space_low_percent': expected number, got string"),
        ("[probe.disk]\nio_min_requests = 2.5\n", r"key 'io_min_requests': expected integer, got number"),
        ("[probe.disk]\nio_min_requests = true\n", r"key 'io_min_requests': expected integer, got boolean"),
        ("[probe.disk]\nskip_prefixes = [1, 2]\n", r"key 'skip_prefixes': expected list of strings"),
        ("[probe.disk]\ntimeout = 0\n", r"\[probe.disk\] key 'timeout': must be > 0"),
        ("[ddx\n", r"invalid TOML"),
    ],
)
def test_errors_name_file_table_and_key(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=pattern) as exc:
        load_config(path)
    assert str(exc.value).startswith(path)
    assert exc.value.exit_code == 2


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.toml: config file not found"):
        load_config(str(tmp_path / "nope.toml"))


def test_env_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDX_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml"):
        load_config(None)


def test_cli_reports_config_error_with_exit_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = write(tmp_path, "[probe.memory]\navailable_low = 3\n")
    r = subprocess.run(
        [sys.executable, "-m", "ddx", "collect", "-o", str(tmp_path / "b"), "--config", path],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "available_low" in r.stderr and path in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "b.tar.gz").exists()


def test_every_option_is_documented() -> None:
    load_probes()
    doc = (ROOT / "docs" / "config.md").read_text()
    missing = []
    for name, spec in registry.items():
        if name.startswith("t_"):  # throw-away probes of other tests
            continue
        m = re.search(rf"^## \[probe\.{re.escape(name)}\]\n(.*?)(?=^## |\Z)", doc, re.S | re.M)
        if not m:
            missing.append(f"[probe.{name}]")
            continue
        for key in spec.options:
            if f"`{key}`" not in m.group(1):
                missing.append(f"[probe.{name}] {key}")
    for key in ("timeout", "budget", "window", "disable"):
        if f"`{key}`" not in doc:
            missing.append(f"[ddx] {key}")
    assert not missing, "undocumented (regenerate docs/config.md, see its header): " + ", ".join(missing)


def test_generated_doc_has_a_reason_for_each_of_my_defaults() -> None:
    doc = render_config_doc()
    for probe in ("disk", "memory", "cpu"):
        section = doc.split(f"## [probe.{probe}]", 1)[1].split("\n## ", 1)[0]
        for key in registry[probe].options:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{key}`"))
            assert not row.rstrip().endswith("|  |"), f"no reason given for {probe}.{key}"
