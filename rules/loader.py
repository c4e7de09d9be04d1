"""Load rule packs and folders into a `Policy`, or fail naming file, line and the fix.

A pack is a folder of `*.yaml` rule files and `*.cedar` policies. Bundled packs live in
`rules/packs/<name>`; teams add their own folders by path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from lictor.rules.cedar_policies import CedarBundle, CedarLoadError, compile_cedar, validate_cedar
from lictor.rules.policy import (
    AgentActionRule,
    ArgumentRule,
    InvisibleRule,
    LimitRule,
    PatternRule,
    PiiRule,
    PinRule,
    Policy,
    RuleSpec,
)
from lictor.rules.schema import Rule, RuleFile, duration_seconds
from lictor.rules.tool_catalog import CatalogBuilder, CatalogSnapshot, cedar_schema
from lictor.rules.yaml_lines import LocatedYaml, YamlSyntaxError, load_located, short_source


class RuleLoadError(ValueError):
    """Every problem found in a load, each as `file:line: message`."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


DEFAULT_PACKS: tuple[str, ...] = ("default", "owasp-agentic")


def default_paths() -> list[Path]:
    """The bundled packs lictor runs with when the config names none."""
    return [bundled_pack(name) for name in DEFAULT_PACKS]


def bundled_pack(name: str) -> Path:
    root = Path(str(resources.files("lictor.rules").joinpath("packs")))
    path = root / name
    if not path.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise RuleLoadError([f"no bundled rule pack {name!r}; bundled packs: {', '.join(known)}"])
    return path


