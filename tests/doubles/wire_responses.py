"""TEST DOUBLE: the Responses API's wire format (``POST /v1/responses``), from the SDK's types.

A body is a ``Response`` object; a stream is the typed event sequence the OpenAI API sends,
each as ``event: <type>`` + ``data: <json>`` (no ``[DONE]``): ``response.created``,
``response.in_progress``, then per output item ``response.output_item.added``, its deltas
(``response.reasoning_text.delta`` for a reasoning item; ``response.content_part.added``,
``response.output_text.delta``…, ``response.output_text.done``, ``response.content_part.done``
for a message; ``response.function_call_arguments.delta``/``.done`` for a function call),
``response.output_item.done``, and finally ``response.completed`` with the usage. Every shape
is built with ``openai.types.responses`` models, so it is the SDK's shape by construction.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from openai.types.responses import (
    FunctionTool,
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseFunctionToolCall,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseReasoningItem,
    ResponseReasoningTextDeltaEvent,
    ResponseReasoningTextDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
)
from openai.types.responses.response_reasoning_item import Content as ReasoningContent
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from pydantic import BaseModel

from tests.doubles.reply_plan import Plan, Turn
from tests.doubles.sse_writer import EventWriter

__all__ = ["body", "stream"]


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)


def _tools(request: dict[str, Any]) -> list[FunctionTool]:
    return [
        FunctionTool.model_validate({"strict": None, "parameters": None, **t})
        for t in request.get("tools") or []
        if isinstance(t, dict) and t.get("type") == "function"
    ]


def _usage(turn: Turn, plan: Plan) -> ResponseUsage:
    prompt, output = plan.input_tokens(turn), plan.output_tokens
    return ResponseUsage(
        input_tokens=prompt,
        input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
        output_tokens=output,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=len(plan.reasoning)),
        total_tokens=prompt + output,
    )


class _Ids:
    def __init__(self, plan: Plan) -> None:
        self.response = "resp_" + uuid.uuid4().hex
        self.reasoning = "rs_" + uuid.uuid4().hex
        self.message = "msg_" + uuid.uuid4().hex
        self.calls = ["fc_" + uuid.uuid4().hex for _ in plan.calls]


def _response(
    request: dict[str, Any], ids: _Ids, output: list[Any], status: str, usage: Any
) -> Response:
    return Response(
        id=ids.response,
        object="response",
        created_at=time.time(),
        model=str(request.get("model")),
        output=output,
        status=status,  # type: ignore[arg-type]
        parallel_tool_calls=bool(request.get("parallel_tool_calls", True)),
        tool_choice="auto",
        tools=_tools(request),
        instructions=request.get("instructions"),
        previous_response_id=request.get("previous_response_id"),
        max_output_tokens=request.get("max_output_tokens"),
        usage=usage,
    )


def _reasoning(ids: _Ids, plan: Plan, status: str) -> ResponseReasoningItem:
    content = [ReasoningContent(type="reasoning_text", text=plan.reasoning_text)]
    return ResponseReasoningItem(
        id=ids.reasoning,
        type="reasoning",
        summary=[],
        content=content,
        status=status,  # type: ignore[arg-type]
    )


def _message(ids: _Ids, text: str | None, status: str) -> ResponseOutputMessage:
    parts = (
        [] if text is None else [ResponseOutputText(type="output_text", text=text, annotations=[])]
    )
    return ResponseOutputMessage(
        id=ids.message,
        type="message",
        role="assistant",
        content=parts,
        status=status,  # type: ignore[arg-type]
    )


def _calls(ids: _Ids, plan: Plan, done: bool) -> list[ResponseFunctionToolCall]:
    return [
        ResponseFunctionToolCall(
            id=item_id,
            type="function_call",
            call_id=call.call_id,
            name=call.name,
            arguments=call.arguments if done else "",
            status="completed" if done else "in_progress",
        )
        for item_id, call in zip(ids.calls, plan.calls, strict=True)
    ]


def _output(ids: _Ids, plan: Plan) -> list[Any]:
    output: list[Any] = [_reasoning(ids, plan, "completed")] if plan.reasoning else []
    if plan.calls:
        return output + _calls(ids, plan, done=True)
    return [*output, _message(ids, plan.text, "completed")]


def body(state: Any, request: dict[str, Any], turn: Turn, plan: Plan) -> dict[str, Any]:
    """A whole ``Response`` object."""
    ids = _Ids(plan)
    return _dump(_response(request, ids, _output(ids, plan), "completed", _usage(turn, plan)))


async def stream(
    out: EventWriter, state: Any, request: dict[str, Any], turn: Turn, plan: Plan
) -> None:
    """The typed event sequence (see the module docstring)."""
    ids = _Ids(plan)
    seq = iter(range(10**6))

    async def send(event: BaseModel, generated: bool = False) -> None:
        obj = _dump(event)
        if generated:
            await out.generated(obj, obj["type"])
        else:
            await out.send(obj, obj["type"])

    opening = _response(request, ids, [], "in_progress", None)
    await send(
        ResponseCreatedEvent(type="response.created", response=opening, sequence_number=next(seq))
    )
    await send(
        ResponseInProgressEvent(
            type="response.in_progress", response=opening, sequence_number=next(seq)
        )
    )
    index = 0
    if plan.reasoning:
        await send(
            ResponseOutputItemAddedEvent(
                type="response.output_item.added",
                output_index=index,
                sequence_number=next(seq),
                item=ResponseReasoningItem(
                    id=ids.reasoning, type="reasoning", summary=[], status="in_progress"
                ),
            )
        )
        for piece in plan.exact(plan.reasoning):
            await send(
                ResponseReasoningTextDeltaEvent(
                    type="response.reasoning_text.delta",
                    item_id=ids.reasoning,
                    output_index=index,
                    content_index=0,
                    delta=piece,
                    sequence_number=next(seq),
                ),
                generated=True,
            )
        await send(
            ResponseReasoningTextDoneEvent(
                type="response.reasoning_text.done",
                item_id=ids.reasoning,
                output_index=index,
                content_index=0,
                text=plan.reasoning_text,
                sequence_number=next(seq),
            )
        )
        await send(
            ResponseOutputItemDoneEvent(
                type="response.output_item.done",
                output_index=index,
                sequence_number=next(seq),
                item=_reasoning(ids, plan, "completed"),
            )
        )
        await out.pause(float(state.get("reasoning_delay_ms", 0)))
        index += 1
    if plan.calls:
        for started, done in zip(_calls(ids, plan, False), _calls(ids, plan, True), strict=True):
            await _stream_call(send, seq, index, started, done)
            index += 1
    else:
        await _stream_message(send, seq, index, ids, plan)
    final = _response(request, ids, _output(ids, plan), "completed", _usage(turn, plan))
    await send(
        ResponseCompletedEvent(type="response.completed", response=final, sequence_number=next(seq))
    )


async def _stream_call(
    send: Any,
    seq: Any,
    index: int,
    started: ResponseFunctionToolCall,
    done: ResponseFunctionToolCall,
) -> None:
    assert started.id is not None
    await send(
        ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            output_index=index,
            item=started,
            sequence_number=next(seq),
        )
    )
    half = len(done.arguments) // 2
    for part in (done.arguments[:half], done.arguments[half:]):
        await send(
            ResponseFunctionCallArgumentsDeltaEvent(
                type="response.function_call_arguments.delta",
                item_id=started.id,
                output_index=index,
                delta=part,
                sequence_number=next(seq),
            ),
            generated=True,
        )
    await send(
        ResponseFunctionCallArgumentsDoneEvent(
            type="response.function_call_arguments.done",
            item_id=started.id,
            output_index=index,
            arguments=done.arguments,
            name=done.name,
            sequence_number=next(seq),
        )
    )
    await send(
        ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            output_index=index,
            item=done,
            sequence_number=next(seq),
        )
    )


async def _stream_message(send: Any, seq: Any, index: int, ids: _Ids, plan: Plan) -> None:
    await send(
        ResponseOutputItemAddedEvent(
            type="response.output_item.added",
            output_index=index,
            sequence_number=next(seq),
            item=_message(ids, None, "in_progress"),
        )
    )
    empty = ResponseOutputText(type="output_text", text="", annotations=[])
    await send(
        ResponseContentPartAddedEvent(
            type="response.content_part.added",
            item_id=ids.message,
            output_index=index,
            content_index=0,
            part=empty,
            sequence_number=next(seq),
        )
    )
    for piece in plan.exact(plan.pieces):
        await send(
            ResponseTextDeltaEvent(
                type="response.output_text.delta",
                item_id=ids.message,
                output_index=index,
                content_index=0,
                delta=piece,
                logprobs=[],
                sequence_number=next(seq),
            ),
            generated=True,
        )
    await send(
        ResponseTextDoneEvent(
            type="response.output_text.done",
            item_id=ids.message,
            output_index=index,
            content_index=0,
            text=plan.text,
            logprobs=[],
            sequence_number=next(seq),
        )
    )
    part = ResponseOutputText(type="output_text", text=plan.text, annotations=[])
    await send(
        ResponseContentPartDoneEvent(
            type="response.content_part.done",
            item_id=ids.message,
            output_index=index,
            content_index=0,
            part=part,
            sequence_number=next(seq),
        )
    )
    await send(
        ResponseOutputItemDoneEvent(
            type="response.output_item.done",
            output_index=index,
            sequence_number=next(seq),
            item=_message(ids, plan.text, "completed"),
        )
    )
