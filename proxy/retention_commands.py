"""`lictor audit prune | erase | reveal`: how long data is kept, and for whom.

`prune` removes records older than a time under a signed prune note (the log still
verifies; the gap is explicit). `reveal` opens the sealed originals of one request (for a
dispute); `erase` destroys a data subject's key, so every sealed field about them reads
as erased from then on, while the records and the hash chain stay as they were.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from lictor.proxy.config import Config


def add_parsers(audit_sub: Any) -> None:
    erase = audit_sub.add_parser(
        "erase", help="destroy a data subject's key: their kept originals become unreadable")
    erase.add_argument("--subject", required=True,
                       help="the subject id (the x-lictor-subject header the agent sent)")
    reveal = audit_sub.add_parser("reveal", help="the kept originals of one request")
    reveal.add_argument("--request", required=True, help="the request id (req_...)")
    prune = audit_sub.add_parser(
        "prune", help="remove records older than a time, under a signed prune note")
    prune.add_argument("--before", required=True,
                       help="RFC 3339 time, e.g. 2026-01-01T00:00:00Z: older records go")
    for parser in (erase, reveal, prune):
        parser.add_argument("--config", type=Path, help="config file, for its data_dir")
        parser.add_argument("--data-dir", type=Path, help="the data dir (default ./var)")


def run(args: argparse.Namespace, config: Config) -> int:
    from lictor.audit.subject_keys import SubjectKeys
    from lictor.proxy.audit_commands import audit_path, subject_keys_path

    if args.audit_command == "prune":
        return _prune(config, args.before)
    data_dir = config.data_dir
    keys = SubjectKeys(subject_keys_path(data_dir))
    try:
        if args.audit_command == "erase":
            if keys.erase(args.subject):
                print(f"erased: the key of subject {args.subject!r} is destroyed; its kept "
                      "originals can no longer be read (records and chain unchanged)")
                return 0
            print(f"no key for subject {args.subject!r} (nothing kept, or already erased)")
            return 1
        return _reveal(keys, audit_path(data_dir), args.request)
    finally:
        keys.close()


def _reveal(keys: Any, store: Path, request_id: str) -> int:
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM records")]
    sealed = [b["originals"] for b in bodies
              if b.get("request_id") == request_id and "originals" in b]
    if not sealed:
        print(f"no kept originals for request {request_id!r}")
        return 1
    for item in sealed:
        opened = keys.open(item)
        print("erased" if opened is None else json.dumps(json.loads(opened), indent=2))
    return 0


def _prune(config: Config, before: str) -> int:
    from lictor.audit import AuditStore
    from lictor.audit.bundle_export import ExportError, normalize_time
    from lictor.audit.prune import prune_before
    from lictor.proxy.audit_commands import audit_path, make_checkpointer, open_signer

    try:
        cutoff = normalize_time(before)
    except ExportError as exc:
        print(f"lictor audit prune: {exc}", file=sys.stderr)
        return 2
    path = audit_path(config.data_dir)
    if not path.is_file():
        print(f"lictor audit prune: no audit store at {path}", file=sys.stderr)
        return 1
    with AuditStore.open(path) as store:
        make_checkpointer(config, store).checkpoint()  # the tree is signed before the cut
        done = prune_before(store, open_signer(config), config.audit.origin, cutoff)
    if not done["pruned"]:
        print(f"nothing to prune before {cutoff} (records up to {done['through']} were "
              "pruned earlier; the newest record always stays)")
        return 0
    print(f"pruned {done['pruned']} records (1 to {done['through']}, older than {cutoff}) "
          "under a signed prune note; `lictor audit verify` shows the gap")
    return 0
