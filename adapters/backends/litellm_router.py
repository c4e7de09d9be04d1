"""A LiteLLM Router backend: fallbacks, retries with exponential backoff, cooldowns.

This module imports litellm (about 2 s and 160 MB), so lictor imports it only when a
route in the config uses the `litellm` backend.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx  # LiteLLM's own HTTP client library (litellm depends on it)

from lictor.adapters.backends.base import Route
from lictor.adapters.errors import ProtocolError

# LiteLLM fetches its model cost map from the internet at import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

import litellm

_PASSED_THROUGH_STATUS = {400, 404, 413, 422, 429}


def _to_protocol_error(exc: Exception) -> ProtocolError:
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) else 502
    code = "upstream_error"
    if status in (401, 403):
        status, code = 502, "upstream_auth"
    elif status not in _PASSED_THROUGH_STATUS:
        status = 504 if isinstance(exc, litellm.Timeout) else 502
    message = str(getattr(exc, "message", "") or exc).splitlines()[0][:300]
    return ProtocolError(status, f"routing backend error: {message}",
                         error_type="upstream_error", code=code)


class LiteLLMBackend:
    """One Router shared by every `litellm` route; the route names its model group."""

    def __init__(self, model_list: list[dict[str, Any]], router_settings: dict[str, Any]) -> None:
        litellm.telemetry = False
        litellm.drop_params = True
        # One HTTP client for OpenAI-compatible providers that keeps no cookies: LiteLLM's
        # own stores what a provider sets and sends it on every later request, whichever
        # agent makes it.
        self._http = httpx.AsyncClient(
            cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])))
        litellm.aclient_session = self._http
        self._router = litellm.Router(model_list=model_list, **router_settings)

    @staticmethod
    def _kwargs(body: dict[str, Any], route: Route) -> dict[str, Any]:
        kwargs = {k: v for k, v in body.items() if k not in ("model", "stream", "user")}
        kwargs["model"] = route.upstream_model
        return kwargs

    async def complete(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        try:
            resp = await self._router.acompletion(**self._kwargs(body, route))
        except Exception as exc:
            raise _to_protocol_error(exc) from None
        return resp.model_dump(exclude_none=True)

    async def stream(self, body: dict[str, Any], route: Route) -> AsyncIterator[dict[str, Any]]:
        try:
            resp = await self._router.acompletion(stream=True, **self._kwargs(body, route))
            async for chunk in resp:
                yield chunk.model_dump(exclude_none=True)
        except Exception as exc:
            raise _to_protocol_error(exc) from None

    async def embed(self, body: dict[str, Any], route: Route) -> dict[str, Any]:
        try:
            resp = await self._router.aembedding(**self._kwargs(body, route))
        except Exception as exc:
            raise _to_protocol_error(exc) from None
        return resp.model_dump(exclude_none=True)

    async def aclose(self) -> None:
        """Stop LiteLLM's background logging task, which would otherwise outlive the loop."""
        from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

        await GLOBAL_LOGGING_WORKER.stop()
        await self._http.aclose()
