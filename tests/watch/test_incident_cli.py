"""`ddx incident list|show`: what a person reads after the fact, from a real store."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from conftest import EXAMPLES, ROOT, run_ddx

from ddx.api import diagnose_case
from ddx.render.jsonout import to_dict
from ddx.watch.incidents import IncidentBook
from ddx.watch.store import Store

SCHEMA = json.loads((ROOT / "docs" / "schema" / "incident.schema.json").read_text())


def _store(tmp: Path) -> tuple[str, str]:
    path = str(tmp / "ddx.db")
    store = Store(path)
    t = [1_800_000_000.0]

    def clock() -> float:
        t[0] += 60
        return t[0]

    book = IncidentBook(store, clock=clock)
    inc, _ = book.open("watch:web-1", "watch", "web-1", "/var 99% full <script>alert(1)</script>",
                       symptoms=["disk.used_pct:/var"])
    first, _ = diagnose_case(str(EXAMPLES / "exversion-monday.yaml"))
    book.diagnosis(inc, to_dict(first.diagnosis))
    later, _ = diagnose_case(str(EXAMPLES / "shmoocon-noon-sale.yaml"))
    book.diagnosis(inc, to_dict(later.diagnosis))
    book.resolve(inc, "every symptom cleared")
    other, _ = book.open("alertmanager:{}:{alertname=\"X\"}", "alertmanager", "db-1", "X firing")
    store.close()
    return path, inc.id


def test_list_and_show_as_json_follow_the_schema(tmp_path: Path) -> None:
    path, iid = _store(tmp_path)
    r = run_ddx("incident", "list", "--store", path, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [i["status"] for i in rows] == ["open", "resolved"]  # newest first
    for row in rows:
        jsonschema.validate(row, {"$defs": SCHEMA["$defs"], "$ref": "#/$defs/incident"})
    r = run_ddx("incident", "list", "--store", path, "--json", "--status", "resolved")
    assert [i["id"] for i in json.loads(r.stdout)] == [iid]
    r = run_ddx("incident", "show", iid, "--store", path, "--json")
    full = json.loads(r.stdout)
    jsonschema.validate(full, SCHEMA)
    assert full["cause"] == full["diagnoses"][-1]["report"]["hypotheses"][0]["id"]
    assert [e["kind"] for e in full["timeline"]][:2] == ["opened", "diagnosis"]


def test_the_postmortem_draft_tells_the_story_and_keeps_host_text_inert(tmp_path: Path) -> None:
    path, iid = _store(tmp_path)
    r = run_ddx("incident", "show", iid, "--store", path, "--markdown")
    assert r.returncode == 0, r.stderr
    md = r.stdout
    for heading in ("## Timeline", "## How the differential changed", "## Evidence", "## What was ruled out",
                    "## Checks proposed", "## Resolution", "## Action items"):
        assert heading in md
    assert "disk-full" in md and "connection-limit" in md  # the differential moved between the two diagnoses
    assert "fell from" in md
    assert "every symptom cleared" in md
    assert "<script>" not in md and "\\<script\\>" in md
    terminal = run_ddx("incident", "show", iid, "--store", path).stdout
    assert "Timeline" in terminal and "leading cause" in terminal


def test_bad_requests_are_one_line_and_exit_2(tmp_path: Path) -> None:
    path, _ = _store(tmp_path)
    for args, words in ((("incident", "show", "nope", "--store", path), "no incident 'nope'"),
                        (("incident", "list", "--store", str(tmp_path / "missing.db")), "no incident store"),
                        (("incident", "list", "--store", path, "--limit", "0"), "--limit"),
                        (("incident",), "say list or show")):
        r = run_ddx(*args)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "Traceback" not in r.stderr
