#!/usr/bin/env python3
"""The knowledge base against the incident corpus (bench/kb/cases): how often the true cause
ranks first and in the top three, per condition, which conditions it is taken for, how much
"a cause not in the knowledge base" gets when the cause is not in it, and the calibration.

    .venv/bin/python bench/kb/run.py [--cases DIR] [--kb DIR ...] [--json]
    .venv/bin/python bench/kb/run.py --cases bench/kb/heldout    # the held-out incidents

Every case is diagnosed from its own present/absent findings, as `ddx diagnose --case` does.
The corpus was written by people who saw only the finding and condition vocabularies, never
the knowledge base's numbers (bench/kb/README.md), so these figures measure the hand-set
knowledge base on incidents it was not fitted to.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench" / "accuracy"))

from calibration import brier, render_scored  # noqa: E402

from ddx.cases import load_case  # noqa: E402
from ddx.engine.diagnosis import diagnose  # noqa: E402
from ddx.errors import CaseError  # noqa: E402
from ddx.kb.loader import load_kb  # noqa: E402
from ddx.kb.model import KnowledgeBase  # noqa: E402
from ddx.safeload import load_yaml, read_limited  # noqa: E402


@dataclass(frozen=True)
class Result:
    name: str
    cause: str
    in_kb: bool
    misleading: bool
    ranked: tuple[tuple[str, float], ...]  # every condition, most likely first
    unlisted: float

    @property
    def rank(self) -> int | None:
        ids = [c for c, _ in self.ranked]
        return ids.index(self.cause) + 1 if self.cause in ids else None


def evaluate(kb: KnowledgeBase, paths: list[Path]) -> list[Result]:
    out = []
    for p in paths:
        truth = load_yaml(read_limited(p)).get("truth") or {}
        case = load_case(str(p), kb.findings)
        d = diagnose(kb, case.findings)
        out.append(Result(p.name, str(truth.get("cause", "")), bool(truth.get("in_kb")),
                          bool(truth.get("misleading")),
                          tuple((h.id, h.probability) for h in d.hypotheses), d.unlisted))
    return out


def summary(results: list[Result]) -> dict[str, Any]:
    inkb = [r for r in results if r.in_kb]
    outside = [r for r in results if not r.in_kb]
    per: dict[str, dict[str, int]] = {}
    for r in inkb:
        row = per.setdefault(r.cause, {"n": 0, "top1": 0, "top3": 0})
        row["n"] += 1
        row["top1"] += r.rank == 1
        row["top3"] += r.rank is not None and r.rank <= 3
    confusions = Counter((r.cause, r.ranked[0][0]) for r in inkb if r.rank != 1)
    runs = [(r.cause if r.in_kb else "", dict(r.ranked)) for r in results]
    misleading = [r for r in inkb if r.misleading]
    return {
        "cases": len(results),
        "in_kb": len(inkb),
        "top1": sum(r.rank == 1 for r in inkb),
        "top3": sum(r.rank is not None and r.rank <= 3 for r in inkb),
        "misleading": len(misleading),
        "misleading_top1": sum(r.rank == 1 for r in misleading),
        "median_p_true": _median([dict(r.ranked).get(r.cause, 0.0) for r in inkb]),
        "per_condition": dict(sorted(per.items())),
        "confusions": [{"truth": a, "taken_for": b, "n": n} for (a, b), n in confusions.most_common()],
        "not_in_kb": [{"case": r.name, "cause": r.cause, "unlisted": round(r.unlisted, 3),
                       "top": r.ranked[0][0], "p_top": round(r.ranked[0][1], 3)} for r in outside],
        "unlisted_in_kb_median": _median([r.unlisted for r in inkb]),
        "unlisted_outside_median": _median([r.unlisted for r in outside]),
        "brier": brier(runs),
        "calibration": render_scored(runs, " (cases outside the knowledge base count as 'no cause')"),
    }


def condition_removed(kb: KnowledgeBase, paths: list[Path], results: list[Result]) -> dict[str, Any]:
    """Each in-KB case diagnosed again by the knowledge base without its true cause: a cause
    not in the knowledge base, by construction, with evidence written for it. How much does
    "a cause not in the knowledge base" get then, against when the cause is in?"""
    from dataclasses import replace

    from ddx.engine.inference import posterior
    from ddx.model import State

    before = {r.name: r.unlisted for r in results if r.in_kb}
    rows = []
    for p in paths:
        truth = load_yaml(read_limited(p)).get("truth") or {}
        cause = str(truth.get("cause", ""))
        if not truth.get("in_kb") or cause not in kb.conditions:
            continue
        without = replace(kb, conditions={k: v for k, v in kb.conditions.items() if k != cause})
        case = load_case(str(p), kb.findings)
        post = posterior(without, {f.id: f.state for f in case.findings if f.state is not State.UNKNOWN})
        top, p_top = post.ranked()[0]
        rows.append({"case": p.name, "cause": cause, "unlisted": post.unlisted, "with_cause": before[p.name],
                     "top": top, "p_top": p_top})
    return {
        "runs": len(rows),
        "unlisted_median": _median([r["unlisted"] for r in rows]),
        "unlisted_with_cause_median": _median([r["with_cause"] for r in rows]),
        "rose": sum(r["unlisted"] > r["with_cause"] for r in rows),
        "unlisted_first": sum(r["unlisted"] > r["p_top"] for r in rows),
    }


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def render(s: dict[str, Any]) -> str:
    pct = lambda a, b: f"{a}/{b} ({a / b:.0%})" if b else "0/0"  # noqa: E731
    lines = [
        f"{s['cases']} cases, {s['in_kb']} with a cause in the knowledge base",
        f"top-1 {pct(s['top1'], s['in_kb'])}, top-3 {pct(s['top3'], s['in_kb'])}, "
        f"median probability of the true cause {s['median_p_true']:.2f}",
        f"misleading cases: top-1 {pct(s['misleading_top1'], s['misleading'])}",
        "",
        f"{'condition':28} {'n':>3} {'top-1':>6} {'top-3':>6}",
    ]
    for cid, row in s["per_condition"].items():
        lines.append(f"{cid:28} {row['n']:>3} {row['top1']:>6} {row['top3']:>6}")
    lines += ["", "confusions (true cause -> ranked first):"]
    lines += [f"  {c['truth']} -> {c['taken_for']} x{c['n']}" for c in s["confusions"]]
    lines += ["", "causes not in the knowledge base (share for 'a cause not in the knowledge base'):"]
    lines += [f"  {c['cause']:22} {c['unlisted']:.2f}  (first: {c['top']} {c['p_top']:.2f})  {c['case']}"
              for c in s["not_in_kb"]]
    if s["unlisted_outside_median"] is not None and s["unlisted_in_kb_median"] is not None:
        lines.append(f"  median share: {s['unlisted_outside_median']:.3f} when the cause is outside, "
                     f"{s['unlisted_in_kb_median']:.3f} when it is inside")
    rm = s.get("condition_removed")
    if rm and rm["runs"]:
        lines += ["", f"each case again with its cause taken out of the knowledge base ({rm['runs']} runs): the share "
                      f"for 'a cause not in the knowledge base' rose in {rm['rose']}, median "
                      f"{rm['unlisted_with_cause_median']:.3f} -> {rm['unlisted_median']:.3f}; it ranks above every "
                      f"condition in {rm['unlisted_first']}"]
    lines += ["", s["calibration"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=Path, default=HERE / "cases")
    ap.add_argument("--kb", action="append", default=[], metavar="DIR", help="extra knowledge-base folders")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    paths = sorted(args.cases.glob("*.yaml"))
    if not paths:
        print(f"bench/kb: no case files in {args.cases}", file=sys.stderr)
        return 2
    try:
        kb = load_kb(args.kb)
        results = evaluate(kb, paths)
        removed = condition_removed(kb, paths, results)
    except CaseError as exc:
        print(f"bench/kb: {exc}", file=sys.stderr)
        return 2
    s = summary(results)
    s["condition_removed"] = removed
    print(json.dumps(s, indent=1) if args.json else render(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
