"""Which strings of an Anthropic content block a model reads, and with what trust.

Requests and answers both carry blocks beyond text and tool uses: documents, search
results, thinking, and the calls and results of tools the provider runs itself (web
search and fetch, code execution, a remote MCP server), plus types newer than lictor.
Each is read here so none reaches the model, or the agent, unmasked and unscanned.
Media (images, base64, URL and file sources) and opaque payloads (signatures, encrypted
content, redacted thinking) are not text: they are not read, so a false match inside a
base64 file can never corrupt it.
"""

from __future__ import annotations

import json
from typing import Any

from lictor.adapters.content_walk import Path, restore_strings, string_segments
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Segment, Trust

JSON_KEY = "input"  # a segment whose path ends here holds a JSON object, serialized

# Calls the provider makes itself (or through the MCP connector), with a JSON `input`.
PROVIDER_CALLS = frozenset({"server_tool_use", "mcp_tool_use"})
# Blocks that are media or opaque: nothing in them is text a model reads.
UNREAD = frozenset({"image", "redacted_thinking"})
# Source types whose payload (`data`, `url`) is a file or a link, never prose.
MEDIA_SOURCES = frozenset({"base64", "url", "file"})
_PAYLOAD_KEYS = frozenset({"data", "url"})


def kind_of(value: Any) -> str:
    """A block's (or source's) `type`, or "" when it has none that is a string."""
    kind = value.get("type") if isinstance(value, dict) else None
    return kind if isinstance(kind, str) else ""


def provider_call(block: dict[str, Any], path: Path, out: list[Segment]) -> None:
    """A `server_tool_use` / `mcp_tool_use` input: the model's arguments, as tool_use."""
    name = str(block.get("name") or "?")
    value = block.get("input")
    if isinstance(value, dict):
        out.append(Segment(json.dumps(value, ensure_ascii=False), Trust.ASSISTANT,
                           (*path, JSON_KEY), tool=name))
    else:  # not the documented shape: every string it holds, in place
        string_segments(value, Trust.ASSISTANT, (*path, JSON_KEY), out, tool=name)


def cited(block: dict[str, Any], path: Path, out: list[Segment]) -> None:
    """A text block's citations: `cited_text` quotes a document or web page (third-party
    text, which a web search's result block carries only encrypted)."""
    strings(block["citations"], Trust.TOOL, (*path, "citations"), out)


def read_block(block: dict[str, Any], trust: Trust, path: Path, out: list[Segment]) -> None:
    """Segments for a block other than text, tool_use and tool_result (the caller's fast
    path): a document keeps `trust`; thinking is the model's own; a provider-run call is the
    model's arguments; search results, provider-run tool results and unknown types are
    third-party text (`Trust.TOOL`)."""
    kind = kind_of(block)
    if kind in UNREAD:
        return
    if kind == "thinking":
        if isinstance(block.get("thinking"), str) and block["thinking"]:
            out.append(Segment(block["thinking"], Trust.ASSISTANT, (*path, "thinking")))
    elif kind in PROVIDER_CALLS:
        provider_call(block, path, out)
    else:
        strings(block, trust if kind == "document" else Trust.TOOL, path, out)


def strings(value: Any, trust: Trust, path: Path, out: list[Segment]) -> None:
    """`content_walk.string_segments`, minus media payloads nested anywhere in `value`
    (an image in an MCP result, a PDF a web fetch returned)."""
    start = len(out)
    string_segments(value, trust, path, out)
    if any(s.path[-1] in _PAYLOAD_KEYS for s in out[start:]):
        out[start:] = [s for s in out[start:] if not _media(value, s.path[len(path):])]


def _media(value: Any, rel: Path) -> bool:
    """Whether the string at `rel` under `value` (a `data` or `url`) is the payload of a
    base64/url/file source, an image or a redacted-thinking block."""
    for key in rel[:-1]:
        value = value[key]
    return kind_of(value) in MEDIA_SOURCES | UNREAD


def restore_json(value: Any, vault: PlaceholderVault) -> Any:
    """A tool call's JSON input with the placeholders in all its strings put back (under
    any key: they are the model's arguments; quotes stay valid)."""
    return restore_strings(value, vault, frozenset())


def restored(block: dict[str, Any], vault: PlaceholderVault) -> dict[str, Any]:
    """`block` as the agent gets it: placeholders put back in every string it holds (in a
    provider-run call's `input`, under any key, as in a tool use's)."""
    out = restore_strings(block, vault)
    if kind_of(block) in PROVIDER_CALLS and "input" in block:
        return {**out, "input": restore_json(block["input"], vault)}
    return out
