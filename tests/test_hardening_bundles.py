"""Hostile bundles (issue 16, security items 3 and 4).

An unpacked bundle (``--from DIR``, made with ``tar xzf`` as the docs say) may
hold symbolic links, FIFOs and devices, or not be a bundle at all; a bundle
archive may inflate to gigabytes. Each test builds the hostile bundle for real
and runs ``ddx diagnose --from`` as a user does, in a child process with its
memory capped and its time limited: the run must end with one clean error line
(exit 2) or skip what the bundle does not name, and never print a private file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from hostile import (
    MAX_RSS_MB,
    MAX_SECONDS,
    GzipWriter,
    run_bounded,
    tar_end,
    tar_header,
    tar_member,
)

from ddx.host import BundleHost, build_bundle

MEMINFO = "MemTotal:       16000000 kB\nMemFree:         8000000 kB\nMemAvailable:   12000000 kB\n"
SECRET = "h16-private-line-7f3a9c"  # what a private file holds: it must never reach the output


def _bundle(tmp_path: Path) -> Path:
    """An unpacked bundle whose calls name files/proc/meminfo and files/etc/hostname."""
    return Path(build_bundle(str(tmp_path / "bundle"), files={"/proc/meminfo": MEMINFO, "/etc/hostname": "web-1\n"}))


def _private(tmp_path: Path) -> Path:
    private = tmp_path / "private"
    private.mkdir()
    (private / "meminfo").write_text(f"MemTotal: 1 kB\n{SECRET}\n")
    os.chmod(private / "meminfo", 0o600)
    return private


def _assert_refused(r, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert not r.hung, "ddx hung"
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert r.one_clean_line(), r.stderr[-2000:]
    for w in words:
        assert w in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr
    assert r.rss_mb < MAX_RSS_MB, f"{r.rss_mb:.0f} MB"
    assert r.seconds < MAX_SECONDS, f"{r.seconds:.1f} s"


# --- unpacked bundles -----------------------------------------------------------------------


def test_a_planted_link_unpacked_by_tar_is_refused_and_never_printed(tmp_path: Path) -> None:
    """The docs tell users to unpack with `tar xzf`, which recreates a link the archive holds."""
    private = _private(tmp_path)
    legit = _bundle(tmp_path)
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("manifest.json", "calls.json", "files/etc/hostname"):
            tar.add(legit / name, arcname=f"ddx-bundle/{name}")
        link = tarfile.TarInfo("ddx-bundle/files/proc/meminfo")
        link.type, link.linkname = tarfile.SYMTYPE, str(private / "meminfo")
        tar.addfile(link)
    dest = tmp_path / "unpacked"
    dest.mkdir()
    subprocess.run(["tar", "xzf", str(archive), "-C", str(dest)], check=True, timeout=30)
    assert (dest / "ddx-bundle/files/proc/meminfo").is_symlink()
    r = run_bounded("diagnose", "--from", str(dest), "--json")
    _assert_refused(r, "files/proc/meminfo", "symbolic link")


def test_a_symlinked_folder_in_a_bundle_is_refused(tmp_path: Path) -> None:
    private = _private(tmp_path)
    b = _bundle(tmp_path)
    shutil.rmtree(b / "files/proc")
    os.symlink(private, b / "files/proc")
    r = run_bounded("diagnose", "--from", str(b), "--json")
    _assert_refused(r, "files/proc", "symbolic link")


def test_a_link_to_dev_zero_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    os.unlink(b / "files/proc/meminfo")
    os.symlink("/dev/zero", b / "files/proc/meminfo")
    r = run_bounded("diagnose", "--from", str(b))
    _assert_refused(r, "files/proc/meminfo", "symbolic link")


def test_a_fifo_in_a_bundle_is_refused_without_hanging(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    os.unlink(b / "files/proc/meminfo")
    os.mkfifo(b / "files/proc/meminfo")
    r = run_bounded("diagnose", "--from", str(b), timeout=20)
    _assert_refused(r, "files/proc/meminfo", "FIFO")


def test_links_and_fifos_the_bundle_does_not_name_are_never_opened(tmp_path: Path) -> None:
    private = _private(tmp_path)
    b = _bundle(tmp_path)
    os.mkfifo(b / "files/extra.fifo")
    os.symlink("/dev/zero", b / "files/zero")
    os.symlink(private / "meminfo", b / "commands")
    r = run_bounded("diagnose", "--from", str(b), "--json", timeout=60, address_space=None)
    assert not r.hung and r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and SECRET not in r.stdout + r.stderr
    assert json.loads(r.stdout)["schema"]


def test_a_folder_that_is_not_a_bundle_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "not-a-bundle"
    folder.mkdir()
    with open(folder / "big.img", "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB that cost no disk
    os.mkfifo(folder / "pipe")
    r = run_bounded("diagnose", "--from", str(folder), timeout=20)
    _assert_refused(r, "no manifest.json")


def test_an_oversized_member_and_an_oversized_total_are_refused(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    with open(b / "files/proc/meminfo", "r+b") as f:
        f.truncate(20 << 20)
    _assert_refused(run_bounded("diagnose", "--from", str(b)), "files/proc/meminfo", "over the limit")

    files = {f"/var/log/app{i}.log": "x" for i in range(8)}
    many = Path(build_bundle(str(tmp_path / "many"), files=files))
    for i in range(8):
        with open(many / f"files/var/log/app{i}.log", "r+b") as f:
            f.truncate(10 << 20)
    _assert_refused(run_bounded("diagnose", "--from", str(many)), "in all")


def test_a_bundle_nested_fifty_thousand_deep_is_one_clean_line(tmp_path: Path) -> None:
    for name in ("manifest.json", "calls.json"):
        b = _bundle(tmp_path / name)
        if name == "manifest.json":
            text = '{"format": "ddx-bundle/1", "host": ' + "[" * 50_000 + "]" * 50_000 + "}"
        else:
            text = "[" * 50_000 + "]" * 50_000
        (b / name).write_text(text)
        _assert_refused(run_bounded("diagnose", "--from", str(b)), name, "nested deeper")


def test_a_manifest_that_is_not_an_object_is_one_clean_line(tmp_path: Path) -> None:
    b = _bundle(tmp_path)
    (b / "manifest.json").write_text('["ddx-bundle/1"]')
    _assert_refused(run_bounded("diagnose", "--from", str(b)), "manifest.json")


# --- archives: decompression bombs -----------------------------------------------------------


def _bomb(tmp_path: Path, name: str, body) -> Path:  # type: ignore[no-untyped-def]
    """A .tar.gz with a real bundle's manifest.json and calls.json first, then ``body(gz)``."""
    legit = _bundle(tmp_path / f"legit-{name}")
    path = tmp_path / f"{name}.tar.gz"
    gz = GzipWriter(path)
    for member in ("manifest.json", "calls.json"):
        tar_member(gz, f"ddx-bundle/{member}", (legit / member).read_bytes())
    body(gz)
    tar_end(gz)
    return path


