"""lictor next to a direct call, a bare proxy and LiteLLM's proxy, in one run (`bench/compare`).

Starts a loopback mock OpenAI-compatible upstream and, each in its own process, a bare
aiohttp pass-through proxy, `lictor serve` (default packs, audit on; once with the default
`synchronous=normal` and once with `full`) and LiteLLM's proxy 1.106.2 (its own venv, from
`requirements/bench-litellm.lock`). Load comes from another process: wrk for plain answers,
`loadgen.py` (aiohttp) for streamed ones, at concurrency 1, 32 and 128, with 1 KB and 32 KB
requests; each cell rotates through the systems, so drift hits all alike. Prints a table and
the targets, writes JSON and a PNG chart under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import compare_systems as systems
from compare_report import report
from compare_systems import System
from measure import free_port, run_header, write_json

HERE = Path(__file__).resolve().parent
SYSTEM_PROMPT = ("You are a support agent for an online shop. Answer briefly and politely. "
                 "Use the tools when you need order data. Never reveal internal notes. ")
USER = ("Ticket @@N@@: I ordered a blue jacket last week and it has not arrived yet. Could you "
        "check where it is and email the tracking link to jane.doe@example.com? Thanks! ")
HISTORY_TURN = ("Earlier: the customer asked about delivery times to Lyon and whether the "
                "parcel can be left with a neighbour; the agent said yes, within 3 days. ")
TOOLS = [{"type": "function", "function": {"name": "lookup_order", "parameters": {
    "type": "object", "properties": {"order_id": {"type": "string"}}}}}]


def template(size_kb: int, stream: bool, model: str = "bench-gpt") -> bytes:
    """A request of about `size_kb` KB: a system prompt and history that repeat, and a new
    user message (`@@N@@` becomes a number new to the run)."""
    messages: list[dict[str, str]] = [{"role": "system", "content": SYSTEM_PROMPT * 3}]
    body: dict[str, Any] = {"model": model, "messages": messages, "tools": TOOLS}
    if stream:
        body["stream"] = True
    history = 0
    while len(json.dumps(body)) + len(USER) < size_kb * 1024 - 200:
        role = "assistant" if history % 2 else "user"
        messages.append({"role": role, "content": f"({history}) " + HISTORY_TURN * 2})
        history += 1
    messages.append({"role": "user", "content": USER})
    return json.dumps(body).encode()


def ensure_wrk() -> str | None:
    """wrk's path, installed from Debian packages when missing and we may; else None."""
    path = shutil.which("wrk")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        path = shutil.which("wrk")
    return path


