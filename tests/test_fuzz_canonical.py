"""Fuzz target for the audit canonicalizer (RFC 8785): output is valid UTF-8 JSON that reads
back as the input, canonicalizing it again changes nothing, and key order never matters."""

from __future__ import annotations

import json
from typing import Any

from fuzz_strategies import json_values
from hypothesis import given
from hypothesis import strategies as st

from lictor.audit.canonical_json import canonicalize


def _same(back: Any, value: Any) -> bool:
    """Equal as JSON: a float like 5.2e16 is written as integer digits (ECMAScript), so it
    reads back as an int that converts to the same float."""
    if isinstance(value, float):
        return isinstance(back, int | float) and float(back) == value
    if isinstance(value, dict):
        return (isinstance(back, dict) and back.keys() == value.keys()
                and all(_same(back[k], value[k]) for k in value))
    if isinstance(value, list):
        return (isinstance(back, list) and len(back) == len(value)
                and all(_same(b, v) for b, v in zip(back, value, strict=True)))
    return bool(back == value) and type(back) is type(value)


@given(json_values)
def test_canonical_form_round_trips(value: Any) -> None:
    out = canonicalize(value)
    back = json.loads(out.decode("utf-8"))
    assert _same(back, value)
    assert canonicalize(back) == out


@given(st.dictionaries(st.text(max_size=6), json_values, max_size=8), st.randoms())
def test_key_order_does_not_matter(value: dict[str, Any], rnd: Any) -> None:
    items = list(value.items())
    rnd.shuffle(items)
    assert canonicalize(dict(items)) == canonicalize(value)


@given(st.text(max_size=10), st.sampled_from(["\ud800", "\udfff", "a\udc80b"]))
def test_lone_surrogates_are_refused_with_a_value_error(prefix: str, bad: str) -> None:
    try:
        canonicalize({"text": prefix + bad})
    except ValueError as exc:
        assert "surrogate" in str(exc)
    else:
        raise AssertionError("a lone surrogate was canonicalized")
