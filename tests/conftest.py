from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
SEEDS = SHARED / "cases" / "seeds"
OWN_CASES = ROOT / "tests" / "cases"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if "root" in item.keywords:
            item.add_marker(skip)


def run_ddx(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the ddx CLI as a whole process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ddx", *args], capture_output=True, text=True,
                          input=input, env=full_env, timeout=timeout)


@pytest.fixture(scope="session")
def kb():  # type: ignore[no-untyped-def]
    from ddx.kb.loader import load_kb

    return load_kb(strict=True)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    os.chmod(tmp_path, 0o755)  # readable by the unprivileged writers the tests start
    for parent in tmp_path.parents:
        if str(parent).startswith(tempfile.gettempdir()) and parent != Path(tempfile.gettempdir()):
            os.chmod(parent, 0o755)
    return tmp_path


@pytest.fixture(scope="session")
def drill_ready() -> None:
    """Skip unless the drill's sandbox stack can be built here (root, Debian packages)."""
    from ddx.drill.stack import missing_requirements

    if os.geteuid() != 0:
        pytest.skip("needs root")
    missing = missing_requirements()
    if missing:
        pytest.skip("drill stack requirements missing: " + "; ".join(missing))
