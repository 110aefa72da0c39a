"""TEST DOUBLE: Anthropic's Messages API wire format (``POST /v1/messages``), from the SDK's types.

A body is a ``Message``; a stream is Anthropic's event sequence, each as ``event: <type>`` +
``data: <json>``: ``message_start`` (the message with no content, ``usage.input_tokens``),
``ping``, then per content block ``content_block_start`` (``thinking``, ``text`` or
``tool_use`` with its name), its ``content_block_delta``\\ s (``thinking_delta`` then a
``signature_delta``; ``text_delta``; ``input_json_delta``) and ``content_block_stop``, then
``message_delta`` (``stop_reason``, ``usage.output_tokens``) and ``message_stop``. Every
shape is built with ``anthropic.types`` models.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from anthropic.types import (
    InputJSONDelta,
    Message,
    MessageDeltaUsage,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    SignatureDelta,
    TextBlock,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
    Usage,
)
from anthropic.types.raw_message_delta_event import Delta
from pydantic import BaseModel

from tests.doubles.reply_plan import Plan, Turn
from tests.doubles.sse_writer import EventWriter

__all__ = ["body", "stream"]

_SIGNATURE = "double-signature"


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_unset=True)


def _stop_reason(turn: Turn, plan: Plan) -> str:
    if plan.calls:
        return "tool_use"
    return "max_tokens" if turn.max_tokens == len(plan.pieces) else "end_turn"


def _blocks(plan: Plan) -> list[Any]:
    blocks: list[Any] = []
    if plan.reasoning:
        blocks.append(
            ThinkingBlock(type="thinking", thinking=plan.reasoning_text, signature=_SIGNATURE)
        )
    if plan.calls:
        blocks.extend(
            ToolUseBlock(
                type="tool_use",
                id=c.call_id.replace("call_", "toolu_"),
                name=c.name,
                input=orjson.loads(c.arguments),
            )
            for c in plan.calls
        )
    else:
        blocks.append(TextBlock(type="text", text=plan.text))
    return blocks


def _message(
    request: dict[str, Any], content: list[Any], stop: str | None, usage: Usage
) -> Message:
    return Message(
        id="msg_" + uuid.uuid4().hex[:24],
        type="message",
        role="assistant",
        model=str(request.get("model")),
        content=content,
        stop_reason=stop,  # type: ignore[arg-type]
        stop_sequence=None,
        usage=usage,
    )


def body(state: Any, request: dict[str, Any], turn: Turn, plan: Plan) -> dict[str, Any]:
    """A whole ``Message``."""
    usage = Usage(input_tokens=plan.input_tokens(turn), output_tokens=plan.output_tokens)
    return _dump(_message(request, _blocks(plan), _stop_reason(turn, plan), usage))


async def stream(
    out: EventWriter, state: Any, request: dict[str, Any], turn: Turn, plan: Plan
) -> None:
    """The event sequence (see the module docstring)."""

    async def send(event: BaseModel, generated: bool = False) -> None:
        obj = _dump(event)
        if generated:
            await out.generated(obj, obj["type"])
        else:
            await out.send(obj, obj["type"])

    usage = Usage(input_tokens=plan.input_tokens(turn), output_tokens=1)
    await send(
        RawMessageStartEvent(type="message_start", message=_message(request, [], None, usage))
    )
    await out.send({"type": "ping"}, "ping")
    index = 0
    if plan.reasoning:
        block = ThinkingBlock(type="thinking", thinking="", signature="")
        await send(
            RawContentBlockStartEvent(type="content_block_start", index=index, content_block=block)
        )
        for piece in plan.exact(plan.reasoning):
            delta = ThinkingDelta(type="thinking_delta", thinking=piece)
            await send(
                RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=delta),
                True,
            )
        sig = SignatureDelta(type="signature_delta", signature=_SIGNATURE)
        await send(RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=sig))
        await send(RawContentBlockStopEvent(type="content_block_stop", index=index))
        await out.pause(float(state.get("reasoning_delay_ms", 0)))
        index += 1
    for call in plan.calls:
        tool = ToolUseBlock(
            type="tool_use", id=call.call_id.replace("call_", "toolu_"), name=call.name, input={}
        )
        await send(
            RawContentBlockStartEvent(type="content_block_start", index=index, content_block=tool)
        )
        half = len(call.arguments) // 2
        for part in (call.arguments[:half], call.arguments[half:]):
            json_delta = InputJSONDelta(type="input_json_delta", partial_json=part)
            await send(
                RawContentBlockDeltaEvent(
                    type="content_block_delta", index=index, delta=json_delta
                ),
                True,
            )
        await send(RawContentBlockStopEvent(type="content_block_stop", index=index))
        index += 1
    if not plan.calls:
        text = TextBlock(type="text", text="")
        await send(
            RawContentBlockStartEvent(type="content_block_start", index=index, content_block=text)
        )
        for piece in plan.exact(plan.pieces):
            text_delta = TextDelta(type="text_delta", text=piece)
            await send(
                RawContentBlockDeltaEvent(
                    type="content_block_delta", index=index, delta=text_delta
                ),
                True,
            )
        await send(RawContentBlockStopEvent(type="content_block_stop", index=index))
    delta = Delta(stop_reason=_stop_reason(turn, plan), stop_sequence=None)  # type: ignore[arg-type]
    await send(
        RawMessageDeltaEvent(
            type="message_delta",
            delta=delta,
            usage=MessageDeltaUsage(output_tokens=plan.output_tokens),
        )
    )
    await send(RawMessageStopEvent(type="message_stop"))
