"""The main job: ``quanttrap serve`` with no config serves the shipped probe model in-process
at fp32, int8 and nf4 (CPU here), driven by the official ``openai`` client."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from scoring.datasets.multihop import as_chat_messages, generate
from scoring.graders import get_grader
from tests.doubles.processes import Process, free_port, quanttrap_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    logs = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = {
        # Keep the suite's own SQLite log out of the working tree.
        "QUANTTRAP_SCORING__STORE__PATH": str(logs / "quanttrap.sqlite3"),
    }
    proc = Process(
        [*quanttrap_command(), "serve", "--port", str(port)], port, logs / "serve.log", env=env
    )
    try:
        proc.wait_http("/readyz", timeout=180)
        yield proc
    finally:
        proc.stop()


def test_prints_the_api_and_metrics_urls(embedded: Process) -> None:
    # The URLs are printed once uvicorn reports it listens: poll briefly for them.
    deadline = time.monotonic() + 10
    while "metrics:" not in (out := embedded.output()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert f"OpenAI API: http://127.0.0.1:{embedded.port}/v1" in out
    assert f"metrics:    http://127.0.0.1:{embedded.port}/metrics" in out
    models = httpx.get(embedded.url + "/v1/models").json()["data"]
    assert [v["name"] for v in models[0]["quanttrap"]["variants"]] == ["fp32", "int8", "nf4"]


def test_full_precision_answers_shallow_problems_correctly(embedded: Process) -> None:
    grader = get_grader("multihop")
    items = generate(20, seed=2024, depths=range(1, 3))
    with openai.OpenAI(base_url=embedded.url + "/v1", api_key="x", max_retries=0) as client:
        correct = 0
        for item in items:
            raw = client.chat.completions.with_raw_response.create(
                model="probe", messages=as_chat_messages(item), max_tokens=200
            )
            assert raw.headers["x-quanttrap-variant"] == "fp32"
            text = raw.parse().choices[0].message.content or ""
            correct += grader.grade(text, str(item.answer)).correct
    assert correct / len(items) >= 0.9


@pytest.mark.parametrize("variant", ["fp32", "int8", "nf4"])
def test_each_variant_loads_and_answers_streaming_and_not(embedded: Process, variant: str) -> None:
    (item,) = generate(1, seed=7, depths=[1])
    pin = {"X-Quanttrap-Variant": variant}
    with openai.OpenAI(base_url=embedded.url + "/v1", api_key="x", max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="probe", messages=as_chat_messages(item), max_tokens=200, extra_headers=pin
        )
        assert raw.headers["x-quanttrap-variant"] == variant
        completion = raw.parse()
        assert completion.usage is not None and completion.usage.completion_tokens > 0
        assert "####" in (completion.choices[0].message.content or "")
        stream = client.chat.completions.create(
            model="probe",
            messages=as_chat_messages(item),
            max_tokens=200,
            stream=True,
            stream_options={"include_usage": True},
            extra_headers=pin,
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == completion.choices[0].message.content  # greedy: same answer both ways
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == completion.usage.completion_tokens


def _batch_counts(metrics: str, variant: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in metrics.splitlines():
        if (
            line.startswith("quanttrap_requests_total{")
            and f'quanttrap_variant="{variant}"' in line
        ):
            bucket = line.split('quanttrap_batch_size_bucket="', 1)[1].split('"', 1)[0]
            counts[bucket] = counts.get(bucket, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_concurrent_requests_are_decoded_together(embedded: Process) -> None:
    items = generate(8, seed=99, depths=range(3, 5))
    before = _batch_counts(httpx.get(embedded.url + "/metrics").text, "nf4")

    async def burst() -> None:
        async with openai.AsyncOpenAI(
            base_url=embedded.url + "/v1", api_key="x", max_retries=0
        ) as client:
            await asyncio.gather(
                *(
                    client.chat.completions.create(
                        model="probe",
                        messages=as_chat_messages(it),
                        max_tokens=200,
                        extra_headers={"X-Quanttrap-Variant": "nf4"},
                    )
                    for it in items
                )
            )

    asyncio.run(burst())
    after = _batch_counts(httpx.get(embedded.url + "/metrics").text, "nf4")
    grown = {b: after.get(b, 0) - before.get(b, 0) for b in after}
    assert sum(grown.values()) >= 8
    # The recorded batch size is the engine's own: several of the 8 ran in a batch of 4+.
    assert sum(n for b, n in grown.items() if b in ("4-7", "8-15")) >= 4, grown


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    config = tmp_path / "q.yaml"
    config.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "m",
                        "anchor": "fp32",
                        "routing": {"primary": "fp32"},
                        "variants": [
                            {
                                "name": "fp32",
                                "bits": 32,
                                "backend": {"kind": "engine", "model": str(missing)},
                            }
                        ],
                    }
                ]
            }
        )
    )
    done = subprocess.run(
        [*quanttrap_command(), "serve", "--config", str(config), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "HF_HUB_OFFLINE": "1",
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "QUANTTRAP_SCORING__STORE__PATH": str(tmp_path / "db.sqlite3"),
        },
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert str(missing) in output
    assert "Traceback" not in output
    assert sys.executable  # the CLI ran as an installed console script or module
