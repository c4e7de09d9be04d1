"""`lictor rules check`: every error in a set of rule files at once, then what would load
but cannot work as written (rules that never fire, shadowed rules, dead Cedar policies).

Errors are what `load_policy` refuses; warnings never stop a load, they point at rules a
compliance team believes protect them and that do not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lictor.rules.cedar_policies import (
    CedarLoadError,
    compile_cedar,
    parse_file,
    policy_info,
    statement_errors,
    validate_cedar,
)
from lictor.rules.lint_cedar import LocatedPolicy, cedar_warnings
from lictor.rules.lint_patterns import TextView, pattern_problems
from lictor.rules.lint_rules import kind, rule_warnings
from lictor.rules.loader import (
    LocatedRule,
    RuleLoadError,
    load_validated,
    read_rule_file,
    rule_files,
    unique_rules,
)
from lictor.rules.test_cases import CASE_SUFFIX, CaseFile
from lictor.rules.tool_catalog import CatalogBuilder, CatalogSnapshot, cedar_schema
from lictor.rules.yaml_lines import LocatedYaml

# Rule ids findings carry that no rule file defines.
ENGINE_RULE_IDS = frozenset({"lictor.internal-error", "lictor.approval-mismatch",
                             "lictor.approval-granted", "lictor.approval-held"})
CEDAR_REASONS = frozenset({"no policy permits it", "policy evaluation error"})


@dataclass(slots=True, frozen=True)
class Issue:
    """One warning, kept as path and line so warnings sort in file order."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(slots=True)
class CheckReport:
    """What was read (for the summary's counts) and what is wrong with it."""

    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # `file:line: message`, as load errors
    warnings: list[Issue] = field(default_factory=list)
    rules: list[LocatedRule] = field(default_factory=list)
    policies: list[LocatedPolicy] = field(default_factory=list)
    cases: list[tuple[Path, LocatedYaml, CaseFile]] = field(default_factory=list)
    catalog: CatalogSnapshot = field(default_factory=CatalogSnapshot)

    def lines(self) -> list[str]:
        """Errors, then `warning: ...` lines, then a one-line summary."""
        n_cases = sum(len(c.cases) for _, _, c in self.cases)
        counts = (f"{_count(len(self.files), 'file')}, {_count(len(self.rules), 'rule')}, "
                  f"{_count(len(self.policies), 'policy', 'policies')}, "
                  f"{_count(n_cases, 'test case')}: {_count(len(self.errors), 'error')}, "
                  f"{_count(len(self.warnings), 'warning')}")
        return [*self.errors, *(f"warning: {w}" for w in self.warnings), counts]


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _read_cedar(path: Path, text: str, report: CheckReport) -> bool:
    """Parse one Cedar file into `report`; False if it has errors."""
    try:
        parsed = parse_file(str(path), text)
    except CedarLoadError as exc:
        report.errors.extend(str(e) for e in statement_errors(str(path), text) or [exc])
        return False
    ok = True
    for line, policy in parsed:
        try:
            info = policy_info(f"policy{len(report.policies)}", path, line, policy)
        except CedarLoadError as exc:
            report.errors.append(str(exc))
            ok = False
            continue
        report.policies.append(LocatedPolicy(path, line, policy, info))
    return ok


def _read(paths: Sequence[Path], report: CheckReport) -> list[tuple[Path, str]] | None:
    """Read every file under `paths` into `report`; the Cedar files' texts, or None if one
    of them has errors."""
    located: list[LocatedRule] = []
    cedar_texts: list[tuple[Path, str]] = []
    catalog = CatalogBuilder()
    cedar_ok = True
    for root in paths:
        try:
            report.files.extend(rule_files([root], with_tests=True))
        except RuleLoadError as exc:
            report.errors.extend(exc.problems)
    for path in report.files:
        text = path.read_bytes().decode("utf-8", errors="replace")
        if path.suffix == ".cedar":
            cedar_texts.append((path, text))
            cedar_ok = _read_cedar(path, text, report) and cedar_ok
        elif path.name.endswith(CASE_SUFFIX):
            loaded = load_validated(path, text, CaseFile, report.errors)
            if loaded is not None:
                report.cases.append((path, *loaded))
        else:
            located.extend(read_rule_file(path, text, report.errors, catalog))
    report.rules = unique_rules(located, report.errors)
    report.catalog = catalog.snapshot()
    return cedar_texts if cedar_ok else None


