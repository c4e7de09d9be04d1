"""WAL checkpoints of the audit store run on a background thread, not inside a request's
commit; the records stay durable and verifiable whatever that thread does."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lictor.audit import AuditStore, verify_chain
from lictor.audit.wal_checkpoint import FALLBACK_PAGES


def _wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def _records_in_file_alone(path: Path, copy: Path) -> int:
    """Records in a copy of the database file without its WAL (0 if caught mid-write)."""
    shutil.copyfile(path, copy)
    try:
        db = sqlite3.connect(copy)
        try:
            (count,) = db.execute("SELECT count(*) FROM records").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return 0
    return int(count)


def test_the_wal_is_checkpointed_in_the_background(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        (pages,) = store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()
        assert pages == FALLBACK_PAGES  # SQLite's own checkpoint in a commit: a fallback
        store._wal.every_commits = 5
        for i in range(12):
            store.append({"event": "request", "n": i})
        # the database file alone, without its WAL, comes to hold the first ten records
        _wait_for(lambda: _records_in_file_alone(path, tmp_path / "copy.db") >= 10)
        assert store._wal.checkpoints >= 1
        thread = store._wal._thread
    assert not thread.is_alive()  # close stops it
    report = verify_chain(path)
    assert report.ok and report.records == 12


def test_a_failing_background_checkpoint_does_not_stop_appends(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        store._wal.every_commits = 1
        store._wal._conn.close()  # every checkpoint now fails
        with caplog.at_level(logging.ERROR, logger="lictor.audit.wal_checkpoint"):
            for i in range(3):
                store.append({"event": "request", "n": i})
            _wait_for(lambda: "background WAL checkpoint" in caplog.text)
        assert store._wal.checkpoints == 0
        assert store.head[0] == 3
    report = verify_chain(path)
    assert report.ok and report.records == 3
