"""The terminal view of an inventory: what runs here, how ddx knows, where it looks.

Everything in an inventory was read from the host: each line goes through
``printable`` (``ddx.render.safe``) before it is written.
"""

from __future__ import annotations

from ddx.inventory.model import Inventory, Service
from ddx.render.safe import printable
from ddx.render.terminal import clip
from ddx.units import duration, iso

__all__ = ["render_inventory"]

WIDTH = 100
_HOW = {
    "argv": "named on its command line",
    "env": "named by its environment",
    "default": "the program's default",
    "include": "included",
    "datadir": "in its data directory",
    "config": "named in its configuration",
    "open": "held open for writing",
    "recent": "written lately",
    "ddx.toml": "from ddx.toml",
}


def _service(s: Service, now: float | None) -> list[str]:
    head = f"{s.name}  pid {s.pid}" + (f" (+{len(s.pids) - 1} workers)" if len(s.pids) > 1 else "")
    if s.user:
        head += f", user {s.user}"
    if s.started is not None and now is not None:
        head += f", up {duration(now - s.started)}"
    if s.unit:
        head += f", {s.unit}"
    if s.version:
        head += f", {s.version}"
    lines = [head]
    if s.listens:
        lines.append(clip("  listens:  " + ", ".join(ln.label for ln in s.listens[:8]), WIDTH))
    for c in s.configs[:6]:
        why = _HOW.get(c.how, c.how) + (f" ({c.detail})" if c.detail and c.how != "include" else "")
        lines.append(clip(f"  config:   {c.path}  [{why}]" + (f"  NOT READ: {c.problem}" if c.problem else ""), WIDTH))
    if len(s.configs) > 6:
        lines.append(f"            and {len(s.configs) - 6} more configuration files")
    for lg in s.logs[:8]:
        label = "access:" if lg.kind == "access" else "log:"
        lines.append(clip(f"  {label:<10}{lg.path}  [{_HOW.get(lg.how, lg.how)}: {lg.detail}]", WIDTH))
    if s.journal:
        lines.append(f"  journal:  its output goes to the journal ({s.unit or 'systemd'})")
    if s.data_dirs:
        lines.append(clip("  data:     " + ", ".join(s.data_dirs[:4]), WIDTH))
    if s.filesystems:
        lines.append(clip("  on:       " + ", ".join(s.filesystems[:4]), WIDTH))
    for d in s.deps[:6]:
        lines.append(clip(f"  depends:  {d.address}  [{d.what} in {d.where}]", WIDTH))
    for n in s.notes[:4]:
        lines.append(clip(f"  note:     {n}", WIDTH))
    return [printable(ln) for ln in lines]


def render_inventory(inv: Inventory, now: float | None = None) -> str:
    out = [f"ddx inventory: {printable(inv.host)}: {len(inv.services)} service(s), found in {inv.seconds:.2f}s", ""]
    for s in inv.services:
        out += _service(s, now)
        out.append("")
    if inv.extra_logs:
        out.append(printable("logs named in ddx.toml: " + ", ".join(lg.path for lg in inv.extra_logs)))
    for p in inv.problems:
        out.append(printable(f"could not: {p}"))
    if not inv.services:
        out.append("no service found (no process holds a listening socket, or their owners cannot be read: "
                   "run as root to see other users' processes)")
    if now is not None:
        out.append(f"(at {iso(now)})")
    return "\n".join(out).rstrip() + "\n"
