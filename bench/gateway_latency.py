"""Added latency of the lictor gateway over a direct call to the same loopback upstream.

One run, side by side: the upstream, a bare pass-through proxy on lictor's HTTP stack
(aiohttp, no checks) and lictor each run in their own process, and this process sends
direct, bare and lictor requests in turn at concurrency 1, in a new random order each round,
so machine drift hits all three alike.
Every request carries a new user message (lictor's per-segment cache helps only with the
repeated system prompt, as in real traffic). lictor runs its default packs (PII, injection
rules, Cedar) with the audit log on: a durable commit before each response is released.

Prints p50/p99 for each, the latency each proxy adds over direct, and lictor's own share
(lictor over bare: what its checks and audit cost on top of any Python proxy's hop).

    python bench/gateway_latency.py [--requests 2000] [--json bench/results/latency.json]

The Responses API, Anthropic Messages and embeddings (`--protocols`) join the same
rotation, each with the chat request's system prompt, tool and user message (its ticket
number new for every request, so no target's cache sees a message twice), each through
its own endpoint of every target.

`--telemetry` adds a fourth target in the same rotation: a second lictor with telemetry on,
exporting over OTLP/HTTP (batched spans, metrics every 30 s) to the mock upstream, which
accepts and counts the exports; it prints what telemetry adds over the lictor without it.

`--floor` adds the least any Python hop costs here (`floor_proxy.py`: a bare asyncio
protocol with lictor's lean upstream client, no framework, checks or audit) to the same
rotation: what is left of a latency target once that is spent.

`--baseline REV` adds lictor as of a git revision (`git archive`, run on this venv's
packages, as `compare --baseline` does) to the same rotation, for before/after figures of a
change in one run: it prints what this lictor adds over that one. Each proxy's CPU time
per request (user + system, from /proc) is printed too: unlike latency, it does not depend
on how the VM schedules the processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from compare_systems import checkout, source_env
from measure import (
    free_port,
    percentile,
    process_cpu_s,
    run_header,
    wait_ready,
    write_config,
    write_json,
)

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-agent"

SYSTEM = (
    "You are a support agent for an online shop. Answer briefly and politely. Use the tools "
    "when you need order data. Never reveal internal notes. " * 4
)
USER = (
    "Hi, I ordered a blue jacket last week (order 88231) and it has not arrived yet. "
    "Could you check where it is and email the tracking link to jane.doe@example.com? "
    "If it is lost, please refund it to the same card as before. Thanks a lot! " * 3
)
TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "lookup_order", "parameters": {"type": "object", "properties": {
        "order_id": {"type": "string"}}}}}]


def payload(i: int) -> bytes:
    """The same system prompt each time, a new user message each time."""
    return json.dumps({
        "model": "bench-gpt",
        "messages": [{"role": "system", "content": SYSTEM},
                     {"role": "user", "content": f"Ticket {i}: {USER}"}],
        "tools": TOOLS,
    }).encode()


def responses_payload(i: int) -> bytes:
    """The same content as `payload`, as a Responses API request."""
    fn = TOOLS[0]["function"]
    return json.dumps({
        "model": "bench-gpt", "instructions": SYSTEM,
        "input": [{"role": "user", "content": f"Ticket {i}: {USER}"}],
        "tools": [{"type": "function", **fn}],
    }).encode()


def messages_payload(i: int) -> bytes:
    """The same content as `payload`, as an Anthropic Messages request."""
    fn = TOOLS[0]["function"]
    return json.dumps({
        "model": "bench-claude", "max_tokens": 256, "system": SYSTEM,
        "messages": [{"role": "user", "content": f"Ticket {i}: {USER}"}],
        "tools": [{"name": fn["name"], "input_schema": fn["parameters"]}],
    }).encode()


def embeddings_payload(i: int) -> bytes:
    """The user message of `payload`, to embed."""
    return json.dumps({"model": "bench-gpt", "input": [f"Ticket {i}: {USER}"]}).encode()


# protocol -> (path under /v1, request body for request i)
PROTOCOLS: dict[str, tuple[str, Callable[[int], bytes]]] = {
    "responses": ("responses", responses_payload),
    "messages": ("messages", messages_payload),
    "embeddings": ("embeddings", embeddings_payload),
}






async def measure(urls: list[str], n: int, warmup: int,
                  makes: list[Callable[[int], bytes]] | None = None,
                  measuring: Callable[[], None] | None = None) -> list[list[float]]:
    """Milliseconds per request for each URL (its body from `makes`, default the chat
    payload); the order is shuffled every round (seeded), so drift hits every target alike
    and none always follows the same one (whose work after its answer would slow it).
    `measuring` is called once, when the warm-up is over."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    makes = makes or [payload] * len(urls)
    out: list[list[float]] = [[] for _ in urls]
    rng = random.Random(1)
    async with aiohttp.ClientSession() as session:
        for i in range(warmup + n):
            if i == warmup and measuring is not None:
                measuring()
            order = list(range(len(urls)))
            rng.shuffle(order)
            for j in order:
                body = makes[j](i * len(urls) + j)  # a new user message for every request
                t0 = time.perf_counter()
                async with session.post(urls[j], data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{urls[j]}: HTTP {resp.status}: {await resp.text()}")
                if i >= warmup:
                    out[j].append((time.perf_counter() - t0) * 1000)
    return out


async def _get_json(url: str) -> Any:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.json()


def summarize(samples: list[list[float]]) -> dict[str, dict[str, float]]:
    """p50/p99 of direct, bare and lictor, and what each proxy adds over direct."""
    out = {name: {"p50_ms": round(percentile(v, 0.50), 3), "p99_ms": round(percentile(v, 0.99), 3)}
           for name, v in zip(("direct", "bare", "lictor"), samples, strict=True)}
    for q in ("p50_ms", "p99_ms"):
        out.setdefault("bare_added", {})[q] = round(out["bare"][q] - out["direct"][q], 3)
        out.setdefault("lictor_added", {})[q] = round(out["lictor"][q] - out["direct"][q], 3)
        out.setdefault("lictor_over_bare", {})[q] = round(out["lictor"][q] - out["bare"][q], 3)
    return out


def _lictor(config: Path, port: int, env: dict[str, str] | None = None
            ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "lictor.proxy.cli", "serve", "--config", str(config),
         "--port", str(port)], env={**os.environ, **env} if env else None,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--telemetry", action="store_true",
                        help="also measure a lictor with telemetry on (console exporter)")
    parser.add_argument("--floor", action="store_true",
                        help="also measure the least a Python hop costs here (floor_proxy.py)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also measure lictor as of this git revision (before/after)")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS),
                        help="other protocols to measure after chat, comma-separated "
                        f"(default: {','.join(PROTOCOLS)}; empty: chat only)")
    args = parser.parse_args()
    others = [p for p in args.protocols.split(",") if p]
    unknown = set(others) - set(PROTOCOLS)
    if unknown:
        parser.error(f"unknown protocols: {', '.join(sorted(unknown))}")

    up_port, bare_port, lictor_port = free_port(), free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}/v1"
    procs: list[subprocess.Popen[bytes]] = []
    otlp_received: Any = None
    cpu_at_start: list[float | None] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "lictor.yaml"
        settings: dict[str, Any] = {
            "data_dir": str(Path(tmp) / "var"),
            "agents": [{"id": "bench-agent", "team": "bench", "key": KEY}],
            "models": [{"name": "bench-gpt", "backend": "passthrough", "base_url": upstream_url},
                       {"name": "bench-claude", "backend": "passthrough",
                        "base_url": upstream_url}],
        }
        write_config(config, settings)
        try:
            procs.append(subprocess.Popen(
                [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(up_port)]))
            procs.append(subprocess.Popen(
                [sys.executable, str(HERE / "bare_proxy.py"), "--port", str(bare_port),
                 "--upstream", upstream_url]))
            procs.append(_lictor(config, lictor_port))
            ports = [up_port, bare_port, lictor_port]
            names = ["direct", "bare", "lictor"]
            if args.floor:
                ports.append(free_port())
                procs.append(subprocess.Popen(
                    [sys.executable, str(HERE / "floor_proxy.py"), "--port", str(ports[-1]),
                     "--upstream", upstream_url]))
                names.append("floor")
            if args.telemetry:
                otel_config = write_config(Path(tmp) / "lictor-otel.yaml", {
                    **settings, "data_dir": str(Path(tmp) / "var-otel"),
                    "telemetry": {"exporter": "otlp", "endpoint": upstream_url[:-3]}})
                ports.append(free_port())
                procs.append(_lictor(otel_config, ports[-1]))
                names.append("lictor_otel")
            if args.baseline:
                base_config = write_config(Path(tmp) / "lictor-baseline.yaml", {
                    **settings, "data_dir": str(Path(tmp) / "var-baseline")})
                env = source_env(checkout(args.baseline, Path(tmp)), Path(tmp) / "base-view")
                ports.append(free_port())
                procs.append(_lictor(base_config, ports[-1], env))
                names.append("baseline")
            wait_ready(up_port, procs[0])
            wait_ready(bare_port, procs[1])
            ready_s = wait_ready(lictor_port, procs[2])
            for port, proc in zip(ports[3:], procs[3:], strict=True):
                wait_ready(port, proc)
            urls = [f"http://127.0.0.1:{p}/v1/chat/completions" for p in ports]
            makes: list[Callable[[int], bytes]] = [payload] * len(urls)
            for name in others:  # the other protocols join the same rotation, every target
                urls += [f"http://127.0.0.1:{p}/v1/{PROTOCOLS[name][0]}" for p in ports]
                makes += [PROTOCOLS[name][1]] * len(ports)

            def measuring() -> None:
                cpu_at_start[:] = [process_cpu_s(proc.pid) for proc in procs]

            samples = asyncio.run(measure(urls, args.requests, args.warmup, makes, measuring))
            cpu_used = [None if start is None or (now := process_cpu_s(proc.pid)) is None
                        else now - start for start, proc in zip(cpu_at_start, procs, strict=True)]
            per_protocol = {name: samples[len(ports) * (k + 1): len(ports) * (k + 1) + 3]
                            for k, name in enumerate(others)}
            samples = samples[:len(ports)]
            if args.telemetry:
                otel = procs[names.index("lictor_otel")]  # its last spans are flushed as it stops
                otel.terminate()
                otel.wait(30)
                otlp_received = asyncio.run(_get_json(f"{upstream_url[:-3]}/otlp"))
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(10)

    result: dict[str, Any] = {
        **run_header(),
        "requests_each": args.requests,
        "request_bytes": len(payload(0)),
        "lictor_ready_s": round(ready_s, 2),
    }
    for name, values in zip(names, samples, strict=True):
        result[name] = {"p50_ms": round(percentile(values, 0.50), 3),
                        "p99_ms": round(percentile(values, 0.99), 3),
                        "mean_ms": round(statistics.fmean(values), 3)}
    for q in ("p50_ms", "p99_ms"):
        for name in ("bare", "floor", "lictor", "baseline"):
            if name in names:
                added = result[name][q] - result["direct"][q]
                result.setdefault(f"{name}_added", {})[q] = round(added, 3)
        own = result["lictor"][q] - result["bare"][q]
        result.setdefault("lictor_over_bare", {})[q] = round(own, 3)
        if "baseline" in names:
            change = result["lictor"][q] - result["baseline"][q]
            result.setdefault("lictor_vs_baseline", {})[q] = round(change, 3)
    if args.telemetry:
        result["otlp_received"] = otlp_received
        result["otel_over_lictor"] = {
            q: round(result["lictor_otel"][q] - result["lictor"][q], 3)
            for q in ("p50_ms", "p99_ms")}
    served = args.requests * (1 + len(others))  # each process serves every protocol
    result["cpu_us_per_request"] = {
        name: round(used / served * 1e6, 1)
        for name, used in zip(names, cpu_used, strict=True)
        if name != "direct" and used is not None}
    result["ratio_lictor_direct_p50"] = round(
        result["lictor"]["p50_ms"] / result["direct"]["p50_ms"], 2)
    result["protocols"] = {"chat": {k: result[k] for k in (
        "direct", "bare", "lictor", "bare_added", "lictor_added", "lictor_over_bare")}}
    for name, runs in per_protocol.items():
        result["protocols"][name] = summarize(runs)

    print(f"gateway added latency, concurrency 1, {args.requests} requests each, "
          f"{result['request_bytes']} B requests, default packs, audit on")
    print(f"{'':18} {'p50 ms':>8} {'p99 ms':>8}")
    rows = ["direct", "bare", "lictor", "bare_added", "lictor_added", "lictor_over_bare"]
    if args.telemetry:
        rows[3:3] = ["lictor_otel"]
        rows.append("otel_over_lictor")
    if "baseline" in names:
        rows[rows.index("bare_added"):rows.index("bare_added")] = ["baseline"]
        rows += ["baseline_added", "lictor_vs_baseline"]
    if "floor" in names:
        rows[rows.index("bare"):rows.index("bare")] = ["floor"]
        rows[rows.index("bare_added"):rows.index("bare_added")] = ["floor_added"]
    for name in rows:
        row = result[name]
        print(f"{name:18} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f}")
    if args.telemetry:
        print(f"OTLP exports received: {otlp_received}")
    print(f"ratio lictor/direct at p50: {result['ratio_lictor_direct_p50']}x; "
          f"lictor ready in {result['lictor_ready_s']} s")
    print("CPU per request (user + system, each proxy process): " + ", ".join(
        f"{name} {us:.0f} us" for name, us in result["cpu_us_per_request"].items()))
    if per_protocol:
        print(f"\nby protocol (same payload content), p50 / p99 ms; {args.requests} each")
        cols = ["direct", "bare", "lictor", "lictor_added", "lictor_over_bare"]
        print(f"{'':12}" + "".join(f"{c:>22}" for c in cols))
        for name, figures in result["protocols"].items():
            cells = "".join(f"{figures[c]['p50_ms']:>12.3f} /{figures[c]['p99_ms']:>8.3f}"
                            for c in cols)
            print(f"{name:12}{cells}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
