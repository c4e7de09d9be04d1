"""Provider-run tools on the wire (OpenAI `mcp`, `web_search_preview`, Anthropic server
tools and `mcp_servers`): where a refused one sits in the body, and the refusal when
taking it out would leave a request the provider rejects.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from lictor.adapters.errors import ProtocolError
from lictor.enforcement.types import Action, Decision


def url_host(url: str) -> str:
    """A server URL's host, lower-case ("" when it has none)."""
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""


def removed_places(action: Action, decision: Decision, key: str) -> set[int]:
    """The indexes in the body's `key` list (`tools`, `mcp_servers`) of refused hosted tools."""
    places = (action.hosted_tools[i].where for i in decision.removed_hosted_tools)
    return {k for field, k in places if field == key}


def hosted_refusal(action: Action, decision: Decision,
                   param: str = "tool_choice") -> ProtocolError:
    """403 naming the policy: the request's `param` (its `tool_choice`, or a Chat request's
    `web_search_options`) needs a hosted tool it refused."""
    names = {action.hosted_tools[i].name for i in decision.removed_hosted_tools}
    found = next((f for f in decision.findings if f.evidence in names), None)
    rule = found.rule_id if found is not None else "cedar"
    what = "the tool_choice names" if param == "tool_choice" else f"`{param}` asks for"
    return ProtocolError(
        403, f"lictor blocked this request: rule {rule}: {what} a tool run by "
        f"the provider that policy does not permit ({', '.join(sorted(names))})",
        error_type="policy_violation", code="policy_violation", param=param)
