"""The mitmproxy addon of the egress data plane: names the agent, sends model API calls
through the gateway's adapters, and governs every other request as an `http_request`.

Imported only by `lictor serve --egress` (it imports mitmproxy).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from mitmproxy import connection, dns, http, tcp, udp

from lictor.adapters import http_request
from lictor.adapters.backends.base import Route
from lictor.enforcement.types import Principal
from lictor.proxy.egress_credentials import Credentials, host_key
from lictor.proxy.egress_guard import HttpExchange, HttpGuard, Refusal
from lictor.proxy.egress_link import TICKET_HEADER, EgressLink
from lictor.proxy.gateway import Gateway

log = logging.getLogger("lictor.egress")

# Model API paths by protocol: a request whose path ends with the suffix goes to the gateway
# endpoint beside it (when the gateway serves it; otherwise it is an `http_request`).
MODEL_PATHS: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (("/chat/completions", "/v1/chat/completions"),
               ("/responses", "/v1/responses"),
               ("/embeddings", "/v1/embeddings")),
    "anthropic": (("/messages", "/v1/messages"),),
}
_META = "lictor"


@dataclass(slots=True, frozen=True)
class ModelTarget:
    """Where the egress proxy sends a recognized model call: the gateway endpoint, and the
    original destination's base URL (the path before the endpoint's suffix)."""

    gateway_path: str
    base_url: str


def _refuse(flow: http.HTTPFlow, refusal: Refusal, headers: dict[str, str] | None = None) -> None:
    flow.response = http.Response.make(
        refusal.status, refusal.body(), {"Content-Type": "application/json", **(headers or {})})


class EgressAddon:
    """One per egress proxy. `agent` is the sidecar's principal (None: proxy auth only)."""

    def __init__(self, gateway: Gateway, *, link: EgressLink, credentials: Credentials,
                 agent: Principal | None, model_hosts: dict[str, str],
                 gateway_address: tuple[str, int], served_paths: set[str],
                 timeout_s: float) -> None:
        self.gateway = gateway
        self.guard = HttpGuard(gateway)
        self.link = link
        self.credentials = credentials
        self.agent = agent
        self.model_hosts = model_hosts  # host key -> protocol
        self.gateway_address = gateway_address
        self.paths = {proto: tuple((s, p) for s, p in pairs if p in served_paths)
                      for proto, pairs in MODEL_PATHS.items()}
        self.timeout_s = timeout_s
        self._connected: dict[str, Principal] = {}  # client connection id -> proxy-auth agent

    # -- who -----------------------------------------------------------------------

    def _proxy_auth(self, headers: http.Headers) -> Principal | None:
        """`Proxy-Authorization: Basic base64(user:agent-key)` names the agent by its key."""
        value = headers.get("proxy-authorization", "")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "basic" or not token:
            return None
        try:
            _, _, key = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except ValueError:
            return None
        return self.gateway.keys.authenticate(f"Bearer {key}") if key else None

    def _principal(self, flow: http.HTTPFlow) -> Principal | None:
        """The agent a CONNECT named, else the request's own proxy credential, else the
        sidecar's agent. A credential that names no agent is refused, never ignored."""
        found = self._connected.get(flow.client_conn.id)
        if found is not None:
            return found
        if "proxy-authorization" in flow.request.headers:
            return self._proxy_auth(flow.request.headers)
        return self.agent

    def http_connect(self, flow: http.HTTPFlow) -> None:
        principal = self._principal(flow)
        if principal is None:
            self._ask_for_auth(flow)
        elif "proxy-authorization" in flow.request.headers:
            self._connected[flow.client_conn.id] = principal

    def client_disconnected(self, client: connection.Client) -> None:
        self._connected.pop(client.id, None)

    def _ask_for_auth(self, flow: http.HTTPFlow) -> None:
        self._reject(flow, None, Refusal(
            407, "proxy_auth_required", "lictor needs the agent's key: send "
            "Proxy-Authorization: Basic with the agent key as the password (e.g. "
            "HTTPS_PROXY=http://agent:KEY@host:port)"),
            {"Proxy-Authenticate": 'Basic realm="lictor"'})

    def _reject(self, flow: http.HTTPFlow, principal: Principal | None, refusal: Refusal,
                headers: dict[str, str] | None = None) -> None:
        req = flow.request
        where = host_key(req.pretty_host, req.port) + req.path.split("?", 1)[0]
        _refuse(flow, self.guard.rejected(principal, where, refusal), headers)

    # -- requests ------------------------------------------------------------------

    def _model_target(self, flow: http.HTTPFlow, key: str) -> ModelTarget | None:
        protocol = self.model_hosts.get(key)
        if protocol is None or flow.request.method != "POST":
            return None
        path = flow.request.path.split("?", 1)[0]
        for suffix, gateway_path in self.paths.get(protocol, ()):
            if path.endswith(suffix):
                base = f"{flow.request.scheme}://{key}{path[: -len(suffix)]}"
                return ModelTarget(gateway_path, base)
        return None

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A body declared larger than the limit is refused before it is read, in JSON (not
        mitmproxy's own HTML page), and audited."""
        declared = flow.request.headers.get("content-length", "")
        limit = self.gateway.max_body_bytes
        if flow.response is None and declared.isdigit() and int(declared) > limit:
            principal = self._principal(flow)
            if principal is None:
                self._ask_for_auth(flow)
                return
            self._reject(flow, principal, Refusal(
                413, "request_too_large", f"the request body ({declared} bytes) is larger "
                f"than the limit of {limit} bytes (server.max_body_bytes)"))

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:  # answered already (407 on CONNECT, 413 on headers)
            return
        principal = self._principal(flow)
        if principal is None:
            self._ask_for_auth(flow)
            return
        req = flow.request
        req.headers.pop(TICKET_HEADER, None)  # only lictor sets it
        host = req.pretty_host.lower().rstrip(".")
        # The connection goes to the host that was authorized, whatever address the agent
        # dialed (transparent mode) or the CONNECT named (no fronting through a Host header).
        req.host = host
        key = host_key(host, req.port)
        target = self._model_target(flow, key)
        if target is not None:
            self._to_gateway(flow, principal, key, target)
            return
        limit = self.gateway.max_body_bytes
        try:
            body = http_request.decode_body(req.raw_content or b"",
                                            req.headers.get("content-encoding", ""), limit)
        except http_request.BodyError as exc:  # not judged, so not sent (fail closed)
            self._reject(flow, principal, Refusal(
                413 if exc.too_large else 415, "request_body_refused",
                f"lictor does not send this request: {exc} (limit: server.max_body_bytes)"))
            return
        if "accept-encoding" in req.headers:  # answers lictor can decode with a bound
            req.headers["accept-encoding"] = http_request.ACCEPT_ENCODING
        refusal, ex = self.guard.check_request(principal, req.method, key, req.path,
                                               content_type=req.headers.get("content-type", ""),
                                               body=body)
        if refusal is not None:  # audited already
            _refuse(flow, refusal)
            return
        flow.metadata[_META] = ex  # audited with its response
        self.credentials.apply(req.headers, key)

    def _to_gateway(self, flow: http.HTTPFlow, principal: Principal, key: str,
                    target: ModelTarget) -> None:
        creds = self.credentials.for_host(key)
        route = Route(name="", backend="egress", upstream_model="", base_url=target.base_url,
                      api_key=creds[0].secret if creds else "", timeout_s=self.timeout_s)
        req = flow.request
        self.credentials.apply(req.headers, "")  # the agent's own credentials stay here
        req.headers[TICKET_HEADER] = self.link.park(principal, route)
        host, port = self.gateway_address
        req.scheme, req.host, req.port, req.path = "http", host, port, target.gateway_path
        req.headers["host"] = f"{host}:{port}"
        flow.metadata[_META] = "model"

    # -- responses -----------------------------------------------------------------

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        assert flow.response is not None
        if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            ex = flow.metadata.get(_META)
            if ex == "model":  # the gateway checks streams chunk by chunk itself
                flow.response.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.get(_META)
        if not isinstance(ex, HttpExchange) or flow.response is None:
            return
        resp = flow.response
        try:
            body = http_request.decode_body(resp.raw_content or b"",
                                            resp.headers.get("content-encoding", ""),
                                            4 * self.gateway.max_body_bytes)
        except http_request.BodyError as exc:  # not judged, so withheld (fail closed)
            _refuse(flow, Refusal(502, "response_withheld",
                                  f"lictor withholds the answer of {ex.host}: {exc}"))
            self.guard.upstream_failed(ex, str(exc), "response_withheld")
            return
        content_type = resp.headers.get("content-type", "")
        refusal = self.guard.check_response(ex, resp.status_code, content_type, body or b"")
        if refusal is not None:
            _refuse(flow, refusal)

    # -- everything that is not an HTTP exchange -----------------------------------

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Raw TCP, UDP, DNS: nothing to judge them by, so they never reach their
        destination (fail closed). With `rawtcp` off mitmproxy parses unknown TCP as HTTP,
        which fails; these hooks are the second lock."""
        self._close_stream(flow, "tcp")

    def udp_start(self, flow: udp.UDPFlow) -> None:
        self._close_stream(flow, "udp")

    def dns_request(self, flow: dns.DNSFlow) -> None:
        self._close_stream(flow, "dns")

    def _close_stream(self, flow: tcp.TCPFlow | udp.UDPFlow | dns.DNSFlow, kind: str) -> None:
        flow.kill()
        address = flow.server_conn.address
        where = f"{kind}://{address[0]}:{address[1]}" if address else kind
        self.guard.rejected(self._connected.get(flow.client_conn.id) or self.agent, where,
                            Refusal(403, "not_http", "lictor governs HTTP only; other "
                                    "protocols are closed"))

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        """WebSocket messages (after a handshake Cedar allowed): text is judged like the
        bodies, going out as the agent's and coming back as a tool's; a message a finding
        blocks is replaced by lictor's refusal (JSON, naming the rule), audited."""
        assert flow.websocket is not None
        message = flow.websocket.messages[-1]
        if not message.is_text:
            return
        principal = self._principal(flow) or self.agent
        refusal = self.guard.check_message(principal, message.text, message.from_client)
        if refusal is not None:
            message.text = refusal.body().decode()
            req = flow.request
            self.guard.rejected(principal, host_key(req.pretty_host, req.port) +
                                req.path.split("?", 1)[0], refusal)

    def error(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.get(_META)
        if isinstance(ex, HttpExchange) and flow.error is not None:
            self.guard.upstream_failed(ex, flow.error.msg[:200])
