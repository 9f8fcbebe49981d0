"""ddx.toml: optional settings. Zero configuration is the normal case.

Search order: ``--config FILE``, ``$DDX_CONFIG``, ``./ddx.toml``,
``/etc/ddx/ddx.toml``. A file named by ``--config`` or ``$DDX_CONFIG`` must
exist; the other two are used when present. Schema (every key in
``docs/config.md``)::

    [ddx]
    timeout = 2.0        # seconds per probe
    budget = 10.0        # seconds for the whole run
    window = 1.0         # sampling window for rates, seconds
    disable = ["net"]    # probes not to run

    [probe.disk]         # keys: the probe's declared options, plus timeout
    space_low_percent = 85

An invalid file is one ``ConfigError`` (exit 2) naming the file, the table and
the key, with a close match when the key looks mistyped. The file is at
most ``MAX_CONFIG_BYTES``, UTF-8; numbers are finite, not negative, and within
the ranges ``check_number`` enforces (percentages up to 100, seconds of a
timeout up to ``MAX_SECONDS``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ddx.errors import ConfigError, UsageError
from ddx.probes.base import ProbeSpec

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WINDOW",
    "MAX_SECONDS",
    "Config",
    "check_number",
    "find_config",
    "inventory_options",
    "load_config",
    "probe_options",
    "probe_timeout",
    "render_config_doc",
    "with_targets",
]

DEFAULT_TIMEOUT = 2.0  # per probe: enough for /proc reads and a few commands on a loaded host
DEFAULT_BUDGET = 10.0  # whole run: a person waiting at a terminal during an incident
DEFAULT_WINDOW = 1.0  # sampling window: long enough for counter deltas, short enough to wait for
MAX_SECONDS = 3600.0  # a timeout, budget or window: an hour is past any use at an incident
MAX_CONFIG_BYTES = 1 << 20  # a settings file: real ones are a few KB
_YEAR = 366 * 86400.0
# Keys of durations, by their ending, and seconds per unit.
_DURATION_UNITS = (("_ms", 0.001), ("_s", 1.0), ("_seconds", 1.0), ("_minutes", 60.0), ("_hours", 3600.0),
                   ("_days", 86400.0))

SEARCH_PATHS = ("./ddx.toml", "/etc/ddx/ddx.toml")
# Tables of the daemon and the web server, validated by ddx.watch.settings when they start.
SERVICE_TABLES = ("watch", "serve", "notify", "alertmanager")
TABLES = ("ddx", "probe", "inventory", *SERVICE_TABLES)

_DDX_KEYS: dict[str, str] = {
    "timeout": "seconds each probe may take; `[probe.NAME] timeout` overrides it for one probe, `--probe-timeout` overrides both",
    "budget": "seconds the whole run may take (default 10)",
    "window": "sampling window for rates in seconds (default 1)",
    "disable": "list of probe names not to run",
}


@dataclass(frozen=True)
class Config:
    """The settings in force. ``probes`` holds the ``[probe.NAME]`` tables as
    written (validated); ``path`` is the file they came from, or None."""

    path: str | None = None
    timeout: float | None = None  # None: each probe's declared timeout
    budget: float = DEFAULT_BUDGET
    window: float = DEFAULT_WINDOW
    disable: tuple[str, ...] = ()
    probes: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    inventory: Mapping[str, Any] = field(default_factory=dict, hash=False)  # the [inventory] table, validated
    # [watch], [serve], [notify.*], [alertmanager] as written: their own modules validate them
    # (ddx.watch.settings), so that `ddx diagnose` does not import what only the daemon needs.
    service: Mapping[str, Any] = field(default_factory=dict, hash=False)


def find_config(path: str | None) -> str | None:
    """The config file to use, following the search order, or None."""
    if path:
        return path
    env = os.environ.get("DDX_CONFIG")
    if env:
        return env
    for p in SEARCH_PATHS:
        if os.path.isfile(p):
            return p
    return None


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if choices:
        return f" (known: {', '.join(sorted(choices))})"
    return ""


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _check_type(default: Any, value: Any) -> tuple[bool, Any]:
    """Does ``value`` fit where ``default`` is the declared default? Returns
    (ok, value converted: int to float where a float is expected)."""
    if default is None:
        return True, value
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return math.isfinite(value), float(value)
        return False, value
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(default, str):
        return isinstance(value, str), value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, list):
            return False, value
        if default:
            proto = default[0]
            out = []
            for item in value:
                if isinstance(proto, dict) or isinstance(item, dict):
                    if not isinstance(item, dict):
                        return False, value
                    out.append(item)
                    continue
                ok, conv = _check_type(proto, item)
                if not ok:
                    return False, value
                out.append(conv)
            return True, out if isinstance(default, list) else tuple(out)
        # No default element to compare with: a list of strings or of tables.
        if all(isinstance(x, str) for x in value) or all(isinstance(x, dict) for x in value):
            return True, value if isinstance(default, list) else tuple(value)
        return False, value
    if isinstance(default, dict):
        return isinstance(value, dict), value
    return isinstance(value, type(default)), value


def _positive(where: str, key: str, value: Any, *, zero_ok: bool = False, most: float = MAX_SECONDS) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        got = "not a finite number" if isinstance(value, float) else _type_name(value)
        raise ConfigError(f"{where} key {_shown(key)}: expected a number of seconds, got {got}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ConfigError(f"{where} key {_shown(key)}: must be {'>= 0' if zero_ok else '> 0'}, got {value}")
    if value > most:
        raise ConfigError(f"{where} key {_shown(key)}: must be at most {most:g}, got {value}")
    return float(value)


def _number_limit(key: str) -> tuple[float, str] | None:
    """The largest value a numeric option may take, by its name, and the unit
    said in the error; None when only "not negative" applies."""
    if key.endswith("_percent"):
        return 100.0, ""
    if key.endswith(("_ratio", "_share")):
        return 1.0, ""
    if key == "since":  # epoch seconds: up to the year 9999
        return 253402300799.0, " (epoch seconds)"
    for ending, per in _DURATION_UNITS:
        if key.endswith(ending) or key == ending[1:]:
            most = MAX_SECONDS if "timeout" in key else 10 * _YEAR
            return most / per, f" ({ending[1:]})"
    if "timeout" in key:
        return MAX_SECONDS, " (seconds)"
    return None


def check_number(where: str, key: str, value: float) -> None:
    """Reject a numeric option out of range: every option of ddx and its probes
    is 0 or more; percentages go to 100, ratios and shares to 1, a timeout to
    ``MAX_SECONDS``, other durations to ten years."""
    if value < 0:
        raise ConfigError(f"{where} key {_shown(key)}: must be 0 or more, got {value}")
    limit = _number_limit(key)
    if limit is not None and value > limit[0]:
        raise ConfigError(f"{where} key {_shown(key)}: must be at most {limit[0]:g}{limit[1]}, got {value}")


def load_config(path: str | None) -> Config:
    """Read and validate the config (``path`` as given by ``--config``, or the
    search order). No file anywhere: the defaults."""
    from ddx.probes import load_probes
    from ddx.probes.base import registry

    if path is not None and not path.strip():
        raise ConfigError("--config: an empty file name")
    file = find_config(path)
    if file is None:
        return Config()
    data = _read_toml(file)

    load_probes()
    known_probes = sorted(registry)
    for table in data:
        if table not in TABLES:
            raise ConfigError(f"{file}: unknown table [{_cut(table)}]{_suggest(table, list(TABLES))}")
        if table in SERVICE_TABLES and not isinstance(data[table], dict):
            raise ConfigError(f"{file}: '{table}' must be a table [{table}]")

    top = data.get("ddx", {})
    if not isinstance(top, dict):
        raise ConfigError(f"{file}: 'ddx' must be a table [ddx]")
    where = f"{file}: [ddx]"
    for key in top:
        if key not in _DDX_KEYS:
            raise ConfigError(f"{where} unknown key {_shown(key)}{_suggest(key, list(_DDX_KEYS))}")
    timeout = _positive(where, "timeout", top["timeout"]) if "timeout" in top else None
    budget = _positive(where, "budget", top["budget"]) if "budget" in top else DEFAULT_BUDGET
    window = _positive(where, "window", top["window"], zero_ok=True) if "window" in top else DEFAULT_WINDOW
    disable_raw = top.get("disable", [])
    if not isinstance(disable_raw, list) or not all(isinstance(x, str) for x in disable_raw):
        raise ConfigError(f"{where} key 'disable': expected a list of probe names, got {_type_name(disable_raw)}")
    for name in disable_raw:
        if name not in registry:
            raise ConfigError(f"{where} key 'disable': unknown probe {_shown(name)}{_suggest(name, known_probes)}")

    probes_raw = data.get("probe", {})
    if not isinstance(probes_raw, dict):
        raise ConfigError(f"{file}: 'probe' must hold tables like [probe.disk]")
    probes: dict[str, dict[str, Any]] = {}
    for name, table in probes_raw.items():
        if name not in registry:
            raise ConfigError(f"{file}: unknown table [probe.{_cut(name)}]: no probe {_shown(name)}{_suggest(name, known_probes)}")
        where = f"{file}: [probe.{name}]"
        if not isinstance(table, dict):
            raise ConfigError(f"{file}: 'probe.{name}' must be a table [probe.{name}]")
        spec = registry[name]
        out: dict[str, Any] = {}
        for key, value in table.items():
            if key == "timeout":
                out[key] = _positive(where, key, value)
                continue
            if key not in spec.options:
                choices = [*spec.options, "timeout"]
                raise ConfigError(f"{where} unknown key {_shown(key)}{_suggest(key, choices)}")
            ok, conv = _check_type(spec.options[key], value)
            if not ok:
                want = _type_name(spec.options[key])
                if isinstance(spec.options[key], (list, tuple)) and spec.options[key]:
                    want = f"list of {_type_name(spec.options[key][0])}s"
                raise ConfigError(f"{where} key {_shown(key)}: expected {want}, got {_type_name(value)} {_shown(value)}")
            if isinstance(conv, (int, float)) and not isinstance(conv, bool):
                check_number(where, key, conv)
            out[key] = conv
        probes[name] = out
    inventory = _inventory_table(file, data.get("inventory", {}))
    service = {t: data[t] for t in SERVICE_TABLES if t in data}
    return Config(file, timeout, budget, window, tuple(disable_raw), probes, inventory, service)


def _shown(value: Any) -> str:
    """A value or key for an error message: its repr, cut to 60 characters."""
    return _cut(repr(value))


def _cut(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (a hostile file's key may be megabytes long)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_toml(file: str) -> dict[str, Any]:
    """The parsed TOML of ``file``: a regular file of at most ``MAX_CONFIG_BYTES``, UTF-8."""
    from ddx.readfile import read_small_file

    raw = read_small_file(file, limit=MAX_CONFIG_BYTES, what="config file", error=ConfigError)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{file}:{line}: not UTF-8 text (byte {exc.start})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{file}: invalid TOML: arrays or tables nested too deeply") from None


INVENTORY_KEYS: dict[str, str] = {
    "lookback_hours": "hours within which a file written in /var/log or a service's folders counts as its log (default 6)",
    "budget": "seconds the discovery pass may take (default 2)",
    "logs": "extra log files or globs to read, for no particular service",
    "services": "services to add or complete: tables with `name`, and `program`, `logs`, `configs`, `data_dirs`",
}
_SERVICE_KEYS = ("name", "program", "logs", "configs", "data_dirs")


def _inventory_table(file: str, raw: Any) -> dict[str, Any]:
    """The validated ``[inventory]`` table (see ``INVENTORY_KEYS``)."""
    where = f"{file}: [inventory]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: 'inventory' must be a table [inventory]")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in INVENTORY_KEYS:
            raise ConfigError(f"{where} unknown key {_shown(key)}{_suggest(key, list(INVENTORY_KEYS))}")
        if key in ("lookback_hours", "budget"):
            out[key] = _positive(where, key, value, most=MAX_SECONDS if key == "budget" else 10 * _YEAR / 3600)
        elif key == "logs":
            out[key] = _paths(where, key, value)
        else:
            if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
                raise ConfigError(f"{where} key 'services': expected a list of tables ([[inventory.services]])")
            services = []
            for i, entry in enumerate(value):
                w = f"{where} services[{i}]"
                for k in entry:
                    if k not in _SERVICE_KEYS:
                        raise ConfigError(f"{w} unknown key {_shown(k)}{_suggest(k, list(_SERVICE_KEYS))}")
                name = entry.get("name")
                if not isinstance(name, str) or not name.strip():
                    raise ConfigError(f"{w}: 'name' is required (a string)")
                if "program" in entry and not isinstance(entry["program"], str):
                    raise ConfigError(f"{w} key 'program': expected a string, got {_type_name(entry['program'])}")
                services.append({"name": name, "program": entry.get("program", ""),
                                 **{k: _paths(w, k, entry.get(k, [])) for k in ("logs", "configs", "data_dirs")}})
            out[key] = services
    return out


def _paths(where: str, key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where} key {_shown(key)}: expected a list of paths, got {_type_name(value)}")
    bad = [x for x in value if not x.startswith("/")]
    if bad:
        raise ConfigError(f"{where} key {_shown(key)}: {_shown(bad[0])} is not an absolute path")
    return list(value)


def inventory_options(config: Config, **extra: Any) -> Any:
    """The discovery pass's options from ``[inventory]`` (``ddx.inventory.InventoryOptions``)."""
    from ddx.inventory import InventoryOptions

    inv = config.inventory
    kwargs: dict[str, Any] = {}
    for key in ("lookback_hours", "budget"):
        if key in inv:
            kwargs[key] = float(inv[key])
    return InventoryOptions(logs=tuple(inv.get("logs", ())), services=tuple(inv.get("services", ())),
                            **kwargs, **extra)


