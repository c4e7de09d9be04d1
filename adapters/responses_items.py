"""Responses API items other than messages and function calls: which of their fields a model
reads or an agent runs, and with what trust.

A remote MCP server's output, a code run's logs, file search results and shell output are
third-party text (TOOL trust: the injection rules read it); calls and code the model wrote are
ASSISTANT text, tagged with the tool they drive so argument rules (shell, eval) apply. The
same items come back in a later request's `input`, so both directions read them alike. Item
types lictor does not know are read whole as TOOL text: nothing is forwarded unread.
"""

from __future__ import annotations

import json
from typing import Any

from lictor.adapters.content_walk import Path, string_segments
from lictor.adapters.openai_chat import tool_call_from_wire
from lictor.enforcement.types import Segment, ToolCall, Trust

# item type -> (field, trust, tool the field drives: a name, "name" for the item's own
# `name`, or "" when it is not a call's input)
_ITEM_FIELDS: dict[str, tuple[tuple[str, Trust, str], ...]] = {
    "custom_tool_call": (("input", Trust.ASSISTANT, "name"),),
    "custom_tool_call_output": (("output", Trust.TOOL, ""),),
    "mcp_call": (("arguments", Trust.ASSISTANT, "name"), ("output", Trust.TOOL, ""),
                 ("error", Trust.TOOL, "")),
    "mcp_approval_request": (("arguments", Trust.ASSISTANT, "name"),),
    "mcp_approval_response": (("reason", Trust.USER, ""),),
    "mcp_list_tools": (("tools", Trust.TOOL, ""), ("error", Trust.TOOL, "")),
    "local_shell_call": (("action", Trust.ASSISTANT, "local_shell"),),
    "local_shell_call_output": (("output", Trust.TOOL, ""),),
    "shell_call": (("action", Trust.ASSISTANT, "shell"),),
    "shell_call_output": (("output", Trust.TOOL, ""),),
    "apply_patch_call": (("operation", Trust.ASSISTANT, "apply_patch"),),
    "apply_patch_call_output": (("output", Trust.TOOL, ""),),
    "computer_call": (("action", Trust.ASSISTANT, "computer_use_preview"),
                      ("pending_safety_checks", Trust.TOOL, "")),
    "computer_call_output": (("output", Trust.TOOL, ""),
                             ("acknowledged_safety_checks", Trust.TOOL, "")),
    "code_interpreter_call": (("code", Trust.ASSISTANT, "code_interpreter"),
                              ("outputs", Trust.TOOL, "")),
    "web_search_call": (("action", Trust.ASSISTANT, ""),),
    "file_search_call": (("queries", Trust.ASSISTANT, ""), ("results", Trust.TOOL, "")),
    "reasoning": (("summary", Trust.ASSISTANT, ""), ("content", Trust.ASSISTANT, "")),
    "image_generation_call": (("revised_prompt", Trust.ASSISTANT, ""),),  # `result`: an image
    "item_reference": (),  # an id only
}
# Message content parts that are media, not text: not read (see docs/security.md).
MEDIA_PARTS = frozenset({"input_image", "input_file", "input_audio"})


def item_segments(item: dict[str, Any], path: Path, out: list[Segment]) -> None:
    """Segments for an item of any type but `message`, `function_call` and
    `function_call_output` (which the adapter reads itself)."""
    fields = _ITEM_FIELDS.get(str(item.get("type")))
    if fields is None:  # a type newer than lictor: every string, as third-party text
        string_segments(item, Trust.TOOL, path, out)
        return
    for field, trust, tool in fields:
        if field in item:
            name = str(item.get("name") or "?") if tool == "name" else tool
            string_segments(item[field], trust, (*path, field), out, tool=name)


def part_segments(part: dict[str, Any], trust: Trust, path: Path, out: list[Segment]) -> None:
    """A message content part that is neither plain text nor media: a `refusal`, or a part
    type newer than lictor (read whole, with the message's trust)."""
    if part["type"] not in MEDIA_PARTS:  # a refusal's text is its `refusal` string
        string_segments(part, trust, path, out)


# Tools the agent runs, though not `function`s: offered by name and their calls authorized
# like function calls. Tool type -> the name Cedar sees (None: the tool's own `name`).
CLIENT_TOOLS: dict[str, str | None] = {
    "function": None, "custom": None, "local_shell": "local_shell", "shell": "shell",
    "apply_patch": "apply_patch", "computer_use_preview": "computer_use_preview",
}
# Their call items -> the field holding what the agent is asked to run.
CALL_ITEMS: dict[str, str] = {
    "function_call": "arguments", "custom_tool_call": "input", "local_shell_call": "action",
    "shell_call": "action", "apply_patch_call": "operation", "computer_call": "action",
}
_CALL_TOOL = {"local_shell_call": "local_shell", "shell_call": "shell",
              "apply_patch_call": "apply_patch", "computer_call": "computer_use_preview"}


def client_tool_name(tool: dict[str, Any]) -> str | None:
    """The name Cedar authorizes an agent-run tool by; None for a provider-run tool."""
    kind = tool.get("type")
    if kind not in CLIENT_TOOLS:
        return None
    fixed = CLIENT_TOOLS[kind]
    name = fixed if fixed is not None else tool.get("name")
    return name if isinstance(name, str) and name else None


def client_call(item: dict[str, Any], payload: Any = None) -> ToolCall:
    """A call item the agent would run, as a ToolCall (`payload`: what it runs, when the
    item's own field is not complete yet, as while streaming)."""
    kind = str(item.get("type"))
    value = item.get(CALL_ITEMS[kind]) if payload is None else payload
    if kind == "function_call":
        return tool_call_from_wire(
            {"id": item.get("call_id"), "function": {"name": item.get("name"),
                                                     "arguments": value}},
            str(item.get("id") or ""))
    return ToolCall(
        name=_CALL_TOOL.get(kind) or str(item.get("name") or ""),
        arguments=value if isinstance(value, dict) else {"input": value},
        call_id=str(item.get("call_id") or item.get("id") or ""),
        raw_arguments=value if isinstance(value, str) else json.dumps(value, ensure_ascii=False),
    )
