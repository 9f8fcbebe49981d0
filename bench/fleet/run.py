#!/usr/bin/env python3
"""What `ddx fleet` and `ddx diagnose --prometheus` cost on a fleet of 1,000 instances.

    .venv/bin/python bench/fleet/run.py [--instances 1000] [--runs 5] [--interval 5s] [--window 5m] [--warm 300]

Starts, in a temporary folder on loopback: one simulator process serving node_exporter's
text format for N simulated hosts, each on its own port (asyncio, ports chosen by the
kernel: bind port 0), and a real Prometheus (Debian package) scraping all N as targets of
job ``sim``. One host has a fault: its root filesystem has 0 bytes free. Once every
target has a few samples and ``--warm`` seconds of scraping have passed, it runs, as whole processes, `ddx fleet --job sim --json` and
`ddx diagnose --prometheus --instance FAULTY --json` ``--runs`` times each, checks that
the faulty host is ranked first and diagnosed as a full disk on that host alone, and prints
the median and maximum wall time of each with the command. Stops everything at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from promstack import PromStack, SimHost, missing_tools  # noqa: E402

TARGET_FILE = "targets.json"


# --- the simulator (a child process) ---------------------------------------------------------------

async def _serve(count: int, faulty: int, out: Path) -> None:
    hosts = [SimHost(fs_avail=0 if i == faulty else 60e9 - (i % 7) * 1e9, busy=0.1 + (i % 5) * 0.02)
             for i in range(count)]

    def handler(sim: SimHost):  # type: ignore[no-untyped-def]
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:  # keep-alive: Prometheus reuses its connection
                    head = await reader.readuntil(b"\r\n\r\n")
                    if not head:
                        break
                    body = sim.text().encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()
        return handle

    servers = [await asyncio.start_server(handler(h), "127.0.0.1", 0, backlog=16) for h in hosts]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(ports))
    tmp.rename(out)
    await asyncio.Event().wait()


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the benchmark ------------------------------------------------------------------------------

def _timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    took = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(argv)}\n{r.stderr}")
    return took, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--interval", default="5s", help="Prometheus scrape interval (default 5s)")
    ap.add_argument("--window", default="5m", help="the incident window of the commands (default 5m)")
    ap.add_argument("--warm", type=float, default=300.0,
                    help="seconds of scraping before the runs, so that the window holds data (default 300)")
    ap.add_argument("--serve", metavar="FILE", help=argparse.SUPPRESS)
    ap.add_argument("--faulty", type=int, default=-1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    _raise_fd_limit()
    if args.serve:
        asyncio.run(_serve(args.instances, args.faulty, Path(args.serve)))
        return
    missing = missing_tools()
    if missing:
        raise SystemExit("missing: " + ", ".join(missing))
    faulty = args.instances * 2 // 3
    load0 = os.getloadavg()[0]  # other work on the machine shows in the times
    with tempfile.TemporaryDirectory(prefix="ddx-fleet-bench-") as tmp:
        root = Path(tmp)
        stack = PromStack(root, args.interval)
        try:
            ports_file = root / TARGET_FILE
            sim = stack.spawn("simulator", [sys.executable, __file__, "--instances", str(args.instances),
                                            "--faulty", str(faulty), "--serve", str(ports_file)])
            deadline = time.monotonic() + 120
            while not ports_file.exists():
                if sim.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"simulator did not start: {stack.log('simulator')}")
                time.sleep(0.2)
            ports = json.loads(ports_file.read_text())
            for p in ports:
                stack.target("sim", f"127.0.0.1:{p}")
            url = stack.prometheus()
            t0 = time.monotonic()
            stack.wait_until('count_over_time(up{job="sim"}[1m]) >= 4 and up{job="sim"} == 1',
                             "every target scraped 4 times", timeout=600, count=len(ports))
            ready = time.monotonic() - t0
            time.sleep(max(0.0, args.warm - ready))
            series = stack.query('count({job="sim"})')[0]["value"][1]
            faulty_addr = f"127.0.0.1:{ports[faulty]}"
            ddx = [sys.executable, "-m", "ddx"]
            fleet_cmd = [*ddx, "fleet", "--prometheus", url, "--job", "sim", "--window", args.window, "--json"]
            one_cmd = [*ddx, "diagnose", "--prometheus", url, "--instance", faulty_addr, "--window", args.window,
                       "--json"]
            from ddx.prom.client import PromClient
            from ddx.prom.instance import read_table, selector

            fleet_t, one_t, table_t = [], [], []
            for _ in range(args.runs):
                t1 = time.perf_counter()
                read_table(PromClient(url), selector(job="sim"), args.window)
                table_t.append(time.perf_counter() - t1)
                took, r = _timed(fleet_cmd)
                fleet_t.append(took)
                out = json.loads(r.stdout)
                assert len(out) == len(ports), (len(out), len(ports))
                assert out[0]["instance"] == faulty_addr and out[0]["cause"] == "disk-full", out[0]
                took, r = _timed(one_cmd)
                one_t.append(took)
                d = json.loads(r.stdout)
                assert d["hypotheses"][0]["id"] == "disk-full"
                assert {f["id"]: f["state"] for f in d["findings"]}["scope.single_host"] == "present"
        finally:
            stack.close()

    def show(cmd: list[str]) -> str:
        return " ".join(["ddx", *cmd[3:]]).replace(url, "URL")

    result = {
        "instances": len(ports), "series": int(series), "scrape_interval": args.interval, "window": args.window,
        "runs": args.runs, "ready_seconds": round(ready, 1), "scraped_seconds_before_runs": round(max(ready, args.warm)),
        "fleet": {"command": show(fleet_cmd), "median_s": round(statistics.median(fleet_t), 2),
                  "max_s": round(max(fleet_t), 2)},
        "fleet_queries_only": {"what": "ddx.prom.instance.read_table for the job, in-process (the PromQL part)",
                               "median_s": round(statistics.median(table_t), 2), "max_s": round(max(table_t), 2)},
        "one_instance": {"command": show(one_cmd).replace(faulty_addr, "FAULTY"),
                         "median_s": round(statistics.median(one_t), 2), "max_s": round(max(one_t), 2)},
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "load_average_1m_before_after": [round(load0, 1), round(os.getloadavg()[0], 1)],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
