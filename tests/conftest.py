from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"  # the seed incidents, as example cases
OWN_CASES = ROOT / "tests" / "cases"  # held-out incidents from public postmortems
DATA = ROOT / "tests" / "data"  # vendored data: Loghub samples, the contract's ids, the secrets corpus


# Tests that write fake hardware errors, real crashes or OOM kills into the kernel log run only
# when asked to: a later `ddx diagnose` on this host would read those lines as real. CI machines
# are thrown away after the run, so .ci/run opts in.
KERNEL_FAULTS = os.environ.get("DDX_TEST_KERNEL_FAULTS") == "1"
kernel_log = pytest.mark.kernel_log


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    no_root = pytest.mark.skip(reason="needs root")
    no_kernel = pytest.mark.skip(reason="writes crashes, OOM kills or hardware errors into the kernel log, "
                                        "which stay until reboot; set DDX_TEST_KERNEL_FAULTS=1")
    # The wild drills judge a host as it is: run them before the tests that leave machine checks,
    # crashes and OOM kills in the kernel log (later ones see the earlier ones' lines as old noise).
    items.sort(key=lambda it: 0 if it.nodeid.startswith("tests/drill/test_wild.py") else 1)
    for item in items:
        if "root" in item.keywords and os.geteuid() != 0:
            item.add_marker(no_root)
        if "kernel_log" in item.keywords and not KERNEL_FAULTS:
            item.add_marker(no_kernel)


def default_signals() -> None:
    """``preexec_fn`` for a ddx started to receive a stop signal: SIGINT, SIGTERM and SIGHUP
    as a user's shell leaves them. A test runner started in the background of a script
    (``cmd &``: SIGINT ignored) or under nohup (SIGHUP ignored) hands its children those
    signals ignored, and ddx rightly keeps an ignored signal ignored."""
    import signal

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


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
