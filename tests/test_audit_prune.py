"""Retention: `lictor audit prune --before T` removes old records under a signed prune
note; the log still verifies and the gap is explicit; a gap no signed note explains, or a
forged note, fails."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from lictor.audit import AuditStore
from lictor.audit.checkpoints import Checkpointer, sign_note
from lictor.audit.prune import HEADER
from lictor.audit.signing import create_key_file, load_signer
from lictor.proxy.cli import main

ORIGIN = "lictor.local/audit"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """30 records with signed checkpoints every 10."""
    data = tmp_path / "var"
    create_key_file(data / "keys" / "audit-signing.pem")
    signer = load_signer(data / "keys" / "audit-signing.pem", ORIGIN)
    with AuditStore.open(data / "audit.sqlite3") as store:
        cps = Checkpointer(store, signer, ORIGIN, every_records=10)
        for i in range(30):
            store.append({"kind": "model_request", "n": i})
            cps.after_append()
    return data


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", *args])
    out = capsys.readouterr()
    return code, out.out + out.err


def _times(data: Path) -> list[str]:
    with sqlite3.connect(data / "audit.sqlite3") as db:
        return [json.loads(b)["time"] for (b,) in db.execute("SELECT body FROM records")]


def test_prune_keeps_the_log_verifiable_and_names_the_gap(
        data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cutoff = _times(data_dir)[12]  # records 1..12 are older than the 13th's time
    code, out = _run(capsys, "prune", "--before", cutoff, "--data-dir", str(data_dir))
    assert code == 0 and "pruned 12 records (1 to 12" in out
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        seqs = [s for (s,) in db.execute("SELECT seq FROM records ORDER BY seq")]
    assert seqs[0] == 13 and seqs[-1] == 30
    code, out = _run(capsys, "verify", "--data-dir", str(data_dir))
    assert code == 0, out
    assert "prune 1: records 1 to 12 (older than" in out
    assert "checkpoint 1 (size 10): signature OK" in out  # still verifies from the leaves
    code, out = _run(capsys, "prune", "--before", cutoff, "--data-dir", str(data_dir))
    assert code == 0 and "nothing to prune" in out


def test_a_gap_without_a_valid_note_fails(data_dir: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:  # deleted, nothing signed
        db.execute("DELETE FROM records WHERE seq <= 5")
    code, out = _run(capsys, "verify", "--data-dir", str(data_dir))
    assert code == 1 and "chain: FAILED: records 1 to 5 are missing (deleted)" in out

    # a note signed with a key the log does not know
    other = data_dir.parent / "other.pem"
    create_key_file(other)
    forger = load_signer(other, ORIGIN)
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        body = (f"{ORIGIN}\n{HEADER}\nthrough 5\nlast-hash {'00' * 32}\n"
                f"tree 30 {base64.b64encode(bytes(32)).decode()}\nbefore 2030-01-01\n")
        db.execute("INSERT INTO prunes (through, time, note) VALUES (5, 'x', ?)",
                   (sign_note(body, [forger]),))
    code, out = _run(capsys, "verify", "--data-dir", str(data_dir))
    assert code == 1
    assert "prune 1: FAILED: signed by an unknown key" in out
