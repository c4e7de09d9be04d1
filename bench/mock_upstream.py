"""A minimal, fast OpenAI-compatible upstream for benchmarks (its own process).

It answers every chat completion (and Responses, Messages, embeddings request) with the
same small reply, so the benchmark measures
the proxy, not the model. It is also an OTLP/HTTP sink (`/v1/traces`, `/v1/metrics`:
accepted and counted, `GET /otlp` tells how many), so telemetry can be measured with its
real exporter. A request with `"stream": true` gets the reply as SSE chunks; the model
`bench-slow` pauses 200 ms after its first chunk, so a proxy that buffers a stream shows.
Run: python bench/mock_upstream.py --port 9100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl

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


RESPONSES_REPLY = json.dumps({
    "id": "resp_bench", "object": "response", "created_at": 0, "status": "completed",
    "model": "bench-upstream",
    "output": [{"id": "msg_bench", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "annotations": [],
                             "text": "Done: the report was sent to <EMAIL_1>."}]}],
    "usage": {"input_tokens": 200, "output_tokens": 10, "total_tokens": 210},
}).encode()
MESSAGES_REPLY = json.dumps({
    "id": "msg_bench", "type": "message", "role": "assistant", "model": "bench-upstream",
    "content": [{"type": "text", "text": "Done: the report was sent to <EMAIL_1>."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 200, "output_tokens": 10},
}).encode()
EMBEDDINGS_REPLY = json.dumps({
    "object": "list", "model": "bench-upstream",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.125] * 256}],
    "usage": {"prompt_tokens": 200, "total_tokens": 200},
}).encode()
REPLIES = {"/v1/chat/completions": REPLY, "/v1/responses": RESPONSES_REPLY,
           "/v1/messages": MESSAGES_REPLY, "/v1/embeddings": EMBEDDINGS_REPLY}


def _sse(delta: dict[str, object], finish: str | None = None) -> bytes:
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
             "model": "bench-upstream",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


WORDS = ["Done:", " the", " report", " was", " sent", " to", " <EMAIL_1>", "."]
FIRST_CHUNK = _sse({"role": "assistant", "content": ""})
REST_CHUNKS = b"".join([*(_sse({"content": w}) for w in WORDS), _sse({}, "stop"),
                        b"data: [DONE]\n\n"])
SLOW_PAUSE_S = 0.2
OTLP_RECEIVED = {"traces": 0, "metrics": 0, "bytes": 0}


async def chat(request: web.Request) -> web.StreamResponse:
    """The same small reply for each protocol (chat, Responses, Messages, embeddings); a
    streamed chat completion when asked."""
    body = await request.read()
    chat_stream = request.path == "/v1/chat/completions" and (
        b'"stream": true' in body or b'"stream":true' in body)
    if not chat_stream:
        return web.Response(body=REPLIES[request.path], content_type="application/json")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    await resp.write(FIRST_CHUNK)
    if b"bench-slow" in body:
        await asyncio.sleep(SLOW_PAUSE_S)
    await resp.write(REST_CHUNKS)
    await resp.write_eof()
    return resp


async def otlp(request: web.Request) -> web.Response:
    """An export, accepted: an empty body is an empty Export*ServiceResponse."""
    OTLP_RECEIVED["bytes"] += len(await request.read())
    OTLP_RECEIVED[request.path.rsplit("/", 1)[-1]] += 1
    return web.Response(body=b"", content_type="application/x-protobuf")


async def otlp_received(request: web.Request) -> web.Response:
    return web.json_response(OTLP_RECEIVED)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", help="serve HTTPS with this certificate (PEM) ...")
    parser.add_argument("--key", help="... and this private key (PEM)")
    args = parser.parse_args()
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    app = web.Application()
    for path in REPLIES:
        app.router.add_post(path, chat)
    app.router.add_post("/v1/traces", otlp)
    app.router.add_post("/v1/metrics", otlp)
    app.router.add_get("/otlp", otlp_received)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None,
                ssl_context=tls)


if __name__ == "__main__":
    main()
