"""A real sshd on 127.0.0.1 for the tests of ``ddx --ssh`` (see sshserver.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sshserver import SSHD, Sshd, free_port


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    """One sshd for the session. Its client config has the aliases ``sshtest`` and
    ``sshtest2`` (the same server) and ``dead`` (a port nothing listens on)."""
    if os.geteuid() != 0:
        pytest.skip("the test sshd logs in as root")
    if not (os.access(SSHD, os.X_OK) and shutil.which("ssh") and shutil.which("ssh-keygen")):
        pytest.skip("openssh-server and openssh-client are not installed")
    folder = Path(tempfile.mkdtemp(prefix="ddx-sshd-"))
    server = Sshd(folder, max_startups=60)
    server.write_client_config(["sshtest", "sshtest2"], extra=server.client_block("dead", free_port()))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
