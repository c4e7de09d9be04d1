"""Rule tests: YAML cases, written by compliance teams, that say what a rule must decide.

A case is protocol-neutral (trust-labelled texts and tool calls in, a verdict and rule ids
out), so one case covers every protocol's adapter. Case files are named `*_test.yaml` and
live beside the rules they test; the rule loader skips them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lictor.rules.loader import RuleLoadError, load_validated, rule_files
from lictor.rules.schema import Strict, TrustLabel

CASE_SUFFIX = "_test.yaml"


class CaseText(Strict):
    trust: TrustLabel
    text: str
    tool: str = ""  # set: the text is the arguments of a call to this tool


class CaseToolCall(Strict):
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolDefinition(Strict):
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)


class Expect(Strict):
    verdict: Literal["allow", "flag", "mask", "approve", "block"]
    rules: tuple[str, ...] = ()  # each must be among the findings
    absent: tuple[str, ...] = ()  # none of these may be


class Case(Strict):
    name: str = Field(min_length=1)
    agent: str = "test-agent"
    direction: Literal["request", "response"] = "request"
    model: str = "test-model"
    texts: tuple[CaseText, ...] = ()
    tool_calls: tuple[CaseToolCall, ...] = ()  # proposed by the model (response)
    offered_tools: tuple[str, ...] = ()  # offered to the model (request)
    hosted_tools: tuple[str, ...] = ()  # provider-run tools offered, by type ("mcp")
    tool_definitions: dict[str, ToolDefinition] = Field(default_factory=dict)  # also offered
    times: int = Field(default=1, ge=1, le=10_000)  # evaluated this often; the last counts
    before: tuple[CaseText, ...] = ()  # an earlier request of the same session, judged first
    expect: Expect


class CaseFile(Strict):
    cases: tuple[Case, ...] = ()


@dataclass(slots=True, frozen=True)
class LocatedCase:
    case: Case
    source: str  # file:line


def case_files(paths: Sequence[Path]) -> list[Path]:
    return [p for p in rule_files(paths, with_tests=True) if p.name.endswith(CASE_SUFFIX)]


def load_cases(paths: Sequence[Path]) -> list[LocatedCase]:
    """Every case under `paths`, or RuleLoadError naming each bad file and line."""
    problems: list[str] = []
    out: list[LocatedCase] = []
    for path in case_files(paths):
        loaded = load_validated(path, path.read_text("utf-8"), CaseFile, problems)
        if loaded is None:
            continue
        doc, parsed = loaded
        out.extend(
            LocatedCase(case, f"{path}:{doc.line_of(('cases', i))}")
            for i, case in enumerate(parsed.cases)
        )
    if problems:
        raise RuleLoadError(problems)
    return out
