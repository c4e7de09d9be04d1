"""The walker that reads wire values adapters do not model field by field."""

from __future__ import annotations

from lictor.adapters.content_walk import restore_strings, string_segments
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.pii.scanner import PiiMatch
from lictor.enforcement.types import Segment, Trust


def test_strings_in_wire_order_with_paths_and_opaque_keys_skipped() -> None:
    value = {"type": "x", "id": "i1", "signature": "s", "encrypted_content": "e",
             "a": ["p", {"b": "q", "call_id": "c"}, 7, None, ""], "z": "r"}
    out: list[Segment] = []
    string_segments(value, Trust.TOOL, ("input", 3), out, tool="t")
    assert [(s.text, s.path, s.trust, s.tool) for s in out] == [
        ("p", ("input", 3, "a", 0), Trust.TOOL, "t"),
        ("q", ("input", 3, "a", 1, "b"), Trust.TOOL, "t"),
        ("r", ("input", 3, "z"), Trust.TOOL, "t")]


def test_deep_nesting_does_not_exhaust_the_stack() -> None:
    value: object = "deep"
    for _ in range(50_000):
        value = [value]
    out: list[Segment] = []
    string_segments(value, Trust.TOOL, (), out)
    assert [s.text for s in out] == ["deep"]


def test_restore_copies_only_what_changed() -> None:
    vault = PlaceholderVault()
    masked = vault.mask("mail jane@example.com", [PiiMatch("EMAIL_ADDRESS", 5, 21, 1.0)])
    same = {"keep": ["a", {"b": "c"}]}
    value = {"type": "mcp_call", "id": masked, "out": [masked], "same": same}
    restored = restore_strings(value, vault)
    assert restored["out"] == ["mail jane@example.com"]
    assert restored["id"] == masked  # opaque: an id is never rewritten
    assert restored["same"] is same and value["out"] == [masked]
    assert restore_strings(same, vault) is same
