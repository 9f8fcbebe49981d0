"""Fuzzing ddx's inputs from others: case files, bundles' manifests and calls, ddx.toml.

Each example is written to disk and given to the command line in a process of its own, under
an address-space limit and a timeout (``hostile.run_bounded``). Whatever the input, ddx ends
with exit 0 (with at most warnings and notes on stderr) or exit 2 and one line on stderr; never
a traceback, a crash or a hang; within the issue's targets of time and resident memory.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hostile import MAX_RSS_MB, MAX_SECONDS, run_bounded
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# 30 examples per input kind, the same ones every run, keep the file under a minute;
# DDX_FUZZ_EXAMPLES=500 hunts longer, with new random examples each run.
HUNT = os.environ.get("DDX_FUZZ_EXAMPLES")
FUZZ = settings(max_examples=int(HUNT or 30), derandomize=not HUNT, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(*args: str) -> None:
    """ddx on one input, in a process of its own (address space capped, time-limited):
    exit 0 with at most notes and warnings on stderr, or exit 2 and one line."""
    r = run_bounded(*args, timeout=3 * MAX_SECONDS)
    lines = r.stderr.splitlines()
    assert not r.hung, args
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr[-3000:]
    assert r.returncode in (0, 2), (r.returncode, r.stderr[-2000:])
    if r.returncode == 2:
        assert r.one_clean_line(), r.stderr[-2000:]
    else:
        assert all(line.startswith("ddx: ") for line in lines), r.stderr[-2000:]
    assert r.seconds < MAX_SECONDS, r.seconds
    assert r.rss_mb < MAX_RSS_MB, r.rss_mb


# --- values others write -----------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x1b]0;x\x07", "\x1b[2J", "\u202e", "\x00", "a" * 5000, "é", "💥", "${x}", "*a", "&a",
                     "!!python/object:os.system", "<<: *a", "load.low", "disk.space_exhausted", "-", "~", "null"]),
)
numbers = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True),
                    st.sampled_from([0, -1, 1e308, -1e308, 2**63 - 1, 1e-300]))
scalars = st.one_of(st.none(), st.booleans(), numbers, hostile_text)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)), max_leaves=12)
raw_bytes = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"\xff\xfe\x00", b"[" * 50_000, b"{" * 50_000, b"a: " + b"[" * 50_000,
                     b"- " * 20_000, b"\x1f\x8b\x08\x00junk", b"a = " + b"[" * 50_000 + b"]" * 50_000]),
)


# --- case files ------------------------------------------------------------------------------

FINDING_IDS = ["load.low", "http.requests_surge", "disk.space_exhausted", "memory.available_low", "logs.enospc"]
case_items = st.one_of(st.sampled_from(FINDING_IDS), hostile_text, numbers, st.none(),
                       st.fixed_dictionaries({"id": st.one_of(st.sampled_from(FINDING_IDS), scalars)},
                                             optional={"evidence": json_values}))
case_docs = st.fixed_dictionaries({}, optional={
    "title": scalars, "source": scalars, "story": json_values, "present": st.one_of(st.lists(case_items, max_size=6),
                                                                                      scalars),
    "absent": st.one_of(st.lists(case_items, max_size=6), scalars), "expect": json_values, "tags": json_values,
}).flatmap(lambda d: st.dictionaries(hostile_text, json_values, max_size=2).map(lambda extra: {**extra, **d}))


@FUZZ
@given(doc=st.one_of(case_docs, json_values), form=st.sampled_from(["yaml", "json", "raw"]), raw=raw_bytes)
def test_case_files(doc: Any, form: str, raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / ("case.json" if form == "json" else "case.yaml")
        if form == "yaml":
            path.write_text(yaml.safe_dump(doc, allow_unicode=True))
        elif form == "json":
            path.write_text(json.dumps(doc, ensure_ascii=False))
        else:
            path.write_bytes(raw)
        check("diagnose", "--case", str(path), "--markdown")


# --- ddx.toml --------------------------------------------------------------------------------

def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return '""'


def toml_text(tables: dict[str, dict[str, Any]]) -> str:
    lines = []
    for name, table in tables.items():
        lines.append(f"[{'.'.join(_toml_key(p) for p in name.split('.'))}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


OPTION_KEYS = ["timeout", "budget", "window", "disable", "space_low_percent", "max_bytes", "lookback_hours", "since",
               "targets", "discover", "logs", "services", "error_ratio", "statement_timeout_ms", "expect_rw"]
TABLES = ["ddx", "inventory", "probe.disk", "probe.logfiles", "probe.http", "probe.postgres", "probe.kernel",
          "probe.nope", "nope"]
toml_docs = st.dictionaries(st.one_of(st.sampled_from(TABLES), hostile_text.filter(lambda s: s.strip() != "")),
                            st.dictionaries(st.one_of(st.sampled_from(OPTION_KEYS), hostile_text), json_values,
                                            max_size=4), max_size=3)


@FUZZ
@given(doc=toml_docs, raw=raw_bytes, use_raw=st.booleans())
def test_ddx_toml(doc: dict[str, dict[str, Any]], raw: bytes, use_raw: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "ddx.toml"
        if use_raw:
            path.write_bytes(raw)
        else:
            path.write_text(toml_text(doc), errors="surrogatepass")
        check("inventory", "--json", "--config", str(path))


# --- bundles: manifest.json and calls.json --------------------------------------------------------

OPS = ["read_text", "listdir", "stat", "statvfs", "readlink", "run", "time", "nope"]
calls = st.lists(st.one_of(json_values, st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(OPS), scalars), "args": json_values, "probe": st.one_of(st.none(), hostile_text),
     "outcomes": st.one_of(st.lists(json_values, max_size=3), scalars)})), max_size=5)
manifests = st.fixed_dictionaries(
    {"format": st.one_of(st.just("ddx-bundle/1"), scalars)},
    optional={"ddx_version": scalars, "host": hostile_text, "created": scalars, "recording_started": scalars,
              "collection": json_values, "inventory": json_values, "config": scalars})


@FUZZ
@given(manifest=st.one_of(manifests, json_values), calls_doc=st.one_of(calls, json_values), raw=raw_bytes,
       broken=st.sampled_from(["none", "manifest", "calls"]))
@example(manifest={"format": "ddx-bundle/1", "collection": True}, calls_doc=[], raw=b"", broken="none")  # found here
def test_bundle_manifests(manifest: Any, calls_doc: Any, raw: bytes, broken: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        bundle = Path(d) / "bundle"
        (bundle / "files" / "proc").mkdir(parents=True)
        (bundle / "files" / "proc" / "loadavg").write_text("0.1 0.2 0.3 1/100 123\n")
        (bundle / "manifest.json").write_bytes(raw if broken == "manifest" else
                                              json.dumps(manifest, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        (bundle / "calls.json").write_bytes(raw if broken == "calls" else
                                           json.dumps(calls_doc, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        check("diagnose", "--from", str(bundle), "--json", "--only", "cpu,memory,disk")
