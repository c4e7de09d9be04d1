"""Offline check of an evidence bundle: needs only the bundle folder and lictor.

Checks the signed manifest and every file's hash, the checkpoints' signatures, the
consistency proofs between checkpoints, and each record's inclusion proof up to a signed
root. Every problem is reported with the file, line and record it concerns.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from lictor.audit.bundle_export import BUNDLE_FORMAT, Selection, manifest_note_body
from lictor.audit.bundle_views import VIEW_FILES, render_view
from lictor.audit.canonical_json import canonicalize
from lictor.audit.checkpoints import (
    CheckpointError,
    ParsedCheckpoint,
    check_note_signatures,
    check_signatures,
    parse_checkpoint,
    parse_note,
)
from lictor.audit.full_verify import FullReport
from lictor.audit.merkle import ProofError, leaf_hash, verify_consistency, verify_inclusion
from lictor.audit.signing import VerifierKey, b64decode_strict, parse_vkey

__all__ = ["verify_bundle"]

_MAX_LISTED = 10  # record problems listed one by one; the rest are counted


def _read(folder: Path, name: str, report: FullReport) -> bytes | None:
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        report.add(name, False, f"cannot read it ({exc.strerror}); the bundle is incomplete")
        return None


def _keys(folder: Path, report: FullReport, trusted: Iterable[str]) -> dict[bytes, VerifierKey]:
    pinned = {k.key_id: k for k in (parse_vkey(t) for t in trusted)}
    known: dict[bytes, VerifierKey] = {}
    text = _read(folder, "keys.txt", report)
    for n, line in enumerate((text or b"").decode("utf-8", "replace").splitlines(), start=1):
        try:
            key = parse_vkey(line)
        except ValueError as exc:
            report.add(f"keys.txt line {n}", False, str(exc))
            continue
        known[key.key_id] = key
        note = "" if not pinned else (", trusted" if key.key_id in pinned else
                                      ", not among the trusted keys: ignored")
        report.add(f"key {key.key_id.hex()}", True, f"OK ({key.name}{note})")
    return pinned or known


def _manifest(folder: Path, report: FullReport, keys: dict[bytes, VerifierKey]
              ) -> dict[str, Any] | None:
    raw, sig = _read(folder, "manifest.json", report), _read(folder, "manifest.sig", report)
    if raw is None:
        return None
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict) or canonicalize(manifest) + b"\n" != raw:
            raise ValueError("not one canonical JSON object")
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError(f"format is not {BUNDLE_FORMAT}")
    except ValueError as exc:
        report.add("manifest.json", False, f"{exc} (modified)")
        return None
    if sig is not None:
        try:
            body, signatures = parse_note(sig.decode("utf-8"))
            if body != manifest_note_body(str(manifest.get("origin")), raw):
                raise CheckpointError("it signs another manifest (manifest.json modified)")
            who = check_note_signatures(body, signatures, keys)
            report.add("manifest.sig", True, f"signature OK ({', '.join(who)})")
        except (CheckpointError, UnicodeDecodeError) as exc:
            report.add("manifest.sig", False, str(exc))
    return manifest


def _files(folder: Path, report: FullReport, manifest: dict[str, Any]) -> None:
    listed = manifest.get("files")
    if not isinstance(listed, dict) or not listed:
        report.add("manifest.json", False, "lists no files (modified)")
        return
    bad = []
    for name, digest in listed.items():
        parts = PurePosixPath(name).parts
        if PurePosixPath(name).is_absolute() or ".." in parts:
            bad.append(f"{name}: a path outside the bundle")
            continue
        try:
            data = (folder / name).read_bytes()
        except OSError:
            bad.append(f"{name}: missing")
            continue
        if hashlib.sha256(data).hexdigest() != digest:
            bad.append(f"{name}: SHA-256 does not match manifest.json (modified)")
    if bad:
        report.add("files", False, "; ".join(bad))
    else:
        report.add("files", True, f"OK ({len(listed)} files match manifest.json)")


def _checkpoints(folder: Path, report: FullReport, manifest: dict[str, Any],
                 keys: dict[bytes, VerifierKey]) -> dict[int, ParsedCheckpoint]:
    out: dict[int, ParsedCheckpoint] = {}
    for cid in manifest.get("checkpoints") or []:
        name = f"checkpoints/{cid}.txt"
        raw = _read(folder, name, report)
        if raw is None:
            continue
        try:
            cp = parse_checkpoint(raw.decode("utf-8"))
            who = check_signatures(cp, keys)
            if cp.origin != manifest.get("origin"):
                raise CheckpointError(f"origin {cp.origin!r} is not the bundle's log")
        except (CheckpointError, UnicodeDecodeError) as exc:
            report.add(f"checkpoint {cid}", False, f"{name}: {exc}")
            continue
        out[int(cid)] = cp
        report.add(f"checkpoint {cid} (size {cp.size})", True, f"signature OK ({', '.join(who)})")
    return out


def _consistency(folder: Path, report: FullReport, cps: dict[int, ParsedCheckpoint]) -> None:
    raw = _read(folder, "consistency.json", report)
    try:
        proofs = json.loads(raw or b"{}").get("proofs", [])
        for p in proofs:
            old, new = cps[int(p["from"])], cps[int(p["to"])]
            if (old.size, new.size) != (p["old_size"], p["new_size"]):
                raise ProofError("its sizes are not the checkpoints' sizes")
            path = [b64decode_strict(h) for h in p["path"]]
            verify_consistency(old.size, new.size, old.root, new.root, path)
            report.add(f"consistency {p['from']} -> {p['to']}", True,
                       f"OK (size {old.size} is a prefix of size {new.size})")
    except (ProofError, KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        report.add("consistency.json", False, f"{exc or type(exc).__name__}")


def _record_problem(line: bytes, proof_line: bytes, expected_seq: Any, selection: Selection,
                    cps: dict[int, ParsedCheckpoint], *, used: set[int]
                    ) -> tuple[int | None, str | None]:
    """(seq, None) if the record and its proof check out, else (seq or None, the problem);
    adds the checkpoint it is proven in to ``used``."""
    try:
        record = json.loads(line)
        proof = json.loads(proof_line)
    except ValueError:
        return None, "not valid JSON (modified)"
    seq = record.get("seq") if isinstance(record, dict) else None
    if not isinstance(record, dict) or canonicalize(record) != line:
        return seq, "not canonical JSON (modified)"
    if seq != expected_seq or proof.get("seq") != seq:
        return seq, "its seq is not the one manifest.json and proofs.jsonl list (reordered)"
    if not selection.matches(record):
        return seq, "does not match the bundle's selection"
    cp = cps.get(proof.get("checkpoint"))
    if cp is None or proof.get("tree_size") != cp.size:
        return seq, "its proof names no verified checkpoint"
    try:
        path = [b64decode_strict(h) for h in proof["path"]]
        leaf = leaf_hash(hashlib.sha256(line).digest())
        verify_inclusion(seq - 1, cp.size, leaf, path, cp.root)
    except (ProofError, KeyError, TypeError, binascii.Error) as exc:
        return seq, f"not proven in checkpoint {proof.get('checkpoint')}: {exc}"
    used.add(int(proof["checkpoint"]))
    return seq, None


def _records(folder: Path, report: FullReport, manifest: dict[str, Any],
             cps: dict[int, ParsedCheckpoint]) -> None:
    records, proofs = _read(folder, "records.jsonl", report), _read(folder, "proofs.jsonl", report)
    if records is None or proofs is None:
        return
    lines, proof_lines = records.split(b"\n"), proofs.split(b"\n")
    seqs = manifest.get("seqs") or []
    if lines[-1] or proof_lines[-1] or len(lines) != len(proof_lines) or len(lines) - 1 != len(
            seqs):
        report.add("records.jsonl", False, f"{len(lines) - 1} records, {len(proof_lines) - 1} "
                   f"proofs, manifest.json lists {len(seqs)} (records added or removed)")
        return
    try:
        selection = Selection(**manifest.get("selection", {}))
    except TypeError:
        report.add("manifest.json", False, "unknown selection fields (modified)")
        return
    problems: list[str] = []
    used: set[int] = set()
    for n, (line, proof_line, seq) in enumerate(zip(lines, proof_lines, seqs, strict=False),
                                                start=1):
        got, problem = _record_problem(line, proof_line, seq, selection, cps, used=used)
        if problem:
            problems.append(f"records.jsonl line {n} (record {got}): {problem}")
    _views(folder, report, manifest, lines[:-1])
    if problems:
        more = len(problems) - _MAX_LISTED
        shown = "; ".join(problems[:_MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")
        report.add("records", False, shown)
    else:
        where = " or ".join(f"{c} (size {cps[c].size})" for c in sorted(used))
        report.add("records", True, f"OK ({len(seqs)} records, each proven in checkpoint "
                   f"{where})")


def _views(folder: Path, report: FullReport, manifest: dict[str, Any], lines: list[bytes]
           ) -> None:
    """A view (OCSF, CSV) must be exactly what the proven records render to."""
    listed = manifest.get("files") or {}
    for fmt, (name, _) in VIEW_FILES.items():
        if name not in listed:
            continue
        try:
            expected = render_view(fmt, lines)[1]
        except (ValueError, TypeError, AttributeError):
            expected = b""
        try:
            same = (folder / name).read_bytes() == expected
        except OSError:
            same = False
        if same:
            report.add(name, True, f"OK (the {fmt} view of the {len(lines)} records)")
        else:
            report.add(name, False, f"is not the {fmt} view of records.jsonl (modified)")


def verify_bundle(folder: Path, trusted_keys: Iterable[str] = ()) -> FullReport:
    """Check the bundle in ``folder``; ``trusted_keys`` pins the verifier keys."""
    report = FullReport()
    if not (folder / "manifest.json").is_file():
        report.add("bundle", False, f"no manifest.json in {folder}; is it a bundle folder?")
        return report
    keys = _keys(folder, report, trusted_keys)
    manifest = _manifest(folder, report, keys)
    if manifest is None:
        return report
    _files(folder, report, manifest)
    cps = _checkpoints(folder, report, manifest, keys)
    _consistency(folder, report, cps)
    _records(folder, report, manifest, cps)
    return report
