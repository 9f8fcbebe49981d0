"""Hostile input and output, built for real: a full disk (/dev/full), a file size limit, pipes,
FIFOs with and without a writer, closed stdin, binary and deeply nested settings files, numbers
out of range, terminal escape sequences and spreadsheet formulas in logs and case titles.
ddx answers each with its output or one line on stderr (exit 2 for bad input, 1 when it cannot
write), never a traceback or a hang."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import EXAMPLES

CASE = str(EXAMPLES / "shmoocon-noon-sale.yaml")


def ddx(*args: str, stdin: object = subprocess.DEVNULL, stdout: object = subprocess.PIPE, env: dict | None = None,
        cwd: Path | None = None, timeout: float = 60, preexec: object = None) -> subprocess.CompletedProcess[bytes]:
    """ddx as a whole process; output as bytes (a terminal gets bytes)."""
    full = {k: v for k, v in os.environ.items() if k != "DDX_CONFIG"}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "ddx", *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                          env=full, cwd=cwd, timeout=timeout, preexec_fn=preexec)  # type: ignore[arg-type]


def one_line(r: subprocess.CompletedProcess[bytes], code: int = 2) -> str:
    """The single stderr line of a run that failed as designed."""
    err = r.stderr.decode(errors="replace")
    assert r.returncode == code, (r.returncode, err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# --- output that cannot be written -------------------------------------------------------------

@pytest.mark.parametrize("unbuffered", ["", "1"], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("args", [
    ("diagnose", "--case", CASE, "--json"),
    ("diagnose", "--case", CASE, "--markdown"),
    ("findings",),
    ("kb", "show", "disk-full"),
    ("diagnose", "--help"),
], ids=["json", "markdown", "findings", "kb-show", "help"])
def test_a_full_disk_is_one_line_and_exit_1(args: tuple[str, ...], unbuffered: str) -> None:
    with open("/dev/full", "wb") as full:
        r = ddx(*args, stdout=full, env={"PYTHONUNBUFFERED": unbuffered} if unbuffered else {"PYTHONUNBUFFERED": ""})
    assert "cannot write the output: No space left on device" in one_line(r, 1)


def test_unbuffered_output_cut_by_a_size_limit_is_an_error(tmp_path: Path) -> None:
    """A partial write (the disk fills after 1 KB) used to end with exit 0 and half the JSON."""
    out = tmp_path / "out.json"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    with open(out, "wb") as fh:
        r = ddx("diagnose", "--case", CASE, "--json", stdout=fh, env={"PYTHONUNBUFFERED": "1"}, preexec=limit)
    assert "cannot write the output: File too large" in one_line(r, 1)
    assert out.stat().st_size == 1024


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    p = subprocess.Popen([sys.executable, "-m", "ddx", "logs", "parse", str(Path(__file__).parent / "data" /
                          "loghub2k" / "Linux" / "Linux_2k.log")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None
    p.stdout.readline()
    p.stdout.close()  # like `| head -1`
    err = p.stderr.read() if p.stderr else b""
    assert p.wait(60) == 0 and b"Traceback" not in err and b"Exception ignored" not in err, err


@pytest.mark.parametrize(("out", "message"), [
    ("/dev/full", "-o /dev/full: is a character device, not a bundle file or a folder"),
    ("FIFO", "is a FIFO, not a bundle file or a folder"),
    ("", "-o: an empty file name"),
])
def test_collect_refuses_an_output_that_cannot_be_a_bundle(tmp_path: Path, out: str, message: str) -> None:
    """Before any probe runs; nothing is written beside it (no /dev/full.tar.gz)."""
    if out == "FIFO":
        out = str(tmp_path / "fifo")
        os.mkfifo(out)
    before = set(os.listdir("/dev"))
    assert message in one_line(ddx("collect", "-o", out, "--only", "clock", cwd=tmp_path, timeout=20))
    assert set(os.listdir("/dev")) == before
    assert [p.name for p in tmp_path.iterdir()] == (["fifo"] if out.endswith("fifo") else [])


# --- logs from pipes, FIFOs and a closed stdin ------------------------------------------------

LOG = b"May  1 12:00:01 web1 app[12]: request 1 done\nMay  1 12:00:02 web1 app[12]: request 2 done\n"


def test_logs_parse_reads_a_pipe_named_as_a_file() -> None:
    p = subprocess.run([sys.executable, "-m", "ddx", "logs", "parse", "/dev/stdin"], input=LOG, capture_output=True,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    rows = p.stdout.decode().splitlines()
    assert [row.split("\t")[0] for row in rows] == ["1", "2"] and rows[0].split("\t")[1] == rows[1].split("\t")[1]


@pytest.mark.parametrize("command", ["parse", "summary"])
def test_logs_read_a_fifo_with_a_writer(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "app.log"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as fh:
            fh.write(LOG * 50)

    t = threading.Thread(target=write, daemon=True)
    t.start()
    r = ddx("logs", command, str(fifo), timeout=60)
    t.join(10)
    assert r.returncode == 0, r.stderr
    assert b"100 lines" in r.stdout if command == "summary" else len(r.stdout.splitlines()) == 100


def test_logs_on_a_fifo_nobody_writes_to_end_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "nobody.log"
    os.mkfifo(fifo)
    r = ddx("logs", "parse", str(fifo), timeout=20)
    assert r.returncode == 0 and r.stdout == b"" and b"empty file" in r.stderr


@pytest.mark.parametrize("device", ["/dev/urandom", "/dev/zero"])
@pytest.mark.parametrize("command", ["parse", "summary"])
def test_logs_of_an_endless_binary_device_end_at_once(device: str, command: str) -> None:
    """Random bytes are mostly not UTF-8: binary, skipped (once read as an endless log)."""
    with open(device, "rb") as src:
        r = ddx("logs", command, "-", stdin=src, timeout=20)
    assert r.returncode == 0 and b"-: binary file, skipped" in r.stderr + r.stdout, r.stderr  # summary: in its report


@pytest.mark.parametrize("command", [("logs", "parse", "-"), ("logs", "summary", "-")])
def test_logs_from_a_closed_stdin(command: tuple[str, ...]) -> None:
    r = subprocess.run([sys.executable, "-m", "ddx", *command], stdin=None, capture_output=True, timeout=60,
                       preexec_fn=lambda: os.close(0))
    assert "-: standard input is closed" in one_line(r)


# --- settings files --------------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (b"[ddx]\n# caf\xe9\nbudget = 3\n", "ddx.toml:2: not UTF-8 text"),
    (b"\xff\xfe[\x00d\x00", "not UTF-8 text"),
    (b"a = " + b"[" * 100_000 + b"]" * 100_000 + b"\n", "nested too deeply"),
    (b"[ddx]\nbudget = 1e308\n", "[ddx] key 'budget': must be at most 3600"),
    (b"[ddx]\ntimeout = 9223372036854775807\n", "[ddx] key 'timeout': must be at most 3600"),
    (b"[ddx]\nwindow = nan\n", "[ddx] key 'window': expected a number of seconds, got not a finite number"),
    (b"[probe.disk]\nspace_low_percent = -5.0\n", "[probe.disk] key 'space_low_percent': must be 0 or more"),
    (b"[probe.disk]\nspace_low_percent = 250.0\n", "[probe.disk] key 'space_low_percent': must be at most 100"),
    (b"[probe.logfiles]\nmax_bytes = -1\n", "[probe.logfiles] key 'max_bytes': must be 0 or more"),
    (b"[probe.http]\nerror_ratio = 3.0\n", "[probe.http] key 'error_ratio': must be at most 1"),
    (b"[probe.disk]\ntimeout = 1e300\n", "[probe.disk] key 'timeout': must be at most 3600"),
    (b"[probe.kernel]\nsince = 1e300\n", "[probe.kernel] key 'since': must be at most"),
    (b"[probe.kernel]\nlookback_hours = 1e12\n", "[probe.kernel] key 'lookback_hours': must be at most"),
    (b"[ddx]\n" + b"k" * 100_000 + b" = 1\n", "[ddx] unknown key 'kkkkkkkkkk"),
    (b"# " + b"x" * (2 << 20) + b"\n", "more than the 1 MB allowed"),
], ids=["latin1", "utf16", "nested", "huge-float", "huge-int", "nan", "negative-percent", "percent-over-100",
        "negative-size", "ratio-over-1", "huge-probe-timeout", "since-far-future", "lookback-huge", "long-key",
        "too-big"])
def test_a_bad_ddx_toml_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "ddx.toml").write_bytes(content)
    err = one_line(ddx("inventory", "--json", cwd=tmp_path))
    assert message in err and len(err) < 400, err


@pytest.mark.parametrize(("path", "message"), [
    ("/dev/zero", "is a character device, not a config file"),
    ("/dev/null", "is a character device, not a config file"),
    ("FIFO", "is a FIFO, not a config file"),
    ("DIR", "is a folder, not a config file"),
    ("", "--config: an empty file name"),
])
def test_a_config_that_is_not_a_regular_file_is_one_line_without_waiting(tmp_path: Path, path: str,
                                                                           message: str) -> None:
    if path == "FIFO":
        path = str(tmp_path / "fifo.toml")
        os.mkfifo(path)
    elif path == "DIR":
        path = str(tmp_path)
    assert message in one_line(ddx("diagnose", "--config", path, "--only", "clock", timeout=20))


# --- numbers on the command line --------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (("diagnose", "--no-probes", "--saw", "load.low", "--top", "-1"), "argument --top: must be from 0 to 1000"),
    (("diagnose", "--no-probes", "--saw", "load.low", "--checks", "-5"), "argument --checks: must be from 0 to"),
    (("diagnose", "--no-probes", "--saw", "load.low", "--checks", "99999999999999999999"), "argument --checks"),
    (("diagnose", "--no-probes", "--saw", "load.low", "--top", "x"), "argument --top: not a whole number"),
    (("diagnose", "--budget", "1e309"), "argument --budget: must be a number of seconds from 0 to 3600"),
    (("diagnose", "--budget", "nan"), "argument --budget"),
    (("diagnose", "--probe-timeout", "inf"), "argument --probe-timeout"),
    (("diagnose", "--window", "-1"), "argument --window"),
    (("diagnose", "--window", "1e300"), "argument --window"),
    (("collect", "-o", "x.tar.gz", "--budget", "0"), "argument --budget: must be more than 0 seconds"),
    (("logs", "summary", "--top", "-3", "x.log"), "argument --top: must be from 0 to"),
    (("drill", "run", "healthy", "--budget", "1e999"), "argument --budget"),
    (("drill", "run", "healthy", "--fault-lead", "-1"), "argument --fault-lead"),
    (("diagnose", "--case", ""), "--case: an empty file name"),
    (("diagnose", "--from", ""), "--from: an empty file name"),
    (("diagnose", "--bogus-option\x1b[2J"), "unrecognized arguments: --bogus-option\\x1b[2J"),
])
def test_out_of_range_settings_are_one_line(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    err = one_line(ddx(*args, cwd=tmp_path))
    assert message in err, err
    assert list(tmp_path.iterdir()) == []  # nothing was run, nothing written


@pytest.mark.parametrize("args", [
    ("diagnose", "postgresql://app:pw-S3cr@db/shop"),
    ("diagnose", "--target", "ftp://app:pw-S3cr@db/x"),
    ("diagnose", "--case", "postgresql://app:pw-S3cr@db/x.yaml"),
    ("logs", "parse", "mysql://root:pw-S3cr@db/x.log"),
])
def test_errors_never_echo_a_password(args: tuple[str, ...], tmp_path: Path) -> None:
    err = one_line(ddx(*args, cwd=tmp_path))
    assert "pw-S3cr" not in err and ":***@" in err, err


# --- escape sequences and formulas -------------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\u009b31m\u202eevil"


def _no_controls(data: bytes) -> None:
    text = data.decode("utf-8")
    bad = [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f or c in "\u202e\u2066"]
    assert not bad, bad


def test_a_case_title_cannot_drive_the_terminal(tmp_path: Path) -> None:
    import yaml

    case = tmp_path / "evil.yaml"
    case.write_text(yaml.safe_dump({"title": ESCAPES + "\n 1. Fake line", "story": "a | b\n| c |",
                                    "present": ["load.low", {"id": "http.requests_surge", "evidence": ESCAPES}]}))
    for fmt in ((), ("--markdown",), ("--json",), ("--color", "always")):
        r = ddx("diagnose", "--case", str(case), *fmt)
        assert r.returncode == 0, r.stderr
        if fmt == ("--color", "always"):  # ddx's own colours, and nothing else
            text = r.stdout.replace(b"\x1b[0m", b"")
            for code in (b"1", b"2", b"31", b"32;1", b"33", b"33;1", b"36"):
                text = text.replace(b"\x1b[" + code + b"m", b"")
            _no_controls(text)
        else:
            _no_controls(r.stdout)
        assert b"x1b" in r.stdout or b"u001b" in r.stdout  # shown, as an escape
        if fmt == ("--markdown",):
            title = r.stdout.decode().splitlines()[0]
            assert "\\|" not in title and "Fake line" in title  # one line
            story = r.stdout.decode().splitlines()[2]
            assert story.startswith("> ") and story.count("|") == story.count("\\|")


def test_log_lines_cannot_drive_the_terminal_or_a_spreadsheet(tmp_path: Path) -> None:
    log = tmp_path / "evil.log"
    log.write_bytes(("=HYPERLINK(\"http://x\")\n+cmd|' /C calc'!A0\n-2+3\n@SUM(A1)\n\tx=1\n"
                     f"user {ESCAPES} logged in\n").encode())
    r = ddx("logs", "parse", str(log), "--csv")
    assert r.returncode == 0, r.stderr
    _no_controls(r.stdout)
    import csv
    import io

    cells = [row[2] for row in csv.reader(io.StringIO(r.stdout.decode()))][1:]
    assert all(not c.startswith(("=", "+", "-", "@", "\t", "\r")) for c in cells), cells
    assert cells[0].startswith("'=") and cells[3].startswith("'@")
    for args in (("logs", "parse", str(log)), ("logs", "summary", str(log)), ("logs", "summary", str(log), "--json")):
        r = ddx(*args)
        assert r.returncode == 0, r.stderr
        _no_controls(r.stdout)


def test_the_safe_text_helpers() -> None:
    from ddx.render.safe import csv_cell, json_text, md_text, printable

    assert printable("a\x1b[2Jb\x07\u009b\u202e") == "a\\x1b[2Jb\\x07\\x9b\\u202e"
    assert printable("one\ntwo\tthree") == "one\\ntwo three"
    assert printable("one\ntwo", multiline=True) == "one\ntwo"
    assert md_text("a | b *c* `d` <e>") == "a \\| b \\*c\\* \\`d\\` \\<e\\>"
    assert [csv_cell(x) for x in ("=1+1", "+1", "-1", "@x", "\tx", "ok", "")] == [
        "'=1+1", "'+1", "'-1", "'@x", "'\tx", "ok", ""]
    import json

    assert json.loads(json_text({"k": "\u009b\x1b\u202e"})) == {"k": "\u009b\x1b\u202e"}
    assert "\u009b" not in json_text({"k": "\u009b"}) and "\\u009b" in json_text({"k": "\u009b"})


def test_the_inventory_view_shows_host_strings_as_escapes() -> None:
    from ddx.inventory.model import Inventory, Service
    from ddx.render.inventory import render_inventory

    inv = Inventory(host="web\x1b]0;x\x07", services=(Service(name="nginx\x1b[2J", program="nginx", pid=1, pids=(1,)),),
                    problems=("could not read /proc/1/\x1b[31m",))
    text = render_inventory(inv)
    _no_controls(text.encode())
    assert "web\\x1b]0;x\\x07" in text and "nginx\\x1b[2J" in text
