"""`lictor audit verify`, `rotate-key`, `export` and `verify-bundle`, and where the audit store
and its signing key live; kept free of the gateway's imports so the audit commands start fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lictor.audit import AuditStore
from lictor.audit.bundle_export import ExportError, Selection, export_bundle, normalize_time
from lictor.audit.bundle_verify import verify_bundle
from lictor.audit.checkpoints import Checkpointer
from lictor.audit.signing import Signer, create_key_file, load_signer
from lictor.proxy.config import Config


def audit_path(data_dir: Path) -> Path:
    return data_dir / "audit.sqlite3"


def subject_keys_path(data_dir: Path) -> Path:
    """The data subjects' keys for kept originals (apart from the log: erasable)."""
    return data_dir / "subject_keys.sqlite3"


def signing_key_path(config: Config) -> Path:
    return config.audit.signing_key or config.data_dir / "keys" / "audit-signing.pem"


def open_signer(config: Config) -> Signer:
    """The checkpoint signing key: the configured one, or the data dir's (made if missing)."""
    path = signing_key_path(config)
    if config.audit.signing_key is None and not path.exists():
        create_key_file(path)
    return load_signer(path, config.audit.origin)


def make_checkpointer(config: Config, store: AuditStore) -> Checkpointer:
    return Checkpointer(store, open_signer(config), config.audit.origin,
                        every_records=config.audit.checkpoint_every_records,
                        every_s=config.audit.checkpoint_every_s)


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


def export(config: Config, args: argparse.Namespace) -> int:
    """`lictor audit export`: write an evidence bundle and say what it proves."""
    if not audit_path(config.data_dir).is_file():
        print(f"lictor audit export: no audit store at {audit_path(config.data_dir)}; "
              "pass --data-dir or --config", file=sys.stderr)
        return 1
    try:
        selection = Selection(
            since=normalize_time(args.since) if args.since else None,
            until=normalize_time(args.until) if args.until else None,
            agent=args.agent, verdict=args.verdict)
        with AuditStore.open(audit_path(config.data_dir)) as store:
            summary = export_bundle(store, make_checkpointer(config, store), selection,
                                    args.out, views=args.views)
    except ExportError as exc:
        print(f"lictor audit export: {exc}", file=sys.stderr)
        return 1
    print(f"exported {summary.records} records (records {summary.first_seq} to "
          f"{summary.last_seq}) to {args.out}")
    first, *rest = summary.checkpoints
    print(f"  each with an inclusion proof against checkpoint {first}"
          + (f", and a consistency proof to checkpoint {rest[0]}" if rest else ""))
    if summary.fresh_checkpoint:
        print(f"  checkpoint {first} was made now: no earlier one covered record "
              f"{summary.last_seq}")
    print(f"check it with: lictor audit verify-bundle {args.out}")
    return 0


def verify_bundle_command(folder: Path, keys: list[str]) -> int:
    """`lictor audit verify-bundle`: one line per check; exit 1 on any problem."""
    return _report("bundle verify", folder, lambda: verify_bundle(folder, keys))


def verify_command(config: Config, keys: list[str]) -> int:
    """`lictor audit verify`: chain, tree, keys, checkpoints, prunes; one line per check."""
    from lictor.audit.full_verify import verify_store

    path = audit_path(config.data_dir)
    return _report("audit verify", path, lambda: verify_store(path, keys))


def _report(what: str, where: Path, run: Callable[[], Any]) -> int:
    """Print every check, then OK, or the failures again on stderr (exit 1)."""
    try:
        report = run()
    except ValueError as exc:  # a malformed --key
        print(f"lictor: --key: {exc}", file=sys.stderr)
        return 2
    for check in report.checks:
        print(check)
    if report.ok:
        print(f"{what}: OK ({where})")
        return 0
    print(f"{what} FAILED ({where}), {len(report.failures)} problem(s):", file=sys.stderr)
    for check in report.failures:
        print(f"  {check}", file=sys.stderr)
    return 1
