"""The full offline check behind `lictor audit verify`: chain, Merkle tree, keys, checkpoints.

The chain alone cannot catch an attacker who rewrites every record after an edit and
moves the chain head along; the signed checkpoints can, because their roots commit to
every record up to their size and only the private key can sign new ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from lictor.audit.checkpoints import (
    CheckpointError,
    check_note_signatures,
    check_signatures,
    parse_checkpoint,
)
from lictor.audit.merkle import CompactRange, leaf_hash
from lictor.audit.prune import last_prune, parse_prune
from lictor.audit.signing import VerifierKey, parse_vkey
from lictor.audit.verify import verify_chain

__all__ = ["Check", "FullReport", "verify_store"]


@dataclass(slots=True, frozen=True)
class Check:
    """One line of the report: what was checked, and OK or what is wrong and where."""

    subject: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail if self.ok else 'FAILED: ' + self.detail}"


@dataclass(slots=True)
class FullReport:
    """Every check made, in order; ``ok`` only if all passed."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def add(self, subject: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(subject, ok, detail))


def _tree(conn: sqlite3.Connection, report: FullReport, sizes: set[int], pruned: int = 0
          ) -> tuple[int, dict[int, bytes]]:
    """Recompute every leaf from its record's hash, compare with the stored leaves, and
    return (records, {size: root}) for the checkpoint ``sizes``, streaming in O(log n)."""
    (stored_count,) = conn.execute("SELECT count(*) FROM leaves").fetchone()
    stored = conn.execute("SELECT seq, hash FROM leaves ORDER BY seq")
    compact = CompactRange()
    roots = {0: compact.root()}
    problem = ""
    for _ in range(pruned):  # records removed under a signed prune: their leaves stand in
        row = stored.fetchone()
        if row is None:
            problem = f"leaf {compact.size + 1} of a pruned record is missing"
            break
        compact.append(bytes(row[1]))
        if compact.size in sizes:
            roots[compact.size] = compact.root()
    for (digest,) in conn.execute("SELECT hash FROM records ORDER BY seq"):
        try:
            leaf = leaf_hash(bytes.fromhex(str(digest)))
        except ValueError:  # a garbled hash: the chain check names the record
            leaf = leaf_hash(str(digest).encode())
        compact.append(leaf)
        if compact.size in sizes:
            roots[compact.size] = compact.root()
        row = stored.fetchone()
        if not problem and (row is None or tuple(row) != (compact.size, leaf)):
            problem = (f"leaf {compact.size} does not match record {compact.size} "
                       "(leaves table altered)")
    if stored_count != compact.size:
        problem = (f"{stored_count} stored leaves for {compact.size} records "
                   "(leaves table altered)")
    if problem:
        report.add("tree", False, problem)
    else:
        report.add("tree", True,
                   f"OK ({compact.size} leaves, root {compact.root().hex()[:16]}…)")
    return compact.size, roots


def _keys(
    conn: sqlite3.Connection, report: FullReport, trusted: Iterable[str]
) -> dict[bytes, VerifierKey]:
    """The public keys checkpoints may be signed by: pinned ones if given, else the store's."""
    pinned = [parse_vkey(k) for k in trusted]
    known: dict[bytes, VerifierKey] = {k.key_id: k for k in pinned}
    for stored_id, vkey in conn.execute("SELECT key_id, vkey FROM signing_keys ORDER BY added"):
        subject = f"key {stored_id}"
        try:
            key = parse_vkey(str(vkey))
        except ValueError as exc:
            report.add(subject, False, f"{exc}; restore the public key from a trusted copy")
            continue
        if key.key_id.hex() != stored_id:
            report.add(subject, False, f"stored under id {stored_id} but the key's id is "
                       f"{key.key_id.hex()} (public key replaced)")
            continue
        if pinned and key.key_id not in known:
            report.add(subject, True, f"stored ({key.name}), not among the trusted keys: ignored")
            continue
        known.setdefault(key.key_id, key)
        report.add(subject, True, f"OK ({key.name}{', trusted' if pinned else ''})")
    return known