def _case_warnings(report: CheckReport) -> list[Issue]:
    """Expected rule ids no rule defines: `absent: [typo]` would always pass."""
    cedar_names = {lp.info.name for lp in report.policies} | CEDAR_REASONS
    known = ({lr.rule.id for lr in report.rules} | ENGINE_RULE_IDS
             | {f"catalog.{c.tool}.arguments" for c in report.catalog.argument_rules})
    out = []
    for path, doc, parsed in report.cases:
        for i, case in enumerate(parsed.cases):
            for key, ids in (("rules", case.expect.rules), ("absent", case.expect.absent)):
                for j, rule_id in enumerate(ids):
                    if rule_id.startswith("cedar:"):
                        names = rule_id.removeprefix("cedar:").split(", ")
                        if all(name in cedar_names for name in names):
                            continue
                    elif rule_id in known:
                        continue
                    effect = "it can never pass" if key == "rules" else "it always holds"
                    out.append(Issue(path, doc.line_of(("cases", i, "expect", key, j)),
                                     f"case {case.name!r} names {rule_id!r} in `expect.{key}`, "
                                     f"which no loaded rule or policy defines: {effect}"))
    return out


def check(paths: Sequence[Path], text_view: TextView | None = None,
          not_compiled: Callable[[dict[str, Any]], str | None] | None = None) -> CheckReport:
    """Validate every rule, test-case and Cedar file under `paths`, and lint what loads.

    `text_view` shows what a text looks like once scanned, to find pattern characters that
    normalization removes; `not_compiled` says what keeps a policy off the compiled fast
    path (evaluation's business, so it is passed in); without them those checks are
    skipped."""
    report = CheckReport()
    cedar_texts = _read(paths, report)
    if cedar_texts:
        try:  # what only the whole set can reject, and the schema's type checks
            bundle = compile_cedar(cedar_texts)
        except ValueError as exc:  # CedarLoadError is one; cedarpy raises plain ValueError
            report.errors.append(f"{cedar_texts[0][0]}:1: Cedar policy set: {exc}")
        else:
            report.errors.extend(validate_cedar(bundle, cedar_schema(report.catalog)))
    warnings: list[Issue] = []
    for lr, message in rule_warnings(report.rules):
        warnings.append(Issue(lr.path, lr.line, message))
    for lr in report.rules:
        if kind(lr.rule) != "patterns":
            continue
        for i, pattern in enumerate(lr.rule.match.patterns):
            for problem in pattern_problems(pattern, lr.rule.match.case_sensitive, text_view):
                warnings.append(Issue(lr.path, lr.line,
                                      f"rule {lr.rule.id!r}: pattern {i + 1} {problem}"))
    warnings.extend(_case_warnings(report))
    warnings.extend(Issue(lp.path, lp.line, message)
                    for lp, message in cedar_warnings(report.policies))
    if not_compiled is not None:
        for lp in report.policies:
            if (why := not_compiled(lp.policy)) is not None:
                warnings.append(Issue(lp.path, lp.line, (
                    f"{lp.label} is decided by Cedar's engine, not lictor's compiled policies "
                    f"({why}): about 3x the time per uncached decision "
                    "(bench/authorization.py)")))
    order = {path: i for i, path in enumerate(report.files)}
    report.warnings = sorted(warnings, key=lambda w: (order.get(w.path, -1), w.line))
    return report
