"""What changed in the logs: templates by count, error-level ones, new ones, surges.

The input is split into a *baseline* part (before ``baseline_until``) and an
*incident* part (from ``baseline_until`` on). Lines before ``since`` are
ignored. Without ``baseline_until`` the split is at three quarters of the
covered time span (first timestamp to last), or, when no line has a
timestamp, at three quarters of the lines: the baseline is the first part of
the input, the incident part its last quarter.

- A template is *new* when it has lines in the incident part and none in the
  baseline part (and the baseline part is not empty).
- A template (or a level: all error lines together) *surged* when its rate in
  the incident part is at least :data:`BURST_FACTOR` times its baseline rate,
  with at least :data:`BURST_MIN` incident lines. Rates are per second of the
  part's time span, or per line when there are no timestamps. A template with
  no baseline lines is reported as new, not as a surge.
- A template's level is the most severe level its lines carried in their
  headers; for messages without a level in the header it is inferred from the
  template's words (``error``, ``failed``, ``denied``, ``timeout``...).

Memory stays bounded: per template a few counters and a 64-bin histogram over
the covered span (bins double in width as the span grows), which is what lets
the default split be chosen after the last line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from ddx.logs.headers import Record, records
from ddx.logs.miner import Cluster, TemplateMiner
from ddx.logs.times import TimeParser
from ddx.units import iso_or_none

__all__ = ["BURST_FACTOR", "BURST_MIN", "Burst", "LogSummary", "SummaryBuilder", "TemplateStats", "infer_level"]

BURST_FACTOR = 5.0
BURST_MIN = 5
BASELINE_SHARE = 0.75
_NBINS = 64
MAX_SAMPLE = 2000  # characters kept of a sample line
_RANK = {"debug": 0, "info": 1, "warning": 2, "error": 3}
_LEVELS = ("debug", "info", "warning", "error")

_ERROR_WORDS = re.compile(
    r"(?<![A-Za-z])(?:errors?|err|fail|failed|failing|failures?|fatal|panic|panicked|exception|traceback|"
    r"abort|aborted|aborting|crash|crashed|segfault|segmentation fault|denied|refused|unreachable|"
    r"timeout|timed out|cannot|can't|could not|couldn't|unable|corrupt|corrupted|critical|emergency|"
    r"killed|oom|out of memory|no space|broken pipe|reset by peer|illegal|violation|invalid)(?![A-Za-z])",
    re.IGNORECASE,
)
_WARNING_WORDS = re.compile(r"(?<![A-Za-z])(?:warn|warning|deprecated|retry|retrying|degraded|slow)(?![A-Za-z])", re.I)


def infer_level(template: str) -> str | None:
    """``error`` or ``warning`` from a message's words, else ``None``."""
    if _ERROR_WORDS.search(template):
        return "error"
    if _WARNING_WORDS.search(template):
        return "warning"
    return None




@dataclass(frozen=True)
class TemplateStats:
    """One template of a summary. Times are epoch seconds (``None`` without timestamps)."""

    id: str
    template: str
    count: int
    level: str | None
    first: float | None
    last: float | None
    sample: str
    baseline_count: int
    incident_count: int
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "template": self.template,
            "count": self.count,
            "level": self.level,
            "first": self.first,
            "last": self.last,
            "first_iso": iso_or_none(self.first),
            "last_iso": iso_or_none(self.last),
            "baseline_count": self.baseline_count,
            "incident_count": self.incident_count,
            "sample": self.sample,
            "sources": list(self.sources),
        }


@dataclass(frozen=True)
class Burst:
    """A template (``template`` set) or a whole level whose rate surged."""

    id: str  # a template id, or "level:error"
    template: str | None
    level: str | None
    baseline_count: int
    incident_count: int
    factor: float
    sample: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "template": self.template,
            "level": self.level,
            "baseline_count": self.baseline_count,
            "incident_count": self.incident_count,
            "factor": round(self.factor, 2),
            "sample": self.sample,
        }


