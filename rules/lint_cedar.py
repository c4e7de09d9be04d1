"""Cedar policies that can never decide anything, read from cedarpy's JSON form of them.

lictor asks Cedar four questions only: may this Agent `invoke_model` a Model, `call_tool`
a Tool, `call_mcp` an McpServer, or send an `http_request` to a Host (the egress proxy).
A policy scoped to anything else, a condition that is
literally false, or a permit that an unconditional forbid covers (a forbid always wins)
never changes an answer: that is almost always a mistake in the policy, not an intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lictor.rules.cedar_policies import CedarPolicyInfo

# What lictor asks about: action -> the type of its resource. The principal is an Agent,
# whose parents are its Team and Tenant (lictor.enforcement.authorization).
REQUESTS = {"invoke_model": "Model", "call_tool": "Tool", "call_mcp": "McpServer",
            "http_request": "Host"}
PRINCIPAL_TYPES = frozenset({"Agent", "Team", "Tenant"})


@dataclass(slots=True, frozen=True)
class LocatedPolicy:
    """One parsed policy and where it was written, for warnings that name file and line."""

    path: Path
    line: int
    policy: dict[str, Any]  # cedarpy.policies_to_json_str's form
    info: CedarPolicyInfo

    @property
    def label(self) -> str:
        return f"{self.info.effect} {self.info.name!r}"


def _literal(condition: dict[str, Any]) -> bool | None:
    """The condition's value when it is a literal `true`/`false` (unless negates)."""
    body = condition.get("body")
    if not (isinstance(body, dict) and isinstance(body.get("Value"), bool)):
        return None
    value: bool = body["Value"]
    return value if condition.get("kind") == "when" else not value


def _never_true(policy: dict[str, Any]) -> bool:
    return any(_literal(c) is False for c in policy.get("conditions", []))


def _unconditional(policy: dict[str, Any]) -> bool:
    return all(_literal(c) is True for c in policy.get("conditions", []))


def _actions(scope: dict[str, Any]) -> frozenset[str]:
    """The actions lictor asks about that the scope admits (no action groups exist, so
    `in Action::"x"` is `== Action::"x"`)."""
    if scope["op"] == "All":
        return frozenset(REQUESTS)
    entities = scope.get("entities") or [scope["entity"]]
    return frozenset(e["id"] for e in entities if e.get("type") == "Action") & REQUESTS.keys()


def _resource_types(scope: dict[str, Any]) -> frozenset[str] | None:
    """Resource types the scope admits; None for any (tools and models have no parents)."""
    if scope["op"] == "All":
        return None
    if scope["op"] == "is":
        return frozenset({scope["entity_type"]})
    return frozenset({scope["entity"]["type"]})


def _principal_possible(scope: dict[str, Any]) -> bool:
    op = scope["op"]
    if op == "==":
        return bool(scope["entity"]["type"] == "Agent")
    if op == "in":
        return scope["entity"]["type"] in PRINCIPAL_TYPES
    if op == "is":
        parent = scope.get("in", {}).get("entity", {"type": "Agent"})
        return scope["entity_type"] == "Agent" and parent["type"] in PRINCIPAL_TYPES
    return True


def _applies_to_lictor(policy: dict[str, Any]) -> bool:
    types = _resource_types(policy["resource"])
    return _principal_possible(policy["principal"]) and any(
        types is None or REQUESTS[a] in types for a in _actions(policy["action"]))


def _covers_scope(wide: dict[str, Any], narrow: dict[str, Any], *, agent: bool) -> bool:
    """Whether every entity `narrow` admits is admitted by `wide` (provably, with no
    knowledge of which agents are in which team)."""
    op = wide["op"]
    if op == "All" or (agent and op == "is" and wide["entity_type"] == "Agent"
                       and "in" not in wide):
        return True
    if op in ("==", "in"):
        ops = ("==", "in") if op == "in" or not agent else ("==",)
        return narrow["op"] in ops and narrow.get("entity") == wide["entity"]
    if op == "is":
        if narrow["op"] == "is":
            return bool(narrow["entity_type"] == wide["entity_type"]
                        and wide.get("in") in (None, narrow.get("in")))
        return ("in" not in wide and narrow["op"] in ("==", "in")
                and narrow["entity"]["type"] == wide["entity_type"])
    return False


def _covers(forbid: dict[str, Any], permit: dict[str, Any]) -> bool:
    return (_covers_scope(forbid["principal"], permit["principal"], agent=True)
            and _actions(permit["action"]) <= _actions(forbid["action"])
            and _covers_scope(forbid["resource"], permit["resource"], agent=False))


def cedar_warnings(policies: Sequence[LocatedPolicy]) -> list[tuple[LocatedPolicy, str]]:
    """(policy, message) for every policy that cannot have the effect it is written for."""
    out: list[tuple[LocatedPolicy, str]] = []
    first_of: dict[str, LocatedPolicy] = {}
    blanket = [lp for lp in policies if lp.info.effect == "forbid"
               and _unconditional(lp.policy) and _applies_to_lictor(lp.policy)]
    for lp in policies:
        annotated = lp.policy.get("annotations", {})
        if "id" in annotated:
            if annotated["id"] in first_of:
                other = first_of[annotated["id"]]
                out.append((lp, f"policy id {annotated['id']!r} is already used at "
                                f"{other.path}:{other.line}; findings cannot tell them apart"))
            else:
                first_of[annotated["id"]] = lp
        if lp.info.effect == "permit" and "on_deny" in annotated:
            out.append((lp, "@on_deny has no effect on a permit: it says what a forbid does"))
        if _never_true(lp.policy):
            out.append((lp, f"{lp.label} can never apply: its condition is literally false "
                            "(`when { false }` or `unless { true }`)"))
        elif not _applies_to_lictor(lp.policy):
            out.append((lp, f"{lp.label} can never apply: lictor asks Cedar only whether an "
                            "Agent may invoke_model (a Model), call_tool (a Tool), call_mcp "
                            "(an McpServer) or send an http_request (to a Host)"))
        elif lp.info.effect == "permit":
            cover = next((f for f in blanket if _covers(f.policy, lp.policy)), None)
            if cover is not None:
                out.append((lp, f"{lp.label} can never decide: forbid {cover.info.name!r} "
                                f"({cover.path}:{cover.line}) has no condition and covers "
                                "its whole scope, and in Cedar a forbid always wins"))
    return out
