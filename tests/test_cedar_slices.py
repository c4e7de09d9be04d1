"""Policy slices: Cedar evaluating only the policies whose scope can match a request
gives the same decision, reasons and errors as the whole policy set."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import cedarpy
from cedarpy import _internal

from lictor.enforcement.authorization import _clean_answer, _context_json
from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.cedar_slices import COPY_BUDGET, context_reads, slices_from_text
from lictor.rules.loader import bundled_pack, default_paths, load_policy

SCOPES = """
permit (principal, action, resource);
@id("tools") permit (principal, action == Action::"call_tool", resource);
@id("refund-cap") forbid (principal, action == Action::"call_tool",
    resource == Tool::"refund_order") when { context.amount > 100 };
@id("refund-night") forbid (principal, action == Action::"call_tool",
    resource == Tool::"refund_order") when { context.hour < 6 };
@id("wire") forbid (principal, action == Action::"call_tool", resource == Tool::"wire")
    when { context.missing > 1 };
@id("listed") forbid (principal, action in [Action::"call_tool", Action::"call_mcp"],
    resource) when { context.tool_name == "rm" };
@id("typed") forbid (principal, action, resource is Tool) when { context.tool_name == "x" };
@id("in-team") forbid (principal in Team::"ops", action == Action::"http_request",
    resource == Host::"evil.example") ;
@id("other-type") forbid (principal, action == Other::Action::"call_tool", resource);
@id("errors") forbid (principal, action == Action::"call_mcp", resource)
    when { context.nope == 1 };
@id("model") forbid (principal == Agent::"b", action == Action::"invoke_model",
    resource == Model::"m");
"""

# The same kinds of scope, valid against lictor's schema (for the whole authorizer).
VALID = """
permit (principal, action, resource);
@id("tools") permit (principal, action == Action::"call_tool", resource);
@id("refund-cap") forbid (principal, action == Action::"call_tool",
    resource == Tool::"refund_order") when { context.amount > 100 };
@id("refund-night") forbid (principal, action == Action::"call_tool",
    resource == Tool::"refund_order") when { context.hour < 6 };
@id("listed") forbid (principal, action in [Action::"call_tool", Action::"call_mcp"],
    resource) when { context.tool_name == "rm" };
@id("mcp-call") forbid (principal, action == Action::"call_mcp", resource == McpServer::"shop")
    when { context.method == "tools/call" };
@id("admin") forbid (principal, action == Action::"http_request", resource)
    when { context.path like "/admin*" };
@id("model") forbid (principal == Agent::"a", action == Action::"invoke_model",
    resource == Model::"m");
