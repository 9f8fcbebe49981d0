"""YAML and JSON bombs (issue 16, security item 5).

A billion-laughs alias expansion, or lists nested fifty thousand deep, in a case
file, a knowledge-base folder or a bundle's JSON: ddx must refuse it with one
clean line (exit 2), in bounded memory and time, before building the objects.
Each bomb is a real file run through the command line in a capped child process.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hostile import MAX_RSS_MB, MAX_SECONDS, run_bounded

FINDING = "disk.space_exhausted"


def _laughs(levels: int = 10) -> str:
    """Each level a list of nine aliases of the one before: 9**levels strings once expanded."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _assert_refused(r, *words: str, kb: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Refused with exit 2 and one clean line: for a knowledge base, one line per
    problem (a KBError lists them all, so a user fixes them in one go)."""
    assert not r.hung, "ddx hung"
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    if kb:
        assert r.stderr.startswith("ddx: error: ") and "Traceback" not in r.stderr, r.stderr[-2000:]
    else:
        assert r.one_clean_line(), r.stderr[-2000:]
    for w in words:
        assert w in r.stderr, r.stderr
    assert r.rss_mb < MAX_RSS_MB, f"{r.rss_mb:.0f} MB"
    assert r.seconds < MAX_SECONDS, f"{r.seconds:.1f} s"


# --- case files ------------------------------------------------------------------------------


def test_a_billion_laughs_case_file_is_refused(tmp_path: Path) -> None:
    case = tmp_path / "laughs.yaml"
    case.write_text(_laughs() + f"title: *l9\npresent: [{FINDING}]\n")
    _assert_refused(run_bounded("diagnose", "--case", str(case)), str(case), "aliases are expanded")


@pytest.mark.parametrize("form", ["flow", "block"])
def test_a_case_file_nested_fifty_thousand_deep_is_refused(tmp_path: Path, form: str) -> None:
    """The C YAML loader recurses once per level: it crashed the interpreter (SIGSEGV)."""
    case = tmp_path / "deep.yaml"
    nested = "[" * 50_000 + "]" * 50_000 if form == "flow" else "\n" + "- " * 50_000 + "x"
    case.write_text(f"present: [{FINDING}]\nstory: {nested}\n")
    _assert_refused(run_bounded("diagnose", "--case", str(case)), str(case), "nested deeper")


def test_a_json_case_file_nested_fifty_thousand_deep_is_refused(tmp_path: Path) -> None:
    case = tmp_path / "deep.json"
    case.write_text('{"present": ["' + FINDING + '"], "story": ' + "[" * 50_000 + "]" * 50_000 + "}")
    _assert_refused(run_bounded("diagnose", "--case", str(case)), str(case), "nested deeper")


def test_an_endless_case_file_is_refused() -> None:
    _assert_refused(run_bounded("diagnose", "--case", "/dev/zero"), "/dev/zero",
                    "is a character device, not a regular file")


# --- knowledge-base folders ------------------------------------------------------------------


def _kb_folder(tmp_path: Path, text: str, name: str) -> Path:
    folder = tmp_path / "kb"
    folder.mkdir()
    (folder / name).write_text(text)
    return folder


@pytest.mark.parametrize("name", ["slow-nfs.yaml", "findings.yaml"])
def test_a_billion_laughs_kb_file_is_refused(tmp_path: Path, name: str) -> None:
    folder = _kb_folder(tmp_path, _laughs() + "id: slow-nfs\nname: *l9\n", name)
    r = run_bounded("diagnose", "--kb", str(folder), "--no-probes", "--saw", FINDING)
    _assert_refused(r, f"{name}:", "aliases are expanded", kb=True)


def test_a_kb_file_nested_fifty_thousand_deep_is_refused(tmp_path: Path) -> None:
    folder = _kb_folder(tmp_path, "id: slow-nfs\nsummary: " + "[" * 50_000 + "]" * 50_000 + "\n", "slow-nfs.yaml")
    r = run_bounded("kb", "lint", str(folder))
    _assert_refused(r, "slow-nfs.yaml:", "nested deeper", kb=True)


# --- the loaders themselves ------------------------------------------------------------------


def test_ordinary_aliases_and_nesting_still_load() -> None:
    from ddx.safeload import MAX_DEPTH, load_json, load_yaml

    text = "base: &b {retries: 3, hosts: [a, b]}\nweb: *b\ndb: {<<: *b, retries: 5}\n"
    assert load_yaml(text) == {"base": {"retries": 3, "hosts": ["a", "b"]}, "web": {"retries": 3, "hosts": ["a", "b"]},
                               "db": {"retries": 5, "hosts": ["a", "b"]}}
    deep = "[" * (MAX_DEPTH - 1) + "1" + "]" * (MAX_DEPTH - 1)
    assert load_json(deep) is not None and load_yaml(deep) is not None
    assert load_json(json.dumps({"a": "[" * 500})) == {"a": "[" * 500}  # brackets in strings do not nest


def test_the_limits_are_exact() -> None:
    from ddx.safeload import (
        MAX_DEPTH,
        MAX_YAML_NODES,
        LoadError,
        check_json,
        load_json,
        load_yaml,
    )

    with pytest.raises(LoadError, match="nested deeper"):
        load_json("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(LoadError, match="nested deeper"):
        load_yaml("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    many = "[" + ", ".join(["1"] * MAX_YAML_NODES) + "]"
    with pytest.raises(LoadError, match="nodes"):
        load_yaml(many)
    with pytest.raises(LoadError, match="inside the node it names"):
        load_yaml("a: &a [1, *a]\n")
    check_json('{"unbalanced": [}')  # not JSON: left for the parser to word
    with pytest.raises(LoadError):
        load_json('{"unbalanced": [}')


def test_read_limited_reads_no_more_than_its_limit(tmp_path: Path) -> None:
    from ddx.safeload import LoadError, read_limited

    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    assert read_limited(f, 100) == "x" * 100
    with pytest.raises(LoadError, match="more than the"):
        read_limited(f, 99)
