"""Stream events for the reader tests, made by the upstream double's wire formats (which
build every event with the official SDK's types) without a socket in between."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.doubles import wire_messages, wire_responses
from tests.doubles.reply_plan import Plan, PlannedCall, Turn


class _Collect:
    """Stands in for the double's :class:`~tests.doubles.sse_writer.EventWriter`."""

    def __init__(self) -> None:
        self.events: list[tuple[str | None, dict[str, Any]]] = []

    async def send(self, obj: dict[str, Any], event: str | None = None) -> None:
        self.events.append((event, obj))

    generated = send

    async def pause(self, ms: float) -> None:
        return None


def plan(
    pieces: list[str] = (),  # type: ignore[assignment]
    reasoning: list[str] = (),  # type: ignore[assignment]
    calls: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> Plan:
    return Plan(
        list(reasoning),
        list(pieces),
        [PlannedCall(f"call_{i}", name, args) for i, (name, args) in enumerate(calls)],
    )


_TURN = Turn("two words")


def responses_events(p: Plan, request: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    out = _Collect()
    asyncio.run(wire_responses.stream(out, {}, request or {"model": "m"}, _TURN, p))  # type: ignore[arg-type]
    assert all(name == obj["type"] for name, obj in out.events)
    return [obj for _, obj in out.events]


def responses_body(p: Plan) -> dict[str, Any]:
    return wire_responses.body({}, {"model": "m"}, _TURN, p)


def messages_events(p: Plan) -> list[dict[str, Any]]:
    out = _Collect()
    asyncio.run(wire_messages.stream(out, {}, {"model": "m"}, _TURN, p))  # type: ignore[arg-type]
    return [obj for _, obj in out.events]


def messages_body(p: Plan) -> dict[str, Any]:
    return wire_messages.body({}, {"model": "m"}, _TURN, p)
