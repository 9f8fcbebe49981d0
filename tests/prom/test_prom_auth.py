"""A Prometheus behind basic auth (its own --web.config.file): ddx sends the URL's user and
password as basic auth, says "refused access" in one line without them, and never prints
the password."""

from __future__ import annotations

import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from promstack import PromStack, SimHost, Writer, missing_tools  # noqa: E402
from test_prom_live import ddx  # noqa: E402

PASSWORD = "s3cret-pw"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(missing_tools()), reason="needs prometheus, node_exporter")]


def _bcrypt(password: str) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
        h = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))
    return h if h and h.startswith("$2") else None


@pytest.fixture(scope="module")
def guarded() -> Iterator[tuple[str, str]]:
    hashed = _bcrypt(PASSWORD)
    if hashed is None:
        pytest.skip("no bcrypt in this Python's crypt module")
    with tempfile.TemporaryDirectory(prefix="ddx-prom-auth-") as tmp:
        stack = PromStack(Path(tmp))
        writer = None
        try:
            hosts = [(stack.textfile_host(f"h{i}"), SimHost()) for i in range(3)]
            writer = Writer(hosts)
            web = Path(tmp) / "web.yml"
            web.write_text(yaml.safe_dump({"basic_auth_users": {"ddx": hashed}}))
            stack.prometheus(flags=[f"--web.config.file={web}"], ready_auth=("ddx", PASSWORD))
            stack.wait_until("count_over_time(up[1m]) >= 3", "scrapes", count=3)
            yield stack.url, hosts[0][0].address
        finally:
            if writer is not None:
                writer.close()
            stack.close()


def test_basic_auth_from_the_url_and_a_refusal_without_it(guarded: tuple[str, str]) -> None:
    url, instance = guarded
    with_auth = url.replace("http://", f"http://ddx:{PASSWORD}@")
    r = ddx("fleet", "--prometheus", with_auth, "--window", "1m", "--json")
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    r = ddx("diagnose", "--prometheus", url, "--instance", instance, "--json")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [f"ddx: error: Prometheus at {url} refused access (HTTP 401): "
                                             "set DDX_PROMETHEUS_TOKEN or DDX_PROMETHEUS_TOKEN_FILE"]
    r = ddx("diagnose", "--prometheus", url.replace("http://", "http://ddx:wrong-pw@"), "--instance", instance)
    assert r.returncode == 2 and "refused access (HTTP 401)" in r.stderr and "wrong-pw" not in r.stderr
