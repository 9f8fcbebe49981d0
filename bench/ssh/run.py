"""How long `ddx diagnose --ssh` takes: one remote host, and many in parallel.

The remote hosts are aliases in a generated ssh config, all pointing at sshd
instances on 127.0.0.1 that this script starts (keys, configs and known_hosts in
a tmp dir, the test helper ``tests/ssh/sshserver.py``; MaxStartups raised so
every alias gets its own connection). Each alias is its own SSH connection and
its own agent, so the "remote" work runs on this machine too: the figures are
an upper bound of what a real fleet costs the machine running ddx.

    sudo .venv/bin/python bench/ssh/run.py [--hosts 50] [--repeats 5]

Needs root (the test sshd logs in as root) and openssh-server/openssh-client.
Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "ssh"))

from sshserver import Sshd  # noqa: E402

TIMEOUTS: list[int] = []  # probes that ran out of time, per run
CPU: dict[str, list[float]] = {"local": [], "remote": []}  # CPU seconds per host, per run
SERVERS: list[Sshd] = []


def _reaped_cpu(pid: int) -> float:
    """CPU seconds of the reaped descendants of ``pid`` (the sshd listener's
    sessions: sshd, the agents, the commands they ran)."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")


def timed(argv: list[str], n_hosts: int) -> float:
    c0 = os.times()
    r0 = sum(_reaped_cpu(s.proc.pid) for s in SERVERS if s.proc is not None)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    took = time.monotonic() - t0
    c1 = os.times()
    time.sleep(0.5)  # the sessions end and are reaped
    r1 = sum(_reaped_cpu(s.proc.pid) for s in SERVERS if s.proc is not None)
    CPU["local"].append((c1.children_user + c1.children_system - c0.children_user - c0.children_system) / n_hosts)
    CPU["remote"].append((r1 - r0) / n_hosts)
    if r.returncode not in (0, 2) or not r.stdout:
        raise SystemExit(f"failed ({r.returncode}): {r.stderr[-800:]}")
    out = json.loads(r.stdout)
    results = out if isinstance(out, list) else [out]
    bad = [o for o in results if "error" in o]
    if len(results) != n_hosts or bad:
        raise SystemExit(f"expected {n_hosts} diagnoses, got {len(results)}; errors: {bad[:3]}")
    TIMEOUTS.append(sum(p["status"] == "timeout" for o in results for p in o["probes"]))
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=50, help="hosts in the parallel run (default 50)")
    ap.add_argument("--servers", type=int, default=2, help="sshd instances the aliases are spread over (default 2)")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each measurement (default 5)")
    ap.add_argument("--connect-timeout", type=float, default=10.0,
                    help="ddx --connect-timeout (default 10; a saturated machine needs more for the last hosts)")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ddx-bench-ssh-"))
    servers = [Sshd(folder / f"sshd{i}", max_startups=args.hosts + 10) for i in range(args.servers)]
    aliases = [f"h{i:03d}" for i in range(args.hosts)]
    config = folder / "ssh_config"
    config.write_text("".join(servers[i % len(servers)].client_block(a) for i, a in enumerate(aliases)))
    ddx = [sys.executable, "-m", "ddx", "diagnose", "--json", "--ssh-config", str(config),
           "--connect-timeout", str(args.connect_timeout)]
    SERVERS.extend(servers)
    try:
        for s in servers:
            s.start()
        timed([*ddx, "--ssh", aliases[0]], 1)  # warm-up: caches, known_hosts
        one = [timed([*ddx, "--ssh", aliases[0]], 1) for _ in range(args.repeats)]
        one_timeouts = sum(TIMEOUTS[1:])
        one_cpu = {k: statistics.median(v[1:]) for k, v in CPU.items()}
        del TIMEOUTS[:]
        for v in CPU.values():
            del v[:]
        many_argv = [*ddx, *(x for a in aliases for x in ("--ssh", a))]
        many = [timed(many_argv, args.hosts) for _ in range(max(1, args.repeats // 2 + 1))]
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(folder, ignore_errors=True)
    cpus = os.cpu_count()
    print(f"ddx diagnose --ssh, sshd on 127.0.0.1 ({cpus} CPUs; the remote side runs here too)")
    many_cpu = {k: statistics.median(v) for k, v in CPU.items()}
    print("| run | runs | wall median | wall max | CPU s per host: ddx + ssh here / sshd + agent + commands there "
          "| probes timed out (all runs) |")
    print("|---|---|---|---|---|---|")
    print(f"| 1 host | {len(one)} | {statistics.median(one):.2f} s | {max(one):.2f} s "
          f"| {one_cpu['local']:.2f} / {one_cpu['remote']:.2f} | {one_timeouts} |")
    print(f"| {args.hosts} hosts in parallel | {len(many)} | {statistics.median(many):.2f} s | {max(many):.2f} s "
          f"| {many_cpu['local']:.2f} / {many_cpu['remote']:.2f} | {sum(TIMEOUTS)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
