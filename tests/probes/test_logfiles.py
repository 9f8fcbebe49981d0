"""Log-file probe: timestamp parsing, the pure scanners on samples, and the
probe on faults made for real (a full tmpfs, an unwritable directory, a
process at its open-file limit, a log cut mid-record while its writer still
runs, a 5 GB sparse log).

Other tests on this machine write logs too, so every live test restricts the
probe to lines written after it started (option ``since``) and to its own
files (``paths`` with ``discover`` off) unless it tests discovery itself."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.host import LiveHost
from ddx.inventory import Inventory
from ddx.inventory.files import expand_glob
from ddx.model import State
from ddx.probes.base import ProbeContext, registry
from ddx.probes.history.logfiles import (
    FINDINGS,
    MINED,
    PERMS,
    TextScan,
    cut_record,
    judge_signatures,
    parse_fdinfo_flags,
    read_log,
    scan_text,
    stall,
    typical_gap,
)
from ddx.probes.parsers.logtime import TimeParser, parse_time
from ddx.units import iso

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC).timestamp()
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def _utc(*args: int) -> float:
    return dt.datetime(*args, tzinfo=UTC).timestamp()


# --- timestamps ------------------------------------------------------------------------------


@pytest.mark.parametrize("line,expected", [
    ("Nov 22 05:32:09 web1 sshd[1]: x", _utc(2026, 11, 22, 5, 32, 9)),
    ("<13>Nov 22 05:32:09 web1 app: x", _utc(2026, 11, 22, 5, 32, 9)),
    ("2026-11-22T05:32:09.250+01:00 web1 app[2]: x", _utc(2026, 11, 22, 4, 32, 9) + 0.25),
    ("2026-11-22T05:32:09+0000 web1 app[2]: journal short-iso", _utc(2026, 11, 22, 5, 32, 9)),
    ("2026-11-22T05:32:09Z level=error msg=x", _utc(2026, 11, 22, 5, 32, 9)),
    ("2026-11-22 05:32:09,123 ERROR app: python logging", _utc(2026, 11, 22, 5, 32, 9) + 0.123),
    ("2026-11-22 05:32:09.123 UTC [812] LOG:  postgres", _utc(2026, 11, 22, 5, 32, 9) + 0.123),
    ("2026/11/22 05:32:09 [error] 12#12: *3 nginx", _utc(2026, 11, 22, 5, 32, 9)),
    ("[Sun Nov 22 05:32:09.123456 2026] [core:error] [pid 1] apache 2.4", _utc(2026, 11, 22, 5, 32, 9) + 0.123456),
    ("[Sun Dec 04 04:47:44 2005] [error] apache 2.2", _utc(2005, 12, 4, 4, 47, 44)),
    ('1.2.3.4 - - [22/Nov/2026:05:32:09 -0200] "GET / HTTP/1.1" 200', _utc(2026, 11, 22, 7, 32, 9)),
    ("[22-Nov-2026 05:32:09] WARNING: [pool www] php-fpm", _utc(2026, 11, 22, 5, 32, 9)),
    ("1234:M 22 Nov 2026 05:32:09.123 # redis", _utc(2026, 11, 22, 5, 32, 9) + 0.123),
    ("Nov 22, 2026 5:32:09 PM org.apache.catalina.startup.Catalina start", _utc(2026, 11, 22, 17, 32, 9)),
    ("161122  5:32:09 [ERROR] mysqld 5.5", _utc(2016, 11, 22, 5, 32, 9)),
    ('{"level":"error","ts":1795325529.5,"msg":"zap"}', 1795325529.5),
    ('{"msg":"late time field","time":"2026-11-22T05:32:09Z"}', _utc(2026, 11, 22, 5, 32, 9)),
    ("Dec 31 23:59:59 web1 cron: last year's line", _utc(2025, 12, 31, 23, 59, 59)),
])
def test_timestamp_formats(line, expected):
    assert parse_time(line, tz=UTC, now=NOW) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("line", [
    "Traceback (most recent call last):",
    '  File "app.py", line 12, in <module>',
    "processed 2026 items in 11 ms",
    "",
])
def test_lines_without_timestamp(line):
    assert parse_time(line, tz=UTC, now=NOW) is None


def test_naive_times_use_the_host_zone():
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert parse_time("2026-11-22 05:32:09 x", tz=berlin, now=NOW) == _utc(2026, 11, 22, 4, 32, 9)
    assert parse_time("Nov 22 05:32:09 h x", tz=berlin, now=NOW) == _utc(2026, 11, 22, 4, 32, 9)


def test_date_inside_a_message_is_not_the_lines_time():
    line = "worker 7 says: the batch from 2020-01-01 00:00:00 is done" + " " * 80 + "2020-01-01 00:00:00"
    assert parse_time(line, tz=UTC, now=NOW) == _utc(2020, 1, 1)  # near the start: it is taken
    assert parse_time("x" * 120 + " 2020-01-01 00:00:00", tz=UTC, now=NOW) is None


def test_iso_and_ago():
    assert iso(_utc(2026, 11, 22, 5, 32, 9)) == "2026-11-22T05:32:09Z"


# --- scanning text -----------------------------------------------------------------------------


def _scan(text: str, cutoff: float = NOW - 3600, **kw) -> TextScan:
    return scan_text(text, source="t.log", parser=TimeParser(UTC, NOW), cutoff=cutoff, **kw)


def _hits(scan: TextScan) -> dict[str, int]:
    return {h.signature.name: h.count for h in scan.hits}


def test_scan_counts_only_the_window_and_inherits_times():
    text = (
        "2026-11-22 03:00:00,000 ERROR app: OSError: [Errno 28] No space left on device\n"  # before the window
        "2026-11-22 05:30:00,000 ERROR app: upload failed\n"
        "Traceback (most recent call last):\n"
        '  File "up.py", line 3, in <module>\n'
        "OSError: [Errno 28] No space left on device\n"  # a continuation: takes 05:30:00
        "2026-11-22 05:31:00,000 INFO app: retrying\n"
        "2026-11-22 05:32:00,000 ERROR app: write /data/x: no space left on device\n"
    )
    scan = _scan(text)
    assert scan.timestamped
    (hit,) = scan.hits
    assert hit.signature.name == "enospc" and hit.count == 2
    assert hit.first == _utc(2026, 11, 22, 5, 30) and hit.last == _utc(2026, 11, 22, 5, 32)
    assert hit.samples == ("OSError: [Errno 28] No space left on device",
                           "2026-11-22 05:32:00,000 ERROR app: write /data/x: no space left on device")


def test_scan_keeps_three_samples_first_and_last_two():
    text = "".join(f"2026-11-22 05:{m:02d}:00 ERROR too many open files #{m}\n" for m in range(10))
    (hit,) = _scan(text).hits
    assert hit.count == 10
    assert [s[-2:] for s in hit.samples] == ["#0", "#8", "#9"]


def test_scan_drops_the_fragment_at_the_start_of_a_tail():
    text = "ace left on device\n2026-11-22 05:30:00 INFO fine\n"
    assert _scan(text, partial_head=True).hits == ()
    text = "No space left on device\n2026-11-22 05:30:00 INFO fine\n"
    assert _scan(text, partial_head=False).hits == ()  # no stamp above it: time unknown, not counted


def test_scan_of_a_file_without_timestamps_uses_its_mtime():
    text = "starting\nError: EACCES: permission denied, open '/app/x'\n"
    assert _hits(_scan(text, mtime=NOW - 60)) == {"eacces": 1}
    assert _scan(text, mtime=NOW - 7200).hits == ()  # not written in the window


def test_scan_redacts_secrets_in_samples():
    text = "2026-11-22 05:30:00 ERROR connect postgres://app:hunter2@db:5432/x: Connection refused\n"
    (hit,) = _scan(text).hits
    assert "hunter2" not in hit.samples[0] and "Connection refused" in hit.samples[0]


def test_judge_needs_min_count_and_says_why():
    two = "".join(f"2026-11-22 05:3{i}:00 [error] recv() failed (104: Connection reset by peer)\n" for i in range(2))
    res = {f: (p, ev) for f, p, ev in judge_signatures([_scan(two)], cutoff=NOW - 3600, sources=["t.log"],
                                                       bytes_read=len(two))}
    present, ev = res["net.connection_resets"]
    assert not present and "below the 3 lines" in ev[0].summary and ev[0].count == 2
    three = two + "2026-11-22 05:39:00 [error] recv() failed (104: Connection reset by peer)\n"
    res = {f: p for f, p, _ in judge_signatures([_scan(three)], cutoff=NOW - 3600, sources=["t.log"],
                                                bytes_read=len(three))}
    assert res["net.connection_resets"] and not res["logs.enospc"]
    assert set(res) == set(FINDINGS) - {"logs.truncated_lines", *MINED, PERMS}


# --- cut records and stopped logs --------------------------------------------------------------

ACCESS = "".join(
    f'10.0.0.{i} - - [22/Nov/2026:05:{i:02d}:00 +0000] "GET /item/{i} HTTP/1.1" 200 512 "-" "curl/8.0"\n'
    for i in range(10)
)


@pytest.mark.parametrize("text,why", [
    ("".join(json.dumps({"t": i, "msg": "ok"}) + "\n" for i in range(10)) + '{"t": 11, "msg": "hal', "JSON"),
    (ACCESS + '10.0.0.99 - - [22/Nov/2026:05:59:00 +0000] "GET /item/99 HT', "unbalanced"),
    ("".join(f"2026-11-22 05:{i:02d}:00 INFO worker processed a batch of jobs\n" for i in range(10)) + "2026-11",
     "shorter"),
])
def test_cut_record(text, why):
    reason = cut_record(text)
    assert reason is not None and why in reason


@pytest.mark.parametrize("text", [
    ACCESS,  # ends with its newline
    ACCESS + '10.0.0.99 - - [22/Nov/2026:05:59:00 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8.0"',  # whole, no newline
    "".join(json.dumps({"t": i}) + "\n" for i in range(10)) + json.dumps({"t": 11}),
    "one line only",
    "",
])
def test_not_a_cut_record(text):
    assert cut_record(text) is None


def test_stall_needs_a_steady_rate_before_the_silence():
    steady = [NOW - 1800 - 300 + 10 * i for i in range(30)]
    assert typical_gap(steady) == pytest.approx(10)
    assert stall(NOW - 1800, NOW, steady, 600) is not None
    assert stall(NOW - 300, NOW, steady, 600) is None  # silent for less than stale_minutes
    sparse = [NOW - 86400 * 3, NOW - 86400 * 2, NOW - 1800]
    assert stall(NOW - 1800, NOW, sparse, 600) is None  # a quiet log: no rate to compare
    slow = [NOW - 1800 - 300 * i for i in range(12)]
    assert stall(NOW - 1800, NOW, slow, 600) is None  # every 5 min before: 30 min is not 20 gaps


def test_fdinfo_flags():
    assert parse_fdinfo_flags("pos:\t36\nflags:\t0102001\nmnt_id:\t27\n") == 0o102001
    assert parse_fdinfo_flags("garbage") is None


# --- reading through the host -----------------------------------------------------------------


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ddx-logfiles-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_logfiles(host, inventory=None, **options) -> dict[str, object]:
    """The probe on its own; the host's services are not looked for unless ``inventory`` is given."""
    spec = registry["logfiles"]
    ctx = ProbeContext(host=host, config={**spec.options, **options}, probe_name="logfiles",
                       inventory=inventory if inventory is not None else Inventory("test"))
    return {f.id: f for f in spec.func(ctx)}


