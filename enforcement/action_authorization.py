"""Cedar's questions about one action: may this agent invoke this model, be offered or
call this tool (with what context), use this MCP server; and which calls need people.

The context of a tool call holds only the attributes some policy reads (amount, risk,
arguments, taint, time, budget), so an unused attribute costs nothing and decisions
cache well. A call denied only by `@needs_approval` forbids becomes an approval need.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from lictor.enforcement.agent_actions import summary
from lictor.enforcement.authorization import Authorizer, AuthzResult
from lictor.enforcement.limits import Limits
from lictor.enforcement.types import (
    Action,
    ApprovalNeed,
    Finding,
    HostedTool,
    Principal,
    ToolCall,
    Verdict,
)
from lictor.rules.policy import Policy
from lictor.rules.tool_catalog import cedar_arguments, cedar_long

_ALWAYS_IN_CONTEXT = frozenset({"tool_name", "stage", "hosted", "host"})


def needs_people(result: AuthzResult) -> bool:
    """Denied only by forbids that people may lift (@needs_approval)."""
    return bool(result.policies) and not result.errors and all(
        p.approval is not None for p in result.policies)


def _tool_finding(tool: str, stage: str, reason: str, verdict: str,
                  what: str = "") -> Finding:
    what = what or ("offered to the model" if stage == "offer" else "proposed by the model")
    return Finding(rule_id=f"cedar:{reason}", verdict=Verdict(verdict), owasp=("ASI02",),
                   severity="high", message=f"tool {tool!r} {what} is forbidden by policy "
                   f"{reason}", evidence=tool)


class ActionAuthorization:
    __slots__ = ("_authorizer", "_clock", "_limits", "_policy", "_redact")

    def __init__(self, policy: Policy, principals: list[Principal], limits: Limits,
                 clock: Callable[[], float], redact: Callable[[str], str]) -> None:
        self._policy = policy
        self._authorizer = Authorizer(policy.cedar, principals, policy.catalog)
        self._limits = limits
        self._clock = clock
        self._redact = redact  # approval summaries land in audit records

    def model(self, principal: Principal, action: Action, out: list[Finding]) -> None:
        model = action.model or "unknown"
        result = self._authorizer.check(principal, "invoke_model", "Model", model,
                                        {"model": model, "protocol": action.protocol})
        if not result.allowed:
            out.append(Finding(f"cedar:{result.reason()}", Verdict.BLOCK, ("ASI03",), "high",
                               f"agent {principal.agent_id!r} may not invoke model {model!r}"))

    def offered(self, principal: Principal, session: str, tools: list[str],
                out: list[Finding]) -> list[str]:
        """The offered tools a policy forbids (taken out of the offer, flagged); tools that
        only need approval stay offered: people are asked when one is called."""
        removed = []
        for tool in tools:
            result = self.tool(principal, session, tool, {}, "offer")
            if not result.allowed and not needs_people(result):
                removed.append(tool)
                out.append(_tool_finding(tool, "offer", result.reason(), "flag"))
        return removed

    def hosted(self, principal: Principal, session: str, tools: list[HostedTool],
               out: list[Finding]) -> list[int]:
        """The indexes of provider-run tools a policy does not permit (taken out of the
        offer, flagged): lictor never sees them run, so needing approval is a refusal too."""
        removed = []
        for i, tool in enumerate(tools):
            result = self.tool(principal, session, tool.name, {}, "offer", hosted_host=tool.host)
            if not result.allowed:
                removed.append(i)
                found = _tool_finding(tool.name, "offer", result.reason(), "flag",
                                      "(run by the provider) offered to the model")
                if tool.host:
                    found = replace(found, message=f"{found.message} (server {tool.host})")
                out.append(found)
        return removed

    def calls(self, principal: Principal, session: str, calls: list[ToolCall],
              out: list[Finding], needs: list[ApprovalNeed]) -> list[str]:
        """The ids of proposed calls a policy forbids; calls needing people go to `needs`."""
        removed = []
        for call in calls:
            result = self.tool(principal, session, call.name, call.arguments, "call")
            if result.allowed:
                continue
            if needs_people(result):
                self._approval_needs(call, result, out, needs)
            else:
                removed.append(call.call_id)
                verdict = "block" if result.on_deny == "block" else "flag"
                out.append(_tool_finding(call.name, "call", result.reason(), verdict))
        return removed

    def tool(self, principal: Principal, session: str, tool: str, arguments: dict[str, Any],
             stage: str, *, hosted_host: str | None = None) -> AuthzResult:
        """Cedar's `call_tool`, with only the context attributes its policies read;
        `hosted_host` is not None for a provider-run tool ("" when it has no host)."""
        reads = self._authorizer.reads("call_tool", "Tool", tool)
        # None: some policy takes `context` whole, so it gets every attribute policies name
        wanted = self._policy.context_attributes | _ALWAYS_IN_CONTEXT if reads is None \
            else reads
        context: dict[str, Any] = {}
        if "tool_name" in wanted:
            context["tool_name"] = tool
        if "stage" in wanted:
            context["stage"] = stage
        if "hosted" in wanted:
            context["hosted"] = hosted_host is not None
        if "host" in wanted:
            context["host"] = hosted_host or ""
        if not wanted <= _ALWAYS_IN_CONTEXT:
            catalog = self._policy.catalog
            info = catalog.tools.get(tool)
            if "risk" in wanted:
                context["risk"] = info.risk if info else "unknown"
            if "amount" in wanted:
                name = info.amount_argument if info else "amount"
                context["amount"] = cedar_long(arguments[name]) if name in arguments else 0
            if "arguments" in wanted:
                context["arguments"] = cedar_arguments(catalog, arguments)
            if "tainted" in wanted:
                context["tainted"] = self._limits.tainted(principal, session)
            if "budget_left" in wanted:
                context["budget_left"] = self._limits.budget_left(principal, session)
            if "hour" in wanted or "weekday" in wanted:
                now = time.gmtime(self._clock())
                context["hour"], context["weekday"] = now.tm_hour, now.tm_wday + 1
        return self._authorizer.check(principal, "call_tool", "Tool", tool, context)

    def mcp(self, principal: Principal, server: str, method: str, tool: str) -> Finding | None:
        """Cedar's `call_mcp`: the finding that refuses this message, or None."""
        result = self._authorizer.check(principal, "call_mcp", "McpServer", server,
                                        {"method": method, "tool_name": tool})
        if result.allowed:
            return None
        return Finding(f"cedar:{result.reason()}", Verdict.BLOCK, ("ASI03",), "high",
                       f"agent {principal.agent_id!r} may not send {method} to MCP server "
                       f"{server!r}", evidence=server)

    def http(self, principal: Principal, method: str, host: str, path: str) -> Finding | None:
        """Cedar's `http_request`: the finding that refuses this outbound request, or None
        (a host no policy permits is refused: deny by default)."""
        result = self._authorizer.check(principal, "http_request", "Host", host,
                                        {"method": method, "host": host, "path": path})
        if result.allowed:
            return None
        return Finding(f"cedar:{result.reason()}", Verdict.BLOCK, ("ASI02",), "high",
                       f"agent {principal.agent_id!r} may not send {method} to {host}{path}",
                       evidence=host)

    def _approval_needs(self, call: ToolCall, result: AuthzResult, out: list[Finding],
                        needs: list[ApprovalNeed]) -> None:
        """Forbids annotated @needs_approval: the call waits for people, one need each."""
        for info in result.policies:
            terms = info.approval
            assert terms is not None
            what = self._redact(summary(terms.summary, {**call.arguments, "tool": call.name}))
            rule_id = f"cedar:{info.name}"
            out.append(Finding(rule_id, Verdict.APPROVE, ("ASI09",), "high",
                               f"{call.name}: {what} needs approval by policy {info.name}",
                               evidence=call.name))
            needs.append(ApprovalNeed(call.call_id, call.name, rule_id, f"{call.name}: {what}",
                                      terms.team, terms.approvers, terms.mode, terms.timeout_s))
