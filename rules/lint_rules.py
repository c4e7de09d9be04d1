"""YAML rules that can never fire, or fire only where another rule already did.

What each check assumes about the engine, stated once here:
- Message text in a request carries any trust label; model output, and the arguments of
  every tool call (proposed in a response, or resent in a request's history), are only
  ever `assistant`.
- Invisible-character rules look at message text only; PII rules act on requests only,
  on every text of them, and the first PII rule that takes an entity is the only one.
- The pattern scanner reports one rule per match: at each position, the first rule in its
  order (block before flag, enforced before shadow mode, then file order) wins.
"""

from __future__ import annotations

from collections.abc import Sequence

from lictor.rules.loader import LocatedRule
from lictor.rules.schema import TRUST_LABELS, Rule

RuleWarning = tuple[LocatedRule, str]  # the rule a warning is about, and what it says
View = tuple[str, str, str]  # (direction, trust, where)

REACHABLE: dict[tuple[str, str], frozenset[str]] = {
    ("request", "text"): frozenset(TRUST_LABELS),
    ("request", "tool_arguments"): frozenset({"assistant"}),
    ("response", "text"): frozenset({"assistant"}),
    ("response", "tool_arguments"): frozenset({"assistant"}),
}
WHY_UNREACHABLE = {
    ("request", "tool_arguments"): "tool-call arguments are only ever trust `assistant` "
    "(the model proposed them)",
    ("response", "text"): "model output is only ever trust `assistant`",
    ("response", "tool_arguments"): "tool-call arguments are only ever trust `assistant` "
    "(the model proposes them)",
}
SCANNER_ORDER = {"block": 0, "mask": 1, "flag": 2}  # as lictor.enforcement.pattern_scanner
TEXT_KINDS = ("patterns", "pii", "invisible")


def kind(rule: Rule) -> str:
    """The one `match` field a rule uses (the schema allows exactly one)."""
    return next(name for name in ("patterns", "pii", "invisible", "rate", "budget", "repeat",
                                  "calls", "arguments", "pinned_tools", "tainted_tools",
                                  "needs_approval", "handoffs") if getattr(rule.match, name))


def _directions(rule: Rule) -> tuple[str, ...]:
    d = rule.applies.direction
    return ("request", "response") if d == "both" else (d,)


def _parts(rule: Rule) -> list[tuple[str, str]]:
    """The (direction, where) parts of text a rule asks for, as the engine reads `applies`."""
    k = kind(rule)
    if k == "pii":
        return [("request", "text")] if "request" in _directions(rule) else []
    where = ("text",) if k == "invisible" else rule.applies.where
    return [(d, w) for d in _directions(rule) for w in where if (k != "invisible" or w == "text")]


def views(rule: Rule) -> frozenset[View]:
    """Every (direction, trust, where) in which the rule can see text."""
    return frozenset((d, t, w) for d, w in _parts(rule)
                     for t in rule.applies.trust if t in REACHABLE[(d, w)])


def _reach(lr: LocatedRule) -> list[str]:
    rule, k = lr.rule, kind(lr.rule)
    if k not in TEXT_KINDS:
        return []
    if not rule.applies.trust:
        return [f"rule {rule.id!r} can never fire: `applies.trust` is empty"]
    trust = ", ".join(rule.applies.trust)
    dead: list[str] = []
    for d in _directions(rule):
        for w in rule.applies.where:
            if k == "pii":
                if d == "response":
                    dead.append("PII rules act on requests only, never on model output")
            elif k == "invisible" and w == "tool_arguments":
                dead.append("invisible characters are looked for in message text only, "
                            "not in tool-call arguments")
            elif not REACHABLE[(d, w)] & set(rule.applies.trust):
                dead.append(f"{WHY_UNREACHABLE[(d, w)]}, and the rule applies to trust {trust}")
    if not dead:
        return []
    reasons = "; ".join(dict.fromkeys(dead))
    if not views(rule):
        return [f"rule {rule.id!r} can never fire: {reasons}"]
    return [f"part of the `applies` of rule {rule.id!r} has no effect: {reasons}"]


def _no_effect(lr: LocatedRule) -> list[str]:
    """Settings the engine ignores for this kind of rule."""
    rule, k = lr.rule, kind(lr.rule)
    out = []
    if k not in TEXT_KINDS and "applies" in rule.model_fields_set:
        out.append(f"`applies` has no effect on a `{k}` rule")
    if k == "pii" and {"where", "tools"} & rule.applies.model_fields_set:
        out.append("`applies.where` and `applies.tools` have no effect on a pii rule: "
                   "it looks at every text of a request")
    if rule.taints_session and (k not in ("patterns", "invisible")
                                or "request" not in _directions(rule)):
        out.append("`taints_session` has no effect: only pattern and invisible-character "
                   "rules that fire on a request taint the session")
    if rule.sensitive and k != "patterns":
        out.append("`sensitive` has no effect: only what pattern rules match is redacted")
    if "case_sensitive" in rule.match.model_fields_set and k != "patterns":
        out.append("`match.case_sensitive` has no effect: only patterns have a case")
    if "min_score" in rule.match.model_fields_set and k != "pii":
        out.append("`match.min_score` has no effect: only pii rules have a score")
    return [f"rule {rule.id!r}: {message}" for message in out]


