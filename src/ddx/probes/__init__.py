"""The probes, grouped by what they look at; each module registers with ``@probe``.

- ``system``: the host's resources and kernel (disk, memory, cpu, procs, fds,
  kernel, net, ports, clock);
- ``history``: what happened before ddx looked (changes, log files);
- ``services``: the services that run here (http, tls, memcached, redis,
  postgres, mysql, pools, drift, haproxy);
- ``parsers``: pure functions on text shared by the probes (no I/O).

``load_probes()`` imports the modules listed in ``PROBE_MODULES`` on first use
(so ``ddx --help`` and ``ddx diagnose --case`` never pay for them). A module
that fails to import (a missing dependency, a syntax error in a local edit) is
reported by ``load_probes()`` and the runner shows it as a failed probe, never
crashing the run: one broken probe must not hide the others.
"""

from __future__ import annotations

import importlib

__all__ = ["PROBE_MODULES", "import_probe_modules", "load_probes"]

# Module names under ddx.probes, in the order they are imported.
PROBE_MODULES: tuple[str, ...] = (
    "system.disk",
    "system.memory",
    "system.cpu",
    "system.procs",
    "system.fds",
    "system.memgrowth",
    "system.memholders",
    "system.kernel",
    "system.net",
    "system.ports",
    "system.clock",
    "history.changes",
    "history.logfiles",
    "services.http",
    "services.tls",
    "services.memcached",
    "services.redis",
    "services.postgres",
    "services.mysql",
    "services.pools",
    "services.drift",
    "services.haproxy",
)

_broken: dict[str, str] | None = None


def import_probe_modules(names: tuple[str, ...] | list[str], package: str = __name__) -> dict[str, str]:
    """Import ``package.NAME`` for each name; return the ones that failed to
    import, with the reason (a module that does not exist is such a failure)."""
    broken: dict[str, str] = {}
    for name in names:
        try:
            importlib.import_module(f"{package}.{name}")
        except Exception as exc:  # noqa: BLE001 - a broken module must not break ddx
            broken[name.rpartition(".")[2]] = f"import failed: {type(exc).__name__}: {exc}"
    return broken


def load_probes() -> dict[str, str]:
    """Import every probe module once. Returns the modules that failed to
    import, with the reason (empty when all is well)."""
    global _broken
    if _broken is None:
        _broken = import_probe_modules(PROBE_MODULES)
    return dict(_broken)
