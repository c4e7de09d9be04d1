"""Audit append throughput and the latency it adds to a request, in one run.

Each request appends two records (its request and its response) in one commit, as the
gateway does, with realistic bodies (~1.5 KB: masked content, findings, usage). Measured
with `synchronous=normal` (WAL: a commit is in the WAL file before append returns, so
every record a client saw an answer for survives kill -9; see tests/test_audit_crash.py)
and, side by side, `synchronous=full` (also survives power loss).
  sustained   records/s over --seconds of back-to-back request commits
  per request p50/p99 of one request's commit (the latency audit adds to a request)
Targets (issue 5): at least 5,000 records/s sustained; under 200 us p50 per request.

    python bench/audit_append.py [--seconds 5] [--json results/audit_append.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from measure import percentile, write_json

from lictor.audit import AuditStore

CONTENT = ("Hi, order 4711 has not arrived. Please email the tracking link to <EMAIL_1> and "
           "call me on <PHONE_NUMBER_1> if needed. ") * 6


def _records(i: int) -> tuple[dict[str, Any], dict[str, Any]]:
    principal = {"agent": "bench-agent", "team": "bench", "tenant": "acme"}
    request = {
        "kind": "model_request", "request_id": f"req_{i:012x}", "principal": principal,
        "action": {"kind": "model_request", "protocol": "openai.chat", "model": "gpt-4o",
                   "backend": "passthrough", "stream": False, "offered_tools": ["lookup_order"],
                   "removed_offered_tools": []},
        "verdict": "mask", "policy_hash": "ab" * 32,
        "findings": [{"rule": "pii.mask-outbound", "verdict": "mask", "owasp": ["LLM02"],
                      "severity": "medium", "message": "EMAIL_ADDRESS in user text",
                      "evidence": "EMAIL_ADDRESS"}],
        "content": [{"trust": "system", "path": ["messages", 0, "content"],
                     "text": "You are a careful support agent."},
                    {"trust": "user", "path": ["messages", 1, "content"], "text": CONTENT}],
    }
    response = {
        "kind": "model_response", "request_id": f"req_{i:012x}", "principal": principal,
        "verdict": "allow", "policy_hash": "ab" * 32, "findings": [],
        "choices": [{"index": 0, "content": "Your order left the warehouse yesterday.",
                     "tool_calls": [], "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 412, "completion_tokens": 38, "total_tokens": 450},
    }
    return request, response


def measure(path: Path, synchronous: str, seconds: float, samples: int) -> dict[str, Any]:
    store = AuditStore.open(path, synchronous=synchronous)  # type: ignore[arg-type]
    try:
        latencies = []
        clock = time.perf_counter_ns
        for i in range(samples):
            pair = _records(i)
            start = clock()
            store.append_many(pair)
            latencies.append((clock() - start) / 1000)
        n, start_s = samples, time.perf_counter()
        while time.perf_counter() - start_s < seconds:
            store.append_many(_records(n))
            n += 1
        elapsed = time.perf_counter() - start_s
        sustained = (n - samples) * 2 / elapsed
    finally:
        store.close()
    return {"records_per_s": round(sustained),
            "request_p50_us": round(percentile(latencies, .5), 1),
            "request_p99_us": round(percentile(latencies, .99), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("normal", "full"):
            results[mode] = measure(Path(tmp) / f"{mode}.sqlite3", mode, args.seconds,
                                    args.samples)
    normal = results["normal"]
    results["targets"] = {"records_per_s": 5000, "request_p50_us": 200}
    results["meets_targets"] = (normal["records_per_s"] >= 5000
                                and normal["request_p50_us"] < 200)
    print(f"{'synchronous':<12}{'records/s':>12}{'p50 us/req':>12}{'p99 us/req':>12}")
    for mode in ("normal", "full"):
        r = results[mode]
        print(f"{mode:<12}{r['records_per_s']:>12}{r['request_p50_us']:>12}"
              f"{r['request_p99_us']:>12}")
    print(f"targets (normal: >= 5,000 records/s, < 200 us p50 per request): "
          f"{'met' if results['meets_targets'] else 'MISSED'}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