@dataclass(frozen=True)
class LogSummary:
    """The result of :func:`ddx.logs.summarize`; see the module docstring for the rules."""

    templates: tuple[TemplateStats, ...]
    new: tuple[TemplateStats, ...]
    new_errors: tuple[TemplateStats, ...]
    bursts: tuple[Burst, ...]
    skipped: tuple[str, ...]
    lines: int
    baseline_lines: int
    incident_lines: int
    baseline_until: float | None
    since: float | None
    split: str  # how the baseline was chosen, in words
    formats: tuple[tuple[str, str], ...] = ()  # (source, header format)
    first: float | None = None
    last: float | None = None

    @property
    def errors(self) -> tuple[TemplateStats, ...]:
        """Error-level templates, by count."""
        return tuple(t for t in self.templates if t.level == "error")

    def to_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines,
            "baseline_lines": self.baseline_lines,
            "incident_lines": self.incident_lines,
            "first": self.first,
            "last": self.last,
            "since": self.since,
            "baseline_until": self.baseline_until,
            "baseline_until_iso": iso_or_none(self.baseline_until),
            "split": self.split,
            "formats": [{"source": s, "format": f} for s, f in self.formats],
            "templates": [t.to_dict() for t in self.templates],
            "errors": [t.id for t in self.errors],
            "new": [t.id for t in self.new],
            "new_errors": [t.id for t in self.new_errors],
            "bursts": [b.to_dict() for b in self.bursts],
            "skipped": list(self.skipped),
        }


class _Stats:
    __slots__ = ("count", "rank", "first", "last", "first_raw", "last_raw", "base", "inc", "bins", "lbins", "sources")

    def __init__(self) -> None:
        self.count = 0
        self.rank = -1
        self.first: float | None = None
        self.last: float | None = None
        self.first_raw = ""
        self.last_raw = ""
        self.base = 0  # exact, when the split is given
        self.inc = 0
        self.bins = [0] * _NBINS  # on the time axis
        self.lbins = [0] * _NBINS  # on the line axis (records without time)
        self.sources: list[str] = []

    def merge(self, o: _Stats) -> None:
        self.count += o.count
        self.rank = max(self.rank, o.rank)
        if o.first is not None and (self.first is None or o.first < self.first):
            self.first, self.first_raw = o.first, o.first_raw
        elif not self.first_raw:
            self.first_raw = o.first_raw
        if o.last is not None and (self.last is None or o.last >= self.last):
            self.last, self.last_raw = o.last, o.last_raw
        elif not self.last_raw:
            self.last_raw = o.last_raw
        self.base += o.base
        self.inc += o.inc
        self.bins = [a + b for a, b in zip(self.bins, o.bins)]
        self.lbins = [a + b for a, b in zip(self.lbins, o.lbins)]
        for s in o.sources:
            if s not in self.sources and len(self.sources) < 5:
                self.sources.append(s)


