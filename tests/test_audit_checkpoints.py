"""Ed25519 signing keys (C2SP key ids), signed checkpoints, and when lictor makes them."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
from conftest import StartLictor
from test_openai_sdk import client

from lictor.audit import AuditStore, AuditWriteError
from lictor.audit.checkpoints import (
    Checkpointer,
    CheckpointError,
    check_signatures,
    parse_checkpoint,
    sign_checkpoint,
)
from lictor.audit.merkle import MerkleTree
from lictor.audit.signing import KeyFileError, create_key_file, load_signer, parse_vkey

# The example key and signed note of golang.org/x/mod/sumdb/note (C2SP signed-note).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (b"If you think cryptography is the answer to your problem,\n"
           b"then you don't know what your problem is.\n")
GO_SIG = ("x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6Ryy"
          "BwJnAM=")


def test_key_id_and_signature_match_the_c2sp_example() -> None:
    key = parse_vkey(GO_VKEY)
    raw = base64.b64decode(GO_SIG)
    assert key.key_id == raw[:4] == bytes.fromhex("c74f20a3")
    assert key.verify(GO_TEXT, raw[4:])
    assert not key.verify(GO_TEXT + b"x", raw[4:])
    assert key.vkey == GO_VKEY


def test_swapped_public_key_does_not_match_its_id() -> None:
    other = base64.b64encode(b"\x01" + bytes(range(32))).decode()
    with pytest.raises(ValueError, match="public key replaced"):
        parse_vkey(f"PeterNeumann+c74f20a3+{other}")


def test_key_file_is_private_and_loose_modes_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "k.pem"
    create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    signer = load_signer(path, "log.example/a")
    assert len(signer.key_id) == 4
    with pytest.raises(KeyFileError, match="already exists"):
        create_key_file(path)
    os.chmod(path, 0o640)
    with pytest.raises(KeyFileError, match=r"mode 0640.*chmod 600"):
        load_signer(path, "log.example/a")
    with pytest.raises(KeyFileError, match="does not exist"):
        load_signer(tmp_path / "absent.pem", "x")
    os.chmod(path, 0o600)
    create_key_file(path, replace=True)
    assert load_signer(path, "log.example/a").key_id != signer.key_id


def test_checkpoint_note_format_and_signatures(tmp_path: Path) -> None:
    create_key_file(tmp_path / "a.pem")
    create_key_file(tmp_path / "b.pem")
    a = load_signer(tmp_path / "a.pem", "log.example/audit")
    b = load_signer(tmp_path / "b.pem", "log.example/audit")
    root = bytes(range(32))
    note = sign_checkpoint("log.example/audit", 7, root, [a])
    lines = note.split("\n")
    assert lines[:4] == ["log.example/audit", "7", base64.b64encode(root).decode(), ""]
    assert lines[4].startswith("\u2014 log.example/audit ") and lines[5] == ""
    cp = parse_checkpoint(note)
    assert (cp.origin, cp.size, cp.root) == ("log.example/audit", 7, root)
    keys = {a.key_id: a.verifier}
    assert check_signatures(cp, keys) == [f"log.example/audit+{a.key_id.hex()}"]
    with pytest.raises(CheckpointError, match="unknown key"):
        check_signatures(parse_checkpoint(sign_checkpoint("log.example/audit", 7, root, [b])),
                         keys)
    forged = note.replace("\n7\n", "\n8\n")
    with pytest.raises(CheckpointError, match="invalid"):
        check_signatures(parse_checkpoint(forged), keys)
    for bad in ("no blank line", note.replace("\n7\n", "\n07\n"), note + "junk line\n"):
        with pytest.raises(CheckpointError):
            parse_checkpoint(bad)


def test_checkpointer_every_n_records_and_roots_match(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k.pem")
    signer = load_signer(tmp_path / "k.pem", "lictor.test/audit")
    with AuditStore.open(tmp_path / "a.db") as store:
        cps = Checkpointer(store, signer, "lictor.test/audit", every_records=10)
        assert cps.checkpoint() is None  # empty, nothing to sign
        for i in range(25):
            store.append_many([{"n": i}])
            cps.after_append()
        stored = store.checkpoints()
        assert [c.size for c in stored] == [10, 20]
        tree = MerkleTree(store.leaf_hashes(25))
        for c in stored:
            assert parse_checkpoint(c.note).root == tree.root(c.size)
        assert cps.checkpoint() is not None and cps.checkpoint() is None
        assert store.checkpoints()[-1].size == 25
        assert store.signing_keys() == {signer.key_id.hex(): signer.verifier.vkey}
        assert store.tree_head() == (25, tree.root())
    with AuditStore.open(tmp_path / "a.db") as store:  # the tree survives a restart
        assert store.tree_head() == (25, tree.root())
        assert Checkpointer(store, signer, "lictor.test/audit").last_size == 25


def test_timer_checkpoints_only_when_new_records(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k.pem")
    signer = load_signer(tmp_path / "k.pem", "o")
    with AuditStore.open(tmp_path / "a.db") as store:
        cps = Checkpointer(store, signer, "o", every_s=0.05)

        async def scenario() -> None:
            task = asyncio.create_task(cps.run())
            store.append({"n": 1})
            await asyncio.sleep(0.3)
            task.cancel()

        asyncio.run(scenario())
        assert [c.size for c in store.checkpoints()] == [1]


def test_old_store_gets_its_leaves_on_open(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        for i in range(5):
            store.append({"n": i})
        size, root = store.tree_head()
        leaves = store.leaf_hashes(5)
    with sqlite3.connect(path) as db:  # as written before the Merkle tree existed
        db.execute("DROP TABLE leaves")
        db.execute("ALTER TABLE chain_head DROP COLUMN tree")
    with AuditStore.open(path) as store:
        assert store.tree_head() == (size, root)
        assert store.leaf_hashes(5) == leaves
        store.append({"n": 5})
    with sqlite3.connect(path) as db:
        (saved,) = db.execute("SELECT tree FROM chain_head").fetchone()
    assert len(saved) == 2 * 32  # 6 leaves: subtrees of 4 and 2


def test_start_up_uses_the_saved_compact_range(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AuditStore.open(path) as store:
        store.append_many([{"n": i} for i in range(7)])
        head = store.tree_head()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE leaves SET hash = x'00' WHERE seq = 3")  # a scan would refuse it
    with AuditStore.open(path) as store:
        assert store.tree_head() == head  # not re-read from the leaves
    with sqlite3.connect(path) as db:
        db.execute("UPDATE chain_head SET tree = NULL")
    with pytest.raises(AuditWriteError, match="Merkle leaf 3 is missing or malformed"):
        AuditStore.open(path)


def test_lictor_signs_on_shutdown_and_keeps_a_private_key(start_lictor: StartLictor) -> None:
    server = start_lictor(models=[{"name": "lictor-local", "backend": "local"}],
                          audit={"checkpoint_every_records": 3})
    c = client(server)
    started = time.perf_counter()
    for _ in range(3):
        c.chat.completions.create(model="lictor-local",
                                  messages=[{"role": "user", "content": "hello"}])
    assert time.perf_counter() - started < 30
    store = server.gateway.audit
    assert [cp.size for cp in store.checkpoints()] == [4]  # 2 records per request, every 3
    server.stop()
    data = store.path.parent
    key = data / "keys" / "audit-signing.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with AuditStore.open(store.path) as reopened:
        assert [cp.size for cp in reopened.checkpoints()] == [4, 6]  # the rest at shutdown
        assert len(reopened.signing_keys()) == 1


def test_lictor_refuses_a_loose_or_missing_configured_key(
        start_lictor: StartLictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from lictor.proxy.cli import main

    key = tmp_path / "audit.pem"
    create_key_file(key)
    os.chmod(key, 0o644)
    with pytest.raises(KeyFileError, match=r"mode 0644.*chmod 600"):
        start_lictor(audit={"signing_key": str(key)})
    config = tmp_path / "lictor.yaml"
    config.write_text(f"data_dir: {tmp_path / 'var'}\naudit: {{signing_key: {key}}}\n")
    assert main(["audit", "rotate-key", "--config", str(config)]) == 2
    assert f"audit signing key {key} is readable" in capsys.readouterr().err
    assert stat.S_IMODE(key.stat().st_mode) == 0o644  # left alone, not replaced
    missing = tmp_path / "absent.pem"
    with pytest.raises(KeyFileError, match="does not exist; create one with"):
        start_lictor(audit={"signing_key": str(missing)})


def test_a_lost_data_dir_key_is_replaced_and_old_checkpoints_still_verify(
        start_lictor: StartLictor) -> None:
    """The default signing key deleted between runs: lictor makes a new one (logged in the
    store's key list), signs on with it, and every checkpoint, old and new, verifies."""
    from lictor.proxy.cli import main

    server = start_lictor(models=[{"name": "lictor-local", "backend": "local"}])
    client(server).chat.completions.create(model="lictor-local",
                                           messages=[{"role": "user", "content": "one"}])
    server.stop()
    store_path = server.gateway.audit.path
    (store_path.parent / "keys" / "audit-signing.pem").unlink()  # the fault
    again = start_lictor(models=[{"name": "lictor-local", "backend": "local"}])
    client(again).chat.completions.create(model="lictor-local",
                                          messages=[{"role": "user", "content": "two"}])
    again.stop()
    with AuditStore.open(store_path) as reopened:
        assert len(reopened.signing_keys()) == 2
        assert [cp.size for cp in reopened.checkpoints()] == [2, 4]
    assert main(["audit", "verify", "--data-dir", str(store_path.parent)]) == 0
