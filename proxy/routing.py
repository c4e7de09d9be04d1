"""Model routing: each public model name to a backend, built from the config.

Backends are created once; the LiteLLM module is imported only when a route needs it.
"""

from __future__ import annotations

import os

from lictor.adapters.backends.base import Backend, Route
from lictor.adapters.backends.local_model import LocalModelBackend
from lictor.adapters.backends.passthrough import PassthroughBackend
from lictor.proxy.config import Config, ConfigError


class Router:
    __slots__ = ("backends", "routes")

    def __init__(self, config: Config) -> None:
        self.routes: dict[str, Route] = {}
        self.backends: dict[str, Backend] = {}
        for r in config.models:
            api_key = ""
            if r.api_key_env:
                api_key = os.environ.get(r.api_key_env, "")
                if not api_key:
                    raise ConfigError(
                        f"model {r.name!r}: environment variable {r.api_key_env} is not set"
                    )
            self.routes[r.name] = Route(
                name=r.name,
                backend=r.backend,
                upstream_model=r.upstream_model or r.name,
                base_url=r.base_url or "",
                api_key=api_key,
                timeout_s=r.timeout_s,
                anthropic_version=r.anthropic_version,
                retries=r.retries,
                retry_backoff_s=r.retry_backoff_s,
                hosted_tools=tuple(r.hosted_tools) if r.hosted_tools is not None else None,
            )
            if r.backend not in self.backends:
                self.backends[r.backend] = self._make(r.backend, config)

    @staticmethod
    def _make(kind: str, config: Config) -> Backend:
        if kind == "local":
            return LocalModelBackend()
        if kind == "passthrough":
            return PassthroughBackend()
        assert config.litellm is not None  # checked by Config
        from lictor.adapters.backends.litellm_router import LiteLLMBackend

        return LiteLLMBackend(config.litellm.model_list, dict(config.litellm.router_settings))

    def resolve(self, model: str) -> tuple[Route, Backend] | None:
        route = self.routes.get(model)
        if route is None:
            return None
        return route, self.backends[route.backend]

    async def aclose(self) -> None:
        for backend in self.backends.values():
            await backend.aclose()
