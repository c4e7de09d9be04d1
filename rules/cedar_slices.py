"""The compiled policies cut by action and resource, so Cedar evaluates only the ones
whose scope can match a request.

A policy scoped `action == Action::"x"` (or `resource == Tool::"y"`) is not satisfied by a
request for another action (or resource): Cedar checks the scope before the conditions,
so leaving such a policy out changes no decision, reason or error. Each slice keeps the
policies' own ids (`policy7`), so decisions still name their policy, and knows which
context attributes its policies read: Cedar needs no other. Here every policy costs
~3 us per evaluation whether its scope matches or not, and every context attribute ~4 us.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import cedarpy

Uid = tuple[str, str]  # (entity type, id)

# Most policy copies the slices may hold together (~0.35 s to build at load here); past
# it, cut by action only.
COPY_BUDGET = 10_000


@dataclass(slots=True, frozen=True)
class Slice:
    policy_set: Any  # cedarpy PolicySet
    reads: frozenset[str] | None  # the context attributes its policies read; None: all
    # (policy id, Cedar's JSON form) of each policy, for `enforcement.cedar_compiled`;
    # None when not known (then only cedarpy evaluates the slice)
    policies: tuple[tuple[str, dict[str, Any]], ...] | None = None


@dataclass(slots=True, frozen=True)
class ActionSlice:
    """The policies that can apply to one action: for any resource, and per resource
    named by a `resource ==` scope, those plus the policies naming that resource."""

    generic: Slice
    by_resource: dict[Uid, Slice] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class PolicySlices:
    by_action: dict[str, ActionSlice]  # action id (type `Action`) -> its slice
    other: ActionSlice  # actions no `action ==` scope names

    def find(self, action: str, resource_type: str, resource_id: str) -> Slice:
        """What Cedar needs for this request (the same decision as the whole set)."""
        part = self.by_action.get(action, self.other)
        return part.by_resource.get((resource_type, resource_id), part.generic)

    def policy_set(self, action: str, resource_type: str, resource_id: str) -> Any:
        return self.find(action, resource_type, resource_id).policy_set

    def every_slice(self) -> list[Slice]:
        """Every slice, each once (slices holding the same policies are one object)."""
        seen: dict[int, Slice] = {}
        for part in (*self.by_action.values(), self.other):
            for one in (part.generic, *part.by_resource.values()):
                seen.setdefault(id(one), one)
        return list(seen.values())


def _equals(scope: dict[str, Any]) -> Uid | None:
    """The entity of an `== entity` scope, or None for any other scope."""
    entity = scope.get("entity") if scope.get("op") == "==" else None
    if isinstance(entity, dict) and isinstance(entity.get("type"), str) \
            and isinstance(entity.get("id"), str):
        return entity["type"], entity["id"]
    return None


def context_reads(policy: dict[str, Any]) -> frozenset[str] | None:
    """The context attributes one policy (Cedar's JSON form) reads with `context.x`,
    `context["x"]` or `context has x`; None when it uses `context` whole."""
    reads: set[str] = set()
    stack: list[Any] = [c.get("body") for c in policy.get("conditions", [])]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node == {"Var": "context"}:
                return None  # compared, passed or tested as a whole record
            for op in (".", "has"):
                inner = node.get(op) if len(node) == 1 else None
                if isinstance(inner, dict) and inner.get("left") == {"Var": "context"} \
                        and isinstance(inner.get("attr"), str):
                    reads.add(inner["attr"])
                    break
            else:
                stack.extend(node.values())
    return frozenset(reads)


class _Builder:
    """Slices from subsets of the policies' JSON form, one handle per distinct subset."""

    def __init__(self, policies: dict[str, dict[str, Any]]) -> None:
        self.policies = policies
        self.order = {pid: i for i, pid in enumerate(policies)}
        self.reads = {pid: context_reads(policy) for pid, policy in policies.items()}
        self.built: dict[tuple[str, ...], Slice] = {}

    def build(self, ids: list[str]) -> Slice:
        key = tuple(sorted(set(ids), key=self.order.__getitem__))
        done = self.built.get(key)
        if done is None:
            est = {"staticPolicies": {pid: self.policies[pid] for pid in key},
                   "templates": {}, "templateLinks": []}
            reads: frozenset[str] | None = frozenset()
            for pid in key:
                own = self.reads[pid]
                reads = None if reads is None or own is None else reads | own
            done = self.built[key] = Slice(cedarpy.PolicySet.from_json_str(json.dumps(est)),
                                           reads, tuple((pid, self.policies[pid]) for pid in key))
        return done


Split = tuple[list[str], dict[Uid, list[str]]]


def _split(policies: dict[str, dict[str, Any]], ids: list[str]) -> Split:
    """`ids` as (policies for any resource, policies per resource their `==` scope names)."""
    generic: list[str] = []
    named: dict[Uid, list[str]] = {}
    for pid in ids:
        uid = _equals(policies[pid]["resource"])
        if uid is None:
            generic.append(pid)
        else:
            named.setdefault(uid, []).append(pid)
    return generic, named


def _copies(generic: list[str], named: dict[Uid, list[str]]) -> int:
    return len(generic) * (1 + len(named)) + sum(len(own) for own in named.values())


def slice_policies(policies: dict[str, dict[str, Any]]) -> PolicySlices:
    """Slices of `policies` (Cedar's JSON form by policy id, as `policies_to_json_str`
    gives them) for every action an `action ==` scope names, and one for the rest."""
    actions: dict[str, list[str]] = {}
    anywhere = []  # policies whose action scope is not `== Action::"x"`
    for pid, policy in policies.items():
        uid = _equals(policy["action"])
        if uid is None:
            anywhere.append(pid)
        elif uid[0] == "Action":
            actions.setdefault(uid[1], []).append(pid)
        # an `==` on an action of another type never matches lictor's `Action::"x"`
    groups = {name: anywhere + own for name, own in actions.items()}
    splits = {name: _split(policies, ids) for name, ids in groups.items()}
    rest = _split(policies, anywhere)
    if sum(_copies(*split) for split in [rest, *splits.values()]) > COPY_BUDGET:
        splits = {name: (ids, {}) for name, ids in groups.items()}
        rest = (anywhere, {})
    builder = _Builder(policies)

    def part(generic: list[str], named: dict[Uid, list[str]]) -> ActionSlice:
        return ActionSlice(builder.build(generic),
                           {uid: builder.build(generic + own) for uid, own in named.items()})

    return PolicySlices({name: part(*split) for name, split in splits.items()}, part(*rest))


def slices_from_text(policy_text: str) -> PolicySlices:
    """Slices of a whole policy text (ids as Cedar numbers them: policy0, policy1, ...)."""
    parsed = json.loads(cedarpy.policies_to_json_str(policy_text)) if policy_text.strip() \
        else {}
    return slice_policies(dict(parsed.get("staticPolicies", {})))
