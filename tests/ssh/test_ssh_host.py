"""SshHost against a real sshd on 127.0.0.1: the "remote" host is this machine, so
every call must answer what LiveHost answers here."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshserver import Sshd, sshd_server  # noqa: F401 - the sshd fixture

from ddx.errors import SshError
from ddx.host import BundleHost, LiveHost, RecordingHost, call_timeout, probe_scope
from ddx.host.batch import batch, one_by_one, read_each, stat_each
from ddx.host.ssh import SshHost, ssh_reason


@pytest.fixture
def host(sshd: Sshd) -> Iterator[SshHost]:
    with SshHost("sshtest", ssh_config=str(sshd.client_config), connect_timeout=5) as h:
        yield h


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "log.txt").write_bytes(b"".join(b"line %05d \xff\n" % i for i in range(5000)))
    os.symlink("log.txt", tmp_path / "link")
    return tmp_path


def _pids_running(argv: list[str]) -> list[int]:
    want = "\0".join(argv) + "\0"
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline") as fh:
                    if fh.read() == want:
                        out.append(int(name))
            except OSError:
                pass
    return out


def test_every_call_answers_as_livehost_does(host: SshHost, tree: Path) -> None:
    live = LiveHost()
    log = str(tree / "log.txt")
    assert host.name == socket.gethostname() == live.name
    assert host.live is False
    for kw in ({}, {"max_bytes": 100}, {"max_bytes": 100, "tail": True}, {"max_bytes": 0, "tail": True}):
        assert host.read_text(log, **kw) == live.read_text(log, **kw)  # type: ignore[arg-type]
    assert host.read_text("/proc/1/cmdline", max_bytes=20) == live.read_text("/proc/1/cmdline", max_bytes=20)
    assert host.read_text("/proc/version") == live.read_text("/proc/version")
    assert host.listdir(str(tree)) == live.listdir(str(tree)) == ["link", "log.txt", "sub"]
    assert host.listdir("/proc/1/task") == live.listdir("/proc/1/task")
    assert host.stat(log) == live.stat(log)
    assert host.stat(str(tree / "link")) == live.stat(str(tree / "link"))
    v1, v2 = host.statvfs(str(tree)), live.statvfs(str(tree))
    assert (v1.total, v1.files, v1.readonly) == (v2.total, v2.files, v2.readonly)
    assert host.readlink(str(tree / "link")) == "log.txt"
    assert abs(host.time() - live.time()) < 1.0


def test_concurrent_calls_each_get_their_own_answer(host: SshHost, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for i in range(64):
        (tmp_path / f"f{i}").write_text(f"file {i}\n" * (i + 1))

    def one(i: int) -> tuple[str, int]:
        return host.read_text(str(tmp_path / f"f{i % 64}")), host.stat(str(tmp_path / f"f{i % 64}")).size

    with ThreadPoolExecutor(16) as ex:
        got = list(ex.map(one, range(640)))
    assert got == [((f"file {i % 64}\n" * (i % 64 + 1)), len(f"file {i % 64}\n") * (i % 64 + 1)) for i in range(640)]


def test_errors_are_the_os_errors(host: SshHost, tree: Path) -> None:
    live = LiveHost()
    for call, arg, exc in (
        ("read_text", str(tree / "missing"), FileNotFoundError),
        ("listdir", str(tree / "log.txt"), NotADirectoryError),
        ("read_text", str(tree / "sub"), IsADirectoryError),
        ("readlink", str(tree / "log.txt"), OSError),
        ("stat", str(tree / "missing"), FileNotFoundError),
    ):
        with pytest.raises(exc) as remote:
            getattr(host, call)(arg)
        with pytest.raises(exc) as here:
            getattr(live, call)(arg)
        assert type(remote.value) is type(here.value)
        assert remote.value.errno == here.value.errno and remote.value.filename == here.value.filename


def _same_outcomes(got: list[object], want: list[object]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if isinstance(w, BaseException):
            assert type(g) is type(w) and (g.errno, g.filename) == (w.errno, w.filename)  # type: ignore[attr-defined]
        else:
            assert g == w


def test_batched_calls_answer_item_by_item_as_livehost_does(host: SshHost, tree: Path) -> None:
    live = LiveHost()
    paths = [str(tree / n) for n in ("log.txt", "missing", "sub", "link")] + ["/proc/version", "/proc/1/stat"]
    for op, kw in (("read_text", {"max_bytes": 300}), ("read_text", {"max_bytes": 50, "tail": True}),
                   ("listdir", {}), ("stat", {}), ("readlink", {})):
        calls = [{"path": p, **kw} for p in paths]
        _same_outcomes(host.batch(op, calls), one_by_one(live, op, calls))
    assert stat_each(host, []) == []
    with pytest.raises(ValueError):
        batch(host, "run", [{"argv": ["true"]}])


def test_a_batch_is_one_round_trip_until_its_answer_is_large(host: SshHost, tmp_path: Path) -> None:
    for i in range(300):
        (tmp_path / f"f{i:03d}").write_text(f"file {i}\n")
    first = next(host._ids)
    names = host.listdir(str(tmp_path))
    got = read_each(host, [str(tmp_path / n) for n in names])
    assert got == [f"file {i}\n" for i in range(300)]
    assert next(host._ids) - first == 3  # the listdir and one batch
    big = tmp_path / "big"
    big.write_bytes(b"x" * (3 << 20))  # three of them pass the agent's 8 MiB: asked for again, nothing lost
    first = next(host._ids)
    got = read_each(host, [str(big)] * 5 + [str(tmp_path / "f000")], max_bytes=4 << 20)
    assert got == ["x" * (3 << 20)] * 5 + ["file 0\n"]
    assert next(host._ids) - first == 3


def test_a_hung_item_is_abandoned_and_the_batch_goes_on(host: SshHost, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with call_timeout(1.0):
        got = read_each(host, ["/proc/version", str(fifo), "/proc/version", str(fifo), "/proc/loadavg"])
    assert time.monotonic() - t0 < 5
    version = LiveHost().read_text("/proc/version")
    assert got[0] == got[2] == version and got[4].startswith(tuple("0123456789"))  # type: ignore[union-attr]
    assert isinstance(got[1], TimeoutError) and isinstance(got[3], TimeoutError) and "abandoned" in str(got[1])
    with probe_scope("test", deadline=time.monotonic() - 1):
        late = read_each(host, ["/proc/version", "/proc/loadavg"])
    assert all(isinstance(x, TimeoutError) for x in late)  # the probe's time is up: nothing is asked
    assert host.read_text("/proc/version") == version  # the session goes on
    _release_readers(fifo)


def _release_readers(fifo: Path) -> None:
    """Let the agent threads blocked opening ``fifo`` go (a writer's open releases
    every waiting reader; with none left it fails with ENXIO instead of blocking)."""
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return
        time.sleep(0.05)


def test_a_recorded_batch_replays_item_by_item(host: SshHost, tree: Path, tmp_path: Path) -> None:
    paths = [str(tree / "log.txt"), str(tree / "missing"), "/proc/1/cmdline"]
    rec = RecordingHost(host)
    with probe_scope("p"):
        got = read_each(rec, paths, max_bytes=100)
        stats = stat_each(rec, paths)
    bundle = BundleHost(rec.save(str(tmp_path / "b.tar.gz")))
    with probe_scope("p"):
        _same_outcomes(read_each(bundle, paths, max_bytes=100), got)
        _same_outcomes([bundle.read_text(p, max_bytes=100) if not isinstance(g, BaseException) else g
                        for p, g in zip(paths, got)], got)
        _same_outcomes(stat_each(bundle, paths), stats)


def test_walking_a_config_tree_costs_a_few_round_trips_per_level(host: SshHost, tmp_path: Path) -> None:
    from ddx.probes.history.changes import walk_configs

    for d in range(10):
        for e in range(3):
            sub = tmp_path / f"d{d}" / f"e{e}"
            sub.mkdir(parents=True)
            for f in range(10):
                (sub / f"f{f}.conf").write_text("x")
            (sub / "f0.dpkg-old").write_text("ignored")
    old = time.time() - 86400
    for p in [tmp_path, *tmp_path.rglob("*")]:
        os.utime(p, (old, old))
    os.utime(tmp_path / "d3" / "e1" / "f7.conf")
    kw = {"cutoff": time.time() - 600, "ignore": ["*.dpkg-old"], "max_depth": 4, "max_files": 2000}
    first = next(host._ids)
    remote = walk_configs(host, [str(tmp_path)], **kw)  # type: ignore[arg-type]
    trips = next(host._ids) - first - 1
    assert remote == walk_configs(LiveHost(), [str(tmp_path)], **kw)  # type: ignore[arg-type]
    assert remote.looked == 1 + 10 + 30 + 300 and [c.source for c in remote.changed] == [str(tmp_path / "d3/e1/f7.conf")]
    assert trips <= 3 * 4 + 1  # stats, listings and ignored entries of each level (was one per entry: 400)


def test_commands_run_there_without_a_shell(host: SshHost) -> None:
    live = LiveHost()
    for argv in (["uname", "-a"], ["sh", "-c", "echo out; echo err >&2; exit 3"], ["echo", "$HOME", "*", ";", "|"]):
        assert host.run(argv) == live.run(argv)
    r = host.run(["sh", "-c", 'echo "$DDX_TEST_SECRET $LC_ALL"'], env={"DDX_TEST_SECRET": "pw 1"})
    assert r.stdout == "pw 1 C\n"
    with pytest.raises(FileNotFoundError):
        host.run(["ddx-no-such-program"])


def test_a_slow_command_is_killed_there(host: SshHost) -> None:
    argv = ["sleep", "31.4159"]
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="killed"):
        host.run(argv, timeout=1.0)
    assert time.monotonic() - t0 < 5
    end = time.monotonic() + 5
    while _pids_running(argv) and time.monotonic() < end:
        time.sleep(0.05)
    assert _pids_running(argv) == []
    assert host.run(["true"]).returncode == 0  # the session still works


def test_a_hung_read_is_abandoned_and_the_session_goes_on(host: SshHost, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"  # opening a FIFO nobody writes blocks in the kernel, like a dead NFS mount
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with call_timeout(1.0), pytest.raises(TimeoutError, match="abandoned"):
        host.read_text(str(fifo))
    assert time.monotonic() - t0 < 4
    with probe_scope("test", deadline=time.monotonic() + 0.5), pytest.raises(TimeoutError):
        host.read_text(str(fifo))  # the probe's deadline is honoured too
    assert host.read_text("/proc/version") == LiveHost().read_text("/proc/version")
    with open(fifo, "wb"):  # let the two blocked agent threads go
        pass


def test_the_deadline_bounds_a_command(host: SshHost) -> None:
    t0 = time.monotonic()
    with probe_scope("test", deadline=time.monotonic() + 1.0), pytest.raises(TimeoutError):
        host.run(["sleep", "27.1828"], timeout=30)
    assert time.monotonic() - t0 < 5


def test_close_leaves_no_ssh_nor_session_behind(sshd: Sshd) -> None:
    h = SshHost("sshtest", ssh_config=str(sshd.client_config))
    assert h.run(["true"]).returncode == 0
    assert sshd.sessions()
    pid = h._proc.pid  # type: ignore[union-attr]
    h.close()
    h.close()  # twice is fine
    assert not os.path.exists(f"/proc/{pid}") or _zombie(pid)
    end = time.monotonic() + 5
    while sshd.sessions() and time.monotonic() < end:
        time.sleep(0.05)
    assert sshd.sessions() == []
    with pytest.raises(ConnectionResetError):
        h.read_text("/proc/version")


def test_a_dropped_connection_fails_the_calls_and_the_diagnosis(sshd: Sshd) -> None:
    from ddx.api import SshOptions

    with SshHost("sshtest", ssh_config=str(sshd.client_config)) as h:
        assert h.lost is None
        os.kill(h.remote_pid, signal.SIGKILL)  # the remote end goes away (it is this machine)
        end = time.monotonic() + 5
        while h.lost is None and time.monotonic() < end:
            time.sleep(0.05)
        assert h.lost is not None
        with pytest.raises(ConnectionResetError, match="^ssh sshtest: connection lost"):
            h.stat("/")
        with pytest.raises(SshError, match="^ssh sshtest: the connection dropped during the probes"):
            SshOptions("sshtest").check(h)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_recording_redacts_what_it_read_there(host: SshHost, tmp_path: Path) -> None:
    secret = tmp_path / "app.env"
    secret.write_text("DATABASE_URL=postgresql://app:Sup3rSecretPw@db/app\n")
    rec = RecordingHost(host)
    assert rec.remote == host.remote and rec.live is False
    assert "Sup3rSecretPw" in rec.read_text(str(secret))  # the probe sees the real text
    rec.run(["echo", "--password=An0therSecret"])
    assert "SSH_CONNECTION=" in rec.read_text(f"/proc/{host.remote_pid}/environ")  # read there, never saved
    path = rec.save(str(tmp_path / "b.tar.gz"))
    import tarfile

    with tarfile.open(path) as tar:
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())  # type: ignore[union-attr]
    assert b"Sup3rSecretPw" not in blob and b"An0therSecret" not in blob and b"SSH_CONNECTION" not in blob
    assert b"app.env" in blob


# --- hosts that cannot be reached: one clear line, within the connect timeout ----------


def test_a_refused_port_is_one_clear_error(sshd: Sshd) -> None:
    t0 = time.monotonic()
    with pytest.raises(SshError) as err:
        SshHost("dead", ssh_config=str(sshd.client_config), connect_timeout=3)
    assert str(err.value) == "ssh dead: connection refused"
    assert err.value.exit_code == 2
    assert time.monotonic() - t0 < 3 + 5


def test_a_port_that_never_speaks_ssh_times_out(sshd: Sshd) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the connections; nobody ever answers
        port = silent.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(SshError) as err:
            SshHost("sshtest", ssh_config=str(sshd.client_config), options=[f"Port={port}"], connect_timeout=2)
        took = time.monotonic() - t0
    assert str(err.value).startswith("ssh sshtest: ")
    assert "no SSH answer within 2s" in str(err.value) or "timed out" in str(err.value)
    assert took < 2 + 5


def test_a_key_the_server_refuses_fails_authentication(sshd: Sshd, tmp_path: Path) -> None:
    import subprocess

    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True, timeout=30)
    config = tmp_path / "ssh_config"  # IdentityFile adds to a list: a config of its own
    config.write_text(sshd.client_block("sshtest").replace(str(sshd.client_key), str(other)))
    with pytest.raises(SshError, match=r"^ssh sshtest: authentication failed \(.*Permission denied"):
        SshHost("sshtest", ssh_config=str(config), connect_timeout=5)


def test_an_unknown_host_and_bad_targets(sshd: Sshd) -> None:
    from ddx.errors import UsageError

    with pytest.raises(SshError, match=r"^ssh root@ddx-no-such-host\.invalid: unknown host"):
        SshHost("root@ddx-no-such-host.invalid", ssh_config=str(sshd.client_config), connect_timeout=5)
    for bad in ("-oProxyCommand=touch /tmp/x", "", "a b", "a\nb"):
        with pytest.raises(UsageError):
            SshHost(bad)


def test_a_host_without_python3_says_so(sshd: Sshd) -> None:
    with pytest.raises(SshError) as err:
        SshHost("nopython", ssh_config=str(sshd.client_config), connect_timeout=5)
    assert str(err.value) == "ssh nopython: python3 is not installed there (ddx needs python3 on the remote host)"


def test_a_greeting_before_the_agent_is_ignored(sshd: Sshd) -> None:
    with SshHost("chatty", ssh_config=str(sshd.client_config), connect_timeout=5) as h:
        assert h.read_text("/proc/version") == LiveHost().read_text("/proc/version")


def test_the_agent_is_python_3_6(sshd: Sshd) -> None:
    import ast
    from importlib import resources

    ast.parse(resources.files("ddx.host").joinpath("sshagent.py").read_text(), feature_version=(3, 6))


def test_ssh_reason_keeps_the_cause_and_drops_the_noise() -> None:
    err = ("Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.\r\n"
           "ssh: connect to host 10.0.0.5 port 22: Connection refused\r\n")
    assert ssh_reason(err, 10) == "connection refused"
    assert ssh_reason("ddx-agent: python3 not found\n", 10).startswith("python3 is not installed there")
    assert ssh_reason("something odd happened\n", 10) == "something odd happened"
    assert ssh_reason("", 10) == ""



def test_a_target_is_checked_before_ssh_sees_it() -> None:
    from ddx.errors import UsageError
    from ddx.host.ssh import check_target

    assert check_target(" root@db1 ") == "root@db1"
    assert check_target("ssh://root@db1:2222") == "ssh://root@db1:2222"
    assert check_target("fe80::1") == "fe80::1"  # an IPv6 address is not host:port
    for bad, says in (("-oProxyCommand=x", "not a host"), ("a b", "not a host"),
                      ("root@db1:2222", "ssh://root@db1:2222")):
        with pytest.raises(UsageError) as exc:
            check_target(bad)
        assert says in str(exc.value)
