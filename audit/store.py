"""Append-only, hash-chained audit store on SQLite.

Every record carries ``seq`` and the SHA-256 of the previous record
(``prev_hash``), so editing, deleting, reordering or inserting a record
breaks the chain and ``lictor.audit.verify.verify_chain`` reports where.
Each record is also a leaf of an RFC 9162 Merkle tree (``leaves`` table, same
transaction), whose signed roots (``checkpoints``) let a third party check records
and proofs without the whole log.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from lictor.audit.canonical_json import canonicalize
from lictor.audit.merkle import CompactRange, leaf_hash
from lictor.audit.wal_checkpoint import FALLBACK_PAGES, WalCheckpointer

__all__ = [
    "GENESIS_HASH",
    "RESERVED_KEYS",
    "AppendedRecord",
    "AuditStore",
    "AuditWriteError",
    "StoredCheckpoint",
]

GENESIS_HASH = "0" * 64
"""``prev_hash`` of record 1: there is no previous record."""

RESERVED_KEYS = frozenset({"seq", "time", "prev_hash", "hash"})
"""Keys the store fills in; callers may not supply them."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records ("
    " seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS chain_head ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL,"
    " tree BLOB)",  # the Merkle compact range at seq, so start-up need not re-read leaves
    # leaf hash of record seq (RFC 9162, leaf index seq - 1), written with the record
    "CREATE TABLE IF NOT EXISTS leaves (seq INTEGER PRIMARY KEY, hash BLOB NOT NULL)",
    # signed C2SP tlog-checkpoint notes of the tree at `size` records
    "CREATE TABLE IF NOT EXISTS checkpoints ("
    " id INTEGER PRIMARY KEY, size INTEGER NOT NULL, time TEXT NOT NULL, note TEXT NOT NULL)",
    # every public key that ever signed a checkpoint, as a C2SP verifier key
    "CREATE TABLE IF NOT EXISTS signing_keys ("
    " key_id TEXT PRIMARY KEY, vkey TEXT NOT NULL, added TEXT NOT NULL)",
    # signed prune notes: records 1..through were removed (retention); leaves are kept
    "CREATE TABLE IF NOT EXISTS prunes ("
    " id INTEGER PRIMARY KEY, through INTEGER NOT NULL, time TEXT NOT NULL, note TEXT NOT NULL)",
)
# Constant SQL strings: sqlite3's statement cache keeps them prepared, so each
# append re-binds parameters instead of re-parsing SQL.
_INSERT_RECORD = "INSERT INTO records (seq, hash, body) VALUES (?, ?, ?)"
_INSERT_LEAF = "INSERT INTO leaves (seq, hash) VALUES (?, ?)"
# moves the head only from where this process left it: 0 rows when another process
# appended meanwhile (or the store is empty), so no SELECT is needed to find out
_ADVANCE_HEAD = "UPDATE chain_head SET seq = ?, hash = ?, tree = ? WHERE id = 1 AND seq = ?"
_UPSERT_HEAD = (
    "INSERT INTO chain_head (id, seq, hash, tree) VALUES (1, ?, ?, ?) ON CONFLICT (id)"
    " DO UPDATE SET seq = excluded.seq, hash = excluded.hash, tree = excluded.tree"
)
_PAGE = 512


class AuditWriteError(Exception):
    """The audit store could not durably record an entry; callers must fail closed."""


@dataclass(slots=True, frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as kept in the store: ``note`` is the full signed note text."""

    id: int
    size: int
    time: str
    note: str


@dataclass(slots=True, frozen=True)
class AppendedRecord:
    """A committed record: ``record`` is exactly what was hashed (it has no ``hash`` key)."""

    seq: int
    hash: str
    record: dict[str, Any]


@dataclass(slots=True)
class _Chained:
    """Entries chained after a head, ready to commit: the new head, rows, leaves, tree."""

    seq: int
    prev: str
    tree: CompactRange
    rows: list[tuple[int, str, str]] = field(default_factory=list)
    leaves: list[tuple[int, bytes]] = field(default_factory=list)
    out: list[AppendedRecord] = field(default_factory=list)


def _utc_now() -> str:
    """RFC 3339 UTC timestamp with microseconds, e.g. 2026-11-21T20:19:25.123456Z."""
    # isoformat is about twice as fast as strftime; it ends in "+00:00" for UTC.
    return datetime.now(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _create_private_file(path: Path) -> None:
    """Create ``path`` with mode 0600 if missing; SQLite gives -wal/-shm the same mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)  # the umask may have narrowed it further; be exact


