"""`lictor audit verify` against an attacker with write access to the store.

The attacker here re-seals the chain after each edit (recomputing hashes, links, leaves
and the chain head), so the chain alone passes: the signed checkpoints must catch it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lictor.audit import GENESIS_HASH, AuditStore, canonicalize
from lictor.audit.checkpoints import Checkpointer, sign_checkpoint
from lictor.audit.merkle import MerkleTree, leaf_hash
from lictor.audit.signing import create_key_file, load_signer
from lictor.proxy.cli import main

ORIGIN = "lictor.local/audit"  # the default origin, which the CLI's config has too


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """35 records, signed checkpoints at 10, 20 and 30, then 5 records not yet signed."""
    data = tmp_path / "var"
    create_key_file(data / "keys" / "audit-signing.pem")
    signer = load_signer(data / "keys" / "audit-signing.pem", ORIGIN)
    with AuditStore.open(data / "audit.sqlite3") as store:
        cps = Checkpointer(store, signer, ORIGIN, every_records=10)
        for i in range(35):
            agent = f"agent-{i % 3}"
            store.append({"kind": "model_request", "principal": {"agent": agent}, "n": i})
            cps.after_append()
        assert [c.size for c in store.checkpoints()] == [10, 20, 30]
    return data


def verify(data: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["audit", "verify", "--data-dir", str(data), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def bodies(data: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(data / "audit.sqlite3") as db:
        return [json.loads(b) for (b,) in db.execute("SELECT body FROM records ORDER BY seq")]


def reseal(data: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the whole log from ``records`` with valid seqs, links, hashes and leaves."""
    rows, leaves, prev = [], [], GENESIS_HASH
    for seq, original in enumerate(records, start=1):
        body = canonicalize({**original, "seq": seq, "prev_hash": prev})
        prev = hashlib.sha256(body).hexdigest()
        rows.append((seq, prev, body.decode()))
        leaves.append((seq, leaf_hash(bytes.fromhex(prev))))
    with sqlite3.connect(data / "audit.sqlite3") as db:
        db.execute("DELETE FROM records")
        db.execute("DELETE FROM leaves")
        db.executemany("INSERT INTO records (seq, hash, body) VALUES (?, ?, ?)", rows)
        db.executemany("INSERT INTO leaves (seq, hash) VALUES (?, ?)", leaves)
        db.execute("UPDATE chain_head SET seq = ?, hash = ?", (len(rows), prev))


