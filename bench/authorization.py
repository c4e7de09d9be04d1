"""Time per authorized action: compiled policies, Cedar's compiled handles and lictor's
decision cache, side by side with the same check re-parsing the policy text each time.

The policies are the bundled default and example packs (catalog, approvals, forbids);
each action is one proposed tool call through `Engine.authorize_tool`, which builds the
context (amount, arguments, risk) and asks Cedar or the cache. Shapes, in one run:
  repeat        the same refund again and again
  new_amounts   every refund with a new amount; policies compare amounts only with
                constants, so each new amount reuses the decision of its gap (cache)
  offer         the tool offered to the model (no arguments)
  cold          every call to a tool never seen before: nothing cached, decided by the
                policies compiled to Python (enforcement/cedar_compiled.py) whose scope
                can match it, on the context they read
  then three cold shapes taking turns call by call, so their ratios hold under one load:
  cold_turns    `cold` again
  cold_cedar    the same slices through cedarpy's engine (the path before compiling)
  cold_whole    cedarpy given the whole policy set and the whole context (the path
                before policy slices)
  reparse       the cold call with the policy text parsed on every call
Target (issue 4): under 100 us p99 per action.

    python bench/authorization.py [--actions 20000] [--json bench/results/authorization.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
from pathlib import Path
from typing import Any

import cedarpy
from measure import percentile, write_json

from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.cedar_slices import ActionSlice, PolicySlices, Slice
from lictor.rules.loader import bundled_pack, default_paths, load_policy

AGENT = Principal("support-bot", "support", "acme")


def _timed(fn: Any, n: int) -> list[float]:
    """Per-call times in microseconds."""
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        fn(i)
        out.append((clock() - start) / 1000)
    return out


def _timed_turns(fns: list[Any], n: int) -> list[list[float]]:
    """Per-call times of functions called in turn (each round in another order), so all
    see the same load."""
    times: list[list[float]] = [[] for _ in fns]
    clock = time.perf_counter_ns
    order = list(range(len(fns)))
    for i in range(n):
        for k in order[i % len(fns):] + order[:i % len(fns)]:
            start = clock()
            fns[k](i)
            times[k].append((clock() - start) / 1000)
    return times


def _uncompiled(slices: PolicySlices) -> PolicySlices:
    """The same slices with their policies' JSON dropped: only cedarpy evaluates them."""
    def bare(part: ActionSlice) -> ActionSlice:
        return ActionSlice(dataclasses.replace(part.generic, policies=None),
                           {uid: dataclasses.replace(s, policies=None)
                            for uid, s in part.by_resource.items()})

    return PolicySlices({a: bare(p) for a, p in slices.by_action.items()}, bare(slices.other))


def _engine_with(policy: Any, slices: PolicySlices) -> Engine:
    return Engine(dataclasses.replace(policy, cedar=dataclasses.replace(policy.cedar,
                                                                        slices=slices)), [AGENT])


def _summary(times: list[float]) -> dict[str, float]:
    return {"p50_us": round(percentile(times, 0.5), 1), "p99_us": round(percentile(times, 0.99), 1),
            "max_us": round(max(times), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=20000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    policy = load_policy([*default_paths(), bundled_pack("examples")])
    engine = Engine(policy, [AGENT])
    authorize = engine.authorize_tool
    whole = PolicySlices({}, ActionSlice(Slice(policy.cedar.policy_set, None)))
    authorize_whole = _engine_with(policy, whole).authorize_tool
    authorize_cedar = _engine_with(policy, _uncompiled(policy.cedar.slices)).authorize_tool

    def call(i: int, amount: float) -> None:
        result = authorize(AGENT, "", "refund_order",
                           {"order_id": "DE-123456", "amount": amount, "currency": "EUR"}, "call")
        assert result.allowed == (amount <= 100)

    text = policy.cedar.text
    entities = cedarpy.Entities.from_json_str("[]")

    def reparse(i: int) -> None:
        cedarpy.is_authorized({
            "principal": {"type": "Agent", "id": "support-bot"},
            "action": {"type": "Action", "id": "call_tool"},
            "resource": {"type": "Tool", "id": f"tool_{i}"},
            "context": {"tool_name": f"tool_{i}", "stage": "call", "amount": 0}},
            text, entities)

    n = args.actions
    shapes = {
        "repeat": lambda i: call(i, 50),
        "new_amounts": lambda i: call(i, 1000 + i),
        "offer": lambda i: authorize(AGENT, "", "refund_order", {}, "offer"),
        "cold": lambda i: authorize(AGENT, "", f"new_tool_{i}", {}, "call"),
        "reparse": reparse,
    }
    gc.collect()
    gc.freeze()
    results: dict[str, Any] = {}
    for name, fn in shapes.items():
        warm = min(n, 500)
        if name not in ("reparse", "cold"):
            _timed(fn, warm)  # fills the decision cache, as live traffic does
        results[name] = _summary(_timed(fn, n if name != "reparse" else n // 10))
    cold_shapes = {"cold_turns": authorize, "cold_cedar": authorize_cedar,
                   "cold_whole": authorize_whole}
    turns = _timed_turns([  # every tool new: no warm-up, nothing cached
        lambda i, fn=fn, k=k: fn(AGENT, "", f"tool_{(k + 1) * n + i}", {}, "call")
        for k, fn in enumerate(cold_shapes.values())], n)
    for name, times in zip(cold_shapes, turns, strict=True):
        results[name] = _summary(times)
    names = ["repeat", "new_amounts", "offer", "cold", "cold_turns", "cold_cedar", "cold_whole",
             "reparse"]
    results["cold_vs_reparse_p50"] = round(
        results["reparse"]["p50_us"] / results["cold"]["p50_us"], 1)
    results["vs_compiled"] = {
        shape: {q: round(results[shape][q] / results["cold_turns"][q], 2)
                for q in ("p50_us", "p99_us")}
        for shape in ("cold_cedar", "cold_whole")}
    results["target_p99_us"] = 100
    results["meets_target"] = {s: results[s]["p99_us"] < 100 for s in names if s != "reparse"}
    print(f"{'shape':<14}{'p50 us':>10}{'p99 us':>10}{'max us':>10}  under 100 us p99")
    for name in names:
        r = results[name]
        met = results["meets_target"].get(name)
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<14}{r['p50_us']:>10}{r['p99_us']:>10}{r['max_us']:>10}  {mark}")
    print(f"compiled handles vs re-parsing (cold), p50: {results['cold_vs_reparse_p50']}x")
    for shape, ratio in results["vs_compiled"].items():
        print(f"{shape} vs compiled (cold, taking turns): p50 {ratio['p50_us']}x, "
              f"p99 {ratio['p99_us']}x")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
