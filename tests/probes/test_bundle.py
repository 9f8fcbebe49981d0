"""Recording, saving and replaying bundles; redaction of secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.errors import UsageError
from ddx.host import (
    BundleHost,
    CommandResult,
    LiveHost,
    RecordingHost,
    build_bundle,
    redact_cmdline,
    redact_text,
)
from ddx.model import Evidence
from ddx.probes.base import ProbeContext, probe, registry
from ddx.probes.runner import run_probes

SECRETS = ("hunter2", "s3cr3tpw", "SECRETVALUE", "tok_abcdef123456", "topsecret-env")


@pytest.fixture
def make_probe() -> Iterator:
    names: list[str] = []

    def make(func, findings=("disk.space_low",)) -> str:  # type: ignore[no-untyped-def]
        name = f"t_{uuid.uuid4().hex[:8]}"
        probe(name, findings=tuple(findings))(func)
        names.append(name)
        return name

    yield make
    for n in names:
        registry.pop(n, None)


def _members(bundle: str) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_real_probes_replay_to_identical_findings(tmp_path: Path) -> None:
    rec = RecordingHost(LiveHost())
    live = run_probes(rec, Config(), only=["cpu", "memory", "disk"], window=0.3)
    assert {r.status for r in live.results} == {"ok"}, [r.to_dict() for r in live.results]
    path = rec.save(str(tmp_path / "b.tar.gz"), live)
    replay = run_probes(BundleHost(path), Config(), only=["cpu", "memory", "disk"], window=0.3)
    assert [f.to_dict() for f in replay.findings] == [f.to_dict() for f in live.findings]
    assert [(r.name, r.status) for r in replay.results] == [(r.name, r.status) for r in live.results]
    assert replay.host == live.host


def test_manifest_and_layout(tmp_path: Path) -> None:
    import json

    from ddx import __version__

    rec = RecordingHost(LiveHost())
    c = run_probes(rec, Config(), only=["memory"], window=0)
    path = rec.save(str(tmp_path / "m"), c)  # suffix added
    assert path.endswith("m.tar.gz")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    members = _members(path)
    man = json.loads(members["ddx-bundle/manifest.json"])
    assert man["format"] == "ddx-bundle/1" and man["ddx_version"] == __version__
    assert man["host"] == rec.name and man["created"]
    assert [r["name"] for r in man["collection"]["results"]] == ["memory"]
    assert "ddx-bundle/files/proc/meminfo" in members
    assert members["ddx-bundle/files/proc/meminfo"].startswith(b"MemTotal:")


def test_every_call_kind_replays_including_errors_and_order(tmp_path: Path, make_probe) -> None:  # type: ignore[no-untyped-def]
    counter = tmp_path / "counter"
    counter.write_text("1")

    def everything(ctx: ProbeContext) -> list:
        h = ctx.host
        out: list[object] = [h.read_text(str(counter))]
        counter.write_text("2")
        out.append(h.read_text(str(counter)))
        out.append(h.listdir(str(tmp_path)))
        out.append(h.stat(str(counter)).size)
        out.append(h.statvfs(str(tmp_path)).total > 0)
        out.append(h.readlink("/proc/self/exe") != "")
        r = h.run(["sh", "-c", "echo hello; exit 4"])
        out.append((r.returncode, r.stdout))
        for bad in (lambda: h.read_text(str(tmp_path / "nope")), lambda: h.run(["ddx-no-such-prog-xyz"])):
            try:
                bad()
            except FileNotFoundError as exc:
                out.append(("FileNotFoundError", exc.errno))
        out.append(h.time() > 0)
        return [ctx.finding("disk.space_low", True, Evidence("t", repr(out)))]

    name = make_probe(everything)
    rec = RecordingHost(LiveHost())
    live = run_probes(rec, Config(), only=[name], window=0)
    path = rec.save(str(tmp_path / "all.tar.gz"), live)
    counter.write_text("changed after recording")
    replay = run_probes(BundleHost(path), Config(), only=[name], window=0)
    assert replay.results[0].status == "ok", replay.results[0].to_dict()
    assert replay.findings[0].evidence == live.findings[0].evidence
    assert "'1', '2'" in live.findings[0].evidence[0].summary


def test_unrecorded_call_raises_lookup_error(tmp_path: Path) -> None:
    path = build_bundle(str(tmp_path / "b"), files={"/proc/loadavg": "0.1 0.1 0.1 1/1 1\n"})
    h = BundleHost(path)
    assert h.read_text("/proc/loadavg").startswith("0.1")
    with pytest.raises(LookupError, match="/proc/meminfo"):
        h.read_text("/proc/meminfo")
    with pytest.raises(LookupError):
        h.run(["uptime"])


def test_repeated_reads_replay_in_order_then_last(tmp_path: Path) -> None:
    path = build_bundle(
        str(tmp_path / "b"),
        files={"/f": ["a", "b"], "/gone": PermissionError(13, "Permission denied", "/gone")},
        commands={("ps", "-e"): [(0, "one\n"), (1, "two\n")]},
        times=[100.0, 101.5],
    )
    h = BundleHost(path)
    assert [h.read_text("/f") for _ in range(3)] == ["a", "b", "b"]
    assert [h.run(["ps", "-e"]).stdout for _ in range(3)] == ["one\n", "two\n", "two\n"]
    assert [h.time(), h.time()] == [100.0, 101.5]
    with pytest.raises(PermissionError) as exc:
        h.read_text("/gone")
    assert exc.value.filename == "/gone"
    assert h.read_text("/f", max_bytes=0) == ""


def test_bad_bundle_is_a_usage_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(UsageError, match="junk.tar.gz"):
        BundleHost(str(junk))
    with pytest.raises(UsageError, match="missing"):
        BundleHost(str(tmp_path / "missing.tar.gz"))


def test_unpacked_bundle_replays_like_the_archive(tmp_path: Path) -> None:
    rec = RecordingHost(LiveHost())
    live = run_probes(rec, Config(), only=["memory"], window=0)
    path = rec.save(str(tmp_path / "b.tar.gz"), live)
    with tarfile.open(path) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    replay = run_probes(BundleHost(str(tmp_path / "unpacked")), Config(), only=["memory"], window=0)
    assert [f.to_dict() for f in replay.findings] == [f.to_dict() for f in live.findings]


# --- redaction -----------------------------------------------------------------------


@pytest.fixture
def secret_process() -> Iterator[subprocess.Popen]:
    argv = [
        sys.executable, "-c", "import time; time.sleep(60)",
        "--password", "hunter2", "--db-url=postgres://app:s3cr3tpw@db:5432/x",
        "-pSECRETVALUE", "api_token=tok_abcdef123456",
    ]  # fmt: skip
    p = subprocess.Popen(argv, env={**os.environ, "APP_SECRET": "topsecret-env"})
    try:
        time.sleep(0.1)
        yield p
    finally:
        p.kill()
        p.wait()


def test_secrets_never_reach_the_bundle(tmp_path: Path, make_probe, secret_process) -> None:  # type: ignore[no-untyped-def]
    pid = secret_process.pid
    live_seen: dict[str, str] = {}

    def snoop(ctx: ProbeContext) -> list:
        h = ctx.host
        live_seen["cmdline"] = h.read_text(f"/proc/{pid}/cmdline")
        live_seen["environ"] = h.read_text(f"/proc/{pid}/environ")
        live_seen["ps"] = h.run(["ps", "-o", "args=", "-p", str(pid)]).stdout
        h.run(["echo", "--password", "hunter2"])
        return []

    name = make_probe(snoop)
    rec = RecordingHost(LiveHost())
    c = run_probes(rec, Config(), only=[name], window=0)
    assert c.results[0].status == "ok", c.results[0].to_dict()
    # The probe itself saw the real values ...
    assert "hunter2" in live_seen["cmdline"] and "topsecret-env" in live_seen["environ"]
    path = rec.save(str(tmp_path / "s.tar.gz"), c)
    # ... but no byte of the bundle holds them.
    for member, data in _members(path).items():
        for s in SECRETS:
            assert s.encode() not in data, (s, member)
    h = BundleHost(path)
    with pytest.raises(PermissionError, match="never"):
        h.read_text(f"/proc/{pid}/environ")
    cmd = h.read_text(f"/proc/{pid}/cmdline").split("\0")
    assert "--password" in cmd and "***" in cmd
    assert "--db-url=***" in cmd or "postgres://app:***@db:5432/x" in " ".join(cmd)
    assert "-p***" in cmd
    assert "postgres://app:***@" in h.run(["ps", "-o", "args=", "-p", str(pid)]).stdout or "***" in h.run(
        ["ps", "-o", "args=", "-p", str(pid)]
    ).stdout


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["mysql", "-uroot", "-pSECRET", "db"], ["mysql", "-uroot", "-p***", "db"]),
        (["redis-server", "-p8080"], ["redis-server", "-p8080"]),
        (["app", "--password", "x", "--verbose"], ["app", "--password", "***", "--verbose"]),
        (["app", "--password=x"], ["app", "--password=***"]),
        (["app", "--api-key", "k", "--db-password=p"], ["app", "--api-key", "***", "--db-password=***"]),
        (["curl", "-u", "bob:pw", "https://x"], ["curl", "-u", "bob:***", "https://x"]),
        (["psql", "postgres://u:pw@h/db"], ["psql", "postgres://u:***@h/db"]),
        (["java", "-Dspring.datasource.password=pw", "-jar", "a.jar"], ["java", "-Dspring.datasource.password=***", "-jar", "a.jar"]),
        (["app", "token=abc", "mode=fast"], ["app", "token=***", "mode=fast"]),
        (["app", "--no-auth", "--port", "80"], ["app", "--no-auth", "--port", "80"]),
    ],
)
def test_redact_cmdline(argv: list[str], want: list[str]) -> None:
    assert redact_cmdline(argv) == want


def test_redact_text() -> None:
    text = (
        'url=https://bob:hunter2@example.com/x {"password": "pw1"} secret: abc\n'
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcdefgh\n"
        "key AKIAABCDEFGHIJKLMNOP used; MemTotal: 1024 kB\n"
    )
    out = redact_text(text)
    for s in ("hunter2", "pw1", "abc\n", "eyJhbGci", "AKIAABCDEFGHIJKLMNOP"):
        assert s not in out
    assert "MemTotal: 1024 kB" in out and "https://bob:***@example.com" in out


def test_command_result_replays_argv(tmp_path: Path) -> None:
    path = build_bundle(str(tmp_path / "b"), commands={("uptime",): CommandResult(("uptime",), 0, "up 1 day\n", "")})
    r = BundleHost(path).run(["uptime"])
    assert r.argv == ("uptime",) and r.stdout == "up 1 day\n"


# --- the command line -------------------------------------------------------------------


def test_ddx_collect_writes_one_bundle_and_one_line(tmp_path: Path) -> None:
    import argparse

    from ddx.cli.collect import add_collection_options, collection_from_args

    r = subprocess.run(
        [sys.executable, "-m", "ddx", "collect", "-o", str(tmp_path), "--only", "memory,cpu", "--window", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "saved" in r.stderr
    bundles = list(tmp_path.glob("ddx-*.tar.gz"))
    assert len(bundles) == 1 and str(bundles[0]) in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [bundles[0].name]  # nothing else written

    parser = argparse.ArgumentParser()
    add_collection_options(parser)
    args = parser.parse_args(["--only", "memory", "--only", "cpu"])
    c = collection_from_args(args, bundle=str(bundles[0]))
    assert [r.name for r in c.results] == ["cpu", "memory"]
    assert {f.id for f in c.findings} >= {"memory.available_low", "cpu.saturated", "load.low"}


def test_ddx_collect_bad_only_is_a_usage_error(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "ddx", "collect", "-o", str(tmp_path / "x"), "--only", "memroy"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 2
    assert "memroy" in r.stderr and "memory" in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_malformed_bundle_is_a_usage_error(tmp_path: Path) -> None:
    path = build_bundle(str(tmp_path / "b"), files={"/x": "1"})
    (Path(path) / "calls.json").write_text('[{"args": {}}]')
    with pytest.raises(UsageError, match="calls.json is malformed"):
        BundleHost(path)
    (Path(path) / "manifest.json").write_text('{"format": "other/9"}')
    with pytest.raises(UsageError, match="unsupported bundle format"):
        BundleHost(path)


def test_replay_keeps_the_recording_time(tmp_path: Path) -> None:
    rec = RecordingHost(LiveHost())
    live = run_probes(rec, Config(), only=["memory"], window=0)
    path = rec.save(str(tmp_path / "b.tar.gz"), live)
    time.sleep(1.1)
    assert run_probes(BundleHost(path), Config(), only=["memory"], window=0).started == live.started