"""

ENTITIES = json.dumps([
    {"uid": {"type": "Agent", "id": "a"}, "attrs": {}, "parents": [{"type": "Team", "id": "ops"}]},
    {"uid": {"type": "Agent", "id": "b"}, "attrs": {}, "parents": []},
    {"uid": {"type": "Team", "id": "ops"}, "attrs": {}, "parents": []},
])

ACTIONS = ["call_tool", "call_mcp", "http_request", "invoke_model", "never_named"]
RESOURCES = [("Tool", "refund_order"), ("Tool", "wire"), ("Tool", "other"),
             ("Host", "evil.example"), ("Model", "m"), ("McpServer", "shop")]
CONTEXTS = [{"tool_name": "rm", "amount": 500, "hour": 3, "method": "tools/call",
             "path": "/admin/users"},
            {"tool_name": "x", "amount": 5, "hour": 12, "method": "tools/list", "path": "/"},
            {"tool_name": "ok", "amount": 101, "hour": 7, "nope": 1}]


def _answer(policy_set: Any, entities: Any, request: dict[str, Any]) -> tuple[Any, ...]:
    (raw,) = _internal.is_authorized_batch([request], policy_set, entities, None, False)
    answer = json.loads(raw)
    diagnostics = answer["diagnostics"]
    return answer["decision"], sorted(diagnostics["reason"]), sorted(diagnostics["errors"])


def _same_everywhere(text: str) -> int:
    whole = cedarpy.PolicySet.from_str(text)
    slices = slices_from_text(text)
    entities = cedarpy.Entities.from_json_str(ENTITIES)._inner
    compared = 0
    for agent, action, (kind, ident), context in itertools.product(
            ["a", "b"], ACTIONS, RESOURCES, CONTEXTS):
        request = {"principal": {"type": "Agent", "id": agent},
                   "action": {"type": "Action", "id": action},
                   "resource": {"type": kind, "id": ident}, "context": json.dumps(context)}
        expected = _answer(whole, entities, request)
        got = _answer(slices.policy_set(action, kind, ident), entities, request)
        assert got == expected, (agent, action, kind, ident, context)
        compared += 1
    return compared


def test_slices_decide_like_the_whole_set() -> None:
    assert _same_everywhere(SCOPES) == 2 * len(ACTIONS) * len(RESOURCES) * len(CONTEXTS)


def test_slices_leave_out_policies_scoped_elsewhere() -> None:
    slices = slices_from_text(SCOPES)
    # any action: 1 permit + `listed` + `typed`; call_tool adds `tools` and the refund pair
    assert len(slices.policy_set("call_tool", "Tool", "refund_order")) == 6
    assert len(slices.policy_set("call_tool", "Tool", "anything")) == 4
    assert len(slices.policy_set("never_named", "Tool", "anything")) == 3


def test_slices_of_the_bundled_packs_decide_like_the_whole_set() -> None:
    policy = load_policy([*default_paths(), bundled_pack("examples")])
    _same_everywhere(policy.cedar.text)
    # the ids Cedar reports are the whole set's, so decisions still name their policy
    sliced = policy.cedar.slices.policy_set("call_tool", "Tool", "refund_order")
    assert str(sliced).count("example-refund-over-100") == 1


def test_many_resource_scopes_fall_back_to_action_slices() -> None:
    generic = "".join(f'forbid (principal, action, resource) when {{ context.n == {i} }};\n'
                      for i in range(200))
    named = "".join(f'forbid (principal, action == Action::"call_tool", resource == '
                    f'Tool::"t{i}");\n' for i in range(COPY_BUDGET // 200 + 1))
    slices = slices_from_text(generic + named)
    assert not slices.by_action["call_tool"].by_resource  # over the budget: by action only
    assert len(slices.policy_set("call_tool", "Tool", "t3")) == 200 + COPY_BUDGET // 200 + 1


def test_an_empty_policy_text_has_empty_slices() -> None:
    assert len(slices_from_text("").policy_set("call_tool", "Tool", "x")) == 0


def test_context_reads_per_policy() -> None:
    text = ('permit (principal, action, resource) when { context has a && context.b.c == 1 '
            '&& context["d"] == 2 };\n'
            'permit (principal, action, resource) when { context == {} };\n'
            'permit (principal, action, resource);\n')
    parsed = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
    assert [context_reads(p) for p in parsed.values()] == [
        frozenset({"a", "b", "d"}), None, frozenset()]
    slices = slices_from_text(SCOPES)
    assert slices.find("call_tool", "Tool", "refund_order").reads == frozenset(
        {"tool_name", "amount", "hour"})
    assert slices.find("invoke_model", "Model", "m").reads == frozenset({"tool_name"})


def test_the_authorizer_sends_only_what_policies_read_and_decides_alike(
        tmp_path: Path) -> None:
    (tmp_path / "p.cedar").write_text(VALID)
    authorizer = Engine(load_policy([tmp_path]), [Principal("a")])._actions._authorizer
    whole = cedarpy.PolicySet.from_str(load_policy([tmp_path]).cedar.text)
    entities = authorizer._entities_inner
    for action, (kind, ident), context in itertools.product(ACTIONS, RESOURCES, CONTEXTS):
        request = {"principal": {"type": "Agent", "id": "a"},
                   "action": {"type": "Action", "id": action},
                   "resource": {"type": kind, "id": ident}, "context": json.dumps(context)}
        decision, reasons, errors = _answer(whole, entities, request)
        got = authorizer.check(Principal("a"), action, kind, ident, context)
        # lictor denies on any evaluation error (Cedar itself would skip that policy)
        assert got.allowed == (decision == "Allow" and not errors), (action, ident, context)
        assert bool(got.errors) == bool(errors)
        assert not errors or not got.policies
        assert errors or sorted(p.policy_id for p in got.policies) == reasons


def test_a_context_value_cedar_refuses_denies_even_where_no_policy_reads_it(
        tmp_path: Path) -> None:
    (tmp_path / "p.cedar").write_text(VALID)
    authorizer = Engine(load_policy([tmp_path]), [Principal("a")])._actions._authorizer
    agent = Principal("a")
    # invoke_model's policies read only tool_name: `unread` is left out when Cedar takes it
    assert authorizer._bundle.slices.find("invoke_model", "Model", "gpt").reads == {"tool_name"}
    for fine in ("text", 7, True, ["x", 1], {"k": {"n": 2}}, "é", -(2**63)):
        result = authorizer.check(agent, "invoke_model", "Model", "gpt", {"unread": fine})
        assert result.allowed and not result.errors, fine
    for refused in (1.5, None, 2**63, "\ud800", [1.0], {"k": None}):
        result = authorizer.check(agent, "invoke_model", "Model", "gpt", {"unread": refused})
        assert not result.allowed and result.errors, refused


def test_answers_read_without_json_match_json() -> None:
    text = """
    @id("},\\"errors\\":[]},\\"metrics\\":{ ] \\"diagnostics\\":{\\"reason\\":[")
    permit (principal, action, resource);
    @id("two") forbid (principal, action == Action::"call_tool", resource)
        when { context.n > 1 };
    @id("three") forbid (principal, action == Action::"call_tool", resource)
        when { context.n > 2 };
    @id("broken") forbid (principal, action == Action::"call_mcp", resource)
        when { context.missing };
    """
    policy_set = cedarpy.PolicySet.from_str(text)
    entities = cedarpy.Entities.from_json_str("[]")._inner
    seen = set()
    for action, n in itertools.product(["call_tool", "call_mcp", "invoke_model"], [0, 2, 3]):
        request = {"principal": {"type": "Agent", "id": "a"},
                   "action": {"type": "Action", "id": action},
                   "resource": {"type": "Tool", "id": "t"}, "context": json.dumps({"n": n})}
        (raw,) = _internal.is_authorized_batch([request], policy_set, entities, None, False)
        answer = json.loads(raw)
        clean = _clean_answer(raw)
        if answer["diagnostics"]["errors"]:
            assert clean is None
            seen.add("errors")
            continue
        assert clean is not None
        allowed, reasons = clean
        assert allowed == (answer["decision"] == "Allow")
        assert sorted(reasons) == sorted(answer["diagnostics"]["reason"])
        seen.add((allowed, len(reasons)))
    assert seen == {"errors", (True, 1), (False, 1), (False, 2)}
    assert _clean_answer('{"decision":"NoDecision","diagnostics":{"errors":["x"]}}') is None


def test_context_json_reads_back_as_the_context() -> None:
    for context in ({}, {"tool_name": "é \"x\" \\ \n", "stage": "call"},
                    {"amount": -(2**63), "tainted": True, "ok": False},
                    {"arguments": {"currency": "EUR"}, "amount": 5}, {"odd": "\ud800"}):
        text = _context_json(context)
        assert json.loads(text) == context
        assert text.isascii()