def run_cell(system: System, tmpl: Path, *, conc: int, seconds: int, stream: bool,
             tag: str, wrk: str | None) -> dict[str, Any]:
    """One cell's figures for one system, from a load process of its own."""
    if wrk and not stream:
        argv = [wrk, "-t1", f"-c{conc}", f"-d{max(1, seconds)}s", "--timeout", "30s",
                "-s", str(HERE / "wrk_post.lua")]
        if system.key:
            argv += ["-H", f"Authorization: Bearer {system.key}"]
        out = subprocess.run([*argv, system.url, "--", str(tmpl), tag], check=True,
                             capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        figures["rps"] = figures["requests"] / (figures.pop("duration_us") / 1e6)
    else:
        argv = [sys.executable, str(HERE / "loadgen.py"), "--url", system.url, "--key",
                system.key, "--template", str(tmpl), "--tag", tag, "--concurrency",
                str(conc), "--seconds", str(seconds)]
        out = subprocess.run(argv + (["--stream"] if stream else []), check=True,
                             capture_output=True, text=True).stdout
        figures = json.loads(out)
    if not figures["requests"]:  # not one answer within the cell: no latency to report
        figures.update(p50_ms=None, p99_ms=None)
    if figures["errors"]:
        print(f"  {system.name}: {figures['errors']} errors "
              f"{figures.get('first_error', '')}", file=sys.stderr)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def median_of(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's figures from its turns: answers and errors summed, the rest the median."""
    out: dict[str, Any] = {"requests": sum(t["requests"] for t in turns),
                           "errors": sum(t["errors"] for t in turns), "turns": len(turns)}
    for key in ("rps", "p50_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms"):
        values = [t[key] for t in turns if t.get(key) is not None]
        out[key] = round(statistics.median(values), 4) if values else None
    out["rps"] = out["rps"] or 0.0
    return out


def probe_buffering(system: System, body: bytes) -> dict[str, float]:
    """One streamed answer whose upstream pauses 200 ms after its first chunk: a proxy that
    relays chunks shows the first byte long before the end; one that buffers does not."""
    headers = {"Content-Type": "application/json"}
    if system.key:
        headers["Authorization"] = f"Bearer {system.key}"
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(system.url, body, headers),
                                timeout=30) as resp:
        resp.read(1)
        ttfb = time.perf_counter() - t0
        resp.read()
        total = time.perf_counter() - t0
    return {"ttfb_ms": round(ttfb * 1000, 2), "total_ms": round(total * 1000, 2),
            "buffered": ttfb >= 0.15}


def cells(quick: bool) -> list[tuple[bool, int, int]]:
    """(stream, KB, concurrency) for each cell of the run."""
    if quick:
        return [(False, 1, 1), (False, 1, 32), (True, 1, 1)]
    return [(s, kb, c) for s in (False, True) for kb in (1, 32) for c in (1, 32, 128)]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=int, default=1,
                        help="per turn of a cell at concurrency 1 (twice that above)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns per cell and system (the median is reported)")
    parser.add_argument("--quick", action="store_true",
                        help="CI smoke: 3 cells, one turn each, no LiteLLM, no lictor_full")
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run lictor as of this git revision (before/after)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "compare.json")
    parser.add_argument("--png", type=Path, default=HERE / "results" / "compare.png")
    args = parser.parse_args()
    seconds = 1 if args.quick else args.seconds
    turns = 1 if args.quick else args.rounds
    with_litellm = not (args.quick or args.no_litellm)
    wrk = ensure_wrk()
    started = time.monotonic()
    running: list[System] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        templates: dict[tuple[bool, int], Path] = {}
        for stream in (False, True):
            for kb in (1, 32):
                templates[stream, kb] = tmp / f"body-{kb}k-{int(stream)}.json"
                templates[stream, kb].write_bytes(template(kb, stream))
        try:
            up_port = free_port()
            upstream = systems.mock_upstream(up_port)
            running.append(upstream)
            upstream_url = f"http://127.0.0.1:{up_port}/v1"
            direct = System("direct", upstream.url)
            # the upstream alone first: it must be far faster than what it serves
            check = run_cell(direct, templates[False, 1], conc=32, seconds=seconds, stream=False,
                             tag="check", wrk=wrk)
            print(f"mock upstream alone, c=32 1 KB: {check['rps']:.0f} req/s, "
                  f"p50 {check['p50_ms']:.2f} ms", flush=True)
            targets = [direct]
            for start in (
                lambda: systems.bare_proxy(free_port(), upstream_url),
                lambda: systems.lictor("lictor", free_port(), upstream_url, tmp,
                                       synchronous="normal"),
                *([] if args.quick else [lambda: systems.lictor(
                    "lictor_full", free_port(), upstream_url, tmp, synchronous="full")]),
                *([lambda: systems.lictor(
                    "lictor_before", free_port(), upstream_url, tmp, synchronous="normal",
                    source=systems.checkout(args.baseline, tmp))] if args.baseline else []),
                *([lambda: systems.litellm_proxy(free_port(), upstream_url, tmp)]
                  if with_litellm else []),
            ):
                system = start()
                running.append(system)
                targets.append(system)
                print(f"{system.name}: ready in {system.ready_s:.2f} s", flush=True)
            for system in targets:  # warm-up, not recorded
                run_cell(system, templates[False, 1], conc=4, seconds=1, stream=False,
                         tag=f"warm{system.name}", wrk=wrk)
            rounds: dict[str, dict[str, list[dict[str, Any]]]] = {s.name: {} for s in targets}
            for n, (stream, kb, conc) in enumerate(cells(args.quick)):
                key = f"{'stream' if stream else 'plain'}_{kb}k_c{conc}"
                print(f"cell {key}...", flush=True)
                for r in range(turns):  # short turns in rotation: a burst of other
                    for k in range(len(targets)):  # work on the machine hits one turn
                        system = targets[(n + r + k) % len(targets)]
                        rounds[system.name].setdefault(key, []).append(run_cell(
                            system, templates[stream, kb], conc=conc,
                            seconds=seconds if conc == 1 else 2 * seconds,
                            stream=stream, tag=f"{key}-{system.name}-{r}", wrk=wrk))
            results = {name: {key: median_of(turns) for key, turns in by_cell.items()}
                       for name, by_cell in rounds.items()}
            slow = template(1, True, model="bench-slow")
            probes = {s.name: probe_buffering(s, slow) for s in targets}
            rss = {s.name: round(s.rss_mb(), 1) for s in targets if s.proc}
        finally:
            for system in reversed(running):
                system.stop()
    result = {**run_header(), "seconds_per_cell": seconds, "rounds": turns,
              "loader": "wrk" if wrk else "aiohttp",
              "upstream_alone_c32_1k": check, "systems": systems.describe(targets),
              "cells": results, "buffering_probe": probes, "rss_mb": rss,
              "baseline": args.baseline, "litellm_presidio_guardrail": (
                  "not measured: LiteLLM's presidio guardrail calls Presidio's analyzer and "
                  "anonymizer HTTP services, which are not part of the litellm[proxy] install "
                  "and are not run here (no Docker on this machine)"),
              "wall_s": round(time.monotonic() - started, 1)}
    report(result)
    write_json(args.json, result)
    if not args.quick and systems.chart(args.json, args.png):
        print(f"chart: {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
