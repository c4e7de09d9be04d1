"""Cedar policies compiled to Python closures, for the decisions Cedar's own engine would
take ~35 us (and a p99 over 100 us) to reach through its binding.

Only a subset is compiled: scopes, literals, `context`/entity attributes, `has`, `like`,
`in`, `is`, comparisons, arithmetic, sets and records, `if`. A policy using anything else
(extension functions, tags, templates) leaves its slice to cedarpy. At evaluation, any
case where Cedar would report an error, or a value outside the subset, raises `Defer`
and cedarpy decides: an answer from here is always the answer Cedar gives
(`tests/test_cedar_compiled.py` checks both on generated policies and requests).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class Uid(tuple[str, str]):
    """An entity uid, `Uid((type, id))`: its own type, so it never equals a set or record
    (a tuple subclass: made in C, unlike a NamedTuple's Python `__new__`)."""

    __slots__ = ()


class CedarSet(tuple[Any, ...]):
    """A Cedar set (elements compared with Cedar's equality, not Python's)."""

    __slots__ = ()


class Defer(Exception):
    """Cedar would report an error here, or the value is outside the compiled subset."""


class Unsupported(ValueError):
    """A policy uses a construct this compiler does not handle (cedarpy evaluates it)."""


class EntityStore:
    """Entity attributes and transitive ancestors, from the same JSON Cedar is given."""

    __slots__ = ("ancestors", "attrs")

    def __init__(self, entities: Iterable[dict[str, Any]]) -> None:
        self.attrs: dict[Uid, dict[str, Any]] = {}
        parents: dict[Uid, list[Uid]] = {}
        for entity in entities:
            uid = _uid(entity["uid"])
            self.attrs[uid] = {k: literal(v) for k, v in entity.get("attrs", {}).items()}
            parents[uid] = [_uid(p) for p in entity.get("parents", [])]
        self.ancestors: dict[Uid, frozenset[Uid]] = {}
        for uid, direct in parents.items():
            seen: set[Uid] = set()
            stack = list(direct)
            while stack:
                parent = stack.pop()
                if parent not in seen:
                    seen.add(parent)
                    stack.extend(parents.get(parent, ()))
            self.ancestors[uid] = frozenset(seen)

    def is_in(self, uid: Uid, group: Uid) -> bool:
        """Cedar's `in` on two entities (an entity not in the store is in itself only)."""
        return uid == group or group in self.ancestors.get(uid, ())


# (principal Uid, action Uid, resource Uid, context record, EntityStore): what an
# expression reads, indexed by position (a plain tuple is the cheapest to build and read)
Env = tuple[Any, ...]
Expr = Callable[[Env], Any]


def _uid(raw: Any) -> Uid:
    if not (isinstance(raw, dict) and isinstance(raw.get("type"), str)
            and isinstance(raw.get("id"), str)):
        raise Unsupported(f"entity reference {raw!r}")
    return Uid((raw["type"], raw["id"]))


def literal(value: Any) -> Any:
    """A Cedar value from its JSON form; `Defer` for what Cedar reads otherwise or not
    at all (floats, null, out-of-range integers, `__extn`, odd strings)."""
    kind = type(value)
    if kind is str:
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise Defer("a lone surrogate is not valid JSON text") from None
        return value
    if kind is bool:
        return value
    if kind is int:
        if not I64_MIN <= value <= I64_MAX:
            raise Defer("integer out of Cedar's range")
        return value
    if kind is list:
        return CedarSet(literal(v) for v in value)
    if kind is dict:
        if "__entity" in value and len(value) == 1:
            return _uid(value["__entity"])
        return record(value)
    raise Defer(f"{kind.__name__} is not a Cedar value")


def record(value: dict[str, Any]) -> dict[str, Any]:
    """A Cedar record from a JSON object (the context): the same dict when every value is
    already a plain ASCII string, in-range integer or boolean, the common case."""
    if any(type(k) is not str or k.startswith("__") for k in value) \
            or value.keys() == {"type", "id"}:
        raise Defer("an escape or implicit entity, left to Cedar")
    for v in value.values():
        kind = type(v)
        if not (kind is bool or (kind is str and v.isascii())
                or (kind is int and I64_MIN <= v <= I64_MAX)):
            return {k: literal(v) for k, v in value.items()}
    return value


def equal(a: Any, b: Any) -> bool:
    """Cedar's `==`: values of different types are unequal (True is not 1)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is CedarSet:
        return all(any(equal(x, y) for y in b) for x in a) and \
            all(any(equal(y, x) for x in a) for y in b)
    if kind is dict:
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _contains(items: CedarSet, value: Any) -> bool:
    return any(equal(item, value) for item in items)


def _want(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise Defer(f"expected {kind.__name__}")
    return value


def _long(value: Any) -> int:
    if type(value) is not int:
        raise Defer("expected a Long")
    return value


def _checked(value: int) -> int:
    if not I64_MIN <= value <= I64_MAX:
        raise Defer("Long overflow")
    return value


def _in(store: EntityStore, left: Any, right: Any) -> bool:
    uid = _want(left, Uid)
    if type(right) is Uid:
        return store.is_in(uid, right)
    groups = [_want(g, Uid) for g in _want(right, CedarSet)]
    return any(store.is_in(uid, g) for g in groups)


def _attr(value: Any, name: str, store: EntityStore) -> Any:
    kind = type(value)
    if kind is Uid:
        attrs = store.attrs.get(value)
        if attrs is None:
            raise Defer("entity does not exist")
    elif kind is dict:
        attrs = value
    else:
        raise Defer("attribute of a value with none")
    if name not in attrs:
        raise Defer(f"no attribute {name!r}")
    return attrs[name]


def _has(value: Any, name: str, store: EntityStore) -> bool:
    kind = type(value)
    if kind is Uid:
        return name in store.attrs.get(value, {})
    if kind is dict:
        return name in value
    raise Defer("`has` on a value with no attributes")


def _like(pattern: list[Any]) -> re.Pattern[str]:
    parts = []
    for element in pattern:
        if element == "Wildcard":
            parts.append(".*")
        elif isinstance(element, dict) and isinstance(element.get("Literal"), str):
            parts.append(re.escape(element["Literal"]))
        else:
            raise Unsupported(f"like pattern element {element!r}")
    return re.compile("".join(parts), re.DOTALL)


_VARS = {"principal": 0, "action": 1, "resource": 2, "context": 3}
_ORDER: dict[str, Callable[[int, int], bool]] = {
    "<": int.__lt__, "<=": int.__le__, ">": int.__gt__, ">=": int.__ge__}
_ARITH: dict[str, Callable[[int, int], int]] = {
    "+": int.__add__, "-": int.__sub__, "*": int.__mul__}
_SETS: dict[str, Callable[[CedarSet, CedarSet], bool]] = {
    "containsAll": lambda a, b: all(_contains(a, x) for x in b),
    "containsAny": lambda a, b: any(_contains(a, x) for x in b)}


def compile_expr(node: Any) -> Expr:
    """A closure evaluating one expression of Cedar's JSON policy form."""
    if not isinstance(node, dict) or len(node) != 1:
        raise Unsupported(f"expression {node!r}")
    ((op, arg),) = node.items()
    if op == "Value":
        value = literal(arg)
        return lambda env: value
    if op == "Var":
        index = _VARS.get(arg)
        if index is None:
            raise Unsupported(f"variable {arg!r}")
        return lambda env: env[index]
    if op == "Set":
        if all(isinstance(a, dict) and a.keys() == {"Value"} for a in arg):
            constant = literal([a["Value"] for a in arg])  # built once, not per request
            return lambda env: constant
        items = [compile_expr(a) for a in arg]
        return lambda env: CedarSet(f(env) for f in items)
    if op == "Record":
        fields = [(k, compile_expr(v)) for k, v in arg.items()]
        return lambda env: {k: f(env) for k, f in fields}
    if op in ("!", "neg", "isEmpty"):
        inner = compile_expr(arg["arg"])
        if op == "!":
            return lambda env: not _want(inner(env), bool)
        if op == "neg":
            return lambda env: _checked(-_long(inner(env)))
        return lambda env: not _want(inner(env), CedarSet)
    if op in (".", "has"):
        left, name = compile_expr(arg["left"]), arg["attr"]
        if op == "." and arg["left"] == {"Var": "context"}:
            return _context_attr(name)  # the most common read, one call
        if op == ".":
            return lambda env: _attr(left(env), name, env[4])
        return lambda env: _has(left(env), name, env[4])
    if op == "like":
        left, match = compile_expr(arg["left"]), _like(arg["pattern"]).fullmatch

        def like(env: Env) -> bool:
            value = left(env)
            if type(value) is not str:
                raise Defer("`like` on a value that is not a string")
            return match(value) is not None
        return like
    if op == "is":
        left, kind = compile_expr(arg["left"]), arg["entity_type"]
        group = compile_expr(arg["in"]) if "in" in arg else None

        def is_type(env: Env) -> bool:
            uid = _want(left(env), Uid)
            found = uid[0] == kind
            if group is not None:  # evaluated either way: an error in it is never hidden
                found = _in(env[4], uid, group(env)) and found
            return found
        return is_type
    if op == "if-then-else":
        cond, then, other = (compile_expr(arg[k]) for k in ("if", "then", "else"))
        return lambda env: then(env) if _want(cond(env), bool) else other(env)
    if op not in ("&&", "||", "==", "!=", "in", "contains", *_ORDER, *_ARITH, *_SETS):
        raise Unsupported(f"operator {op!r}")
    return _binary(op, arg)


def _binary(op: str, arg: dict[str, Any]) -> Expr:
    left, right = compile_expr(arg["left"]), compile_expr(arg["right"])
    if op == "&&":
        return lambda env: _want(left(env), bool) and _want(right(env), bool)
    if op == "||":
        return lambda env: _want(left(env), bool) or _want(right(env), bool)
    if op == "==":
        return lambda env: equal(left(env), right(env))
    if op == "!=":
        return lambda env: not equal(left(env), right(env))
    if op == "in":
        return lambda env: _in(env[4], left(env), right(env))
    if op == "contains":
        strings = _string_set(arg["left"])
        if strings is not None:  # a set of string literals: hashed, same answers
            return lambda env: type(value := right(env)) is str and value in strings
        return lambda env: _contains(_want(left(env), CedarSet), right(env))
    if op in _ORDER:
        compare = _ORDER[op]
        return lambda env: compare(_long(left(env)), _long(right(env)))
    if op in _ARITH:
        apply = _ARITH[op]
        return lambda env: _checked(apply(_long(left(env)), _long(right(env))))
    test = _SETS[op]
    return lambda env: test(_want(left(env), CedarSet), _want(right(env), CedarSet))


def _context_attr(name: str) -> Expr:
    def read(env: Env) -> Any:
        try:
            return env[3][name]
        except KeyError:
            raise Defer(f"no attribute {name!r}") from None
    return read


def _string_set(node: Any) -> frozenset[str] | None:
    """The strings of a literal set of strings only (`["a", "b"]`), else None."""
    items = node.get("Set") if isinstance(node, dict) and len(node) == 1 else None
    if not isinstance(items, list) or not all(
            isinstance(a, dict) and a.keys() == {"Value"} and type(a["Value"]) is str
            for a in items):
        return None
    return frozenset(literal(a["Value"]) for a in items)


ScopeTest = Callable[[Uid, EntityStore], bool]


def compile_scope(scope: dict[str, Any]) -> ScopeTest | None:
    """The test of one scope constraint (None: any entity)."""
    op = scope.get("op")
    if op == "All":
        return None
    if "slot" in scope:
        raise Unsupported("template slot")
    if op == "==":
        target = _uid(scope["entity"])
        return lambda uid, store: uid == target
    if op == "in":
        if "entities" in scope:
            groups = [_uid(e) for e in scope["entities"]]
            return lambda uid, store: any(store.is_in(uid, g) for g in groups)
        group = _uid(scope["entity"])
        return lambda uid, store: store.is_in(uid, group)
    if op == "is":
        kind = scope["entity_type"]
        if "in" not in scope:
            return lambda uid, store: uid[0] == kind
        inner = compile_scope({"op": "in", **scope["in"]})
        assert inner is not None
        return lambda uid, store: uid[0] == kind and inner(uid, store)
    raise Unsupported(f"scope {scope!r}")


class CompiledPolicy(NamedTuple):
    policy_id: str
    forbid: bool
    satisfied: Callable[[Env], bool]  # scope, then conditions in order, as Cedar does


def compile_policy(policy_id: str, policy: dict[str, Any]) -> CompiledPolicy:
    """One policy of Cedar's JSON form; `Unsupported` if any part is outside the subset."""
    effect = policy.get("effect")
    if effect not in ("permit", "forbid"):
        raise Unsupported(f"effect {effect!r}")
    scopes = []
    for index, name in enumerate(("principal", "action", "resource")):
        test = compile_scope(policy[name])
        if test is not None:
            scopes.append((index, test))
    conditions = []
    for condition in policy.get("conditions", []):
        kind = condition.get("kind")
        if kind not in ("when", "unless"):
            raise Unsupported(f"condition kind {kind!r}")
        conditions.append((kind == "when", compile_expr(condition["body"])))

    def satisfied(env: Env) -> bool:
        store = env[4]
        for index, test in scopes:
            if not test(env[index], store):
                return False
        return all(_want(body(env), bool) is when for when, body in conditions)

    return CompiledPolicy(policy_id, effect == "forbid", satisfied)


def why_not_compiled(policy: dict[str, Any]) -> str | None:
    """What keeps a policy (Cedar's JSON form) out of the compiled subset, or None."""
    try:
        compile_policy("policy", policy)
    except (Unsupported, Defer) as exc:
        return str(exc)
    except (KeyError, TypeError, AttributeError) as exc:
        return f"unexpected policy form ({type(exc).__name__}: {exc})"
    return None


class CompiledSlice(NamedTuple):
    policies: tuple[CompiledPolicy, ...]

    def decide(self, principal: Uid, action: Uid, resource: Uid, context: dict[str, Any],
               store: EntityStore) -> tuple[bool, tuple[str, ...]] | None:
        """(allowed, deciding policy ids) as Cedar decides, or None when Cedar must: some
        policy errs (lictor denies then, naming the error) or a value is outside the subset.
        Every policy is evaluated, as Cedar does, so no error goes unseen."""
        try:
            env = (principal, action, resource, record(context), store)
            permits: list[str] = []
            forbids: list[str] = []
            for policy_id, forbid, satisfied in self.policies:
                if satisfied(env):
                    (forbids if forbid else permits).append(policy_id)
        except (Defer, RecursionError):
            return None
        if forbids:
            return False, tuple(forbids)
        return bool(permits), tuple(permits)


def compile_slice(policies: Iterable[tuple[str, dict[str, Any]]],
                  done: dict[str, CompiledPolicy | None] | None = None) -> CompiledSlice | None:
    """The policies compiled, or None if one is outside the subset. `done` shares
    compiled policies between slices that hold the same ones."""
    done = {} if done is None else done
    out = []
    for policy_id, policy in policies:
        if policy_id not in done:
            try:
                done[policy_id] = compile_policy(policy_id, policy)
            except (Unsupported, Defer, KeyError, TypeError, AttributeError):
                done[policy_id] = None
        compiled = done[policy_id]
        if compiled is None:
            return None
        out.append(compiled)
    return CompiledSlice(tuple(out))
