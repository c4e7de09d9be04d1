"""lictor's configuration: pydantic models, the embedded defaults, and file loading.

A config file replaces the embedded defaults key by key at the top level (give `models`
and the default agents stay). Errors name the file, the line and the field.
"""

from __future__ import annotations

import ipaddress
import os
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lictor.rules.loader import DEFAULT_PACKS
from lictor.rules.schema import DURATION
from lictor.rules.yaml_lines import LocatedYaml, YamlSyntaxError, load_located


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class LimitsConfig(Strict):
    """Connection limits of lictor's own HTTP server."""

    # a connection that has not sent a request's complete headers in this time is closed
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # reading a request's body (once its headers are in) may take this long, then 408
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)


class AgentConfig(Strict):
    """One agent and its own key (plain, as a SHA-256, or read from the environment)."""

    id: str = Field(min_length=1)
    team: str = ""
    tenant: str = ""
    key: str | None = None
    key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    key_env: str | None = None
    loopback_only: bool = False  # accepted only while lictor listens on loopback
    disabled: bool = False  # the kill switch, set from the start (the admin API toggles it)

    @model_validator(mode="after")
    def _one_key(self) -> AgentConfig:
        if sum(x is not None for x in (self.key, self.key_sha256, self.key_env)) != 1:
            raise ValueError(f"agent {self.id!r} needs exactly one of key, key_sha256, key_env")
        return self


class AdminConfig(Strict):
    """Keys of the people and systems that operate lictor (kill switch, approvals); an
    approver's `team` is what `@needs_approval("team")` asks for. Separate from agent
    keys: neither works in the other's place."""

    keys: list[AgentConfig] = []


class ModelRoute(Strict):
    """A public model name and the backend that serves it."""

    name: str = Field(min_length=1)
    backend: Literal["local", "passthrough", "litellm"]
    upstream_model: str | None = None  # defaults to `name`
    base_url: str | None = None
    api_key_env: str | None = None  # upstream provider key, injected by lictor
    timeout_s: float = Field(default=120.0, gt=0)
    anthropic_version: str = "2023-06-01"  # sent upstream with /v1/messages (passthrough)
    # passthrough: further tries when the upstream could not be reached or answered 429,
    # 502, 503 or 504 (Retry-After honoured up to 10 s); never after it may have acted
    retries: int = Field(default=0, ge=0, le=5)
    retry_backoff_s: float = Field(default=0.25, gt=0, le=10)
    # tools the model runs on its own whatever a request asks, authorized on every request
    # as Tool::"hosted:<type>" (a search model: ["web_search_options"]); unset: as the
    # model's name says (OpenAI's *-search-preview and *-search-api models search)
    hosted_tools: list[str] | None = None

    @model_validator(mode="after")
    def _backend_needs(self) -> ModelRoute:
        if self.backend == "passthrough" and not self.base_url:
            raise ValueError(f"model {self.name!r}: the passthrough backend needs `base_url`")
        return self


class McpServerConfig(Strict):
    """An upstream MCP server that agents reach through lictor at `/mcp/{name}`."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    # the streamable HTTP endpoint, or with `transport: sse` the server's SSE endpoint
    url: str = Field(pattern=r"^https?://[^\s/]+")
    # sse: the older HTTP+SSE transport (protocol 2024-11-05), served at /mcp/{name}/sse
    transport: Literal["streamable_http", "sse"] = "streamable_http"
    pin: Literal["approve", "first_use"] = "approve"  # how a tool seen first is pinned
    timeout_s: float = Field(default=60.0, gt=0)
    api_key_env: str | None = None  # lictor's own upstream credential (Bearer); never the agent's


class LiteLLMConfig(Strict):
    """Passed to `litellm.Router(model_list=..., **router_settings)`."""

    model_list: list[dict[str, Any]] = Field(min_length=1)
    router_settings: dict[str, Any] = Field(default_factory=dict)


class RulesConfig(Strict):
    packs: list[str] = list(DEFAULT_PACKS)  # bundled packs, by name
    paths: list[Path] = []  # the team's own rule files and folders
    watch: bool = True  # reload when a rule file changes (SIGHUP reloads too)
    watch_interval_s: float = Field(default=1.0, gt=0)


class AuditConfig(Strict):
    # NORMAL (WAL) survives a crash of lictor; FULL also survives power loss, slower.
    synchronous: Literal["normal", "full"] = "normal"
    # Keep the personal data behind placeholders, sealed per data subject (for disputes;
    # `lictor audit reveal`), erasable with `lictor audit erase --subject ID`.
    keep_originals: bool = False
    subject_header: str = "x-lictor-subject"  # who the data is about; else the session
    # names the log in its checkpoints, and is the signing key's name (C2SP signed note)
    origin: str = Field(default="lictor.local/audit", pattern=r"^[^\s+]+$")
    # Ed25519 private key (PEM, mode 0600); default <data_dir>/keys/audit-signing.pem,
    # created on first start
    signing_key: Path | None = None
    checkpoint_every_records: int = Field(default=1000, ge=1)
    checkpoint_every_s: float = Field(default=60.0, gt=0)


class ApprovalsConfig(Strict):
    """How long people have to decide, and how long an approval stays usable."""

    pending_ttl: str = Field(default="24h", pattern=DURATION)
    valid_for: str = Field(default="1h", pattern=DURATION)


class TelemetryConfig(Strict):
    """OpenTelemetry spans and metrics. `none` (the default) never imports the SDK, so
    lictor starts and serves as if telemetry did not exist."""

    exporter: Literal["none", "console", "otlp"] = "none"
    # OTLP over HTTP: the collector's base URL; /v1/traces and /v1/metrics are appended
    endpoint: str | None = Field(default=None, pattern=r"^https?://[^\s/]+")
    service_name: str = Field(default="lictor", min_length=1)
    metrics_interval_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _endpoint_for_otlp(self) -> TelemetryConfig:
        if self.exporter == "otlp" and not self.endpoint:
            raise ValueError("the otlp exporter needs `endpoint` (e.g. http://127.0.0.1:4318)")
        if self.exporter != "otlp" and self.endpoint:
            raise ValueError(f"`endpoint` is only used by the otlp exporter, not {self.exporter}")
        return self


class EgressModelHost(Strict):
    """A model API host whose calls go through the gateway's protocol adapters."""

    host: str = Field(min_length=1)  # host name, or host:port when not 443
    protocol: Literal["openai", "anthropic"] = "openai"


