"""Web servers on this host as the inventory found them, with what their configuration says.

Shared by the ``http`` and ``tls`` probes: each web server (nginx, Apache,
HAProxy, ...) with its listening addresses, and for nginx the configuration
its master was started with (``-c``/``-p``, includes followed) read for access
logs, ``stub_status`` locations, TLS ports and worker capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

from ddx.host import Host
from ddx.inventory.model import Inventory, Listen
from ddx.inventory.nginx import DEFAULT_PREFIX, nginx_paths, read_nginx
from ddx.probes.parsers.httpparse import NginxInfo, nginx_info

__all__ = ["WEB_PROGRAMS", "WebServer", "hostport", "web_servers"]

WEB_PROGRAMS = ("nginx", "apache2", "httpd", "haproxy", "lighttpd", "caddy", "envoy", "traefik")


@dataclass(frozen=True)
class WebServer:
    """One web server instance on this host."""

    program: str
    pids: tuple[int, ...]
    listeners: tuple[Listen, ...]
    master: int | None = None
    conf: str = ""  # nginx: the main configuration file
    info: NginxInfo | None = None
    problems: tuple[str, ...] = ()  # what could not be read
    access_logs: tuple[str, ...] = ()  # the inventory's access logs of this server

    @property
    def label(self) -> str:
        ports = ",".join(str(p) for p in sorted({ln.port for ln in self.listeners if ln.port}))
        return f"{self.program}" + (f" pid {self.master}" if self.master else "") + (f" :{ports}" if ports else "")

    @property
    def workers(self) -> int:
        return len([p for p in self.pids if p != self.master])


def hostport(ln: Listen) -> str:
    """``127.0.0.1:80`` / ``[::1]:443``: where a client on this host reaches a listener."""
    h = ln.connect_host
    return f"[{h}]:{ln.port}" if ":" in h else f"{h}:{ln.port}"


def web_servers(host: Host, inv: Inventory) -> list[WebServer]:
    """The web servers of the inventory that listen on TCP, nginx's configuration read."""
    out: list[WebServer] = []
    for svc in inv.services:
        if svc.program not in WEB_PROGRAMS or svc.pid <= 0:
            continue
        tcp = tuple(ln for ln in svc.listens if ln.proto == "tcp" and ln.port)
        if not tcp:
            continue
        access = tuple(lg.path for lg in svc.logs if lg.kind == "access")
        if svc.program != "nginx":
            out.append(WebServer(svc.program, svc.pids, tcp, svc.pid, svc.config, None, (), access))
            continue
        conf, prefix, _how = nginx_paths(svc.argv)
        tree = read_nginx(host, svc.config or conf, prefix)
        info = nginx_info(tree.stmts, prefix) if tree.files else None
        if info is not None and not info.access_logs and access:
            info = NginxInfo(access, info.stub_status, info.tls_ports, info.worker_processes,
                             info.worker_processes_auto, info.worker_connections)
        elif info is not None and not info.access_logs:
            default = "/var/log/nginx/access.log" if prefix == DEFAULT_PREFIX else prefix + "logs/access.log"
            info = NginxInfo((default,), info.stub_status, info.tls_ports, info.worker_processes,
                             info.worker_processes_auto, info.worker_connections)
        out.append(WebServer("nginx", svc.pids, tcp, svc.pid, tree.main, info, tuple(tree.problems), access))
    return out
