"""Telemetry on: an OpenTelemetry span per chat completion and MCP message, and metrics.

Imported only when `telemetry.exporter` is not `none`. A middleware opens a `RequestTrace`
for each traced request (in a context variable, so the audit and check hooks find it
without being handed it) and turns it into one span when the request is done: the span
is created then, with the request's start time, so its name and kind are already known.
The hooks only note what happened; building the span and recording the metrics is
scheduled for after the answer has been written, so it does not delay the agent.
Providers are lictor's own, not the global ones: two lictors in one process (tests) keep
their telemetry apart, and nothing else in the process reports through them.

Metrics: `lictor.decisions` (counter by verdict, deciding rule, protocol and stage),
`lictor.check.duration` (ms of engine time per request) and `lictor.audit.append.duration`
(ms per audit commit). There is no audit backlog gauge: `AuditStore.append_many` commits
before it returns and nothing is released before that, so no record is ever appended
but not yet durable; the gauge would always read 0.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any

from aiohttp import web
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader as Periodic
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from lictor.proxy.config import TelemetryConfig
from lictor.proxy.telemetry import P, R, Telemetry
from lictor.proxy.telemetry_spans import RequestTrace, decision_point, safe_name

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_CURRENT: ContextVar[RequestTrace | None] = ContextVar("lictor_request_trace", default=None)
_PROPAGATOR = TraceContextTextMapPropagator()  # an agent's `traceparent` becomes the parent
_MS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 1000)
_MAX_ERROR_BODY = 64 * 1024  # larger answers are not errors lictor wrote


def _version() -> str:
    try:
        return version("lictor")
    except PackageNotFoundError:
        return "unknown"


MODEL_CHAT_PATHS = ("/v1/chat/completions", "/v1/responses", "/v1/messages")


def _protocol(path: str) -> str | None:
    """Which requests get a span: model chat calls (Chat Completions, Responses, Anthropic
    Messages: GenAI operation `chat`) and MCP messages, nothing else."""
    if path in MODEL_CHAT_PATHS:
        return "openai"
    return "mcp" if path.startswith("/mcp/") else None


def _span_exporter(config: TelemetryConfig) -> SpanExporter:
    if config.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=config.service_name, out=sys.stdout)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=f"{str(config.endpoint).rstrip('/')}/v1/traces")


def _metric_exporter(config: TelemetryConfig) -> MetricExporter:
    if config.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stdout)  # stdout now, not at the SDK import
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=f"{str(config.endpoint).rstrip('/')}/v1/metrics")


def _error_code(response: web.StreamResponse | None) -> str:
    """The code of an error lictor (or an MCP server) answered with, read from its JSON."""
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return ""
    body = response.body
    if not isinstance(body, bytes) or len(body) > _MAX_ERROR_BODY or b'"error"' not in body:
        return ""
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    code = error.get("code") if isinstance(error, dict) else None
    return safe_name(str(code)) if isinstance(code, str | int) else ""


class _AuditAppend(AbstractContextManager[None]):
    """Times one audit commit, noted on the request's trace (taken in after the answer)."""

    __slots__ = ("entries", "owner", "start")

    def __init__(self, owner: OtelTelemetry, entries: Sequence[dict[str, Any]]) -> None:
        self.owner, self.entries, self.start = owner, entries, 0.0

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        ms = (time.perf_counter() - self.start) * 1000
        entries = None if exc_type is not None else self.entries
        trace = _CURRENT.get()
        if trace is not None:
            trace.commits.append((ms, entries))
        else:  # not a traced request (a rule reload, an admin action)
            self.owner.committed(ms, entries, None)


