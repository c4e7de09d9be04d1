"""The built-in offline model: deterministic, so every governance feature can be seen.

It answers with the last user message, echoed back (so masking and restoring show), and
turns each line `CALL <tool_name> <json arguments>` into a proposed tool call instead.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from lictor.adapters.backends.base import Route

_CALL_LINE = re.compile(r"^\s*CALL\s+([A-Za-z_][\w.-]*)\s+(\{.*\})\s*$")
EMBEDDING_DIMS = 16
STREAM_PIECE = 7  # characters per streamed content chunk: small, so placeholders split


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
                )
    return ""


def answer(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """The model's reply text and proposed tool calls for a conversation."""
    text_lines: list[str] = []
    calls: list[dict[str, Any]] = []
    for line in _last_user_text(messages).split("\n"):
        m = _CALL_LINE.match(line)
        if m:
            try:
                args = json.loads(m.group(2))
            except ValueError:
                args = None
            if isinstance(args, dict):
                seed = f"{len(calls)}:{m.group(1)}:{m.group(2)}".encode()
                calls.append(
                    {
                        "id": "call_" + hashlib.sha256(seed).hexdigest()[:24],
                        "type": "function",
                        "function": {"name": m.group(1), "arguments": json.dumps(args)},
                    }
                )
                continue
        text_lines.append(line)
    text = "\n".join(text_lines).strip()
    return (text or None), calls


def _usage(messages: list[dict[str, Any]], text: str | None) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in messages)
    completion = len((text or "").split())
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class LocalModelBackend:
    """No network, no state: the same conversation always gets the same answer."""

    @staticmethod
    def _ident(body: dict[str, Any]) -> str:
        digest = hashlib.sha256(json.dumps(body["messages"], sort_keys=True).encode())
        return "chatcmpl-local-" + digest.hexdigest()[:20]

    async def complete(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        text, calls = answer(body["messages"])
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if calls:
            message["tool_calls"] = calls
        return {
            "id": self._ident(body),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": route.upstream_model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(body["messages"], text),
        }

    async def stream(self, body: dict[str, Any], route: Route) -> AsyncIterator[dict[str, Any]]:
        text, calls = answer(body["messages"])
        base = {
            "id": self._ident(body),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": route.upstream_model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            return {**base, "choices": [choice]}

        yield chunk({"role": "assistant", "content": ""})
        for i in range(0, len(text or ""), STREAM_PIECE):
            yield chunk({"content": (text or "")[i : i + STREAM_PIECE]})
        for k, call in enumerate(calls):
            args = call["function"]["arguments"]
            half = len(args) // 2
            head = {"index": k, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": args[:half]}}
            yield chunk({"tool_calls": [head]})
            yield chunk({"tool_calls": [{"index": k, "function": {"arguments": args[half:]}}]})
        yield chunk({}, "tool_calls" if calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            yield {**base, "choices": [], "usage": _usage(body["messages"], text)}

    async def embed(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        """A unit vector per input, from its hash: the same text always embeds the same."""
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": _vector(str(text))}
                for i, text in enumerate(inputs)]
        tokens = sum(len(str(text).split()) for text in inputs)
        return {"object": "list", "data": data, "model": route.upstream_model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    async def aclose(self) -> None:
        return None


def _vector(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    raw = hashlib.sha256(text.encode()).digest()
    values = [(raw[i % len(raw)] - 127.5) / 127.5 for i in range(dims)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]
