"""The inventory: one discovery pass over a host that every probe reads.

What runs here (services: program, master pid, user, start, version where
cheap), how each was started (its configuration as named on its command line or
in its environment, else the program's default, includes followed), the files it
logs to, its data directories and their filesystems, and the dependencies its
configuration names. ``ddx inventory`` shows it; bundles carry it.

- ``model``: the values (``Inventory``, ``Service``, ``LogFile``, ...) and their JSON;
- ``build``: ``build_inventory(host)``, the pass itself;
- ``programs``: what ddx knows of common servers' configuration;
- ``nginx``: nginx's configuration tree as its master was started with it;
- ``processes``, ``sockets``, ``files``: reading /proc, the socket table, files.
"""

from __future__ import annotations

from ddx.inventory.build import InventoryOptions, build_inventory, service_kind
from ddx.inventory.model import (
    ConfigFile,
    Dependency,
    Inventory,
    Listen,
    LogFile,
    Service,
    inventory_from_dict,
)

__all__ = [
    "ConfigFile",
    "Dependency",
    "Inventory",
    "InventoryOptions",
    "Listen",
    "LogFile",
    "Service",
    "build_inventory",
    "inventory_from_dict",
    "service_kind",
]
