"""Where one request's time goes inside `lictor serve`: wall and CPU time per phase.

Starts the mock upstream and a lictor whose phases (the engine's evaluations, the audit
commit, the upstream call, reading the body, writing the answer...) are wrapped with
timers, sends it chat completions one at a time (the payload of gateway_latency.py, a new
user message each), and prints per phase the microseconds it took per request: wall time,
and CPU time of the event loop's thread (`time.thread_time`, system time included: what
the phase burnt, not the time the VM gave other processes meanwhile). Phases nest (the
exchange holds nearly all the others), and an async phase's CPU includes whatever the loop
ran while it waited. The whole process's CPU per request (/proc) is printed for scale.

    python bench/gateway_phases.py [--requests 3000] [--json bench/results/phases.json]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import functools
import importlib
import inspect
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from gateway_latency import HERE, KEY, payload
from measure import free_port, process_cpu_s, run_header, wait_ready, write_config, write_json

# (module, attribute path, what it is); wrapped where they are looked up at call time
PHASES: list[tuple[str, str, str]] = [
    ("aiohttp.web_protocol", "RequestHandler._handle_request", "aiohttp: the whole request"),
    ("lictor.proxy.gateway", "Gateway.exchange", "gateway: exchange (all below)"),
    ("lictor.proxy.gateway", "Gateway._authenticate", "gateway: authenticate"),
    ("lictor.proxy.gateway", "Gateway._read_json", "gateway: read and parse the body"),
    ("lictor.proxy.gateway", "parse_json_bytes", "gateway: strict JSON parse"),
    ("lictor.enforcement.engine", "Engine.evaluate_request", "engine: evaluate the request"),
    ("lictor.proxy.audit_entries", "model_request", "audit: build the request record"),
    ("lictor.adapters.backends.passthrough", "PassthroughBackend.forward",
     "upstream: the call, its wait included"),
    ("lictor.adapters.backends.http1", "Http1Pool.post", "upstream: the HTTP/1.1 client's post"),
    ("lictor.enforcement.engine", "Engine.evaluate_response", "engine: evaluate the answer"),
    ("lictor.enforcement.engine", "Engine.redact", "engine: redact the answer for audit"),
    ("lictor.proxy.audit_entries", "model_response", "audit: build the answer record"),
    ("lictor.proxy.gateway", "Gateway.append_records", "audit: append, one commit"),
    ("lictor.audit.store", "AuditStore._chain", "audit: chain, canonical JSON, hashes"),
    ("aiohttp.web", "json_response", "answer: JSON and Response"),
    ("aiohttp.web_protocol", "RequestHandler.finish_response", "answer: write it"),
]
REQUESTS_PHASE = "gateway: exchange (all below)"


class Timers:
    """Per phase: calls, wall seconds, CPU seconds of the calling thread."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}

    def reset(self) -> None:
        self.totals = {}

    def add(self, label: str, wall: float, cpu: float) -> None:
        entry = self.totals.setdefault(label, [0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += wall
        entry[2] += cpu

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        clock, cpu = time.perf_counter, time.thread_time
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                wall0, cpu0 = clock(), cpu()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.add(label, clock() - wall0, cpu() - cpu0)
            return timed_async

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            wall0, cpu0 = clock(), cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(label, clock() - wall0, cpu() - cpu0)
        return timed


def serve_timed(config: str, port: int, out: Path) -> int:
    """`lictor serve` with every phase timed; SIGUSR1 zeroes the timers, exit writes `out`."""
    timers = Timers()
    for module_name, path, label in PHASES:
        owner: Any = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        setattr(owner, name, timers.wrap(getattr(owner, name), label))
    signal.signal(signal.SIGUSR1, lambda *_: timers.reset())
    atexit.register(lambda: out.write_text(json.dumps(timers.totals)))
    from lictor.proxy import cli

    return cli.main(["serve", "--config", config, "--port", str(port)])


async def drive(url: str, start: int, n: int) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}
    async with aiohttp.ClientSession() as session:
        for i in range(start, start + n):
            async with session.post(url, data=payload(i), headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {await resp.text()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--serve", nargs=3, metavar=("CONFIG", "PORT", "OUT"),
                        help=argparse.SUPPRESS)  # the timed server this script starts
    args = parser.parse_args()
    if args.serve:
        return serve_timed(args.serve[0], int(args.serve[1]), Path(args.serve[2]))

    up_port, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "phases.json"
        config = write_config(Path(tmp) / "lictor.yaml", {
            "data_dir": str(Path(tmp) / "var"),
            "agents": [{"id": "bench-agent", "team": "bench", "key": KEY}],
            "models": [{"name": "bench-gpt", "backend": "passthrough",
                        "base_url": f"http://127.0.0.1:{up_port}/v1"}],
        })
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "mock_upstream.py"), "--port", str(up_port)])
        server = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(config), str(port), str(out)],
            stdout=subprocess.DEVNULL)
        try:
            wait_ready(up_port, upstream)
            wait_ready(port, server)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            asyncio.run(drive(url, 0, args.warmup))
            time.sleep(0.5)  # the last warm-up request's phases may end after its answer
            server.send_signal(signal.SIGUSR1)
            time.sleep(0.2)
            cpu0 = process_cpu_s(server.pid)
            asyncio.run(drive(url, args.warmup, args.requests))
            cpu1 = process_cpu_s(server.pid)
            server.send_signal(signal.SIGINT)  # aiohttp shuts down; the timers are written
            server.wait(30)
            totals: dict[str, list[float]] = json.loads(out.read_text())
        finally:
            for proc in (server, upstream):
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(10)
    n = totals[REQUESTS_PHASE][0]
    phases = {label: {"calls_per_request": round(calls / n, 2),
                      "wall_us": round(wall / n * 1e6, 1), "cpu_us": round(cpu / n * 1e6, 1)}
              for label, (calls, wall, cpu) in totals.items()}
    process_us = None if cpu0 is None or cpu1 is None else round((cpu1 - cpu0) / n * 1e6)
    print(f"lictor phases, {n} chat completions at concurrency 1, us per request "
          f"(process CPU {process_us} us per request, all threads)")
    print(f"{'phase':44} {'calls':>6} {'wall':>8} {'CPU':>8}")
    for _, _, label in PHASES:
        if label in phases:
            row = phases[label]
            print(f"{label:44} {row['calls_per_request']:6.2f} {row['wall_us']:8.1f} "
                  f"{row['cpu_us']:8.1f}")
    write_json(args.json, {**run_header(), "requests": n, "process_cpu_us": process_us,
                           "phases": phases})
    return 0


if __name__ == "__main__":
    sys.exit(main())
