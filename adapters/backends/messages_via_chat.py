"""Anthropic Messages served by a Chat Completions backend (the local model, LiteLLM Router):
the answer half. The request is translated to chat by `messages_to_chat`; the answer
(whole or streamed) comes back to Messages here, with Anthropic's event order:
message_start, content blocks (start, deltas, stop), message_delta, message_stop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens",
                "content_filter": "refusal"}


def _ident(chat_id: Any) -> str:
    return "msg_" + hashlib.sha256(str(chat_id).encode()).hexdigest()[:24]


def _usage(usage: Any) -> dict[str, int]:
    usage = usage if isinstance(usage, dict) else {}
    return {"input_tokens": int(usage.get("prompt_tokens") or 0),
            "output_tokens": int(usage.get("completion_tokens") or 0)}


def _input(arguments: Any) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {"value": value}


def from_chat(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as the equivalent Messages response."""
    choice = (resp.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"),
                        "input": _input(fn.get("arguments"))})
    return {"id": _ident(resp.get("id")), "type": "message", "role": "assistant",
            "model": model, "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None, "usage": _usage(resp.get("usage"))}


async def events_from_chat(chunks: AsyncIterator[dict[str, Any]],
                           model: str) -> AsyncIterator[dict[str, Any]]:
    """A chat completion stream as the equivalent Messages event stream."""
    started = text_open = False
    calls: dict[int, dict[str, Any]] = {}
    finish, usage = "stop", None
    async for chunk in chunks:
        if not started:
            started = True
            yield {"type": "message_start", "message": {
                "id": _ident(chunk.get("id")), "type": "message", "role": "assistant",
                "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0}}}
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if not text_open:
                    text_open = True
                    yield {"type": "content_block_start", "index": 0,
                           "content_block": {"type": "text", "text": ""}}
                yield {"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": delta["content"]}}
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(int(call.get("index", 0)), {"id": "", "name": "", "a": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += fn.get("name") or ""
                slot["a"] += fn.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    if text_open:
        yield {"type": "content_block_stop", "index": 0}
    for k, (_, call) in enumerate(sorted(calls.items()), start=int(text_open)):
        yield {"type": "content_block_start", "index": k, "content_block": {
            "type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}}
        yield {"type": "content_block_delta", "index": k,
               "delta": {"type": "input_json_delta", "partial_json": call["a"]}}
        yield {"type": "content_block_stop", "index": k}
    yield {"type": "message_delta", "delta": {"stop_reason": STOP_REASONS.get(finish, "end_turn"),
                                              "stop_sequence": None},
           "usage": {"output_tokens": _usage(usage)["output_tokens"]}}
    yield {"type": "message_stop"}
