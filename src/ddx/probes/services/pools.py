"""Worker pools: are all of an application server's workers busy, with requests queueing?

Sources, each optional, all judged by the same rule (``svc.worker_pool_saturated``
is present when busy/size >= ``busy_percent`` at *both* ends of the sampling
window, or when the pool's listen queue holds requests while every worker is busy):

- **Pre-fork managers seen in the process table** (gunicorn, uWSGI, php-fpm,
  puma, unicorn), found with ``procs``' pure functions (``find_managers``,
  ``countable_workers``; size from ``size_from_cmdline``, else the live
  workers). None of them says which worker is busy, so the probe *infers* it
  from the sockets: a synchronous worker serves one request at a time over a
  connection it accepted from the pool's listening socket, so at a sample a
  worker is busy when ``ss -tanp``/``ss -xanp`` shows it holding an accepted
  connection on that socket, or when it is running (state R/D) or used half a
  core over the window (a CPU-bound request). The listening socket's Recv-Q is
  the accept queue: requests no worker has taken yet. Two samples
  ``ctx.window`` apart must agree.
  Why not CPU alone: a worker waiting on a database or a slow upstream sleeps
  in state S and uses no CPU, exactly like an idle worker, so CPU/state would
  miss the commonest saturation (slow dependencies).
  Limits: asynchronous workers (gunicorn ``-k gevent/eventlet/uvicorn...``)
  hold many connections each, so for them only the listen queue is judged;
  gthread and ``--threads`` pools count connections against workers x threads
  (idle keep-alive connections count as busy); php-fpm's dynamic size is not on
  its command line, so without a status page only its listen queue is judged;
  a request that finished and one that arrived between the samples are not seen.
- **php-fpm status page** exposed through the web server (``status_urls``,
  e.g. ``http://127.0.0.1/fpm-status``): ``active``/``idle``/``total processes``,
  ``listen queue``, ``max children reached`` (a rise during the window means
  the pool hit ``pm.max_children``). FastCGI itself is not spoken.
- **uWSGI stats server** (``uwsgi_stats``: ``host:port`` or a socket path; with
  ``discover``, also the ``--stats`` address of each running uWSGI master):
  ``workers[].status`` busy/idle and ``listen_queue``.
- **Passenger**: ``passenger-status --show=xml`` when the program exists and a
  Passenger process runs: processes with sessions vs the pool's ``max``, and
  requests in the wait list.

Workers the manager no longer tracks are ``procs.orphaned_workers`` (the procs
probe); this probe only mentions their count in its evidence.

Network reads (status pages, uWSGI stats) happen in ``_fetch_http`` and
``_fetch_uwsgi`` only, on a live host; on a replayed bundle those sources are
reported as not recorded and the process-table source still works.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import ConfigError
from ddx.host import Host, offline_reason, parallel_map, redact_cmdline
from ddx.host.net import can_connect, open_connection
from ddx.inventory.processes import read_proc_table, read_stats
from ddx.inventory.sockets import read_sockets
from ddx.model import Evidence, Finding
from ddx.probes.base import NotApplicable, ProbeContext, probe
from ddx.probes.parsers.proctable import Proc, ProcTable, StatInfo, argv_words
from ddx.probes.parsers.sockets import Socket
from ddx.probes.system.workers import (
    DEFAULT_SESSION_PROGRAMS,
    DEFAULT_WORKER_TITLE,
    countable_workers,
    find_managers,
    find_orphans,
    size_from_cmdline,
)
from ddx.urls import mask_url

__all__ = [
    "FpmStatus",
    "PoolSample",
    "busy_from_sockets",
    "judge",
    "parse_fpm_status",
    "parse_passenger_xml",
    "parse_uwsgi_stats",
    "pools",
    "worker_mode",
]

FINDING = "svc.worker_pool_saturated"
POOL_PROGRAM = re.compile(r"^(?:gunicorn|uwsgi|php-fpm[\d.]*|puma|unicorn)$")
ASYNC_CLASSES = re.compile(r"(?i)gevent|eventlet|tornado|uvicorn|aiohttp|asyncio|async")
MAX_SAMPLES = 8


# --- pure parsers -------------------------------------------------------------------


def busy_from_sockets(socks: list[Socket], manager: int, workers: set[int]) -> tuple[set[int], int, int, list[str]]:
    """(workers holding an accepted connection, accepted connections, accept
    queue, listening addresses) for the pool of ``manager``."""
    members = workers | {manager}
    listening = [s for s in socks if s.state == "LISTEN" and s.pids & members]
    keys = {s.port_key for s in listening}
    busy: set[int] = set()
    conns = 0
    for s in socks:
        if s.state in ("ESTAB", "CLOSE-WAIT") and s.port_key in keys and s.pids & workers and s.local != "*":
            busy |= s.pids & workers
            conns += 1
    return busy, conns, sum(s.recv_q for s in listening), sorted({s.local for s in listening})


@dataclass(frozen=True)
class FpmStatus:
    pool: str
    manager: str
    listen_queue: int
    idle: int
    active: int
    total: int
    max_active: int
    max_children_reached: int


def parse_fpm_status(text: str) -> FpmStatus:
    """php-fpm's status page, plain (``active processes: 3``) or ``?json``."""
    text = text.strip()
    data: dict[str, Any]
    if text.startswith("{"):
        data = json.loads(text)
    else:
        data = {}
        for line in text.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                data[k.strip().lower()] = v.strip()
    try:
        def num(key: str) -> int:
            return int(str(data[key]).strip())

        return FpmStatus(
            pool=str(data.get("pool", "")),
            manager=str(data.get("process manager", "")),
            listen_queue=num("listen queue"),
            idle=num("idle processes"),
            active=num("active processes"),
            total=num("total processes"),
            max_active=num("max active processes"),
            max_children_reached=num("max children reached"),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a php-fpm status page (missing or bad field {exc})") from None


@dataclass(frozen=True)
class CountSample:
    """Busy and total workers of a pool as its own status reports them."""

    busy: int
    total: int
    queue: int


def parse_uwsgi_stats(text: str) -> CountSample:
    """The uWSGI stats server's JSON: ``workers[].status`` (``busy``, ``idle``,
    ``cheap`` for a worker not spawned, ``pause``, ``sig``) and ``listen_queue``."""
    try:
        data = json.loads(text)
        workers = data["workers"]
        statuses = [str(w.get("status", "")) for w in workers]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ValueError("not uWSGI stats JSON (no workers list)") from None
    live = [s for s in statuses if s != "cheap"]
    busy = sum(1 for s in live if s == "busy" or s.startswith("sig"))
    return CountSample(busy, len(live), int(data.get("listen_queue", 0) or 0))


def parse_passenger_xml(text: str) -> CountSample:
    """``passenger-status --show=xml``: processes with sessions against the
    pool's ``max``; requests waiting in the top-level and per-group wait lists."""
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise ValueError(f"not passenger-status XML: {exc}") from None
    mx = root.findtext("max")
    if mx is None or not mx.strip().isdigit():
        raise ValueError("not passenger-status XML (no <max>)")
    procs = root.findall(".//processes/process")
    busy = sum(1 for p in procs if int((p.findtext("sessions") or "0").strip() or 0) > 0)
    queue = int((root.findtext("get_wait_list_size") or "0").strip() or 0)
    queue += sum(int((g.findtext("get_wait_list_size") or "0").strip() or 0) for g in root.iter("group"))
    return CountSample(busy, max(int(mx), len(procs)), queue)


def worker_mode(p: Proc) -> tuple[str, int]:
    """("sync" | "threads" | "async", threads per worker) from a manager's
    command line: gunicorn ``-k``/``--worker-class`` and ``--threads``, uWSGI
    ``--threads``/``--async``/``--gevent``."""
    words = argv_words(p.argv)
    mode, threads = "sync", 1
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        key, _, val = w.partition("=")
        if key in ("-k", "--worker-class") and (val or nxt):
            cls = val or nxt
            if ASYNC_CLASSES.search(cls):
                mode = "async"
            elif "gthread" in cls:
                mode = "threads"
        elif key in ("--threads",) and (val or nxt).isdigit():
            threads = int(val or nxt)
        elif key in ("--async", "--gevent", "--ugreen"):
            mode = "async"
    if mode == "sync" and threads > 1:
        mode = "threads"
    return mode, threads


# --- the judgement --------------------------------------------------------------------


@dataclass
class PoolSample:
    """What one pool showed at the two ends of the window."""

    name: str
    size: int
    basis: str
    busy: list[int] = field(default_factory=list)  # busy workers at each sample
    queue: list[int] = field(default_factory=list)  # waiting requests at each sample
    queue_only: bool = False  # busy counts not meaningful: judge the queue alone
    note: str = ""
    rose: bool = False  # php-fpm: max children reached rose during the window


def judge(s: PoolSample, busy_share: float) -> bool:
    """Saturated: busy/size >= ``busy_share`` at every sample, or a queue
    with every worker busy (queue alone for ``queue_only`` pools; php-fpm's
    max-children counter rising)."""
    if not s.busy or s.size <= 0:
        return False
    if s.rose:
        return True
    if s.queue_only:
        return all(q > 0 for q in s.queue)
    full = [b >= s.size for b in s.busy]
    if any(q > 0 and f for q, f in zip(s.queue, full)):
        return True
    return all(b / s.size >= busy_share for b in s.busy)


def _row(s: PoolSample) -> str:
    busy = " -> ".join(str(b) for b in s.busy)
    queue = " -> ".join(str(q) for q in s.queue)
    what = f"listen queue {queue}" if s.queue_only else f"{busy} of {s.size} busy, queue {queue}"
    tail = f"; {s.note}" if s.note else ""
    return f"{s.name}: {what} (size: {s.basis}){tail}"


# --- network reads (the only socket code) ---------------------------------------------------


def _fetch_http(url: str, timeout: float, via: Any = None) -> str:
    """GET ``http://host[:port]/path`` (HTTP/1.0, no redirects); the body, or raise.
    Connected as the Host ``via`` (``ddx.host.net``; None: this machine)."""
    m = re.match(r"^http://(\[[^\]]+\]|[^/:]+)(?::(\d+))?(/[^\s]*)?$", url)
    if not m:
        raise ValueError("expected http://host[:port]/path (https status pages are not supported)")
    host, port, path = m.group(1).strip("[]"), int(m.group(2) or 80), m.group(3) or "/"
    with open_connection(via, (host, port), timeout) as s:
        s.settimeout(timeout)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: {m.group(1)}\r\nUser-Agent: ddx\r\n\r\n".encode())
        data = b""
        while len(data) < (1 << 20):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    sm = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", head)
    if not sm:
        raise ValueError("not an HTTP answer")
    if sm.group(1) != b"200":
        raise ValueError(f"HTTP {sm.group(1).decode()}")
    return body.decode("utf-8", errors="replace")


def _fetch_uwsgi(addr: str, timeout: float, via: Any = None) -> str:
    """Read the uWSGI stats server: it writes its JSON and closes."""
    if addr.startswith(("/", "@")):
        target: Any = "\0" + addr[1:] if addr.startswith("@") else addr
    else:
        host, _, port = addr.rpartition(":")
        if not port.isdigit() or not host:
            raise ValueError("expected host:port or a socket path")
        target = (host.strip("[]"), int(port))
    with open_connection(via, target, timeout) as s:
        s.settimeout(timeout)
        data = b""
        while len(data) < (4 << 20):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", errors="replace")


# --- the probe --------------------------------------------------------------------------


@dataclass
class _ProcPool:
    manager: Proc
    workers: set[int]
    sample: PoolSample
    cpu_mode: str


def _title(p: Proc, limit: int = 80) -> str:
    text = " ".join(" ".join(redact_cmdline(argv_words(p.argv))).split()) or f"[{p.comm}]"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _proc_pools(table: ProcTable) -> list[_ProcPool]:
    out = []
    managers = find_managers(table, DEFAULT_SESSION_PROGRAMS)
    orphans = find_orphans(table, managers, DEFAULT_SESSION_PROGRAMS, DEFAULT_WORKER_TITLE)
    for m in managers:
        if not POOL_PROGRAM.match(m.proc.program):
            continue
        parent = table.get(m.proc.ppid)
        if parent is not None and parent.program == m.proc.program:
            continue  # a worker that forks helpers of its own
        workers = countable_workers(m)
        if not workers:
            continue
        mode, threads = worker_mode(m.proc)
        sized = size_from_cmdline(m.proc)
        size, basis = sized if sized else (len(workers), "live workers")
        queue_only = mode == "async" or (sized is None and m.proc.program.startswith("php-fpm"))
        if mode == "threads":
            size, basis = size * threads, f"{basis} x {threads} threads"
        left = [o for o in orphans if o.manager is not None and o.manager.pid == m.proc.pid]
        notes = []
        if len(workers) != (sized[0] if sized else len(workers)):
            notes.append(f"{len(workers)} live workers")
        if left:
            notes.append(f"{len(left)} leftover worker(s) it no longer tracks (see procs.orphaned_workers)")
        name = f"{m.proc.program} pid {m.proc.pid} ({_title(m.proc)})"
        sample = PoolSample(name, size, basis, queue_only=queue_only, note="; ".join(notes))
        out.append(_ProcPool(m.proc, {w.pid for w in workers}, sample, mode))
    return out


def _read_socks(host: Host) -> list[Socket]:
    """Every TCP and unix socket with its owners (``ss``): the connections a pool's workers hold."""
    socks: list[Socket] = []
    for unix in (False, True):
        read = read_sockets(host, listening=False, unix=unix)
        if not read.source.startswith("ss") and read.problems:
            raise OSError("; ".join(read.problems))
        socks.extend(read.sockets)
    return socks


def _sample_procs(host: Host, pools: list[_ProcPool], stats_before: dict[int, StatInfo] | None, window: float) -> None:
    socks = _read_socks(host)
    pids = sorted({p for pool in pools for p in pool.workers})
    stats = read_stats(host, pids)
    from ddx.probes.parsers.proctable import clk_tck

    hz = clk_tck()
    for pool in pools:
        busy, conns, queue, _ = busy_from_sockets(socks, pool.manager.pid, pool.workers)
        for pid in pool.workers:
            st = stats.get(pid)
            if st is None:
                continue
            if st.state in ("R", "D"):
                busy.add(pid)
            elif stats_before is not None and pid in stats_before and window > 0:
                used = (st.utime + st.stime - stats_before[pid].utime - stats_before[pid].stime) / hz
                if used >= 0.5 * window:
                    busy.add(pid)
        n = conns if pool.cpu_mode == "threads" else len(busy)
        pool.sample.busy.append(min(n, pool.sample.size))
        pool.sample.queue.append(queue)


def _uwsgi_stats_addrs(table: ProcTable) -> list[str]:
    out = []
    for p in table.user_procs():
        if p.program != "uwsgi":
            continue
        words = argv_words(p.argv)
        for i, w in enumerate(words):
            key, _, val = w.partition("=")
            if key == "--stats" and (val or i + 1 < len(words)):
                out.append(val or words[i + 1])
    return list(dict.fromkeys(out))


@probe(
    "pools",
    findings=(FINDING,),
    timeout=4.0,
    options={
        # Share of a pool's workers busy at both ends of the window that counts as saturated:
        # php-fpm's and Passenger's own docs call a pool at its max "full"; 90% leaves one worker
        # of ten for the next request.
        "busy_percent": 90.0,
        # php-fpm status pages exposed through the web server (pm.status_path), e.g.
        # "http://127.0.0.1/fpm-status"; read at both ends of the window.
        "status_urls": [],
        # uWSGI stats servers ("127.0.0.1:1717" or a socket path); with discover, also the
        # --stats address of every running uWSGI.
        "uwsgi_stats": [],
        # Look for pools in the process table (gunicorn, uWSGI, php-fpm, puma, unicorn) and Passenger.
        "discover": True,
        # Per status-page or stats-server read.
        "request_timeout": 1.0,
    },
)
def pools(ctx: ProbeContext) -> list[Finding]:
    """Busy share and queue of application worker pools (gunicorn, uWSGI,
    php-fpm, Passenger) over the sampling window."""
    share = float(ctx.opt("busy_percent")) / 100.0
    if not 0 < share <= 1:
        raise ConfigError(f"[probe.pools] busy_percent: expected a percentage in (0, 100], got {share * 100:g}")
    urls = [str(u) for u in ctx.opt("status_urls")]
    bad = [u for u in urls if not u.startswith("http://")]
    if bad:
        raise ConfigError(f"[probe.pools] status_urls: {mask_url(bad[0])!r} is not an http:// URL")
    stats_addrs = [str(a) for a in ctx.opt("uwsgi_stats")]
    timeout = float(ctx.opt("request_timeout"))
    discover = bool(ctx.opt("discover"))

    proc_pools: list[_ProcPool] = []
    passenger = False
    problems: list[str] = []
    table: ProcTable | None = None
    if discover:
        table = read_proc_table(ctx.host).table
        proc_pools = _proc_pools(table)
        stats_addrs = list(dict.fromkeys(stats_addrs + _uwsgi_stats_addrs(table)))
        passenger = any(p.comm.startswith("Passenger") or p.program.startswith("Passenger") for p in table.user_procs())
    if not (proc_pools or urls or stats_addrs or passenger):
        raise NotApplicable("no worker pool found (gunicorn, uWSGI, php-fpm, puma, unicorn, Passenger)")
    live = can_connect(ctx.host)

    samples: list[PoolSample] = []
    before: dict[int, StatInfo] | None = None
    if proc_pools:
        pids = sorted({p for pool in proc_pools for p in pool.workers})
        before = read_stats(ctx.host, pids)
        try:
            _sample_procs(ctx.host, proc_pools, None, 0.0)
        except (OSError, LookupError, TimeoutError) as exc:
            problems.append(f"worker sockets not readable (ss: {exc}); process pools not judged")
            proc_pools = []

    remote = [("fpm", u) for u in urls] + [("uwsgi", a) for a in stats_addrs] if live else []
    if not live and (urls or stats_addrs):
        problems.append("status pages and uWSGI stats: " + offline_reason(ctx.host, "not recorded in bundles: not read"))
    first = _remote(ctx, remote, passenger, timeout, problems)
    ctx.host.sleep(ctx.window)
    if proc_pools:
        try:
            _sample_procs(ctx.host, proc_pools, before, ctx.window)
            samples.extend(p.sample for p in proc_pools)
        except (OSError, LookupError, TimeoutError) as exc:
            problems.append(f"second socket sample failed: {exc}")
    second = _remote(ctx, remote, passenger, timeout, [])
    samples.extend(_merge_remote(first, second))

    if not samples:
        raise RuntimeError("no pool could be measured: " + "; ".join(problems[:3]))
    full = [s for s in samples if judge(s, share)]
    note = (" Not measured: " + "; ".join(problems[:3]) + ".") if problems else ""
    if full:
        summary = f"{len(full)} of {len(samples)} worker pool(s) saturated through the {ctx.window:g}s window: {_row(full[0])}.{note}"
    else:
        summary = f"No saturated worker pool among {len(samples)} ({share * 100:g}% busy or a queue with all busy).{note}"
    worst = max(samples, key=lambda s: (min(s.busy) / s.size if s.busy and s.size else 0.0))
    ev = Evidence(
        "ss -tanp/-xanp + /proc/PID/stat of pool workers; status pages" if proc_pools else "pool status pages",
        summary,
        value=f"{min(worst.busy) if worst.busy else 0}/{worst.size}",
        threshold=f"{share * 100:g}%",
        unit="workers busy",
        samples=tuple(_row(s) for s in (full + [s for s in samples if s not in full])[:MAX_SAMPLES]),
        count=len(full),
    )
    return [ctx.finding(FINDING, bool(full), ev)]


def _remote(
    ctx: ProbeContext, remote: list[tuple[str, str]], passenger: bool, timeout: float, problems: list[str]
) -> dict[tuple[str, str], Any]:
    """One read of every status source: parsed value or the exception."""

    def read(job: tuple[str, str]) -> Any:
        kind, where = job
        if kind == "fpm":
            return parse_fpm_status(_fetch_http(where, timeout, ctx.host))
        return parse_uwsgi_stats(_fetch_uwsgi(where, timeout, ctx.host))

    got: dict[tuple[str, str], Any] = {}
    for job, res in zip(remote, parallel_map(read, remote, timeout + 0.5)):
        got[job] = res
        if isinstance(res, BaseException):
            problems.append(f"{mask_url(job[1])}: {res}")
    if passenger:
        try:
            r = ctx.host.run(["passenger-status", "--show=xml"], timeout=2.0)
            got[("passenger", "passenger-status")] = parse_passenger_xml(r.stdout) if r.returncode == 0 else (
                RuntimeError(f"exited {r.returncode}: {r.stderr.strip()[:100]}"))
        except (OSError, LookupError, TimeoutError, ValueError) as exc:
            got[("passenger", "passenger-status")] = exc
        if isinstance(got[("passenger", "passenger-status")], BaseException):
            problems.append(f"passenger-status: {got[('passenger', 'passenger-status')]}")
    return got


def _merge_remote(first: dict[tuple[str, str], Any], second: dict[tuple[str, str], Any]) -> list[PoolSample]:
    out = []
    for key, a in first.items():
        b = second.get(key)
        reads = [x for x in (a, b) if x is not None and not isinstance(x, BaseException)]
        if not reads:
            continue
        kind, where = key
        if kind == "fpm":
            fp = reads[-1]
            static = fp.manager == "static"
            s = PoolSample(
                f"php-fpm pool {fp.pool or '?'} ({mask_url(where)})",
                fp.total,
                f"total processes, pm {fp.manager or '?'}",
                busy=[r.active for r in reads],
                # requests waiting while no process is idle
                queue=[r.listen_queue if r.idle == 0 else 0 for r in reads],
                # a dynamic pool grows past its current total: only the queue and max_children say "full"
                queue_only=not static,
                note=f"max active {fp.max_active}, max children reached {fp.max_children_reached}",
                rose=len(reads) == 2 and reads[1].max_children_reached > reads[0].max_children_reached,
            )
        else:
            s = PoolSample(
                f"{'uWSGI' if kind == 'uwsgi' else 'Passenger'} ({mask_url(where)})",
                max(r.total for r in reads),
                "workers in its stats" if kind == "uwsgi" else "passenger max",
                busy=[r.busy for r in reads],
                queue=[r.queue for r in reads],
            )
        out.append(s)
    return out
