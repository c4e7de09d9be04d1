"""The Responses API served by a Chat Completions backend (the local model, LiteLLM Router):
the answer half. The request is translated to chat by `responses_to_chat`; the answer
(whole or streamed) comes back to a Response here, with its event order:
response.created, response.in_progress, output items (added, parts, deltas, done),
response.completed, each with a sequence number.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any


def _ids(chat_id: Any) -> str:
    return hashlib.sha256(str(chat_id).encode()).hexdigest()[:24]


def _usage(usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    inp, out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    return {"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": inp + out}


def _response(ident: str, model: str, status: str, output: list[dict[str, Any]],
              usage: Any) -> dict[str, Any]:
    return {"id": "resp_" + ident, "object": "response", "created_at": int(time.time()),
            "status": status, "model": model, "output": output, "usage": usage,
            "error": None, "incomplete_details": None, "instructions": None, "metadata": {},
            "parallel_tool_calls": True, "temperature": None, "top_p": None,
            "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}}}


def _message(ident: str, text: str) -> dict[str, Any]:
    return {"id": "msg_" + ident, "type": "message", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def _call(ident: str, k: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": f"fc_{ident}_{k}", "type": "function_call", "call_id": call_id,
            "name": name, "arguments": arguments, "status": "completed"}


def from_chat(resp: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as the equivalent Response."""
    ident = _ids(resp.get("id"))
    message = ((resp.get("choices") or [{}])[0]).get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(_message(ident, message["content"]))
    for k, call in enumerate(message.get("tool_calls") or []):
        fn = call.get("function") or {}
        output.append(_call(ident, k, str(call.get("id")), str(fn.get("name")),
                            str(fn.get("arguments") or "")))
    return _response(ident, model, "completed", output, _usage(resp.get("usage")))


async def events_from_chat(chunks: AsyncIterator[dict[str, Any]],
                           model: str) -> AsyncIterator[dict[str, Any]]:
    """A chat completion stream as the equivalent Responses event stream."""
    seq = 0

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        nonlocal seq
        seq += 1
        return {"type": kind, "sequence_number": seq - 1, **fields}

    ident, text, output = "", "", []
    calls: dict[int, dict[str, str]] = {}
    usage = None
    async for chunk in chunks:
        if not ident:
            ident = _ids(chunk.get("id"))
            first = _response(ident, model, "in_progress", [], None)
            yield event("response.created", response=first)
            yield event("response.in_progress", response=first)
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                at = {"item_id": "msg_" + ident, "output_index": 0, "content_index": 0}
                if not text:
                    yield event("response.output_item.added", output_index=0, item={
                        **_message(ident, ""), "status": "in_progress", "content": []})
                    yield event("response.content_part.added", **at, part={
                        "type": "output_text", "text": "", "annotations": []})
                text += delta["content"]
                yield event("response.output_text.delta", **at, delta=delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(int(call.get("index", 0)), {"id": "", "name": "", "a": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] += fn.get("name") or ""
                slot["a"] += fn.get("arguments") or ""
    if text:
        at = {"item_id": "msg_" + ident, "output_index": 0, "content_index": 0}
        part = {"type": "output_text", "text": text, "annotations": []}
        yield event("response.output_text.done", **at, text=text)
        yield event("response.content_part.done", **at, part=part)
        output.append(_message(ident, text))
        yield event("response.output_item.done", output_index=0, item=output[-1])
    for k, (_, c) in enumerate(sorted(calls.items())):
        oi, item = len(output), _call(ident, k, c["id"], c["name"], c["a"])
        at = {"item_id": item["id"], "output_index": oi}
        yield event("response.output_item.added", output_index=oi,
                    item={**item, "arguments": "", "status": "in_progress"})
        yield event("response.function_call_arguments.delta", **at, delta=c["a"])
        yield event("response.function_call_arguments.done", **at, arguments=c["a"])
        output.append(item)
        yield event("response.output_item.done", output_index=oi, item=item)
    yield event("response.completed",
                response=_response(ident, model, "completed", output, _usage(usage)))
