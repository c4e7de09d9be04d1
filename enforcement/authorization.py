"""Cedar pre-action authorization against the policy's compiled PolicySet.

Entities (agents, their teams and tenants) are parsed once into a cedarpy handle; each
check passes only the small request dict. Errors inside Cedar deny (fail closed).
Decisions whose context is all scalars are cached per policy load: the same agent asking
for the same model or tool gets the same answer, and a Cedar call costs ~150 us here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import cedarpy

from lictor.enforcement.types import Principal
from lictor.rules.cedar_policies import CedarBundle, CedarPolicyInfo


@dataclass(slots=True, frozen=True)
class AuthzResult:
    allowed: bool
    policies: tuple[CedarPolicyInfo, ...]  # the policies that decided (forbids when denied)
    errors: tuple[str, ...] = ()

    @property
    def on_deny(self) -> str:
        """`block` if any deciding forbid says so, else `remove`."""
        return "block" if any(p.on_deny == "block" for p in self.policies) else "remove"

    def reason(self) -> str:
        if self.policies:
            return ", ".join(p.name for p in self.policies)
        if self.errors:
            return "policy evaluation error"
        return "no policy permits it"


def _uid(kind: str, ident: str) -> str:
    return f"{kind}::{json.dumps(ident)}"


def entities_json(principals: Iterable[Principal]) -> str:
    """Agents with their team and tenant as parents, so policies can say `in Team::"x"`."""
    out: list[dict[str, Any]] = []
    groups: set[tuple[str, str]] = set()
    for p in principals:
        parents = []
        if p.team:
            parents.append({"type": "Team", "id": p.team})
            groups.add(("Team", p.team))
        if p.tenant:
            parents.append({"type": "Tenant", "id": p.tenant})
            groups.add(("Tenant", p.tenant))
        out.append(
            {
                "uid": {"type": "Agent", "id": p.agent_id},
                "attrs": {"team": p.team, "tenant": p.tenant},
                "parents": parents,
            }
        )
    out.extend({"uid": {"type": k, "id": i}, "attrs": {}, "parents": []} for k, i in sorted(groups))
    return json.dumps(out)


CACHE_LIMIT = 8192
_SCALARS = (str, int, bool)


class Authorizer:
    __slots__ = ("_bundle", "_cache", "_entities")

    def __init__(self, bundle: CedarBundle, principals: Iterable[Principal]) -> None:
        self._bundle = bundle
        self._entities = cedarpy.Entities.from_json_str(entities_json(principals))
        self._cache: dict[tuple[Any, ...], AuthzResult] = {}

    def check(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str,
        context: dict[str, Any],
    ) -> AuthzResult:
        key: tuple[Any, ...] | None = None
        if all(type(v) in _SCALARS for v in context.values()):
            key = (principal.agent_id, action, resource_type, resource_id,
                   tuple(sorted(context.items())))
            cached = self._cache.get(key)
            if cached is not None:
                return cached
        result = self._evaluate({
            "principal": _uid("Agent", principal.agent_id),
            "action": _uid("Action", action),
            "resource": _uid(resource_type, resource_id),
            "context": context,
        })
        if key is not None and not result.errors:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()  # bounded; refilled by the next requests
            self._cache[key] = result
        return result

    def _evaluate(self, request: dict[str, Any]) -> AuthzResult:
        try:
            result = cedarpy.is_authorized(request, self._bundle.policy_set, self._entities)
        except Exception as exc:  # a malformed request (e.g. odd context) denies
            return AuthzResult(False, (), (f"{type(exc).__name__}: {exc}",))
        infos = self._bundle.policies
        deciding = tuple(infos[r] for r in result.diagnostics.reasons if r in infos)
        errors = tuple(str(e) for e in result.diagnostics.errors)
        return AuthzResult(bool(result.allowed), deciding, errors)
