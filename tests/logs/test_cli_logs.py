"""`ddx logs parse` and `ddx logs summary` as a user runs them."""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys

import pytest

from ddx.cli import main

SSH = [
    "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
    "Dec 10 06:55:46 LabSZ sshd[24200]: input_userauth_request: invalid user webmaster [preauth]",
    "Dec 10 07:02:47 LabSZ sshd[24203]: Connection closed by 212.47.254.145 [preauth]",
    "Dec 10 07:07:38 LabSZ sshd[24206]: Invalid user test9 from 52.80.34.196",
    "Dec 10 07:07:38 LabSZ sshd[24206]: input_userauth_request: invalid user test9 [preauth]",
    "Dec 10 07:08:28 LabSZ sshd[24208]: Invalid user oracle from 112.95.230.3",
]


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _csv(text):
    return list(csv.reader(io.StringIO(text)))


@pytest.fixture
def ssh_log(tmp_path):
    p = tmp_path / "auth.log"
    p.write_text("\n".join(SSH) + "\n")
    return p


def test_parse_csv_has_a_row_per_line_in_order(capsys, ssh_log):
    code, out, err = _run(capsys, "logs", "parse", str(ssh_log), "--csv")
    rows = _csv(out)
    assert code == 0 and err == ""
    assert rows[0] == ["line", "template_id", "template"]
    assert [int(r[0]) for r in rows[1:]] == list(range(1, 7))
    invalid = {r[2] for r in rows[1:] if r[2].startswith("Invalid user")}
    assert invalid == {"Invalid user <*> from <*>"}  # one final template for lines 1, 4, 6
    ids = {r[1] for r in rows[1:] if r[2].startswith("Invalid user")}
    assert len(ids) == 1 and len(ids.pop()) == 10


def test_parse_ids_are_stable_across_files(capsys, tmp_path, ssh_log):
    other = tmp_path / "other.log"
    other.write_text("\n".join(reversed(SSH)) + "\n")
    a = {r[2]: r[1] for r in _csv(_run(capsys, "logs", "parse", str(ssh_log), "--csv")[1])[1:]}
    b = {r[2]: r[1] for r in _csv(_run(capsys, "logs", "parse", str(other), "--csv")[1])[1:]}
    assert a == b


def test_parse_plain_output_is_tab_separated(capsys, ssh_log):
    code, out, _ = _run(capsys, "logs", "parse", str(ssh_log))
    first = out.splitlines()[0].split("\t")
    assert code == 0 and first[0] == "1" and first[2] == "Invalid user <*> from <*>"


def test_parse_reads_stdin_and_streams(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(("\n".join(SSH) + "\n").encode())))
    code, out, _ = _run(capsys, "logs", "parse", "-", "--csv")
    rows = _csv(out)[1:]
    assert code == 0 and len(rows) == 6
    assert rows[0][2] == "Invalid user webmaster from <*>"  # as it was when line 1 arrived
    assert rows[5][2] == "Invalid user <*> from <*>"


def test_parse_reads_gzip(capsys, tmp_path):
    p = tmp_path / "auth.log.gz"
    with gzip.open(p, "wt") as f:
        f.write("\n".join(SSH) + "\n")
    code, out, _ = _run(capsys, "logs", "parse", str(p), "--csv")
    assert code == 0 and len(_csv(out)) == 7


def test_parse_bad_inputs_give_notes_not_tracebacks(capsys, tmp_path):
    binary = tmp_path / "core"
    binary.write_bytes(bytes(range(256)) * 64)
    code, out, err = _run(capsys, "logs", "parse", str(binary), "--csv")
    assert code == 0 and _csv(out) == [["line", "template_id", "template"]]
    assert "binary file, skipped" in err

    empty = tmp_path / "empty.log"
    empty.write_text("")
    code, out, err = _run(capsys, "logs", "parse", str(empty))
    assert code == 0 and out == "" and "empty file" in err

    mixed = tmp_path / "mixed.log"
    mixed.write_bytes(b"good line one\n" + b"y" * (1 << 20 | 5) + b"\nbad \xc3\x28 utf8\n")
    code, out, err = _run(capsys, "logs", "parse", str(mixed), "--csv")
    rows = _csv(out)[1:]
    assert code == 0 and [r[0] for r in rows] == ["1", "3"]
    assert "over 1 MiB (line 2)" in err and "invalid UTF-8" in err

    code, out, err = _run(capsys, "logs", "parse", str(tmp_path / "missing.log"))
    assert code == 2 and "missing.log: no such file" in err and "Traceback" not in err


def test_summary_text(capsys, tmp_path):
    lines = [f"2024-05-01 12:{i // 60:02d}:{i % 60:02d},000 INFO job {i} done" for i in range(600)]
    lines += [f"2024-05-01 12:10:{i:02d},500 ERROR disk full on /dev/sda{i % 3}" for i in range(30)]
    p = tmp_path / "app.log"
    p.write_text("\n".join(lines) + "\n")
    code, out, err = _run(capsys, "logs", "summary", str(p), "--baseline-until", "2024-05-01T12:09:00")
    assert code == 0
    assert "New error-level templates (1):" in out
    assert "disk full on <*>" in out and "sample: 2024-05-01 12:10:29,500 ERROR" in out


def test_summary_json_and_several_files(capsys, tmp_path, ssh_log):
    p = tmp_path / "app.log"
    p.write_text("\n".join(f"2024-05-01 12:00:{i:02d},000 INFO tick {i}" for i in range(50)) + "\n")
    code, out, _ = _run(capsys, "logs", "summary", str(ssh_log), str(p), str(tmp_path / "nope.log"), "--json")
    d = json.loads(out)
    assert code == 0
    assert [f["format"] for f in d["formats"]] == ["rfc3164", "timestamp-level"]
    assert any("nope.log: no such file" in s for s in d["skipped"])
    assert sum(t["count"] for t in d["templates"]) == d["lines"] == 56


def test_summary_bad_time_is_a_usage_error(capsys, ssh_log):
    code, _, err = _run(capsys, "logs", "summary", str(ssh_log), "--since", "yesterday-ish")
    assert code == 2 and "--since" in err


def test_logs_without_subcommand_prints_help(capsys):
    code, out, _ = _run(capsys, "logs")
    assert code == 2 and "parse" in out and "summary" in out and "examples:" in out


def test_ids_are_the_same_in_another_process(ssh_log):
    from conftest import run_ddx

    outs = {run_ddx("logs", "parse", str(ssh_log), "--csv", env={"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and outs.pop().count("\n") == 7
