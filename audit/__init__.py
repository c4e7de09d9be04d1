"""Tamper-evident audit log: canonical JSON, a hash-chained SQLite store, an RFC 9162 Merkle
tree with signed checkpoints, verifiers, and evidence bundles (submodules)."""

from lictor.audit.canonical_json import canonicalize
from lictor.audit.store import (
    GENESIS_HASH,
    AppendedRecord,
    AuditStore,
    AuditWriteError,
)
from lictor.audit.verify import VerifyReport, verify_chain

__all__ = [
    "GENESIS_HASH",
    "AppendedRecord",
    "AuditStore",
    "AuditWriteError",
    "VerifyReport",
    "canonicalize",
    "verify_chain",
]
