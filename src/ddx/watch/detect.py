"""Symptoms from samples: thresholds, robust baselines, and hysteresis.

A **rule** says when one signal looks wrong in one sample, two ways:

- a *limit* (``above``/``below``): the fixed lines of the knowledge base's
  findings (less than 5% of memory available, a filesystem at 95%, any OOM kill);
- a *baseline* (``spike``): a value far above the signal's own recent normal,
  the median of a rolling window plus ``k`` times its spread (MAD x 1.4826),
  at least ``min_delta`` above it and above ``floor``: a load of 8 on a host
  that idles at 0.3, not on one that always runs at 8. The baseline learns only
  from samples in which the signal looked fine, so a long incident does not
  become the new normal.

A **symptom** is a rule that holds: it *opens* after holding for ``hold``
seconds (0 for events such as an OOM kill) and *clears* only after a quiet
period. The quiet period grows for a symptom that keeps coming back: each time
it opens again within ``down_max`` of clearing, the period is multiplied by
``down_multiplier`` up to ``down_max`` (Netdata's ``delay: down 5m multiplier
1.5 max 1h``), and falls back to ``down`` after a quiet ``down_max``. A signal
flapping every 20 seconds therefore stays one symptom, not thirty.

State is a plain dict (``to_state``/``from_state``) so the daemon can save it
and a restart goes on with the same open symptoms and baselines.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_RULES", "Detector", "Rule", "Symptom"]


@dataclass(frozen=True)
class Rule:
    """When a signal (or every signal with this prefix, ``disk.used_pct:``) looks wrong."""

    signal: str
    text: str  # what it means, for people: "memory available {value:.1f}% (below {limit}%)"
    above: float | None = None
    below: float | None = None
    spike: bool = False
    k: float = 6.0
    min_delta: float = 0.0
    floor: float = 0.0
    hold: float = 30.0

    def matches(self, name: str) -> bool:
        return name == self.signal or (self.signal.endswith(":") and name.startswith(self.signal))


DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("mem.available_pct", "memory available {value:.1f}% (below {below:g}%)", below=5.0),
    Rule("swap.pages_per_s", "swapping {value:.0f} pages/s", above=256.0),
    Rule("oom.kills", "{value:.0f} OOM kill(s)", above=0.0, hold=0.0),
    Rule("disk.used_pct:", "{subject} {value:.1f}% full", above=95.0, hold=0.0),
    Rule("disk.inodes_used_pct:", "{subject} inodes {value:.1f}% used", above=95.0, hold=0.0),
    Rule("fd.used_pct", "file handles {value:.1f}% of file-max", above=90.0),
    Rule("pids.used_pct", "tasks {value:.1f}% of pid_max", above=90.0),
    Rule("net.listen_overflows", "{value:.0f} connection(s) dropped at full listen queues", above=0.0, hold=0.0),
    Rule("svc.listeners_missing", "{value:.0f} listening port(s) gone: {ports}", above=0.0, hold=20.0),
    Rule("cpu.iowait_pct", "iowait {value:.0f}%", above=40.0),
    Rule("cpu.steal_pct", "CPU steal {value:.0f}%", above=20.0),
    Rule("cpu.busy_pct", "CPU busy {value:.0f}%", above=97.0, hold=60.0),
    Rule("load.per_cpu", "load {value:.2f} per CPU, far above its usual {median:.2f}", spike=True, k=6.0,
         min_delta=1.0, floor=1.5, hold=60.0),
    Rule("cpu.iowait_pct", "iowait {value:.0f}%, far above its usual {median:.0f}%", spike=True, k=6.0,
         min_delta=15.0, floor=20.0, hold=60.0),
)


@dataclass
class Symptom:
    """The hysteresis state of one (rule, signal)."""

    name: str  # "mem.available_pct" or "disk.used_pct:/var"
    active: bool = False
    since: float | None = None  # when it opened
    pending: float | None = None  # when the rule began to hold, before it opened
    quiet: float | None = None  # when the rule stopped holding, while still open
    cleared: float | None = None  # when it last cleared
    flaps: int = 0
    delay: float = 0.0  # the quiet period in force
    text: str = ""


@dataclass
class _Baseline:
    values: deque[float] = field(default_factory=deque)

    def median_mad(self) -> tuple[float, float] | None:
        if len(self.values) < 12:  # two minutes at 10 s: too little to call anything unusual
            return None
        med = statistics.median(self.values)
        mad = statistics.median(abs(v - med) for v in self.values)
        return med, mad


class Detector:
    """Feeds samples through the rules; ``active()`` names the open symptoms."""

    def __init__(self, rules: Iterable[Rule] = DEFAULT_RULES, *, down: float = 300.0, down_multiplier: float = 1.5,
                 down_max: float = 3600.0, baseline_samples: int = 360) -> None:
        self.rules = tuple(rules)
        self.down, self.mult, self.down_max = down, down_multiplier, down_max
        self.baseline_samples = baseline_samples
        self.symptoms: dict[str, Symptom] = {}
        self.baselines: dict[str, _Baseline] = {}

    def _judge(self, rule: Rule, name: str, value: float, extra: Mapping[str, Any]) -> tuple[bool, str]:
        subject = name.partition(":")[2]
        fmt = {"value": value, "above": rule.above, "below": rule.below, "subject": subject or name,
               "ports": ", ".join(str(p) for p in extra.get("ports", [])) or "-", "median": 0.0}
        if rule.spike:
            base = self.baselines.get(name)
            mm = base.median_mad() if base else None
            if mm is None:
                return False, ""
            med, mad = mm
            fmt["median"] = med
            bad = value >= rule.floor and value - med >= max(rule.min_delta, rule.k * 1.4826 * mad)
        else:
            bad = (rule.above is not None and value > rule.above) or (rule.below is not None and value < rule.below)
        return bad, (rule.text.format(**fmt) if bad else "")

    def feed(self, at: float, values: Mapping[str, float], extra: Mapping[str, Any] | None = None) -> list[str]:
        """One sample; returns the symptoms that opened or cleared with it (``+name`` / ``-name``)."""
        extra = extra or {}
        holding: dict[str, str] = {}
        hold_for: dict[str, float] = {}
        for name, value in values.items():
            looked_bad = False
            for rule in self.rules:
                if not rule.matches(name):
                    continue
                bad, text = self._judge(rule, name, value, extra)
                if bad:
                    looked_bad = True
                    key = name if not rule.spike else f"{name}~"
                    holding[key] = text
                    hold_for[key] = rule.hold
            if not looked_bad:  # learn the normal only from normal samples
                base = self.baselines.setdefault(name, _Baseline(deque(maxlen=self.baseline_samples)))
                base.values.append(float(value))
        changes: list[str] = []
        for key in set(holding) | {k for k, s in self.symptoms.items() if s.active or s.pending is not None}:
            s = self.symptoms.setdefault(key, Symptom(key))
            if key in holding:
                s.text = holding[key]
                s.quiet = None
                if s.active:
                    continue
                if s.pending is None:
                    s.pending = at
                if at - s.pending >= hold_for[key]:
                    self._open(s, at)
                    changes.append(f"+{key}")
            else:
                s.pending = None
                if not s.active:
                    continue
                if s.quiet is None:
                    s.quiet = at
                if at - s.quiet >= s.delay:
                    s.active, s.cleared, s.quiet = False, at, None
                    changes.append(f"-{key}")
        return changes

    def _open(self, s: Symptom, at: float) -> None:
        if s.cleared is not None and at - s.cleared < self.down_max:
            s.flaps += 1  # back soon after clearing: wait longer before calling it over next time
        else:
            s.flaps = 0
        s.delay = min(self.down * (self.mult ** s.flaps), self.down_max)
        s.active, s.since, s.pending, s.quiet = True, at, None, None

    def active(self) -> dict[str, str]:
        """Open symptoms: name -> what it says now."""
        return {k: s.text for k, s in sorted(self.symptoms.items()) if s.active}

    # --- persistence ---------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {
            "symptoms": {k: vars(s) for k, s in self.symptoms.items() if s.active or s.cleared or s.pending},
            "baselines": {k: list(b.values) for k, b in self.baselines.items()},
        }

    def load_state(self, state: Mapping[str, Any] | None) -> None:
        if not state:
            return
        for k, v in (state.get("symptoms") or {}).items():
            try:
                self.symptoms[k] = Symptom(**v)
            except TypeError:
                continue  # a state written by another version: that symptom starts afresh
        for k, vals in (state.get("baselines") or {}).items():
            if isinstance(vals, list):
                self.baselines[k] = _Baseline(deque((float(x) for x in vals if isinstance(x, (int, float))),
                                                    maxlen=self.baseline_samples))