class OtelTelemetry(Telemetry):
    """Spans and metrics through lictor's own tracer and meter providers."""

    enabled = True

    def __init__(self, config: TelemetryConfig, *, span_exporter: SpanExporter | None = None,
                 metric_reader: MetricReader | None = None) -> None:
        resource = Resource.create({"service.name": config.service_name,
                                    "service.version": _version()})
        configured = config.exporter != "none"
        self.tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        if span_exporter is not None:  # given by a test: exported as each span ends
            self.tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        elif configured:  # off the request path: a background thread exports in batches
            self.tracer_provider.add_span_processor(BatchSpanProcessor(_span_exporter(config)))
        if metric_reader is None and configured:
            metric_reader = Periodic(_metric_exporter(config),
                                     export_interval_millis=config.metrics_interval_s * 1000)
        self.meter_provider = MeterProvider([metric_reader] if metric_reader else [],
                                            resource=resource, shutdown_on_exit=False)
        self.tracer = self.tracer_provider.get_tracer("lictor", _version())
        meter = self.meter_provider.get_meter("lictor", _version())
        self.decisions = meter.create_counter(
            "lictor.decisions", unit="{decision}",
            description="Engine decisions by verdict and the rule that decided")
        self.check_duration = meter.create_histogram(
            "lictor.check.duration", unit="ms", description="Engine time per request",
            explicit_bucket_boundaries_advisory=_MS_BUCKETS)
        self.append_duration = meter.create_histogram(
            "lictor.audit.append.duration", unit="ms", description="One durable audit commit",
            explicit_bucket_boundaries_advisory=_MS_BUCKETS)
        self._closed = False

    # -- the hooks the data planes call -------------------------------------------------

    def timed(self, check: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        start = time.perf_counter()
        try:
            return check(*args, **kwargs)
        finally:
            trace = _CURRENT.get()
            if trace is not None:
                trace.check_s += time.perf_counter() - start
                trace.checks += 1

    def audit_append(self, entries: Sequence[dict[str, Any]]) -> AbstractContextManager[None]:
        return _AuditAppend(self, entries)

    def responded(self, answer: dict[str, Any] | None) -> None:
        trace = _CURRENT.get()
        if trace is not None and answer is not None:
            trace.response_model = safe_name(answer.get("model"))

    def committed(self, ms: float, entries: Sequence[dict[str, Any]] | None,
                  trace: RequestTrace | None) -> None:
        """One audit commit (`entries` None: it failed) into the metrics and the trace."""
        if entries is None:
            self.append_duration.record(ms, {"error.type": "audit_unavailable"})
            if trace is not None:
                trace.error = trace.error or "audit_unavailable"
            return
        self.append_duration.record(ms)
        for entry in entries:
            point = decision_point(entry)
            if point is not None:
                self.decisions.add(1, point)
            if trace is not None:
                trace.absorb(entry)

    def instrument(self, app: web.Application) -> None:
        app.middlewares.append(self._middleware)
        app.on_cleanup.append(self._cleanup)

    # -- spans ----------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = _protocol(request.path)
        if protocol is None:
            return await handler(request)
        trace = RequestTrace(protocol, time.time_ns())
        token = _CURRENT.set(trace)
        response: web.StreamResponse | None = None
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:  # aiohttp's own 404/405, answered outside
            status = exc.status
            raise
        except BaseException as exc:
            trace.error = trace.error or (
                "internal_error" if isinstance(exc, Exception) else "cancelled")
            raise
        finally:
            _CURRENT.reset(token)  # the span once the answer is written (aiohttp does that next)
            asyncio.get_running_loop().call_soon(self._end, request, trace, response, status)

    def _end(self, request: web.Request, trace: RequestTrace,
             response: web.StreamResponse | None, status: int) -> None:
        for ms, entries in trace.commits:
            self.committed(ms, entries, trace)
        if not trace.request_id and response is not None:
            trace.request_id = safe_name(response.headers.get("x-lictor-request-id"))
        error = trace.error_type(status, _error_code(response))
        parent = _PROPAGATOR.extract(request.headers) if "traceparent" in request.headers \
            else None
        internal = trace.protocol == "openai" and trace.backend in ("local", "")
        span = self.tracer.start_span(
            trace.name, context=parent, kind=SpanKind.INTERNAL if internal else SpanKind.CLIENT,
            attributes=trace.attributes(status, error), start_time=trace.start_ns)
        for name in trace.tool_calls:
            span.add_event("gen_ai.tool.call", {"gen_ai.tool.name": name})
        for kind in trace.events:
            span.add_event(f"lictor.{kind}")
        if error:
            span.set_status(Status(StatusCode.ERROR, trace.status_description(error)))
        span.end()
        if trace.checks:
            self.check_duration.record(trace.check_s * 1000, {"lictor.protocol": trace.protocol})

    # -- lifecycle ------------------------------------------------------------------------

    async def _cleanup(self, app: web.Application) -> None:
        await asyncio.to_thread(self.shutdown)  # a last export may wait on the network

    def shutdown(self) -> None:
        """Flush and stop both providers (spans in the batch, a last metrics export)."""
        if self._closed:
            return
        self._closed = True
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