def test_untouched_store_verifies_with_per_check_lines(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = verify(data_dir, capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "chain: OK (35 records)"
    assert lines[1].startswith("tree: OK (35 leaves, root ")
    assert lines[2].startswith("key ") and lines[2].endswith(f"({ORIGIN})")
    assert lines[3].startswith("checkpoint 1 (size 10): signature OK (lictor.local/audit+")
    assert lines[4].endswith("root OK, consistent with checkpoint 1")
    assert lines[6] == "head: OK (the store ends at record 35; checkpoints cover 1 to 30)"
    assert lines[-1].startswith("audit verify: OK")


@pytest.mark.parametrize(
    ("name", "edit", "where"),
    [
        ("modify", lambda r: r[4].update(n=999),
         "checkpoint 1 (size 10): FAILED: root does not match"),
        ("delete", lambda r: r.pop(14), "checkpoint 2 (size 20): FAILED: root does not match"),
        ("insert", lambda r: r.insert(11, {"kind": "model_request", "n": -1}),
         "checkpoint 2 (size 20): FAILED: root does not match"),
        ("reorder", lambda r: r.insert(3, r.pop(2)),
         "checkpoint 1 (size 10): FAILED: root does not match"),
        ("truncate after checkpoint", lambda r: r.__delitem__(slice(25, None)),
         "checkpoint 3 (size 30): FAILED: the store has only 25 records; records 26 to 30 were "
         "deleted (truncated)"),
    ],
)
def test_resealed_tampering_is_caught_by_checkpoints(
        data_dir: Path, capsys: pytest.CaptureFixture[str], name: str, edit: Any,
        where: str) -> None:
    records = bodies(data_dir)
    edit(records)
    reseal(data_dir, records)
    code, out, err = verify(data_dir, capsys)
    assert code == 1, out
    assert "chain: OK" in out and "tree: OK" in out  # the forger re-sealed both
    assert "audit verify FAILED" in err
    assert where in err, err
    if name == "truncate after checkpoint":
        assert "head: FAILED: the store ends at record 25 but a signed checkpoint covers 30" \
            in err


def test_modify_without_resealing_names_the_record(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute("UPDATE records SET body = replace(body, '\"n\":7', '\"n\":8') WHERE seq = 8")
    code, _, err = verify(data_dir, capsys)
    assert code == 1
    assert "chain: FAILED: record 8: hash does not match its content (modified)" in err


def test_forged_checkpoint_signed_with_another_key(
        data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    records = bodies(data_dir)
    records[4]["n"] = 999
    reseal(data_dir, records)
    create_key_file(tmp_path / "evil.pem")
    evil = load_signer(tmp_path / "evil.pem", ORIGIN)
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        leaves = [bytes(h) for (h,) in db.execute("SELECT hash FROM leaves ORDER BY seq")]
        tree = MerkleTree(leaves)
        for cid, size in list(db.execute("SELECT id, size FROM checkpoints")):
            db.execute("UPDATE checkpoints SET note = ? WHERE id = ?",
                       (sign_checkpoint(ORIGIN, size, tree.root(size), [evil]), cid))
    code, _, err = verify(data_dir, capsys)
    assert code == 1
    assert (f"checkpoint 1 (size 10): FAILED: signed by an unknown key "
            f"{ORIGIN}+{evil.key_id.hex()}") in err


def test_swapped_public_key_is_caught(
        data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    create_key_file(tmp_path / "evil.pem")
    evil = load_signer(tmp_path / "evil.pem", ORIGIN)
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        (key_id,) = db.execute("SELECT key_id FROM signing_keys").fetchone()
        evil_raw = evil.verifier.vkey.split("+", 2)[2]
        db.execute("UPDATE signing_keys SET vkey = ?", (f"{ORIGIN}+{key_id}+{evil_raw}",))
    code, _, err = verify(data_dir, capsys)
    assert code == 1
    assert f"key {key_id}: FAILED: verifier key {ORIGIN}+{key_id}: the key id does not " \
        "match the key (public key replaced)" in err
    assert "checkpoint 1 (size 10): FAILED: signed by an unknown key" in err


def test_replaced_key_and_resigned_checkpoints_fail_against_the_pinned_key(
        data_dir: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    honest = load_signer(data_dir / "keys" / "audit-signing.pem", ORIGIN).verifier.vkey
    create_key_file(tmp_path / "evil.pem")
    evil = load_signer(tmp_path / "evil.pem", ORIGIN)
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute("UPDATE signing_keys SET key_id = ?, vkey = ?",
                   (evil.key_id.hex(), evil.verifier.vkey))
        leaves = [bytes(h) for (h,) in db.execute("SELECT hash FROM leaves ORDER BY seq")]
        tree = MerkleTree(leaves)
        for cid, size in list(db.execute("SELECT id, size FROM checkpoints")):
            db.execute("UPDATE checkpoints SET note = ? WHERE id = ?",
                       (sign_checkpoint(ORIGIN, size, tree.root(size), [evil]), cid))
    assert verify(data_dir, capsys)[0] == 0  # self-consistent: only a pinned key tells
    code, out, err = verify(data_dir, capsys, "--key", honest)
    assert code == 1
    assert "not among the trusted keys: ignored" in out
    assert "checkpoint 3 (size 30): FAILED: signed by an unknown key" in err


def test_deleted_checkpoint_is_named(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute("DELETE FROM checkpoints WHERE id = 2")
    code, out, err = verify(data_dir, capsys)
    assert code == 1
    assert "checkpoint 2: FAILED: missing (deleted)" in err
    assert len(out.splitlines()) == 7  # only the missing one fails: 1 and 3 still verify
    assert "checkpoint 3 (size 30): signature OK" in out
    assert err.count("FAILED") == 2  # the summary line and checkpoint 2


def test_deleted_checkpoints_are_named_as_a_range(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute("DELETE FROM checkpoints WHERE id IN (1, 2)")
    code, _, err = verify(data_dir, capsys)
    assert code == 1
    assert "checkpoints 1 to 2: FAILED: missing (deleted)" in err


def test_rotated_key_keeps_old_checkpoints_verifiable(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "rotate-key", "--data-dir", str(data_dir)]) == 0
    printed = capsys.readouterr().out
    assert "retired key" in printed and "signed by the new and old keys" in printed
    with AuditStore.open(data_dir / "audit.sqlite3") as store:
        assert len(store.signing_keys()) == 2
        last = store.checkpoints()[-1]
        assert (last.id, last.size, last.note.count("\u2014 ")) == (4, 35, 2)
    code, out, err = verify(data_dir, capsys)
    assert code == 0, err
    assert "checkpoint 1 (size 10): signature OK" in out
    assert "checkpoint 4 (size 35): signature OK" in out


def test_verify_in_a_subprocess_exits_non_zero(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute("DELETE FROM leaves WHERE seq = 3")
    result = subprocess.run(
        [sys.executable, "-m", "lictor.proxy.cli", "audit", "verify", "--data-dir",
         str(data_dir)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "tree: FAILED: 34 stored leaves for 35 records (leaves table altered)" \
        in result.stderr


def test_altered_leaf_is_named(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute("UPDATE leaves SET hash = ? WHERE seq = 12", (b"\x00" * 32,))
    code, _, err = verify(data_dir, capsys)
    assert code == 1
    assert "tree: FAILED: leaf 12 does not match record 12 (leaves table altered)" in err


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("UPDATE records SET body = replace(body, '\"n\":32', '\"n\":1') WHERE seq = 33",
         "chain: FAILED: record 33: hash does not match its content (modified)"),
        ("DELETE FROM records WHERE seq = 34", "chain: FAILED: record 34 is missing (deleted)"),
        ("DELETE FROM records WHERE seq = 35",
         "chain: FAILED: chain head says 35 records but the store ends at 34"),
    ],
)
def test_records_after_the_last_checkpoint_are_protected_by_the_chain(
        data_dir: Path, capsys: pytest.CaptureFixture[str], sql: str, where: str) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        db.execute(sql)
    code, out, err = verify(data_dir, capsys)
    assert code == 1
    assert where in err, err
    assert "checkpoint 3 (size 30): signature OK" in out  # the signed part is intact
