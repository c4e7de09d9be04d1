"""Evidence bundles: selected audit records with proofs that they belong to the signed log.

A bundle discloses only the selected records; the inclusion proofs carry sibling hashes,
never other records, so one agent's records can be handed over without the rest.
Layout (every file listed with its SHA-256 in ``manifest.json``, which is itself signed
in ``manifest.sig``): ``records.jsonl``, ``proofs.jsonl``, ``checkpoints/<id>.txt``,
``consistency.json``, ``keys.txt``, ``README.md``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lictor.audit.bundle_views import render_view
from lictor.audit.canonical_json import canonicalize
from lictor.audit.checkpoints import Checkpointer, parse_checkpoint, sign_note
from lictor.audit.merkle import MerkleTree
from lictor.audit.store import AuditStore, StoredCheckpoint

__all__ = [
    "BUNDLE_FORMAT",
    "ExportError",
    "ExportSummary",
    "Selection",
    "export_bundle",
    "manifest_note_body",
    "normalize_time",
]

BUNDLE_FORMAT = "lictor-audit-bundle/1"


class ExportError(Exception):
    """The export cannot be made (bad arguments, no matching records, store disagrees)."""


def normalize_time(text: str) -> str:
    """An RFC 3339 time or date, as the store writes times (UTC, microseconds, ``Z``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{text!r} is not an RFC 3339 time (e.g. 2026-11-21T20:00:00Z)") \
            from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True, frozen=True)
class Selection:
    """Which records to export: ``since`` <= time < ``until``, one agent, one verdict."""

    since: str | None = None
    until: str | None = None
    agent: str | None = None
    verdict: str | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """True if ``record`` is selected."""
        when = str(record.get("time", ""))
        if (self.since and when < self.since) or (self.until and when >= self.until):
            return False
        principal = record.get("principal")
        agent = principal.get("agent") if isinstance(principal, dict) else None
        if self.agent is not None and agent != self.agent:
            return False
        return self.verdict is None or record.get("verdict") == self.verdict


@dataclass(slots=True, frozen=True)
class ExportSummary:
    """What went into the bundle."""

    records: int
    first_seq: int
    last_seq: int
    checkpoints: list[int]
    fresh_checkpoint: bool


def manifest_note_body(origin: str, manifest: bytes) -> str:
    """The text ``manifest.sig`` signs: the bundle format, the log, the manifest's SHA-256."""
    return f"{BUNDLE_FORMAT}\n{origin}\n{hashlib.sha256(manifest).hexdigest()}\n"


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(x).decode() for x in items]


def _line(obj: dict[str, Any]) -> bytes:
    return canonicalize(obj) + b"\n"


_README = """# lictor audit evidence bundle

This folder holds {count} audit records of the log `{origin}` (records {first} to {last}
of the full log, selected by: {selection}), and the evidence that they belong to it,
unchanged, in this order.

| file | what it is |
|---|---|
| `records.jsonl` | the selected records, one RFC 8785 canonical JSON object per line |
| `proofs.jsonl` | for each record, an RFC 9162 inclusion proof against a checkpoint |
| `checkpoints/*.txt` | signed checkpoints (C2SP tlog-checkpoint): tree size and root hash |
| `consistency.json` | RFC 9162 consistency proofs between the checkpoints |
| `keys.txt` | the Ed25519 public keys of the log (C2SP verifier keys) |
| `records.ocsf.jsonl`, `records.csv` | if asked for: the records as OCSF events or CSV |
| `manifest.json`, `manifest.sig` | SHA-256 of every file, signed with the log's key |

## Verify

```sh
lictor audit verify-bundle . --key '<the verifier key the operator published>'
```

It works offline. It checks the manifest signature and every file's hash, each
checkpoint's signature, the consistency proofs, and for every record: its hash
(SHA-256 of its line without the newline), its leaf hash SHA-256(0x00 || record hash),
and its inclusion proof up to the signed root. Any failure exits non-zero and says
which file or record. Without `--key`, the keys in `keys.txt` are used: compare their
ids with the ones the operator published, since a forger could ship their own key.

The proofs contain only hashes: the log's other records are not disclosed. A bundle
proves that these records are in the signed log; it cannot prove that no other record
matches the selection.
"""


def export_bundle(
    store: AuditStore, checkpointer: Checkpointer, selection: Selection, out: Path,
    views: Sequence[str] = (),
) -> ExportSummary:
    """Write the bundle for ``selection`` into the new or empty folder ``out``, with the
    ``views`` (``ocsf``, ``csv``) of its records too."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; choose a new --out")
    chosen: list[tuple[int, str]] = []
    for seq, _, body in store.records():
        if selection.matches(json.loads(body)):
            chosen.append((seq, body))
    if not chosen:
        raise ExportError(f"no audit records match {_describe(selection)}")
    last_seq = chosen[-1][0]
    covering = [c for c in store.checkpoints() if c.size >= last_seq]
    fresh = not covering
    if fresh:
        made = checkpointer.checkpoint(force=True)
        assert made is not None  # forced
        covering = [made]
    first, latest = covering[0], covering[-1]
    tree = MerkleTree(store.leaf_hashes(latest.size))
    used = [first] if first.id == latest.id else [first, latest]
    for cp in used:
        if tree.size < cp.size or parse_checkpoint(cp.note).root != tree.root(cp.size):
            raise ExportError(f"the store does not match its checkpoint {cp.id}; run "
                              "`lictor audit verify` to see what was altered")
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "records.jsonl": b"".join(body.encode() + b"\n" for _, body in chosen),
        "proofs.jsonl": b"".join(
            _line({"seq": seq, "checkpoint": first.id, "tree_size": first.size,
                   "path": _b64(tree.inclusion_proof(seq - 1, first.size))})
            for seq, _ in chosen),
        "consistency.json": _line({"proofs": [
            {"from": first.id, "to": latest.id, "old_size": first.size,
             "new_size": latest.size,
             "path": _b64(tree.consistency_proof(first.size, latest.size))},
        ] if len(used) == 2 else []}),
        "keys.txt": "".join(f"{v}\n" for v in sorted(store.signing_keys().values())).encode(),
    }
    files.update({f"checkpoints/{cp.id}.txt": cp.note.encode() for cp in used})
    for fmt in views:
        name, data = render_view(fmt, [body.encode() for _, body in chosen])
        files[name] = data
    origin = checkpointer.origin
    files["README.md"] = _README.format(
        count=len(chosen), origin=origin, first=chosen[0][0], last=last_seq,
        selection=_describe(selection)).encode()
    manifest = _manifest(origin, selection, chosen, used, files)
    files["manifest.json"] = manifest
    files["manifest.sig"] = sign_note(
        manifest_note_body(origin, manifest), [checkpointer.signer]).encode()
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(mode=0o700, exist_ok=True)
        path.write_bytes(data)
    return ExportSummary(len(chosen), chosen[0][0], last_seq, [c.id for c in used], fresh)


def _describe(selection: Selection) -> str:
    parts = [f"{k} {v}" for k, v in asdict(selection).items() if v is not None]
    return ", ".join(parts) or "all records"


def _manifest(
    origin: str, selection: Selection, chosen: list[tuple[int, str]],
    used: list[StoredCheckpoint], files: dict[str, bytes],
) -> bytes:
    return _line({
        "format": BUNDLE_FORMAT,
        "origin": origin,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "selection": {k: v for k, v in asdict(selection).items() if v is not None},
        "records": len(chosen),
        "seqs": [seq for seq, _ in chosen],
        "checkpoints": [c.id for c in used],
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    })
