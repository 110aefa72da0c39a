"""W3C trace context in and out."""

from __future__ import annotations

import random

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from telemetry.propagation import (
    extract_context,
    inject_headers,
    parse_traceparent,
    remote_trace_id,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_extract_finds_traceparent_whatever_the_header_case() -> None:
    for key in ("traceparent", "Traceparent", "TRACEPARENT"):
        ctx = extract_context({key: f"00-{TRACE}-{PARENT}-01"})
        assert remote_trace_id(ctx) == TRACE


def test_missing_or_malformed_traceparent_starts_a_new_trace() -> None:
    assert extract_context(None) is None
    assert extract_context({}) is None
    assert extract_context({"traceparent": "00-zzzz-yyyy-01"}) is None
    assert extract_context({"traceparent": f"00-{'0' * 32}-{PARENT}-01"}) is None


def test_inject_names_the_span_as_parent_and_keeps_tracestate() -> None:
    tracer = TracerProvider(sampler=ALWAYS_OFF).get_tracer("t")
    ctx = extract_context({"traceparent": f"00-{TRACE}-{PARENT}-01", "tracestate": "vendor=x"})
    span = tracer.start_span("s", context=ctx)
    headers = inject_headers(span)
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id) == ("00", TRACE)
    assert span_id == format(span.get_span_context().span_id, "016x") != PARENT
    assert flags == "00"  # not recorded here: the upstream is told so
    assert headers["tracestate"] == "vendor=x"


def _otel(value: str) -> tuple[str, str, str] | None:
    ctx = extract_context({"traceparent": value})
    if ctx is None:
        return None
    from opentelemetry.trace import get_current_span

    sc = get_current_span(ctx).get_span_context()
    return format(sc.trace_id, "032x"), format(sc.span_id, "016x"), f"{sc.trace_flags:02x}"


def test_parse_traceparent_accepts_exactly_what_the_propagator_accepts() -> None:
    rng = random.Random(7)
    base = f"00-{TRACE}-{PARENT}-01"
    cases = [
        base,
        base.upper(),
        f" \t{base}\t ",
        f"01-{TRACE}-{PARENT}-01-future-fields",
        f"00-{TRACE}-{PARENT}-01-extra",
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE}-{PARENT}",
        f"00-{TRACE[:-1]}_-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-0g",
        "",
        "x" * 600,
    ]
    alphabet = "0123456789abcdefABCDEF-_ \tx+"
    for _ in range(3000):  # random mutations of a valid header
        chars = list(base)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.5:
                chars[i] = rng.choice(alphabet)
            elif op < 0.75:
                del chars[i]
            else:
                chars.insert(i, rng.choice(alphabet))
        cases.append("".join(chars))
    for value in cases:
        assert parse_traceparent(value) == _otel(value), value