def _own(paths: list[Path], since: float) -> dict[str, object]:
    return {"paths": [str(p) for p in paths], "discover": False, "journal": "never", "since": since}


def test_expand_glob_and_discovery_in_a_fixture_root(workdir):
    (workdir / "var/log/nginx").mkdir(parents=True)
    (workdir / "var/log/nginx/error.log").write_text("")
    (workdir / "var/log/nginx/shop_error.log").write_text("")
    (workdir / "var/log/nginx/access.log").write_text("")
    host = LiveHost(root=str(workdir))
    assert expand_glob(host, "/var/log/nginx/*error*.log") == ["/var/log/nginx/error.log",
                                                                "/var/log/nginx/shop_error.log"]
    assert expand_glob(host, "/var/log/nope/*.log") == []
    t = time.time()
    stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(t))
    (workdir / "var/log/nginx/error.log").write_text(
        f"{stamp} [alert] 12#12: 768 worker_connections are not enough\n")
    (workdir / "var/log/syslog").write_text(
        f"{time.strftime('%b %d %H:%M:%S', time.localtime(t))} web1 app[9]: OSError: [Errno 24] Too many open files\n")
    found = run_logfiles(host, since=t - 5, journal="never")
    assert found["logs.worker_limit_reached"].state is State.PRESENT
    assert found["logs.too_many_open_files"].state is State.PRESENT
    assert found["logs.too_many_open_files"].evidence[0].source == "/var/log/syslog"
    assert found["logs.enospc"].state is State.ABSENT


