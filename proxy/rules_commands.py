"""`lictor rules ...`: the rule tooling compliance teams run on their own rule files."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lictor.enforcement.types import Action


def _rules_pin(args: argparse.Namespace) -> int:
    import json

    from lictor.adapters import openai_chat
    from lictor.enforcement.tool_pins import definition_digest

    body = json.loads(args.request.read_text("utf-8"))
    body.setdefault("model", "any")
    body.setdefault("messages", [{"role": "user", "content": "-"}])
    action = openai_chat.parse_request(body)
    if not action.tool_definitions:
        print(f"{args.request}: the request offers no tools", file=sys.stderr)
        return 1
    pins = "\n".join(f"        {name}: {definition_digest(name, definition)}"
                     for name, definition in action.tool_definitions.items())
    print(f"""rules:
  - id: supply-chain.pinned-tools
    description: A pinned tool is offered with a definition other than the one reviewed.
    owasp: [ASI04]
    severity: high
    match:
      pinned_tools:
{pins}
    verdict: block""")
    return 0


def _rules_docs(args: argparse.Namespace) -> int:
    from lictor.rules.catalog import render_catalog
    from lictor.rules.loader import default_paths, load_policy

    paths = list(args.paths) or default_paths()
    load_policy(paths)  # only a valid policy is documented
    text = render_catalog(paths)
    if args.out:
        args.out.write_text(text)
    else:
        print(text, end="")
    return 0


def _rules_test(args: argparse.Namespace) -> int:
    from lictor.enforcement.rule_tests import run_cases
    from lictor.rules.loader import default_paths, load_policy
    from lictor.rules.test_cases import load_cases

    paths = list(args.paths) or default_paths()
    results = run_cases(load_policy(paths), load_cases(paths))
    if not results:
        print("no rule tests found (files named *_test.yaml)", file=sys.stderr)
        return 1
    width = max(len(r.name) for r in results)
    for r in results:
        status = "PASS" if r.passed else "FAIL"
        line = f"{status}  {r.name:<{width}}  {r.verdict:<5}  {r.source}"
        detail = f"{r.problem} (fired: {', '.join(r.rules) or 'nothing'})"
        print(line if r.passed else f"{line}\n      {detail}")
    failed = sum(not r.passed for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _rules_check(args: argparse.Namespace) -> int:
    from lictor.enforcement.cedar_compiled import why_not_compiled
    from lictor.enforcement.normalize import normalize
    from lictor.rules.lint import check
    from lictor.rules.loader import default_paths

    def scanned(text: str) -> str:  # the main view of a text, as pattern rules see it
        return normalize(text).views[0][1]

    report = check(list(args.paths) or default_paths(), scanned, why_not_compiled)
    print("\n".join(report.lines()))
    return 1 if report.errors else 0


def _exchange(body: Any) -> Action:
    """A chat completion response (`object: chat.completion`) or else a request body."""
    from lictor.adapters import openai_chat

    if isinstance(body, dict) and (body.get("object") == "chat.completion"
                                   or ("choices" in body and "messages" not in body)):
        return openai_chat.parse_response(body)
    if isinstance(body, dict):
        body.setdefault("model", "unknown")
    return openai_chat.parse_request(body)


def _rules_explain(args: argparse.Namespace) -> int:
    import json

    from lictor.adapters.errors import ProtocolError
    from lictor.enforcement.engine import Engine
    from lictor.enforcement.explain import explain_action
    from lictor.enforcement.types import Principal
    from lictor.rules.loader import default_paths, load_policy

    try:
        action = _exchange(json.loads(args.file.read_text("utf-8")))
    except (OSError, ValueError, ProtocolError) as exc:
        print(f"{args.file}: not an OpenAI chat request or response: {exc}", file=sys.stderr)
        return 2
    policy = load_policy(list(args.rule_paths) or default_paths())
    principal = Principal(args.agent)
    print("\n".join(explain_action(Engine(policy, [principal]), principal, action)))
    return 0


def run_rules_command(args: argparse.Namespace) -> int:
    handler = {"test": _rules_test, "docs": _rules_docs, "pin": _rules_pin,
               "check": _rules_check, "explain": _rules_explain}
    return handler[args.rules_command](args)
