"""Per-request check time of the engine, in one run: does it grow with history or with news?

Three request shapes, all with the full default packs (PII, OWASP agentic rules, Cedar):
  2 KB      a system prompt and a new user message (with personal data) every time;
  32 KB     a conversation whose every message is new every time (nothing cached);
  128 KB+1  a 128 KB conversation seen before, plus one new user message every time.
Agents resend their whole history on every call; lictor caches per-segment results, so
the third should cost about what its one new message costs, not what 128 KB costs.

    python bench/check_time.py [--requests 500] [--json bench/results/check_time.json]
                               [--baseline REV] [--gc]

`--baseline REV` also times lictor as of git revision REV, in a worker process that takes
alternate rounds with this one, so drift hits both alike: a before/after ratio in one run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from compare_systems import checkout, source_env
from measure import percentile, run_header, write_json

from lictor.adapters import openai_chat
from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.loader import default_paths, load_policy

AGENT = Principal("bench-agent", "bench")
ROUND = 50  # requests of each shape in a row before the next shape (and revision)
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



def build(n: int) -> tuple[Engine, dict[str, list[dict[str, Any]]]]:
    """The engine, with the 128 KB history judged once, and the request shapes."""
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
    timed(engine, [request(conversation(2048, "warm"))] * 20)  # import-time effects
    return engine, shapes


def worker(n: int, freeze: bool) -> int:
    """`--worker`: the same shapes, timed one round at a time as the parent asks on stdin
    (a round's start index per line), answered as a JSON line: for `--baseline`."""
    engine, shapes = build(n)
    if freeze:
        gc.freeze()
    print("ready", flush=True)
    for line in sys.stdin:
        start = int(line)
        rounds = {name: timed(engine, bodies[start:start + ROUND])
                  for name, bodies in shapes.items()}
        print(json.dumps(rounds), flush=True)
    return 0


def start_baseline(rev: str, n: int, freeze: bool, tmp: Path) -> subprocess.Popen[str]:
    """This script as a worker process running lictor as of git revision `rev`."""
    source = checkout(rev, tmp)
    env = {**os.environ, **source_env(source, tmp / "view")}
    args = [sys.executable, __file__, "--worker", "--requests", str(n)]
    proc = subprocess.Popen([*args, *([] if freeze else ["--no-freeze"])], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"the baseline worker ({rev}) did not start")
    return proc


class GcPauses:
    """Collections of each generation while it is installed: count, total and longest."""

    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = {}
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            pauses = self.by_generation.setdefault(info["generation"], [])
            pauses.append(time.perf_counter() - self._start)

    def report(self) -> dict[str, dict[str, float]]:
        return {f"gen{g}": {"collections": len(p), "total_ms": round(sum(p) * 1e3, 1),
                            "longest_ms": round(max(p) * 1e3, 1)}
                for g, p in sorted(self.by_generation.items())}


def row(values: list[float], size: int) -> dict[str, float]:
    return {"bytes": size, "p50_us": round(percentile(values, 0.5), 1),
            "p99_us": round(percentile(values, 0.99), 1),
            "mean_us": round(statistics.fmean(values), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-freeze", action="store_true",
                        help="leave start-up objects to the garbage collector")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time lictor as of git revision REV, in alternate rounds")
    parser.add_argument("--gc", action="store_true",
                        help="also report this process's garbage collections while timing")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    n, freeze = args.requests, not args.no_freeze
    if args.worker:
        return worker(n, freeze)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = start_baseline(args.baseline, n, freeze, Path(tmp)) if args.baseline else None
        engine, shapes = build(n)
        if freeze:
            gc.freeze()  # as `lictor serve` does after start-up
        pauses = GcPauses()
        if args.gc:
            gc.callbacks.append(pauses)
        rounds: dict[str, list[float]] = {k: [] for k in shapes}
        before: dict[str, list[float]] = {k: [] for k in shapes}
        for start in range(0, n, ROUND):  # interleave shapes (and revisions): drift hits all
            if baseline is not None:
                assert baseline.stdin is not None and baseline.stdout is not None
                baseline.stdin.write(f"{start}\n")
                baseline.stdin.flush()
                for name, values in json.loads(baseline.stdout.readline()).items():
                    before[name] += values
            for name, bodies in shapes.items():
                rounds[name] += timed(engine, bodies[start:start + ROUND])
        if baseline is not None:
            assert baseline.stdin is not None
            baseline.stdin.close()
            baseline.wait()
    sizes = {k: len(json.dumps(v[0])) for k, v in shapes.items()}
    results: dict[str, Any] = {**run_header(), "requests_each": n}
    print(f"engine check time per request, {n} requests each, default packs with PII")
    print(f"{'shape':10} {'bytes':>8} {'p50 us':>9} {'p99 us':>9} {'mean us':>9}"
          + (f"   {args.baseline}: {'p50 us':>9} {'p99 us':>9}  p50 ratio" if baseline else ""))
    for name, values in rounds.items():
        results[name] = row(values, sizes[name])
        line = (f"{name:10} {sizes[name]:8d} {results[name]['p50_us']:9.1f} "
                f"{results[name]['p99_us']:9.1f} {results[name]['mean_us']:9.1f}")
        if baseline is not None:
            old = results.setdefault("baseline", {"rev": args.baseline})
            old[name] = row(before[name], sizes[name])
            ratio = old[name]["p50_us"] / results[name]["p50_us"]
            line += (f"   {' ' * len(args.baseline)}  {old[name]['p50_us']:9.1f} "
                     f"{old[name]['p99_us']:9.1f}  {ratio:8.2f}x")
        print(line)
    if args.gc:
        gc.callbacks.remove(pauses)
        results["gc"] = pauses.report()
        for gen, figures in results["gc"].items():
            print(f"{gen}: {figures['collections']} collections, {figures['total_ms']} ms in "
                  f"all, the longest {figures['longest_ms']} ms")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
