"""A minimal, fast OpenAI-compatible upstream for benchmarks (its own process).

It answers every chat completion with the same small reply, so the benchmark measures
the proxy, not the model. Run: python bench/mock_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

REPLY = json.dumps({
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 0,
    "model": "bench-upstream",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Done: the report was sent to <EMAIL_1>."},
        "finish_reason": "stop",
    }],
    "usage": {"prompt_tokens": 200, "completion_tokens": 10, "total_tokens": 210},
}).encode()


async def chat(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=REPLY, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
