"""Retention: old records removed under a signed prune note, so the log still verifies
and the gap is explicit.

A prune deletes the bodies of records 1..P and keeps their 32-byte Merkle leaves (hashes
only, no content), so every signed checkpoint still verifies. The prune note, signed
like a checkpoint, states P, the hash of record P (where the chain now starts) and the
tree it was cut from; verification starts the chain at P+1 from that hash, and a gap no
signed note explains is still a deletion.

    <origin>
    lictor audit prune v1
    through <P>
    last-hash <hex hash of record P>
    tree <size> <base64 root>
    before <RFC 3339 time: the records removed were older>
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from lictor.audit.checkpoints import CheckpointError, NoteSignature, parse_note, sign_note
from lictor.audit.signing import Signer, b64decode_strict
from lictor.audit.store import AuditStore

HEADER = "lictor audit prune v1"


@dataclass(slots=True, frozen=True)
class PruneNote:
    origin: str
    through: int
    last_hash: str
    size: int
    root: bytes
    before: str
    body: str
    signatures: tuple[NoteSignature, ...]


def parse_prune(note: str) -> PruneNote:
    """Take a prune note apart; CheckpointError says what is malformed."""
    body, signatures = parse_note(note)
    lines = body.split("\n")
    try:
        origin, header, through, last, tree, before = lines[:6]
        if header != HEADER:
            raise ValueError(f"not a prune note ({header!r})")
        _, size_text, root_text = tree.split(" ")
        return PruneNote(origin, int(through.removeprefix("through ")),
                         last.removeprefix("last-hash "), int(size_text),
                         b64decode_strict(root_text), before.removeprefix("before "), body,
                         signatures)
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError(f"malformed prune note: {exc}") from None


def last_prune(rows: list[tuple[int, str]]) -> PruneNote | None:
    """The prune that reaches furthest, from (id, note) rows; malformed ones are skipped
    here (full verification reports them)."""
    best: PruneNote | None = None
    for _, note in rows:
        try:
            parsed = parse_prune(note)
        except CheckpointError:
            continue
        if best is None or parsed.through > best.through:
            best = parsed
    return best


def prune_before(store: AuditStore, signer: Signer, origin: str, before: str) -> dict[str, Any]:
    """Remove the records older than `before` (RFC 3339, UTC) under a signed note; the
    newest record always stays, so the chain has a head. Returns what was done."""
    already = store.pruned_through()
    through = already
    for seq, _, body in store.records():
        if seq == store.head[0] or json.loads(body).get("time", "") >= before:
            break
        through = seq
    if through <= already:
        return {"pruned": 0, "through": already}
    hashes = dict(store.record_hashes(through, through))
    size, root = store.tree_head()
    body = (f"{origin}\n{HEADER}\nthrough {through}\nlast-hash {hashes[through]}\n"
            f"tree {size} {base64.b64encode(root).decode()}\nbefore {before}\n")
    note = sign_note(body, [signer])
    removed = store.prune(through, note)
    return {"pruned": removed, "through": through, "note": note}
