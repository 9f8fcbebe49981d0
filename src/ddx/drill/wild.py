"""The wild variant of a drill: the same fault on a stack that looks like a real host.

The clean variant hands ddx a ddx.toml naming every log, target and the time the
stack started; the fault is injected while ddx looks. Real hosts are not like
that, so the wild variant changes four things, and ddx gets no hint at all (no
configuration: it runs in the sandbox's folder, as on a host without ddx.toml):

- **services as they are found**: started from the sandbox's own paths (nginx
  with ``-p``/``-c``, PostgreSQL with ``-D``, the app's settings named by an
  environment variable), the app's log in its own folder and *opened per
  write*, so no process holds it open;
- **ordinary noise**: package installs one to three hours before the fault,
  followed by no error (ddx sees them in /var/log/dpkg.log through a private
  mount namespace, so the host's real log is never written); and, when host
  effects are allowed, a real crash of an unrelated program and a kernel error
  line about a device nobody uses, ``noise_lead`` seconds before the fault
  (they stay in the kernel log, and later drills see them as older noise);
- **the fault minutes before ddx runs**: ddx first runs ``fault_lead`` seconds
  after the injection, judging what the fault left behind rather than the
  moment it struck.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ddx.drill.sandbox import Sandbox, SandboxError
from ddx.drill.stack import Stack, StackOptions

__all__ = ["NOISE_KERNEL_LINE", "WildOptions", "compile_and_crash", "ddx_argv", "make_noise", "prepare"]

# A kernel error about a device nobody uses (a virtual floppy probed at boot): the kind of
# line every real host's kernel log holds, and no fault of the service.
NOISE_KERNEL_LINE = "<3>blk_update_request: I/O error, dev fd0, sector 0 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 0"
# An unrelated program that crashes (a nightly report generator's bug).
NOISE_CRASHER = ("report-export", "#include <string.h>\nint main(void) { char *p = 0; return (int)strlen(p); }\n")
# Packages installed hours before the fault, as an ordinary day's upgrades leave them.
NOISE_PACKAGES = ("libssl3", "openssl", "tzdata", "libc-bin", "libc6", "curl", "libcurl4", "ca-certificates",
                  "python3-urllib3", "libxml2", "git", "git-man", "vim-common", "xxd", "libsystemd0",
                  "systemd", "udev", "libudev1", "sudo", "rsync", "less", "bash", "libpam-modules",
                  "libpam0g", "openssh-client", "libgnutls30", "libsqlite3-0", "gzip", "wget", "unzip")
DPKG_LOG = "/var/log/dpkg.log"


@dataclass(frozen=True)
class WildOptions:
    """How wild: seconds between the noise and the fault, and between the fault and ddx."""

    noise_lead: float = 90.0
    fault_lead: float = 90.0
    packages_hours: tuple[float, float] = (3.0, 1.0)  # installs spread from this many hours before to this many


def prepare(opts: StackOptions) -> None:
    """The stack as a real host would run it: the app opens its log for each record."""
    opts.app_settings["log_per_write"] = True


def _cc() -> str | None:
    return shutil.which("gcc") or shutil.which("cc")


def compile_and_crash(sb: Sandbox, folder: Path, name: str, source: str) -> None:
    """Build ``source`` as ``name`` in ``folder`` and run it in the sandbox: it dies of SIGSEGV
    (a real crash, which the kernel logs)."""
    cc = _cc()
    if cc is None:
        raise SandboxError("no C compiler for the crashing program (apt-get install gcc)")
    src = folder / f"{name}.c"
    src.write_text(source)
    exe = folder / name
    subprocess.run([cc, "-O0", "-o", str(exe), str(src)], check=True, capture_output=True, timeout=60)
    p = sb.spawn([str(exe)], cwd=folder)
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        raise SandboxError(f"{name} did not crash") from None
    if rc != -signal.SIGSEGV:
        raise SandboxError(f"{name} exited with {rc}, not a segfault")


def _dpkg_line(t: float, package: str, version: str) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return f"{stamp} upgrade {package}:amd64 {version} {version}+1"


def _package_noise(stack: Stack, opts: WildOptions, fault_at: float) -> Path | None:
    """The host's dpkg.log with an ordinary day's upgrades added, hours before the fault;
    None when the host has no dpkg.log to show it over."""
    if not os.path.isfile(DPKG_LOG):
        return None
    folder = stack.sb.path("noise")
    try:
        lines = Path(DPKG_LOG).read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    first, last = (fault_at - h * 3600.0 for h in opts.packages_hours)
    step = (last - first) / max(1, len(NOISE_PACKAGES) - 1)
    added = [_dpkg_line(first + i * step, pkg, "1.0") for i, pkg in enumerate(NOISE_PACKAGES)]
    merged = sorted(lines + added, key=lambda ln: ln[:19])  # dpkg.log is in time order
    out = folder / "dpkg.log"
    out.write_text("\n".join(merged) + "\n")
    os.chmod(out, 0o644)
    return out


def make_noise(stack: Stack, opts: WildOptions, fault_at: float, allow_host_effects: bool) -> list[tuple[str, str]]:
    """Put the noise in place; returns the files to show ddx over the host's own
    (``(source, target)`` for ``ddx_argv``)."""
    binds: list[tuple[str, str]] = []
    dpkg = _package_noise(stack, opts, fault_at)
    if dpkg is not None:
        binds.append((str(dpkg), DPKG_LOG))
    if allow_host_effects:
        if os.access("/dev/kmsg", os.W_OK):
            with open("/dev/kmsg", "w") as kmsg:
                kmsg.write(NOISE_KERNEL_LINE + "\n")
        if _cc() is not None:
            compile_and_crash(stack.sb, stack.sb.path("noise"), *NOISE_CRASHER)
    return binds


def ddx_argv(binds: list[tuple[str, str]], *args: str) -> list[str]:
    """``ddx ARGS`` as a whole process, seeing ``binds`` over the host's files (a private
    mount namespace) when there are any and ``unshare`` is there."""
    ddx = [sys.executable, "-m", "ddx", *args]
    unshare = shutil.which("unshare")
    if not binds or unshare is None:
        return ddx
    wrap = [unshare, "--mount", "--propagation", "private", sys.executable, "-m", "ddx.drill.nsexec"]
    for src, dst in binds:
        wrap += ["--bind", f"{src}:{dst}"]
    return [*wrap, "--", *ddx]
