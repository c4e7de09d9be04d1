"""Offline verification of an audit store's hash chain.

Opens the store read-only and re-derives every link, so an operator (or a
CI job) can prove the log was not edited, truncated, reordered or padded.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lictor.audit.canonical_json import canonicalize
from lictor.audit.store import GENESIS_HASH

__all__ = ["VerifyReport", "verify_chain"]


@dataclass(slots=True, frozen=True)
class VerifyReport:
    """Outcome of ``verify_chain``.

    ``records`` counts the records found intact before the first problem (all
    of them when ``ok``); ``problem`` is empty when ``ok``, else one sentence.
    """

    ok: bool
    records: int
    first_bad_seq: int | None
    problem: str


def _fail(records: int, seq: int | None, problem: str) -> VerifyReport:
    """Build a failing report."""
    return VerifyReport(ok=False, records=records, first_bad_seq=seq, problem=problem)


def _check_record(seq: int, stored_hash: str, body: str, prev_hash: str) -> str | None:
    """Return why record ``seq`` is bad, or None if it links correctly to ``prev_hash``."""
    try:
        record: Any = json.loads(body)
    except ValueError:
        return f"record {seq}: body is not valid JSON (modified)"
    if not isinstance(record, dict):
        return f"record {seq}: body is not a JSON object (modified)"
    try:
        canonical = canonicalize(record).decode("utf-8")
    except (TypeError, ValueError):
        canonical = None
    if canonical != body:
        return f"record {seq}: body is not in canonical form (modified)"
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != stored_hash:
        return f"record {seq}: hash does not match its content (modified)"
    body_seq = record.get("seq")
    if type(body_seq) is not int or body_seq != seq:
        return f"record {seq}: body says it is record {body_seq!r} (inserted or reordered)"
    if record.get("prev_hash") != prev_hash:
        if seq == 1:
            return "record 1: prev_hash is not the genesis value (inserted or reordered)"
        return f"record {seq}: prev_hash does not match record {seq - 1} (inserted or reordered)"
    return None


def _start(conn: sqlite3.Connection) -> tuple[int, str]:
    """Where the chain starts: record 1 from genesis, or after the furthest prune note
    (its signature is checked by the full verify; here it only says where to begin)."""
    from lictor.audit.prune import last_prune  # prune notes are checkpoint-style notes

    try:
        rows = conn.execute("SELECT id, note FROM prunes").fetchall()
    except sqlite3.OperationalError:  # a store from before retention existed
        return 1, GENESIS_HASH
    pruned = last_prune([(int(i), str(n)) for i, n in rows])
    return (1, GENESIS_HASH) if pruned is None else (pruned.through + 1, pruned.last_hash)


def _walk(conn: sqlite3.Connection) -> VerifyReport:
    """Check every record and then the chain head, inside one read snapshot."""
    expected, prev_hash = _start(conn)
    for seq, stored_hash, body in conn.execute("SELECT seq, hash, body FROM records ORDER BY seq"):
        good = expected - 1
        if seq != expected:
            if seq < expected:
                return _fail(good, seq, f"record {seq}: unexpected sequence number (inserted)")
            missing = (
                f"record {expected} is missing"
                if seq == expected + 1
                else f"records {expected} to {seq - 1} are missing"
            )
            return _fail(good, expected, f"{missing} (deleted)")
        if not isinstance(body, str) or not isinstance(stored_hash, str):
            return _fail(good, seq, f"record {seq}: hash or body is not text (modified)")
        problem = _check_record(seq, stored_hash, body, prev_hash)
        if problem is not None:
            return _fail(good, seq, problem)
        prev_hash = stored_hash
        expected += 1

    last = expected - 1
    head = conn.execute("SELECT seq, hash FROM chain_head WHERE id = 1").fetchone()
    if head is None:
        if last == 0:
            return VerifyReport(ok=True, records=0, first_bad_seq=None, problem="")
        return _fail(last, None, f"chain head is missing but the store has {last} records")
    head_seq, head_hash = head
    if head_seq > last:
        where = "the store is empty" if last == 0 else f"the store ends at {last}"
        return _fail(
            last,
            last + 1,
            f"chain head says {head_seq} records but {where} (records deleted at the end)",
        )
    if head_seq < last:
        return _fail(
            head_seq,
            head_seq + 1,
            f"chain head says {head_seq} records but the store ends at {last} "
            "(records added at the end)",
        )
    if head_hash != prev_hash:
        return _fail(
            last - 1,
            last,
            f"chain head hash does not match record {last} (last record replaced)",
        )
    return VerifyReport(ok=True, records=last, first_bad_seq=None, problem="")


def verify_chain(path: str | Path) -> VerifyReport:
    """Verify the audit store at ``path`` without modifying or creating anything."""
    db_path = Path(path)
    if not db_path.is_file():
        return _fail(0, None, f"no audit store at {db_path}")
    uri = db_path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        return _fail(0, None, f"cannot open audit store at {db_path}: {exc}")
    try:
        conn.execute("BEGIN")  # one snapshot, so a live writer cannot skew the head check
        return _walk(conn)
    except sqlite3.Error as exc:
        return _fail(0, None, f"cannot read audit store at {db_path}: {exc}")
    finally:
        conn.close()
