"""Cedar authorization: catalog entities, the tool-call context, fail-closed evaluation,
and the decision cache keyed by where a number falls among the policies' constants."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

from lictor.enforcement.engine import Engine
from lictor.enforcement.types import Principal
from lictor.rules.cedar_thresholds import bucket, thresholds
from lictor.rules.loader import load_policy

AGENT = Principal("support-bot")


def _engine(tmp_path: Path, cedar: str, catalog: str = "", now: float = 0.0) -> Engine:
    (tmp_path / "p.cedar").write_text(textwrap.dedent(cedar))
    if catalog:
        (tmp_path / "catalog.yaml").write_text(textwrap.dedent(catalog))
    return Engine(load_policy([tmp_path]), [AGENT], clock=lambda: now)


def test_thresholds_only_for_numbers_compared_with_constants() -> None:
    text = """
    forbid (principal, action == Action::"call_tool", resource)
    when { context.amount > 100 && 5 <= context.hour && context.budget_left > context.amount };
    forbid (principal, action, resource) when { context.amount >= 10000 };
    forbid (principal, action, resource) when { context has weekday && context.weekday == 7 };
    """
    found = thresholds(text)
    assert "amount" not in found  # compared with another attribute: kept exact
    assert "weekday" not in found  # tested with `has`: kept exact
    assert found["hour"] == (5,)
    assert thresholds('forbid (principal, action, resource) when { context.amount > 100 '
                      '|| context.amount == -5 };')["amount"] == (-5, 100)
    assert bucket(100, (100,)) != bucket(101, (100,)) != bucket(99, (100,))
    assert bucket(5, (100, 10000)) == bucket(99, (100, 10000))


def test_cached_decisions_match_cedar_for_every_amount(tmp_path: Path) -> None:
    engine = _engine(tmp_path, """
        permit (principal, action, resource);
        @id("big") forbid (principal, action == Action::"call_tool", resource)
        when { context.amount > 100 && context.amount <= 10000 };
        @id("exact") forbid (principal, action == Action::"call_tool", resource)
        when { context.amount == 42 };
        """)
    rng = random.Random(7)
    amounts = [rng.choice([41, 42, 43, 100, 101, 10000, 10001, -3]) + rng.random() * 0
               for _ in range(200)] + [rng.randint(-50, 20000) for _ in range(500)]
    for amount in amounts:
        result = engine.authorize_tool(AGENT, "", "refund", {"amount": amount}, "call")
        expected = not (100 < amount <= 10000 or amount == 42)
        assert result.allowed == expected, amount
    # one Cedar call per gap between the constants, not one per amount
    assert len(engine._actions._authorizer._cache) <= 7


def test_catalog_entities_and_context(tmp_path: Path) -> None:
    engine = _engine(tmp_path, """
        permit (principal, action, resource);
        @id("support-no-critical") forbid (principal in Team::"support",
            action == Action::"call_tool", resource) when { context.risk == "critical" };
        @id("no-night-refunds") forbid (principal, action == Action::"call_tool",
            resource == Tool::"refund_order") when { context.hour < 6 };
        @id("eur-only") forbid (principal, action == Action::"call_tool", resource)
        when { context.arguments has currency && context.arguments.currency != "EUR" };
        """, """
        catalog:
          teams: {support: {tenant: acme}}
          agents: {support-bot: {team: support}}
          tools:
            wire_transfer: {risk: critical}
            refund_order:
              risk: high
              arguments: {currency: {type: string}}
        """, now=3 * 3600)  # 03:00 UTC
    check = engine.authorize_tool
    assert not check(AGENT, "", "wire_transfer", {}, "call").allowed
    night = check(AGENT, "", "refund_order", {"currency": "EUR"}, "call")
    assert [p.name for p in night.policies] == ["no-night-refunds"]
    usd = check(AGENT, "", "lookup", {"currency": "USD"}, "call")
    assert [p.name for p in usd.policies] == ["eur-only"]
    assert check(AGENT, "", "lookup", {"currency": "EUR"}, "call").allowed


def test_a_policy_that_fails_to_evaluate_denies(tmp_path: Path) -> None:
    engine = _engine(tmp_path, """
        permit (principal, action, resource);
        @id("no-critical") forbid (principal, action == Action::"call_tool", resource)
        when { resource.risk == "critical" };
        """, "catalog:\n  tools:\n    known: {risk: low}\n")
    assert engine.authorize_tool(AGENT, "", "known", {}, "call").allowed
    unknown = engine.authorize_tool(AGENT, "", "not_in_catalog", {}, "call")
    assert not unknown.allowed
    assert "no-critical" in unknown.reason() and "does not exist" in unknown.reason()


def test_mcp_servers_from_the_catalog(tmp_path: Path) -> None:
    engine = _engine(tmp_path, """
        permit (principal, action, resource);
        @id("no-critical-servers") forbid (principal, action == Action::"call_mcp", resource)
        when { resource.risk == "critical" && context.method == "tools/call" };
        """, """
        catalog:
          mcp_servers:
            payments: {risk: critical, owner: finance}
            docs: {risk: low}
        """)
    denied = engine.authorize_mcp(AGENT, "payments", "tools/call", "pay")
    assert denied is not None and denied.rule_id == "cedar:no-critical-servers"
    assert engine.authorize_mcp(AGENT, "payments", "tools/list", "") is None
    assert engine.authorize_mcp(AGENT, "docs", "tools/call", "search") is None