# URL scheme -> the probes that take it in their `targets` option
TARGET_PROBES: dict[str, tuple[str, ...]] = {
    "http": ("http",),
    "https": ("http", "tls"),
    "memcached": ("memcached",),
    "redis": ("redis",),
    "rediss": ("redis",),
    "postgresql": ("postgres",),
    "postgres": ("postgres",),
    "mysql": ("mysql",),
    "mariadb": ("mysql",),
}


def with_targets(config: Any, targets: list[str]) -> Any:
    """``config`` with each ``--target`` URL appended to the ``targets`` option
    of the probes that handle its scheme. Unknown schemes are a usage error."""
    if not targets:
        return config
    from ddx.probes import load_probes
    from ddx.probes.base import registry
    from ddx.urls import mask_url

    load_probes()
    probes = {name: dict(opts) for name, opts in config.probes.items()}
    for url in targets:
        scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        names = [n for n in TARGET_PROBES.get(scheme, ()) if n in registry and "targets" in registry[n].options]
        if not names:
            known = ", ".join(f"{k}://" for k in TARGET_PROBES)
            raise UsageError(f"--target {mask_url(url)}: no probe handles this kind of URL (use {known})")
        for name in names:
            opts = probes.setdefault(name, {})
            opts["targets"] = [*opts.get("targets", registry[name].options["targets"]), url]
    return dataclasses.replace(config, probes=probes)