def test_no_readable_log_raises(workdir):
    from ddx.errors import ProbeError

    with pytest.raises(ProbeError, match="no log could be read"):
        run_logfiles(LiveHost(root=str(workdir)), since=time.time() - 5, journal="never")
    with pytest.raises(ProbeError, match="/srv/app/log/[*].log: no such file"):
        run_logfiles(LiveHost(root=str(workdir)), since=time.time() - 5, journal="never",
                     paths=["/srv/app/log/*.log"])


def test_a_configured_log_that_is_missing_is_named(workdir):
    log = workdir / "app.log"
    log.write_text("2026-11-22 05:00:00 INFO fine\n")
    found = run_logfiles(LiveHost(), **_own([log, workdir / "nope.log"], time.time() - 5))
    ev = found["logs.enospc"].evidence[0]
    assert found["logs.enospc"].state is State.ABSENT
    assert f"could not read {workdir / 'nope.log'}: no such file" in ev.summary


class CountingHost:
    """Delegates to a real host and records what each read returned."""

    def __init__(self, inner: LiveHost) -> None:
        self.inner = inner
        self.name = inner.name
        self.reads: list[tuple[str, int, bool, int]] = []

    def read_text(self, path: str, *, max_bytes: int = 4 << 20, tail: bool = False) -> str:
        text = self.inner.read_text(path, max_bytes=max_bytes, tail=tail)
        self.reads.append((path, max_bytes, tail, len(text.encode("utf-8"))))
        return text

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def test_a_5gb_sparse_log_costs_what_a_small_one_does(workdir):
    big = workdir / "big.log"
    small = workdir / "small.log"
    t0 = time.time() - 1
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t0 + 1))} ERROR db: Lock wait timeout exceeded\n"
    with open(big, "wb") as fh:
        fh.truncate(5 << 30)
    with open(big, "a") as fh:
        fh.write("2000-01-01 00:00:00 INFO old\n" * 1000 + line)
    small.write_text(line)
    assert big.stat().st_size > 5 << 30
    host = CountingHost(LiveHost())
    found = run_logfiles(host, **_own([big, small], t0))
    ev = {e.source: e for e in found["logs.lock_timeouts"].evidence}
    assert found["logs.lock_timeouts"].state is State.PRESENT and set(ev) == {str(big), str(small)}
    reads = {p: (mb, tail, n) for p, mb, tail, n in host.reads}
    max_bytes = registry["logfiles"].options["max_bytes"]
    assert reads[str(big)][0] == max_bytes and reads[str(big)][1] is True
    assert reads[str(big)][2] <= max_bytes  # 1 MiB of 5 GiB
    chunk = read_log(LiveHost(), str(big), max_bytes)
    assert chunk.partial_head and chunk.size > 5 << 30 and chunk.bytes_read == max_bytes


