"""W3C trace context: continue the client's trace into the upstream call.

The client's ``traceparent``/``tracestate`` become the parent of the request's span, and the
span's own context is sent to the upstream, so a vLLM server with tracing on (or any
instrumented backend) joins the same trace.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, get_current_span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["extract_context", "inject_headers", "parse_traceparent", "remote_trace_id"]

_PROPAGATOR = TraceContextTextMapPropagator()
_HEX = frozenset("0123456789abcdef")
_MAX_TRACEPARENT = 512


class _HeaderGetter(Getter[Mapping[str, str]]):
    """Header lookup that ignores case whatever mapping the web framework hands over."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            lowered = key.lower()
            for k, v in carrier.items():
                if k.lower() == lowered:
                    value = v
                    break
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier.keys())


_GETTER = _HeaderGetter()


def extract_context(headers: Mapping[str, str] | None) -> Context | None:
    """The trace context the client sent (``traceparent``), or ``None`` if it sent none.

    ``headers`` may be any mapping (lower-case keys, as ASGI gives them, are found fastest).
    A malformed ``traceparent`` is ignored, as the W3C spec requires: a new trace starts.
    """
    if not headers:
        return None
    ctx = _PROPAGATOR.extract(headers, getter=_GETTER)
    return ctx if get_current_span(ctx).get_span_context().is_valid else None


def remote_trace_id(ctx: Context | None) -> str | None:
    """The 32-hex-digit trace id of an extracted context."""
    if ctx is None:
        return None
    sc = get_current_span(ctx).get_span_context()
    return format(sc.trace_id, "032x") if sc.is_valid else None


def inject_headers(span: Span) -> dict[str, str]:
    """``traceparent`` (and ``tracestate`` when there is one) naming ``span`` as the parent."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """``(trace_id, parent_id, flags)`` of a valid W3C ``traceparent``, else ``None``.

    The same acceptance rules as OpenTelemetry's propagator (tested against it), without
    building a context: the proxy uses it when spans are not recorded, to pass the client's
    trace context through to the upstream unchanged, as a proxy without tracing should.
    """
    if not value or len(value) > _MAX_TRACEPARENT:
        return None
    parts = value.strip(" \t").split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[0], parts[1], parts[2], parts[3]
    if len(version) != 2 or len(trace_id) != 32 or len(span_id) != 16 or len(flags) != 2:
        return None
    if not _HEX.issuperset(version + trace_id + span_id + flags):
        return None
    if version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id, flags