def probe_options(config: Config, spec: ProbeSpec) -> dict[str, Any]:
    """The probe's options: its declared defaults, overridden by ``[probe.NAME]``."""
    opts = dict(spec.options)
    for key, value in config.probes.get(spec.name, {}).items():
        if key != "timeout":
            opts[key] = value
    return opts


def probe_timeout(config: Config, spec: ProbeSpec, override: float | None = None) -> float:
    """Seconds the probe may take: the command line's ``--probe-timeout``
    (``override``, explicit at run time, wins), else ``[probe.NAME] timeout``,
    else ``[ddx] timeout``, else the probe's declared timeout."""
    if override is not None:
        return float(override)
    own = config.probes.get(spec.name, {}).get("timeout")
    if own is not None:
        return float(own)
    if config.timeout is not None:
        return config.timeout
    return spec.timeout


# --- documentation -------------------------------------------------------------

_DOC_INTRO = """\
# Configuration: ddx.toml

ddx needs no configuration: every probe has defaults that make sense on an
ordinary Linux host. A TOML file changes them: expected pool sizes, log paths,
deploy markers, thresholds, probe timeouts.

Where ddx looks, first match wins: `--config FILE`, `$DDX_CONFIG`,
`./ddx.toml`, `/etc/ddx/ddx.toml`. A file named by `--config` or `$DDX_CONFIG`
must exist. An invalid file stops ddx with one error naming the file, the table
and the key (with the closest known key when it looks mistyped), exit code 2.

Rules: tables are `[ddx]`, `[inventory]`, `[probe.NAME]` and, for `ddx watch` and `ddx serve`, `[watch]`, `[serve]`, `[notify.*]` and `[alertmanager]` (docs/watch.md), nothing else. A `[probe.NAME]`
table may set that probe's options below and `timeout`. A value must have the
type of its default; an integer is accepted where the default is a number with
a fraction, and a list of tables where the default is a list. Numbers are finite
and 0 or more; a `*_percent` is at most 100, a `*_ratio` or `*_share` at most 1,
a timeout (and `budget`, `window`) at most 3600 seconds, other durations at
most ten years. The file is UTF-8 text of at most 1 MB.

```toml
[ddx]
timeout = 3          # seconds per probe
budget = 15          # seconds for the whole run
window = 2           # sampling window for rates
disable = ["net"]

[probe.disk]
space_low_percent = 85.0
expect_rw = ["/var/lib/postgresql"]
```

This page is generated from the probes' declarations:
`python -c "from ddx.config import render_config_doc; print(render_config_doc(), end='')" > docs/config.md`
"""


