"""Which numbers in a tool call's Cedar context matter only by where they fall between the
policies' own constants, so a decision can be reused for every number in the same gap.

If every mention of `context.amount` in every policy is a comparison with a literal
(`context.amount > 100`), two amounts on the same side of each literal get the same
decision: 250 and 9,000 differ to Cedar only if some policy names a number between them.
Anything else (arithmetic, `has`, a comparison with another attribute) keeps the exact
value. Worked out once per policy load, from Cedar's own JSON form of the policies.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import cedarpy

COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
NUMERIC = ("amount", "hour", "weekday", "budget_left")


def _context_attr(node: Any) -> str | None:
    """`context.<attr>` as a node, or None."""
    dot = node.get(".") if isinstance(node, dict) else None
    if isinstance(dot, dict) and dot.get("left") == {"Var": "context"}:
        attr = dot.get("attr")
        return attr if isinstance(attr, str) else None
    return None


def _literal(node: Any) -> int | None:
    value = node.get("Value") if isinstance(node, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _nodes(node: Any) -> Iterator[Any]:
    """Every node below `node`, itself included."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)


def thresholds(policy_text: str) -> dict[str, tuple[int, ...]]:
    """For each numeric context attribute that policies only compare with literals, the
    sorted literals; attributes used any other way are left out (they stay exact)."""
    if not policy_text.strip():
        return {}
    parsed = json.loads(cedarpy.policies_to_json_str(policy_text))
    cuts: dict[str, set[int]] = {name: set() for name in NUMERIC}
    compared: set[int] = set()  # ids of `context.<attr>` nodes compared with a literal
    mentions: list[tuple[str, int]] = []  # every `context.<attr>` and `context has <attr>`
    for policy in parsed.get("staticPolicies", {}).values():
        for condition in policy.get("conditions", []):
            for node in _nodes(condition.get("body")):
                if not isinstance(node, dict) or len(node) != 1:
                    continue
                (op, operands), = node.items()
                attr = _context_attr(node)
                if attr is not None:
                    mentions.append((attr, id(node)))
                elif op == "has" and operands.get("left") == {"Var": "context"}:
                    mentions.append((str(operands.get("attr")), -1))  # never "compared"
                elif op in COMPARISONS and isinstance(operands, dict):
                    for side, other in (("left", "right"), ("right", "left")):
                        name = _context_attr(operands.get(side))
                        literal = _literal(operands.get(other))
                        if name in cuts and literal is not None:
                            cuts[name].add(literal)
                            compared.add(id(operands[side]))
    exact = {attr for attr, ident in mentions if ident not in compared}
    return {name: tuple(sorted(values)) for name, values in cuts.items() if name not in exact}


def bucket(value: int, cuts: tuple[int, ...]) -> tuple[int, bool]:
    """Where `value` falls among `cuts`: every comparison with a cut agrees within it."""
    at = bisect_left(cuts, value)
    return at, at < len(cuts) and cuts[at] == value
