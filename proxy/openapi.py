"""``/openapi.json`` for the hot routes: request bodies as the official SDKs define them.

The hot routes are plain ASGI handlers (:mod:`proxy.routes`), so FastAPI cannot document them
from a signature. Their schemas are generated here from the request types of the official
``openai`` (and, for Messages, ``anthropic``) packages with pydantic, so the documentation
follows the SDKs rather than a second hand-written copy of the spec. Documentation only: the
proxy validates what it must itself interpret and passes the rest through.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import TypeAdapter

from proxy.routes import HOT_ROUTES

__all__ = ["hot_route_paths"]

_REF = "#/components/schemas/{model}"

_SUMMARIES: Final[dict[str, tuple[str, str]]] = {
    # operation: (summary, where the request type lives)
    "chat": ("Create a chat completion (OpenAI), streaming or not", "openai chat"),
    "text_completion": ("Create a completion (OpenAI legacy), streaming or not", "openai text"),
    "responses": ("Create a model response (OpenAI Responses API)", "openai responses"),
    "messages": ("Create a message (Anthropic Messages API)", "anthropic messages"),
    "embeddings": ("Create embeddings (OpenAI)", "openai embeddings"),
}


def _request_type(operation: str) -> Any:
    if operation == "chat":
        from openai.types.chat import completion_create_params

        return completion_create_params.CompletionCreateParamsBase
    if operation == "text_completion":
        from openai.types import completion_create_params as text_params

        return text_params.CompletionCreateParamsBase
    if operation == "responses":
        from openai.types.responses import response_create_params

        return response_create_params.ResponseCreateParamsBase
    if operation == "embeddings":
        from openai.types import embedding_create_params

        return embedding_create_params.EmbeddingCreateParams
    if operation == "messages":
        from anthropic.types import message_create_params

        return message_create_params.MessageCreateParamsBase
    raise KeyError(operation)


_ERROR_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}


_HEADER_PARAMETERS: Final[list[dict[str, Any]]] = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"},
     "description": text}
    for name, text in (
        ("X-Quanttrap-Variant", "Pin a variant (never fails over)"),
        ("X-Request-Id", "Echoed; generated when absent"),
        ("X-Quanttrap-Expected", "Expected answer: the request is graded (never forwarded)"),
        ("X-Session-Id", "Groups an agent's calls (the configured telemetry.session_header)"),
        ("traceparent", "W3C trace context, continued upstream"),
    )
]  # fmt: skip


def hot_route_paths(schema: dict[str, Any]) -> dict[str, Any]:
    """Path items for every hot route; their component schemas are added to ``schema``."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("OpenAIError", _ERROR_SCHEMA)
    error_ref = {"$ref": "#/components/schemas/OpenAIError"}
    paths: dict[str, Any] = {}
    for path, operation in HOT_ROUTES.items():
        summary, _ = _SUMMARIES[operation]
        body = TypeAdapter(_request_type(operation)).json_schema(ref_template=_REF)
        components.update(body.pop("$defs", {}))
        if operation != "embeddings":
            # The SDKs split streaming and non-streaming into two request types; one body here.
            body.setdefault("properties", {}).setdefault(
                "stream",
                {"type": "boolean", "default": False,
                 "description": "Answer as server-sent events, as the API does."},
            )  # fmt: skip
        name = f"{operation.title().replace('_', '')}Request"
        components[name] = body
        errors = {
            str(code): {
                "description": text,
                "content": {"application/json": {"schema": error_ref}},
            }
            for code, text in (
                (400, "Invalid request (the parameter is named in `param`)"),
                (401, "Missing or wrong API key"),
                (404, "Unknown model"),
                (413, "Request body too large"),
                (502, "No variant could answer"),
                (504, "Upstream timed out"),
            )
        }
        paths[path] = {
            "post": {
                "tags": ["OpenAI-compatible"],
                "summary": summary,
                "operationId": f"create_{operation}",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": _REF.format(model=name)}}},
                },
                "parameters": _HEADER_PARAMETERS,
                "responses": {
                    "200": {
                        "description": "The upstream's answer, passed through (JSON, or SSE "
                        "when `stream` is true)",
                        "content": {"application/json": {}, "text/event-stream": {}},
                    },
                    **errors,
                },
            }
        }
    return paths
