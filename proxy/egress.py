"""The egress data plane's lifecycle: an embedded mitmproxy (regular or transparent mode)
in lictor's own event loop, next to the gateway, sharing its engine and audit chain.

Model API calls re-enter the gateway through a private loopback listener serving the
gateway's own endpoints (see proxy/egress_link). mitmproxy is imported here only, and this
module only when `--egress` is given.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from aiohttp import web

from lictor.enforcement.types import Principal
from lictor.proxy.config import Config, ConfigError, EgressConfig
from lictor.proxy.egress_credentials import Credentials
from lictor.proxy.egress_link import EgressLink
from lictor.proxy.gateway import Gateway, build_app

log = logging.getLogger("lictor.egress")

CA_CERT = "mitmproxy-ca-cert.pem"  # what agents trust (mitmproxy's name for it)


def ca_dir(config: Config) -> Path:
    return config.egress.ca_dir or config.data_dir / "egress-ca"


def upstream_ssl(egress: EgressConfig) -> ssl.SSLContext:
    """How lictor verifies upstream servers: the configured CAs, else certifi's (the same
    store mitmproxy uses)."""
    import certifi

    return ssl.create_default_context(cafile=str(egress.upstream_ca or certifi.where()))


def sidecar_agent(config: Config) -> Principal | None:
    if config.egress.agent is None:
        return None
    agent = next(a for a in config.agents if a.id == config.egress.agent)  # checked by Config
    return Principal(agent.id, agent.team, agent.tenant)


class EgressProxy:
    """Start with `await start()` inside the running loop; `address` is set once it listens."""

    def __init__(self, config: Config, gateway: Gateway) -> None:
        egress = config.egress
        if egress.mode == "transparent" and egress.agent is None:
            raise ConfigError("egress: transparent mode needs `egress.agent` (the agent this "
                              "sidecar serves)")
        self.config = egress
        self.gateway = gateway
        self.limits = config.limits  # the gateway's header and body deadlines apply here too
        self.ca_dir = ca_dir(config)
        self.credentials = Credentials(egress.credentials)
        self.link = EgressLink(upstream_ssl(egress))
        self.agent = sidecar_agent(config)
        self.address: tuple[str, int] | None = None
        self._internal: web.AppRunner | None = None
        self._master: object | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / CA_CERT

    async def _start_internal(self) -> tuple[tuple[str, int], set[str]]:
        """The gateway's endpoints on a private loopback port, for tickets only."""
        app = build_app(self.gateway)
        self._internal = web.AppRunner(app, access_log=None)
        await self._internal.setup()
        await web.TCPSite(self._internal, "127.0.0.1", 0).start()
        port = self._internal.addresses[0][1]
        paths = {r.canonical for r in app.router.resources()}
        return ("127.0.0.1", port), paths

    async def start(self) -> None:
        from mitmproxy.addons import core, next_layer, proxyserver, tlsconfig
        from mitmproxy.master import Master
        from mitmproxy.options import Options

        from lictor.proxy.egress_addon import EgressAddon
        from lictor.proxy.egress_deadlines import EgressDeadlines

        # mitmproxy logs every connection at INFO (URLs too); lictor prints its own banner
        logging.getLogger("mitmproxy").setLevel(logging.WARNING)
        self.gateway.egress = self.link
        gateway_address, served = await self._start_internal()
        self.ca_dir.mkdir(parents=True, exist_ok=True)
        master = Master(Options(), event_loop=asyncio.get_running_loop())
        server = proxyserver.Proxyserver()
        model_hosts: dict[str, str] = {m.host.lower(): m.protocol for m in self.config.model_hosts}
        limits = self.limits
        master.addons.add(core.Core(), server, next_layer.NextLayer(), tlsconfig.TlsConfig(),
                          EgressDeadlines(server, limits.header_timeout_s, limits.body_timeout_s),
                          EgressAddon(self.gateway, link=self.link, credentials=self.credentials,
                                      agent=self.agent, model_hosts=model_hosts,
                                      gateway_address=gateway_address, served_paths=served,
                                      timeout_s=self.config.timeout_s))
        upstream_ca = self.config.upstream_ca
        master.options.update(
            mode=[self.config.mode],
            listen_host=self.config.host,
            listen_port=self.config.port,
            confdir=str(self.ca_dir),
            ssl_insecure=False,  # upstream certificates are verified
            ssl_verify_upstream_trusted_ca=str(upstream_ca) if upstream_ca else None,
            connection_strategy="lazy",  # refusals never wait on (or dial) the upstream
            rawtcp=False,  # what is not TLS or HTTP is parsed as HTTP, and fails: never relayed
            body_size_limit=str(self.gateway.max_body_bytes * 4),
        )
        self._master = master
        self._task = asyncio.create_task(master.run())
        for _ in range(200):  # the listener binds in mitmproxy's `running` hook
            addrs = server.listen_addrs()
            if addrs:
                host, port = addrs[0][:2]
                self.address = (str(host), int(port))
                break
            if self._task.done():
                self._task.result()  # raises mitmproxy's start-up error
                raise RuntimeError("the egress proxy stopped during start-up")
            await asyncio.sleep(0.025)
        else:
            raise RuntimeError("the egress proxy did not start listening")
        print(f"  egress proxy ({self.config.mode} mode) on {self.address[0]}:{self.address[1]}"
              f"\n  egress CA certificate (agents trust it): {self.ca_cert}", flush=True)

    async def stop(self) -> None:
        master = self._master
        if master is not None:
            master.shutdown()  # type: ignore[attr-defined]
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        if self._internal is not None:
            await self._internal.cleanup()
        await self.link.aclose()
        self.gateway.egress = None


EGRESS_KEY = web.AppKey("egress", EgressProxy)


def install(app: web.Application, config: Config, gateway: Gateway) -> EgressProxy:
    """Run the egress proxy with the app: started on its start-up, stopped before cleanup."""
    proxy = EgressProxy(config, gateway)
    app[EGRESS_KEY] = proxy

    async def _start(app: web.Application) -> None:
        await proxy.start()

    async def _stop(app: web.Application) -> None:
        await proxy.stop()

    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)
    return proxy