def _covers(wide: Rule, narrow: Rule) -> bool:
    """Whether `wide` sees every text `narrow` sees (tool globs included)."""
    if not views(narrow) <= views(wide):
        return False
    uses_arguments = any(w == "tool_arguments" for _, _, w in views(narrow))
    return (not uses_arguments or "*" in wide.applies.tools
            or set(narrow.applies.tools) <= set(wide.applies.tools))


def _same_texts(a: Rule, b: Rule) -> bool:
    return views(a) == views(b) and set(a.applies.tools) == set(b.applies.tools)


def _where(lr: LocatedRule) -> str:
    return f"{lr.rule.id!r} ({lr.source})"


def _pattern_shadows(rules: Sequence[LocatedRule]) -> list[RuleWarning]:
    ordered = sorted((lr for lr in rules if kind(lr.rule) == "patterns" and views(lr.rule)),
                     key=lambda lr: (lr.rule.mode == "shadow", SCANNER_ORDER[lr.rule.verdict]))
    out: list[RuleWarning] = []
    for k, lr in enumerate(ordered):
        b = lr.rule
        takers: dict[int, LocatedRule] = {}  # pattern index -> the rule that wins it
        for i, pattern in enumerate(b.match.patterns):
            for earlier in ordered[:k]:
                a = earlier.rule
                if (pattern in a.match.patterns and _covers(a, b)
                        and (b.match.case_sensitive or not a.match.case_sensitive)):
                    takers[i] = earlier
                    break
        if not takers:
            continue
        names = list(dict.fromkeys(_where(t) for t in takers.values()))
        trial = " (in shadow mode, its trial records nothing)" if b.mode == "shadow" else ""
        if len(takers) < len(b.match.patterns):
            for i, t in takers.items():
                out.append((lr, f"pattern {i + 1} of rule {b.id!r} never fires for it: rule "
                                f"{_where(t)} has the same pattern and is matched first"))
            continue
        a_lr = next(iter(takers.values()))
        a = a_lr.rule
        if len(names) > 1:
            message = (f"rule {b.id!r} can never fire{trial}: each of its patterns is in a rule "
                       f"matched before it ({', '.join(names)})")
        elif set(a.match.patterns) == set(b.match.patterns) and _same_texts(a, b):
            message = (f"rule {b.id!r} is shadowed by rule {_where(a_lr)}: same patterns and "
                       f"applies, and that rule is matched first, so this one never "
                       f"fires{trial}")
        elif b.verdict == "flag" and a.verdict == "block":
            message = (f"flag rule {b.id!r} is redundant: its patterns are a subset of block rule "
                       f"{_where(a_lr)} over the texts it applies to; the block rule wins "
                       f"every match, so this one never fires{trial}")
        else:
            message = (f"rule {b.id!r} can never fire{trial}: its patterns are a subset of rule "
                       f"{_where(a_lr)}, which covers its texts and is matched first")
        out.append((lr, message))
    return out


def _pii_shadows(rules: Sequence[LocatedRule]) -> list[RuleWarning]:
    out: list[RuleWarning] = []
    earlier: list[LocatedRule] = []
    for lr in (lr for lr in rules if kind(lr.rule) == "pii" and views(lr.rule)):
        b = lr.rule
        taken: dict[str, list[LocatedRule]] = {}  # entity -> the earlier rules that take it
        for entity in b.match.pii:
            by = {t: next((e for e in earlier if entity in e.rule.match.pii
                           and e.rule.mode != "shadow"  # the engine looks past shadow rules
                           and e.rule.match.min_score <= b.match.min_score
                           and ("request", t, "text") in views(e.rule)), None)
                  for t in b.applies.trust}
            if all(e is not None for e in by.values()):
                taken[entity] = [e for e in by.values() if e is not None]
        earlier.append(lr)
        if not taken:
            continue
        takers = list({e.source: e for es in taken.values() for e in es}.values())
        names = ", ".join(_where(e) for e in takers)
        if len(taken) == len(b.match.pii):
            message = (f"rule {b.id!r} can never fire: every entity it lists is taken first by "
                       f"{names}, with the same or a lower min_score")
        else:
            message = (f"rule {b.id!r} never fires for {', '.join(taken)}: taken first by "
                       f"{names}, with the same or a lower min_score")
        out.append((lr, message))
    return out


def _duplicates(rules: Sequence[LocatedRule]) -> list[RuleWarning]:
    """Invisible-character rules all fire, so an identical one only repeats a finding."""
    out: list[RuleWarning] = []
    seen: dict[tuple[object, ...], LocatedRule] = {}
    for lr in (lr for lr in rules if kind(lr.rule) == "invisible"):
        key = (frozenset(lr.rule.match.invisible), views(lr.rule))
        if key in seen:
            out.append((lr, f"rule {lr.rule.id!r} duplicates rule {_where(seen[key])}: same "
                            "invisible kinds and texts, so it only repeats that finding"))
        else:
            seen[key] = lr
    return out


def rule_warnings(rules: Sequence[LocatedRule]) -> list[RuleWarning]:
    """Every warning about YAML rules, in no particular order."""
    out: list[RuleWarning] = []
    for lr in rules:
        out.extend((lr, message) for message in _reach(lr) + _no_effect(lr))
    return out + _pattern_shadows(rules) + _pii_shadows(rules) + _duplicates(rules)
