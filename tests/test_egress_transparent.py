"""Transparent mode for real: an agent in its own network namespace, with no proxy
settings at all, whose outbound TCP is redirected by iptables to lictor's egress proxy.

Needs root, `ip`, `iptables` and `curl` (the agent), and a kernel that lets this process
create network namespaces; skipped with the reason otherwise. The agent reaches the tool
server by name (`localhost:PORT`, pinned to the host end of the veth pair), exactly as it
would reach an API on the internet from a pod.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import audit_rows
from egress_setup import running_egress
from tls_certs import CertAuthority, make_test_ca
from tool_server import ToolServer


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "transparent mode needs root (network namespace and iptables)"
    tools = [t for t in ("ip", "iptables", "curl") if shutil.which(t) is None]
    if tools:
        return f"transparent mode needs {', '.join(tools)} (not installed)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "this machine does not allow new network namespaces"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout


class AgentNamespace:
    """A network namespace joined to the host by a veth pair; its default route is the
    host, where iptables sends every TCP connection to lictor (the init container's job in
    a pod)."""

    def __init__(self) -> None:
        tag = secrets.token_hex(3)
        self.ns, self.host_if, self.agent_if = f"lictor-{tag}", f"lh{tag}", f"la{tag}"
        net = 10 + secrets.randbelow(200)
        self.host_ip, self.agent_ip = f"10.231.{net}.1", f"10.231.{net}.2"
        self.rule: list[str] = []

    def create(self) -> None:
        _run("ip", "netns", "add", self.ns)
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.agent_if)
        _run("ip", "link", "set", self.agent_if, "netns", self.ns)
        _run("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        inside = ("ip", "netns", "exec", self.ns)
        _run(*inside, "ip", "addr", "add", f"{self.agent_ip}/24", "dev", self.agent_if)
        _run(*inside, "ip", "link", "set", self.agent_if, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "route", "add", "default", "via", self.host_ip)

    def redirect_to(self, port: int) -> None:
        self.rule = ["PREROUTING", "-i", self.host_if, "-p", "tcp", "-j", "REDIRECT",
                     "--to-ports", str(port)]
        _run("iptables", "-t", "nat", "-A", *self.rule)

    def destroy(self) -> None:
        if self.rule:
            subprocess.run(["iptables", "-t", "nat", "-D", *self.rule], check=False)
        subprocess.run(["ip", "netns", "del", self.ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self.host_if], check=False, capture_output=True)

    def curl(self, url: str, host: str, ca: Path) -> tuple[int, str]:
        """The agent's request: no proxy settings; the name resolves to the host side."""
        name, port = host.rsplit(":", 1)
        out = _run("ip", "netns", "exec", self.ns, "curl", "-sS", "--noproxy", "*",
                   "--max-time", "20", "--cacert", str(ca),
                   "--resolve", f"{name}:{port}:{self.host_ip}", "-w", "\n%{http_code}", url)
        body, status = out.rsplit("\n", 1)
        return int(status), body


@pytest.fixture
def agent_ns() -> Iterator[AgentNamespace]:
    ns = AgentNamespace()
    try:
        ns.create()
        yield ns
    finally:
        ns.destroy()


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return make_test_ca(tmp_path_factory.mktemp("transparent-ca"))


def test_transparent_mode_governs_redirected_traffic(tmp_path: Path, test_ca: CertAuthority,
                                                     agent_ns: AgentNamespace) -> None:
    with (ToolServer(test_ca.server_context()) as tools,
          ToolServer(test_ca.server_context()) as other,
          running_egress(tmp_path, test_ca, [tools.host], mode="transparent",
                         host=agent_ns.host_ip) as egress):
        assert egress.proxy.address is not None
        agent_ns.redirect_to(egress.proxy.address[1])
        status, body = agent_ns.curl(f"{tools.base}/weather?city=Lima", tools.host,
                                     egress.ca_cert)
        assert status == 200 and json.loads(body)["city"] == "Lima"
        status, body = agent_ns.curl(f"{tools.base}/admin/users", tools.host, egress.ca_cert)
        assert status == 403 and "no-admin-paths" in body
        status, body = agent_ns.curl(f"{other.base}/weather", other.host, egress.ca_cert)
        assert status == 403 and "no policy permits it" in body
        rows = audit_rows(egress.server)
    assert [s.path for s in tools.seen] == ["/weather?city=Lima"]
    assert other.seen == []
    assert [(r["kind"], r["verdict"]) for r in rows] == [
        ("http_request", "allow"), ("http_response", "allow"),
        ("http_request", "block"), ("http_request", "block")]
    assert {r["principal"]["agent"] for r in rows} == {"demo-agent"}  # the sidecar's agent
