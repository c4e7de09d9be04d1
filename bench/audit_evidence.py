"""Cost of the regulator-grade audit: appends with the Merkle leaf, checkpoints, verify, export.

In one run: append_many (2 records a commit, as the gateway writes a request) through the
real store, side by side in alternating rounds with a chain-only baseline (the append path
before the Merkle tree, reproduced on the same schema: canonicalize, hash, insert, move the
head); then one store of `--records` records: start-up, a signed checkpoint, a full
`verify`, an export of one agent's records and its offline check.

    python bench/audit_evidence.py [--records 100000] [--json bench/results/audit.json]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from measure import write_json

from lictor.audit import AuditStore, canonicalize
from lictor.audit.bundle_export import Selection, export_bundle
from lictor.audit.bundle_verify import verify_bundle
from lictor.audit.checkpoints import Checkpointer
from lictor.audit.full_verify import verify_store
from lictor.audit.signing import create_key_file, load_signer
from lictor.audit.store import RESERVED_KEYS, _utc_now

ENTRY: dict[str, Any] = {
    "kind": "model_request", "principal": {"agent": "a", "team": "t", "tenant": "x"},
    "verdict": "allow", "findings": [], "policy_hash": "ab" * 32,
    "content": [{"trust": "user", "text": "Mail <EMAIL_1> about order 4711, please. " * 12}],
}


def chain_only_append(store: AuditStore, state: list[Any]) -> None:
    """AuditStore.append_many as it was before the Merkle tree (same checks, clock, lock,
    canonical JSON and SQL), for two records: no leaf row, no compact range."""
    entries = (ENTRY, ENTRY)
    for entry in entries:
        if RESERVED_KEYS.intersection(entry):
            raise ValueError("reserved key")
    with store._lock:
        seq, prev = state
        now = _utc_now()
        rows = []
        for entry in entries:
            seq += 1
            record = dict(entry)
            record["seq"], record["time"], record["prev_hash"] = seq, now, prev
            body = canonicalize(record)
            prev = hashlib.sha256(body).hexdigest()
            rows.append((seq, prev, body.decode("utf-8")))
        conn = store._conn  # the same connection and pragmas as the real store
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO records (seq, hash, body) VALUES (?, ?, ?)", rows)
        conn.execute("INSERT INTO chain_head (id, seq, hash) VALUES (1, ?, ?) ON CONFLICT (id) "
                     "DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, prev))
        conn.execute("COMMIT")
        state[:] = [seq, prev]


def rate(commits: int, step: Callable[[AuditStore, list[Any]], None]) -> tuple[float, float]:
    """(records/s wall, records/s CPU) for `commits` two-record commits into a fresh store."""
    with tempfile.TemporaryDirectory() as tmp, AuditStore.open(Path(tmp) / "a.db") as store:
        state: list[Any] = [0, "0" * 64]
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(commits):
            step(store, state)
        return (2 * commits / (time.perf_counter() - wall),
                2 * commits / (time.process_time() - cpu))


def merkle_append(store: AuditStore, state: list[Any]) -> None:
    store.append_many([ENTRY, ENTRY])


def appends(rounds: int, commits: int) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float]]] = {"chain_only": [], "with_merkle": []}
    for r in range(rounds):
        order = [("chain_only", chain_only_append), ("with_merkle", merkle_append)]
        for name, step in order if r % 2 else order[::-1]:
            runs[name].append(rate(commits, step))
    out: dict[str, Any] = {
        name: {"records_per_s": statistics.median(w for w, _ in v),
               "records_per_cpu_s": statistics.median(c for _, c in v)}
        for name, v in runs.items()}
    base, new = out["chain_only"], out["with_merkle"]
    out["extra_cpu_us_per_record"] = (1e6 / new["records_per_cpu_s"]
                                      - 1e6 / base["records_per_cpu_s"])
    return out


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def evidence(records: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        create_key_file(root / "k.pem")
        signer = load_signer(root / "k.pem", "bench.local/audit")
        with AuditStore.open(root / "a.db") as store:
            cps = Checkpointer(store, signer, "bench.local/audit", every_records=1000)
            for i in range(0, records, 100):
                store.append_many([{**ENTRY, "principal": {"agent": f"agent-{j % 7}"}}
                                   for j in range(i, i + 100)])
                cps.after_append()
            sign_s, _ = timed(lambda: [signer.sign(b"x" * 80) for _ in range(1000)])
            cp_s, _ = timed(lambda: [cps.checkpoint(force=True) for _ in range(100)])
        open_s, _ = timed(lambda: AuditStore.open(root / "a.db").close())
        verify_s, report = timed(lambda: verify_store(root / "a.db"))
        assert report.ok, [str(c) for c in report.failures]
        with AuditStore.open(root / "a.db") as store:
            cps = Checkpointer(store, signer, "bench.local/audit")
            export_s, summary = timed(lambda: export_bundle(
                store, cps, Selection(agent="agent-3"), root / "bundle"))
        check_s, bundle = timed(lambda: verify_bundle(root / "bundle"))
        assert bundle.ok
        return {"records": records, "ed25519_sign_us": sign_s * 1e3,
                "checkpoint_ms": cp_s * 10, "open_s": open_s, "verify_s": verify_s,
                "export_records": summary.records, "export_s": export_s,
                "verify_bundle_s": check_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {"appends": appends(args.rounds, args.commits), "evidence": evidence(args.records)}
    a, e = results["appends"], results["evidence"]
    for name in ("chain_only", "with_merkle"):
        print(f"append_many x2 {name:>11}: {a[name]['records_per_s']:8.0f} records/s wall, "
              f"{a[name]['records_per_cpu_s']:8.0f} records/s CPU (median of {args.rounds})")
    print(f"Merkle leaf + compact range: +{a['extra_cpu_us_per_record']:.1f} us CPU per record")
    print(f"Ed25519 signature: {e['ed25519_sign_us']:.0f} us; checkpoint (root, sign, store): "
          f"{e['checkpoint_ms']:.2f} ms")
    print(f"{e['records']} records: open {e['open_s']:.3f} s, verify {e['verify_s']:.2f} s, "
          f"export of {e['export_records']} records {e['export_s']:.2f} s, verify-bundle "
          f"{e['verify_bundle_s']:.2f} s")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
