"""Ordinary traffic for the sandbox stack: a steady, rate-limited stream of requests.

Not a stress tool (that would be wrk): a site's normal load, a few dozen
requests a second from a handful of clients, so that faults show up the way
they do in production (errors in the access log, slow requests) while the host
stays mostly idle. Run as its own process in the sandbox:

    python -m ddx.drill.load --url http://127.0.0.1:PORT --rate 20 --stats FILE

Every second it rewrites FILE (JSON) with totals per status and recent latency,
which the drill reads to know the stack is healthy before it injects a fault.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

__all__ = ["main"]


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.status: Counter[str] = Counter()
        self.recent: list[tuple[float, str, float]] = []  # (time, status, seconds)

    def add(self, status: str, seconds: float) -> None:
        now = time.time()
        with self.lock:
            self.status[status] += 1
            self.recent.append((now, status, seconds))
            cut = now - 10
            while self.recent and self.recent[0][0] < cut:
                self.recent.pop(0)

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            recent = list(self.recent)
            total = dict(self.status)
        lat = sorted(s for _t, _st, s in recent)
        ok = sum(1 for _t, st, _s in recent if st.startswith("2"))
        return {
            "time": time.time(),
            "total": total,
            "recent_requests": len(recent),
            "recent_ok": ok,
            "recent_p50_s": lat[len(lat) // 2] if lat else None,
            "recent_p95_s": lat[int(len(lat) * 0.95)] if lat else None,
        }


def _client(base: str, rate: float, stats: Stats, stop: threading.Event, seed: int) -> None:
    rnd = random.Random(seed)
    u = urlsplit(base)
    conn: http.client.HTTPConnection | None = None
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += rnd.expovariate(rate)
        delay = next_at - time.monotonic()
        if delay > 0:
            stop.wait(delay)
        elif delay < -5:  # far behind (the stack is stuck): do not burst to catch up
            next_at = time.monotonic()
        r = rnd.random()
        method, path, body = ("GET", "/", None)
        if r < 0.1:
            path = "/health"
        elif r < 0.13:
            method, path, body = "POST", "/upload", os.urandom(rnd.randrange(64, 512)).hex().encode()
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=10)
            conn.request(method, path, body=body, headers={"User-Agent": "ddx-drill-load/1"})
            resp = conn.getresponse()
            resp.read()
            status = str(resp.status)
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as exc:
            status = "error:" + type(exc).__name__
            if conn is not None:
                conn.close()
            conn = None
        stats.add(status, time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ddx.drill.load", description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="base URL of the site")
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second in all (default 20)")
    ap.add_argument("--clients", type=int, default=4, help="concurrent keep-alive clients (default 4)")
    ap.add_argument("--stats", required=True, help="JSON file rewritten every second")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    stats = Stats()
    stop = threading.Event()
    threads = [threading.Thread(target=_client, args=(args.url, args.rate / args.clients, stats, stop, args.seed + i),
                                daemon=True) for i in range(args.clients)]
    for t in threads:
        t.start()
    try:
        while True:
            tmp = args.stats + ".tmp"
            with open(tmp, "w") as f:
                json.dump(stats.snapshot(), f)
            os.replace(tmp, args.stats)
            time.sleep(1.0)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
