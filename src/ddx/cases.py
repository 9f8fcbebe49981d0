"""Case files: an incident described in the finding vocabulary.

Format (YAML or JSON; see ``docs/cases.md``)::

    title: ...            # for people
    source: ...
    story: ...
    present: [finding ids]   # observed
    absent: [finding ids]    # looked for and not seen
    expect: {...}            # for tests; ddx ignores it
    truth: {...}             # for the corpus benchmark (bench/kb); ddx ignores it
    proposed_findings: [...] # observations the vocabulary lacks; ddx ignores them

A present item may also be a mapping ``{id: ..., evidence: "..."}``.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from ddx.errors import CaseError
from ddx.model import Evidence, Finding, State
from ddx.safeload import LoadError, load_json, load_yaml, read_limited

__all__ = ["Case", "load_case", "observations"]

KNOWN_KEYS = {"title", "source", "story", "present", "absent", "expect", "notes", "tags", "truth", "proposed_findings"}


class Case:
    def __init__(self, path: str, meta: dict[str, str], findings: list[Finding], warnings: list[str]) -> None:
        self.path, self.meta, self.findings, self.warnings = path, meta, findings, warnings


def _suggest(fid: str, vocab: Collection[str]) -> str:
    close = difflib.get_close_matches(fid, list(vocab), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _items(raw: Any, key: str, path: str) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise CaseError(f"{path}: '{key}' must be a list of finding ids")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            out.append((item.strip(), ""))
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            out.append((item["id"].strip(), str(item.get("evidence", "")).strip()))
        else:
            raise CaseError(f"{path}: {key}[{i}]: expected a finding id, got {item!r}")
    return out


def load_case(path: str, vocab: Collection[str]) -> Case:
    """Read and validate a case file. Raises CaseError naming the file and the id."""
    p = Path(path)
    try:
        text = read_limited(p)
    except FileNotFoundError:
        raise CaseError(f"{path}: no such case file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaseError(f"{path}: cannot read: {exc}") from None
    except LoadError as exc:
        raise CaseError(f"{path}: not a valid case file: {exc.reason}") from None
    try:
        data = load_json(text) if p.suffix.lower() == ".json" else load_yaml(text)
    except LoadError as exc:
        where = f"{path}:{exc.line}" if exc.line else path
        raise CaseError(f"{where}: not a valid case file: {exc.reason}") from None
    if not isinstance(data, dict):
        raise CaseError(f"{path}: a case file is a mapping with 'present' and 'absent' lists")
    warnings = [f"{path}: ignoring unknown key {k!r}" for k in data if k not in KNOWN_KEYS]
    present = _items(data.get("present"), "present", path)
    absent = _items(data.get("absent"), "absent", path)
    if not present and not absent:
        raise CaseError(f"{path}: no findings: list what was seen under 'present' (and 'absent')")
    for fid, _ in present + absent:
        if fid not in vocab:
            raise CaseError(f"{path}: unknown finding id {fid!r}{_suggest(fid, vocab)}")
    both = sorted({f for f, _ in present} & {f for f, _ in absent})
    if both:
        raise CaseError(f"{path}: finding {both[0]!r} is listed both as present and as absent")
    source = f"case:{p.name}"
    findings = [
        Finding(fid, State.PRESENT, source, (Evidence(source=str(path), summary=ev),) if ev else ())
        for fid, ev in present
    ] + [Finding(fid, State.ABSENT, source) for fid, _ in absent]
    meta = {k: " ".join(str(data[k]).split()) for k in ("title", "source", "story") if data.get(k)}
    return Case(str(path), meta, findings, warnings)


def observations(saw: Iterable[str], ruled_out: Iterable[str], vocab: Collection[str]) -> list[Finding]:
    """Findings from --saw / --ruled-out. Raises CaseError on unknown or contradictory ids."""
    saw, ruled_out = list(saw), list(ruled_out)
    for fid in saw + ruled_out:
        if fid not in vocab:
            raise CaseError(f"unknown finding id {fid!r}{_suggest(fid, vocab)} (see `ddx findings`)")
    both = sorted(set(saw) & set(ruled_out))
    if both:
        raise CaseError(f"finding {both[0]!r} given both with --saw and with --ruled-out")
    return [Finding(f, State.PRESENT, "cli") for f in dict.fromkeys(saw)] + [
        Finding(f, State.ABSENT, "cli") for f in dict.fromkeys(ruled_out)
    ]
