"""Closed-loop HTTP load from its own process: N workers post chat completions for a while.

Used by `bench/compare` for streamed cells (it times the first body byte as well as the
whole answer, which wrk cannot) and for any cell when wrk is missing. Each request body is
the template with `@@N@@` replaced by a number new to this run (a new user message every
time, so no proxy cache can answer it). Prints one JSON object on stdout:

    python bench/loadgen.py --url URL --template FILE --concurrency 32 --seconds 3 [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
from measure import percentile

PLACEHOLDER = b"@@N@@"


class Load:
    """Counts and timings of one cell, shared by its workers."""

    def __init__(self, template: bytes, tag: str) -> None:
        self.pre, _, self.post = template.partition(PLACEHOLDER)
        self.tag = tag.encode()
        self.n = 0
        self.total_ms: list[float] = []
        self.ttfb_ms: list[float] = []
        self.errors = 0
        self.first_error = ""

    def body(self) -> bytes:
        self.n += 1
        return self.pre + self.tag + b"-" + str(self.n).encode() + self.post


async def worker(session: aiohttp.ClientSession, url: str, *, headers: dict[str, str],
                 load: Load, stream: bool, until: float) -> None:
    while time.perf_counter() < until:
        t0 = time.perf_counter()
        try:
            async with session.post(url, data=load.body(), headers=headers) as resp:
                if stream:
                    first = True
                    tail = b""
                    async for chunk in resp.content.iter_any():
                        if first:
                            ttfb = time.perf_counter() - t0
                            first = False
                        tail = (tail + chunk)[-64:]
                    ok = resp.status == 200 and b"[DONE]" in tail
                else:
                    ok = resp.status == 200 and b'"choices"' in await resp.read()
                if not ok:
                    raise RuntimeError(f"HTTP {resp.status}")
        except (aiohttp.ClientError, RuntimeError, TimeoutError) as err:
            load.errors += 1
            load.first_error = load.first_error or repr(err)
            continue
        load.total_ms.append((time.perf_counter() - t0) * 1000)
        if stream:
            load.ttfb_ms.append(ttfb * 1000)


async def run(args: argparse.Namespace, template: bytes) -> dict[str, object]:
    load = Load(template, args.tag)
    headers = {"Content-Type": "application/json"}
    if args.key:
        headers["Authorization"] = f"Bearer {args.key}"
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.perf_counter()
        until = start + args.seconds
        await asyncio.gather(*(worker(session, args.url, headers=headers, load=load,
                                      stream=args.stream, until=until)
                               for _ in range(args.concurrency)))
        elapsed = time.perf_counter() - start
    out: dict[str, object] = {"requests": len(load.total_ms), "errors": load.errors,
                              "first_error": load.first_error,
                              "rps": len(load.total_ms) / elapsed}
    for name, values in (("", load.total_ms), ("ttfb_", load.ttfb_ms)):
        if values:
            out[f"{name}p50_ms"] = percentile(values, 0.50)
            out[f"{name}p99_ms"] = percentile(values, 0.99)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--template", required=True)
    parser.add_argument("--tag", default="t", help="makes this run's messages unique")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args, Path(args.template).read_bytes()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
