"""The least a Python proxy hop can cost here: for `gateway_latency.py --floor`.

A bare asyncio protocol that reads each request's head and Content-Length body with
`bytes.find`, forwards it with lictor's own lean upstream client (one write, keep-alive
pool) and writes the answer back in one call: no framework, no checks, no audit, not even
a full HTTP parser. Not a server to deploy (no chunked bodies, no limits, no deadlines): a
yardstick for what any Python gateway on this machine adds before it does any work.

    python bench/floor_proxy.py --port 8791 --upstream http://127.0.0.1:8790/v1
"""

from __future__ import annotations

import argparse
import asyncio

from yarl import URL

from lictor.adapters.backends.http1 import Http1Pool


class FloorHop(asyncio.Protocol):
    """One client connection; requests on it are answered in order, one at a time."""

    def __init__(self, pool: Http1Pool, upstream: URL) -> None:
        self._pool, self._upstream = pool, upstream
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        lines = self._buffer[:end].decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                       if line[:15].lower() == "content-length:"), 0)
        if len(self._buffer) < end + 4 + length:
            return
        body = self._buffer[end + 4:end + 4 + length]
        self._buffer = self._buffer[end + 4 + length:]
        path = lines[0].split(" ")[1]
        asyncio.get_running_loop().create_task(self._forward(path, body))

    async def _forward(self, path: str, body: bytes) -> None:
        url = self._upstream.with_path(self._upstream.path.rstrip("/") + path[len("/v1"):])
        answer = await self._pool.post(url, body, {"Content-Type": "application/json"})
        assert self._transport is not None
        self._transport.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%b"
                              % (answer.status, len(answer.body), answer.body))


async def serve(port: int, upstream: str) -> None:
    pool = Http1Pool()
    server = await asyncio.get_running_loop().create_server(
        lambda: FloorHop(pool, URL(upstream)), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
