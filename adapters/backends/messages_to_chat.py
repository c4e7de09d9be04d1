"""An Anthropic Messages request as the Chat Completions request a chat backend (the local
model, LiteLLM Router) takes: what chat carries is translated, the rest refused.

Translated: text; images (base64 as a data URL, or by URL) in user turns and in tool
results (whose media follow the tool messages in a user message: chat's tool messages
carry text only); plain-text documents and search results, as text with their title and
source; a base64 PDF document, as chat's `file` part; custom tools and `tool_choice`;
`output_format` (structured output) as `response_format`.

Left out: the `thinking` and `redacted_thinking` blocks of earlier assistant turns (a chat
model cannot take them back, and they carry none of the user's content), `cache_control`
(a caching hint), the `thinking` setting and `top_k` (how the model answers, not what it
reads; chat has no such settings).

Refused (see `chat_request.refuser`): any other block (server tool calls and their
results, MCP tool blocks, images by file id, documents by URL or file id, types newer than
lictor), server tools and Anthropic-defined tools (`web_search_*`, `code_execution_*`,
`bash_*`, `text_editor_*`: their schemas are built into Claude, a chat model has none),
`mcp_servers` and `container`. Hosted tools a policy refused are gone before this runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lictor.adapters.backends.chat_request import (
    ChatMessages,
    Refuse,
    file_part,
    image_part,
    message,
    text_part,
)

Parts = list[dict[str, Any]]


def _source(block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    source = block.get("source")
    source = source if isinstance(source, dict) else {}
    return str(source.get("type")), source


def _image(block: dict[str, Any], where: str, refuse: Refuse) -> Parts:
    kind, source = _source(block)
    if (kind == "base64" and isinstance(source.get("data"), str)
            and isinstance(source.get("media_type"), str)):
        return [image_part(f"data:{source['media_type']};base64,{source['data']}")]
    if kind == "url" and isinstance(source.get("url"), str):
        return [image_part(source["url"])]
    refuse(f"an `image` block with a `{kind}` source", where)
    return []


def _document(block: dict[str, Any], where: str, refuse: Refuse) -> Parts:
    kind, source = _source(block)
    title = block.get("title") if isinstance(block.get("title"), str) else ""
    head = [f"Document: {title}"] if title else []
    if isinstance(block.get("context"), str):
        head.append(block["context"])
    if kind == "text" and isinstance(source.get("data"), str):
        return [text_part("\n\n".join([*head, source["data"]]))]
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [text_part("\n\n".join([*head, inner]))]
        parts = _blocks(inner if isinstance(inner, list) else [], f"{where}.source.content",
                        refuse, {"text": _text, "image": _image})
        return [text_part("\n\n".join(head)), *parts] if head else parts
    if (kind == "base64" and source.get("media_type") == "application/pdf"
            and isinstance(source.get("data"), str)):
        return [file_part(f"data:application/pdf;base64,{source['data']}",
                          title or "document.pdf")]
    refuse(f"a `document` block with a `{kind}` source of type {source.get('media_type')!r}",
           where)
    return []


def _search_result(block: dict[str, Any], where: str, refuse: Refuse) -> Parts:
    head = f"Search result: {block.get('title') or ''} ({block.get('source') or ''})"
    content = block.get("content")
    texts = [content] if isinstance(content, str) else [p["text"] for p in _blocks(
        content if isinstance(content, list) else [], f"{where}.content", refuse,
        {"text": _text})]
    return [text_part("\n\n".join([head, *texts]))]


def _text(block: dict[str, Any], where: str, refuse: Refuse) -> Parts:
    return [text_part(str(block.get("text", "")))]


Convert = Callable[[dict[str, Any], str, Refuse], Parts]
USER_BLOCKS: dict[str, Convert] = {"text": _text, "image": _image, "document": _document,
                                   "search_result": _search_result}


def _blocks(blocks: list[Any], where: str, refuse: Refuse,
            kinds: dict[str, Convert] = USER_BLOCKS) -> Parts:
    return [part for j, block in enumerate(blocks)
            for part in _block(block, f"{where}[{j}]", refuse, kinds)]


def _block(block: Any, where: str, refuse: Refuse,
           kinds: dict[str, Convert] = USER_BLOCKS) -> Parts:
    kind = block.get("type") if isinstance(block, dict) else None
    convert = kinds.get(str(kind))
    if convert is None:
        refuse(f"a `{kind}` block", where)
        return []
    return convert(block, where, refuse)


def _tool_result(block: dict[str, Any], where: str, refuse: Refuse,
                 out: ChatMessages) -> None:
    content = block.get("content")
    if isinstance(content, list):
        parts = _blocks(content, f"{where}.content", refuse)
    else:
        parts = [text_part(content)] if isinstance(content, str) else []
    out.tool(block.get("tool_use_id"), [p["text"] for p in parts if p["type"] == "text"],
             [p for p in parts if p["type"] != "text"])


def _message(msg: dict[str, Any], i: int, refuse: Refuse, out: ChatMessages) -> None:
    role, content = msg["role"], msg.get("content")
    if isinstance(content, str):
        out.add({"role": role, "content": content})
        return
    parts: Parts = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content or []):
        kind, where = block.get("type"), f"messages[{i}].content[{j}]"
        if role == "assistant" and kind in ("thinking", "redacted_thinking"):
            continue  # the model's own reasoning: a chat model cannot take it back
        if role == "assistant" and kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function", "function": {
                "name": block.get("name"), "arguments": json.dumps(block.get("input"))}})
        elif role == "user" and kind == "tool_result":
            _tool_result(block, where, refuse, out)
        elif role == "user" or kind == "text":
            parts += _block(block, where, refuse)
        else:
            refuse(f"a `{kind}` block in an assistant turn", where)
    if parts or calls:
        chat = message(role, parts) if parts else {"role": role, "content": None}
        if calls:
            chat["tool_calls"] = calls
        out.add(chat)


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def _tools(body: dict[str, Any], refuse: Refuse, chat: dict[str, Any]) -> None:
    tools = []
    for k, tool in enumerate(body.get("tools") or []):
        kind = tool.get("type", "custom")
        if kind != "custom":
            refuse(f"the `{kind}` tool", f"tools[{k}]")
            continue
        tools.append({"type": "function", "function": {
            "name": tool["name"], "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {}}})
    if not tools:
        return
    chat["tools"] = tools
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
        if isinstance(choice, dict) and choice.get("disable_parallel_tool_use"):
            chat["parallel_tool_calls"] = False


def _output_format(body: dict[str, Any], refuse: Refuse, chat: dict[str, Any]) -> None:
    """Structured output (`output_format`, or `output_config.format`): chat's
    `response_format` with the same JSON schema, strict as Anthropic's always is."""
    config = body.get("output_config")
    where = "output_format"
    fmt = body.get("output_format")
    if fmt is None and isinstance(config, dict) and config.get("format") is not None:
        fmt, where = config["format"], "output_config.format"
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        refuse(f"an output format of type {fmt.get('type') if isinstance(fmt, dict) else fmt!r}",
               where)
        return
    chat["response_format"] = {"type": "json_schema", "json_schema": {
        "name": "output", "schema": fmt.get("schema") or {}, "strict": True}}


def to_chat(body: dict[str, Any], refuse: Refuse) -> dict[str, Any]:
    """A Messages request as the equivalent chat completion request; what chat cannot
    carry goes to `refuse`."""
    for field in ("mcp_servers", "container"):
        if body.get(field):
            refuse(f"`{field}`", field)
    out = ChatMessages()
    if body.get("system"):
        system = body["system"]
        out.add(message("system", _blocks(system, "system", refuse, {"text": _text}))
                if isinstance(system, list) else {"role": "system", "content": system})
    for i, msg in enumerate(body["messages"]):
        _message(msg, i, refuse, out)
    chat: dict[str, Any] = {"model": body["model"], "messages": out.done()}
    for ours, theirs in (("max_tokens", "max_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p"), ("stop_sequences", "stop")):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    _tools(body, refuse, chat)
    _output_format(body, refuse, chat)
    return chat