class AuditStore:
    """Append-only store of hash-chained audit records.

    One writer process: a second one would reuse a seq and get AuditWriteError.
    """

    def __init__(
        self, conn: sqlite3.Connection, path: Path, last_seq: int, last_hash: str,
        tree: CompactRange, *, wal: WalCheckpointer,
    ) -> None:
        """Use ``AuditStore.open``; this only wires up an already prepared connection."""
        self._conn = conn
        self._wal = wal
        self._path = path
        self._lock = threading.Lock()
        self._last_seq = last_seq
        self._last_hash = last_hash
        self._tree = tree

    @classmethod
    def open(cls, path: str | Path, synchronous: Literal["normal", "full"] = "normal") -> Self:
        """Open or create the store at ``path`` in WAL mode.

        ``synchronous="normal"``: in WAL mode a commit is in the WAL file before
        ``append`` returns, so records survive a process crash (kill -9); the
        last few may be lost on power loss. ``"full"`` fsyncs every commit and
        also survives power loss, at a large cost in appends per second.
        Raises AuditWriteError if the file is unusable or its chain head does
        not match its last record (refusing to extend a tampered chain).
        """
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        db_path = Path(path)
        try:
            db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private_file(db_path)
        except OSError as exc:
            raise AuditWriteError(f"cannot create audit store {db_path}: {exc}") from exc
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise AuditWriteError(f"{db_path}: cannot enable WAL mode (got {mode!r})")
            conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # WAL checkpoints run on a thread of their own (wal_checkpoint.py), not inside a
            # request's commit; SQLite's own remains as the fallback that bounds the WAL
            conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                conn.execute(statement)
            if "tree" not in {row[1] for row in conn.execute("PRAGMA table_info(chain_head)")}:
                conn.execute("ALTER TABLE chain_head ADD COLUMN tree BLOB")  # older stores
            conn.execute("COMMIT")
            conn.execute("BEGIN")  # one snapshot: another process's appends cannot skew it
            last_seq, last_hash, saved = cls._load_head(conn, db_path)
            tree, missing = cls._load_tree(conn, db_path, last_seq, saved)
            conn.execute("COMMIT")
            if missing:  # a store written before the Merkle tree existed
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT_LEAF, missing)
                conn.execute("COMMIT")
            wal = WalCheckpointer(db_path)
        except (sqlite3.Error, AuditWriteError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, AuditWriteError):
                raise
            why = ("; its folder is read-only or not writable by this user, and the log "
                   "needs to write" if not os.access(db_path.parent, os.W_OK) else "")
            raise AuditWriteError(f"cannot open audit store {db_path}: {exc}{why}") from exc
        return cls(conn, db_path, last_seq, last_hash, tree, wal=wal)

    @staticmethod
    def _load_head(conn: sqlite3.Connection, path: Path) -> tuple[int, str, bytes | None]:
        """Read the chain head (and saved compact range); check it against the last record."""
        head = conn.execute("SELECT seq, hash, tree FROM chain_head WHERE id = 1").fetchone()
        last = conn.execute("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if head is None and last is None:
            return 0, GENESIS_HASH, None
        if head is None or last is None or tuple(head[:2]) != tuple(last):
            raise AuditWriteError(
                f"{path}: chain head {head and tuple(head[:2])!r} does not match last record "
                f"{last!r}; run verify_chain before appending"
            )
        saved = head[2] if isinstance(head[2], bytes) else None
        return int(head[0]), str(head[1]), saved

    @staticmethod
    def _load_tree(
        conn: sqlite3.Connection, path: Path, last_seq: int, saved: bytes | None
    ) -> tuple[CompactRange, list[tuple[int, bytes]]]:
        """The tree's compact range: as saved with the chain head, else rebuilt from the
        leaves (O(n), once).

        Records without a leaf (a store written before the Merkle tree existed) get theirs
        from the record hashes: returned, for the caller to write.
        """
        (max_leaf,) = conn.execute("SELECT coalesce(max(seq), 0) FROM leaves").fetchone()
        if saved is not None and max_leaf <= last_seq:
            try:
                tree = CompactRange.from_bytes(last_seq, saved)
            except ValueError:
                pass
            else:
                rows = conn.execute(
                    "SELECT seq, hash FROM records WHERE seq > ? ORDER BY seq", (max_leaf,)
                ).fetchall()
                return tree, [(int(s), leaf_hash(bytes.fromhex(d))) for s, d in rows]
        tree = CompactRange()
        for seq, digest in conn.execute("SELECT seq, hash FROM leaves ORDER BY seq"):
            if seq != tree.size + 1 or not isinstance(digest, bytes) or len(digest) != 32:
                raise AuditWriteError(
                    f"{path}: Merkle leaf {seq} is missing or malformed; run `lictor audit "
                    "verify` to see what was altered before appending")
            tree.append(digest)
        if tree.size > last_seq:
            raise AuditWriteError(f"{path}: {tree.size} Merkle leaves but {last_seq} records; "
                                  "run `lictor audit verify` before appending")
        if tree.size < last_seq:
            rows = conn.execute(
                "SELECT seq, hash FROM records WHERE seq > ? ORDER BY seq", (tree.size,)
            ).fetchall()
            leaves = [(int(seq), leaf_hash(bytes.fromhex(digest))) for seq, digest in rows]
            tree.extend(leaf for _, leaf in leaves)
            return tree, leaves
        return tree, []

    @property
    def path(self) -> Path:
        """Filesystem path of the SQLite database."""
        return self._path

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last committed record; (0, GENESIS_HASH) when empty."""
        with self._lock:
            return self._last_seq, self._last_hash

    def append(self, entry: dict[str, Any]) -> AppendedRecord:
        """Chain, hash and durably commit ``entry``; return only after the commit."""
        return self.append_many((entry,))[0]

    def append_many(self, entries: Sequence[dict[str, Any]]) -> list[AppendedRecord]:
        """Chain and commit several entries in one transaction (all or none).

        One request's records (request, decision, response) go in together: one commit
        instead of several on the hot path. Raises ValueError if an entry uses a reserved
        key, TypeError/ValueError if it is not JSON-canonicalizable, AuditWriteError if
        SQLite fails.
        """
        for entry in entries:
            clash = RESERVED_KEYS.intersection(entry)
            if clash:
                raise ValueError(f"entry may not set reserved keys: {sorted(clash)}")
        with self._lock:
            now = _utc_now()
            chained = self._chain(entries, now)
            if not chained.rows:
                return chained.out
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    head = (chained.seq, chained.prev, chained.tree.to_bytes())
                    if conn.execute(_ADVANCE_HEAD, (*head, self._last_seq)).rowcount != 1:
                        # another process appended, or this is the first record
                        last_seq, last_hash, saved = self._load_head(conn, self._path)
                        tree, missing = self._load_tree(conn, self._path, last_seq, saved)
                        conn.executemany(_INSERT_LEAF, missing)
                        self._last_seq, self._last_hash, self._tree = last_seq, last_hash, tree
                        chained = self._chain(entries, now)
                        conn.execute(_UPSERT_HEAD, (chained.seq, chained.prev,
                                                    chained.tree.to_bytes()))
                    conn.executemany(_INSERT_RECORD, chained.rows)
                    conn.executemany(_INSERT_LEAF, chained.leaves)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise AuditWriteError(
                    f"audit append of record {chained.seq} failed: {exc}") from exc
            self._last_seq, self._last_hash, self._tree = chained.seq, chained.prev, chained.tree
            self._wal.committed()
        return chained.out

    def _chain(self, entries: Sequence[dict[str, Any]], now: str) -> _Chained:
        """Entries as records after the current head: rows, leaves, the grown tree."""
        seq, prev = self._last_seq, self._last_hash
        out = _Chained(seq, prev, self._tree.copy())
        for entry in entries:
            seq += 1
            record = dict(entry)
            record["seq"] = seq
            record["time"] = now
            record["prev_hash"] = prev
            body = canonicalize(record)
            digest = hashlib.sha256(body).digest()
            prev = digest.hex()
            out.rows.append((seq, prev, body.decode("utf-8")))
            leaf = leaf_hash(digest)
            out.leaves.append((seq, leaf))
            out.tree.append(leaf)
            out.out.append(AppendedRecord(seq=seq, hash=prev, record=record))
        out.seq, out.prev = seq, prev
        return out

    def tree_head(self) -> tuple[int, bytes]:
        """(size, RFC 9162 root) of the Merkle tree over all committed records."""
        with self._lock:
            return self._tree.size, self._tree.root()

    def leaf_hashes(self, size: int) -> list[bytes]:
        """The first ``size`` leaf hashes, in order (for proofs)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT hash FROM leaves WHERE seq <= ? ORDER BY seq", (size,)).fetchall()
        return [bytes(digest) for (digest,) in rows]

    def _write(self, sql: str, params: tuple[object, ...]) -> None:
        """One statement in its own transaction; AuditWriteError if SQLite fails."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise AuditWriteError(f"{self._path}: write failed: {exc}") from exc

    def add_checkpoint(self, size: int, note: str) -> StoredCheckpoint:
        """Keep a signed checkpoint note of the tree at ``size`` records."""
        now = _utc_now()
        self._write("INSERT INTO checkpoints (size, time, note) VALUES (?, ?, ?)",
                    (size, now, note))
        with self._lock:
            (cid,) = self._conn.execute("SELECT max(id) FROM checkpoints").fetchone()
        return StoredCheckpoint(id=int(cid), size=size, time=now, note=note)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored checkpoint, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, size, time, note FROM checkpoints ORDER BY id").fetchall()
        return [StoredCheckpoint(int(i), int(n), str(t), str(note)) for i, n, t, note in rows]

    def add_signing_key(self, key_id: str, vkey: str) -> None:
        """Keep a public (verifier) key, so checkpoints it signed stay verifiable."""
        self._write("INSERT OR IGNORE INTO signing_keys (key_id, vkey, added) VALUES (?, ?, ?)",
                    (key_id, vkey, _utc_now()))

    def signing_keys(self) -> dict[str, str]:
        """key id (hex) -> C2SP verifier key, for every key that was ever used."""
        with self._lock:
            rows = self._conn.execute("SELECT key_id, vkey FROM signing_keys").fetchall()
        return {str(k): str(v) for k, v in rows}

    def pruned_through(self) -> int:
        """The last record removed by retention (0: none)."""
        with self._lock:
            (through,) = self._conn.execute("SELECT max(through) FROM prunes").fetchone()
        return int(through or 0)

    def record_hashes(self, first: int, last: int) -> list[tuple[int, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT seq, hash FROM records WHERE seq BETWEEN ? AND ?"
                                      " ORDER BY seq", (first, last)).fetchall()
        return [(int(seq), str(digest)) for seq, digest in rows]

    def prune(self, through: int, note: str) -> int:
        """Delete records 1..through (never the newest) with their signed prune note, in
        one transaction; the Merkle leaves stay. Returns how many records went."""
        with self._lock:
            if through >= self._last_seq:
                raise ValueError("the newest record is never pruned: the chain needs a head")
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                removed = self._conn.execute("DELETE FROM records WHERE seq <= ?",
                                             (through,)).rowcount
                self._conn.execute("INSERT INTO prunes (through, time, note) VALUES (?, ?, ?)",
                                   (through, _utc_now(), note))
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise AuditWriteError(f"{self._path}: prune failed: {exc}") from exc
        return int(removed)

    def records(self) -> Iterator[tuple[int, str, str]]:
        """Yield (seq, hash, body) in seq order, paging so appends can interleave."""
        after = 0
        while True:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT seq, hash, body FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, _PAGE),
                ).fetchall()
            for seq, digest, body in rows:
                yield int(seq), str(digest), str(body)
            if len(rows) < _PAGE:
                return
            after = int(rows[-1][0])

    def count(self) -> int:
        """Number of records currently stored."""
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    def close(self) -> None:
        """Close the connection; later appends raise AuditWriteError."""
        self._wal.close()  # first: the last connection to close folds the WAL in
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        """Support ``with AuditStore.open(...) as store``."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the store on leaving the ``with`` block."""
        self.close()
