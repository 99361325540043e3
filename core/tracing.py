"""Optional OpenTelemetry tracing (ORDER_ENGINE_TRACING=console|otlp; off by default).

Spans cover HTTP requests (FastAPI) and workflows and activities (temporalio's tracing
interceptor, which carries the trace across the Temporal boundary). `otlp` exports to
OTEL_EXPORTER_OTLP_ENDPOINT (the standard OpenTelemetry variable).
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Interceptor as ClientInterceptor

from core.logs import redact

TRACING_MODES = ("off", "console", "otlp")


def setup_tracing(mode: str, service: str, exporter: Any = None) -> list[ClientInterceptor]:
    """Install a tracer provider; returns the Temporal interceptors to use (none if off).
    `exporter` overrides the mode's exporter (tests use an in-memory one)."""
    if mode == "off" and exporter is None:
        return []
    if mode not in TRACING_MODES:
        raise ValueError(f"ORDER_ENGINE_TRACING must be one of {', '.join(TRACING_MODES)}")
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError as error:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("tracing needs the [otel] extra: pip install 'order-engine[otel]'") from error

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))  # printed at once
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return [TracingInterceptor()]


# Span attributes that carry a request's URL or query (old and new semantic conventions).
URL_ATTRIBUTES = ("http.url", "http.target", "url.full", "url.query", "http.route")


def instrument_app(app: Any) -> None:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, server_request_hook=redact_url_attributes)


def redact_url_attributes(span: Any, scope: dict[str, Any]) -> None:
    """A WebSocket's `?token=` (a browser's key) never leaves the process in a span."""
    attributes = getattr(span, "attributes", None) or {}
    for name in URL_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str):
            span.set_attribute(name, redact(value))