class _Axis:
    """64 bins over [t0, t0 + 64 * width); the width doubles to cover new values."""

    __slots__ = ("t0", "width", "lo", "hi")

    def __init__(self, width: float) -> None:
        self.t0: float | None = None
        self.width = width
        self.lo: float | None = None
        self.hi: float | None = None

    def index(self, t: float, all_bins: Iterable[list[int]]) -> int:
        if self.t0 is None:
            self.t0 = math.floor(t)
            self.lo = self.hi = t
        if t < self.lo:  # type: ignore[operator]
            self.lo = t
        if t > self.hi:  # type: ignore[operator]
            self.hi = t
        t0 = self.t0
        while t >= t0 + _NBINS * self.width:
            for bins in all_bins:
                merged = [bins[2 * k] + bins[2 * k + 1] for k in range(_NBINS // 2)]
                bins[:] = merged + [0] * (_NBINS // 2)
            self.width *= 2
        while t < t0:
            for bins in all_bins:
                merged = [bins[2 * k] + bins[2 * k + 1] for k in range(_NBINS // 2)]
                bins[:] = [0] * (_NBINS // 2) + merged
            t0 -= _NBINS * self.width
            self.width *= 2
            self.t0 = t0
        return int((t - t0) // self.width)


class SummaryBuilder:
    """Feeds records through the miner and keeps per-template statistics."""

    def __init__(
        self,
        *,
        baseline_until: float | None = None,
        since: float | None = None,
        miner: TemplateMiner | None = None,
        reference_time: float | None = None,
    ) -> None:
        self.baseline_until = baseline_until
        self.since = since
        self.miner = miner if miner is not None else TemplateMiner()
        self.time_parser = TimeParser(reference_time)
        self._stats: dict[Cluster, _Stats] = {}
        self._retired: dict[str, tuple[str, _Stats]] = {}  # templates dropped by the miner, by id
        self._stats_limit = 2 * self.miner.max_clusters
        self.dropped_templates = 0
        self.dropped_lines = 0
        self._taxis = _Axis(1.0)
        self._laxis = _Axis(1.0)
        self._seq = 0
        self.lines = 0
        self.before_since = 0
        self.untimed = 0
        self.timed = 0
        self.skipped: list[str] = []
        self.formats: list[tuple[str, str]] = []

    def add_lines(self, lines: Iterable[str] | Iterable[tuple[int, str]], source: str = "<lines>") -> None:
        """Add the lines of one input (one file: one header format)."""
        detected: list = []
        notes: list[str] = []
        before = self.lines + self.before_since
        for rec in records(lines, time_parser=self.time_parser, notes=notes, detected=detected):
            self.add_record(rec, source)
        if detected and self.lines + self.before_since > before:
            self.formats.append((source, detected[0].name))
        self.skipped.extend(f"{source}: {n}" for n in notes)

    def add_record(self, rec: Record, source: str = "<lines>") -> None:
        t = rec.time
        if self.since is not None and t is not None and t < self.since:
            self.before_since += 1
            return
        self.lines += 1
        cluster = self.miner.add(rec.message)
        raw = rec.raw if len(rec.raw) <= MAX_SAMPLE else rec.raw[:MAX_SAMPLE] + "..."
        st = self._stats.get(cluster)
        if st is None:
            if len(self._stats) >= self._stats_limit:
                self._prune()
            st = self._stats[cluster] = _Stats()
            st.first_raw = raw
            st.sources.append(source)
        elif source not in st.sources and len(st.sources) < 5:
            st.sources.append(source)
        st.count += 1
        if rec.level is not None:
            r = _RANK[rec.level]
            if r > st.rank:
                st.rank = r
        st.last_raw = raw
        if t is None:
            self.untimed += 1
            self._seq += 1
            lx = self._laxis
            if lx.t0 is not None and self._seq < lx.t0 + _NBINS * lx.width:
                lx.hi = self._seq
                st.lbins[int((self._seq - lx.t0) // lx.width)] += 1
            else:
                st.lbins[lx.index(self._seq, [s.lbins for s in self._stats.values()])] += 1
            return
        self.timed += 1
        if st.first is None or t < st.first:
            st.first = t
            st.first_raw = raw
        if st.last is None or t >= st.last:
            st.last = t
        if self.baseline_until is not None:
            if t < self.baseline_until:
                st.base += 1
            else:
                st.inc += 1
        ax = self._taxis
        if ax.t0 is not None and ax.t0 <= t < ax.t0 + _NBINS * ax.width:
            if t < ax.lo:  # type: ignore[operator]
                ax.lo = t
            elif t > ax.hi:  # type: ignore[operator]
                ax.hi = t
            st.bins[int((t - ax.t0) // ax.width)] += 1
        else:
            st.bins[ax.index(t, [s.bins for s in self._stats.values()])] += 1

    # -- result ---------------------------------------------------------------

    def _prune(self) -> None:
        """Bound the statistics: fold merged clusters into their root, and keep
        dropped (evicted) ones by template id, at most ``_stats_limit`` of them."""
        root = self.miner.root
        live: dict[Cluster, _Stats] = {}
        for cluster, st in self._stats.items():
            r = root(cluster)
            if r.alive:
                cur = live.get(r)
                if cur is None:
                    live[r] = st
                else:
                    cur.merge(st)
            else:
                cur2 = self._retired.get(r.template_id)
                if cur2 is None:
                    self._retired[r.template_id] = (r.template, st)
                else:
                    cur2[1].merge(st)
        self._stats = live
        if len(self._retired) > self._stats_limit:
            keep = sorted(self._retired.items(), key=lambda kv: -kv[1][1].count)[: self._stats_limit // 2]
            dropped = len(self._retired) - len(keep)
            self.dropped_templates += dropped
            self.dropped_lines += sum(st.count for _, (_, st) in self._retired.items()) - sum(
                st.count for _, (_, st) in keep
            )
            self._retired = dict(keep)
        self._stats_limit = max(self._stats_limit, 2 * len(self._stats))

    def _aggregate(self) -> dict[str, tuple[str, _Stats]]:
        """Statistics per final template (merged clusters counted in their root;
        a template dropped and seen again counted once)."""
        out: dict[str, tuple[str, _Stats]] = {}
        root = self.miner.root

        def fold(tid: str, template: str, st: _Stats) -> None:
            cur = out.get(tid)
            if cur is None:
                agg = _Stats()
                agg.merge(st)
                agg.first_raw, agg.last_raw = st.first_raw, st.last_raw
                out[tid] = (template, agg)
            else:
                cur[1].merge(st)

        for tid, (template, st) in self._retired.items():
            fold(tid, template, st)
        for cluster, st in self._stats.items():
            r = root(cluster)
            fold(r.template_id, r.template, st)
        return out

    def build(self) -> LogSummary:
        """The summary of everything added so far."""
        groups = self._aggregate()
        skipped = list(self.skipped)
        if self.before_since:
            skipped.append(f"{self.before_since} line(s) before --since ignored")
        ax = self._taxis if self.timed else self._laxis
        timed = bool(self.timed)
        if timed and self.untimed:
            skipped.append(f"{self.untimed} line(s) without a timestamp: counted, but in neither baseline nor incident")
        lo, hi = ax.lo, ax.hi
        explicit = self.baseline_until is not None and timed
        if explicit:
            split_t: float | None = self.baseline_until
            split_bin = 0
            how = f"baseline: lines before {iso_or_none(split_t)} (given)"
        elif lo is None or hi is None:
            split_t, split_bin, how = None, 0, "no lines"
        else:
            target = lo + BASELINE_SHARE * (hi - lo)
            split_bin = int((target - ax.t0) // ax.width) if ax.t0 is not None else 0  # type: ignore[operator]
            split_bin = min(max(split_bin, 0), _NBINS - 1)
            split_t = ax.t0 + split_bin * ax.width  # type: ignore[operator]
            if split_t <= lo:  # everything in one bin: no baseline
                split_t = None
            if timed:
                how = (
                    f"baseline: the first three quarters of the time span, before {iso_or_none(split_t)}"
                    if split_t is not None
                    else "all lines at one time: no baseline part"
                )
            else:
                how = (
                    f"no timestamps: baseline is the first three quarters of the lines (the first {int(split_t) - 1})"
                    if split_t is not None
                    else "too few lines for a baseline part"
                )
        if self.since is not None and not timed and self.lines:
            skipped.append("--since ignored: no line has a timestamp")
        if self.baseline_until is not None and not timed:
            skipped.append("--baseline-until ignored: no line has a timestamp")
            how = "no timestamps: baseline is the first three quarters of the lines"

        stats: list[TemplateStats] = []
        base_total = inc_total = 0
        if self.dropped_templates:
            skipped.append(
                f"{self.dropped_templates} rare template(s) ({self.dropped_lines} lines) dropped to bound memory"
            )
        for tid, (template, st) in groups.items():
            if explicit:
                base, inc = st.base, st.inc
            elif split_t is None:
                base, inc = 0, (sum(st.bins) if timed else sum(st.lbins))
            else:
                bins = st.bins if timed else st.lbins
                base, inc = sum(bins[:split_bin]), sum(bins[split_bin:])
            base_total += base
            inc_total += inc
            # a level from the headers wins over words ("INFO ... error corrected")
            level = _LEVELS[st.rank] if st.rank >= 0 else infer_level(template)
            sample = st.last_raw if inc else st.first_raw
            ts = TemplateStats(tid, template, st.count, level, st.first, st.last, sample, base, inc, tuple(st.sources))
            stats.append(ts)
        stats.sort(key=lambda s: (-s.count, s.id))

        if timed and split_t is not None and lo is not None and hi is not None:
            dur_b = max(split_t - lo, 1e-9)
            dur_i = max(hi - split_t, 1e-9)
        else:
            dur_b, dur_i = float(max(base_total, 1)), float(max(inc_total, 1))
        has_baseline = base_total > 0
        if not has_baseline and self.lines:
            skipped.append("no baseline part: new templates and surges cannot be told")
        new = tuple(s for s in stats if has_baseline and s.baseline_count == 0 and s.incident_count > 0)
        new = tuple(sorted(new, key=lambda s: (-s.incident_count, s.id)))
        new_errors = tuple(s for s in new if s.level == "error")

        bursts: list[Burst] = []
        if has_baseline:
            for s in stats:
                if s.baseline_count and s.incident_count >= BURST_MIN:
                    f = (s.incident_count / dur_i) / (s.baseline_count / dur_b)
                    if f >= BURST_FACTOR:
                        bursts.append(Burst(s.id, s.template, s.level, s.baseline_count, s.incident_count, f, s.sample))
            for level in ("error", "warning"):
                b = sum(s.baseline_count for s in stats if s.level == level)
                i = sum(s.incident_count for s in stats if s.level == level)
                if i >= BURST_MIN:
                    f = (i / dur_i) / (max(b, 0.5) / dur_b)
                    if f >= BURST_FACTOR:
                        bursts.append(Burst(f"level:{level}", None, level, b, i, f))
        bursts.sort(key=lambda b: -b.factor)
        return LogSummary(
            templates=tuple(stats),
            new=new,
            new_errors=new_errors,
            bursts=tuple(bursts),
            skipped=tuple(skipped),
            lines=self.lines,
            baseline_lines=base_total,
            incident_lines=inc_total,
            baseline_until=split_t if timed else None,
            since=self.since,
            split=how,
            formats=tuple(self.formats),
            first=lo if timed else None,
            last=hi if timed else None,
        )
