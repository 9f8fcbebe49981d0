"""A real OpenSSH server on 127.0.0.1 for the tests, with everything in a tmp dir.

Keys are made with ssh-keygen, the server's config and the client's config are
written in the tmp dir (nothing in ~/.ssh or /etc/ssh). sshd runs in the
foreground (``-D -e``: its log goes to a file here, not to syslog); without a
pty it writes no utmp/wtmp/lastlog records. sshd as root needs its privilege
separation directory (/run/sshd): made when missing and removed at the end.

Test modules import the ``sshd`` fixture from here (a second conftest.py would
shadow the suite's).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
PRIVSEP = "/run/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children_of(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc), deepest last."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in parents.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


class Sshd:
    """One sshd on a free port of 127.0.0.1 accepting the test's client key for root."""

    def __init__(self, folder: Path, aliases: Iterable[str] = ("sshtest",), max_startups: int = 10) -> None:
        self.dir = folder
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.nopython_port = free_port()
        self.chatty_port = free_port()
        self.made_privsep = False
        self.proc: subprocess.Popen[bytes] | None = None
        host_key = self.dir / "host_ed25519"
        self.client_key = self.dir / "client_ed25519"
        for key in (host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ddx-test", "-f", str(key)],
                           check=True, timeout=30, stdin=subprocess.DEVNULL)
        (self.dir / "authorized_keys").write_text((self.dir / "client_ed25519.pub").read_text())
        self.log = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        self.config.write_text(
            f"Port {self.port}\nPort {self.chatty_port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile none\n"
            f"AuthorizedKeysFile {self.dir}/authorized_keys\nStrictModes no\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nPrintMotd no\n"
            f"PrintLastLog no\nMaxStartups {max_startups}\nMaxSessions {max_startups}\nLogLevel ERROR\n"
            # a second port plays a host without python3: the command runs with a PATH that has none
            f"Port {self.nopython_port}\nMatch LocalPort {self.nopython_port}\n"
            '  ForceCommand env PATH=/ddx-nowhere /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
            # a third one plays a host whose login prints a greeting (no newline) before the command runs
            f"Match LocalPort {self.chatty_port}\n"
            '  ForceCommand printf "Welcome to a chatty host"; exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
        )
        self.client_config = self.dir / "ssh_config"
        self.write_client_config(aliases)

    def client_block(self, alias: str, port: int | None = None) -> str:
        return (
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {port or self.port}\n  User root\n"
            f"  IdentityFile {self.client_key}\n  IdentitiesOnly yes\n  IdentityAgent none\n"
            f"  UserKnownHostsFile {self.dir}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking accept-new\n  CheckHostIP no\n"
        )

    def write_client_config(self, aliases: Iterable[str], extra: str = "") -> None:
        self.client_config.write_text("".join(self.client_block(a) for a in aliases) + extra)

    def start(self) -> Sshd:
        if not os.path.isdir(PRIVSEP):
            os.mkdir(PRIVSEP, 0o755)
            self.made_privsep = True
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, start_new_session=True)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.05)
        raise RuntimeError("sshd did not listen within 10 s")

    def sessions(self) -> list[int]:
        """The pids of the processes the server runs for connections (and what they started)."""
        return _children_of(self.proc.pid) if self.proc is not None else []

    def stop(self) -> None:
        if self.proc is None:
            return
        left = self.sessions()
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc = None
        if self.made_privsep:
            with contextlib.suppress(OSError):
                os.rmdir(PRIVSEP)


@pytest.fixture(scope="session", name="sshd")
def sshd_server() -> Iterator[Sshd]:
    """One sshd. Its client config has the aliases ``sshtest`` and ``sshtest2``
    (the same server), ``nopython`` (its port where python3 is not found),
    ``chatty`` (its port whose login prints a greeting) and ``dead`` (a port
    nothing listens on)."""
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root")
    if not (os.access(SSHD, os.X_OK) and shutil.which("ssh") and shutil.which("ssh-keygen")):
        pytest.skip("openssh-server and openssh-client are not installed")
    folder = Path(tempfile.mkdtemp(prefix="ddx-sshd-"))
    server = Sshd(folder, max_startups=60)
    server.write_client_config(["sshtest", "sshtest2"], extra=server.client_block("dead", free_port())
                               + server.client_block("nopython", server.nopython_port)
                               + server.client_block("chatty", server.chatty_port))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
