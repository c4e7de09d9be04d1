"""Added latency of lictor's MCP proxy on a tools/call, over calling the server directly.

One run, side by side: a FastMCP server (the official MCP SDK, streamable HTTP) answering
with SSE and one answering with JSON, each in its own process, and `lictor serve` fronting
both (default packs, audit on, `pin: first_use`). This process opens one MCP session per
route, lists the tools, then rotates tools/call requests direct and through lictor at
concurrency 1, each with new arguments. Through lictor a call is authorized (Cedar,
argument and code rules, loops), audited, forwarded, its result scanned as untrusted input
(PII, injection rules) and audited again before it is released.

    python bench/mcp_latency.py [--requests 1000] [--json bench/results/mcp_latency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from measure import free_port, percentile, run_header, wait_ready, write_config, write_json

HERE = Path(__file__).resolve().parent
KEY = "sk-bench-agent"
ROUTES = ("sse_direct", "sse_lictor", "json_direct", "json_lictor")


def message(i: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": i, "method": method}
    if params is not None:
        body["params"] = params
    return json.dumps(body).encode()


class Route:
    """One MCP session on one URL, driven with raw HTTP (what any client sends)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.url = http, url
        self.headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream"}

    async def send(self, body: bytes) -> bytes:
        async with self.http.post(self.url, data=body, headers=self.headers) as resp:
            raw = await resp.read()
            if resp.status >= 300 or b'"error"' in raw:
                raise RuntimeError(f"{self.url}: HTTP {resp.status}: {raw[:300]!r}")
            if "Mcp-Session-Id" in resp.headers:
                self.headers["Mcp-Session-Id"] = resp.headers["Mcp-Session-Id"]
            return raw

    async def open(self) -> None:
        await self.send(message(0, "initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"}}))
        self.headers["MCP-Protocol-Version"] = "2025-06-18"
        await self.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}')
        await self.send(message(1, "tools/list"))


async def measure(urls: list[str], n: int, warmup: int) -> list[list[float]]:
    """Milliseconds per tools/call for each URL; the order rotates every round."""
    out: list[list[float]] = [[] for _ in urls]
    async with aiohttp.ClientSession() as http:
        routes = [Route(http, url) for url in urls]
        for route in routes:
            await route.open()
        for i in range(warmup + n):
            body = message(i + 2, "tools/call", {"name": "lookup_order",
                                                 "arguments": {"order_id": f"A-{i}"}})
            for k in range(len(routes)):
                j = (i + k) % len(routes)
                t0 = time.perf_counter()
                await routes[j].send(body)
                if i >= warmup:
                    out[j].append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    sse_port, json_port, lictor_port = free_port(), free_port(), free_port()
    sse_url, json_url = (f"http://127.0.0.1:{p}/mcp" for p in (sse_port, json_port))
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "lictor.yaml"
        write_config(config, {
            "data_dir": str(Path(tmp) / "var"),
            "agents": [{"id": "bench-agent", "team": "bench", "key": KEY}],
            "mcp_servers": [{"name": "sse", "url": sse_url, "pin": "first_use"},
                            {"name": "json", "url": json_url, "pin": "first_use"}],
        })
        try:
            for port, extra in ((sse_port, []), (json_port, ["--json"])):
                procs.append(subprocess.Popen(
                    [sys.executable, str(HERE / "mcp_upstream.py"), "--port", str(port), *extra]))
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "lictor.proxy.cli", "serve", "--config", str(config),
                 "--port", str(lictor_port)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for port, proc in zip((sse_port, json_port, lictor_port), procs, strict=True):
                wait_ready(port, proc)
            lictor = f"http://127.0.0.1:{lictor_port}/mcp"
            urls = [sse_url, f"{lictor}/sse", json_url, f"{lictor}/json"]
            samples = asyncio.run(measure(urls, args.requests, args.warmup))
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)

    result: dict[str, Any] = {
        **run_header(),
        "requests_each": args.requests,
    }
    for name, values in zip(ROUTES, samples, strict=True):
        result[name] = {"p50_ms": round(percentile(values, 0.50), 3),
                        "p99_ms": round(percentile(values, 0.99), 3),
                        "mean_ms": round(statistics.fmean(values), 3)}
    for kind in ("sse", "json"):
        result[f"{kind}_added"] = {
            q: round(result[f"{kind}_lictor"][q] - result[f"{kind}_direct"][q], 3)
            for q in ("p50_ms", "p99_ms")}

    print(f"MCP tools/call added latency, concurrency 1, {args.requests} calls each, "
          "default packs, audit on")
    print(f"{'':14} {'p50 ms':>8} {'p99 ms':>8}")
    for name in (*ROUTES, "sse_added", "json_added"):
        row = result[name]
        print(f"{name:14} {row['p50_ms']:8.3f} {row['p99_ms']:8.3f}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
