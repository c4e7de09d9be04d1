"""Cedar pre-action authorization against the policy's compiled policies.

Entities (agents, their teams and tenants) are parsed once into a cedarpy handle; each
check passes only the small request dict. Errors inside Cedar deny (fail closed).
Cedar gets only the policies whose scope can match the request and the context attributes
they read (`rules.cedar_slices`). A slice whose policies all compile to Python
(`cedar_compiled`) is decided there (~10 us against ~35 us through cedarpy's binding);
whatever the compiled form cannot decide exactly, an error included, goes to cedarpy.
Decisions are cached per policy load by request: the same agent asking for the same
model or tool in the same context gets the same answer (a number is keyed by where it
falls among the constants policies compare it with).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import cedarpy
from cedarpy import _internal

from lictor.enforcement.cedar_compiled import CompiledSlice, EntityStore, Uid, compile_slice
from lictor.enforcement.types import Principal
from lictor.rules.cedar_policies import CedarBundle, CedarPolicyInfo
from lictor.rules.cedar_slices import PolicySlices
from lictor.rules.cedar_thresholds import bucket
from lictor.rules.tool_catalog import CatalogSnapshot

_cedar_batch = _internal.is_authorized_batch


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
            return f"policy evaluation error: {self.errors[0]}"
        return "no policy permits it"


def _entity(kind: str, ident: str, attrs: dict[str, Any],
            parents: list[tuple[str, str]]) -> dict[str, Any]:
    return {"uid": {"type": kind, "id": ident}, "attrs": attrs,
            "parents": [{"type": k, "id": i} for k, i in parents]}


def entities(principals: Iterable[Principal], catalog: CatalogSnapshot) -> list[dict[str, Any]]:
    """Agents in their team and tenant, teams in their tenant, tools with risk and owner,
    so policies can say `principal in Team::"x"` or `resource.risk == "high"`."""
    out: list[dict[str, Any]] = []
    teams = dict(catalog.teams)
    tenants = {t for t in teams.values() if t}
    agents = {p.agent_id: (p.team, p.tenant) for p in principals}
    for agent_id, (team, tenant) in catalog.agents.items():
        known = agents.get(agent_id, ("", ""))
        agents[agent_id] = (known[0] or team, known[1] or tenant)
    for agent_id, (team, own_tenant) in agents.items():
        tenant = own_tenant or teams.get(team, "")
        parents = []
        if team:
            parents.append(("Team", team))
            teams.setdefault(team, "")
        if tenant:
            parents.append(("Tenant", tenant))
            tenants.add(tenant)
        out.append(_entity("Agent", agent_id, {"team": team, "tenant": tenant}, parents))
    for team, tenant in sorted(teams.items()):
        out.append(_entity("Team", team, {}, [("Tenant", tenant)] if tenant else []))
    out.extend(_entity("Tenant", t, {}, []) for t in sorted(tenants))
    out.extend(_entity("Tool", name, {"risk": info.risk, "owner": info.owner}, [])
               for name, info in catalog.tools.items())
    out.extend(_entity("McpServer", name, {"risk": info.risk, "owner": info.owner}, [])
               for name, info in catalog.mcp_servers.items())
    return out


CACHE_LIMIT = 8192


def _compile_slices(slices: PolicySlices) -> dict[int, CompiledSlice]:
    """Each slice whose policies all compile (`enforcement.cedar_compiled`), by id()."""
    done: dict[str, Any] = {}
    out = {}
    for part in slices.every_slice():
        compiled = compile_slice(part.policies, done) if part.policies is not None else None
        if compiled is not None:
            out[id(part)] = compiled
    return out


class Authorizer:
    __slots__ = ("_bundle", "_cache", "_compiled", "_entities", "_entities_inner", "_results",
                 "_store", "_uids")

    def __init__(self, bundle: CedarBundle, principals: Iterable[Principal],
                 catalog: CatalogSnapshot) -> None:
        self._bundle = bundle
        known = entities(principals, catalog)
        self._entities = cedarpy.Entities.from_json_str(json.dumps(known))
        self._entities_inner = self._entities._inner
        self._store = EntityStore(known)
        self._compiled = _compile_slices(bundle.slices)
        self._cache: dict[tuple[Any, ...], AuthzResult] = {}
        # compiled decisions by (allowed, deciding ids): a handful, made once each
        self._results: dict[tuple[bool, tuple[str, ...]], AuthzResult] = {}
        self._uids: dict[tuple[str, str], Uid] = {}

    def check(
        self,
        principal: Principal,
        action: str,
        resource_type: str,
        resource_id: str,
        context: dict[str, Any],
    ) -> AuthzResult:
        part = self._bundle.slices.find(action, resource_type, resource_id)
        reads = part.reads
        if reads is not None and not reads.issuperset(context):
            context = _needed(context, reads)
        key = (principal.agent_id, action, resource_type, resource_id, self._key(context))
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        compiled = self._compiled.get(id(part))
        decided = None if compiled is None else compiled.decide(
            self._uid("Agent", principal.agent_id), self._uid("Action", action),
            Uid((resource_type, resource_id)), context, self._store)
        if decided is not None:
            result = self._results.get(decided) or self._result(decided)
        else:
            result = self._cedar(part.policy_set, {
                "principal": {"type": "Agent", "id": principal.agent_id},
                "action": {"type": "Action", "id": action},
                "resource": {"type": resource_type, "id": resource_id}}, context)
        if not result.errors:  # errors (fail closed) are not remembered
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()  # bounded; refilled by the next requests
            self._cache[key] = result
        return result

    def _uid(self, kind: str, ident: str) -> Uid:
        """Agents' and actions' uids, made once each (there are few of them)."""
        found = self._uids.get((kind, ident))
        if found is None:
            found = Uid((kind, ident))
            if len(self._uids) < CACHE_LIMIT:
                self._uids[found] = found
        return found

    def _result(self, decided: tuple[bool, tuple[str, ...]]) -> AuthzResult:
        infos = self._bundle.policies
        made = AuthzResult(decided[0], tuple(infos[r] for r in decided[1] if r in infos))
        if len(self._results) < CACHE_LIMIT:
            self._results[decided] = made
        return made

    def _cedar(self, policy_set: Any, request: dict[str, Any],
               context: dict[str, Any]) -> AuthzResult:
        """Cedar's own engine, for what the compiled policies leave to it."""
        if context:  # none: Cedar's empty context, cheaper than parsing "{}"
            request["context"] = _context_json(context)
        return self._evaluate(policy_set, request)

    def reads(self, action: str, resource_type: str, resource_id: str) -> frozenset[str] | None:
        """The context attributes Cedar reads for this request (None: the whole context)."""
        return self._bundle.slices.find(action, resource_type, resource_id).reads

    def _key(self, context: dict[str, Any]) -> Any:
        """The context as a cache key: a number policies only compare with constants is
        keyed by the gap between constants it falls in (`rules.cedar_thresholds`)."""
        cuts = self._bundle.thresholds
        return tuple(sorted(
            (k, bucket(v, cuts[k]) if k in cuts and type(v) is int else _frozen(v))
            for k, v in context.items()))

    def _evaluate(self, policy_set: Any, request: dict[str, Any]) -> AuthzResult:
        """One Cedar evaluation. UIDs go as {type, id} (Cedar parses `Agent::"x"` strings:
        ~55 us more here) straight to cedarpy's engine, whose public wrapper adds ~40 us
        per call rebuilding objects we do not use (cedarpy is pinned, see pyproject)."""
        try:
            (raw,) = _cedar_batch([request], policy_set, self._entities_inner,
                                  None, False)
            clean = _clean_answer(raw)
            answer = json.loads(raw) if clean is None else {}
        except Exception as exc:  # a malformed request (e.g. odd context) denies
            return AuthzResult(False, (), (f"{type(exc).__name__}: {exc}",))
        infos = self._bundle.policies
        if clean is not None:
            allowed, reasons = clean
            return AuthzResult(allowed, tuple(infos[r] for r in reasons if r in infos))
        diagnostics = answer.get("diagnostics") or {}
        errors = tuple(_named(str(e.get("error", e)) if isinstance(e, dict) else str(e), infos)
                       for e in diagnostics.get("errors", ()))
        if errors:  # a policy that cannot be evaluated might have forbidden it: deny
            return AuthzResult(False, (), errors)
        deciding = tuple(infos[r] for r in diagnostics.get("reason", ()) if r in infos)
        return AuthzResult(answer.get("decision") == "Allow", deciding)


