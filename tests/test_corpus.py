"""The incident corpus of bench/kb: every case loads against the vocabulary, names its source
and its truth, and the truth agrees with the knowledge base."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ddx.cases import load_case
from ddx.kb.loader import load_kb

CORPUS = Path(__file__).resolve().parent.parent / "bench" / "kb" / "cases"
KB = load_kb()
FILES = sorted(CORPUS.glob("*.yaml"))


def test_the_corpus_is_large_enough() -> None:
    assert len(FILES) >= 100


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_a_case_of_the_corpus(path: Path) -> None:
    case = load_case(str(path), KB.findings)
    assert not case.warnings, case.warnings
    data = yaml.safe_load(path.read_text())
    assert re.search(r"https?://\S+", data["source"]), "a source with its address"
    truth = data["truth"]
    assert truth["in_kb"] is (truth["cause"] in KB.conditions), truth
    assert len(data["story"].split()) >= 30
