"""What every routing backend offers the data planes: a whole completion or a stream.

Backends speak OpenAI Chat Completions and embeddings JSON (dicts in, dicts out; the
other protocols are served through them, see `dispatch.py`) and raise
`ProtocolError` for anything the agent should see as an API error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True, frozen=True)
class Route:
    """Where one public model name goes: which backend, which upstream model, which key."""

    name: str
    backend: str  # local | passthrough | litellm
    upstream_model: str
    base_url: str = ""
    api_key: str = ""  # resolved secret; never logged or audited
    timeout_s: float = 120.0
    anthropic_version: str = "2023-06-01"  # sent upstream with Anthropic Messages
    retries: int = 0  # passthrough: further tries when the upstream surely did not act
    retry_backoff_s: float = 0.25
    # tools the model runs on its own, whatever a request asks (a search model searches the
    # web); None: as its name says (`hosted_tools.model_runs`)
    hosted_tools: tuple[str, ...] | None = None


class Backend(Protocol):
    async def complete(self, body: dict[str, Any], route: Route) -> dict[str, Any]: ...

    def stream(self, body: dict[str, Any], route: Route) -> AsyncIterator[dict[str, Any]]: ...

    async def embed(self, body: dict[str, Any], route: Route) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...
