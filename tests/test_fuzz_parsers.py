"""Fuzz targets for the protocol parsers: any input is parsed or refused with the protocol's
own error, never an unexpected exception (which would be a 500 and an unaudited request)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fuzz_strategies import chat_requests, json_values
from hypothesis import given
from hypothesis import strategies as st

from lictor.adapters import mcp, openai_chat
from lictor.adapters.errors import ProtocolError
from lictor.adapters.mcp import JsonRpcError
from lictor.enforcement.types import Decision, Verdict


@given(chat_requests)
def test_chat_request_parses_or_is_refused(body: Any) -> None:
    try:
        action = openai_chat.parse_request(body)
    except ProtocolError as err:
        assert err.status == 400 and err.message
        return
    # every segment's path points at its text: replacing them all and parsing again
    # finds exactly the replacements, in order, and the original body is left untouched
    before = json.dumps(body)
    masked = [f"masked {i}" for i in range(len(action.segments))]
    applied = openai_chat.apply_request(body, action, masked, Decision(Verdict.ALLOW))
    assert [s.text for s in openai_chat.parse_request(applied).segments] == masked
    assert json.dumps(body) == before


@given(json_values)
def test_chat_response_parses_or_is_refused(body: Any) -> None:
    try:
        action = openai_chat.parse_response(body)
    except ProtocolError as err:
        assert err.status >= 400 and err.message
        return
    assert all(isinstance(s.text, str) for s in action.segments)


@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_mcp_body_parses_or_is_a_json_rpc_error(raw: bytes) -> None:
    try:
        message = mcp.parse_body(raw)
    except JsonRpcError as err:
        assert err.body()["error"]["message"]
        return
    assert message.kind in set(mcp.Kind)


@given(st.sampled_from(["tools/list", "tools/call", "resources/read", "prompts/get"]), json_values)
def test_mcp_results_become_actions_or_are_too_deep(method: str, result: Any) -> None:
    try:
        action = mcp.result_action(method, result)
    except mcp.TooDeep:
        return
    assert all(isinstance(s.text, str) for s in action.segments)


def test_unhashable_or_odd_roles_are_refused_as_bad_requests() -> None:
    """A role that is a list or an object once raised TypeError (a 500, unaudited)."""
    for role in (["user"], {"user": 1}, 5, None, ""):
        for content in ("hi", [{"type": "text", "text": "hi"}]):
            body = {"model": "m", "messages": [{"role": role, "content": content}]}
            try:
                openai_chat.parse_request(body)
            except ProtocolError as err:
                assert err.status == 400 and err.param == "messages[0].role"
            else:
                raise AssertionError(f"role {role!r} was accepted")


def test_odd_roles_are_refused_by_responses_and_messages_too() -> None:
    from lictor.adapters import anthropic_messages, openai_responses

    for role in (["user"], {"user": 1}, 5):
        with pytest.raises(ProtocolError) as responses_error:
            openai_responses.parse_request(
                {"model": "m", "input": [{"type": "message", "role": role, "content": "hi"}]})
        assert responses_error.value.param == "input[0].role"
        with pytest.raises(ProtocolError) as messages_error:
            anthropic_messages.parse_request(
                {"model": "m", "max_tokens": 5, "messages": [{"role": role, "content": "hi"}]})
        assert messages_error.value.param == "messages[0].role"
