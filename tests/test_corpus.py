"""The incident corpus of bench/kb: every case loads against the vocabulary, names its source
and its truth, and the truth agrees with the knowledge base."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ddx.cases import load_case
from ddx.kb.loader import load_kb

BENCH = Path(__file__).resolve().parent.parent / "bench" / "kb"
KB = load_kb()
DEV = sorted((BENCH / "cases").glob("*.yaml"))
HELDOUT = [p for d in ("heldout", "heldout2", "heldout3", "heldout4") for p in sorted((BENCH / d).glob("*.yaml"))]
FILES = DEV + HELDOUT


def _truth(path: Path) -> dict[str, object]:
    return yaml.safe_load(path.read_text())["truth"]


def test_the_corpus_is_large_enough_with_three_cases_of_every_condition() -> None:
    assert len(DEV) >= 100 and len(HELDOUT) >= 300
    counts = {c: 0 for c in KB.conditions}
    for p in FILES:
        t = _truth(p)
        if t["in_kb"]:
            counts[str(t["cause"])] += 1
    assert not [c for c, n in counts.items() if n < 3], counts
    outside = [p for p in FILES if not _truth(p)["in_kb"]]
    assert len(outside) >= 8, "cases of causes the knowledge base does not know"


def test_causes_outside_the_knowledge_base_get_a_larger_unlisted_share() -> None:
    """The corpus's incidents whose cause the knowledge base lacks leave more to "a cause not in
    the knowledge base" than those whose cause it has."""
    from statistics import median

    from ddx.engine.inference import posterior
    from ddx.model import State

    inside, outside = [], []
    for p in FILES:
        case = load_case(str(p), KB.findings)
        share = posterior(KB, {f.id: f.state for f in case.findings if f.state is not State.UNKNOWN}).unlisted
        (inside if _truth(p)["in_kb"] else outside).append(share)
    assert median(outside) >= 1.5 * median(inside), (median(outside), median(inside))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_a_case_of_the_corpus(path: Path) -> None:
    case = load_case(str(path), KB.findings)
    assert not case.warnings, case.warnings
    data = yaml.safe_load(path.read_text())
    assert re.search(r"https?://\S+", data["source"]), "a source with its address"
    truth = data["truth"]
    assert truth["in_kb"] is (truth["cause"] in KB.conditions), truth
    assert len(data["story"].split()) >= 30
