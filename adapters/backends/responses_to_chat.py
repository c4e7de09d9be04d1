"""A Responses API request as the Chat Completions request a chat backend (the local
model, LiteLLM Router) takes: what chat carries is translated, the rest refused.

Translated: messages (text, `input_image` by URL or data URL, `input_file` inline or by
file id, in user turns; the media of a `function_call_output` follow the tool messages in
a user message, as chat's tool messages carry text only); function calls and their
outputs; function tools, `tool_choice` and `parallel_tool_calls`; `text.format` (structured
output) as `response_format`, `text.verbosity`, `reasoning.effort`.

Left out: the `reasoning` items of earlier turns (a chat model cannot take them back, and
they carry none of the user's content), and settings about storage and delivery (`store`,
`include`, `metadata`, `truncation`, ...).

Refused (see `chat_request.refuser`): every other item type (the calls and outputs of
custom, shell, computer, MCP and provider-run tools, `item_reference`, types newer than
lictor), images by file id, files by URL, media in system and assistant turns, any tool
but `function` (hosted tools `web_search`, `file_search`, `mcp`, `code_interpreter`, ...,
and the agent-run `custom`, `shell`, `apply_patch`), and state held at OpenAI
(`previous_response_id`, `conversation`, a stored `prompt`). Hosted tools a policy refused
are gone before this runs.
"""

from __future__ import annotations

from typing import Any

from lictor.adapters.backends.chat_request import (
    ChatMessages,
    Refuse,
    image_part,
    message,
    text_part,
)

Parts = list[dict[str, Any]]
TEXT_PARTS = ("input_text", "output_text", "text")
STATEFUL = ("previous_response_id", "conversation", "prompt")


def _part(part: Any, where: str, refuse: Refuse, media: bool) -> Parts:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in TEXT_PARTS:
        return [text_part(str(part.get("text", "")))]
    if kind == "refusal":
        return [text_part(str(part.get("refusal", "")))]
    if not media and kind in ("input_image", "input_file"):
        refuse(f"an `{kind}` part outside a user turn", where)
        return []
    if kind == "input_image" and isinstance(part.get("image_url"), str):
        return [image_part(part["image_url"], part.get("detail"))]
    if kind == "input_file" and isinstance(part.get("file_data"), str):
        return [{"type": "file", "file": {"file_data": part["file_data"],
                                          "filename": str(part.get("filename") or "file")}}]
    if kind == "input_file" and isinstance(part.get("file_id"), str):
        return [{"type": "file", "file": {"file_id": part["file_id"]}}]
    given = [k for k in ("file_id", "file_url") if part.get(k) is not None] if isinstance(
        part, dict) else []
    refuse(f"an `{kind}` part" + (f" given by `{given[0]}`" if given else ""), where)
    return []


def _parts(content: Any, where: str, refuse: Refuse, media: bool) -> Parts:
    if isinstance(content, str):
        return [text_part(content)]
    if not isinstance(content, list):
        return []
    return [p for j, part in enumerate(content)
            for p in _part(part, f"{where}[{j}]", refuse, media)]


def _tools(body: dict[str, Any], refuse: Refuse, chat: dict[str, Any]) -> None:
    tools = []
    for k, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function":
            refuse(f"the `{tool.get('type')}` tool", f"tools[{k}]")
            continue
        function = {"name": tool["name"], "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {}}
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        tools.append({"type": "function", "function": function})
    if not tools:
        return
    chat["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        chat["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    elif isinstance(choice, str):
        chat["tool_choice"] = choice
    elif choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else choice
        refuse(f"a tool_choice of type {kind!r}", "tool_choice")
    if body.get("parallel_tool_calls") is not None:
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]


def _settings(body: dict[str, Any], refuse: Refuse, chat: dict[str, Any]) -> None:
    """Structured output, verbosity and reasoning effort, where chat has them too."""
    text = body.get("text")
    text = text if isinstance(text, dict) else {}
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else fmt
    if kind == "json_schema" and isinstance(fmt, dict):
        schema = {k: fmt[k] for k in ("name", "description", "schema", "strict")
                  if fmt.get(k) is not None}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
    elif kind not in (None, "text"):
        refuse(f"a text format of type {kind!r}", "text.format")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]


def to_chat(body: dict[str, Any], refuse: Refuse) -> dict[str, Any]:
    """A Responses request as the equivalent chat completion request; what chat cannot
    carry goes to `refuse`."""
    for field in STATEFUL:
        if body.get(field):
            refuse(f"`{field}` (state kept at OpenAI)", field)
    out = ChatMessages()
    if isinstance(body.get("instructions"), str):
        out.add({"role": "system", "content": body["instructions"]})
    elif body.get("instructions") is not None:
        refuse("`instructions` as input items", "instructions")
    items = body["input"]
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    for i, item in enumerate(items):
        kind, where = item.get("type", "message"), f"input[{i}]"
        if kind == "message":
            role = item["role"]
            parts = _parts(item.get("content"), f"{where}.content", refuse, role == "user")
            out.add(message(role, parts))
        elif kind == "function_call":
            out.call({"id": item.get("call_id"), "type": "function", "function": {
                "name": item.get("name"), "arguments": item.get("arguments")}})
        elif kind == "function_call_output":
            parts = _parts(item.get("output"), f"{where}.output", refuse, True)
            out.tool(item.get("call_id"), [p["text"] for p in parts if p["type"] == "text"],
                     [p for p in parts if p["type"] != "text"])
        elif kind != "reasoning":  # earlier reasoning: a chat model cannot take it back
            refuse(f"a `{kind}` item", where)
    chat: dict[str, Any] = {"model": body["model"], "messages": out.done()}
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"),
                         ("top_p", "top_p")):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    _tools(body, refuse, chat)
    _settings(body, refuse, chat)
    return chat