def rule_files(paths: Iterable[Path], *, with_tests: bool = False) -> list[Path]:
    """Rule files (`*.yaml`, `*.cedar`) under `paths`; rule tests (`*_test.yaml`) only
    when asked for."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(
                p for p in sorted(path.rglob("*")) if p.suffix in (".yaml", ".yml", ".cedar")
            )
        elif path.is_file():
            out.append(path)
        else:
            raise RuleLoadError([f"{path}: no such rule file or folder"])
    if not with_tests:
        out = [p for p in out if not p.name.endswith("_test.yaml")]
    return out


def pydantic_problems(path: Path, doc: LocatedYaml, exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = doc.line_of(loc)
        where = ".".join(str(p) for p in loc) or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {loc[-1]!r} (check its spelling against the rule format)"
        elif err["type"] == "missing":
            msg = f"required field {loc[-1]!r} is missing"
        problems.append(f"{path}:{line}: {where}: {msg}")
    return problems


M = TypeVar("M", bound=BaseModel)


def load_validated(
    path: Path, text: str, model: type[M], problems: list[str]
) -> tuple[LocatedYaml, M] | None:
    """Parse and validate one YAML file; on failure add `file:line: ...` to `problems`."""
    try:
        doc = load_located(text)
    except YamlSyntaxError as exc:
        problems.append(f"{path}:{exc.line}: YAML syntax error: {exc}")
        return None
    try:
        return doc, model.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        problems.extend(pydantic_problems(path, doc, exc))
        return None


def _spec(rule: Rule, source: str) -> RuleSpec:
    direction = rule.applies.direction
    return RuleSpec(
        rule_id=rule.id,
        description=rule.description,
        owasp=rule.owasp,
        severity=rule.severity,
        verdict=rule.verdict,
        shadow=rule.mode == "shadow",
        directions=frozenset({"request", "response"} if direction == "both" else {direction}),
        trust=frozenset(rule.applies.trust),
        source=source,
        where=frozenset(rule.applies.where),
        tools=rule.applies.tools,
        sensitive=rule.sensitive,
        taints=rule.taints_session,
    )


def _limit(spec: RuleSpec, rule: Rule) -> LimitRule:
    m = rule.match
    if m.rate is not None:
        return LimitRule(spec, "rate", m.rate.requests, duration_seconds(m.rate.per),
                         m.rate.scope)
    if m.budget is not None:
        return LimitRule(spec, "budget", m.budget.tokens, duration_seconds(m.budget.per),
                         m.budget.scope)
    if m.repeat is not None:
        return LimitRule(spec, "repeat", m.repeat.same_tool_call,
                         duration_seconds(m.repeat.per), m.repeat.scope)
    if m.tainted_tools is not None:
        return LimitRule(spec, "tainted", 1, duration_seconds(m.tainted_tools.per), "session",
                         m.tainted_tools.tools)
    assert m.calls is not None
    return LimitRule(spec, "calls", m.calls.calls, duration_seconds(m.calls.per), m.calls.scope,
                     m.calls.tools)


@dataclass
class _Rules:
    """Rules sorted by kind as they are read: each kind has its own compiled form."""

    pattern: list[PatternRule] = field(default_factory=list)
    pii: list[PiiRule] = field(default_factory=list)
    invisible: list[InvisibleRule] = field(default_factory=list)
    limit: list[LimitRule] = field(default_factory=list)
    pin: list[PinRule] = field(default_factory=list)
    arguments: list[ArgumentRule] = field(default_factory=list)
    agent_actions: list[AgentActionRule] = field(default_factory=list)

    def add(self, spec: RuleSpec, rule: Rule) -> None:
        m = rule.match
        if m.pii:
            self.pii.append(PiiRule(spec, m.pii, m.min_score))
        elif m.invisible:
            self.invisible.append(InvisibleRule(spec, frozenset(m.invisible)))
        elif m.rate or m.budget or m.repeat or m.calls or m.tainted_tools:
            self.limit.append(_limit(spec, rule))
        elif m.needs_approval:
            self.agent_actions.append(AgentActionRule(spec, "approval", m.needs_approval))
        elif m.handoffs:
            self.agent_actions.append(AgentActionRule(spec, "handoffs", m.handoffs))
        elif m.arguments:
            self.arguments.append(ArgumentRule(spec, m.arguments.tools,
                                               dict(m.arguments.constraints)))
        elif m.pinned_tools:
            self.pin.append(PinRule(spec, dict(m.pinned_tools)))
        else:
            self.pattern.append(PatternRule(spec, m.patterns, m.case_sensitive))


@dataclass(slots=True, frozen=True)
class LocatedRule:
    """A validated rule and where it was written."""

    rule: Rule
    path: Path
    line: int

    @property
    def source(self) -> str:
        return f"{self.path}:{self.line}"


def read_rule_file(path: Path, text: str, problems: list[str],
                   catalog: CatalogBuilder | None = None) -> list[LocatedRule]:
    """The rules of one YAML rule file (its catalog goes to `catalog`); on failure none,
    and `file:line: ...` problems."""
    loaded = load_validated(path, text, RuleFile, problems)
    if loaded is None:
        return []
    doc, parsed = loaded
    if catalog is not None:
        catalog.add(path, doc, parsed.catalog, problems)
    return [LocatedRule(rule, path, doc.line_of(("rules", i)))
            for i, rule in enumerate(parsed.rules)]


def unique_rules(located: Iterable[LocatedRule], problems: list[str]) -> list[LocatedRule]:
    """The rules whose id was not used before; each reuse is a problem naming both places."""
    seen_ids: dict[str, str] = {}
    out = []
    for lr in located:
        if lr.rule.id in seen_ids:
            problems.append(f"{lr.source}: rule id {lr.rule.id!r} is already used at "
                            f"{seen_ids[lr.rule.id]}")
            continue
        seen_ids[lr.rule.id] = lr.source
        out.append(lr)
    return out


def load_policy(paths: Sequence[Path]) -> Policy:
    """Read, validate and compile every rule file under `paths` into one Policy."""
    problems: list[str] = []
    digest = hashlib.sha256()
    rules = _Rules()
    cedar_files: list[tuple[Path, str]] = []
    located: list[LocatedRule] = []
    catalog = CatalogBuilder()
    files = rule_files(paths)
    for path in files:
        raw = path.read_bytes()
        digest.update(path.name.encode() + b"\0" + raw + b"\0")
        text = raw.decode("utf-8", errors="replace")
        if path.suffix == ".cedar":
            cedar_files.append((path, text))
        else:
            located.extend(read_rule_file(path, text, problems, catalog))
    for lr in unique_rules(located, problems):
        rules.add(_spec(lr.rule, short_source(lr.path, lr.line)), lr.rule)
    snapshot = catalog.snapshot()
    rules.arguments.extend(_catalog_rules(snapshot))
    cedar: CedarBundle | None = None
    try:
        cedar = compile_cedar(cedar_files)
    except CedarLoadError as exc:
        problems.append(str(exc))
    if cedar is not None and not problems:
        problems.extend(validate_cedar(cedar, cedar_schema(snapshot)))
    if problems or cedar is None:
        raise RuleLoadError(problems)
    return Policy(
        pattern_rules=tuple(rules.pattern),
        pii_rules=tuple(rules.pii),
        invisible_rules=tuple(rules.invisible),
        limit_rules=tuple(rules.limit),
        pin_rules=tuple(rules.pin),
        argument_rules=tuple(rules.arguments),
        agent_action_rules=tuple(rules.agent_actions),
        cedar=cedar,
        catalog=snapshot,
        context_attributes=context_attributes(cedar.text),
        content_hash=digest.hexdigest(),
        sources=tuple(str(p) for p in files),
    )


def _catalog_rules(catalog: CatalogSnapshot) -> list[ArgumentRule]:
    """A tool's argument schema in the catalog is a blocking rule on every proposed call."""
    return [
        ArgumentRule(
            RuleSpec(
                rule_id=f"catalog.{entry.tool}.arguments",
                description=f"arguments of {entry.tool} outside its catalog schema",
                owasp=("ASI02",),
                severity="high",
                verdict="block",
                shadow=False,
                directions=frozenset({"response"}),
                trust=frozenset({"assistant"}),
                source=entry.source,
            ),
            (entry.tool,),
            entry.constraints,
        )
        for entry in catalog.argument_rules
    ]


_CONTEXT_ATTR = re.compile(r"""context\s*(?:\.\s*([A-Za-z_]\w*)|\[\s*"([^"]+)"\s*\])""")


def context_attributes(cedar_text: str) -> frozenset[str]:
    """The `context` attributes policies read: only those are computed per call."""
    return frozenset(a or b for a, b in _CONTEXT_ATTR.findall(cedar_text))
