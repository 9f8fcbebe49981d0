"""Drill tests: whole scenarios on the real sandbox stack (root, Debian packages)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def drill_ready() -> None:
    import os

    from ddx.drill.stack import missing_requirements

    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = missing_requirements()
    if missing:
        pytest.skip("drill stack requirements missing: " + "; ".join(missing))
