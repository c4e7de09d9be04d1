"""Kill switches that survive a restart: an agent stopped by an operator stays stopped.

The engine reads the switches from its in-memory state store (no I/O per request); this
store keeps the operators' latest decisions in SQLite and loads them at start-up. A
persisted stop always applies; a persisted revive does not lift `disabled: true` in the
config, which only a config change lifts.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = ("CREATE TABLE IF NOT EXISTS kill_switches (agent TEXT PRIMARY KEY,"
           " stopped INTEGER NOT NULL, reason TEXT NOT NULL, by TEXT NOT NULL,"
           " at TEXT NOT NULL)")


class KillSwitches:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def stopped(self) -> list[str]:
        """Agents an operator stopped and did not revive."""
        with self._lock:
            rows = self._db.execute("SELECT agent FROM kill_switches WHERE stopped = 1")
            return [str(agent) for (agent,) in rows]

    def record(self, agent: str, stopped: bool, reason: str, by: str) -> None:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            self._db.execute(
                "INSERT INTO kill_switches VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent) DO UPDATE"
                " SET stopped = excluded.stopped, reason = excluded.reason, by = excluded.by,"
                " at = excluded.at", (agent, int(stopped), reason, by, at))

    def close(self) -> None:
        self._db.close()