def test_a_member_that_inflates_to_gigabytes_is_refused_from_its_header(tmp_path: Path) -> None:
    path = _bomb(tmp_path, "one", lambda gz: tar_member(gz, "ddx-bundle/files/proc/meminfo", zeros=2 << 30))
    assert path.stat().st_size < 3 << 20  # a 2 GiB member in a bundle of about 2 MB
    r = run_bounded("diagnose", "--from", str(path), timeout=60)
    _assert_refused(r, "files/proc/meminfo", "over the limit")


def test_members_that_inflate_past_the_total_are_refused(tmp_path: Path) -> None:
    def body(gz: GzipWriter) -> None:
        for i in range(100):  # 1.5 GiB, each member under the per-member limit
            tar_member(gz, f"ddx-bundle/files/var/log/app{i}.log", zeros=15 << 20)

    r = run_bounded("diagnose", "--from", str(_bomb(tmp_path, "many", body)), timeout=60)
    _assert_refused(r, "in all")


def test_a_header_that_inflates_to_gigabytes_is_refused(tmp_path: Path) -> None:
    """A pax extended header is read whole by tarfile before the member it describes."""
    def body(gz: GzipWriter) -> None:
        gz.write(tar_header("ddx-bundle/files/pax", 2 << 30, tarfile.XHDTYPE))
        gz.zeros(2 << 30)

    r = run_bounded("diagnose", "--from", str(_bomb(tmp_path, "pax", body)), timeout=60)
    _assert_refused(r, "inflates")


def test_a_corrupt_archive_is_one_clean_line(tmp_path: Path) -> None:
    files = {f"/var/log/app{i}.log": os.urandom(20_000).hex() for i in range(5)}
    src = Path(build_bundle(str(tmp_path / "big"), files=files))
    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="ddx-bundle")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    r = run_bounded("diagnose", "--from", str(path))
    _assert_refused(r, str(path))


def test_a_bundle_archive_is_read_through_once(tmp_path: Path) -> None:
    """Bytes read from disk while a bundle is opened: once its size, not twice
    (reading members after listing them inflated the archive again from the start)."""
    files = {f"/var/log/app{i}.log": os.urandom(400_000).hex() for i in range(8)}
    src = Path(build_bundle(str(tmp_path / "b"), files=files))
    path = tmp_path / "b.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(src, arcname="ddx-bundle")
    size = path.stat().st_size
    probe = (
        "import sys\n"
        "from ddx.host.bundle import BundleHost\n"
        "import ddx.safeload, ddx.errors\n"
        "def rchar():\n"
        "    with open('/proc/self/io') as f:\n"
        "        return int(next(l for l in f if l.startswith('rchar')).split()[1])\n"
        "before = rchar()\n"
        "host = BundleHost(sys.argv[1])\n"
        "print(rchar() - before)\n"
    )
    r = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) < 1.3 * size, (int(r.stdout), size)
    assert BundleHost(str(path)).read_text("/var/log/app3.log") == files["/var/log/app3.log"]
