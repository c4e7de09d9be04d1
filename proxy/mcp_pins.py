"""Pinned MCP tool definitions (OWASP ASI04 Agentic Supply Chain), kept in SQLite.

A tool's description and input schema are what a model reads to decide how to call it: a
server that changes them after review can plant instructions (a "rug pull"). Each
(server, tool) keeps the digest a person approved (or, with `pin: first_use`, the first
one seen) and the latest one seen. A tool is usable only while the two are equal; a new or
changed definition waits for an admin, who can read it here before approving.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from lictor.enforcement.tool_pins import definition_digest
from lictor.enforcement.types import ToolDefinition

FIRST_USE = "first_use"  # `approved_by` of a definition pinned on first sight

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tool_pins (
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    pinned_digest TEXT,            -- NULL until approved
    seen_digest TEXT NOT NULL,     -- the definition the server serves now
    seen_definition TEXT NOT NULL, -- that definition as JSON, for the reviewer
    first_seen REAL NOT NULL,
    seen_at REAL NOT NULL,
    approved_by TEXT,
    approved_at REAL,
    PRIMARY KEY (server, tool)
)
"""


class PinStatus(StrEnum):
    APPROVED = "approved"  # the server serves the pinned definition
    PENDING = "pending"  # never approved
    CHANGED = "changed"  # approved once; the server now serves another definition


@dataclass(slots=True)
class ToolPin:
    server: str
    tool: str
    pinned_digest: str | None
    seen_digest: str
    seen_definition: dict[str, Any]
    first_seen: float
    seen_at: float
    approved_by: str | None = None
    approved_at: float | None = None

    @property
    def status(self) -> PinStatus:
        if self.pinned_digest is None:
            return PinStatus.PENDING
        if self.pinned_digest != self.seen_digest:
            return PinStatus.CHANGED
        return PinStatus.APPROVED

    def refusal(self) -> str:
        """Why the tool cannot be used now ("" when it can)."""
        if self.status is PinStatus.PENDING:
            return (f"tool {self.tool!r} of MCP server {self.server!r} is new and waits for an "
                    "admin to approve its definition")
        if self.status is PinStatus.CHANGED:
            return (f"the definition of tool {self.tool!r} of MCP server {self.server!r} changed "
                    f"since it was pinned ({(self.pinned_digest or '')[:19]}..., now "
                    f"{self.seen_digest[:19]}...); it waits for an admin to approve it again")
        return ""


class PinConflict(ValueError):
    pass


class PinStore:
    """All pins in memory for lookups on the hot path; SQLite written only on change.

    Used from the event loop's thread only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._pins: dict[tuple[str, str], ToolPin] = {}
        for row in self._db.execute("SELECT server, tool, pinned_digest, seen_digest, "
                                    "seen_definition, first_seen, seen_at, approved_by, "
                                    "approved_at FROM tool_pins"):
            pin = ToolPin(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6],
                          row[7], row[8])
            self._pins[(pin.server, pin.tool)] = pin

    def close(self) -> None:
        self._db.close()

    def get(self, server: str, tool: str) -> ToolPin | None:
        return self._pins.get((server, tool))

    def all(self) -> list[ToolPin]:
        return sorted(self._pins.values(), key=lambda p: (p.server, p.tool))

    def observe(self, server: str, tool: str, definition: ToolDefinition,
                first_use: bool) -> ToolPin:
        """Record the definition a server serves now; a first one is pinned at once only
        with `first_use`."""
        digest = definition_digest(tool, definition)
        pin = self._pins.get((server, tool))
        if pin is not None and pin.seen_digest == digest:
            return pin
        now = time.time()
        shown = {"description": definition.description, "inputSchema": definition.parameters}
        if pin is None:
            pin = ToolPin(server, tool, digest if first_use else None, digest, shown, now, now,
                          FIRST_USE if first_use else None, now if first_use else None)
        else:
            pin.seen_digest, pin.seen_definition, pin.seen_at = digest, shown, now
        self._save(pin)
        self._pins[(server, tool)] = pin
        return pin

    def approvable(self, server: str, tool: str, expected_digest: str | None) -> ToolPin:
        """The pin an approval would change, or why there is none (KeyError, PinConflict).
        `expected_digest` guards against approving a definition that changed after the
        reviewer read it."""
        pin = self._pins.get((server, tool))
        if pin is None:
            raise KeyError(f"lictor has not seen a tool {tool!r} of MCP server {server!r}")
        if pin.status is PinStatus.APPROVED:
            raise PinConflict(f"tool {tool!r} of {server!r} is approved: nothing waits")
        if expected_digest is not None and expected_digest != pin.seen_digest:
            raise PinConflict(f"the definition changed again since it was read: it is now "
                              f"{pin.seen_digest}; review it again")
        return pin

    def approve(self, server: str, tool: str, by: str, expected_digest: str | None) -> ToolPin:
        """Pin the definition the server serves now."""
        pin = self.approvable(server, tool, expected_digest)
        pin.pinned_digest, pin.approved_by, pin.approved_at = pin.seen_digest, by, time.time()
        self._save(pin)
        return pin

    def _save(self, pin: ToolPin) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tool_pins VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (pin.server, pin.tool, pin.pinned_digest, pin.seen_digest,
             json.dumps(pin.seen_definition, ensure_ascii=False), pin.first_seen, pin.seen_at,
             pin.approved_by, pin.approved_at))
