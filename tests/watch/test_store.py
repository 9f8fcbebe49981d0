"""The incident store and the incident book: records, migrations, retention, a full disk."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ddx.watch.incidents import IncidentBook
from ddx.watch.store import MIGRATIONS, Event, Store, StoreError

REPORT = {"status": "diagnosed", "hypotheses": [{"id": "disk-full", "name": "Disk full", "probability": 0.93}]}
OTHER = {"status": "diagnosed", "hypotheses": [{"id": "inode-exhaustion", "name": "Inode exhaustion",
                                                "probability": 0.8}]}


class Sent:
    """A sender that keeps what it was given (the notifiers have their own tests)."""

    def __init__(self) -> None:
        self.kinds: list[tuple[str, str]] = []

    def send(self, kind: str, incident: Any, report: Any) -> None:
        self.kinds.append((kind, incident.id))


def test_a_new_store_is_wal_at_the_latest_schema_and_refuses_a_newer_one(tmp_path: Path) -> None:
    path = str(tmp_path / "ddx.db")
    Store(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer than this ddx"):
        Store(path)


def test_an_unwritable_place_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"file/ddx\.db: cannot open the incident store"):
        Store(str(tmp_path / "file" / "ddx.db"))


def test_the_book_keeps_one_incident_per_key_and_notifies_open_change_resolve(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "ddx.db"))
    sent = Sent()
    book = IncidentBook(store, sent, clock=lambda: 1000.0)
    inc, new = book.open("watch:h", "watch", "h", "disk full", symptoms=["disk.used_pct:/var"])
    again, new2 = book.open("watch:h", "watch", "h", "disk full")
    assert new and not new2 and again.id == inc.id
    assert book.diagnosis(inc, REPORT) == "opened"
    assert book.diagnosis(inc, REPORT) is None  # the same leading cause: nothing to say
    assert book.diagnosis(inc, OTHER) == "changed"
    book.resolve(inc, "every symptom cleared")
    book.resolve(inc, "again")  # resolving twice records once
    assert [k for k, _ in sent.kinds] == ["opened", "changed", "resolved"]
    # read back by another process's view of the file
    other = Store(str(tmp_path / "ddx.db"))
    got = other.get(inc.id)
    assert got is not None and got.status == "resolved" and got.cause == "inode-exhaustion" and got.diagnosed == 3
    kinds = [e.kind for e in other.events(inc.id)]
    assert kinds == ["opened", "diagnosis", "diagnosis", "diagnosis", "cause-changed", "resolved"]
    assert len(other.diagnoses(inc.id)) == 3
    # a new fault on the same host is a new incident
    nxt, new3 = book.open("watch:h", "watch", "h", "memory")
    assert new3 and nxt.id != inc.id


def test_retention_deletes_old_resolved_incidents_and_keeps_open_ones(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "ddx.db"), retention_days=1, max_incidents=3)
    day = 86400.0
    for i in range(6):
        book = IncidentBook(store, clock=lambda i=i: 10 * day + i * 60.0)
        inc, _ = book.open(f"k{i}", "watch", "h", f"t{i}")
        if i != 0:
            book.resolve(inc, "cleared")
    old = IncidentBook(store, clock=lambda: 1.0)
    gone, _ = old.open("old", "watch", "h", "old")
    old.resolve(gone, "cleared")
    store.add_event(Event(gone.id, 1.0, "note", "x"))
    deleted = store.prune(10 * day + 3600)
    assert deleted == 3  # the old one (retention), then the oldest resolved beyond max_incidents
    left = {i.title for i in store.incidents(limit=100)}
    assert left == {"t0", "t3", "t4", "t5"}  # t0 is open: kept whatever its age
    assert store.events(gone.id) == []  # its timeline went with it


@contextmanager
def tiny_tmpfs(size: str = "256k") -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="ddx-store-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "ddx-test", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)
        os.rmdir(d)


def fill(d: Path) -> Path:
    p = d / "filler"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return p


@pytest.mark.root
def test_a_full_disk_under_the_store_loses_nothing(tmp_path: Path) -> None:
    with tiny_tmpfs() as d:
        store = Store(str(d / "ddx.db"))
        sent = Sent()
        book = IncidentBook(store, sent, clock=lambda: 2000.0)
        filler = fill(d)
        inc, _ = book.open("watch:h", "watch", "h", "disk full", symptoms=["disk.used_pct:/x"])
        book.diagnosis(inc, REPORT)
        book.event(inc, "note", "x" * 20000)  # a large write is sure to need a new page
        assert book.store_error and "full" in book.store_error and book.pending > 0
        assert sent.kinds == [("opened", inc.id)]  # notifying does not wait for the store
        with pytest.raises(StoreError, match="full"):
            store.put_state("x", "y" * 20000, 1.0)
        filler.unlink()
        assert book.flush() and book.pending == 0 and not book.store_error
        got = store.get(inc.id)
        assert got is not None and got.cause == "disk-full"
        assert [e.kind for e in store.events(inc.id)] == ["opened", "diagnosis", "note"]
        store.close()
