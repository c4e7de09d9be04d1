"""Every string inside a wire value an adapter does not read field by field.

Provider-run tools' items (an MCP call's output, a code run's logs, search results) and item
or block types newer than lictor carry text a model reads and an agent sees. Forwarding them
unread would send personal data upstream unmasked and let injected instructions through
unscanned, so their strings become segments too. Fields that are not text a model reads
(ids, types, signatures, encrypted or base64 payloads) are left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import Segment, Trust

Path = tuple[str | int, ...]

# Keys whose values are identifiers, enums or opaque payloads, never prose a model reads.
OPAQUE_KEYS = frozenset({
    "id", "type", "status", "role", "call_id", "item_id", "tool_use_id", "output_index",
    "signature", "encrypted_content", "encrypted_index", "image_url", "file_id", "file_data",
    "media_type", "mime_type", "container_id", "server_label", "approval_request_id",
    "cache_control",
})


def string_segments(value: Any, trust: Trust, path: Path, out: list[Segment],
                    tool: str = "") -> None:
    """Append a segment for each string under `value` (at `path` in the wire message),
    skipping `OPAQUE_KEYS`; iterative, so a deeply nested value cannot exhaust the stack."""
    stack: list[tuple[Any, Path]] = [(value, path)]
    while stack:  # children pushed last-first, so segments come in wire order
        item, where = stack.pop()
        if isinstance(item, str):
            if item:
                out.append(Segment(item, trust, where, tool=tool))
        elif isinstance(item, dict):
            stack.extend(reversed([(v, (*where, k)) for k, v in item.items()
                                   if k not in OPAQUE_KEYS]))
        elif isinstance(item, list):
            stack.extend(reversed([(v, (*where, k)) for k, v in enumerate(item)]))


def restore_strings(value: Any, vault: PlaceholderVault,
                    skip: frozenset[str] = OPAQUE_KEYS) -> Any:
    """`value` with the vault's placeholders put back in every string outside the `skip`
    keys (none for a tool call's JSON input, whose keys are all the caller's); containers
    are copied only where something changed."""
    if isinstance(value, str):
        return vault.restore(value) if "<" in value else value
    if isinstance(value, dict):
        changed = {k: restore_strings(v, vault, skip) for k, v in value.items() if k not in skip}
        if all(changed[k] is value[k] for k in changed):
            return value
        return {**value, **changed}
    if isinstance(value, list):
        items = [restore_strings(v, vault, skip) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def audit_items(texts: Iterable[tuple[str | None, str]]) -> dict[str, Any]:
    """The `items` of an audited answer: texts besides its content and tool calls (a
    refusal, a provider-run tool's result), as (kind, text) pairs grouped by kind in the
    order first seen (kind None: audited already); absent when there are none."""
    items: dict[str, list[str]] = {}
    for kind, text in texts:
        if kind is not None:
            items.setdefault(kind, []).append(text)
    return {"items": [{"type": k, "texts": v} for k, v in items.items()]} if items else {}
