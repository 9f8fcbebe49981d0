"""Read the metric map for many instances at once and judge each instance's findings.

``read_table`` asks Prometheus one query per row (and per row's extra
condition), each aggregated ``by (job, instance)`` over the selector, plus one
query for which of the map's metric names each instance exports and one for
the scrape targets (``up``). ``findings_of`` turns one instance's values into
findings: present or absent when the metric was read, unknown (with the
names it does not export) when it was not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from ddx.model import Evidence, Finding, State
from ddx.prom.client import PromClient, Sample
from ddx.prom.metricmap import BY, ROWS, Row, exported_names, render

__all__ = ["Key", "Table", "Value", "findings_of", "quote", "read_table", "selector", "show_value"]

Key = tuple[str, str]  # (job, instance) as Prometheus labels them
SOURCE = "prometheus"


@dataclass(frozen=True)
class Value:
    """One row's reading for one instance: ``state`` and the numbers that decided it."""

    row: Row
    state: State
    value: float | None = None
    also: float | None = None


@dataclass
class Table:
    """Every row's value for every (job, instance) the selector matched."""

    sel: str
    window: str
    targets: dict[Key, float] = field(default_factory=dict)  # up
    exported: dict[Key, set[str]] = field(default_factory=dict)
    values: list[dict[Key, float]] = field(default_factory=list)  # per row
    also: list[dict[Key, float]] = field(default_factory=list)  # per row (empty when the row has none)
    at: float | None = None

    def merge(self, other: Table) -> None:
        """Add another table's instances (read with another selector, the same window)."""
        self.targets.update(other.targets)
        for key, names in other.exported.items():
            self.exported.setdefault(key, set()).update(names)
        for mine, theirs in zip(self.values, other.values, strict=True):
            mine.update(theirs)
        for mine, theirs in zip(self.also, other.also, strict=True):
            mine.update(theirs)

    @property
    def keys(self) -> list[Key]:
        return sorted(set(self.targets) | set(self.exported))

    def value(self, i: int, key: Key) -> Value:
        row = ROWS[i]
        got = self.values[i].get(key)
        names = self.exported.get(key, set())
        if got is None or math.isnan(got):
            if row.default is None or not all(n in names for n in row.needs):
                return Value(row, State.UNKNOWN)
            got = row.default
        extra = self.also[i].get(key) if row.also is not None else None
        present = row.crosses(got)
        if present and row.also is not None:
            if extra is None or math.isnan(extra):  # the second condition could not be read
                return Value(row, State.UNKNOWN, got)
            present = row.also.holds(extra)
        return Value(row, State.PRESENT if present else State.ABSENT, got, extra)

    def up(self, key: Key) -> bool | None:
        """Whether Prometheus scrapes the instance's target now (None: no ``up`` series)."""
        v = self.targets.get(key)
        return None if v is None else v >= 1