def _option_comments(spec: ProbeSpec) -> dict[str, str]:
    """The comment lines written above (or beside) each option default in the
    probe's ``@probe(...)`` call: where the number comes from."""
    import inspect
    import re
    import sys

    module = sys.modules.get(spec.func.__module__)
    try:
        src = inspect.getsource(module) if module else ""
    except (OSError, TypeError):
        return {}
    m = re.search(rf"@probe\(\s*[\"']{re.escape(spec.name)}[\"']", src)
    if not m:
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in src[m.end() :].splitlines():
        s = line.strip()
        if s.startswith("def ") or s.startswith("async def "):
            break
        if s.startswith("#"):
            pending.append(s.lstrip("#").strip())
            continue
        km = re.match(r"[\"']([A-Za-z0-9_]+)[\"']\s*:", s)
        if km and km.group(1) in spec.options and km.group(1) not in out:
            text = " ".join(pending)
            if "#" in s:
                text = (text + " " + s.split("#", 1)[1].strip()).strip()
            out[km.group(1)] = text
        pending = []
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_toml_value(x) for x in v)
        return f"[{inner}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


def render_config_doc() -> str:
    """docs/config.md: every key of [ddx] and of every registered probe."""
    from ddx.probes import load_probes
    from ddx.probes.base import registry

    load_probes()
    lines = [_DOC_INTRO, "## [ddx]", "", "| key | default | meaning |", "|---|---|---|"]
    defaults = {"timeout": "each probe's own (2)", "budget": "10", "window": "1", "disable": "[]"}
    for key, meaning in _DDX_KEYS.items():
        lines.append(f"| `{key}` | {defaults[key]} | {meaning} |")
    lines.append("")
    lines += ["## [inventory]", "",
              "Before the probes run, one discovery pass finds what serves on the host, and every probe reads "
              "it: each process family holding a listening socket (a master and its workers); the "
              "configuration it was started with (`-c`, `--config`, `-f`, a positional file, a `*_CONFIG` "
              "environment variable, else the program's default; includes followed); the files it logs to "
              "(named in that configuration, held open for writing by one of its processes, or written in "
              "the last `lookback_hours` in /var/log or in its own folders); its data directories and their "
              "filesystems; and the addresses its configuration names. `ddx inventory` (and `--json`) shows "
              "it; bundles carry it. What it cannot find can be added here: logs of no particular service, "
              "or a service's logs, configuration and data folders.", "",
              "```toml", "[inventory]", 'logs = ["/srv/shop/log/*.log"]', "", "[[inventory.services]]",
              'name = "shop"', 'program = "gunicorn"   # matched to the running service of this program', 
              'logs = ["/srv/shop/log/app.log"]', 'data_dirs = ["/srv/shop/uploads"]', "```", "",
              "| key | meaning |", "|---|---|"]
    for key, meaning in INVENTORY_KEYS.items():
        lines.append(f"| `{key}` | {meaning} |")
    lines.append("")
    for name in sorted(registry):
        spec = registry[name]
        lines += [f"## [probe.{name}]", ""]
        if spec.description:
            lines += [" ".join(spec.description.split("\n\n", 1)[0].split()), ""]
        lines += [f"Findings: {', '.join(f'`{f}`' for f in spec.findings)}.", ""]
        lines += ["| key | default | why this default |", "|---|---|---|"]
        lines.append(f"| `timeout` | {spec.timeout:g} | seconds this probe may take |")
        comments = _option_comments(spec)
        for key in spec.options:
            default = _toml_value(spec.options[key]).replace("|", "\\|")
            if len(default) > 60:
                default = default[:57] + "...]"
            why = comments.get(key, "").replace("|", "\\|")
            lines.append(f"| `{key}` | `{default}` | {why} |")
        lines.append("")
    return "\n".join(lines)