_ALLOW, _DENY = '{"decision":"Allow",', '{"decision":"Deny",'
_REASON = '"diagnostics":{"reason":['
_NO_ERRORS = '},"errors":[]},"metrics":{'


def _clean_answer(raw: str) -> tuple[bool, list[str]] | None:
    """(allowed, deciding policy ids) read straight off an answer with no errors, ~6 us
    cheaper than json.loads; None for any other answer (json reads it). The markers cannot
    come from annotation text: inside a JSON string every `"` is escaped."""
    allowed = raw.startswith(_ALLOW)
    if not (allowed or raw.startswith(_DENY)) or _NO_ERRORS not in raw:
        return None
    start = raw.find(_REASON)
    if start < 0:
        return None
    start += len(_REASON)
    ids = raw[start:raw.find("]", start)]  # ids are Cedar's own `policy7`: no `]` or `"`
    return allowed, ids.replace('"', "").split(",") if ids else []


def _named(error: str, infos: dict[str, CedarPolicyInfo]) -> str:
    """Cedar's `policy7` in an error message, replaced by the policy's name and place."""
    def name(m: re.Match[str]) -> str:
        info = infos.get(m.group(1))
        return f"{info.name} ({info.source})" if info else m.group(0)

    return re.sub(r"`(policy\d+)`", name, error)


