"""`lictor audit erase | reveal`: the data-subject side of kept originals.

`reveal` opens the sealed originals of one request (for a dispute); `erase` destroys a
data subject's key, so every sealed field about them reads as erased from then on, while
the records and the hash chain stay as they were.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any


def add_parsers(audit_sub: Any) -> None:
    erase = audit_sub.add_parser(
        "erase", help="destroy a data subject's key: their kept originals become unreadable")
    erase.add_argument("--subject", required=True,
                       help="the subject id (the x-lictor-subject header the agent sent)")
    reveal = audit_sub.add_parser("reveal", help="the kept originals of one request")
    reveal.add_argument("--request", required=True, help="the request id (req_...)")
    for parser in (erase, reveal):
        parser.add_argument("--config", type=Path, help="config file, for its data_dir")
        parser.add_argument("--data-dir", type=Path, help="the data dir (default ./var)")


def run(args: argparse.Namespace, data_dir: Path) -> int:
    from lictor.audit.subject_keys import SubjectKeys
    from lictor.proxy.audit_commands import audit_path, subject_keys_path

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
