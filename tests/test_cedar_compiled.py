"""Compiled Cedar policies answer exactly as Cedar does, or leave the request to Cedar.

Generated policies (every operator the compiler handles, well- and ill-typed) and
generated requests are decided by both; wherever the compiled form answers, Cedar gives
the same decision and reasons with no error. The bundled packs compile whole.
"""

from __future__ import annotations

import json
import random
from typing import Any

import cedarpy
import pytest

from lictor.enforcement import authorization
from lictor.enforcement.authorization import Authorizer, entities
from lictor.enforcement.cedar_compiled import (
    CedarSet,
    EntityStore,
    Uid,
    compile_slice,
    equal,
    literal,
)
from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.loader import bundled_pack, default_paths, load_policy

ENTITIES = [
    {"uid": {"type": "Agent", "id": "a1"}, "attrs": {"team": "t1", "tenant": "acme"},
     "parents": [{"type": "Team", "id": "t1"}]},
    {"uid": {"type": "Team", "id": "t1"}, "attrs": {},
     "parents": [{"type": "Tenant", "id": "acme"}]},
    {"uid": {"type": "Tenant", "id": "acme"}, "attrs": {}, "parents": []},
    {"uid": {"type": "Tool", "id": "refund"}, "attrs": {"risk": "high", "owner": "t1"},
     "parents": []},
]
STORE = EntityStore(ENTITIES)
CEDAR_ENTITIES = cedarpy.Entities.from_json_str(json.dumps(ENTITIES))

UIDS = ['Agent::"a1"', 'Agent::"ghost"', 'Team::"t1"', 'Tenant::"acme"', 'Tool::"refund"',
        'Tool::"nope"']
STRINGS = ["", "a", "ab", "refund", "high", "drop_x", "*", "a*b", "\u00e9t\u00e9", "x\ny"]
PATTERNS = ['"a*"', '"*b"', '"drop_*"', '"*"', '""', '"a\\*b"', '"*\u00e9*"', '"x*y"']


