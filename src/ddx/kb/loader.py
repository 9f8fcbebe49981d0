"""Load and validate the knowledge base.

The bundled knowledge base lives in ``ddx/kb/data``: ``findings.yaml`` (the
finding vocabulary) and ``conditions/*.yaml`` (one file per condition). A
user's folder (``--kb DIR``) may add conditions (``*.yaml``) and findings (a
``findings.yaml`` of its own). Validation collects every problem, each naming
the file, the line and the field, before raising one ``KBError``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import yaml

from ddx.errors import KBError
from ddx.kb.model import Check, Condition, FindingDef, KnowledgeBase, Outcome
from ddx.safeload import LoadError, compose_yaml, load_yaml, read_limited

__all__ = ["DATA_DIR", "load_kb", "lint_paths"]

DATA_DIR = Path(__file__).parent / "data"
MIN_UNLISTED = 0.10  # never less than this share for "a cause not in the knowledge base"
LEARNED_FILE = "learned.yaml"  # likelihoods fitted on the incident corpus (bench/kb/fit.py --write)
CALIBRATION_FILE = "calibration.yaml"  # the engine's temperature fitted on the incident corpus

CONDITION_KEYS = {"id", "name", "summary", "prior", "evidence", "checks", "remedies", "references"}
CONDITION_REQUIRED = ("id", "name", "summary", "prior", "evidence", "checks")
CHECK_KEYS = {"id", "title", "run", "outcomes", "cost", "auto", "reveals", "probe"}
CHECK_REQUIRED = ("id", "title", "run", "outcomes", "cost", "auto", "reveals")
FINDING_KEYS = {"description", "fp_rate", "kind", "seen_by", "implies"}
FINDING_KINDS = ("symptom", "context")

Path_ = tuple[Any, ...]


class _Problems:
    """Collects problems of one file, resolving line numbers lazily."""

    def __init__(self, file: str, text: str) -> None:
        self.file, self.text = file, text
        self.items: list[tuple[Path_, str]] = []
        self._lines: dict[Path_, int] | None = None

    def add(self, path: Path_, message: str) -> None:
        self.items.append((path, message))

    def render(self) -> list[str]:
        if self.items and self._lines is None:
            self._lines = _node_lines(self.text)[0]
        out = []
        for path, message in self.items:
            line = _nearest_line(self._lines or {}, path)
            where = f"{self.file}:{line}" if line else self.file
            field = _format_path(path)
            out.append(f"{where}: {field}: {message}" if field else f"{where}: {message}")
        return out


def _format_path(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in str(part):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _nearest_line(lines: dict[Path_, int], path: Path_) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _node_lines(text: str) -> tuple[dict[Path_, int], list[tuple[Path_, str]]]:
    """Line of every key and item (1-based), and the duplicate keys found."""
    lines: dict[Path_, int] = {}
    dups: list[tuple[Path_, str]] = []
    try:
        root = compose_yaml(text)
    except LoadError:
        return lines, dups

    def walk(node: Any, path: Path_) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for knode, vnode in node.value:
                key = knode.value
                kpath = path + (key,)
                if key in seen:
                    dups.append((kpath, f"duplicate key {key!r} (line {knode.start_mark.line + 1})"))
                seen.add(key)
                lines.setdefault(kpath, knode.start_mark.line + 1)
                walk(vnode, kpath)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(path + (i,), item.start_mark.line + 1)
                walk(item, path + (i,))

    if root is not None:
        lines[()] = root.start_mark.line + 1
        walk(root, ())
    return lines, dups


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _read_yaml(path: Path, problems: list[str], *, strict: bool) -> tuple[Any, _Problems] | None:
    try:
        text = read_limited(path)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return None
    except LoadError as exc:
        problems.append(f"{path}: cannot read: {exc.reason}")
        return None
    probs = _Problems(str(path), text)
    try:
        data = load_yaml(text)
    except LoadError as exc:
        where = f"{path}:{exc.line}" if exc.line else str(path)
        problems.append(f"{where}: not valid YAML: {exc.reason}")
        return None
    if strict:
        for dpath, message in _node_lines(text)[1]:
            probs.add(dpath, message)
    return data, probs


def _is_prob(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < float(value) < 1.0


def _parse_findings(path: Path, problems: list[str], *, strict: bool) -> dict[str, FindingDef]:
    read = _read_yaml(path, problems, strict=strict)
    if read is None:
        return {}
    data, probs = read
    out: dict[str, FindingDef] = {}
    if not isinstance(data, dict):
        probs.add((), "must be a mapping of finding id to its definition")
        problems.extend(probs.render())
        return out
    for fid, spec in data.items():
        p: Path_ = (fid,)
        if not isinstance(fid, str) or "." not in fid:
            probs.add(p, "a finding id is <area>.<fact>, e.g. disk.space_exhausted")
            continue
        if not isinstance(spec, dict):
            probs.add(p, "must be a mapping with description and fp_rate")
            continue
        for key in spec:
            if key not in FINDING_KEYS:
                probs.add(p + (key,), f"unknown key{_suggest(str(key), FINDING_KEYS)}")
        desc, fp, kind = spec.get("description"), spec.get("fp_rate"), spec.get("kind", "symptom")
        if not isinstance(desc, str) or not desc.strip():
            probs.add(p + ("description",), "missing or empty")
        if fp is None:
            probs.add(p + ("fp_rate",), "missing")
        elif not _is_prob(fp):
            probs.add(p + ("fp_rate",), f"{fp!r} is not a probability strictly between 0 and 1")
        if kind not in FINDING_KINDS:
            probs.add(p + ("kind",), f"{kind!r} is not one of {', '.join(FINDING_KINDS)}")
        implies = _str_list(spec.get("implies", []))
        if implies is None:
            probs.add(p + ("implies",), "must be a list of finding ids")
        if isinstance(desc, str) and _is_prob(fp) and kind in FINDING_KINDS and implies is not None:
            out[fid] = FindingDef(fid, desc.strip(), float(fp), kind, str(spec.get("seen_by", "")).strip(),
                                  implies)
    problems.extend(probs.render())
    return out


def _str_list(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _parse_check(spec: Any, p: Path_, probs: _Problems, cond_id: str, vocab: Iterable[str]) -> Check | None:
    if not isinstance(spec, dict):
        probs.add(p, "a check is a mapping (id, title, run, outcomes, cost, auto, reveals) or the id of a check defined elsewhere")
        return None
    ok = True
    for key in spec:
        if key not in CHECK_KEYS:
            probs.add(p + (key,), f"unknown key{_suggest(str(key), CHECK_KEYS)}")
            ok = False
    for key in CHECK_REQUIRED:
        if key not in spec:
            probs.add(p, f"missing field {key!r}")
            ok = False
    if not ok:
        return None
    run = _str_list(spec["run"])
    if not run or not all(r.strip() for r in run):
        probs.add(p + ("run",), "the exact command(s) a person runs: a string or a list of strings")
        ok = False
    else:
        from ddx.engine.facts import FACTS, placeholders

        for i, cmd in enumerate(run):
            for name in placeholders(cmd):
                if name not in FACTS:
                    probs.add(p + ("run", i), f"unknown fact {{{{{name}}}}}{_suggest(name, FACTS)} "
                                              f"(facts ddx fills in: {', '.join(sorted(FACTS))})")
                    ok = False
    outcomes: list[Outcome] = []
    if not isinstance(spec["outcomes"], list) or not spec["outcomes"]:
        probs.add(p + ("outcomes",), "a non-empty list of {seen, means}")
        ok = False
    else:
        for i, o in enumerate(spec["outcomes"]):
            if not isinstance(o, dict) or set(o) != {"seen", "means"} or not all(isinstance(v, str) for v in o.values()):
                probs.add(p + ("outcomes", i), "each outcome is a mapping with exactly 'seen' and 'means' (strings)")
                ok = False
            else:
                outcomes.append(Outcome(o["seen"].strip(), o["means"].strip()))
    cost = spec["cost"]
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost <= 0:
        probs.add(p + ("cost",), f"{cost!r} is not a positive number of seconds")
        ok = False
    if not isinstance(spec["auto"], bool):
        probs.add(p + ("auto",), "true or false: may ddx run this check itself (read-only and fast)?")
        ok = False
    reveals = _str_list(spec["reveals"])
    vocab = set(vocab)
    if not reveals:
        probs.add(p + ("reveals",), "a non-empty list of finding ids this check reveals")
        ok = False
    else:
        for i, fid in enumerate(reveals):
            if fid not in vocab:
                probs.add(p + ("reveals", i), f"unknown finding id {fid!r}{_suggest(fid, vocab)}")
                ok = False
    for key in ("id", "title"):
        if not isinstance(spec[key], str) or not spec[key].strip():
            probs.add(p + (key,), "must be a non-empty string")
            ok = False
    if not ok:
        return None
    return Check(
        id=spec["id"], title=spec["title"].strip(), run=tuple(r.strip() for r in run or ()),
        outcomes=tuple(outcomes), cost=float(cost), auto=spec["auto"], reveals=tuple(reveals or ()),
        condition=cond_id, probe=str(spec.get("probe", "")),
    )


def _parse_condition(
    path: Path, problems: list[str], vocab: dict[str, FindingDef], *, strict: bool
) -> tuple[Condition, list[Check], list[tuple[str, Path_]], _Problems] | None:
    read = _read_yaml(path, problems, strict=strict)
    if read is None:
        return None
    data, probs = read
    if not isinstance(data, dict):
        probs.add((), "a condition file is a mapping (id, name, summary, prior, evidence, checks)")
        problems.extend(probs.render())
        return None
    ok = True
    for key in data:
        if key not in CONDITION_KEYS:
            probs.add((key,), f"unknown key{_suggest(str(key), CONDITION_KEYS)}")
            ok = False
    for key in CONDITION_REQUIRED:
        if key not in data:
            probs.add((), f"missing field {key!r}")
            ok = False
    cid = data.get("id")
    if not isinstance(cid, str) or not cid:
        probs.add(("id",), "must be a non-empty string")
        ok = False
    elif cid != path.stem:
        probs.add(("id",), f"id {cid!r} differs from the file name {path.name!r}")
        ok = False
    for key in ("name", "summary"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            probs.add((key,), "must be a non-empty string")
            ok = False
    prior = data.get("prior")
    if "prior" in data and not _is_prob(prior):
        probs.add(("prior",), f"{prior!r} is not a probability strictly between 0 and 1")
        ok = False
    likelihoods: dict[str, float] = {}
    evidence = data.get("evidence")
    if "evidence" in data:
        if not isinstance(evidence, dict) or not evidence:
            probs.add(("evidence",), "a mapping of finding id to P(present | this condition)")
            ok = False
        else:
            for fid, p in evidence.items():
                if fid not in vocab:
                    probs.add(("evidence", fid), f"unknown finding id {fid!r}{_suggest(str(fid), vocab)}")
                    ok = False
                elif not _is_prob(p):
                    probs.add(("evidence", fid), f"{p!r} is not a probability strictly between 0 and 1")
                    ok = False
                else:
                    likelihoods[fid] = float(p)
    checks: list[Check] = []
    refs: list[tuple[str, Path_]] = []
    check_ids: list[str] = []
    raw_checks = data.get("checks")
    if "checks" in data:
        if not isinstance(raw_checks, list) or not raw_checks:
            probs.add(("checks",), "a non-empty list of checks")
            ok = False
        else:
            for i, spec in enumerate(raw_checks):
                if isinstance(spec, str):
                    refs.append((spec, ("checks", i)))
                    check_ids.append(spec)
                    continue
                chk = _parse_check(spec, ("checks", i), probs, str(cid), vocab)
                if chk is None:
                    ok = False
                else:
                    checks.append(chk)
                    check_ids.append(chk.id)
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("remedies", "references"):
        val = data.get(key, [])
        got = _str_list(val)
        if got is None:
            probs.add((key,), "a list of strings")
            ok = False
        lists[key] = tuple(s.strip() for s in got or ())
    if not ok or probs.items or not isinstance(cid, str) or not _is_prob(prior):
        problems.extend(probs.render())
        return None
    cond = Condition(
        id=cid, name=data["name"].strip(), summary=" ".join(data["summary"].split()), prior=float(prior),
        likelihoods=likelihoods, checks=tuple(check_ids), remedies=lists["remedies"],
        references=lists["references"], file=str(path),
    )
    return cond, checks, refs, probs


def _condition_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.name != "findings.yaml")


def _temperature(path: Path) -> float:
    """The fitted temperature of ``calibration.yaml`` (1 when the file is missing)."""
    if not path.exists():
        return 1.0
    try:
        data = load_yaml(read_limited(path))
    except (LoadError, OSError) as exc:
        raise KBError([f"{path}: {getattr(exc, 'reason', exc)}"]) from None
    value = data.get("temperature") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.1 <= float(value) <= 10.0:
        raise KBError([f"{path}: temperature: a number from 0.1 to 10 is required, not {value!r}"])
    return float(value)


def load_kb(extra: Sequence[str | os.PathLike[str]] = (), *, strict: bool = False,
            learned: bool = True) -> KnowledgeBase:
    """Load the bundled knowledge base plus the user folders in ``extra``.

    ``strict`` also detects duplicate YAML keys (slower; ``ddx kb lint`` and the
    test suite use it). User folders are always loaded strictly. ``learned``:
    apply the likelihoods and temperature fitted on the incident corpus
    (``data/learned.yaml``, when it exists; ``ddx.kb.learned``). The engine's
    temperature comes from ``data/calibration.yaml`` (fitted by bench/kb/fit.py).
    """
    problems: list[str] = []
    findings = _parse_findings(DATA_DIR / "findings.yaml", problems, strict=strict)
    folders: list[tuple[Path, bool]] = [(DATA_DIR / "conditions", strict)]
    for d in extra:
        folder = Path(d)
        if not folder.is_dir():
            raise KBError([f"{folder}: not a folder of condition files"])
        user_findings = folder / "findings.yaml"
        if user_findings.exists():
            for fid, fdef in _parse_findings(user_findings, problems, strict=True).items():
                if fid in findings:
                    problems.append(f"{user_findings}: {fid}: duplicate finding id (already defined by ddx)")
                else:
                    findings[fid] = fdef
        folders.append((folder, True))
    for fid, fdef in findings.items():
        for other in fdef.implies:
            if other not in findings or other == fid:
                problems.append(f"finding {fid}: implies {other!r}, which is not another finding of the vocabulary")
    conditions: dict[str, Condition] = {}
    checks: dict[str, Check] = {}
    pending_refs: list[tuple[str, Path_, _Problems]] = []
    for folder, strict_here in folders:
        files = _condition_files(folder)
        if not files and folder != DATA_DIR / "conditions":
            problems.append(f"{folder}: no condition files (*.yaml) found")
        for path in files:
            parsed = _parse_condition(path, problems, findings, strict=strict_here)
            if parsed is None:
                continue
            cond, own_checks, refs, probs = parsed
            if cond.id in conditions:
                probs.add(("id",), f"duplicate condition id {cond.id!r} (also in {conditions[cond.id].file})")
                problems.extend(probs.render())
                continue
            conditions[cond.id] = cond
            for i, chk in enumerate(own_checks):
                if chk.id in checks:
                    idx = cond.checks.index(chk.id)
                    probs.add(("checks", idx, "id"), f"duplicate check id {chk.id!r} (also in {checks[chk.id].condition})")
                    problems.extend(probs.render())
                    probs.items.clear()
                else:
                    checks[chk.id] = chk
            pending_refs.extend((ref, p, probs) for ref, p in refs)
    for ref, p, probs in pending_refs:
        if ref not in checks:
            probs.add(p, f"no check with id {ref!r} is defined{_suggest(ref, checks)}")
            problems.extend(probs.render())
            probs.items.clear()
    if problems:
        raise KBError(problems)
    total = sum(c.prior for c in conditions.values())
    unlisted = max(MIN_UNLISTED, 1.0 - total)
    kb = KnowledgeBase(findings=findings, conditions=conditions, checks=checks, unlisted_prior=unlisted,
                       sources=tuple(str(f) for f, _ in folders), temperature=_temperature(DATA_DIR / CALIBRATION_FILE))
    fitted = DATA_DIR / LEARNED_FILE
    if learned and fitted.exists():
        from ddx.kb.learned import apply_learned, learned_from_dict

        try:
            data = load_yaml(read_limited(fitted))
            kb = apply_learned(kb, learned_from_dict(data if isinstance(data, dict) else {}, fitted))
        except (LoadError, ValueError, OSError) as exc:
            raise KBError([f"{fitted}: {getattr(exc, 'reason', exc)}"]) from None
    return kb


def lint_paths(paths: Sequence[str | os.PathLike[str]]) -> KnowledgeBase:
    """Validate the bundled knowledge base strictly, plus the given user folders
    or single condition files (a file is linted together with its folder)."""
    folders: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_file():
            folders.append(str(path.parent))
        elif path.is_dir():
            folders.append(str(path))
        else:
            raise KBError([f"{path}: no such file or folder"])
    bundled = (DATA_DIR / "conditions").resolve()
    extra = [f for f in dict.fromkeys(folders) if Path(f).resolve() not in (bundled, DATA_DIR.resolve())]
    return load_kb(extra, strict=True)
