"""Starting lictor with its egress proxy for tests: a Cedar policy file that allows the
loopback tool servers, the test CA trusted upstream, and the proxy's own CA for clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tls_certs import CertAuthority

from lictor.proxy.config import load_config
from lictor.proxy.egress import EGRESS_KEY, EgressProxy
from lictor.proxy.server import BackgroundServer

POLICY = """
@id("tool-server-{n}")
permit (principal, action == Action::"http_request", resource == Host::"{host}");
"""
NO_ADMIN = """
@id("no-admin-paths")
forbid (principal, action == Action::"http_request", resource)
when { context.path like "/admin*" };
"""


@dataclass
class Egress:
    server: BackgroundServer
    proxy_url: str  # http://127.0.0.1:PORT
    ca_cert: Path  # lictor's CA: what the agent trusts

    @property
    def proxy(self) -> EgressProxy:
        assert self.server.app is not None
        return self.server.app[EGRESS_KEY]


def write_policy(folder: Path, allowed_hosts: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "".join(POLICY.format(n=i, host=h) for i, h in enumerate(allowed_hosts)) + NO_ADMIN
    (folder / "egress.cedar").write_text(text)
    return folder


@contextmanager
def running_egress(tmp_path: Path, test_ca: CertAuthority, allowed_hosts: list[str],
                   max_body_bytes: int = 4 * 1024 * 1024, limits: dict[str, Any] | None = None,
                   **egress: Any) -> Iterator[Egress]:
    """lictor (gateway + egress proxy, sidecar agent `demo-agent` unless `agent=None`)."""
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "agent": "demo-agent",
                                "upstream_ca": str(test_ca.ca_cert)}
    settings.update(egress)
    config = load_config(None, {
        "server": {"host": "127.0.0.1", "port": 0, "max_body_bytes": max_body_bytes},
        "data_dir": str(tmp_path / "var"),
        "rules": {"paths": [str(write_policy(tmp_path / "policy", allowed_hosts))],
                  "watch": False},
        "egress": settings,
        **({"limits": limits} if limits else {}),
    })
    with BackgroundServer(config, egress=True) as server:
        assert server.app is not None
        proxy = server.app[EGRESS_KEY]
        assert proxy.address is not None
        yield Egress(server, f"http://{proxy.address[0]}:{proxy.address[1]}", proxy.ca_cert)
