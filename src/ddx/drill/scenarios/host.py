"""Host-level faults in the sandbox stack: its own tmpfs mounts, processes, cgroup and limits."""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import shutil
import time
from pathlib import Path

from ddx.drill.scenarios import Scenario, register
from ddx.drill.stack import APP_USER, Stack, StackOptions
from ddx.drill.wild import compile_and_crash


def _wait_for_log(path: Path, words: str, timeout: float = 20.0) -> None:
    """Until ``words`` appears in ``path`` (the app has met the fault), at most ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if words in path.read_text(errors="replace"):
                return
        except OSError:
            pass
        time.sleep(0.1)


def _fill_cache(stack: Stack) -> None:
    """A runaway job fills the app's cache tmpfs to the last block."""
    with open(stack.cache_dir / "export.tmp", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        except OSError:
            pass
    # the last partial block: small writes until nothing fits
    with open(stack.cache_dir / "export2.tmp", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    os.sync()
    _wait_for_log(stack.app_log, "No space left on device")


register(Scenario(
    name="disk-full",
    expected="disk-full",
    summary="a runaway export fills the app's cache tmpfs; page renders fail with ENOSPC",
    inject=_fill_cache,
))


# --- inode-exhaustion --------------------------------------------------------------------

def _sessions_expire_by_cron(opts: StackOptions) -> None:
    """The app leaves session expiry to a cleaner job (as PHP on Debian does with its
    cron job): its own in-request clean-up never triggers. The sessions filesystem has
    one inode per 16 KiB, ext4's default ratio: small files run out of inodes long
    before they fill its space (4 KiB pages each on tmpfs)."""
    opts.app_settings["max_sessions"] = 10**9
    opts.session_inodes = 1024


def _pile_up_sessions(stack: Stack) -> None:
    """The session cleaner stopped days ago: stale session files fill the sessions
    tmpfs's inode table (its bytes stay nearly free), until new sessions fail."""
    uid, gid = pwd.getpwnam(APP_USER).pw_uid, pwd.getpwnam(APP_USER).pw_gid
    stale = time.time() - 3 * 86400
    i = 0
    while True:
        if i > 16 * stack.opt.session_inodes:
            raise RuntimeError(f"{stack.sessions_dir} did not run out of inodes")
        path = stack.sessions_dir / f"sess_{0xA0000000 + i:08x}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            i += 1
            continue
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            break  # no inode left
        try:
            os.write(fd, b"user=%d;t=%f" % (i % 997, stale))
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.utime(path, (stale, stale))
        i += 1
    _wait_for_log(stack.app_log, "No space left on device")


register(Scenario(
    name="inode-exhaustion",
    expected="inode-exhaustion",
    summary="the session cleaner stopped: stale session files use every inode of the sessions tmpfs; "
            "new sessions fail with ENOSPC while its space stays free",
    prepare=_sessions_expire_by_cron,
    inject=_pile_up_sessions,
))


# --- permission-error --------------------------------------------------------------------

def _chown_cache(stack: Stack) -> None:
    """A deploy script 'fixes' the cache directory's ownership to root, mode 0755: the
    app (user nobody) can no longer create its rendered pages there."""
    os.chown(stack.cache_dir, 0, 0)
    os.chmod(stack.cache_dir, 0o755)
    _wait_for_log(stack.app_log, "Permission denied")


register(Scenario(
    name="permission-error",
    expected="permission-error",
    summary="a deploy script chowns the app's cache directory to root (mode 0755); page renders fail with EACCES",
    inject=_chown_cache,
))


# --- fd-exhaustion -----------------------------------------------------------------------

def _open_fds(pid: int) -> set[int]:
    return {int(n) for n in os.listdir(f"/proc/{pid}/fd")}


def _limit_with_one_free(fds: set[int]) -> int:
    """The smallest RLIMIT_NOFILE above every descriptor the process holds that leaves
    exactly one free below it: the worker can accept a connection, but nothing it opens
    for the request fits."""
    return max(max(fds, default=-1) + 1, len(fds) + 1)


def _prlimit(stack: Stack, pid: int, limit: int) -> None:
    """`prlimit --pid PID --nofile=LIMIT:LIMIT`, run as the process's own user: changing
    another user's limits needs CAP_SYS_RESOURCE, which a container's root may lack."""
    uid = os.stat(f"/proc/{pid}").st_uid
    user = None if uid == 0 else pwd.getpwuid(uid).pw_name
    p = stack.sb.spawn(["prlimit", "--pid", str(pid), f"--nofile={limit}:{limit}"], user=user)
    if p.wait(timeout=20) != 0:
        raise RuntimeError(f"prlimit --pid {pid} --nofile={limit}:{limit} failed (exit {p.returncode})")


def _lower_nofile(stack: Stack) -> None:
    """A bad LimitNOFILE / ulimit -n for the app service, applied to the running master
    and workers (prlimit): the workers keep accepting, but each request's session and
    cache files fail with EMFILE. Respawned workers inherit the master's limit."""
    master = stack.gunicorn_master()
    workers = stack.gunicorn_workers(master)
    if not workers:
        raise RuntimeError("no gunicorn workers to limit")
    # A worker caught mid-request holds a client socket and a temp file more: the
    # smallest of a few looks is what it holds between requests.
    limit = 1 << 20
    for _ in range(5):
        for w in workers:
            limit = min(limit, _limit_with_one_free(_open_fds(w)))
        time.sleep(0.05)
    for pid in [master, *workers]:
        _prlimit(stack, pid, limit)
    _wait_for_log(stack.app_log, "Too many open files")


def _prlimit_needs() -> list[str]:
    return [] if shutil.which("prlimit") else ["prlimit (apt-get install util-linux)"]


register(Scenario(
    name="fd-exhaustion",
    expected="fd-exhaustion",
    summary="the app's RLIMIT_NOFILE is lowered under load (a bad LimitNOFILE); workers fail with EMFILE",
    inject=_lower_nofile,
    needs=_prlimit_needs,
))


# --- hardware-fault ----------------------------------------------------------------------

# What a machine check and an EDAC memory controller print (priority <3>: KERN_ERR).
HARDWARE_ERROR_LINES = (
    "<3>mce: [Hardware Error]: Machine check events logged",
    "<3>mce: [Hardware Error]: CPU 1: Machine Check: 0 Bank 8: cc00008000010090",
    "<3>mce: [Hardware Error]: TSC 0 ADDR 4a3b1c40 MISC 140c3b86 ",
    "<3>EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4a3b1 "
    "offset:0xc40 grain:32 syndrome:0x0)",
    "<3>EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x4a3b2 "
    "offset:0x80 grain:32 syndrome:0x0)",
)

# Two unrelated programs that crash on bad memory: a thumbnailer and a report job. (Here
# they dereference NULL; on a host with failing RAM, a flipped bit does it for them.)
CRASHERS = {
    "thumbnailer": "int main(void) { volatile int *pixels = 0; return pixels[7]; }\n",
    "nightly-report": "#include <string.h>\nint main(void) { char *row = 0; return (int)strlen(row); }\n",
}


def _hardware_needs() -> list[str]:
    missing = []
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        missing.append("a C compiler for the crashing programs (apt-get install gcc)")
    if not os.access("/dev/kmsg", os.W_OK):
        missing.append("write access to /dev/kmsg (the kernel log)")
    trace = Path("/proc/sys/debug/exception-trace")
    with contextlib.suppress(OSError):
        if trace.read_text().strip() == "0":
            missing.append("kernel segfault reports (sysctl debug.exception-trace=1)")
    return missing


def _hardware_fault(stack: Stack) -> None:
    """Failing memory: the kernel logs machine checks and corrected ECC errors, and two
    unrelated programs on the host die of SIGSEGV."""
    folder = stack.sb.path("crashers")
    with open("/dev/kmsg", "w") as kmsg:
        for line in HARDWARE_ERROR_LINES:
            kmsg.write(line + "\n")
            kmsg.flush()
    for name, source in CRASHERS.items():
        compile_and_crash(stack.sb, folder, name, source)


register(Scenario(
    name="hardware-fault",
    expected="hardware-fault",
    summary="failing memory: machine-check and EDAC errors in the kernel log, and two unrelated programs segfault",
    inject=_hardware_fault,
    needs=_hardware_needs,
    host_effects="writes hardware-error lines to the kernel log (/dev/kmsg), which stay until reboot",
))
