"""Provider-run tools on the wire (OpenAI `mcp`, `web_search_preview`, Anthropic server
tools and `mcp_servers`): where a refused one sits in the body, and the refusal when
taking it out would leave a request the provider rejects.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from lictor.adapters.backends.base import Route
from lictor.adapters.errors import ProtocolError
from lictor.enforcement.types import Action, Decision, HostedTool

# OpenAI's search models (gpt-4o-search-preview, gpt-5-search-api, ...) search the web on
# every request, asked to or not: as if the request offered `web_search_options`.
_SEARCH_MODEL = re.compile(r"search-(?:preview|api)")
WEB_SEARCH = "web_search_options"  # a Chat request's provider-run web search: hosted:<this>
IMPLIED = ("model", 0)  # the `where` of a hosted tool the routed model runs on its own


def model_runs(route: Route) -> tuple[str, ...]:
    """The hosted tools a route's model runs on its own: as configured, else as its name
    (public or upstream) says."""
    if route.hosted_tools is not None:
        return route.hosted_tools
    names = (route.name, route.upstream_model)
    return (WEB_SEARCH,) if any(_SEARCH_MODEL.search(n) for n in names) else ()


def add_implied(action: Action, route: Route) -> None:
    """Offer the request the hosted tools its model runs on its own, for Cedar to authorize
    like any other (one the request offers already is not offered twice)."""
    offered = {t.type for t in action.hosted_tools}
    action.hosted_tools.extend(HostedTool(t, IMPLIED) for t in model_runs(route)
                               if t not in offered)


def refuse_implied(action: Action, decision: Decision) -> None:
    """A hosted tool the model runs on its own cannot be taken out of the request: when
    policy refuses it, the request is refused (403, `param: model`)."""
    if any(action.hosted_tools[i].where == IMPLIED for i in decision.removed_hosted_tools):
        raise hosted_refusal(action, decision, "model")


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
    what = ("the tool_choice names" if param == "tool_choice"
            else f"the model {action.model!r} runs" if param == "model"
            else f"`{param}` asks for")
    return ProtocolError(
        403, f"lictor blocked this request: rule {rule}: {what} a tool run by "
        f"the provider that policy does not permit ({', '.join(sorted(names))})",
        error_type="policy_violation", code="policy_violation", param=param)
