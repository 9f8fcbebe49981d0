from __future__ import annotations

from ddx.units import duration, iso, iso_or_none, size


def test_durations_read_as_people_say_them():
    assert [duration(s) for s in (0, 42, 600, 3 * 3600, 3 * 86400)] == ["0 s", "42 s", "10 min", "3.0 h", "3.0 days"]
    assert duration(-5) == "0 s" and duration(None) == "?"


def test_sizes_in_binary_units():
    assert [size(n) for n in (0, 812, 64 << 10, 1536 << 10, 2 << 30)] == ["0 B", "812 B", "64 KB", "1.5 MB", "2 GB"]
    assert size(None) == "?"


def test_times_are_utc_iso():
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert iso_or_none(None) is None and iso_or_none(86400) == "1970-01-02T00:00:00Z"