class Gen:
    """Random Cedar expressions of a kind (long, string, bool, set, entity, record, any)."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def pick(self, *options: Any) -> Any:
        return self.r.choice(options)

    def expr(self, kind: str, depth: int) -> str:
        if depth <= 0 or self.r.random() < 0.3:
            return self.atom(kind)
        make = getattr(self, f"_{kind}")
        return str(make(depth - 1))

    def atom(self, kind: str) -> str:
        r = self.r
        if kind == "any":
            kind = r.choice(["long", "string", "bool", "set", "entity", "record"])
        if kind == "long":
            return r.choice(["context.n", "context.m", str(r.randint(-5, 300)), "context.s",
                             "context.missing"])
        if kind == "string":
            return r.choice(["context.s", "principal.team", "resource.risk",
                             json.dumps(r.choice(STRINGS)), "context.n", "context.rec.s"])
        if kind == "bool":
            return r.choice(["true", "false", "context.b", "context.n", "context has s",
                             "context.rec has a"])
        if kind == "set":
            return r.choice(["context.tags", "[1, 2, 3]", '["a", "refund"]', "[]",
                             '[Team::"t1", Tenant::"acme"]', "context.n", "[true, 1]"])
        if kind == "record":
            return r.choice(["context.rec", '{a: 1, s: "a"}', "{}", "context"])
        return r.choice(["principal", "resource", "action", *UIDS, "context.s"])

    def _long(self, d: int) -> str:
        op = self.pick("+", "-", "*", "neg", "if")
        if op == "neg":
            return f"(-({self.expr('long', d)}))"
        if op == "if":
            return (f"(if {self.expr('bool', d)} then {self.expr('long', d)} "
                    f"else {self.expr('long', d)})")
        return f"({self.expr('long', d)} {op} {self.expr('long', d)})"

    def _string(self, d: int) -> str:
        return self.pick(f"({self.expr('record', d)}).s",
                         f"(if {self.expr('bool', d)} then {self.expr('string', d)} "
                         f"else {self.expr('string', d)})")

    def _set(self, d: int) -> str:
        return f"[{self.expr('any', d)}, {self.expr('any', d)}]"

    def _record(self, d: int) -> str:
        return f"{{a: {self.expr('long', d)}, s: {self.expr('string', d)}}}"

    def _entity(self, d: int) -> str:
        return (f"(if {self.expr('bool', d)} then {self.expr('entity', d)} "
                f"else {self.atom('entity')})")

    def _any(self, d: int) -> str:
        return self.expr(self.r.choice(["long", "string", "bool", "set", "entity", "record"]), d)

    def _bool(self, d: int) -> str:
        e = self.expr
        op = self.pick("&&", "||", "!", "==", "!=", "<", "<=", ">", ">=", "in", "has", "like",
                       "contains", "containsAll", "containsAny", "isEmpty", "is", "is in", "if")
        if op in ("&&", "||"):
            return f"({e('bool', d)} {op} {e('bool', d)})"
        if op == "!":
            return f"(!{e('bool', d)})"
        if op in ("==", "!="):
            return f"({e('any', d)} {op} {e('any', d)})"
        if op in ("<", "<=", ">", ">="):
            return f"({e('long', d)} {op} {e('long', d)})"
        if op == "in":
            return f"({e('entity', d)} in {self.pick(e('entity', d), e('set', d))})"
        if op == "has":
            attr = self.pick("a", "s", "team", "risk")
            return f"({e(self.pick('record', 'entity'), d)} has {attr})"
        if op == "like":
            return f"({e('string', d)} like {self.pick(*PATTERNS)})"
        if op == "contains":
            return f"(({e('set', d)}).contains({e('any', d)}))"
        if op in ("containsAll", "containsAny"):
            return f"(({e('set', d)}).{op}({e('set', d)}))"
        if op == "isEmpty":
            return f"(({e('set', d)}).isEmpty())"
        if op == "is":
            return f"({e('entity', d)} is {self.pick('Agent', 'Tool', 'Team')})"
        if op == "is in":
            return f"({e('entity', d)} is {self.pick('Agent', 'Tool')} in {e('entity', d)})"
        return f"(if {e('bool', d)} then {e('bool', d)} else {e('bool', d)})"

    def scope(self, var: str) -> str:
        """Mostly scopes the generated requests can satisfy, so conditions get evaluated."""
        kinds = {"principal": ["Agent", "Team"], "resource": ["Tool", "Tenant"],
                 "action": ["Action"]}[var]
        target = {"principal": self.pick('Agent::"a1"', 'Team::"t1"', 'Tenant::"acme"'),
                  "resource": self.pick('Tool::"refund"', 'Tenant::"acme"', 'Tool::"x"'),
                  "action": 'Action::"call_tool"'}[var]
        if var == "action":
            return self.pick("action", "action", f"action == {target}",
                             'action in [Action::"call_tool", Action::"other"]')
        return self.pick(var, var, var, f"{var} == {target}", f"{var} in {target}",
                         f"{var} is {kinds[0]}", f"{var} is {kinds[0]} in {target}")

    def policy(self) -> str:
        conditions = " ".join(
            f"{self.pick('when', 'unless')} {{ {self.expr('bool', 3)} }}"
            for _ in range(self.r.randint(0, 2)))
        return (f"{self.pick('permit', 'forbid')} ({self.scope('principal')}, "
                f"{self.scope('action')}, {self.scope('resource')}) {conditions};")

    def context(self) -> dict[str, Any]:
        r = self.r
        ctx: dict[str, Any] = {}
        for name, values in (
                ("n", [0, 1, 5, 150, -3, 2**62, 2**63 - 1, True, "5"]),
                ("m", [2, 100, -(2**63), 7]),
                ("s", [*STRINGS, 3]),
                ("b", [True, False, 1]),
                ("tags", [[], ["a"], ["a", "refund"], [1, "a"], "a"]),
                ("rec", [{"a": 1, "s": "a"}, {"a": "x"}, {}, {"s": "ab", "a": 2}])):
            if r.random() < 0.9:
                ctx[name] = r.choice(values)
        return ctx


def _cedar(policies: str, request: dict[str, Any]) -> tuple[bool, set[str], list[str]]:
    answer = cedarpy.is_authorized(request, policies, CEDAR_ENTITIES)
    return answer.allowed, set(answer.diagnostics.reasons), list(answer.diagnostics.errors)


def _uid(text: str) -> Uid:
    kind, ident = text.split("::")
    return Uid((kind, json.loads(ident)))


def test_generated_policies_answer_as_cedar_does() -> None:
    """Over 1,500 generated policy sets x 4 requests, every compiled answer is Cedar's."""
    rng = random.Random(20261122)
    gen = Gen(rng)
    answered = clean = unparsed = 0
    for _ in range(1500):
        text = "\n".join(gen.policy() for _ in range(rng.randint(1, 4)))
        try:
            est = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        except Exception:
            unparsed += 1
            continue
        compiled = compile_slice(est.items())
        assert compiled is not None, text
        for _ in range(4):
            principal = rng.choice(['Agent::"a1"', 'Agent::"ghost"'])
            action = rng.choice(['Action::"call_tool"', 'Action::"other"'])
            resource = rng.choice(['Tool::"refund"', 'Tool::"nope"', 'Tenant::"acme"'])
            context = gen.context()
            allowed, reasons, errors = _cedar(text, {
                "principal": principal, "action": action, "resource": resource,
                "context": context})
            decided = compiled.decide(_uid(principal), _uid(action), _uid(resource), context,
                                      STORE)
            clean += not errors
            if decided is None:
                continue
            answered += 1
            case = f"{text}\n{principal} {action} {resource} {context}"
            assert not errors, case
            assert decided[0] == allowed, case
            assert set(decided[1]) == reasons, case
    assert unparsed < 150  # the generator writes valid Cedar syntax
    # the compiled form answers nearly everything Cedar evaluates without error
    assert answered >= 0.9 * clean, (answered, clean)


