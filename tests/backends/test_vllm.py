"""The vLLM launcher: command lines, and the launch / health / stop lifecycle.

vLLM itself cannot run here (no GPU, and its wheel is too large), so the lifecycle tests launch
``tests/doubles/fake_vllm.py``, a stand-in that serves ``/health`` and ``/v1/models``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from backends.base import BackendConnectError, BackendRequest, BackendResponse
from backends.config import OpenAIBackendConfig, VllmBackendConfig
from backends.vllm import VllmBackend, VllmLauncher, VllmLaunchError

FAKE = Path(__file__).resolve().parents[1] / "doubles" / "fake_vllm.py"


def _config(**overrides: Any) -> VllmBackendConfig:
    settings: dict[str, Any] = {"kind": "vllm", "model": "Qwen/Qwen3-0.6B", "port": 8101}
    return VllmBackendConfig(**{**settings, **overrides})


def test_command_line_minimal() -> None:
    launcher = VllmLauncher("bf16", _config())
    assert launcher.command() == [
        "vllm", "serve", "Qwen/Qwen3-0.6B",
        "--host", "127.0.0.1", "--port", "8101",
        "--dtype", "auto",
        "--served-model-name", "bf16",
    ]  # fmt: skip
    env = launcher.environment({"PATH": "/bin"})
    assert env == {"PATH": "/bin"}  # no GPUs named: the inherited visibility stands


def test_command_line_quantized_tensor_parallel_with_extra_args() -> None:
    config = _config(
        quantization="bitsandbytes",
        dtype="bfloat16",
        gpus=(2, 3),
        host="0.0.0.0",
        served_model_name="qwen-nf4",
        executable="/opt/vllm/bin/vllm",
        extra_args=("--max-model-len", "4096", "--tensor-parallel-size", "1"),
    )
    launcher = VllmLauncher("nf4", config)
    assert launcher.command() == [
        "/opt/vllm/bin/vllm", "serve", "Qwen/Qwen3-0.6B",
        "--host", "0.0.0.0", "--port", "8101",
        "--dtype", "bfloat16",
        "--quantization", "bitsandbytes",
        "--served-model-name", "qwen-nf4",
        "--tensor-parallel-size", "2",
        "--max-model-len", "4096", "--tensor-parallel-size", "1",
    ]  # fmt: skip
    env = launcher.environment({"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert env == {"CUDA_VISIBLE_DEVICES": "2,3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    assert launcher.base_url == "http://127.0.0.1:8101"  # a wildcard bind is reached on loopback


def test_one_gpu_sets_visibility_but_no_tensor_parallelism() -> None:
    launcher = VllmLauncher("int8", _config(gpus=(1,), host="::"))
    assert "--tensor-parallel-size" not in launcher.command()
    env = launcher.environment({"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert env == {"CUDA_VISIBLE_DEVICES": "1", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    assert launcher.base_url == "http://[::1]:8101"


def test_backend_points_its_http_upstream_at_the_server() -> None:
    backend = VllmBackend("nf4", _config(read_timeout_s=42.0))
    assert backend.upstream_config() == OpenAIBackendConfig(
        kind="openai", base_url="http://127.0.0.1:8101/v1", model="nf4", read_timeout_s=42.0
    )


# ---- lifecycle against the stand-in --------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def fake_vllm(tmp_path: Path) -> Path:
    """An executable named like the double it is, running fake_vllm.py with this Python."""
    script = tmp_path / "fake-vllm"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "launched.json"
    monkeypatch.setenv("FAKE_VLLM_RECORD", str(path))
    return path


def _launcher(fake_vllm: Path, **overrides: Any) -> VllmLauncher:
    settings: dict[str, Any] = {
        "executable": str(fake_vllm),
        "port": _free_port(),
        "startup_timeout_s": 20.0,
        "stop_timeout_s": 5.0,
        **overrides,
    }
    return VllmLauncher("nf4", _config(**settings))


def _recorded(path: Path) -> dict[str, Any]:
    """What the stand-in wrote about itself (a small local file: reading it cannot stall)."""
    with open(path) as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def launched(fake_vllm: Path, record: Path) -> AsyncIterator[VllmLauncher]:
    launcher = _launcher(fake_vllm, gpus=(0, 1))
    yield launcher
    await launcher.stop()


@pytest.mark.slow
async def test_healthy_start_serves_then_stops_cleanly(
    launched: VllmLauncher, record: Path
) -> None:
    await launched.start()
    assert launched.running
    seen = _recorded(record)
    assert seen["argv"] == launched.command()[1:]
    assert seen["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert seen["pgid"] == seen["pid"] == launched.pid  # its own process group
    async with httpx.AsyncClient() as client:
        models = (await client.get(launched.base_url + "/v1/models")).json()
    assert models["data"][0]["id"] == "nf4"
    await launched.stop()
    assert launched.returncode == -15  # ended by our SIGTERM
    assert not launched.running


@pytest.mark.slow
async def test_start_waits_through_a_slow_startup(
    fake_vllm: Path, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_STARTUP_S", "0.8")
    launcher = _launcher(fake_vllm)
    began = time.monotonic()
    try:
        await launcher.start()
        assert time.monotonic() - began >= 0.8
        assert launcher.running
        assert "serving nf4" in launcher.output_tail()
    finally:
        await launcher.stop()


@pytest.mark.slow
async def test_early_crash_raises_with_its_output(
    fake_vllm: Path, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "crash")
    launcher = _launcher(fake_vllm, startup_timeout_s=60.0)
    began = time.monotonic()
    with pytest.raises(VllmLaunchError) as caught:
        await launcher.start()
    assert time.monotonic() - began < 10  # noticed the exit, did not wait for the timeout
    message = str(caught.value)
    assert "exited with status 3" in message
    assert "CUDA out of memory (fake)" in message
    assert launcher.returncode == 3


@pytest.mark.slow
async def test_startup_timeout_raises_and_stops_the_server(
    fake_vllm: Path, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "never_healthy")
    launcher = _launcher(fake_vllm, startup_timeout_s=1.0)
    with pytest.raises(VllmLaunchError, match="not healthy within startup_timeout_s=1"):
        await launcher.start()
    pid = _recorded(record)["pid"]
    assert not launcher.running and not _alive(pid)


@pytest.mark.slow
async def test_server_ignoring_sigterm_is_killed(
    fake_vllm: Path, record: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "ignore_sigterm")
    launcher = _launcher(fake_vllm, stop_timeout_s=0.5)
    await launcher.start()
    began = time.monotonic()
    await launcher.stop()
    assert 0.5 <= time.monotonic() - began < 5
    assert launcher.returncode == -9
    assert not _alive(_recorded(record)["pid"])


async def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    launcher = _launcher(tmp_path / "no-vllm-here")
    with pytest.raises(VllmLaunchError, match=r"quanttrap\[vllm\]"):
        await launcher.start()


class _RecordingUpstream:
    """Stands in for the HTTP backend: records what it was built with and sent."""

    def __init__(self, name: str, config: OpenAIBackendConfig) -> None:
        self.name, self.config = name, config
        self.started = self.closed = False
        self.sent: list[BackendRequest] = []

    async def start(self) -> None:
        self.started = True

    async def ready(self) -> bool:
        return True

    async def send(self, request: BackendRequest) -> BackendResponse:
        self.sent.append(request)
        return BackendResponse(status=200, body=b"{}")

    async def aclose(self) -> None:
        self.closed = True


@pytest.mark.slow
async def test_backend_lifecycle_delegates_to_its_upstream(fake_vllm: Path, record: Path) -> None:
    built: list[_RecordingUpstream] = []

    def factory(name: str, config: OpenAIBackendConfig) -> _RecordingUpstream:
        built.append(_RecordingUpstream(name, config))
        return built[-1]

    config = _config(executable=str(fake_vllm), port=_free_port(), stop_timeout_s=5.0)
    backend = VllmBackend("nf4", config, upstream_factory=factory)
    request = BackendRequest("chat", {"model": "m", "messages": []}, False, "r1")
    with pytest.raises(BackendConnectError):
        await backend.send(request)
    await backend.start()
    [upstream] = built
    assert upstream.started and upstream.config == backend.upstream_config()
    assert await backend.ready()
    assert (await backend.send(request)).status == 200 and upstream.sent == [request]
    await backend.aclose()
    assert upstream.closed and not backend.launcher.running
    assert not await backend.ready()


@pytest.mark.slow
async def test_backend_answers_through_the_real_http_upstream(
    fake_vllm: Path, record: Path
) -> None:
    config = _config(executable=str(fake_vllm), port=_free_port(), stop_timeout_s=5.0)
    backend = VllmBackend.from_config("nf4", config)
    await backend.start()
    try:
        body = {"model": "client-name", "messages": [{"role": "user", "content": "hi"}]}
        response = await backend.send(BackendRequest("chat", body, False, "r1"))
        answer = orjson.loads(response.body)
        assert response.status == 200
        assert answer["model"] == "nf4"  # the served name was substituted upstream
        assert answer["choices"][0]["message"]["content"] == "fake nf4"
    finally:
        await backend.aclose()
