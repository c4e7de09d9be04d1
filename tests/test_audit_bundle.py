"""Evidence bundles: one agent's records for a time window, verified offline; any flipped
byte in any file of the bundle fails verification."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lictor.audit import AuditStore, canonicalize
from lictor.audit.bundle_export import manifest_note_body
from lictor.audit.bundle_verify import verify_bundle
from lictor.audit.checkpoints import Checkpointer, sign_note
from lictor.audit.signing import create_key_file, load_signer
from lictor.proxy.cli import main

ORIGIN = "lictor.local/audit"


def _now() -> str:
    time.sleep(0.002)  # so no record shares the boundary's microsecond
    stamp = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + \
        f".{int(stamp % 1 * 1e6):06d}Z"


@pytest.fixture
def store_dir(tmp_path: Path) -> tuple[Path, str, str]:
    """45 records of three agents in three phases; checkpoints at 10, 20, 30 and 40.

    Returns the data dir and the times that bound phase 2 (records 16 to 30).
    """
    data = tmp_path / "var"
    create_key_file(data / "keys" / "audit-signing.pem")
    signer = load_signer(data / "keys" / "audit-signing.pem", ORIGIN)
    bounds = []
    with AuditStore.open(data / "audit.sqlite3") as store:
        cps = Checkpointer(store, signer, ORIGIN, every_records=10)
        for phase in range(3):
            if phase:
                bounds.append(_now())
            for i in range(15):
                store.append({"kind": "model_request", "principal": {"agent": f"agent-{i % 3}"},
                              "verdict": "block" if i % 5 == 0 else "allow",
                              "content": [{"text": f"secret of agent-{i % 3} #{phase}.{i}"}]})
                cps.after_append()
        assert [c.size for c in store.checkpoints()] == [10, 20, 30, 40]
    return data, bounds[0], bounds[1]


def export(data: Path, out: Path, *args: str) -> int:
    return main(["audit", "export", "--data-dir", str(data), "--out", str(out), *args])


def test_one_agents_window_exports_and_verifies_in_a_fresh_process(
        store_dir: tuple[Path, str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data, since, until = store_dir
    out = tmp_path / "bundle"
    assert export(data, out, "--since", since, "--until", until, "--agent", "agent-1") == 0
    printed = capsys.readouterr().out
    assert "exported 5 records (records 17 to 29)" in printed
    assert "inclusion proof against checkpoint 3, and a consistency proof to checkpoint 4" \
        in printed
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert [r["seq"] for r in records] == [17, 20, 23, 26, 29]
    assert {r["principal"]["agent"] for r in records} == {"agent-1"}
    # selective disclosure: nothing of the other agents' records is in the bundle
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert b"secret of agent-0" not in blob and b"secret of agent-2" not in blob
    assert b"#0." not in blob and b"#2." not in blob  # nor the other phases
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
        "README.md", "checkpoints/3.txt", "checkpoints/4.txt", "consistency.json",
        "keys.txt", "manifest.json", "manifest.sig", "proofs.jsonl", "records.jsonl"]

    result = subprocess.run(
        [sys.executable, "-m", "lictor.proxy.cli", "audit", "verify-bundle", "."],
        cwd=out, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("key ") and lines[0].endswith(f"OK ({ORIGIN})")
    assert lines[1].startswith("manifest.sig: signature OK (lictor.local/audit+")
    assert lines[2] == "files: OK (7 files match manifest.json)"
    assert lines[3].startswith("checkpoint 3 (size 30): signature OK")
    assert lines[5] == "consistency 3 -> 4: OK (size 30 is a prefix of size 40)"
    assert lines[6] == "records: OK (5 records, each proven in checkpoint 3 (size 30))"
    assert lines[7] == "bundle verify: OK (.)"


def test_every_flipped_byte_fails(store_dir: tuple[Path, str, str], tmp_path: Path) -> None:
    data, since, until = store_dir
    out = tmp_path / "bundle"
    assert export(data, out, "--since", since, "--until", until, "--agent", "agent-1") == 0
    assert verify_bundle(out).ok
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert len(files) == 9
    for path in files:
        original = path.read_bytes()
        step = max(1, len(original) // 60)  # every byte of small files, 60 spread over big
        for at in [*range(0, len(original), step), len(original) - 1]:
            flipped = bytearray(original)
            flipped[at] ^= 0x01
            path.write_bytes(bytes(flipped))
            report = verify_bundle(out)
            assert not report.ok, (path.name, at)
            assert report.failures, (path.name, at)
        path.write_bytes(original)
    assert verify_bundle(out).ok


def test_flipped_record_names_file_and_record(
        store_dir: tuple[Path, str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data, since, until = store_dir
    out = tmp_path / "bundle"
    assert export(data, out, "--since", since, "--until", until, "--agent", "agent-1") == 0
    text = (out / "records.jsonl").read_text()
    (out / "records.jsonl").write_text(text.replace('"allow"', '"alloW"', 1))
    capsys.readouterr()
    assert main(["audit", "verify-bundle", str(out)]) == 1
    err = capsys.readouterr().err
    assert "files: FAILED: records.jsonl: SHA-256 does not match manifest.json (modified)" \
        in err
    assert "records.jsonl line 1 (record 17): not proven in checkpoint 3" in err


def test_export_to_the_end_makes_a_fresh_checkpoint_and_pins_keys(
        store_dir: tuple[Path, str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data, _, _ = store_dir
    out = tmp_path / "b2"
    assert export(data, out, "--verdict", "block", "--since", "2000-01-01") == 0
    printed = capsys.readouterr().out
    assert "exported 9 records (records 1 to 41)" in printed
    assert "each with an inclusion proof against checkpoint 5\n" in printed
    assert "checkpoint 5 was made now: no earlier one covered record 41" in printed
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["5.txt"]
    vkey = (out / "keys.txt").read_text().strip()
    assert verify_bundle(out, [vkey]).ok
    create_key_file(tmp_path / "other.pem")
    other = load_signer(tmp_path / "other.pem", ORIGIN).verifier.vkey
    report = verify_bundle(out, [other])
    assert not report.ok
    assert any("unknown key" in str(c) for c in report.failures)


def test_export_refuses_empty_selection_and_used_folder(
        store_dir: tuple[Path, str, str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data, _, _ = store_dir
    assert export(data, tmp_path / "b", "--agent", "nobody") == 1
    assert "no audit records match agent nobody" in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    assert export(data, used) == 1
    assert "is not an empty folder" in capsys.readouterr().err
    assert export(data, tmp_path / "c", "--since", "yesterday") == 1
    assert "not an RFC 3339 time" in capsys.readouterr().err
    assert main(["audit", "verify-bundle", str(tmp_path)]) == 1
    assert "no manifest.json" in capsys.readouterr().err


def test_ocsf_and_csv_views_carry_record_hashes_and_are_checked(
        store_dir: tuple[Path, str, str], tmp_path: Path) -> None:
    data, since, until = store_dir
    out = tmp_path / "bundle"
    assert export(data, out, "--since", since, "--until", until, "--agent", "agent-2",
                  "--format", "ocsf", "--format", "csv") == 0
    lines = (out / "records.jsonl").read_bytes().splitlines()
    hashes = [hashlib.sha256(line).hexdigest() for line in lines]
    events = [json.loads(x) for x in (out / "records.ocsf.jsonl").read_text().splitlines()]
    assert len(events) == len(lines) == 5
    for event, digest, line in zip(events, hashes, lines, strict=True):
        record = json.loads(line)
        assert (event["class_uid"], event["category_uid"], event["type_uid"]) == (6003, 6, 600399)
        assert event["metadata"]["uid"] == event["unmapped"]["record_hash"] == digest
        assert event["metadata"]["sequence"] == record["seq"]
        assert event["actor"]["user"]["uid"] == event["src_endpoint"]["name"] == "agent-2"
        assert event["api"]["operation"] == "model_request"
        assert event["action"] == ("Denied" if record["verdict"] == "block" else "Allowed")
        assert isinstance(event["time"], int) and event["metadata"]["version"]
    rows = list(csv.DictReader(io.StringIO((out / "records.csv").read_text())))
    assert [r["record_hash"] for r in rows] == hashes
    assert {r["agent"] for r in rows} == {"agent-2"}
    report = verify_bundle(out)
    assert report.ok, [str(c) for c in report.failures]
    assert "records.ocsf.jsonl: OK (the ocsf view of the 5 records)" in map(str, report.checks)

    # the operator's own key cannot make a view say something the records do not
    signer = load_signer(data / "keys" / "audit-signing.pem", ORIGIN)
    (out / "records.csv").write_text((out / "records.csv").read_text().replace(
        "agent-2", "agent-9"))
    manifest = json.loads((out / "manifest.json").read_bytes())
    manifest["files"]["records.csv"] = hashlib.sha256(
        (out / "records.csv").read_bytes()).hexdigest()
    raw = canonicalize(manifest) + b"\n"
    (out / "manifest.json").write_bytes(raw)
    (out / "manifest.sig").write_text(sign_note(manifest_note_body(ORIGIN, raw), [signer]))
    report = verify_bundle(out)
    assert [str(c) for c in report.failures] == [
        "records.csv: FAILED: is not the csv view of records.jsonl (modified)"]


def test_export_without_a_store_creates_nothing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert export(tmp_path / "absent", tmp_path / "b") == 1
    assert "no audit store at" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists() and not (tmp_path / "b").exists()


def test_ocsf_events_of_model_calls_carry_the_ai_operation_profile() -> None:
    from lictor.audit.bundle_views import render_view

    record = {"seq": 7, "time": "2026-11-21T20:00:00.000000Z", "kind": "model_request",
              "request_id": "req_1", "principal": {"agent": "billing-bot"},
              "action": {"kind": "model_request", "model": "gpt-4o", "backend": "passthrough"},
              "verdict": "mask", "findings": [{"rule": "pii.mask-outbound"}]}
    _, rendered = render_view("ocsf", [canonicalize(record)])
    event = json.loads(rendered)
    assert event["metadata"]["profiles"] == ["ai_operation"]
    assert event["ai_model"] == {"name": "gpt-4o", "ai_provider": "passthrough"}
    assert event["unmapped"]["rules"] == ["pii.mask-outbound"]
