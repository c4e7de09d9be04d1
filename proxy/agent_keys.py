"""Agent authentication: each agent's own key maps to its Principal.

Keys are held only as SHA-256 digests; the presented key is hashed and looked up, so no
key is ever compared in the clear, logged or audited.
"""

from __future__ import annotations

import hashlib
import os

from lictor.enforcement.types import Principal
from lictor.proxy.config import AgentConfig, Config, ConfigError


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class AgentKeys:
    __slots__ = ("_by_digest", "disabled_ids", "loopback_only_ids")

    def __init__(self, config: Config, agents: list[AgentConfig] | None = None) -> None:
        """Keys of `agents` (default: the config's agents; the admin keys use this too)."""
        self._by_digest: dict[str, Principal] = {}
        self.loopback_only_ids: list[str] = []
        self.disabled_ids = [a.id for a in (agents if agents is not None else config.agents)
                             if a.disabled]
        for agent in agents if agents is not None else config.agents:
            if agent.loopback_only and not config.listens_on_loopback:
                continue  # a demo key never works on a reachable address
            if agent.key_env is not None:
                value = os.environ.get(agent.key_env)
                if not value:
                    raise ConfigError(
                        f"agent {agent.id!r}: environment variable {agent.key_env} is not set"
                    )
                digest = key_digest(value)
            elif agent.key is not None:
                digest = key_digest(agent.key)
            else:
                digest = agent.key_sha256 or ""
            if digest in self._by_digest:
                raise ConfigError(f"agent {agent.id!r} shares its key with another agent")
            self._by_digest[digest] = Principal(agent.id, agent.team, agent.tenant)
            if agent.loopback_only:
                self.loopback_only_ids.append(agent.id)

    def shares_a_key_with(self, other: AgentKeys) -> bool:
        return not self._by_digest.keys().isdisjoint(other._by_digest.keys())

    @property
    def principals(self) -> list[Principal]:
        return list(self._by_digest.values())

    def authenticate(self, authorization: str | None) -> Principal | None:
        """The principal for an `Authorization: Bearer <key>` header, or None."""
        if not authorization:
            return None
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return None
        return self._by_digest.get(key_digest(key.strip()))
