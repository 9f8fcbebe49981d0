#!/usr/bin/env python3
"""Wall time and peak RSS of `ddx diagnose` as a whole process.

    .venv/bin/python bench/diagnose.py case     # --case on every example case (examples/), median of N runs each
    .venv/bin/python bench/diagnose.py host     # live diagnosis of this host, median of N runs
    .venv/bin/python bench/diagnose.py biglog   # live diagnosis with and without a 5 GB log configured

Each run is a fresh process (`.venv/bin/ddx ...`); peak RSS is the child's ru_maxrss.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DDX = str(ROOT / ".venv" / "bin" / "ddx")
EXAMPLES = ROOT / "examples"  # the seed incidents as example cases


def run_once(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one whole ddx process."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: exec ddx with output discarded
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execve(DDX, [DDX, *args], {**os.environ, **(env or {})})
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"ddx {' '.join(args)} failed with status {status}")
    return wall, usage.ru_maxrss / 1024


def measure(args: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    samples = [run_once(args, env) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


def bench_case(runs: int) -> None:
    print(f"ddx diagnose --case FILE --json, median of {runs} runs per case")
    walls = []
    for case in sorted(EXAMPLES.glob("*.yaml")):
        wall, rss = measure(["diagnose", "--case", str(case), "--json"], runs)
        walls.append(wall)
        print(f"  {case.name:<34} {wall:6.3f} s  peak RSS {rss:5.1f} MiB")
    print(f"  median over cases: {statistics.median(walls):.3f} s (target < 0.4 s)")


def bench_host(runs: int) -> None:
    wall, rss = measure(["diagnose", "--json"], runs)
    print(f"ddx diagnose --json on this host: median {wall:.3f} s of {runs} runs, peak RSS {rss:.1f} MiB "
          "(targets <= 3 s, <= 80 MiB)")


def bench_biglog(runs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="ddx-bench-") as tmp:
        log = Path(tmp) / "big.log"
        with open(log, "wb") as f:
            f.truncate(5 << 30)  # a 5 GB sparse file ...
            f.seek(0, os.SEEK_END)
            line = time.strftime("%Y-%m-%dT%H:%M:%S") + " app[1]: INFO request served in 12 ms\n"
            f.write(line.encode() * 2000)  # ... ending with real recent lines
        small = Path(tmp) / "small.log"
        small.write_text(line * 2000)
        for name, path in (("small log", small), ("5 GB log", log)):
            cfg = Path(tmp) / f"{name[0]}.toml"
            cfg.write_text(f'[probe.logfiles]\npaths = ["{path}"]\n')
            wall, rss = measure(["diagnose", "--json", "--config", str(cfg)], runs)
            print(f"ddx diagnose with a {name:<9}: median {wall:.3f} s of {runs} runs, peak RSS {rss:.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["case", "host", "biglog", "all"])
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    if a.what in ("case", "all"):
        bench_case(a.runs)
    if a.what in ("host", "all"):
        bench_host(a.runs)
    if a.what in ("biglog", "all"):
        bench_biglog(a.runs)


if __name__ == "__main__":
    main()
