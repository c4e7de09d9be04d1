"""Loading `.cedar` policy files into one compiled PolicySet, with file:line errors.

Cedar numbers policies `policy0..N` in source order; we keep, for each, the file, the
line and its annotations (`@id`, `@on_deny`, `@needs_approval` ...), so a decision can
name its policy. The whole set is validated against lictor's Cedar schema at load.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from lictor.rules.cedar_slices import PolicySlices, slices_from_text
from lictor.rules.cedar_thresholds import thresholds
from lictor.rules.schema import DURATION, duration_seconds
from lictor.rules.yaml_lines import short_source

ON_DENY_VALUES = ("remove", "block")
APPROVAL_MODES = ("hold", "pending")


@dataclass(slots=True, frozen=True)
class CedarApproval:
    """A `forbid` annotated `@needs_approval("team")`: what it forbids, a human may allow.

    `team` "" (written `@needs_approval("any")`) means any admin may approve."""

    team: str
    approvers: int
    mode: str  # hold | pending
    timeout_s: int
    summary: str  # template over the call's arguments, e.g. "refund {amount} for {order_id}"


@dataclass(slots=True, frozen=True)
class CedarPolicyInfo:
    policy_id: str  # cedar's own id: policy0, policy1, ...
    name: str  # the @id annotation, or file:line when absent
    effect: str
    on_deny: str  # what a forbidden tool call does: "remove" (default) or "block"
    source: str  # pack/file:line
    location: str = ""  # full path:line, for error messages
    approval: CedarApproval | None = None


@dataclass(slots=True, frozen=True)
class CedarBundle:
    """Compiled policies: parsed once at load, reused for every authorization."""

    policy_set: Any  # cedarpy.PolicySet (no type stubs)
    policies: dict[str, CedarPolicyInfo]
    text: str
    # numeric context attributes policies only compare with literals -> those literals
    slices: PolicySlices  # the same policies cut by action and resource (what Cedar runs)
    thresholds: dict[str, tuple[int, ...]] = field(default_factory=dict)


class CedarLoadError(ValueError):
    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


def split_statements(text: str) -> list[tuple[int, str]]:
    """Split Cedar source into (start line, statement) at top-level `;`.

    Strings and `//` comments are skipped, so a `;` inside them does not split.
    """
    out: list[tuple[int, str]] = []
    start, line, start_line, i = 0, 1, 1, 0
    seen_code = False
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
        elif ch == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif ch == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\":
                    i += 1
                elif text[i] == "\n":
                    line += 1
                i += 1
        elif ch == ";":
            out.append((start_line, text[start : i + 1]))
            start, seen_code = i + 1, False
        elif not ch.isspace() and not seen_code:
            seen_code, start_line = True, line
        i += 1
    if seen_code:
        out.append((start_line, text[start:]))
    return out


def statement_errors(path: str, text: str) -> list[CedarLoadError]:
    """Every statement of a file that does not parse, with its line (cedarpy names none)."""
    errors = []
    for line, stmt in split_statements(text):
        try:
            cedarpy.policies_to_json_str(stmt)
        except Exception as exc:
            errors.append(CedarLoadError(path, line, f"Cedar syntax error: {exc}"))
    return errors


def parse_file(path: str, text: str) -> list[tuple[int, dict[str, Any]]]:
    """Parse one file; return (line, policy JSON) per policy, or raise with file:line."""
    statements = split_statements(text)
    try:
        parsed = json.loads(cedarpy.policies_to_json_str(text))
    except Exception as exc:  # cedarpy raises ValueError with no location: find it
        errors = statement_errors(path, text)
        if errors:
            raise errors[0] from None
        line = statements[-1][0] if statements else 1
        raise CedarLoadError(path, line, f"Cedar syntax error: {exc}") from None
    policies = list(parsed.get("staticPolicies", {}).values())
    if parsed.get("templates"):
        raise CedarLoadError(path, 1, "policy templates are not supported in rule packs")
    lines = [line for line, _ in statements]
    if len(lines) != len(policies):  # cannot pair them reliably; keep the file's first line
        lines = [1] * len(policies)
    return list(zip(lines, policies, strict=True))


def _approval(path: Path, line: int, effect: str, notes: dict[str, str]) -> CedarApproval | None:
    """The approval annotations of one policy, checked; None when it needs no human."""
    keys = ("needs_approval", "approvers", "approval_mode", "approval_timeout", "summary")
    if "needs_approval" not in notes:
        extra = [k for k in keys if k in notes]
        if extra:
            raise CedarLoadError(str(path), line, f"@{extra[0]} needs @needs_approval(\"team\")")
        return None
    if effect != "forbid":
        raise CedarLoadError(str(path), line, "@needs_approval goes on a `forbid` policy: what "
                             "it forbids, an approver may allow")
    approvers = notes.get("approvers", "1")
    if not approvers.isdigit() or not 1 <= int(approvers) <= 10:
        raise CedarLoadError(str(path), line, f"@approvers must be a number from 1 to 10, "
                             f"not {approvers!r}")
    mode = notes.get("approval_mode", "pending")
    if mode not in APPROVAL_MODES:
        raise CedarLoadError(str(path), line, f"@approval_mode must be one of "
                             f"{APPROVAL_MODES}, not {mode!r}")
    timeout = notes.get("approval_timeout", "60s")
    if not re.fullmatch(DURATION, timeout):
        raise CedarLoadError(str(path), line, f"@approval_timeout must be a duration such as "
                             f"30s or 5m, not {timeout!r}")
    team = notes["needs_approval"].strip()
    return CedarApproval(
        team="" if team in ("", "any") else team,
        approvers=int(approvers),
        mode=mode,
        timeout_s=duration_seconds(timeout),
        summary=notes.get("summary", "{tool}"),
    )


def policy_info(policy_id: str, path: Path, line: int, policy: dict[str, Any]) -> CedarPolicyInfo:
    """What lictor keeps of one parsed policy; a bad `@on_deny` raises with file:line."""
    annotations = policy.get("annotations", {})
    on_deny = annotations.get("on_deny", "remove")
    if on_deny not in ON_DENY_VALUES:
        raise CedarLoadError(
            str(path), line, f"@on_deny must be one of {ON_DENY_VALUES}, not {on_deny!r}"
        )
    return CedarPolicyInfo(
        policy_id=policy_id,
        # Without @id a policy is named by file:line, as audit records have always named it.
        name=annotations.get("id") or f"{path.name}:{line}",
        effect=policy["effect"],
        on_deny=on_deny,
        source=short_source(path, line),
        location=f"{path}:{line}",
        approval=_approval(path, line, policy["effect"], annotations),
    )


def compile_cedar(files: Sequence[tuple[Path, str]]) -> CedarBundle:
    """Compile every `.cedar` file into one PolicySet; annotations are checked here."""
    chunks: list[str] = []
    infos: dict[str, CedarPolicyInfo] = {}
    for path, text in files:
        for line, policy in parse_file(str(path), text):
            policy_id = f"policy{len(infos)}"
            infos[policy_id] = policy_info(policy_id, path, line, policy)
        chunks.append(text if text.endswith("\n") else text + "\n")
    full = "".join(chunks)
    policy_set = cedarpy.PolicySet.from_str(full)
    return CedarBundle(policy_set=policy_set, policies=infos, text=full,
                       thresholds=thresholds(full), slices=slices_from_text(full))


def validate_cedar(bundle: CedarBundle, schema: str) -> list[str]:
    """Type-check every policy against the schema: `file:line: policy <id>: <error>`."""
    if not bundle.policies:
        return []
    result = cedarpy.validate_policies(bundle.text, schema)
    problems = []
    for err in result.errors:
        info = bundle.policies.get(err.policy_id)
        message = re.sub(r"^for policy `policy\d+`, ", "", str(err.error))
        if info is None:
            problems.append(f"Cedar schema: {message}")
        else:
            problems.append(f"{info.location}: policy {info.name}: {message}")
    return problems