READS_V = 'permit (principal, action, resource) when { context has v && context.v == context.v };'


@pytest.mark.parametrize("value", [1.5, None, 2**63, {"__extn": {"fn": "ip", "arg": "1.2.3.4"}},
                                   "\ud800", [1, 2.5], {"a": {"b": 1.5}}])
def test_values_cedar_does_not_read_are_left_to_it(value: Any) -> None:
    """Floats, nulls, big integers, extension values, lone surrogates: Cedar decides
    (and refuses them)."""
    est = json.loads(cedarpy.policies_to_json_str(READS_V))["staticPolicies"]
    compiled = compile_slice(est.items())
    assert compiled is not None
    assert compiled.decide(Uid(("Agent", "a1")), Uid(("Action", "x")), Uid(("Tool", "t")),
                           {"v": value}, STORE) is None


@pytest.mark.parametrize("value", [{"__entity": {"type": "Agent", "id": "a1"}},
                                   {"type": "Tool", "id": "x"}, {"a": [1, "b"]}, "\u00e9"])
def test_escapes_are_read_as_cedar_reads_them(value: Any) -> None:
    """An entity escape is an entity, for both; `{type, id}` is left to Cedar."""
    est = json.loads(cedarpy.policies_to_json_str(READS_V))["staticPolicies"]
    compiled = compile_slice(est.items())
    assert compiled is not None
    decided = compiled.decide(Uid(("Agent", "a1")), Uid(("Action", "x")), Uid(("Tool", "t")),
                              {"v": value}, STORE)
    allowed, reasons, errors = _cedar(READS_V, {
        "principal": 'Agent::"a1"', "action": 'Action::"x"', "resource": 'Tool::"t"',
        "context": {"v": value}})
    if decided is not None:
        assert not errors and decided == (allowed, tuple(sorted(reasons)))


