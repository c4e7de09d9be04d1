"""Crypto-shredding: original personal data kept for disputes, erasable per data subject.

When the config keeps originals (the values behind placeholders), they are sealed with
AES-256-GCM under a key of their own data subject, held here, apart from the audit log;
the log keeps (and hashes) only the ciphertext and the key's id. Erasing a subject deletes
its key and scrubs it from the file (secure_delete, WAL truncated, VACUUM): the records
and the chain stay intact, and their sealed fields can never be read again.
"""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
import threading
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_SCHEMA = ("CREATE TABLE IF NOT EXISTS subject_keys ("
           " subject TEXT PRIMARY KEY, key_id TEXT NOT NULL UNIQUE, key BLOB NOT NULL)")


class SubjectKeys:
    """Per-subject keys in their own SQLite file (mode 0600)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA secure_delete=ON")  # deleted keys are overwritten
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self.path = path

    def close(self) -> None:
        self._db.close()

    def _key(self, subject: str) -> tuple[str, bytes]:
        with self._lock:
            row = self._db.execute("SELECT key_id, key FROM subject_keys WHERE subject = ?",
                                   (subject,)).fetchone()
            if row is not None:
                return str(row[0]), bytes(row[1])
            key_id, key = "sk_" + secrets.token_hex(8), AESGCM.generate_key(256)
            self._db.execute("INSERT INTO subject_keys VALUES (?, ?, ?)", (subject, key_id, key))
            return key_id, key

    def seal(self, subject: str, plaintext: bytes) -> dict[str, str]:
        """The sealed form audit keeps: key id, nonce and ciphertext (never the subject)."""
        key_id, key = self._key(subject)
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(key).encrypt(nonce, plaintext, key_id.encode())
        return {"key_id": key_id, "nonce": base64.b64encode(nonce).decode(),
                "ciphertext": base64.b64encode(sealed).decode()}

    def open(self, sealed: dict[str, Any]) -> bytes | None:
        """The plaintext, or None once the subject's key was erased."""
        row = self._db.execute("SELECT key FROM subject_keys WHERE key_id = ?",
                               (sealed["key_id"],)).fetchone()
        if row is None:
            return None
        return AESGCM(bytes(row[0])).decrypt(base64.b64decode(sealed["nonce"]),
                                             base64.b64decode(sealed["ciphertext"]),
                                             str(sealed["key_id"]).encode())

    def erase(self, subject: str) -> bool:
        """Destroy the subject's key for good; False if there was none."""
        with self._lock:
            deleted = self._db.execute("DELETE FROM subject_keys WHERE subject = ?",
                                       (subject,)).rowcount
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.execute("VACUUM")
        return bool(deleted)
