"""OpenAI embeddings: every input string is a user segment, scanned and masked.

Token-id inputs cannot be read, so they are refused rather than forwarded unchecked
(fail closed). The answer carries vectors only: nothing to restore or filter.
"""

from __future__ import annotations

from typing import Any

from lictor.adapters.errors import ProtocolError
from lictor.adapters.openai_chat import start_request, with_masked_texts
from lictor.enforcement.pii import PlaceholderVault
from lictor.enforcement.types import (
    Action,
    ActionKind,
    Decision,
    Direction,
    Segment,
    Trust,
)

PROTOCOL = "openai.embeddings"


def _bad(message: str, param: str) -> ProtocolError:
    return ProtocolError(400, message, param=param, code="invalid_request")


def parse_request(body: Any) -> Action:
    """Validate an embeddings request; each input string becomes one user segment."""
    action = start_request(body, PROTOCOL, streams=False)
    value = body.get("input")
    if isinstance(value, str):
        action.segments.append(Segment(value, Trust.USER, ("input",)))
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        action.segments.extend(Segment(v, Trust.USER, ("input", i)) for i, v in enumerate(value))
    else:
        raise _bad("`input` must be a string or a non-empty array of strings (lictor "
                   "cannot scan token ids, so it does not pass them on)", "input")
    return action


def apply_request(
    body: dict[str, Any], action: Action, masked_texts: list[str], decision: Decision
) -> dict[str, Any]:
    """The request as it goes upstream: each input with its personal data masked."""
    return with_masked_texts(body, action, masked_texts).root


def parse_response(resp: Any) -> Action:
    """Vectors carry no text: the response action is empty but checked (shape) all the same."""
    data = resp.get("data") if isinstance(resp, dict) else None
    if not isinstance(data, list):
        raise ProtocolError(502, "the upstream returned an invalid embeddings response",
                            error_type="upstream_error")
    return Action(ActionKind.MODEL_RESPONSE, Direction.RESPONSE, PROTOCOL)


def apply_response(resp: dict[str, Any], decision: Decision,
                   vault: PlaceholderVault) -> dict[str, Any]:
    """Vectors only: the answer goes back as it came."""
    return resp


def produced(resp: dict[str, Any]) -> list[dict[str, Any]]:
    """For the audit: how many vectors came back (never the vectors)."""
    return [{"index": 0, "content": f"{len(resp.get('data') or [])} embeddings",
             "tool_calls": [], "finish_reason": None}]
