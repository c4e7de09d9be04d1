"""What translating a Messages or Responses request to Chat Completions shares: the
refusal of what chat cannot carry, media parts, and chat's order of messages.

A chat backend (the local model, LiteLLM Router) must never receive less than the agent
sent without the agent knowing: what chat has no equivalent for is refused with a 400
naming it, before anything is sent, and a passthrough route to the provider carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lictor.adapters.backends.base import Route
from lictor.adapters.errors import ProtocolError

# Called with what cannot be carried ("an `image` block with a `file` source") and where it
# sits in the request ("messages[0].content[1]"): raises, or returns to leave it out.
Refuse = Callable[[str, str], None]

BACKEND_NAMES = {"local": "the built-in local model", "litellm": "LiteLLM Router"}


def refuser(route: Route) -> Refuse:
    """The gateway's refusal for `route`: a 400 in the agent's protocol, naming what and
    where, the backend, and the way to send it (a passthrough route)."""
    backend = BACKEND_NAMES.get(route.backend, f"the {route.backend} backend")

    def refuse(what: str, where: str) -> None:
        raise ProtocolError(
            400, f"{where}: model {route.name!r} is served by {backend}, which speaks Chat "
            f"Completions: it has no equivalent of {what}, and lictor does not drop it "
            "silently; send this request through a passthrough route to the provider",
            param=where, code="unsupported_by_backend")

    return refuse


def leave_out(what: str, where: str) -> None:
    """A refusal that leaves the thing out: for a test stand-in of a provider that serves
    the protocol natively and answers from the text alone."""


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(url: str, detail: Any = None) -> dict[str, Any]:
    image: dict[str, Any] = {"url": url}
    if isinstance(detail, str):
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def file_part(file_data: str, filename: str) -> dict[str, Any]:
    """Chat's file part (a PDF, inline as a data URL)."""
    return {"type": "file", "file": {"file_data": file_data, "filename": filename}}


def message(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A chat message: its text as one string (what every chat backend takes, and what the
    assistant role requires) unless it carries media, then its parts."""
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


class ChatMessages:
    """Chat messages in the order chat requires. A tool message carries text only, so the
    images and files of a tool result follow in a user message, once the run of tool
    messages answering one assistant turn has ended (a user message between them would
    break that turn)."""

    __slots__ = ("_media", "messages")

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._media: list[dict[str, Any]] = []

    def add(self, msg: dict[str, Any]) -> None:
        if self._media and msg["role"] == "user":  # the tool results' media lead the turn
            content = msg["content"]
            msg = {**msg, "content": [*self._media, *(
                [text_part(content)] if isinstance(content, str) else content)]}
            self._media = []
        self._flush()
        self.messages.append(msg)

    def call(self, call: dict[str, Any]) -> None:
        """A tool call, joining the assistant turn just before it when there is one."""
        last = self.messages[-1] if self.messages and not self._media else {}
        if last.get("role") == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            self.add({"role": "assistant", "content": None, "tool_calls": [call]})

    def tool(self, call_id: Any, texts: list[str], media: list[dict[str, Any]]) -> None:
        """A tool's result: its text here, its media in the user message after the run."""
        text = "\n".join(texts)
        if media:
            n = len(media)
            note = (f"[{n} attachment{'s' if n > 1 else ''} of this result follow"
                    f"{'' if n > 1 else 's'} in the next user message]")
            text = f"{text}\n{note}" if text else note
            self._media += [text_part(f"Attachments of the result of tool call {call_id}:"),
                            *media]
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def done(self) -> list[dict[str, Any]]:
        self._flush()
        return self.messages

    def _flush(self) -> None:
        if self._media:
            self.messages.append({"role": "user", "content": self._media})
            self._media = []
