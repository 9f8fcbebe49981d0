#!/usr/bin/env python3
"""Learn the knowledge base's likelihoods from the incident corpus, and measure that honestly.

    .venv/bin/python bench/kb/fit.py [--cases DIR] [--write PATH] [--json]

The hand-set likelihoods are the expert's prior (``ddx.kb.learned``: a Beta prior worth
``n_listed`` incidents for a value a condition file states, ``n_unlisted`` for a leak it only
inherits); the corpus updates them. Every figure for a fitted knowledge base is leave-one-out:
each case is diagnosed by a knowledge base fitted without it. The temperature is fitted by
nested leave-one-out: for each case, on the other cases' leave-one-out results. The pseudo-counts
are a small grid, reported whole, so the choice among them is visible.

With ``--write PATH`` the fit on the whole corpus (the chosen pseudo-counts, the temperature
fitted on every case's leave-one-out result) is written as a learned-values file; copied to
``src/ddx/kb/data/learned.yaml`` it is what ``ddx`` loads.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench" / "accuracy"))

import yaml  # noqa: E402
from calibration import brier, render_scored  # noqa: E402

from ddx.cases import load_case  # noqa: E402
from ddx.engine.inference import posterior  # noqa: E402
from ddx.kb.learned import apply_learned, fit, learned_to_dict  # noqa: E402
from ddx.kb.loader import load_kb  # noqa: E402
from ddx.kb.model import KnowledgeBase  # noqa: E402
from ddx.model import State  # noqa: E402
from ddx.safeload import load_yaml, read_limited  # noqa: E402

GRID = ((4.0, 2.0), (8.0, 4.0), (16.0, 8.0))  # (n_listed, n_unlisted) pseudo-counts tried
CEILING = (1.0, 0.5)  # pseudo-counts of the in-sample fit: the cases themselves almost alone
TEMPERATURES = tuple(round(0.4 + 0.05 * i, 2) for i in range(33))  # 0.4 .. 2.0


@dataclass(frozen=True)
class Incident:
    name: str
    cause: str
    in_kb: bool
    observed: Mapping[str, State]


def load_incidents(folders: list[Path], kb: KnowledgeBase) -> list[Incident]:
    out = []
    for p in [p for f in folders for p in sorted(f.glob("*.yaml"))]:
        truth = load_yaml(read_limited(p)).get("truth") or {}
        case = load_case(str(p), kb.findings)
        out.append(Incident(p.name, str(truth.get("cause", "")), bool(truth.get("in_kb")),
                            {f.id: f.state for f in case.findings}))
    return out


def _probs(kb: KnowledgeBase, inc: Incident) -> dict[str, float]:
    post = posterior(kb, inc.observed)
    return {**post.probs, "(unlisted)": post.unlisted}


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _loss(probs: Mapping[str, float], inc: Incident) -> float:
    """Log loss of one case: -ln P(true cause), the unlisted share for a cause outside the KB."""
    p = probs.get(inc.cause, 0.0) if inc.in_kb else probs["(unlisted)"]
    return -math.log(max(p, 1e-9))


def loo_kbs(kb: KnowledgeBase, incidents: Sequence[Incident], n_listed: float, n_unlisted: float
            ) -> list[KnowledgeBase]:
    """For each case, the knowledge base fitted on all the other cases."""
    out = []
    for i in range(len(incidents)):
        rest = [(x.cause, x.observed) for j, x in enumerate(incidents) if j != i]
        out.append(apply_learned(kb, fit(kb, rest, n_listed=n_listed, n_unlisted=n_unlisted)))
    return out


def at_temperature(kbs: Sequence[KnowledgeBase], incidents: Sequence[Incident], t: float) -> list[dict[str, float]]:
    return [_probs(replace(k, temperature=t), inc) for k, inc in zip(kbs, incidents)]


def best_temperature(losses: Mapping[float, Sequence[float]], skip: int | None = None) -> float:
    """The temperature with the least total log loss, case ``skip`` left out."""
    return min(losses, key=lambda t: (sum(x for i, x in enumerate(losses[t]) if i != skip), t))


def score(results: Sequence[dict[str, float]], incidents: Sequence[Incident]) -> dict[str, Any]:
    inkb = [(r, x) for r, x in zip(results, incidents) if x.in_kb]
    outside = [(r, x) for r, x in zip(results, incidents) if not x.in_kb]

    def ranked(r: Mapping[str, float]) -> list[str]:
        return [c for c, _ in sorted(((c, p) for c, p in r.items() if c != "(unlisted)"), key=lambda kv: (-kv[1], kv[0]))]

    top1 = sum(ranked(r)[0] == x.cause for r, x in inkb)
    top3 = sum(x.cause in ranked(r)[:3] for r, x in inkb)
    per: dict[str, list[int]] = {}
    for r, x in inkb:
        row = per.setdefault(x.cause, [0, 0, 0])
        row[0] += 1
        row[1] += ranked(r)[0] == x.cause
        row[2] += x.cause in ranked(r)[:3]
    runs = [(x.cause if x.in_kb else "", {c: p for c, p in r.items() if c != "(unlisted)"})
            for r, x in zip(results, incidents)]
    return {
        "top1": top1, "top3": top3, "in_kb": len(inkb),
        "median_p_true": _median([r.get(x.cause, 0.0) for r, x in inkb]),
        "log_loss": sum(_loss(r, x) for r, x in zip(results, incidents)) / len(incidents),
        "brier": brier(runs),
        "unlisted_outside_median": _median([r["(unlisted)"] for r, _ in outside]),
        "unlisted_inside_median": _median([r["(unlisted)"] for r, _ in inkb]),
        "per_condition": {c: {"n": v[0], "top1": v[1], "top3": v[2]} for c, v in sorted(per.items())},
        "confusions": Counter((x.cause, ranked(r)[0]) for r, x in inkb if ranked(r)[0] != x.cause).most_common(),
        "calibration": render_scored(runs, " (causes outside the knowledge base count as 'no cause')"),
    }


def run(kb: KnowledgeBase, incidents: Sequence[Incident]) -> dict[str, Any]:
    hand = [_probs(replace(kb, temperature=1.0), x) for x in incidents]
    report: dict[str, Any] = {"cases": len(incidents), "hand": score(hand, incidents), "grid": []}
    # The hand-set likelihoods with only the temperature fitted: one number, by nested leave-one-out.
    by_t = {t: at_temperature([kb] * len(incidents), incidents, t) for t in TEMPERATURES}
    losses = {t: [_loss(r, x) for r, x in zip(rs, incidents)] for t, rs in by_t.items()}
    nested = [by_t[best_temperature(losses, skip=i)][i] for i in range(len(incidents))]
    report["hand_temperature"] = {"loo_temperature": score(nested, incidents),
                                  "temperature_all": best_temperature(losses)}
    best: dict[str, Any] | None = None
    for n_listed, n_unlisted in GRID:
        kbs = loo_kbs(kb, incidents, n_listed, n_unlisted)
        by_t = {t: at_temperature(kbs, incidents, t) for t in TEMPERATURES}
        losses = {t: [_loss(r, x) for r, x in zip(rs, incidents)] for t, rs in by_t.items()}
        plain = score(by_t[1.0], incidents)
        nested = [by_t[best_temperature(losses, skip=i)][i] for i in range(len(incidents))]
        tuned = score(nested, incidents)
        entry = {"n_listed": n_listed, "n_unlisted": n_unlisted, "loo": plain, "loo_temperature": tuned,
                 "temperature_all": best_temperature(losses)}
        report["grid"].append(entry)
        if best is None or tuned["log_loss"] < best["loo_temperature"]["log_loss"]:
            best = entry
    report["chosen"] = best
    report["ceiling"] = ceiling(kb, incidents)
    return report


def ceiling(kb: KnowledgeBase, incidents: Sequence[Incident]) -> dict[str, Any]:
    """What this model reaches on the cases when it is fitted to those very cases (pseudo-counts
    ``CEILING``, the temperature best on them): not a measure of generalisation, but a bound.
    Leave-one-out cannot do better than a model that has seen the case it is asked about, so a
    target above this line asks for more than the write-ups say."""
    fitted = apply_learned(kb, fit(kb, [(x.cause, x.observed) for x in incidents],
                                   n_listed=CEILING[0], n_unlisted=CEILING[1]))
    by_t = {t: at_temperature([fitted] * len(incidents), incidents, t) for t in TEMPERATURES}
    t = min(by_t, key=lambda t: (sum(_loss(r, x) for r, x in zip(by_t[t], incidents)), t))
    return {"temperature": t, "score": score(by_t[t], incidents)}


def render(rep: dict[str, Any]) -> str:
    def line(label: str, s: Mapping[str, Any]) -> str:
        return (f"{label:44} top-1 {s['top1']}/{s['in_kb']} ({s['top1'] / s['in_kb']:.0%})  "
                f"top-3 {s['top3'] / s['in_kb']:.0%}  median P(true) {s['median_p_true']:.2f}  "
                f"log loss {s['log_loss']:.3f}  Brier {s['brier']:.3f}  "
                f"unlisted share outside/inside {s['unlisted_outside_median']:.2f}/{s['unlisted_inside_median']:.2f}")
    ht = rep["hand_temperature"]
    out = [f"{rep['cases']} cases", line("hand-set (never fitted to these cases), T=1", rep["hand"]),
           line("hand-set, nested leave-one-out temperature", ht["loo_temperature"])
           + f"  (T on all: {ht['temperature_all']:g})"]
    for g in rep["grid"]:
        out.append(line(f"leave-one-out, pseudo-counts {g['n_listed']:g}/{g['n_unlisted']:g}, T=1", g["loo"]))
        out.append(line("  ... and nested leave-one-out temperature", g["loo_temperature"])
                   + f"  (T on all: {g['temperature_all']:g})")
    ce = rep["ceiling"]
    out.append(line(f"in-sample ceiling ({CEILING[0]:g}/{CEILING[1]:g}, fitted to these cases)", ce["score"])
               + f"  (T {ce['temperature']:g})")
    ch = rep["chosen"]
    s = ch["loo_temperature"]
    out += ["", f"chosen: pseudo-counts {ch['n_listed']:g}/{ch['n_unlisted']:g}, temperature {ch['temperature_all']:g}",
            "", f"{'condition':28} {'n':>3} {'top-1':>6} {'top-3':>6}   (leave-one-out)"]
    for cid, row in s["per_condition"].items():
        out.append(f"{cid:28} {row['n']:>3} {row['top1']:>6} {row['top3']:>6}")
    out += ["", "confusions (true cause -> ranked first), leave-one-out:"]
    out += [f"  {a} -> {b} x{n}" for (a, b), n in s["confusions"]]
    out += ["", s["calibration"]]
    if "heldout" in rep:
        h = rep["heldout"]
        out += ["", f"held-out incidents ({h['cases']}, never fitted to, scored by what was fitted on the corpus):",
                line("hand-set, T=1", h["hand"]),
                line(f"hand-set, T={ht['temperature_all']:g}", h["hand_temperature"]),
                line(f"learned {ch['n_listed']:g}/{ch['n_unlisted']:g}, T={ch['temperature_all']:g}", h["learned"])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=Path, nargs="+", default=[HERE / "cases"],
                    help="folders of case files to fit and score leave-one-out (default: bench/kb/cases)")
    ap.add_argument("--heldout", type=Path, default=HERE / "heldout",
                    help="cases never fitted to: the knowledge bases fitted on --cases are scored on them")
    ap.add_argument("--write", type=Path, metavar="PATH", help="write the fit on the whole corpus here")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    kb = load_kb(learned=False)
    incidents = load_incidents(args.cases, kb)
    if not incidents:
        print(f"bench/kb/fit: no case files in {', '.join(map(str, args.cases))}", file=sys.stderr)
        return 2
    rep = run(kb, incidents)
    held = load_incidents([args.heldout], kb) if args.heldout.is_dir() else []
    if held:
        ch, ht = rep["chosen"], rep["hand_temperature"]["temperature_all"]
        learned_kb = apply_learned(kb, fit(kb, [(x.cause, x.observed) for x in incidents], n_listed=ch["n_listed"],
                                           n_unlisted=ch["n_unlisted"], temperature=ch["temperature_all"]))
        rep["heldout"] = {
            "cases": len(held),
            "hand": score([_probs(replace(kb, temperature=1.0), x) for x in held], held),
            "hand_temperature": score([_probs(replace(kb, temperature=ht), x) for x in held], held),
            "learned": score([_probs(learned_kb, x) for x in held], held),
        }
    if args.write:
        ch = rep["chosen"]
        learned = fit(kb, [(x.cause, x.observed) for x in incidents], n_listed=ch["n_listed"],
                      n_unlisted=ch["n_unlisted"], temperature=ch["temperature_all"])
        head = (f"# Likelihoods learned from {len(incidents)} incidents of {', '.join(map(str, args.cases))} by "
                "bench/kb/fit.py;\n"
                "# 'hand' is the value of the condition file (or the finding's leak), kept there.\n")
        args.write.write_text(head + yaml.safe_dump(learned_to_dict(learned), sort_keys=True))
    if args.json:
        print(json.dumps(rep, indent=1, default=str))
    else:
        print(render(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
