#!/usr/bin/env python3
"""The web pages with 10,000 incidents in the store: how long the server takes, how heavy the pages are.

    .venv/bin/python bench/web/run.py [--incidents 10000] [--requests 50]

Fills a fresh store with incidents like those ddx watch records (each with two diagnoses of a real
case, its timeline), serves the real app with uvicorn on loopback, and asks for the incident list
(first page, and filtered) and for incident pages. Server time is the ``Server-Timing`` the app
reports (the handler and the template, without the network); page weight is the HTML plus the
stylesheet and the script it loads. Targets (issue 14): median <= 100 ms, weight <= 200 KB.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))

TOKEN = "bench-token-0123456789abcdef"


def fill(path: str, n: int) -> list[str]:
    from ddx.api import diagnose_case
    from ddx.render.jsonout import to_dict
    from ddx.watch.incidents import IncidentBook
    from ddx.watch.store import Store

    reports = [to_dict(diagnose_case(str(p))[0].diagnosis) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    store = Store(path)
    rng = random.Random(7)
    t = [time.time() - n * 600.0]

    def clock() -> float:
        return t[0]

    book = IncidentBook(store, clock=clock)
    ids = []
    for i in range(n):
        t[0] += 600.0
        inc, _ = book.open(f"watch:web-{i % 40}:{i}", "watch", f"web-{i % 40}", f"incident {i}: symptoms",
                           symptoms=["disk.used_pct:/var", "mem.available_pct"])
        book.diagnosis(inc, rng.choice(reports))
        t[0] += 30.0
        book.diagnosis(inc, rng.choice(reports))
        if i < n - 20:
            t[0] += 60.0
            book.resolve(inc, "every symptom cleared")
        ids.append(inc.id)
    store.close()
    return ids


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--incidents", type=int, default=10_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import uvicorn

    from ddx.watch.incidents import IncidentBook
    from ddx.watch.store import Store
    from ddx.web.app import create_app
    from ddx.web.settings import ServeSettings

    folder = tempfile.mkdtemp(prefix="ddx-bench-web-")
    db = str(Path(folder) / "ddx.db")
    t0 = time.monotonic()
    ids = fill(db, args.incidents)
    filled = time.monotonic() - t0
    store = Store(db)
    app = create_app(IncidentBook(store), token=TOKEN, diagnose=lambda targets=None: {}, settings=ServeSettings())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)

    def get(path: str) -> tuple[float, int, bytes]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=30) as r:
            body = r.read()
            timing = r.headers.get("Server-Timing", "")
        ms = float(timing.split("dur=")[1]) if "dur=" in timing else float("nan")
        return ms, r.status, body

    rng = random.Random(1)
    pages = {
        "incident list": lambda: "/",
        "incident list, filtered": lambda: f"/?status=resolved&host=web-{rng.randrange(40)}&hours=720",
        "incident page": lambda: f"/incidents/{rng.choice(ids)}",
    }
    static = sum(len(get(f"/static/{n}")[2]) for n in ("style.css", "app.js"))
    results = {}
    try:
        for name, path in pages.items():
            get(path())  # warm
            times, sizes = [], []
            for _ in range(args.requests):
                ms, status, body = get(path())
                assert status == 200, (name, status)
                times.append(ms)
                sizes.append(len(body) + static)
            results[name] = {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1),
                             "weight_kb": round(max(sizes) / 1024, 1)}
    finally:
        server.should_exit = True
        thread.join(10)
        store.close()
    if args.json:
        print(json.dumps({"incidents": args.incidents, "fill_s": round(filled, 1), "pages": results}, indent=1))
    else:
        print(f"{args.incidents} incidents in the store (filled in {filled:.0f} s); {args.requests} requests each")
        print(f"{'page':26} {'median ms':>10} {'max ms':>8} {'weight KB':>10}")
        for name, r in results.items():
            print(f"{name:26} {r['median_ms']:>10} {r['max_ms']:>8} {r['weight_kb']:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
