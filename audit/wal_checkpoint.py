"""WAL checkpoints of the audit store on a background thread, off the request path.

SQLite's automatic checkpoint runs inside the COMMIT that crosses its threshold, so every
few hundred appends one request paid for copying the WAL into the database file and two
fsyncs (milliseconds). The store raises that threshold to a fallback and wakes this thread
instead, which runs a PASSIVE checkpoint on its own connection (sqlite3 releases the GIL
while it runs). Durability does not change: a record is durable once its commit is in the
WAL, which is where ``append`` already returns.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["FALLBACK_PAGES", "WalCheckpointer"]

log = logging.getLogger(__name__)

FALLBACK_PAGES = 10_000
"""The writer's own ``wal_autocheckpoint`` (pages): if this thread cannot keep up or fails,
SQLite still checkpoints, so the WAL stays bounded (~40 MB) whatever happens here. Under
steady traffic a background checkpoint seldom ends before the next commit, and SQLite
rewinds the WAL only after a checkpoint that caught up, so the WAL does grow to this size;
the commit that crosses it then copies only what came since the last checkpoint."""


class WalCheckpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on its own thread every ``every_commits``."""

    def __init__(self, path: Path, every_commits: int = 200) -> None:
        """Open a second connection to ``path`` and start the (daemon) thread."""
        self.every_commits = every_commits
        self.checkpoints = 0  # completed ones, for tests and benchmarks
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._commits = 0
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lictor-audit-wal", daemon=True)
        self._thread.start()

    def committed(self) -> None:
        """Count one commit (the caller holds the store's lock); wake the thread when due."""
        self._commits += 1
        if self._commits >= self.every_commits:
            self._commits = 0
            self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:  # the fallback threshold keeps the WAL bounded meanwhile
                log.exception("background WAL checkpoint of the audit store failed")
            else:
                self.checkpoints += 1

    def close(self) -> None:
        """Stop the thread (after a checkpoint in progress) and close its connection."""
        self._stopping = True
        self._wake.set()
        self._thread.join(30)
        self._conn.close()
