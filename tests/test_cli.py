"""The command line as a whole process: help, errors, output formats."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import EXAMPLES, ROOT, run_ddx

from ddx import __version__
from ddx.cli import COMMAND_MODULES, build_parser

SCHEMA = json.loads((ROOT / "docs" / "schema" / "diagnosis.schema.json").read_text())
CASE = str(EXAMPLES / "shmoocon-noon-sale.yaml")


def test_version():
    r = run_ddx("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"ddx {__version__}"


def _commands(parser, prefix=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _commands(sub, prefix + (name,))


def test_every_command_has_help_with_an_example():
    parser = build_parser()
    assert "examples:" in parser.format_help()
    commands = list(_commands(parser))
    assert {c[0][0] for c in commands} >= {"diagnose", "kb", "findings"}
    for path, sub in commands:
        text = sub.format_help()
        assert "examples:" in text, f"`ddx {' '.join(path)} --help` has no example"
        assert "  ddx " in text.split("examples:", 1)[1], f"`ddx {' '.join(path)}` example is not a command"


def test_command_modules_are_all_registered():
    names = {c[0][0] for c in _commands(build_parser())}
    for module in COMMAND_MODULES:
        if (ROOT / "src" / "ddx" / "cli" / f"{module}.py").exists():
            assert module in names


def test_json_output_validates_against_the_schema():
    r = run_ddx("diagnose", "--case", CASE, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    jsonschema.validate(out, SCHEMA)
    assert out["mode"] == "case"
    assert out["hypotheses"][0]["id"] == "connection-limit"
    top = out["hypotheses"][0]
    assert {w["finding"] for w in top["for"]} >= {"load.low", "net.connection_resets"}
    assert out["next_checks"][0]["command"]
    assert sum(h["probability"] for h in out["hypotheses"]) + out["unexplained"]["probability"] == pytest.approx(1, abs=1e-3)


def test_output_is_byte_for_byte_deterministic():
    a = run_ddx("diagnose", "--case", CASE, "--json").stdout
    b = run_ddx("diagnose", "--case", CASE, "--json").stdout
    assert a == b
    assert run_ddx("diagnose", "--case", CASE).stdout == run_ddx("diagnose", "--case", CASE).stdout


def test_terminal_view_is_plain_when_not_a_tty():
    r = run_ddx("diagnose", "--case", CASE)
    assert r.returncode == 0
    assert "\x1b[" not in r.stdout
    assert "Connection or worker limit reached" in r.stdout
    assert "Next checks" in r.stdout and "$ ss -ltn" in r.stdout
    coloured = run_ddx("diagnose", "--case", CASE, "--color", "always")
    assert "\x1b[" in coloured.stdout


def test_markdown_block():
    r = run_ddx("diagnose", "--case", CASE, "--markdown")
    assert r.returncode == 0
    assert r.stdout.startswith("### ddx diagnosis: ShmooCon")
    assert "| 1 | Connection or worker limit reached (`connection-limit`) |" in r.stdout
    assert "```" in r.stdout


def test_saw_and_ruled_out_without_a_case():
    r = run_ddx("diagnose", "--no-probes", "--saw", "disk.inodes_exhausted", "--saw", "logs.enospc",
                "--ruled-out", "disk.space_exhausted", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["hypotheses"][0]["id"] == "inode-exhaustion"
    assert {f["source"] for f in out["findings"]} == {"cli"}


def test_a_persons_word_overrides_the_case_file():
    r = run_ddx("diagnose", "--case", CASE, "--saw", "load.low", "--ruled-out", "http.requests_surge", "--json")
    out = json.loads(r.stdout)
    by_id = {f["id"]: f for f in out["findings"]}
    assert by_id["http.requests_surge"]["state"] == "absent" and by_id["http.requests_surge"]["source"] == "cli"


BAD_INPUTS = [
    ("unknown finding", "present: [disk.space_exausted]\n", "unknown finding id 'disk.space_exausted' (did you mean disk.space_exhausted?)"),
    ("both", "present: [load.low]\nabsent: [load.low]\n", "'load.low' is listed both as present and as absent"),
    ("not yaml", "present: [load.low\n", "not a valid case file"),
    ("not a mapping", "- load.low\n", "a case file is a mapping"),
    ("empty", "title: nothing\n", "no findings"),
    ("bad item", "present: [{x: 1}]\n", "present[0]: expected a finding id"),
]


@pytest.mark.parametrize("name, text, message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_case_files_fail_clearly(tmp_path: Path, name, text, message):
    f = tmp_path / "case.yaml"
    f.write_text(text)
    r = run_ddx("diagnose", "--case", str(f), "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    assert message in r.stderr
    assert str(f) in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_json_case_file(tmp_path: Path):
    f = tmp_path / "case.json"
    f.write_text('{"present": ["load.low",]}')
    r = run_ddx("diagnose", "--case", str(f))
    assert r.returncode == 2 and r.stdout == "" and "case.json" in r.stderr


def test_json_case_file(tmp_path: Path):
    f = tmp_path / "case.json"
    f.write_text(json.dumps({"present": ["disk.space_exhausted", "logs.enospc"], "expect": {"top1": "disk-full"}}))
    r = run_ddx("diagnose", "--case", str(f), "--json")
    assert json.loads(r.stdout)["hypotheses"][0]["id"] == "disk-full"


def test_missing_case_file_and_bad_flags():
    r = run_ddx("diagnose", "--case", "/nonexistent/case.yaml")
    assert r.returncode == 2 and "no such case file" in r.stderr and r.stdout == ""
    r = run_ddx("diagnose", "--no-probes", "--saw", "load.lowx")
    assert r.returncode == 2 and "unknown finding id 'load.lowx'" in r.stderr
    r = run_ddx("diagnose", "--no-probes", "--saw", "load.low", "--ruled-out", "load.low")
    assert r.returncode == 2 and "both with --saw and with --ruled-out" in r.stderr


def test_unknown_keys_in_a_case_warn_but_work(tmp_path: Path):
    f = tmp_path / "case.yaml"
    f.write_text("present: [logs.enospc]\nseverity: high\n")
    r = run_ddx("diagnose", "--case", str(f), "--json")
    assert r.returncode == 0
    assert "ignoring unknown key 'severity'" in r.stderr


def test_findings_command():
    r = run_ddx("findings", "tls")
    assert r.returncode == 0 and "tls.cert_expired" in r.stdout and "disk." not in r.stdout
    r = run_ddx("findings", "nope")
    assert r.returncode == 2 and "areas:" in r.stderr
    data = json.loads(run_ddx("findings", "--json").stdout)
    assert all(0 < f["fp_rate"] < 1 for f in data)


def test_debug_shows_a_traceback():
    r = run_ddx("--debug", "diagnose", "--case", "/nonexistent.yaml")
    assert "Traceback" in r.stderr


def test_target_urls_are_masked_and_checked():
    from ddx.urls import mask_url

    assert mask_url("redis://:s3cret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_url("postgresql://app:pw@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert mask_url("https://example.test/health") == "https://example.test/health"
    r = run_ddx("diagnose", "--target", "ftp://user:hunter2@files", "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert "no probe handles" in r.stderr and "hunter2" not in r.stderr
