"""Process lifecycle: build the gateway from a config, print the banner, serve, shut down.

`BackgroundServer` runs the same app on its own thread and event loop (`AppThread`), for
tests and benchmarks that drive it with real clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Self

from aiohttp import web

from lictor.enforcement.limits import kill_key
from lictor.proxy.admin_api import AdminApi
from lictor.proxy.agent_keys import AgentKeys
from lictor.proxy.audit_commands import audit_path
from lictor.proxy.components import open_components, rule_paths
from lictor.proxy.config import Config, ConfigError
from lictor.proxy.gateway import GATEWAY_KEY, Gateway, build_app
from lictor.proxy.header_deadline import HeaderDeadlineRunner
from lictor.proxy.kill_switches import KillSwitches
from lictor.proxy.mcp_admin import McpAdminApi
from lictor.proxy.mcp_pins import PinStore
from lictor.proxy.mcp_proxy import McpProxy
from lictor.proxy.routing import Router
from lictor.proxy.rule_reload import RuleReloader
from lictor.proxy.telemetry import Telemetry, telemetry_from_config

log = logging.getLogger("lictor.server")


def pins_path(data_dir: Path) -> Path:
    return data_dir / "mcp_pins.sqlite3"


def build_gateway(config: Config, telemetry: Telemetry | None = None) -> Gateway:
    """Everything compiled and opened up front: a bad rule file fails start-up here."""
    keys = AgentKeys(config)
    router = Router(config)
    parts = open_components(config, keys.principals, keys.disabled_ids)
    return Gateway(keys, parts.engine, router, parts.audit, config.server.max_body_bytes,
                   approvals=parts.approvals, subject_keys=parts.subject_keys,
                   subject_header=config.audit.subject_header,
                   telemetry=telemetry or telemetry_from_config(config.telemetry),
                   checkpointer=parts.checkpointer,
                   body_timeout_s=config.limits.body_timeout_s)


def banner(config: Config, gateway: Gateway, url: str) -> str:
    lines = [
        f"lictor is listening on {url}",
        f"  OpenAI-compatible base_url: {url}/v1",
        f"  policy {gateway.engine.policy.version} from packs "
        f"{', '.join(config.rules.packs) or '(none)'}"
        + (f" and {len(config.rules.paths)} path(s)" if config.rules.paths else ""),
        f"  audit store: {audit_path(config.data_dir)}",
        f"  models: {', '.join(f'{r.name} ({r.backend})' for r in config.models)}",
    ]
    if config.mcp_servers:
        names = ", ".join(f"{url}/mcp/{s.name}" + ("/sse" if s.transport == "sse" else "")
                          for s in config.mcp_servers)
        lines.append(f"  MCP servers: {names}")
    if gateway.keys.loopback_only_ids:
        lines.append(
            "  demo agent key 'sk-lictor-demo' is accepted because lictor listens on loopback "
            "only; define your own agents before exposing lictor"
        )
    return "\n".join(lines)


async def _cleanup(app: web.Application) -> None:
    gateway = app[GATEWAY_KEY]
    gateway.ready = False
    await gateway.router.aclose()
    task = app.get(_CHECKPOINT_KEY)
    if task is not None:
        task.cancel()
    if gateway.checkpointer is not None:
        try:
            gateway.checkpointer.checkpoint()  # the last records get a signed root too
        except Exception:
            log.exception("final audit checkpoint failed")
    gateway.audit.close()
    gateway.approvals.desk.close()
    app[SWITCHES_KEY].close()
    if gateway.subject_keys is not None:
        gateway.subject_keys.close()


RELOADER_KEY = web.AppKey("reloader", RuleReloader)
SWITCHES_KEY = web.AppKey("kill_switches", KillSwitches)
_WATCH_KEY = web.AppKey("rule_watch", asyncio.Task[None])
_CHECKPOINT_KEY = web.AppKey("checkpoint_timer", asyncio.Task[None])


async def _start_checkpoints(app: web.Application) -> None:
    checkpointer = app[GATEWAY_KEY].checkpointer
    if checkpointer is not None:
        app[_CHECKPOINT_KEY] = asyncio.create_task(checkpointer.run())


async def _start_watching(app: web.Application) -> None:
    reloader = app[RELOADER_KEY]
    app[_WATCH_KEY] = asyncio.create_task(reloader.watch())
    # only the main thread's loop can take signals (not BackgroundServer's)
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(
            signal.SIGHUP, lambda: asyncio.ensure_future(reloader.reload("SIGHUP")))


async def _stop_watching(app: web.Application) -> None:
    task = app.get(_WATCH_KEY)
    if task is not None:
        task.cancel()


def make_app(config: Config, telemetry: Telemetry | None = None,
             egress: bool = False) -> web.Application:
    """lictor's app; `telemetry` (tests: in-memory exporters) replaces the configured one;
    `egress` runs the egress proxy (`config.egress`) with it."""
    gateway = build_gateway(config, telemetry)
    admin_keys = AgentKeys(config, config.admin.keys)
    if admin_keys.shares_a_key_with(gateway.keys):
        raise ConfigError("an admin key is also an agent key: give admins their own keys")
    app = build_app(gateway)
    gateway.telemetry.instrument(app)
    reloader = RuleReloader(gateway, rule_paths(config), gateway.keys.principals,
                            config.rules.watch_interval_s)
    app[RELOADER_KEY] = reloader
    switches = KillSwitches(config.data_dir / "kill_switches.sqlite3")
    state = gateway.engine.limits.state
    for agent_id in switches.stopped():  # operators' stops outlive a restart
        state.set_switch(kill_key(agent_id), True)
    app[SWITCHES_KEY] = switches
    admin = AdminApi(gateway, admin_keys, reloader, switches)
    admin.routes(app)
    pins = PinStore(pins_path(config.data_dir))
    McpProxy(gateway, config, pins).routes(app)
    McpAdminApi(admin, pins).routes(app)
    if config.rules.watch:
        app.on_startup.append(_start_watching)
        app.on_shutdown.append(_stop_watching)
    app.on_startup.append(_start_checkpoints)
    app.on_cleanup.append(_cleanup)
    if egress:  # mitmproxy is imported only here
        from lictor.proxy import egress as egress_plane

        egress_plane.install(app, config, gateway)
    return app


def serve(config: Config, egress: bool = False) -> None:
    app = make_app(config, egress=egress)
    # Start-up leaves a large heap (presidio, spaCy, compiled rules) that never dies: move
    # it out of the collector's view so full collections stay short under load.
    gc.collect()
    gc.freeze()
    url = f"http://{config.server.host}:{config.server.port}"
    print(banner(config, app[GATEWAY_KEY], url), flush=True)
    # what `web.run_app` does, with the header deadline on every connection: on SIGINT or
    # SIGTERM the server task alone is cancelled first, so requests in flight can finish
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_run(app, config))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        rest = asyncio.all_tasks(loop)
        for task in rest:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*rest, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _run(app: web.Application, config: Config) -> None:
    """Serve until cancelled; then requests in flight get up to 10 s to finish."""
    runner = HeaderDeadlineRunner(app, config.limits.header_timeout_s, handle_signals=True,
                                  access_log=None, shutdown_timeout=10.0,
                                  keepalive_timeout=75.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.server.host, config.server.port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


class AppThread:
    """An aiohttp app on a daemon thread with its own event loop; `url` is set once it
    listens. For tests and benchmarks that drive a server with real clients."""

    def __init__(self, make: Callable[[], web.Application], host: str, port: int,
                 ssl_context: ssl.SSLContext | None = None,
                 header_timeout_s: float | None = None) -> None:
        self._make, self._host, self._port = make, host, port
        self._ssl = ssl_context  # set: serve HTTPS (tests' loopback upstreams)
        self._header_timeout_s = header_timeout_s  # set: lictor's own header deadline
        self.url = ""
        self.app: web.Application | None = None
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self.app = self._make()
        self._runner = (web.AppRunner(self.app, access_log=None)
                        if self._header_timeout_s is None else
                        HeaderDeadlineRunner(self.app, self._header_timeout_s, access_log=None))
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl).start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if self._ssl else 'http'}://{self._host}:{port}"

    def start(self) -> Self:
        self._thread.start()
        self._started.wait(60)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Shut down cleanly (cleanup hooks run); calling it again does nothing."""
        if not self._thread.is_alive():
            return

        async def _stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BackgroundServer(AppThread):
    """lictor itself, built from a config, on its own thread."""

    def __init__(self, config: Config, telemetry: Telemetry | None = None,
                 egress: bool = False) -> None:
        super().__init__(lambda: make_app(config, telemetry, egress), config.server.host,
                         config.server.port, header_timeout_s=config.limits.header_timeout_s)
        self.config = config

    @property
    def gateway(self) -> Gateway:
        assert self.app is not None
        return self.app[GATEWAY_KEY]
