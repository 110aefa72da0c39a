"""``/openapi.json`` and ``/docs``: every route documented, the hot routes with SDK bodies."""

from __future__ import annotations

from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import harness
from tests.proxy.scoring_helpers import scored


async def test_openapi_documents_every_route_with_openai_request_bodies() -> None:
    async with scored({"bf16": ScriptedBackend("bf16")}, None) as h:
        resp = await h.client.get("/openapi.json")
        docs = await h.client.get("/docs")
    assert resp.status_code == 200
    schema = resp.json()
    paths = schema["paths"]
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/healthz",
                 "/readyz", "/metrics", "/quanttrap/v1/status", "/quanttrap/v1/evaluations",
                 "/quanttrap/v1/comparisons", "/quanttrap/"):  # fmt: skip
        assert path in paths, path
    chat = paths["/v1/chat/completions"]["post"]
    ref = chat["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # The request as the openai SDK defines it: its required fields and its tools.
    assert {"messages", "model"} <= set(body["required"])
    assert {"tools", "stream", "stream_options", "tool_choice"} <= set(body["properties"])
    assert chat["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OpenAIError"
    }
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


async def test_framework_errors_keep_openai_shape() -> None:
    async with harness({"bf16": ScriptedBackend("bf16")}) as h:
        missing = await h.client.get("/v1/nope")
        wrong_method = await h.client.post("/healthz")
        hot_wrong_method = await h.client.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    assert hot_wrong_method.status_code == 405
    assert hot_wrong_method.json()["error"]["code"] == "method_not_allowed"
