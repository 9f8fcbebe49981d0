"""Reading the socket table through a Host: ``ss`` when it runs, else ``/proc/net``.

``read_sockets`` is the one place that asks the host for sockets; the parsing is
``ddx.probes.parsers.sockets``. Without ``ss`` (a minimal container) the owners
of sockets come from matching the inodes of ``/proc/net/*`` with the
``socket:[INODE]`` links of ``/proc/PID/fd``, bounded by ``max_links``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ddx.host import Host
from ddx.probes.parsers.sockets import (
    Owner,
    Socket,
    parse_proc_net_tcp,
    parse_proc_net_unix,
    parse_ss,
)

__all__ = ["SocketRead", "read_sockets"]

SS_TIMEOUT = 2.0


@dataclass(frozen=True)
class SocketRead:
    sockets: tuple[Socket, ...]
    source: str  # "ss -Hltnp", "/proc/net/tcp+/proc/net/tcp6", ...
    problems: tuple[str, ...] = ()


def _ss_flags(listening: bool, unix: bool, owners: bool) -> str:
    return "-H" + ("l" if listening else "a") + ("x" if unix else "tn") + ("p" if owners else "")


def read_sockets(
    host: Host, *, listening: bool = True, unix: bool = False, owners: bool = True, max_links: int = 50000
) -> SocketRead:
    """TCP (or, with ``unix``, unix) sockets of this host: only listening ones,
    or all with ``listening=False``; with their owning processes when ``owners``."""
    flags = _ss_flags(listening, unix, owners)
    problems: list[str] = []
    try:
        r = host.run(["ss", flags], timeout=SS_TIMEOUT)
        if r.returncode == 0:
            return SocketRead(tuple(parse_ss(r.stdout, "u_str" if unix else "tcp")), f"ss {flags}")
        problems.append(f"ss {flags} exited {r.returncode}: {r.stderr.strip()[:80]}")
    except FileNotFoundError:
        problems.append("ss is not installed")
    except (OSError, TimeoutError, LookupError) as exc:
        problems.append(f"ss {flags}: {exc}")
    socks: list[Socket] = []
    read: list[str] = []
    paths = (("/proc/net/unix", "u_str"),) if unix else (("/proc/net/tcp", "tcp"), ("/proc/net/tcp6", "tcp"))
    for path, netid in paths:
        try:
            text = host.read_text(path)
        except (OSError, LookupError, TimeoutError):
            continue
        read.append(path)
        socks += parse_proc_net_unix(text) if unix else parse_proc_net_tcp(text, netid)
    if listening:
        socks = [s for s in socks if s.listening]
    if owners and socks:
        socks = _with_owners(host, socks, max_links)
    return SocketRead(tuple(socks), "+".join(read) or "nothing readable", tuple(problems))


def _with_owners(host: Host, socks: list[Socket], max_links: int) -> list[Socket]:
    """Owners from ``/proc/PID/fd`` links ``socket:[INODE]``."""
    wanted = {s.inode for s in socks if s.inode}
    found: dict[int, list[Owner]] = {}
    try:
        pids = [p for p in host.listdir("/proc") if p.isdigit()]
    except (OSError, LookupError, TimeoutError):
        return socks
    links = 0
    for pid in pids:
        if links >= max_links:
            break
        try:
            fds = host.listdir(f"/proc/{pid}/fd")
        except (OSError, LookupError, TimeoutError):
            continue
        comm = ""
        for fd in fds:
            links += 1
            try:
                link = host.readlink(f"/proc/{pid}/fd/{fd}")
            except (OSError, LookupError, TimeoutError):
                continue
            if not link.startswith("socket:[") or not link[8:-1].isdigit():
                continue
            inode = int(link[8:-1])
            if inode not in wanted:
                continue
            if not comm:
                try:
                    comm = host.read_text(f"/proc/{pid}/comm", max_bytes=64).strip()
                except (OSError, LookupError, TimeoutError):
                    comm = "?"
            found.setdefault(inode, []).append(Owner(comm, int(pid), int(fd) if fd.isdigit() else -1))
    return [replace(s, owners=tuple(found.get(s.inode or -1, ()))) for s in socks]
