"""Strict JSON for bodies agents and approvers send: one meaning per byte string, or a reason.

Stricter than `json.loads` where leniency lets two parsers disagree: UTF-8 only (no UTF-16
sniffing), no duplicate keys, no NaN/Infinity, no lone surrogates (not Unicode; the audit
canonicalizer refuses them), and a nesting limit instead of a RecursionError.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # far deeper than any API body; shallow enough for every recursive walker
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_INNERMOST = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class JsonBodyError(ValueError):
    """Why a body is not acceptable JSON, in words for the client."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        dupe = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise JsonBodyError(f"the key {dupe!r} appears twice in one object")
    return value


def _no_constants(name: str) -> Any:
    raise JsonBodyError(f"{name} is not JSON")


def _check_unicode(value: Any) -> None:
    """Refuse strings (keys too) that hold a lone surrogate; depth is already bounded."""
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise JsonBodyError("a string holds a lone surrogate (\\ud800-\\udfff), "
                                "which is not valid Unicode") from None
    elif kind is dict:
        for key, item in value.items():
            _check_unicode(key)
            _check_unicode(item)
    elif kind is list:
        for item in value:
            _check_unicode(item)


def _too_deep(value: Any, depth: int = 1) -> bool:
    if depth > MAX_DEPTH:
        return True
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if (kind is dict or kind is list) and _too_deep(item, depth + 1):
            return True
    return False


def _brackets_shallow(raw: bytes) -> bool:
    """A C-speed bound: keep only the brackets, peel innermost pairs once per level. True
    means surely shallow; False means deep, or brackets inside strings (then walk)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return True
    left = raw.translate(None, _NOT_BRACKETS)
    for _ in range(MAX_DEPTH):
        if not left:
            return True
        peeled = _INNERMOST.sub(b"", left)
        if len(peeled) == len(left):
            return False
        left = peeled
    return not left


def parse_json_bytes(raw: bytes) -> Any:
    """The value of a UTF-8 JSON document, or `JsonBodyError` saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise JsonBodyError(f"{exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise JsonBodyError(f"the body is nested more than {MAX_DEPTH} levels deep") from None
    # Deep or surrogate-bearing bodies are rare: cheap byte-level tests before any walk.
    if type(value) in (dict, list) and not _brackets_shallow(raw) and _too_deep(value):
        raise JsonBodyError(f"the body is nested more than {MAX_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(raw):
        _check_unicode(value)
    return value
