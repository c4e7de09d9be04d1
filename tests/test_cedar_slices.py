"""Policy slices: Cedar evaluating only the policies whose scope can match a request
gives the same decision, reasons and errors as the whole policy set."""

from __future__ import annotations

import itertools
import json
from typing import Any

import cedarpy
from cedarpy import _internal

from lictor.rules.cedar_slices import COPY_BUDGET, slices_from_text
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

ENTITIES = json.dumps([
    {"uid": {"type": "Agent", "id": "a"}, "attrs": {}, "parents": [{"type": "Team", "id": "ops"}]},
    {"uid": {"type": "Agent", "id": "b"}, "attrs": {}, "parents": []},
    {"uid": {"type": "Team", "id": "ops"}, "attrs": {}, "parents": []},
])

ACTIONS = ["call_tool", "call_mcp", "http_request", "invoke_model", "never_named"]
RESOURCES = [("Tool", "refund_order"), ("Tool", "wire"), ("Tool", "other"),
             ("Host", "evil.example"), ("Model", "m"), ("McpServer", "shop")]
CONTEXTS = [{"tool_name": "rm", "amount": 500, "hour": 3},
            {"tool_name": "x", "amount": 5, "hour": 12},
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
