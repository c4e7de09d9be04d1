"""`lictor audit rotate-key`, `export` and `verify-bundle`: the audit commands that need
the config (data dir, signing key, origin) or write files."""

from __future__ import annotations

from lictor.audit import AuditStore
from lictor.audit.checkpoints import Checkpointer
from lictor.audit.signing import create_key_file, load_signer
from lictor.proxy.config import Config
from lictor.proxy.server import audit_path, make_checkpointer, signing_key_path


def rotate_key(config: Config) -> int:
    """Replace the signing key; the old key co-signs a last checkpoint with the new one.

    The old public key stays in the store, so every checkpoint it signed stays
    verifiable, and the co-signed checkpoint ties the new key to the old one.
    """
    path = signing_key_path(config)
    origin = config.audit.origin
    with AuditStore.open(audit_path(config.data_dir)) as store:
        old = load_signer(path, origin) if path.exists() else None
        if old is not None:
            store.add_signing_key(old.key_id.hex(), old.verifier.vkey)
        create_key_file(path, replace=path.exists())
        new = load_signer(path, origin)
        checkpointer: Checkpointer = make_checkpointer(config, store)
        stored = checkpointer.checkpoint(force=True, cosigners=[old] if old else [])
    if old is not None:
        print(f"retired key {old.verifier.vkey} (its public key is kept in the store)")
    print(f"new signing key {new.verifier.vkey} at {path}")
    if stored is not None:
        signers = "new and old keys" if old is not None else "new key"
        print(f"checkpoint {stored.id} (size {stored.size}) signed by the {signers}")
    print("restart lictor so it signs with the new key")
    return 0
