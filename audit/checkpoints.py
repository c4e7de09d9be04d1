"""Signed checkpoints of the audit Merkle tree, in the C2SP tlog-checkpoint format.

A checkpoint is a signed note: ``<origin>\\n<tree size>\\n<base64 root>\\n``, a blank line,
then one line ``— <key name> <base64(key id || Ed25519 signature)>`` per signer. Anyone
with the public key can check that the log had exactly this root at this size, and a
later checkpoint must be consistent with it (the log only grew).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from lictor.audit.signing import Signer, VerifierKey, b64decode_strict
from lictor.audit.store import AuditStore, StoredCheckpoint

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "NoteSignature",
    "ParsedCheckpoint",
    "check_note_signatures",
    "check_signatures",
    "parse_checkpoint",
    "parse_note",
    "sign_checkpoint",
    "sign_note",
]

log = logging.getLogger(__name__)

_DASH = "\u2014"  # the em dash that starts every signed-note signature line


class CheckpointError(ValueError):
    """A checkpoint note is malformed or its signatures do not verify."""


@dataclass(slots=True, frozen=True)
class NoteSignature:
    """One signature line: who (name and 4-byte key id) and the 64-byte signature."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(slots=True, frozen=True)
class ParsedCheckpoint:
    """A checkpoint note taken apart; ``body`` is the signed text."""

    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[NoteSignature, ...]


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The signed text of a checkpoint: origin, tree size, base64 root, each on a line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, signers: Iterable[Signer]) -> str:
    """A complete signed checkpoint note, one signature line per signer."""
    return sign_note(checkpoint_body(origin, size, root), signers)


def sign_note(body: str, signers: Iterable[Signer]) -> str:
    """A C2SP signed note: ``body`` (ending in a newline), a blank line, signature lines."""
    lines = [
        f"{_DASH} {s.name} {base64.b64encode(s.key_id + s.sign(body.encode())).decode()}\n"
        for s in signers
    ]
    if not lines or not body.endswith("\n"):
        raise ValueError("a signed note needs a body ending in a newline and a signer")
    return body + "\n" + "".join(lines)


def parse_note(note: str) -> tuple[str, tuple[NoteSignature, ...]]:
    """Split a signed note into its signed text and its signature lines."""
    body, sep, sig_text = note.partition("\n\n")
    if not sep or not sig_text.endswith("\n"):
        raise CheckpointError("not a signed note (no blank line before the signatures)")
    signatures = []
    for line in sig_text[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise CheckpointError(f"malformed signature line {line!r}")
        try:
            raw = b64decode_strict(parts[2])
        except binascii.Error:
            raise CheckpointError(f"signature by {parts[1]} is not base64") from None
        if len(raw) != 68:
            raise CheckpointError(f"signature by {parts[1]} is not an Ed25519 signature")
        signatures.append(NoteSignature(parts[1], raw[:4], raw[4:]))
    return body + "\n", tuple(signatures)


def parse_checkpoint(note: str) -> ParsedCheckpoint:
    """Take a checkpoint note apart; CheckpointError says what is malformed."""
    body, signatures = parse_note(note)
    lines = body.split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint needs origin, tree size and root hash lines")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise CheckpointError(f"tree size {size_text!r} is not a decimal number")
    try:
        root = b64decode_strict(root_text)
    except binascii.Error:
        raise CheckpointError("root hash is not base64") from None
    if len(root) != 32:
        raise CheckpointError("root hash is not 32 bytes")
    return ParsedCheckpoint(origin, int(size_text), root, body, signatures)


def check_signatures(cp: ParsedCheckpoint, keys: Mapping[bytes, VerifierKey]) -> list[str]:
    """Names of the keys that signed ``cp``; CheckpointError if any signature is unknown or bad."""
    return check_note_signatures(cp.body, cp.signatures, keys)


def check_note_signatures(
    body: str, signatures: Iterable[NoteSignature], keys: Mapping[bytes, VerifierKey]
) -> list[str]:
    """Every signature line must verify with a known key: a line from an unknown key is a
    forgery here, not something to skip. Returns ``name+keyid`` of each signer."""
    signed_by = []
    for sig in signatures:
        key = keys.get(sig.key_id)
        if key is None or key.name != sig.name:
            raise CheckpointError(f"signed by an unknown key {sig.name}+{sig.key_id.hex()}")
        if not key.verify(body.encode(), sig.signature):
            raise CheckpointError(f"signature by key {sig.name}+{sig.key_id.hex()} is invalid")
        signed_by.append(f"{sig.name}+{sig.key_id.hex()}")
    if not signed_by:
        raise CheckpointError("no signatures")
    return signed_by


class Checkpointer:
    """Signs and stores checkpoints every N records, every T seconds, and on demand."""

    def __init__(
        self, store: AuditStore, signer: Signer, origin: str, *,
        every_records: int = 1000, every_s: float = 60.0,
    ) -> None:
        """Register the signer's public key in the store so its checkpoints stay verifiable."""
        self.store, self.signer, self.origin = store, signer, origin
        self.every_records, self.every_s = every_records, every_s
        self._lock = threading.Lock()
        store.add_signing_key(signer.key_id.hex(), signer.verifier.vkey)
        existing = store.checkpoints()
        self.last_size = existing[-1].size if existing else 0
        self._signed_at = time.monotonic()

    def checkpoint(self, *, force: bool = False, cosigners: Iterable[Signer] = ()
                   ) -> StoredCheckpoint | None:
        """Sign the current tree head; None if nothing was appended since the last one."""
        with self._lock:
            size, root = self.store.tree_head()
            if size == self.last_size and not force:
                return None
            note = sign_checkpoint(self.origin, size, root, [self.signer, *cosigners])
            stored = self.store.add_checkpoint(size, note)
            self.last_size, self._signed_at = size, time.monotonic()
            return stored

    def after_append(self) -> None:
        """Cheap check on the append path: sign once ``every_records`` new records exist,
        or ``every_s`` after the last checkpoint (for a process with no timer task: the
        in-process guard)."""
        new = self.store.head[0] - self.last_size
        if new >= self.every_records or (
                new > 0 and time.monotonic() - self._signed_at >= self.every_s):
            self.checkpoint()

    async def run(self) -> None:
        """Checkpoint every ``every_s`` seconds while there is something new (a task)."""
        while True:
            await asyncio.sleep(self.every_s)
            try:
                self.checkpoint()
            except Exception:  # keep the timer alive; the next tick retries
                log.exception("audit checkpoint failed")
