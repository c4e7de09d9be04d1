"""Added latency of the lictor gateway over a direct call to the same loopback upstream.

One run, side by side: the upstream and lictor each run in their own process, and this
process alternates direct and via-lictor requests (A B A B ...) at concurrency 1, so
machine drift hits both equally. Every request carries a new user message. lictor runs its default packs (PII, injection rules,
Cedar) with the audit log on. Prints p50/p99 for both, the added latency and the ratio.

    python bench/gateway_latency.py [--requests 2000] [--json bench/results/latency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

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
PAYLOAD = {
    "model": "bench-gpt",
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
    ],
    "tools": [{"type": "function", "function": {
        "name": "lookup_order", "parameters": {"type": "object", "properties": {
            "order_id": {"type": "string"}}}}}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), 0.2):
                return time.monotonic() - start
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def payload(i: int) -> bytes:
    """The same system prompt each time, a new user message each time (as in real traffic:
    lictor's per-segment cache may help with the first, never with the second)."""
    messages = [PAYLOAD["messages"][0],
                {"role": "user", "content": f"Ticket {i}: {PAYLOAD['messages'][1]['content']}"}]
    return json.dumps({**PAYLOAD, "messages": messages}).encode()


async def measure(direct: str, via: str, n: int, warmup: int) -> tuple[list[float], list[float]]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    out: dict[str, list[float]] = {direct: [], via: []}
    async with aiohttp.ClientSession() as session:

        async def once(url: str, body: bytes) -> float:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url}: HTTP {resp.status}: {await resp.text()}")
            return time.perf_counter() - t0

        for i in range(warmup + n):
            body = payload(i)
            for url in ((direct, via) if i % 2 == 0 else (via, direct)):
                elapsed = await once(url, body)
                if i >= warmup:
                    out[url].append(elapsed * 1000)
    return out[direct], out[via]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    up_port, lictor_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "lictor.yaml"
        config.write_text(json.dumps({
            "data_dir": str(Path(tmp) / "var"),
            "agents": [{"id": "bench-agent", "team": "bench", "key": KEY}],
            "models": [{"name": "bench-gpt", "backend": "passthrough",
                        "base_url": f"http://127.0.0.1:{up_port}/v1"}],
        }))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(up_port)], env=env)
        lictor = subprocess.Popen(
            [sys.executable, "-m", "lictor.proxy.cli", "serve", "--config", str(config),
             "--port", str(lictor_port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_ready(f"http://127.0.0.1:{up_port}", upstream)
            ready_s = wait_ready(f"http://127.0.0.1:{lictor_port}", lictor)
            direct_ms, via_ms = asyncio.run(measure(
                f"http://127.0.0.1:{up_port}/v1/chat/completions",
                f"http://127.0.0.1:{lictor_port}/v1/chat/completions",
                args.requests, args.warmup))
        finally:
            for proc in (lictor, upstream):
                proc.terminate()
                proc.wait(10)

    result: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "requests_each": args.requests,
        "payload_bytes": len(json.dumps(PAYLOAD)),
        "lictor_ready_s": round(ready_s, 2),
    }
    for name, values in (("direct", direct_ms), ("lictor", via_ms)):
        result[name] = {"p50_ms": round(percentile(values, 0.50), 3),
                        "p99_ms": round(percentile(values, 0.99), 3),
                        "mean_ms": round(statistics.fmean(values), 3)}
    for q in ("p50_ms", "p99_ms"):
        result.setdefault("added", {})[q] = round(result["lictor"][q] - result["direct"][q], 3)
    result["ratio_p50"] = round(result["lictor"]["p50_ms"] / result["direct"]["p50_ms"], 2)

    print(f"gateway added latency, concurrency 1, {args.requests} requests each, "
          f"{result['payload_bytes']} B request, default packs, audit on")
    print(f"{'':8} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("direct", "lictor", "added"):
        row = result[name]
        print(f"{name:8} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f}")
    print(f"ratio lictor/direct at p50: {result['ratio_p50']}x; "
          f"lictor ready in {result['lictor_ready_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