def test_the_runner_runs_the_probe(workdir):
    from ddx.probes.runner import run_probes

    t0 = time.time() - 1
    log = workdir / "app.log"
    log.write_text(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} ERROR sqlite3.OperationalError: database is locked\n")
    cfg = Config(probes={"logfiles": _own([log], t0)})
    col = run_probes(LiveHost(), cfg, only=["logfiles"], window=0.0, budget=30)
    (res,) = col.results
    assert res.status == "ok", res.reason
    by_id = {f.id: f for f in col.findings}
    assert by_id["logs.lock_timeouts"].state is State.PRESENT


# --- real faults ---------------------------------------------------------------------------------

LOGGING_WRITER = r"""
import logging, sys
logging.basicConfig(filename=sys.argv[1], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("uploader")
log.info("writing %s", sys.argv[2])
try:
    with open(sys.argv[2], "wb") as fh:
        fh.write(b"x" * 1_000_000)
except OSError:
    log.exception("upload failed")
"""


@pytest.fixture
def full_tmpfs(workdir: Path) -> Iterator[Path]:
    mnt = workdir / "full"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "ddx-test-full", str(mnt)], check=True)
    try:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.root
@ROOT_ONLY
def test_enospc_from_a_writer_on_a_full_tmpfs(workdir, full_tmpfs):
    t0 = time.time() - 1
    log = workdir / "uploader.log"  # outside the full filesystem
    subprocess.run([sys.executable, "-c", LOGGING_WRITER, str(log), str(full_tmpfs / "upload.bin")],
                   check=True, timeout=30)
    assert "No space left on device" in log.read_text()
    found = run_logfiles(LiveHost(), **_own([log], t0))
    f = found["logs.enospc"]
    assert f.state is State.PRESENT
    assert f.evidence[0].source == str(log) and f.evidence[0].count == 1
    assert any("[Errno 28] No space left on device" in s for s in f.evidence[0].samples)
    assert found["logs.permission_denied"].state is State.ABSENT


