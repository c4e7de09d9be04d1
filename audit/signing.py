"""Ed25519 keys that sign audit checkpoints, named and identified as C2SP signed-note keys.

A key's id is the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key), so a
signature line names which key made it, and a public key that was swapped no longer
matches its id. Public keys travel as verifier keys: ``<name>+<hex id>+<base64(0x01||key)>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

__all__ = [
    "ED25519",
    "KeyFileError",
    "Signer",
    "VerifierKey",
    "b64decode_strict",
    "create_key_file",
    "key_id",
    "load_signer",
    "parse_vkey",
]

ED25519 = 0x01
"""C2SP signed-note signature type of Ed25519."""


class KeyFileError(Exception):
    """A signing key file is missing, unreadable, malformed or too widely readable."""


def b64decode_strict(text: str) -> bytes:
    """Base64 that decodes only from its one canonical spelling (no stray padding bits),
    so a changed character can never decode to the same bytes."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise binascii.Error("non-canonical base64")
    return raw


def key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key id: SHA-256(name || 0x0A || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key).digest()[:4]


def _check_name(name: str) -> str:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise ValueError(f"key name {name!r} must be non-empty, without spaces or '+'")
    return name


@dataclass(slots=True, frozen=True)
class VerifierKey:
    """A public key with its name and C2SP key id."""

    name: str
    key_id: bytes
    public_key: bytes

    @property
    def vkey(self) -> str:
        """The C2SP verifier key string."""
        raw = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True if ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


def parse_vkey(text: str) -> VerifierKey:
    """Parse a verifier key; ValueError if malformed or if its id does not match its key."""
    parts = text.strip().split("+", 2)  # base64 may contain "+" too
    if len(parts) != 3:
        raise ValueError("a verifier key is <name>+<hex key id>+<base64 key>")
    name, hex_id, b64 = parts
    _check_name(name)
    try:
        raw = b64decode_strict(b64)
        stated = bytes.fromhex(hex_id)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"verifier key for {name!r} is not valid hex/base64") from exc
    if len(raw) != 33 or raw[0] != ED25519 or len(stated) != 4:
        raise ValueError(f"verifier key for {name!r} is not an Ed25519 key")
    public = raw[1:]
    if key_id(name, public) != stated:
        raise ValueError(f"verifier key {name}+{hex_id}: the key id does not match the key "
                         "(public key replaced)")
    return VerifierKey(name, stated, public)


class Signer:
    """A private Ed25519 key and the name it signs under."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Wrap an already loaded key; see ``load_signer``."""
        self.name = _check_name(name)
        self._key = private_key
        public = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = VerifierKey(name, key_id(name, public), public)

    @property
    def key_id(self) -> bytes:
        """The 4-byte C2SP key id."""
        return self.verifier.key_id

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature of ``message`` (64 bytes)."""
        return self._key.sign(message)


def create_key_file(path: Path, *, replace: bool = False) -> None:
    """Write a new Ed25519 private key (PKCS#8 PEM) with mode 0600.

    ``replace`` swaps it in atomically over an existing key (rotation); otherwise an
    existing file is an error, so a key is never overwritten by accident.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    target = path.with_name(path.name + ".new") if replace else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{target} already exists; remove it or choose another path") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    os.chmod(target, 0o600)
    if replace:
        os.replace(target, path)


def load_signer(path: Path, name: str) -> Signer:
    """Load the private key at ``path``; refuse one that group or others may read."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise KeyFileError(
            f"audit signing key {path} does not exist; create one with "
            "`lictor audit rotate-key`, or unset audit.signing_key to use the data dir's"
        ) from None
    if mode & 0o077:
        raise KeyFileError(
            f"audit signing key {path} is readable or writable by group/others "
            f"(mode {mode:04o}); restrict it with `chmod 600 {path}`")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"audit signing key {path} cannot be read: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"audit signing key {path} is not an Ed25519 key")
    return Signer(name, key)