class EgressCredential(Strict):
    """lictor's own credential for one destination host, read from the environment; any
    credential the agent sends to another host is stripped."""

    host: str = Field(min_length=1)
    env: str = Field(min_length=1)  # environment variable holding the secret
    header: str = "Authorization"
    prefix: str = "Bearer "  # put before the secret ("" for x-api-key style headers)


class EgressConfig(Strict):
    """The egress data plane (`lictor serve --egress regular|transparent`): a mitmproxy
    that governs every outbound request of the agent. Hosts are allowed by Cedar policies
    (`http_request`); model API hosts go through the gateway's adapters."""

    mode: Literal["regular", "transparent"] = "regular"
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # the agent this sidecar serves (required in transparent mode); in regular mode, a
    # `Proxy-Authorization: Basic` with an agent key as password names the agent instead
    agent: str | None = None
    # mitmproxy's CA (mitmproxy-ca.pem, created on first start); default <data_dir>/egress-ca
    ca_dir: Path | None = None
    # extra CAs (PEM) trusted for upstream servers, besides the system store
    upstream_ca: Path | None = None
    model_hosts: list[EgressModelHost] = [
        EgressModelHost(host="api.openai.com", protocol="openai"),
        EgressModelHost(host="api.anthropic.com", protocol="anthropic"),
    ]
    credentials: list[EgressCredential] = []
    timeout_s: float = Field(default=120.0, gt=0)


class Config(Strict):
    server: ServerConfig = ServerConfig()
    limits: LimitsConfig = LimitsConfig()
    data_dir: Path = Path("./var")
    rules: RulesConfig = RulesConfig()
    agents: list[AgentConfig] = []
    models: list[ModelRoute] = []
    mcp_servers: list[McpServerConfig] = []
    litellm: LiteLLMConfig | None = None
    audit: AuditConfig = AuditConfig()
    admin: AdminConfig = AdminConfig()
    approvals: ApprovalsConfig = ApprovalsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    egress: EgressConfig = EgressConfig()

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if any(r.backend == "litellm" for r in self.models) and self.litellm is None:
            raise ValueError("a model uses the litellm backend but there is no `litellm` section")
        names = [r.name for r in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        servers = [s.name for s in self.mcp_servers]
        dupes = sorted({n for n in servers if servers.count(n) > 1})
        if dupes:
            raise ValueError(f"MCP server names must be unique; repeated: {', '.join(dupes)}")
        agent = self.egress.agent
        if agent is not None and agent not in {a.id for a in self.agents}:
            raise ValueError(f"egress.agent {agent!r} is not one of the configured agents")
        return self

    @property
    def listens_on_loopback(self) -> bool:
        host = self.server.host
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


class ConfigError(ValueError):
    pass


def _read(path: Path | None) -> tuple[str, LocatedYaml]:
    if path is None:
        name = "embedded defaults (lictor/proxy/defaults.yaml)"
        text = resources.files("lictor.proxy").joinpath("defaults.yaml").read_text("utf-8")
    else:
        name = str(path)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    try:
        doc = load_located(text)
    except YamlSyntaxError as exc:
        raise ConfigError(f"{name}:{exc.line}: YAML syntax error: {exc}") from None
    if doc.data is not None and not isinstance(doc.data, dict):
        raise ConfigError(f"{name}:1: the config must be a mapping of settings")
    return name, doc


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Embedded defaults, then the file (`path` or $LICTOR_CONFIG), then overrides."""
    if path is None and os.environ.get("LICTOR_CONFIG"):
        path = Path(os.environ["LICTOR_CONFIG"])
    _, defaults = _read(None)
    data: dict[str, Any] = dict(defaults.data or {})
    name, doc = _read(path) if path is not None else ("embedded defaults", defaults)
    if path is not None:
        data.update(doc.data or {})
        base = path.parent
        rules = data.get("rules")
        if isinstance(rules, dict) and isinstance(rules.get("paths"), list):
            # rule paths in a config file are relative to that file
            rules["paths"] = [str(base / p) for p in rules["paths"]]
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            data[section] = {**(data.get(section) or {}), **values}
        else:
            data[section] = values
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(config)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown setting {loc[-1]!r} (check its spelling)"
            lines.append(f"{name}:{doc.line_of(loc)}: {where}: {msg}")
        raise ConfigError("\n".join(lines)) from None
