"""A bare pass-through proxy on lictor's HTTP stack (aiohttp server + client), no checks.

The ceiling for a Python proxy on this machine: what any gateway built on this stack
pays for the extra hop before doing any work. Run: python bench/bare_proxy.py --port P
--upstream http://127.0.0.1:Q/v1
"""

from __future__ import annotations

import argparse

import aiohttp
from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    base = args.upstream.rstrip("/")

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with request.app["session"].post(
            base + "/" + request.match_info["tail"], data=body,
            headers={"Content-Type": "application/json"}
        ) as resp:
            if resp.content_type != "text/event-stream":
                return web.Response(body=await resp.read(), status=resp.status,
                                    content_type="application/json")
            out = web.StreamResponse(status=resp.status,
                                     headers={"Content-Type": "text/event-stream"})
            await out.prepare(request)
            async for chunk in resp.content.iter_any():  # relayed as it comes, not buffered
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/{tail:.+}", chat)  # every protocol's path, forwarded as is
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
