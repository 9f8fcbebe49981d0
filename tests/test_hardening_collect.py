"""Writing a bundle (issue 16, security item 1).

A bundle holds a host's evidence. While `ddx collect` writes it, nobody else may
read it (the temporary file is 0600 from its creation, not chmodded afterwards),
and a link planted where ddx writes must not be followed: ddx runs as root.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from ddx.config import Config
from ddx.host import BundleHost, LiveHost, RecordingHost
from ddx.probes.runner import run_probes


def _recording() -> tuple[RecordingHost, object]:
    rec = RecordingHost(LiveHost())
    return rec, run_probes(rec, Config(), only=["memory"], window=0)


def test_the_bundle_is_never_readable_by_others_while_it_is_written(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file in the target folder, looked at each time a member is written."""
    rec, col = _recording()
    seen: list[tuple[str, int, bool]] = []
    add = tarfile.TarFile.addfile

    def watched(self: tarfile.TarFile, tarinfo: tarfile.TarInfo, fileobj=None) -> None:  # type: ignore[no-untyped-def]
        for entry in os.scandir(tmp_path):
            st = os.lstat(entry.path)
            seen.append((entry.name, stat.S_IMODE(st.st_mode), stat.S_ISREG(st.st_mode)))
        add(self, tarinfo, fileobj)

    monkeypatch.setattr(tarfile.TarFile, "addfile", watched)
    umask = os.umask(0o022)  # the usual one: a new file is 0644 unless made otherwise
    try:
        path = rec.save(str(tmp_path / "b.tar.gz"), col)
    finally:
        os.umask(umask)
    assert seen, "no file was seen while the bundle was written"
    assert {(mode, regular) for _name, mode, regular in seen} == {(0o600, True)}, seen
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["b.tar.gz"]  # the temporary file is gone


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    """Earlier versions wrote to PATH.tmpPID, a name anyone could guess and plant a link at."""
    rec, col = _recording()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    target = tmp_path / "b.tar.gz"
    planted = Path(f"{target}.tmp{os.getpid()}")
    planted.symlink_to(victim)
    also = tmp_path / "c.tar.gz"  # and a link at the bundle's own name is replaced, not written through
    also.symlink_to(victim)
    path = rec.save(str(target), col)
    rec.save(str(also), col)
    assert victim.read_text() == "precious\n" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert planted.is_symlink()
    assert not also.is_symlink() and stat.S_IMODE(also.stat().st_mode) == 0o600
    assert BundleHost(path).name == rec.name


@pytest.mark.root
def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A disk that fills while the bundle is written (a real 64 KiB tmpfs)."""
    noise = tmp_path / "noise.log"
    noise.write_text(os.urandom(400_000).hex())  # does not compress below 64 KiB
    rec = RecordingHost(LiveHost())
    rec.read_text(str(noise))
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "ddx-test-full", str(small)], check=True, timeout=10)
    try:
        with pytest.raises(OSError):
            rec.save(str(small / "b.tar.gz"))
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True, timeout=10)