def test_cedar_equality_is_typed() -> None:
    assert not equal(True, 1) and not equal(1, True)
    assert equal(CedarSet((1, 2)), CedarSet((2, 1, 1)))
    assert not equal(CedarSet((1,)), CedarSet((True,)))
    assert equal(literal({"a": [1, "x"]}), literal({"a": ["x", 1]}))
    assert not equal(Uid(("A", "b")), ("A", "b"))


def test_extensions_and_templates_stay_with_cedar() -> None:
    """A policy outside the subset leaves its whole slice to cedarpy."""
    for condition in ('ip("1.2.3.4").isIpv4()', 'resource.hasTag("a")',
                      'context.d < datetime("2024-01-01")'):
        text = f"permit (principal, action, resource) when {{ {condition} }};"
        est = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        assert compile_slice(est.items()) is None, text


AGENT = Principal("support-bot", "support", "acme")


def test_bundled_packs_compile_whole_and_decide_as_cedar() -> None:
    """Every slice of the default and example packs compiles, and the authorizer's
    answers through it equal cedarpy's on the whole policy set."""
    policy = load_policy([*default_paths(), bundled_pack("examples")])
    slices = policy.cedar.slices.every_slice()
    assert slices and all(compile_slice(s.policies or ()) is not None for s in slices)
    authorizer = Authorizer(policy.cedar, [AGENT], policy.catalog)
    cedar_entities = json.dumps(entities([AGENT], policy.catalog))
    tools = ["refund_order", "wire_transfer", "shell", "drop_table", "truncate_x", "search",
             "run_command", "unknown"]
    for tool in tools:
        for amount in (0, 50, 100, 101, 500, 10_000, 10_001):
            context = {"tool_name": tool, "stage": "call", "amount": amount}
            ours = authorizer.check(AGENT, "call_tool", "Tool", tool, context)
            answer = cedarpy.is_authorized({
                "principal": 'Agent::"support-bot"', "action": 'Action::"call_tool"',
                "resource": f"Tool::{json.dumps(tool)}", "context": context},
                policy.cedar.text, cedar_entities)
            assert not answer.diagnostics.errors
            assert ours.allowed == answer.allowed, (tool, amount)
            assert {p.policy_id for p in ours.policies} == set(answer.diagnostics.reasons)


def test_the_engine_uses_the_compiled_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Authorization through the engine does not call Cedar for compiled slices (a
    broken cedarpy call would deny) and still refuses what policies forbid."""
    def broken(*args: Any) -> Any:
        raise RuntimeError("cedarpy called")

    monkeypatch.setattr(authorization, "_cedar_batch", broken)
    engine = Engine(load_policy([*default_paths(), bundled_pack("examples")]), [AGENT])
    assert engine.authorize_tool(AGENT, "", "search_orders", {}, "call").allowed
    refused = engine.authorize_tool(AGENT, "", "shell", {}, "call")
    assert not refused.allowed and refused.reason() == "no-shell-tools"
    held = engine.authorize_tool(AGENT, "", "refund_order", {"amount": 500}, "call")
    assert not held.allowed and held.reason() == "example-refund-over-100"


def test_like_matches_as_cedar_on_every_string_and_pattern() -> None:
    """`*` spans any characters, newlines included; `\\*` is a literal star."""
    for pattern in PATTERNS:
        text = f"permit (principal, action, resource) when {{ context.s like {pattern} }};"
        est = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        compiled = compile_slice(est.items())
        assert compiled is not None
        for value in STRINGS:
            allowed, _, errors = _cedar(text, {
                "principal": 'Agent::"a1"', "action": 'Action::"x"', "resource": 'Tool::"t"',
                "context": {"s": value}})
            decided = compiled.decide(Uid(("Agent", "a1")), Uid(("Action", "x")),
                                      Uid(("Tool", "t")), {"s": value}, STORE)
            assert not errors and decided is not None and decided[0] == allowed, (pattern, value)