def _checkpoints(
    report: FullReport, rows: list[tuple[int, int, str]], records: int,
    roots: dict[int, bytes], keys: dict[bytes, VerifierKey],
) -> int:
    """Check each checkpoint against the recomputed roots; return the largest size claimed.

    Two checkpoints whose roots both match roots recomputed from the same records are
    consistent (the older is a prefix of the newer) by construction.
    """
    previous: int | None = None  # id of the last checkpoint that verified
    origin: str | None = None
    covered = 0
    expected = 1
    for cid, size, note in rows:
        subject = f"checkpoint {cid} (size {size})"
        if cid != expected:
            gap = (f"checkpoint {expected}" if cid == expected + 1
                   else f"checkpoints {expected} to {cid - 1}")
            report.add(gap, False, "missing (deleted)")
        expected = cid + 1
        try:
            cp = parse_checkpoint(str(note))
            signed_by = check_signatures(cp, keys)
        except CheckpointError as exc:
            report.add(subject, False, f"{exc}")
            continue
        covered = max(covered, cp.size)
        problems = []
        if cp.size != size:
            problems.append(f"its note says size {cp.size} (size column altered)")
        origin = origin or cp.origin
        if cp.origin != origin:
            problems.append(f"origin {cp.origin!r} is not this log's {origin!r}")
        if cp.size > records:
            problems.append(f"the store has only {records} records; records "
                            f"{records + 1} to {cp.size} were deleted (truncated)")
        elif roots.get(cp.size) != cp.root:
            problems.append(f"root does not match records 1 to {cp.size} (a record up to "
                            f"{cp.size} was modified, deleted, inserted or reordered)")
        consistency = ""
        if previous is not None and not problems:  # a bad root already says it all
            # Ids follow insertion; an export in another process may sign a larger tree a
            # moment before lictor stores a smaller one, so sizes need not rise with ids.
            consistency = f", consistent with checkpoint {previous}"
        if problems:
            report.add(subject, False, "; ".join(problems))
        else:
            previous = int(cid)
            report.add(subject, True, f"signature OK ({', '.join(signed_by)}), root OK"
                       + consistency)
    if not rows:
        report.add("checkpoints", True, "none yet: only the chain protects the records")
    return covered


def _prune_rows(conn: sqlite3.Connection) -> list[tuple[int, str]]:
    try:
        return [(int(i), str(n)) for i, n in
                conn.execute("SELECT id, note FROM prunes ORDER BY id")]
    except sqlite3.OperationalError:  # a store from before retention existed
        return []


def _prunes(report: FullReport, rows: list[tuple[int, str]], roots: dict[int, bytes],
            keys: dict[bytes, VerifierKey], conn: sqlite3.Connection) -> None:
    """Each prune note: signed by a known key, cut from the tree the leaves still give,
    and its last hash the leaf of the last record it removed (where the chain resumes)."""
    for pid, note in rows:
        subject = f"prune {pid}"
        try:
            parsed = parse_prune(note)
            signed_by = check_note_signatures(parsed.body, parsed.signatures, keys)
        except CheckpointError as exc:
            report.add(subject, False, f"{exc} (records removed without a valid signed note)")
            continue
        leaf = conn.execute("SELECT hash FROM leaves WHERE seq = ?",
                            (parsed.through,)).fetchone()
        try:
            bound = leaf is not None and bytes(leaf[0]) == leaf_hash(
                bytes.fromhex(parsed.last_hash))
        except ValueError:
            bound = False
        if roots.get(parsed.size) != parsed.root or not bound:
            report.add(subject, False, f"does not match the tree (records 1 to "
                       f"{parsed.through} cannot be shown to be the ones removed)")
            continue
        report.add(subject, True, f"records 1 to {parsed.through} (older than "
                   f"{parsed.before}) removed under a note signed by {', '.join(signed_by)}")


def verify_store(path: str | Path, trusted_keys: Iterable[str] = ()) -> FullReport:
    """Check the store at ``path`` read-only; ``trusted_keys`` pins the verifier keys."""
    report = FullReport()
    chain = verify_chain(path)
    if chain.ok:
        report.add("chain", True, f"OK ({chain.records} records)")
    else:
        report.add("chain", False, f"{chain.problem}")
        if chain.first_bad_seq is None and chain.records == 0 and "store" in chain.problem:
            return report
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        report.add("store", False, f"cannot open {path}: {exc}")
        return report
    try:
        conn.execute("BEGIN")
        rows = [(int(i), int(n), str(note)) for i, n, note in
                conn.execute("SELECT id, size, note FROM checkpoints ORDER BY id")]
        prunes = _prune_rows(conn)
        pruned = last_prune(prunes)
        sizes = {n for _, n, _ in rows} | ({pruned.size} if pruned else set())
        records, roots = _tree(conn, report, sizes, pruned.through if pruned else 0)
        keys = _keys(conn, report, trusted_keys)
        covered = _checkpoints(report, rows, records, roots, keys)
        _prunes(report, prunes, roots, keys, conn)
        if covered and records >= covered:
            report.add("head", True, f"OK (the store ends at record {records}; checkpoints "
                       f"cover 1 to {covered})")
        elif covered:
            report.add("head", False, f"the store ends at record {records} but a signed "
                       f"checkpoint covers {covered} records (truncated)")
    except sqlite3.Error as exc:
        report.add("store", False, f"cannot read {path}: {exc} (tables dropped or altered?)")
    finally:
        conn.close()
    return report
