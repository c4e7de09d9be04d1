"""Argument constraints on the tool calls a model proposes (OWASP ASI02 Tool Misuse).

The model chooses the arguments, so a refund of 10,000 or a recipient outside the company
is a decision to check before the call happens, not after. Constraints come from rule
files; patterns are compiled once per policy load.
"""

from __future__ import annotations

from typing import Any

from lictor.enforcement.types import Finding, ToolCall, Verdict, matches_tool
from lictor.rules.policy import ArgumentRule
from lictor.rules.regex_syntax import compile_re2
from lictor.rules.schema import ArgumentConstraint

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
    "array": (list,), "object": (dict,),
}


def _problem(name: str, value: Any, c: ArgumentConstraint, pattern: Any) -> str | None:
    """Why `value` breaks constraint `c`, or None."""
    if c.type is not None and (
        not isinstance(value, _TYPES[c.type]) or (c.type != "boolean" and isinstance(value, bool))
    ):
        return f"{name} must be a {c.type}"
    if c.enum is not None and value not in c.enum:
        return f"{name} must be one of {', '.join(map(str, c.enum))}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if c.minimum is not None and value < c.minimum:
            return f"{name} is {value}, below the minimum {c.minimum:g}"
        if c.maximum is not None and value > c.maximum:
            return f"{name} is {value}, above the maximum {c.maximum:g}"
    if c.max_length is not None and isinstance(value, str | list) and len(value) > c.max_length:
        return f"{name} is longer than {c.max_length}"
    if pattern is not None and isinstance(value, str) and pattern.fullmatch(value) is None:
        return f"{name} does not match the allowed pattern"
    return None


class ArgumentChecker:
    __slots__ = ("_rules",)

    def __init__(self, rules: tuple[ArgumentRule, ...]) -> None:
        self._rules = [
            (rule, {name: (c, compile_re2(c.pattern) if c.pattern else None)
                    for name, c in rule.constraints.items()})
            for rule in rules
        ]

    def check(self, calls: list[ToolCall], out: list[Finding]) -> None:
        for rule, constraints in self._rules:
            for call in calls:
                if not matches_tool(call.name, rule.tools):
                    continue
                problems = []
                for name, (constraint, pattern) in constraints.items():
                    if name not in call.arguments:
                        if constraint.required:
                            problems.append(f"{name} is required")
                        continue
                    problem = _problem(name, call.arguments[name], constraint, pattern)
                    if problem:
                        problems.append(problem)
                if problems:
                    spec = rule.spec
                    out.append(Finding(
                        spec.rule_id, Verdict(spec.verdict), spec.owasp, spec.severity,
                        f"{spec.description} ({call.name}: {'; '.join(problems)})",
                        evidence=call.name, shadow=spec.shadow))
