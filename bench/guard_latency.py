"""What direct-access mode costs per model call, next to what the gateway hop costs.

One run, side by side, rotating at concurrency 1 over keep-alive connections: a direct call
to a loopback mock upstream; the same call wrapped in the in-process guard (check_input,
the masked messages sent, check_output with placeholders restored, both audited); and
the same call through `lictor serve` (its own process). Same payloads as
gateway_latency.py (a repeated system prompt, a new user message with an email address),
default packs, audit on.

    python bench/guard_latency.py [--requests 1000] [--json bench/results/guard.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway_latency import HERE, KEY, payload
from measure import free_port, percentile, run_header, wait_ready, write_config, write_json

from lictor.proxy.config import load_config
from lictor.proxy.guard import Guard

PATH = "/v1/chat/completions"


def poster(port: int) -> Callable[[bytes], dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}

    def post(body: bytes) -> dict[str, Any]:
        conn.request("POST", PATH, body, headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"port {port}: HTTP {resp.status}: {data[:200]!r}")
        answer: dict[str, Any] = json.loads(data)
        return answer

    return post


def guarded(guard: Guard, post: Callable[[bytes], dict[str, Any]]) -> Callable[[bytes], Any]:
    def call(body: bytes) -> Any:
        request = json.loads(body)
        checked = guard.check_input(request["messages"], model=request["model"],
                                    tools=request.get("tools"))
        answer = post(json.dumps({**request, "messages": checked.messages,
                                  "tools": checked.tools}).encode())
        message = answer["choices"][0]["message"]
        return guard.check_output(message.get("content"), message.get("tool_calls"), checked)

    return call


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    up_port, lictor_port = free_port(), free_port()
    upstream_url = f"http://127.0.0.1:{up_port}/v1"
    names = ["direct", "guard", "gateway"]
    samples: list[list[float]] = [[], [], []]
    with tempfile.TemporaryDirectory() as tmp:
        settings: dict[str, Any] = {
            "agents": [{"id": "bench-agent", "team": "bench", "key": KEY}],
            "models": [{"name": "bench-gpt", "backend": "passthrough", "base_url": upstream_url}],
        }
        config = Path(tmp) / "lictor.yaml"
        write_config(config, {**settings, "data_dir": str(Path(tmp) / "var")})
        guard_config = load_config(None, {**settings, "data_dir": str(Path(tmp) / "var-guard")})
        procs = [subprocess.Popen([sys.executable, str(HERE / "mock_upstream.py"), "--port",
                                   str(up_port)]),
                 subprocess.Popen([sys.executable, "-m", "lictor.proxy.cli", "serve", "--config",
                                   str(config), "--port", str(lictor_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        try:
            wait_ready(up_port, procs[0])
            wait_ready(lictor_port, procs[1])
            with Guard.open("bench-agent", guard_config) as guard:
                direct = poster(up_port)
                calls = [direct, guarded(guard, poster(up_port)), poster(lictor_port)]
                for i in range(args.warmup + args.requests):
                    body = payload(i)
                    for k in range(3):
                        j = (i + k) % 3
                        t0 = time.perf_counter()
                        calls[j](body)
                        if i >= args.warmup:
                            samples[j].append((time.perf_counter() - t0) * 1000)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(10)
    result: dict[str, Any] = {**run_header(), "requests_each": args.requests,
                              "request_bytes": len(payload(0))}
    for name, values in zip(names, samples, strict=True):
        result[name] = {"p50_ms": round(percentile(values, 0.50), 3),
                        "p99_ms": round(percentile(values, 0.99), 3),
                        "mean_ms": round(statistics.fmean(values), 3)}
    for name in ("guard", "gateway"):
        result[f"{name}_added"] = {q: round(result[name][q] - result["direct"][q], 3)
                                   for q in ("p50_ms", "p99_ms")}
    result["ratio_guard_added_to_gateway_added_p50"] = round(
        result["guard_added"]["p50_ms"] / result["gateway_added"]["p50_ms"], 2)
    print(f"per model call, concurrency 1, {args.requests} requests each, "
          f"{result['request_bytes']} B requests, default packs, audit on")
    print(f"{'':14} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("direct", "guard", "gateway", "guard_added", "gateway_added"):
        print(f"{name:14} {result[name]['p50_ms']:8.3f} {result[name]['p99_ms']:8.3f}")
    print(f"in-process guard adds {result['ratio_guard_added_to_gateway_added_p50']}x "
          "what the gateway adds, at p50")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
