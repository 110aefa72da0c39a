"""The APIs the proxy serves, as operations of one pipeline: what differs between them.

Chat completions, (legacy) completions, the Responses API, Anthropic's Messages API and
embeddings all take the same path (route → context → attempts → record); an
:class:`OperationSpec` says only how they differ: the path, whether a stream ends with
``[DONE]`` (data-only events) or with a terminal typed event (``event:`` lines kept), whether
the upstream is asked for usage in streams, whether copies may be mirrored to shadows, and the
error shape clients of that API parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from backends.base import Endpoint
from core.records import Operation

__all__ = ["OPERATIONS", "ErrorShape", "OperationSpec", "by_path"]

ErrorShape = Literal["openai", "anthropic"]


@dataclass(frozen=True, slots=True)
class OperationSpec:
    operation: Operation
    endpoint: Endpoint
    path: str
    typed_events: bool
    """Streams are typed events (``event:`` + ``data:``) ending with a terminal event, not
    data-only events ending with ``[DONE]``."""
    asks_usage: bool
    """Streams are asked for usage (``stream_options.include_usage``); the usage chunk is
    forwarded only to clients that asked for it themselves."""
    shadowable: bool
    error_shape: ErrorShape = "openai"


OPERATIONS: Final[tuple[OperationSpec, ...]] = (
    OperationSpec("chat", "chat", "/v1/chat/completions", False, True, True),
    OperationSpec("text_completion", "completions", "/v1/completions", False, True, True),
    OperationSpec("responses", "responses", "/v1/responses", True, False, True),
    OperationSpec("messages", "messages", "/v1/messages", True, False, True, "anthropic"),
    OperationSpec("embeddings", "embeddings", "/v1/embeddings", False, False, False),
)


def by_path() -> dict[str, OperationSpec]:
    return {spec.path: spec for spec in OPERATIONS}
