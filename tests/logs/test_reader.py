"""Robust reading: gz, long lines, bad bytes, binary, empty, rotation, truncation."""

from __future__ import annotations

import gzip
import os

import pytest

from ddx.errors import UsageError
from ddx.logs.reader import MAX_LINE, ReadNotes, is_binary, read_lines


def _read(path):
    notes = ReadNotes(str(path))
    return list(read_lines(str(path), notes)), notes


def test_plain_lines_are_numbered_and_stripped(tmp_path):
    p = tmp_path / "a.log"
    p.write_bytes(b"one\r\ntwo\nthree\n")
    lines, notes = _read(p)
    assert lines == [(1, "one"), (2, "two"), (3, "three")]
    assert notes.notes() == [] and notes.lines == 3


def test_gzip_is_read_transparently(tmp_path):
    p = tmp_path / "a.log.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"alpha\nbeta\n")
    assert _read(p)[0] == [(1, "alpha"), (2, "beta")]


def test_truncated_gzip_keeps_what_was_read(tmp_path):
    p = tmp_path / "cut.log.gz"
    data = gzip.compress(b"".join(b"line %d with some text\n" % i for i in range(5000)))
    p.write_bytes(data[: len(data) // 2])
    lines, notes = _read(p)
    assert 0 < len(lines) < 5000
    assert any("read error" in n for n in notes.notes())


def test_lines_over_one_mib_are_skipped_and_counted(tmp_path):
    p = tmp_path / "long.log"
    with open(p, "wb") as f:
        f.write(b"before\n")
        f.write(b"x" * (MAX_LINE + 10) + b"\n")
        f.write(b"after\n")
    lines, notes = _read(p)
    assert lines == [(1, "before"), (3, "after")]
    assert notes.skipped_long == [2]
    assert "over 1 MiB (line 2)" in " ".join(notes.notes())


def test_invalid_utf8_is_replaced_and_noted(tmp_path):
    p = tmp_path / "bad.log"
    p.write_bytes(b"ok line\nbad \xff\xfe bytes\n")
    lines, notes = _read(p)
    assert lines[1] == (2, "bad \ufffd\ufffd bytes")
    assert notes.invalid_utf8 == 1


def test_binary_files_are_skipped(tmp_path):
    p = tmp_path / "blob.bin"
    p.write_bytes(bytes(range(256)) * 40)
    lines, notes = _read(p)
    assert lines == [] and any("binary file" in n for n in notes.notes())
    assert is_binary(b"\x00" * 100) and not is_binary(b"plain text\n")


def test_nul_bytes_inside_a_text_log_are_removed(tmp_path):
    p = tmp_path / "crash.log"
    p.write_bytes(b"normal line\n" * 20 + b"\x00\x00\x00after crash\n")
    lines, notes = _read(p)
    assert lines[-1] == (21, "after crash") and notes.nul_lines == 1


def test_empty_file_is_noted(tmp_path):
    p = tmp_path / "empty.log"
    p.write_bytes(b"")
    lines, notes = _read(p)
    assert lines == [] and notes.notes() == [f"{p}: empty file"]


def test_last_line_without_newline_is_noted(tmp_path):
    p = tmp_path / "cut.log"
    p.write_bytes(b"complete\npartial rec")
    lines, notes = _read(p)
    assert lines[-1] == (2, "partial rec")
    assert any("no newline" in n for n in notes.notes())


def test_rotation_while_reading_is_noted(tmp_path):
    p = tmp_path / "app.log"
    p.write_bytes(b"".join(b"old line %d\n" % i for i in range(100_000)))
    notes = ReadNotes(str(p))
    it = read_lines(str(p), notes)
    first = [next(it) for _ in range(10)]
    os.rename(p, tmp_path / "app.log.1")
    p.write_bytes(b"new file\n")
    rest = list(it)
    assert first[0] == (1, "old line 0") and len(first) + len(rest) == 100_000
    assert any("rotated while reading" in n for n in notes.notes())


def test_truncation_while_reading_is_noted(tmp_path):
    p = tmp_path / "app.log"
    p.write_bytes(b"".join(b"line %d\n" % i for i in range(100_000)))
    notes = ReadNotes(str(p))
    it = read_lines(str(p), notes)
    next(it)
    with open(p, "wb"):
        pass  # copytruncate
    list(it)
    assert any("truncated while reading" in n for n in notes.notes())


def test_missing_and_unreadable_files_raise_a_usage_error_naming_them(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        list(read_lines(str(tmp_path / "nope.log")))
    with pytest.raises(UsageError, match="is a directory"):
        list(read_lines(str(tmp_path)))
