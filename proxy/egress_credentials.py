"""Credential injection for the egress proxy: the agent holds no secrets; lictor adds the
right one per destination host and strips whatever credential the agent sent elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from dataclasses import dataclass

from lictor.proxy.config import ConfigError, EgressCredential

# Headers that carry credentials; an agent's copy never leaves lictor.
CREDENTIAL_HEADERS = ("authorization", "proxy-authorization", "x-api-key", "api-key", "cookie")


@dataclass(slots=True, frozen=True)
class Credential:
    header: str
    prefix: str
    secret: str  # never logged or audited

    @property
    def value(self) -> str:
        return self.prefix + self.secret

    def __repr__(self) -> str:
        return f"Credential(header={self.header!r}, secret=<redacted>)"


def host_key(host: str, port: int) -> str:
    """How hosts are named in the config: `name` for 443 and 80, else `name:port`."""
    host = host.lower().rstrip(".")
    return host if port in (443, 80) else f"{host}:{port}"


class Credentials:
    """lictor's credentials by destination host, read from the environment at start."""

    __slots__ = ("_by_host",)

    def __init__(self, configured: list[EgressCredential]) -> None:
        self._by_host: dict[str, list[Credential]] = {}
        for c in configured:
            value = os.environ.get(c.env)
            if not value:
                raise ConfigError(f"egress credential for {c.host}: environment variable "
                                  f"{c.env} is not set")
            self._by_host.setdefault(c.host.lower(), []).append(
                Credential(c.header, c.prefix, value))

    def for_host(self, host: str) -> list[Credential]:
        return self._by_host.get(host, [])

    def apply(self, headers: MutableMapping[str, str], host: str) -> list[str]:
        """Strip every credential header the agent sent, then add lictor's own for `host`.
        Returns the names of the headers stripped (for the audit, never their values)."""
        stripped = [name for name in CREDENTIAL_HEADERS if name in headers]
        for name in stripped:
            del headers[name]
        for cred in self.for_host(host):
            headers[cred.header] = cred.value
        return stripped