@pytest.mark.root
@ROOT_ONLY
def test_permission_denied_for_a_service_running_as_nobody(workdir):
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if not python or not setpriv:
        pytest.skip("needs /usr/bin/python3 and setpriv")
    spool = workdir / "spool"
    spool.mkdir()
    os.chown(spool, 0, 0)
    os.chmod(spool, 0o555)
    logdir = workdir / "log"
    logdir.mkdir()
    os.chown(logdir, 65534, 65534)
    log = logdir / "service.log"
    t0 = time.time() - 1
    subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c", LOGGING_WRITER,
                    str(log), str(spool / "job.out")], check=True, timeout=30)
    assert "Permission denied" in log.read_text()
    found = run_logfiles(LiveHost(), **_own([log], t0))
    f = found["logs.permission_denied"]
    assert f.state is State.PRESENT
    assert any("[Errno 13] Permission denied" in s for s in f.evidence[0].samples)
    assert found["logs.enospc"].state is State.ABSENT


DENIED_RENDERER = r"""
import logging, sys, time
logging.basicConfig(filename=sys.argv[1], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("renderer")
try:
    with open(sys.argv[2], "wb") as fh:
        fh.write(b"page")
except OSError as exc:
    log.error("render failed: %s", exc)
print("done", flush=True)
time.sleep(120)
"""


