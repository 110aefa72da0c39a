"""End to end: schemathesis fuzzing of ``quanttrap serve``'s ``/openapi.json``, auth off and on.

A real proxy process fronts the fake upstream process (TEST DOUBLE of an OpenAI-compatible
server); every documented route gets schema-valid and schema-breaking requests (see
:mod:`tests.e2e.fuzzing` for the method and the rules checked). Bounded for CI: ``EXAMPLES``
cases per operation and mode; the longer run is ``benchmarks/fuzz_api.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.doubles.processes import Process, start_proxy, start_upstream
from tests.e2e.fuzzing import error_shape_problem, fuzz

pytestmark = pytest.mark.slow

EXAMPLES = 100  # per operation and mode: about 1,000 requests per run with 5 generating routes
API_KEY = "fuzz-secret"


def fuzz_config(upstream: str, folder: Path, *, protect: bool) -> Path:
    """One model, an anchor and a shadowed 4-bit variant, scoring on (its status routes are
    in the schema), canaries off (the run measures the proxy, not probe traffic)."""

    def variant(name: str, bits: int) -> dict[str, object]:
        return {"name": name, "bits": bits,
                "backend": {"kind": "openai", "base_url": upstream + "/v1"}}  # fmt: skip

    model = {"name": "demo", "anchor": "bf16", "routing": {"primary": "bf16"},
             "variants": [variant("bf16", 16), variant("nf4", 4)],
             "shadow": {"variants": ["nf4"], "sample_rate": 0.5}}  # fmt: skip
    config = folder / f"fuzz-{'keys' if protect else 'open'}.yaml"
    config.write_text(
        json.dumps(
            {
                "models": [model],
                "server": {"protect_metrics": protect},
                "scoring": {"store": {"path": str(folder / "log.sqlite3")}},
            }
        )
    )
    return config


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    proc = start_upstream("bf16", tmp_path_factory.mktemp("fuzz-up"), reply_words=4)
    yield proc
    proc.stop()


@pytest.mark.parametrize("auth", [False, True], ids=["auth-off", "auth-on"])
def test_fuzzing_every_route_finds_no_5xx_hang_or_bad_error(
    upstream: Process, tmp_path: Path, auth: bool
) -> None:
    env = {"QUANTTRAP_API_KEYS": API_KEY} if auth else {"QUANTTRAP_API_KEYS": ""}
    proxy = start_proxy(fuzz_config(upstream.url, tmp_path, protect=auth), tmp_path, env=env)
    try:
        report = fuzz(proxy.url, model="demo", api_key=API_KEY if auth else None,
                      examples=EXAMPLES)  # fmt: skip
        alive = proxy.proc.poll() is None
    finally:
        proxy.stop()
    print(report.summary())
    assert alive, proxy.output()
    assert report.failures == [], "\n".join(map(str, report.failures[:20]))
    assert report.server_errors == 0 and report.hangs == 0
    # The run reached every route and got past validation to the upstream.
    assert len(report.by_operation) >= 6, report.by_operation
    posts = [op for op in report.by_operation if op.startswith("POST ")]
    assert posts and all(report.by_operation[op] >= EXAMPLES for op in posts), report.by_operation
    assert report.by_status[200] > 0
    if auth:
        assert report.by_status[401] > 0


def test_embeddings_dimensions_past_any_model_are_refused(
    upstream: Process, tmp_path: Path
) -> None:
    proxy = start_proxy(fuzz_config(upstream.url, tmp_path, protect=False), tmp_path,
                        env={"QUANTTRAP_API_KEYS": ""})  # fmt: skip
    try:
        body = {"model": "demo", "input": "hi", "dimensions": 65_537}
        resp = httpx.post(proxy.url + "/v1/embeddings", json=body, timeout=60)
    finally:
        proxy.stop()
    assert resp.status_code == 400, (resp.status_code, len(resp.content))
    assert resp.json()["error"]["param"] == "dimensions"


def test_embeddings_input_of_the_wrong_type_is_a_400(upstream: Process, tmp_path: Path) -> None:
    proxy = start_proxy(fuzz_config(upstream.url, tmp_path, protect=False), tmp_path,
                        env={"QUANTTRAP_API_KEYS": ""})  # fmt: skip
    try:
        body = {"model": "demo", "input": [1.5, {"a": 1}]}
        resp = httpx.post(proxy.url + "/v1/embeddings", json=body, timeout=60)
    finally:
        proxy.stop()
    assert resp.status_code == 400, (resp.status_code, resp.text)
    assert resp.json()["error"]["param"] == "input"


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        ("/v1/chat/completions",
         {"error": {"message": "m", "type": "t", "param": None, "code": None}}, None),
        ("/v1/chat/completions", {"detail": "Not Found"}, "no 'error' object"),
        ("/v1/chat/completions", {"error": {"message": "m", "type": "t"}},
         "OpenAI error without 'param' and 'code'"),
        ("/v1/messages", {"type": "error", "error": {"type": "t", "message": "m"}}, None),
        ("/v1/messages", {"error": {"message": "m", "type": "t", "param": None, "code": None}},
         "Anthropic error without type 'error'"),
        ("/v1/models", "Internal Server Error", "error body is not a JSON object"),
    ],
)  # fmt: skip
def test_the_error_shape_rule_tells_good_from_bad(path: str, body: object, problem: str) -> None:
    assert error_shape_problem(path, body) == problem