def _context_json(context: dict[str, Any]) -> str:
    """The context as JSON: flat strings, integers and booleans written directly (~6 us
    less than json.dumps per uncached call here), anything else by json.dumps."""
    parts = []
    for name, value in context.items():
        kind = type(value)
        if kind is str:
            parts.append(f"{_quote(name)}:{_quote(value)}")
        elif kind is int:
            parts.append(f"{_quote(name)}:{value}")
        elif kind is bool:
            parts.append(f"{_quote(name)}:{'true' if value else 'false'}")
        else:
            return json.dumps(context)
    return "{" + ",".join(parts) + "}"


def _needed(context: dict[str, Any], reads: frozenset[str]) -> dict[str, Any]:
    """The attributes the policies read, if every other one is a value Cedar surely
    accepts; else the whole context, so a value Cedar refuses still denies (fail closed)."""
    needed = {}
    for name, value in context.items():
        if name in reads:
            needed[name] = value
        elif not _plain(value):
            return context
    return needed


def _plain(value: Any) -> bool:
    """A string, boolean, 64-bit integer, or list or record of them (no `__entity` or
    `__extn` escapes): what Cedar parses from a JSON context without error."""
    kind = type(value)
    if kind is str:
        if value.isascii():
            return True
        try:
            value.encode()  # a lone surrogate is not valid JSON text for Cedar
        except UnicodeEncodeError:
            return False
        return True
    if kind is bool:
        return True
    if kind is int:
        return -(2**63) <= value < 2**63
    if kind is list:
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and not k.startswith("__") and _plain(v)
                   for k, v in value.items())
    return False


def _frozen(value: Any) -> Any:
    """A hashable form of a Cedar context (records become sorted tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value
