"""Agent SDKs talk to the engine's Responses API: the shipped probe model, served over a real
socket by a minimal SSE adapter, answers the ``openai`` client and an ``openai-agents`` Agent
on its default (Responses) model.

TEST HARNESS: :func:`_serve` stands in for the proxy's route (not wired yet): it writes each
stream payload with its ``event:`` line, as the route must. Everything the SDKs parse — the
``Response`` body and every event — is the engine's own output.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from aiohttp import web

from backends.base import BackendRequest
from backends.config import EngineBackendConfig
from backends.engine import EngineBackend
from backends.probe import probe_model_path
from scoring.datasets.gsm8k import extract_strict
from tests.doubles.processes import free_port

QUESTION = "k = 7. m = k + 5. What is m?"


async def _serve(backend: EngineBackend) -> web.AppRunner:
    async def route(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        got = await backend.send(BackendRequest("responses", body, bool(body.get("stream")), "r"))
        if got.events is None:
            return web.Response(body=got.body, status=got.status, content_type="application/json")
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        async for block in got.events:  # typed event blocks, as the API sends them
            await out.write(block + b"\n\n")
        await out.write_eof()
        return out

    app = web.Application()
    app.router.add_post("/v1/responses", route)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    return runner


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    config = EngineBackendConfig(
        kind="engine", model=str(probe_model_path()), precision="fp32", max_new_tokens=96
    )
    backend = EngineBackend.from_config("fp32", config)
    await backend.start()
    runner = await _serve(backend)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/v1"
    await runner.cleanup()
    await backend.aclose()


@pytest.fixture
async def client(base_url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)
    yield client
    await client.close()


async def test_openai_client_create_and_stream(client: openai.AsyncOpenAI) -> None:
    whole = await client.responses.create(model="probe", input=QUESTION)
    assert extract_strict(whole.output_text) == "12"  # the probe solves depth-2 questions
    assert whole.usage is not None and whole.usage.output_tokens > 0
    async with client.responses.stream(model="probe", input=QUESTION) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == whole.output_text


async def test_openai_agents_default_model_runs_on_the_engine(
    client: openai.AsyncOpenAI,
) -> None:
    from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled

    set_tracing_disabled(True)  # no export of traces to OpenAI
    agent = Agent(name="solver", model=OpenAIResponsesModel(model="probe", openai_client=client))
    result = await Runner.run(agent, QUESTION)
    assert extract_strict(str(result.final_output)) == "12"
    streamed = Runner.run_streamed(agent, QUESTION)
    async for _ in streamed.stream_events():
        pass
    assert streamed.final_output == result.final_output
