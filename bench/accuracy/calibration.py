"""Calibration of ddx's probabilities over drill runs: the Brier score and a reliability table.

Pure functions on the results run.py writes. Every scored diagnosis run counts
once: the last run of a clean scenario (the one its verdict is on), the one run
of a wild scenario, every run of the healthy control. For each run ddx gave a
probability to every condition; the truth is the scenario's expected condition
(none for the healthy control).

- **Brier score**: the mean over runs of ``sum_c (p_c - y_c)^2`` over the
  conditions (``y_c`` 1 for the expected one, else 0). 0 is perfect; a run that
  puts 100% on a wrong cause scores 2.
- **Reliability** (confidence against accuracy): each run's top cause, binned by
  the probability ddx gave it; per bin, how many runs, the mean probability
  stated and how often the top cause was right. A well calibrated ddx is right
  about as often as it says. A healthy run counts as right when its top cause is
  at or below 50% (ddx said "nothing stands out").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["BINS", "brier", "calibration_runs", "reliability", "render_calibration", "render_scored"]

BINS = ((0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0001))


def calibration_runs(results: Iterable[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """(expected condition or "", every condition's probability) for each run that counts."""
    out: list[tuple[str, dict[str, float]]] = []
    for r in results:
        runs = [d for d in r.get("runs", []) if not d.get("error") and d.get("probs")]
        if not runs or str(r.get("error", "")).startswith("not run"):
            continue
        chosen = runs if not r.get("expected") else runs[-1:]
        out += [(r.get("expected", ""), d["probs"]) for d in chosen]
    return out


def brier(runs: list[tuple[str, dict[str, float]]]) -> float | None:
    if not runs:
        return None
    total = 0.0
    for expected, probs in runs:
        total += sum((p - (1.0 if c == expected else 0.0)) ** 2 for c, p in probs.items())
    return total / len(runs)


def reliability(runs: list[tuple[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """One row per bin of the top cause's probability: n, mean stated, share right."""
    rows = []
    for lo, hi in BINS:
        stated: list[float] = []
        right = 0
        for expected, probs in runs:
            if not probs:
                continue
            top, p = max(probs.items(), key=lambda kv: (kv[1], kv[0]))
            if not lo <= p < hi:
                continue
            stated.append(p)
            right += (top == expected) if expected else (p <= 0.5)
        rows.append({"bin": (lo, min(hi, 1.0)), "n": len(stated),
                     "stated": sum(stated) / len(stated) if stated else None,
                     "right": right / len(stated) if stated else None})
    return rows


def render_calibration(results: list[dict[str, Any]], label: str = "") -> str:
    return render_scored(calibration_runs(results), label)


def render_scored(runs: list[tuple[str, dict[str, float]]], label: str = "") -> str:
    """The Brier score and the reliability table of scored runs, (truth or "", probabilities)."""
    b = brier(runs)
    if b is None:
        return "No scored runs.\n"
    lines = [f"Brier score{label}: {b:.3f} over {len(runs)} runs "
             f"(0 is perfect; sum over the conditions of (p - truth)^2, a run's mean)", "",
             "| ddx's top cause at | runs | mean stated | right |", "|---|---:|---:|---:|"]
    for row in reliability(runs):
        lo, hi = row["bin"]
        span = f"{lo:.0%}–{hi:.0%}" if lo else f"≤ {hi:.0%} (nothing stands out)"
        if not row["n"]:
            lines.append(f"| {span} | 0 | — | — |")
            continue
        lines.append(f"| {span} | {row['n']} | {row['stated']:.0%} | {row['right']:.0%} |")
    return "\n".join(lines) + "\n"
