"""Per-request check time of the engine, in one run: does it grow with history or with news?

Three request shapes, all with the full default packs (PII, OWASP agentic rules, Cedar):
  2 KB      a system prompt and a new user message (with personal data) every time;
  32 KB     a conversation whose every message is new every time (nothing cached);
  128 KB+1  a 128 KB conversation seen before, plus one new user message every time.
Agents resend their whole history on every call; lictor caches per-segment results, so
the third should cost about what its one new message costs, not what 128 KB costs.

    python bench/check_time.py [--requests 500] [--json bench/results/check_time.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from measure import percentile, write_json

from lictor.adapters import openai_chat
from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.loader import default_paths, load_policy

AGENT = Principal("bench-agent", "bench")
SYSTEM = ("You are a careful support agent for an online shop. Use tools for order data; "
          "never reveal internal notes or other customers' data. ") * 8
TURN_USER = ("Hi, order {i} has not arrived. Please email the tracking link to "
             "customer{i}@example.com and call me on +44 20 7946 0{i:03d} if needed. ")
TURN_ASSISTANT = ("I checked order {i}: it left the warehouse yesterday and should arrive "
                  "within two working days. I have emailed the tracking link. ")


def conversation(chars: int, salt: str) -> list[dict[str, Any]]:
    """Alternating user/assistant turns (with personal data) up to `chars` characters."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}]
    size, i = len(SYSTEM), 0
    while size < chars:
        user = f"[{salt}] " + TURN_USER.format(i=i) * 3
        assistant = TURN_ASSISTANT.format(i=i) * 3
        messages += [{"role": "user", "content": user},
                     {"role": "assistant", "content": assistant}]
        size += len(user) + len(assistant)
        i += 1
    return messages


def small(i: int) -> list[dict[str, Any]]:
    """About 2 KB: the system prompt, one earlier turn and a new user message, all new."""
    new = {"role": "user", "content": TURN_USER.format(i=i) * 4 + f" #{i}"}
    return [*conversation(2 * 1024, f"r{i}")[:2], new]


def request(messages: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "bench", "messages": messages}


def timed(engine: Engine, bodies: list[dict[str, Any]]) -> list[float]:
    """Microseconds per request: parse into an Action and evaluate (what the gateway does)."""
    out = []
    for body in bodies:
        t0 = time.perf_counter()
        engine.evaluate_request(AGENT, openai_chat.parse_request(body))
        out.append((time.perf_counter() - t0) * 1e6)
    return out



def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave start-up objects to the garbage collector")
    args = parser.parse_args()
    n = args.requests
    engine = Engine(load_policy(default_paths()), [AGENT])

    history = conversation(128 * 1024, "history")
    engine.evaluate_request(AGENT, openai_chat.parse_request(request(history)))  # seen once
    shapes = {
        "2KB": [request(small(i)) for i in range(n)],
        "32KB": [request(conversation(32 * 1024, f"r{i}")) for i in range(n)],
        "128KB+1": [request([*history, {"role": "user",
                                        "content": TURN_USER.format(i=i) + f" (#{i})"}])
                    for i in range(n)],
    }
    sizes = {k: len(json.dumps(v[0])) for k, v in shapes.items()}
    timed(engine, [request(conversation(2048, "warm"))] * 20)  # import-time effects
    if not args.no_freeze:
        gc.freeze()  # as `lictor serve` does after start-up
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "requests_each": n}
    rounds: dict[str, list[float]] = {k: [] for k in shapes}
    for start in range(0, n, 50):  # interleave the shapes so drift hits all alike
        for name, bodies in shapes.items():
            rounds[name] += timed(engine, bodies[start:start + 50])
    print(f"engine check time per request, {n} requests each, default packs with PII")
    print(f"{'shape':10} {'bytes':>8} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}")
    for name, values in rounds.items():
        row = {"bytes": sizes[name], "p50_us": round(percentile(values, 0.5), 1),
               "p99_us": round(percentile(values, 0.99), 1),
               "mean_us": round(statistics.fmean(values), 1)}
        results[name] = row
        print(f"{name:10} {row['bytes']:8d} {row['p50_us']:9.1f} {row['p99_us']:9.1f} "
              f"{row['mean_us']:9.1f}")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
