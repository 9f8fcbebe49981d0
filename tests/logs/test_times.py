"""TIME arguments of ddx logs."""

from __future__ import annotations

import pytest

from ddx.errors import UsageError
from ddx.logs.times import parse_time_arg

NOW = 1_714_573_800.0  # 2024-05-01T14:30:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", NOW - 1800), ("2h ago", NOW - 7200), ("1d", NOW - 86400), ("-15s", NOW - 15),
     ("1714570000", 1714570000.0), ("1714570000123", 1714570000.123),
     ("2024-05-01T14:00:00Z", NOW - 1800), ("2024-05-01T16:00:00+02:00", NOW - 1800)],
)
def test_time_arguments(text, expected):
    assert parse_time_arg(text, now=NOW) == pytest.approx(expected)


def test_local_iso_time_is_accepted():
    assert parse_time_arg("2024-05-01 14:00", now=NOW) > 0


def test_bad_time_names_the_option():
    with pytest.raises(UsageError, match="--since"):
        parse_time_arg("soonish", option="--since", now=NOW)