def quote(text: str) -> str:
    """``text`` inside a PromQL double-quoted string."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def selector(job: str | None = None, instance: str | None = None, matchers: str | None = None) -> str:
    """Label matchers (without braces) for a job, an instance and/or extra matchers."""
    parts = []
    if job is not None:
        parts.append(f'job="{quote(job)}"')
    if instance is not None:
        parts.append(f'instance="{quote(instance)}"')
    if matchers:
        parts.append(matchers.strip().strip("{}").strip().rstrip(","))
    return ",".join(parts) or 'job=~".+"'


def _by_key(samples: list[Sample]) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for s in samples:
        key = (s.labels.get("job", ""), s.labels.get("instance", ""))
        out[key] = s.value
    return out


def query_of(row: Row, sel: str, window: str) -> str:
    return f"{row.agg} by ({BY}) ({render(row.expr, sel, window)})"


def read_table(client: PromClient, sel: str, window: str, *, at: float | None = None) -> Table:
    """The whole map for every instance ``sel`` matches: ``2 + len(ROWS) + rows with also`` queries."""
    names = "|".join(exported_names())
    exprs = [f"max by ({BY}) (up{{{sel}}})",
             f'count by ({BY}, __name__) ({{__name__=~"{names}",{sel}}})']
    exprs += [query_of(row, sel, window) for row in ROWS]
    with_also = [i for i, row in enumerate(ROWS) if row.also is not None]
    for i in with_also:
        cond = ROWS[i].also
        assert cond is not None
        exprs.append(f"{cond.agg} by ({BY}) ({render(cond.expr, sel, window)})")
    # the first alone: a server that does not answer costs one timeout, not one per query
    answers = [client.query(exprs[0], at=at), *client.query_many(exprs[1:], at=at)]
    table = Table(sel, window, at=at)
    table.targets = _by_key(answers[0])
    for s in answers[1]:
        key = (s.labels.get("job", ""), s.labels.get("instance", ""))
        table.exported.setdefault(key, set()).add(s.labels.get("__name__", ""))
    table.values = [_by_key(a) for a in answers[2:2 + len(ROWS)]]
    table.also = [{} for _ in ROWS]
    for i, ans in zip(with_also, answers[2 + len(ROWS):], strict=True):
        table.also[i] = _by_key(ans)
    return table


def show_value(value: float, unit: str) -> str:
    """A reading as people write it: ``0.4%``, ``120 ms``, ``3.2 days``."""
    from ddx.units import duration

    if unit == "s" and abs(value) >= 120:
        return ("-" if value < 0 else "") + duration(abs(value))
    text = f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{text}{unit}" if unit in ("%", "") else f"{text} {unit}"


def evidence_of(v: Value, key: Key, window: str) -> Evidence:
    """What one row read for one instance: the PromQL (for that instance alone) and the value."""
    row = v.row
    sel = selector(key[0], key[1])
    query = query_of(row, sel, window)
    job, inst = key
    if v.state is State.UNKNOWN and v.value is not None and row.also is not None:
        return Evidence(source=f"{SOURCE}: {query}", summary=f"{row.label} {show_value(v.value, row.unit)} on {inst}, "
                        f"but {row.also.label} could not be read")
    if v.state is State.UNKNOWN:
        return Evidence(source=f"{SOURCE}: {query}", summary=f"{row.label}: {inst} ({job}) does not export "
                        + ", ".join(row.needs))
    assert v.value is not None
    shown = show_value(v.value, row.unit)
    line = show_value(row.threshold, row.unit)
    verdict = "crosses" if row.crosses(v.value) else "within"
    summary = f"{row.label} {shown} on {inst} ({verdict} the line {row.op} {line}, window {window})"
    if row.also is not None:
        extra = v.also if v.also is not None and not math.isnan(v.also) else 0.0
        summary += f"; {row.also.label} {extra:.3g} (needs {row.also.op} {row.also.threshold:g})"
    value: float | int = round(v.value, 4) if abs(v.value) < 1e12 else v.value
    return Evidence(source=f"{SOURCE}: {query}", summary=summary, value=value, threshold=row.threshold, unit=row.unit)


def findings_of(table: Table, key: Key, keys: Iterable[Key] | None = None, *, detail: bool = True) -> list[Finding]:
    """One finding per id of the map for the instance ``key`` (also reading the rows of ``keys``,
    the same instance's other jobs): present if a row crosses its line, absent if rows were read
    and none crossed, unknown if no row could be read (its evidence names what is not exported).
    ``detail`` False (the fleet's thousand instances): evidence for present findings only, no
    unknown findings."""
    by_id: dict[str, list[tuple[Value, Key]]] = {}
    for k in [key, *(keys or ())]:
        for i, row in enumerate(ROWS):
            by_id.setdefault(row.finding, []).append((table.value(i, k), k))
    out = []
    for fid, vals in by_id.items():
        present = [(v, k) for v, k in vals if v.state is State.PRESENT]
        absent = [(v, k) for v, k in vals if v.state is State.ABSENT]
        if present:
            state, chosen = State.PRESENT, present
        elif absent:
            state, chosen = State.ABSENT, absent
        elif detail:
            state, chosen = State.UNKNOWN, vals[:1]
        else:
            continue
        if not detail and state is not State.PRESENT:
            out.append(Finding(fid, state, SOURCE))
            continue
        out.append(Finding(fid, state, SOURCE, tuple(evidence_of(v, k, table.window) for v, k in chosen)))
    return sorted(out, key=lambda f: f.id)
