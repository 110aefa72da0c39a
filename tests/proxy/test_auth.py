"""Who may call what (proxy/auth.py), through the app: client keys, monitoring keys, probes."""

from __future__ import annotations

import pytest

from tests.doubles.scripted_backend import ScriptedBackend
from tests.proxy.helpers import chat
from tests.proxy.scoring_helpers import scored

CLIENT = {"authorization": "Bearer client-key"}
ANTHROPIC_STYLE = {"x-api-key": "client-key"}
MONITOR = {"authorization": "Bearer monitor-key"}
WRONG = {"authorization": "Bearer nope"}


@pytest.mark.parametrize(
    ("env", "path", "headers", "status"),
    [
        # Client keys only: the API and the status routes need one; /metrics and probes don't.
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/v1/models", {}, 401),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/v1/models", CLIENT, 200),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/v1/models", ANTHROPIC_STYLE, 200),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/v1/models", WRONG, 401),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/quanttrap/v1/status", {}, 401),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/quanttrap/", {}, 401),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/quanttrap/v1/status", CLIENT, 200),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/metrics", {}, 200),
        ({"QUANTTRAP_API_KEYS": "client-key"}, "/healthz", {}, 200),
        # A monitoring key of its own: /metrics needs it; the status routes take it; the API
        # does not.
        ({"QUANTTRAP_API_KEYS": "client-key", "QUANTTRAP_MONITORING_KEYS": "monitor-key"},
         "/metrics", {}, 401),
        ({"QUANTTRAP_API_KEYS": "client-key", "QUANTTRAP_MONITORING_KEYS": "monitor-key"},
         "/metrics", MONITOR, 200),
        ({"QUANTTRAP_API_KEYS": "client-key", "QUANTTRAP_MONITORING_KEYS": "monitor-key"},
         "/metrics", CLIENT, 401),
        ({"QUANTTRAP_API_KEYS": "client-key", "QUANTTRAP_MONITORING_KEYS": "monitor-key"},
         "/quanttrap/v1/status", MONITOR, 200),
        ({"QUANTTRAP_API_KEYS": "client-key", "QUANTTRAP_MONITORING_KEYS": "monitor-key"},
         "/v1/models", MONITOR, 401),
        ({"QUANTTRAP_MONITORING_KEYS": "monitor-key"}, "/quanttrap/v1/status", {}, 401),
        ({"QUANTTRAP_MONITORING_KEYS": "monitor-key"}, "/v1/models", {}, 200),
        # No keys at all: everything open.
        ({}, "/quanttrap/v1/status", {}, 200),
        ({}, "/metrics", {}, 200),
    ],
)  # fmt: skip
async def test_each_route_needs_the_right_key(
    env: dict[str, str], path: str, headers: dict[str, str], status: int
) -> None:
    async with scored({"bf16": ScriptedBackend("bf16")}, None, environ=env) as h:
        resp = await h.client.get(path, headers=headers)
    if path == "/metrics" and status == 200:
        # This harness runs without telemetry: past the key check, /metrics says it is off.
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "metrics_disabled"
        return
    assert resp.status_code == status, resp.text
    if status == 401:
        assert resp.json()["error"]["type"] == "authentication_error"


async def test_the_hot_routes_take_a_client_key_either_way() -> None:
    env = {"QUANTTRAP_API_KEYS": "client-key"}
    async with scored({"bf16": ScriptedBackend("bf16")}, None, environ=env) as h:
        none = await h.client.post("/v1/chat/completions", json=chat())
        bearer = await h.client.post("/v1/chat/completions", json=chat(), headers=CLIENT)
        x_api = await h.client.post("/v1/chat/completions", json=chat(), headers=ANTHROPIC_STYLE)
    assert none.status_code == 401 and none.json()["error"]["code"] == "missing_api_key"
    assert bearer.status_code == 200 and x_api.status_code == 200
