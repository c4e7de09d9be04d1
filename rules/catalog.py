"""The rules catalog: a Markdown table generated from rule files, for people to read.

It maps every rule to its OWASP ids, what it enforces and its known limits, and states per
OWASP Agentic risk how fully the packs cover it (from the packs' own `coverage:` notes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lictor.rules.loader import rule_files
from lictor.rules.schema import Coverage, Rule, RuleFile
from lictor.rules.yaml_lines import load_located

ASI_RISKS = {
    "ASI01": "Agent Goal Hijack",
    "ASI02": "Tool Misuse",
    "ASI03": "Identity and Privilege Abuse",
    "ASI04": "Agentic Supply Chain Vulnerabilities",
    "ASI05": "Unexpected Code Execution",
    "ASI06": "Memory and Context Poisoning",
    "ASI07": "Insecure Inter-Agent Communication",
    "ASI08": "Cascading Failures",
    "ASI09": "Human-Agent Trust Exploitation",
    "ASI10": "Rogue Agents",
}


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _applies(rule: Rule) -> str:
    limit = rule.match.rate or rule.match.budget or rule.match.repeat
    if limit is not None:
        return f"each {limit.scope}, per {limit.per}"
    where = rule.applies
    parts = [where.direction, "/".join(where.trust)]
    if "tool_arguments" in where.where:
        tools = "any tool" if where.tools == ("*",) else ", ".join(where.tools)
        parts.append(f"arguments of {tools}" if where.where == ("tool_arguments",)
                     else f"text and arguments of {tools}")
    return "; ".join(parts)


def render_catalog(paths: Sequence[Path], cedar_note: str = "") -> str:
    """Markdown for every rule and coverage note under `paths` (files already validated)."""
    rules: list[tuple[str, Rule]] = []
    coverage: dict[str, Coverage] = {}
    for path in rule_files(paths):
        if path.suffix == ".cedar":
            continue
        data = load_located(path.read_text("utf-8")).data or {}
        parsed = RuleFile.model_validate(data)
        rules.extend((f"{path.parent.name}/{path.name}", r) for r in parsed.rules)
        coverage.update(parsed.coverage)
    lines = [
        "# Rules catalog",
        "",
        "Generated from the rule files by `lictor rules docs`; edit the rules, not this file.",
        "",
        "## Coverage of the OWASP Top 10 for Agentic Applications",
        "",
        "| risk | coverage | rules | why |",
        "|---|---|---|---|",
    ]
    for risk, name in ASI_RISKS.items():
        ids = [r.id for _, r in rules if risk in r.owasp]
        note = coverage.get(risk)
        level = note.level if note else ("partial" if ids else "none")
        why = note.why if note else ("" if ids else "no rule yet")
        lines.append(f"| {risk} {name} | {level} | {', '.join(ids) or '-'} | {_cell(why)} |")
    if cedar_note:
        lines += ["", _cell(cedar_note)]
    lines += [
        "",
        "## Rules",
        "",
        "| rule | OWASP | verdict | applies to | enforces | known limits | file |",
        "|---|---|---|---|---|---|---|",
    ]
    for source, r in sorted(rules, key=lambda item: item[1].id):
        verdict = r.verdict + (" (shadow)" if r.mode == "shadow" else "")
        lines.append(
            f"| `{r.id}` | {', '.join(r.owasp) or '-'} | {verdict} | {_cell(_applies(r))} | "
            f"{_cell(r.description)} | {_cell(r.limits) or '-'} | {source} |"
        )
    return "\n".join(lines) + "\n"
