"""Erasure by crypto-shredding: kept originals are sealed per data subject; erasing a
subject destroys its key, the records and chain stay and verify, the values are gone."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import openai
import pytest
from conftest import DEMO_KEY, StartLictor, audit_rows

from lictor.proxy.cli import main
from lictor.proxy.server import BackgroundServer

EMAIL, OTHER = "jane.doe@example.com", "max.mustermann@example.org"


def _ask(server: BackgroundServer, text: str, subject: str) -> str:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=DEMO_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="lictor-local", messages=[{"role": "user", "content": text}],
        extra_headers={"x-lictor-subject": subject})
    return str(raw.headers["x-lictor-request-id"])


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["audit", *args])
    return code, capsys.readouterr().out


def test_erase_a_subject(start_lictor: StartLictor, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "var"
    server = start_lictor(models=[{"name": "lictor-local", "backend": "local"}],
                          audit={"keep_originals": True})
    jane = _ask(server, f"Please write to {EMAIL} about the refund.", "customer-42")
    max_ = _ask(server, f"Please write to {OTHER} about the invoice.", "customer-7")
    sealed = next(r["originals"] for r in audit_rows(server) if r["request_id"] == jane)
    server.stop()

    code, out = _cli(capsys, "reveal", "--request", jane, "--data-dir", str(data_dir))
    assert code == 0 and json.loads(out) == {"<EMAIL_1>": EMAIL}
    with sqlite3.connect(data_dir / "subject_keys.sqlite3") as db:
        (key,) = db.execute("SELECT key FROM subject_keys WHERE key_id = ?",
                            (sealed["key_id"],)).fetchone()
    assert not any(EMAIL.encode() in p.read_bytes() for p in data_dir.iterdir() if p.is_file())

    code, out = _cli(capsys, "erase", "--subject", "customer-42", "--data-dir", str(data_dir))
    assert code == 0 and "erased" in out
    assert _cli(capsys, "verify", "--data-dir", str(data_dir))[0] == 0
    code, out = _cli(capsys, "reveal", "--request", jane, "--data-dir", str(data_dir))
    assert out.strip() == "erased"
    # the ciphertext is still in the log; the key is gone from every file of the data dir
    with sqlite3.connect(data_dir / "audit.sqlite3") as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM records")]
    assert sealed in [b.get("originals") for b in bodies]
    assert not any(bytes(key) in p.read_bytes() for p in data_dir.iterdir() if p.is_file())
    # another subject is untouched
    code, out = _cli(capsys, "reveal", "--request", max_, "--data-dir", str(data_dir))
    assert json.loads(out) == {"<EMAIL_1>": OTHER}
    assert _cli(capsys, "erase", "--subject", "customer-42", "--data-dir", str(data_dir))[0] == 1
