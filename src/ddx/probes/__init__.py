"""The probes: one module per domain, each registering with ``@probe``.

``load_probes()`` imports the modules listed in ``PROBE_MODULES`` on first
use (so ``ddx --help`` and ``ddx diagnose --case`` never pay for them). A module
that does not exist is skipped; a module that fails to import is reported by
``load_probes()`` and the runner shows it as a failed probe, never crashing the
run: one broken probe must not hide the others.
"""

from __future__ import annotations

import importlib

__all__ = ["PROBE_MODULES", "import_probe_modules", "load_probes"]

# Module names under ddx.probes, in the order they are imported.
PROBE_MODULES: tuple[str, ...] = (
    "disk",
    "memory",
    "cpu",
    "procs",
    "fds",
    "kernel",
    "net",
    "clock",
    "changes",
    "logfiles",
    "http",
    "tls",
    "memcached",
    "redis",
    "postgres",
    "mysql",
    "pools",
    "drift",
    "haproxy",
)

_broken: dict[str, str] | None = None


def import_probe_modules(names: tuple[str, ...] | list[str], package: str = __name__) -> dict[str, str]:
    """Import ``package.NAME`` for each name; skip the ones that do not exist;
    return the ones that failed to import, with the reason."""
    broken: dict[str, str] = {}
    for name in names:
        full = f"{package}.{name}"
        try:
            importlib.import_module(full)
        except ModuleNotFoundError as exc:
            if exc.name == full:  # not written (yet): nothing to run
                continue
            broken[name] = f"import failed: {type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a broken module must not break ddx
            broken[name] = f"import failed: {type(exc).__name__}: {exc}"
    return broken


def load_probes() -> dict[str, str]:
    """Import every probe module once. Returns the modules that failed to
    import, with the reason (empty when all is well)."""
    global _broken
    if _broken is None:
        _broken = import_probe_modules(PROBE_MODULES)
    return dict(_broken)
