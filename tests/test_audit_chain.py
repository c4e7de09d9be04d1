"""Hash-chain store and verifier: honest chains pass, every kind of tampering is caught."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from lictor.audit import (
    GENESIS_HASH,
    AuditStore,
    AuditWriteError,
    VerifyReport,
    canonicalize,
    verify_chain,
)
from lictor.audit.full_verify import verify_store
from lictor.audit.merkle import root_from_leaves

N = 10
_INSERT = "INSERT INTO records (seq, hash, body) VALUES (?, ?, ?)"


def _fill(path: Path, n: int = N) -> list[str]:
    """Append ``n`` records and return their hashes (index 0 is record 1)."""
    with AuditStore.open(path) as store:
        return [store.append({"event": "request", "n": i, "user": f"u{i}"}).hash for i in range(n)]


def _db(path: Path) -> sqlite3.Connection:
    """A raw connection, as an attacker with file access would use."""
    return sqlite3.connect(path, isolation_level=None)


def _tamper(path: Path, *steps: tuple[str, tuple[object, ...]]) -> VerifyReport:
    """Run raw SQL statements against the store, then verify it."""
    conn = _db(path)
    for sql, params in steps:
        conn.execute(sql, params)
    conn.close()
    return verify_chain(path)


def _edited(path: Path, seq: int) -> tuple[str, str]:
    """Record ``seq`` with its user changed, sealed as a forger would: (hash, body)."""
    conn = _db(path)
    record = json.loads(
        conn.execute("SELECT body FROM records WHERE seq = ?", (seq,)).fetchone()[0]
    )
    conn.close()
    record["user"] = "someone-else"
    return _seal(record)


def _seal(record: dict[str, object]) -> tuple[str, str]:
    """Canonical body text and its hash, as a forger who knows the scheme would compute."""
    body = canonicalize(record)
    return hashlib.sha256(body).hexdigest(), body.decode("utf-8")


def _forged(seq: int, prev_hash: str) -> dict[str, object]:
    """A record the attacker wants the log to contain."""
    forged: dict[str, object] = {"event": "request", "user": "ghost", "seq": seq}
    return forged | {"prev_hash": prev_hash, "time": "2026-01-01T00:00:00.000000Z"}


def test_intact_chain_verifies(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    hashes = _fill(path)
    report = verify_chain(path)
    assert report.ok, report.problem
    assert (report.records, report.first_bad_seq, report.problem) == (N, None, "")
    assert len(set(hashes)) == N


def test_appended_record_fields_and_links(tmp_path: Path) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        first = store.append({"event": "x"})
        second = store.append({"event": "y", "detail": {"k": [1, 2.5]}})
        assert (first.seq, second.seq) == (1, 2)
        assert first.record["prev_hash"] == GENESIS_HASH
        assert second.record["prev_hash"] == first.hash
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", str(first.record["time"]))
        assert second.hash == hashlib.sha256(canonicalize(second.record)).hexdigest()
        stored = list(store.records())
        assert [(seq, h) for seq, h, _ in stored] == [(1, first.hash), (2, second.hash)]
        assert json.loads(stored[1][2]) == second.record
        assert store.count() == 2
        assert store.head == (2, second.hash)


def test_open_creates_private_wal_store(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "audit.db"
    with AuditStore.open(path, synchronous="full") as store:
        store.append({"event": "x"})
        conn = _db(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_open_rejects_unknown_synchronous_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        AuditStore.open(tmp_path / "a.db", synchronous="off")  # type: ignore[arg-type]


def test_append_after_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    hashes = _fill(path, 3)
    with AuditStore.open(path) as store:
        assert store.head == (3, hashes[-1])
        rec = store.append({"event": "after-restart"})
    assert rec.seq == 4
    assert rec.record["prev_hash"] == hashes[-1]
    report = verify_chain(path)
    assert report.ok and report.records == 4


@pytest.mark.parametrize("key", ["seq", "time", "prev_hash", "hash"])
def test_reserved_keys_are_refused(tmp_path: Path, key: str) -> None:
    with AuditStore.open(tmp_path / "a.db") as store:
        with pytest.raises(ValueError, match=key):
            store.append({"event": "x", key: 1})
        assert store.count() == 0 and store.head == (0, GENESIS_HASH)


def test_sqlite_failure_raises_audit_write_error(tmp_path: Path) -> None:
    store = AuditStore.open(tmp_path / "a.db")
    store.close()
    with pytest.raises(AuditWriteError):
        store.append({"event": "x"})


def test_failed_append_leaves_chain_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        store.append({"event": "ok"})
        blocker = _db(path)
        blocker.execute(
            "CREATE TRIGGER no_more BEFORE INSERT ON records BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
        with pytest.raises(AuditWriteError):
            store.append({"event": "rejected"})
        assert store.head[0] == 1 and store.count() == 1
        blocker.execute("DROP TRIGGER no_more")
        blocker.close()
        assert store.append({"event": "next"}).seq == 2
    assert verify_chain(path).ok


def test_append_many_chains_in_order_in_one_commit(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        first = store.append({"event": "before"})
        batch = store.append_many([{"event": "request"}, {"event": "response"}])
        assert [r.seq for r in batch] == [2, 3]
        assert batch[0].record["prev_hash"] == first.hash
        assert batch[1].record["prev_hash"] == batch[0].hash
        assert store.head == (3, batch[1].hash)
        assert store.append_many([]) == []
    assert verify_chain(path).ok and verify_chain(path).records == 3


def test_failed_batch_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        store.append({"event": "ok"})
        blocker = _db(path)
        blocker.execute(
            "CREATE TRIGGER no_third BEFORE INSERT ON records WHEN NEW.seq = 3 "
            "BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
        with pytest.raises(AuditWriteError):
            store.append_many([{"event": "request"}, {"event": "response"}])
        assert store.count() == 1 and store.head[0] == 1  # record 2 was rolled back too
        blocker.close()
    assert verify_chain(path).ok


def test_concurrent_appends_form_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        threads = [
            threading.Thread(target=lambda t=t: [store.append({"t": t, "i": i}) for i in range(50)])
            for t in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.count() == 200
    report = verify_chain(path)
    assert report.ok and report.records == 200


def test_open_refuses_store_whose_head_does_not_match(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path, 3)
    _tamper(path, ("DELETE FROM records WHERE seq = 3", ()))
    with pytest.raises(AuditWriteError, match="chain head"):
        AuditStore.open(path)


def test_modified_body_with_old_hash_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    _, body = _edited(path, 7)
    report = _tamper(path, ("UPDATE records SET body = ? WHERE seq = 7", (body,)))
    assert (report.ok, report.first_bad_seq, report.records) == (False, 7, 6)
    assert report.problem == "record 7: hash does not match its content (modified)"


def test_modified_body_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    digest, body = _edited(path, 4)
    report = _tamper(path, ("UPDATE records SET hash = ?, body = ? WHERE seq = 4", (digest, body)))
    assert (report.ok, report.first_bad_seq) == (False, 5)
    assert report.problem == "record 5: prev_hash does not match record 4 (inserted or reordered)"


def test_non_canonical_body_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    report = _tamper(path, ("UPDATE records SET body = replace(body, ',', ', ') WHERE seq = 2", ()))
    assert (report.ok, report.first_bad_seq) == (False, 2)
    assert report.problem == "record 2: body is not in canonical form (modified)"


def test_deleted_middle_record_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    report = _tamper(path, ("DELETE FROM records WHERE seq = 5", ()))
    assert (report.ok, report.first_bad_seq, report.records) == (False, 5, 4)
    assert report.problem == "record 5 is missing (deleted)"


def test_deleted_last_record_is_caught_by_chain_head(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    report = _tamper(path, ("DELETE FROM records WHERE seq = ?", (N,)))
    assert (report.ok, report.first_bad_seq) == (False, N)
    assert report.problem == (
        f"chain head says {N} records but the store ends at {N - 1} (records deleted at the end)"
    )


def test_swapped_records_are_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    with AuditStore.open(path) as store:
        rows = {seq: (digest, body) for seq, digest, body in store.records()}
    report = _tamper(
        path,
        ("UPDATE records SET hash = ?, body = ? WHERE seq = 3", rows[6]),
        ("UPDATE records SET hash = ?, body = ? WHERE seq = 6", rows[3]),
    )
    assert (report.ok, report.first_bad_seq) == (False, 3)
    assert report.problem == "record 3: body says it is record 6 (inserted or reordered)"


def test_forged_record_appended_without_head_update_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    hashes = _fill(path)
    forged = _seal(_forged(N + 1, hashes[-1]))
    report = _tamper(path, (_INSERT, (N + 1, *forged)))
    assert (report.ok, report.first_bad_seq, report.records) == (False, N + 1, N)
    assert report.problem == (
        f"chain head says {N} records but the store ends at {N + 1} (records added at the end)"
    )


def test_forged_record_with_wrong_link_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    digest, body = _seal(_forged(N + 1, "ab" * 32))
    report = _tamper(
        path,
        (_INSERT, (N + 1, digest, body)),
        ("UPDATE chain_head SET seq = ?, hash = ?", (N + 1, digest)),
    )
    assert (report.ok, report.first_bad_seq) == (False, N + 1)
    assert report.problem == (
        f"record {N + 1}: prev_hash does not match record {N} (inserted or reordered)"
    )


def test_record_inserted_in_the_middle_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    hashes = _fill(path)
    # Shift records 3..N up by one (highest first, seq is unique) and forge record 3.
    shifts = [("UPDATE records SET seq = seq + 1 WHERE seq = ?", (seq,)) for seq in range(N, 2, -1)]
    report = _tamper(path, *shifts, (_INSERT, (3, *_seal(_forged(3, hashes[1])))))
    # The forgery links correctly to record 2, so the first detectable break is
    # the displaced original record 3, now stored as record 4.
    assert (report.ok, report.first_bad_seq) == (False, 4)
    assert report.problem == "record 4: body says it is record 3 (inserted or reordered)"


def test_replaced_last_record_is_caught_by_head_hash(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path)
    digest, body = _edited(path, N)
    report = _tamper(
        path, ("UPDATE records SET hash = ?, body = ? WHERE seq = ?", (digest, body, N))
    )
    assert (report.ok, report.first_bad_seq) == (False, N)
    assert report.problem == f"chain head hash does not match record {N} (last record replaced)"


def test_verify_missing_store_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "audit.db"
    report = verify_chain(path)
    assert not report.ok and report.problem == f"no audit store at {path}"
    assert not path.parent.exists()


def test_verify_does_not_modify_the_store(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _fill(path, 3)
    before = path.read_bytes()
    assert verify_chain(path).ok
    assert path.read_bytes() == before
    # A read-only reader of a WAL database may leave SQLite's empty -wal/-shm
    # side files behind; it must never write log content.
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_verify_reports_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database at all" * 100)
    report = verify_chain(path)
    assert not report.ok and report.first_bad_seq is None
    assert "cannot read audit store" in report.problem


def test_verify_empty_store_is_ok(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    AuditStore.open(path).close()
    report = verify_chain(path)
    assert report.ok and report.records == 0


def test_two_writers_on_one_store_still_form_one_chain(tmp_path: Path) -> None:
    """The head moves with `WHERE seq = <ours>` (no SELECT per commit): when another
    process appended, that matches no row, and the store re-reads the head and chains
    after it."""
    path = tmp_path / "a.db"
    first, second = AuditStore.open(path), AuditStore.open(path)
    try:
        for i in range(4):
            first.append({"event": "request", "writer": 1, "n": i})
            second.append_many([{"event": "request", "writer": 2, "n": i},
                                {"event": "response", "writer": 2, "n": i}])
        assert first.head[0] == 10 and second.head[0] == 12
        assert first.tree_head()[0] == 10  # first has not seen the last two yet
        first.append({"event": "request", "writer": 1, "n": 4})
        size, root = first.tree_head()
        assert size == 13 and root == root_from_leaves(first.leaf_hashes(13))
    finally:
        first.close()
        second.close()
    report = verify_chain(path)
    assert report.ok and report.records == 13
    assert verify_store(path).ok
