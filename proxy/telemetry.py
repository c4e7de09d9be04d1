"""The telemetry seam: the few hooks the data planes call, and what they do when it is off.

`Telemetry` itself is the "off" implementation (`telemetry.exporter: none`, the default):
each hook is a direct call or a shared null context, and OpenTelemetry is never imported,
so start-up and the hot path stay as they were. Anything else builds `OtelTelemetry`
(`telemetry_otel.py`), imported only then.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from aiohttp import web

if TYPE_CHECKING:  # types only: importing them would load the SDK
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace.export import SpanExporter

    from lictor.proxy.config import TelemetryConfig

P = ParamSpec("P")
R = TypeVar("R")
_NULL: AbstractContextManager[None] = contextlib.nullcontext()


class Telemetry:
    """Telemetry off. `OtelTelemetry` overrides every hook; the data planes call only these."""

    enabled = False

    def timed(self, check: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run a check (the engine, the MCP guard); on, its time counts as check time."""
        return check(*args, **kwargs)

    def audit_append(self, entries: Sequence[dict[str, Any]]) -> AbstractContextManager[None]:
        """Wraps one audit commit of `entries`; on, it is timed and the entries describe
        the request's span (verdicts, rule ids, usage) and count as decisions."""
        return _NULL

    def responded(self, answer: dict[str, Any] | None) -> None:
        """The upstream's answer (a completion or its first chunk): its model, when on."""

    def instrument(self, app: web.Application) -> None:
        """Add the per-request spans to `app` and flush on its cleanup, when on."""


NO_TELEMETRY = Telemetry()


def telemetry_from_config(
    config: TelemetryConfig,
    *,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> Telemetry:
    """The configured telemetry; an exporter or reader given here (tests) replaces the
    configured ones, and turns telemetry on even with `exporter: none`."""
    if config.exporter == "none" and span_exporter is None and metric_reader is None:
        return NO_TELEMETRY
    from lictor.proxy.telemetry_otel import OtelTelemetry

    return OtelTelemetry(config, span_exporter=span_exporter, metric_reader=metric_reader)
