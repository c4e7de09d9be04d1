"""Rule files: the bundled pack loads; every bad file names the file, the line and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lictor.rules.cedar_policies import split_statements
from lictor.rules.loader import RuleLoadError, bundled_pack, default_paths, load_policy

GOOD_RULE = """\
rules:
  - id: test.rule
    description: A test rule.
    match:
      patterns: ['\\bforbidden phrase\\b']
    verdict: block
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(*paths: Path) -> str:
    with pytest.raises(RuleLoadError) as info:
        load_policy(list(paths))
    return str(info.value)


def test_bundled_pack_loads() -> None:
    policy = load_policy(default_paths())
    rules = [*policy.pattern_rules, *policy.pii_rules]
    ids = {r.spec.rule_id for r in rules}
    assert {"injection.instruction-override", "injection.system-prompt-extraction",
            "pii.mask-outbound"} <= ids
    names = {p.name for p in policy.cedar.policies.values()}
    assert {"no-shell-tools", "no-destructive-db-tools"} <= names
    assert len(policy.content_hash) == 64


def test_unknown_pack_lists_known_ones() -> None:
    with pytest.raises(RuleLoadError, match="bundled packs: default, examples, owasp-agentic"):
        bundled_pack("nope")


def test_typo_in_field_name(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD_RULE.replace("verdict: block", "verdcit: block"))
    message = load_error(path)
    assert f"{path}:6:" in message
    assert "unknown field 'verdcit'" in message
    assert "required field 'verdict' is missing" in message


def test_bad_regex_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD_RULE.replace("\\bforbidden phrase\\b", "(unclosed"))
    message = load_error(path)
    assert f"{path}:5:" in message and "not a valid RE2 regular expression" in message


def test_lookaround_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD_RULE.replace("\\bforbidden", "(?<!not )forbidden"))
    message = load_error(path)
    assert f"{path}:5:" in message and "lookarounds are not supported" in message


def test_global_inline_flag_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD_RULE.replace("\\bforbidden", "(?i)forbidden"))
    assert "(?i:...)" in load_error(path)


def test_bad_verdict_and_unknown_entity(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", """\
        rules:
          - id: pii.x
            description: d
            match:
              pii: [EMAIL_ADDRESS, PASSPORT_NUMBER]
            verdict: mask
          - id: pat.x
            description: d
            match: {patterns: [x]}
            verdict: mask
        """)
    message = load_error(path)
    assert f"{path}:5:" in message and "unknown PII entity PASSPORT_NUMBER" in message
    assert f"{path}:7:" in message and "verdict `mask` needs `match.pii`" in message


def test_duplicate_rule_id(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", GOOD_RULE)
    b = write(tmp_path, "b.yaml", GOOD_RULE)
    message = load_error(a, b)
    assert f"{b}:2: rule id 'test.rule' is already used at {a}:2" in message


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", "rules:\n  - id: x\n    description: [unclosed\n")
    message = load_error(path)
    assert f"{path}:" in message and "YAML syntax error" in message


def test_cedar_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "p.cedar", """\
        // comment; with a semicolon
        permit (principal, action, resource);

        @id("broken")
        forbid (principal, action == Action::"call_tool", resource)
        when { context.tool_name == };
        """)
    message = load_error(path)
    assert f"{path}:4: Cedar syntax error" in message


def test_cedar_bad_on_deny(tmp_path: Path) -> None:
    path = write(tmp_path, "p.cedar",
                 '@on_deny("explode")\nforbid (principal, action, resource);\n')
    assert f"{path}:1: @on_deny must be one of" in load_error(path)


def test_missing_path(tmp_path: Path) -> None:
    assert "no such rule file or folder" in load_error(tmp_path / "absent")


def test_split_statements_ignores_strings_and_comments() -> None:
    text = ('permit (principal, action, resource) when { context.x == "a;b" };\n'
            "// x; y\nforbid (principal, action, resource);")
    parts = split_statements(text)
    assert [line for line, _ in parts] == [1, 3]
    assert parts[0][1].endswith('"a;b" };')


def test_content_hash_changes_with_content(tmp_path: Path) -> None:
    path = write(tmp_path, "r.yaml", GOOD_RULE)
    first = load_policy([path]).content_hash
    path.write_text(GOOD_RULE.replace("A test rule.", "Another description."))
    assert load_policy([path]).content_hash != first


def test_cedar_type_error_names_file_line_and_policy(tmp_path: Path) -> None:
    path = write(tmp_path, "p.cedar", """\
        permit (principal, action, resource);

        @id("refund-cap")
        forbid (principal, action == Action::"call_tool", resource == Tool::"refund_order")
        when { context.amount > "100" };
        """)
    message = load_error(path)
    assert message == f"{path}:3: policy refund-cap: unexpected type: expected Long but saw String"


def test_cedar_unknown_context_attribute(tmp_path: Path) -> None:
    path = write(tmp_path, "p.cedar", """\
        forbid (principal, action == Action::"call_tool", resource)
        when { context.amout > 100 };
        """)
    message = load_error(path)
    assert message.startswith(f"{path}:1: policy p.cedar:1: attribute `amout` in context")


def test_catalog_arguments_reach_the_cedar_schema(tmp_path: Path) -> None:
    write(tmp_path, "catalog.yaml", """\
        catalog:
          tools:
            refund_order:
              arguments:
                currency: {type: string}
        """)
    good = write(tmp_path, "p.cedar", """\
        forbid (principal, action == Action::"call_tool", resource)
        when { context.arguments has currency && context.arguments.currency == "BTC" };
        """)
    assert load_policy([tmp_path]).catalog.argument_types == {"currency": "String"}
    good.write_text('forbid (principal, action, resource)\n'
                    'when { context.arguments.currency == "BTC" };\n')
    assert "unable to guarantee safety of access to optional attribute" in load_error(tmp_path)


def test_catalog_conflicts_name_both_places(tmp_path: Path) -> None:
    first = write(tmp_path, "a.yaml", """\
        catalog:
          tools:
            refund: {arguments: {amount: {type: number}}}
        """)
    second = write(tmp_path, "b.yaml", """\
        catalog:
          tools:
            refund: {risk: high}
            pay: {arguments: {amount: {type: string}}}
        """)
    message = load_error(tmp_path)
    assert f"{second}:3: tool 'refund' is already in the catalog at {first}:3" in message
    assert (f"{second}:4: argument 'amount' is a String here but a Long at {first}:3"
            in message)


def test_needs_approval_only_on_forbid(tmp_path: Path) -> None:
    path = write(tmp_path, "p.cedar", '@needs_approval("finance")\n'
                 'permit (principal, action, resource);\n')
    assert f"{path}:1: @needs_approval goes on a `forbid` policy" in load_error(path)
    path.write_text('@approvers("2")\nforbid (principal, action, resource);\n')
    assert f"{path}:1: @approvers needs @needs_approval" in load_error(path)