@pytest.mark.root
@ROOT_ONLY
def test_permission_error_checked_against_the_writers_user(workdir):
    """The path of the error, against the user of the process holding the log open:
    present while the folder refuses it, absent once the folder is fixed."""
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if not python or not setpriv:
        pytest.skip("needs /usr/bin/python3 and setpriv")
    cache = workdir / "cache"
    cache.mkdir()
    os.chmod(cache, 0o755)  # root's: the service (nobody) cannot create files in it
    logdir = workdir / "log"
    logdir.mkdir()
    os.chown(logdir, 65534, 65534)
    log = logdir / "app.log"
    t0 = time.time() - 1
    p = subprocess.Popen([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c",
                          DENIED_RENDERER, str(log), str(cache / "page.html")],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "done"
        f = run_logfiles(LiveHost(), **_own([log], t0))["config.path_permissions_deny_service"]
        assert f.state is State.PRESENT
        ev = f.evidence[0]
        assert ev.summary.startswith(f"nobody (uid 65534, pid {p.pid}), which writes {log}, cannot create files "
                                     f"in {cache} (owner root:")
        assert "mode 0755" in ev.summary and "[Errno 13] Permission denied" in ev.samples[0]
        os.chmod(cache, 0o777)  # fixed: the same error lines, but the path is usable now
        f = run_logfiles(LiveHost(), **_own([log], t0))["config.path_permissions_deny_service"]
        assert f.state is State.ABSENT
        assert f"{cache}/page.html is usable by nobody" in f.evidence[0].summary
    finally:
        p.kill()
        p.wait(timeout=10)
    # nobody holds the log any more: whose permissions to check is unknown
    assert "config.path_permissions_deny_service" not in run_logfiles(LiveHost(), **_own([log], t0))


EMFILE_WRITER = r"""
import logging, resource, sys
logging.basicConfig(filename=sys.argv[1], level=logging.INFO,
                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
held = []
try:
    while True:
        held.append(open("/dev/null"))
except OSError as exc:
    logging.getLogger("server").error("accept failed after %d files: %s", len(held), exc)
"""


def test_too_many_open_files_from_a_process_at_its_limit(workdir):
    log = workdir / "server.log"
    t0 = time.time() - 1
    subprocess.run([sys.executable, "-c", EMFILE_WRITER, str(log)], check=True, timeout=30)
    assert "Too many open files" in log.read_text()
    found = run_logfiles(LiveHost(), **_own([log], t0))
    f = found["logs.too_many_open_files"]
    assert f.state is State.PRESENT and "[Errno 24] Too many open files" in f.evidence[0].samples[0]


HOLDING_WRITER = r"""
import json, sys, time
log = open(sys.argv[1], "a")
start = float(sys.argv[2])
for i in range(40):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 5 * i))
    log.write(json.dumps({"time": stamp, "level": "info", "msg": "processed job", "job": i}) + "\n")
if sys.argv[3] == "cut":
    log.write('{"time": "' + stamp + '", "level": "error", "msg": "could not wri')
log.flush()
print("ready", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holding_writer(workdir: Path, request) -> Iterator[tuple[Path, subprocess.Popen]]:
    """A live process holding a JSON-lines log open for writing, whose last
    write was 30 minutes ago (mtime set back)."""
    log = workdir / "worker.log"
    now = time.time()
    proc = subprocess.Popen([sys.executable, "-c", HOLDING_WRITER, str(log), str(now - 1800 - 200), request.param],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        os.utime(log, (now - 1800, now - 1800))
        yield log, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


@pytest.mark.root
@ROOT_ONLY
@pytest.mark.parametrize("holding_writer", ["cut"], indirect=True)
def test_truncated_log_whose_writer_still_runs(holding_writer):
    log, proc = holding_writer
    found = run_logfiles(LiveHost(), **_own([log], time.time() - 3600))
    f = found["logs.truncated_lines"]
    assert f.state is State.PRESENT
    text = " | ".join(e.summary for e in f.evidence)
    assert "JSON record does not parse" in text
    assert "log stopped" in text and f"[{proc.pid}]" in text


@pytest.mark.root
@ROOT_ONLY
@pytest.mark.parametrize("holding_writer", ["whole"], indirect=True)
def test_stopped_log_with_complete_lines_and_a_live_writer(holding_writer):
    log, proc = holding_writer
    found = run_logfiles(LiveHost(), **_own([log], time.time() - 3600))
    f = found["logs.truncated_lines"]
    assert f.state is State.PRESENT and "log stopped" in f.evidence[0].summary
    assert f"[{proc.pid}]" in f.evidence[0].summary


def test_a_stopped_log_without_writer_is_not_truncated(workdir):
    log = workdir / "done.log"
    start = time.time() - 1800 - 200
    log.write_text("".join(json.dumps({"time": iso(start + 5 * i), "msg": "job"}) + "\n" for i in range(40)))
    os.utime(log, (time.time() - 1800, time.time() - 1800))
    found = run_logfiles(LiveHost(), **_own([log], time.time() - 3600))
    f = found["logs.truncated_lines"]
    assert f.state is State.ABSENT


ROTATED_WRITER = r"""
import sys, time
log = open(sys.argv[1], "a")
for i in range(30):
    log.write(time.strftime("%Y-%m-%d %H:%M:%S") + f" INFO tick {i}\n")
log.flush()
print("ready", flush=True)
sys.stdin.readline()  # the test rotates the log now
for i in range(5):
    log.write(time.strftime("%Y-%m-%d %H:%M:%S") + f" INFO tick after rotation {i}\n")
log.flush()
print("wrote", flush=True)
time.sleep(120)
"""


@pytest.mark.root
@ROOT_ONLY
def test_writer_that_never_reopened_its_log_after_rotation(workdir):
    log = workdir / "app.log"
    proc = subprocess.Popen([sys.executable, "-c", ROTATED_WRITER, str(log)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdin is not None
        assert proc.stdout.readline().strip() == "ready"
        os.rename(log, str(log) + ".1")  # logrotate without copytruncate and without a reload
        log.write_text("")
        past = time.time() - 1200
        os.utime(log, (past, past))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "wrote"
        found = run_logfiles(LiveHost(), **_own([log], time.time() - 3600))
        f = found["logs.truncated_lines"]
        assert f.state is State.PRESENT
        assert "after rotation" in f.evidence[0].summary and f"[{proc.pid}]" in f.evidence[0].summary
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_total_read_budget_bounds_many_logs(workdir):
    t0 = time.time() - 1
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR Too many open files\n"
    logs = []
    for i in range(4):
        p = workdir / f"l{i}.log"
        p.write_text("x" * 20000 + "\n" + line)
        logs.append(p)
    host = CountingHost(LiveHost())
    found = run_logfiles(host, **_own(logs, t0), max_total_bytes=45000)
    assert sum(n for *_, n in host.reads if n > 100) <= 45000
    f = found["logs.too_many_open_files"]
    assert f.state is State.PRESENT
    assert [e.source for e in f.evidence] == [str(p) for p in logs[:3]]  # the third one: a shorter tail
    assert f"{logs[3]}: not read (read budget of 43.9 KB used up)" in found["logs.enospc"].evidence[0].summary
