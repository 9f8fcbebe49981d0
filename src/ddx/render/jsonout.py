"""The JSON form of a diagnosis (schema: docs/schema/diagnosis.schema.json).

The schema is versioned by ``SCHEMA``; fields are only added within a version.
Numbers are rounded so that the same input gives the same bytes.
"""

from __future__ import annotations

from typing import Any

from ddx import __version__
from ddx.engine.checks import CheckAdvice
from ddx.engine.diagnosis import Diagnosis, Hypothesis
from ddx.engine.inference import Weight
from ddx.host.redact import redact_text
from ddx.render.safe import json_text

__all__ = ["SCHEMA", "to_dict", "render_json"]

SCHEMA = "ddx.diagnosis/1"


def _weight(w: Weight) -> dict[str, Any]:
    return {"finding": w.finding, "state": w.state.value, "weight": round(w.decibans, 2)}


def _hypothesis(h: Hypothesis) -> dict[str, Any]:
    return {
        "id": h.id,
        "name": h.name,
        "probability": round(h.probability, 4),
        "prior": h.prior,
        "for": [_weight(w) for w in h.support],
        "against": [_weight(w) for w in h.against],
    }


def _check(a: CheckAdvice) -> dict[str, Any]:
    c = a.check
    out: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "command": "\n".join(a.run),
        "commands": list(a.run),
        "tests": list(a.tests),
        "gain": round(a.gain, 4),
        "score": round(a.score, 4),
        "cost": c.cost,
        "auto": c.auto,
        "reveals": list(a.unknown),
        "condition": c.condition,
        "outcomes": [{"seen": o.seen, "means": o.means} for o in c.outcomes],
        "purpose": a.purpose,
        "separation": round(a.separation, 4),
    }
    if a.unfilled:
        out["unfilled"] = list(a.unfilled)
        out["templates"] = list(c.run)
    return out


def status(d: Diagnosis) -> str:
    if d.nothing_wrong:
        return "nothing_wrong"
    top = d.hypotheses[0].probability if d.hypotheses else 0.0
    return "diagnosed" if top > 0.5 else "uncertain"


def to_dict(d: Diagnosis) -> dict[str, Any]:
    meta = dict(d.meta)
    out: dict[str, Any] = {"schema": SCHEMA, "ddx_version": __version__}
    for key in ("mode", "title", "source", "story", "host", "ssh", "case_file"):
        if key in meta:
            out[key] = meta[key]
    out["status"] = status(d)
    out["hypotheses"] = [_hypothesis(h) for h in d.hypotheses]
    out["unexplained"] = {
        "probability": round(d.unlisted, 4),
        "meaning": "a cause that is not in the knowledge base",
    }
    out["next_checks"] = [_check(a) for a in d.next_checks]
    out["findings"] = [f.to_dict() for f in d.findings]
    out["symptoms"] = list(d.symptoms)
    gaps = d.not_looked_at()
    if gaps:
        out["not_looked_at"] = [{"what": what, "findings": list(fids)} for what, fids in gaps]
    if "onset" in meta:
        out["onset"] = meta["onset"]
    if "probes" in meta:  # a probe's reason may quote what failed (a URL, a command line): redacted
        out["probes"] = [{**p, "reason": redact_text(p["reason"])} if isinstance(p.get("reason"), str) and p["reason"]
                         else p for p in meta["probes"]]
    if "collection_seconds" in meta:
        out["collection_seconds"] = meta["collection_seconds"]
    if "prometheus" in meta:
        out["prometheus"] = meta["prometheus"]
    return out


def render_json(d: Diagnosis) -> str:
    return json_text(to_dict(d)) + "\n"
