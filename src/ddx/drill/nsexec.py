"""Run a command with some files replaced by others, for its eyes only.

    unshare --mount --propagation private python -m ddx.drill.nsexec \\
        --bind SANDBOX/noise/dpkg.log:/var/log/dpkg.log -- python -m ddx diagnose --json

Run inside a private mount namespace (``unshare --mount``): bind-mounts each
``SOURCE:TARGET`` (``mount --bind``, an argv, never a shell) and then becomes the
command (``exec``, so its resource usage is the command's own). The binds vanish
with the namespace when the command exits: nothing outside it ever sees them.
A wild drill uses it to show ddx a host's history (package installs hours ago)
without writing to the host's real logs.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print("usage: python -m ddx.drill.nsexec [--bind SRC:DST]... -- COMMAND...", file=sys.stderr)
        return 2
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1:]
    binds: list[tuple[str, str]] = []
    i = 0
    while i < len(opts):
        if opts[i] == "--bind" and i + 1 < len(opts) and ":" in opts[i + 1]:
            src, dst = opts[i + 1].split(":", 1)
            binds.append((src, dst))
            i += 2
        else:
            print(f"nsexec: unexpected argument {opts[i]!r}", file=sys.stderr)
            return 2
    if not command:
        print("nsexec: no command", file=sys.stderr)
        return 2
    for src, dst in binds:
        r = subprocess.run(["mount", "--bind", src, dst], capture_output=True, text=True, timeout=20)
        if r.returncode != 0:
            print(f"nsexec: mount --bind {src} {dst}: {r.stderr.strip()}", file=sys.stderr)
            return 2
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
