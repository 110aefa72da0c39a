"""Loading at each precision on CPU, the memory each variant reports, and clear load errors."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import orjson
import pytest
from bitsandbytes.nn.modules import Linear4bit, Linear8bitLt

from backends.base import BackendError
from backends.engine import EngineLoadError, load_model
from backends.engine.loader import resolve_model_source
from backends.engine.memory import weights_bytes
from tests.backends.engine_helpers import JIT_WARNING, answer, chat, chunks, engine, streamed_text
from tests.doubles.tiny_llama import build_tiny_llama

pytestmark = pytest.mark.filterwarnings(JIT_WARNING)

LINEAR_TYPES = {"int8": Linear8bitLt, "nf4": Linear4bit}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(Path(tmp_path_factory.mktemp("tiny")))


@pytest.mark.parametrize("precision", ["fp32", "int8", "nf4"])
async def test_each_precision_loads_on_cpu_and_answers(model_dir: Path, precision: str) -> None:
    backend = engine(model_dir, precision)
    await backend.start()
    try:
        loaded = backend.loaded
        assert loaded is not None and loaded.device.type == "cpu"
        assert loaded.compute_dtype.is_floating_point and loaded.compute_dtype.itemsize == 4
        proj = loaded.model.model.layers[0].mlp.down_proj
        assert isinstance(proj, LINEAR_TYPES.get(precision, type(proj)))
        if precision == "fp32":
            assert proj.weight.dtype.itemsize == 4
        whole = await backend.send(chat("Café 日本", max_tokens=6))
        body = orjson.loads(whole.body)
        assert body["object"] == "chat.completion"
        assert body["usage"]["completion_tokens"] == 6
        payloads = await chunks(await backend.send(chat("Café 日本", stream=True, max_tokens=6)))
        assert payloads[-1] == b"[DONE]"
        assert streamed_text(payloads) == answer(whole)
        report = backend.memory()
        assert report.weights_bytes == weights_bytes(loaded.model)
        assert report.peak_bytes > report.weights_bytes  # process RSS holds torch and more
        assert "process" in report.method
    finally:
        await backend.aclose()


def test_quantized_weights_are_counted_from_their_storage(model_dir: Path) -> None:
    sizes = {
        p: weights_bytes(load_model(str(model_dir), p, "cpu").model)
        for p in ("fp32", "bf16", "int8", "nf4")
    }
    # Embeddings and the LM head stay in the compute dtype (fp32 on CPU): only the linear
    # layers of the blocks shrink. Blocks: 2 x (4 attn + 3 mlp) matrices = 2 x 229,376 weights.
    block_weights = 2 * (128 * 128 * 2 + 128 * 64 * 2 + 3 * 128 * 256)
    assert sizes["fp32"] - sizes["int8"] >= block_weights * 3 - 4096  # 4 -> 1 byte (+ scales)
    assert sizes["int8"] - sizes["nf4"] >= block_weights * 0.5 - 8192  # 1 -> 0.5 byte (+ state)
    # bf16 halves everything but the rotary-embedding frequencies (fp32 buffers, 128 bytes).
    assert sizes["bf16"] * 2 - sizes["fp32"] == 128
    assert sizes["nf4"] < sizes["int8"] < sizes["bf16"] < sizes["fp32"]


def test_a_missing_directory_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(EngineLoadError, match="no such directory") as caught:
        load_model(str(missing), "fp32", "cpu")
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, BackendError)


def test_an_unknown_hub_id_offline_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EngineLoadError) as caught:
        load_model("quanttrap-tests/no-such-model", "fp32", "cpu")
    message = str(caught.value)
    assert "'quanttrap-tests/no-such-model'" in message
    assert "not a local directory" in message and "Hugging Face cache" in message
    assert "downloads are switched off" in message


def test_a_directory_without_a_model_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(EngineLoadError, match=str(tmp_path)):
        load_model(str(tmp_path), "fp32", "cpu")


async def test_start_raises_the_load_error_and_stays_unready(tmp_path: Path) -> None:
    backend = engine(tmp_path / "absent")
    with pytest.raises(EngineLoadError):
        await backend.start()
    assert not await backend.ready()


def test_cuda_asked_for_without_a_gpu_is_a_load_error(model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(EngineLoadError, match="no CUDA device"):
        load_model(str(model_dir), "fp32", "cuda")


def test_probe_resolves_through_backends_probe(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("backends.probe")
    fake.probe_model_path = lambda: model_dir  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "backends.probe", fake)
    assert resolve_model_source("probe") == (str(model_dir), True)
    assert load_model("probe", "fp32", "cpu").source == str(model_dir)


def test_probe_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "backends.probe", None)
    with pytest.raises(EngineLoadError, match="model 'probe'"):
        resolve_model_source("probe")


def test_hub_ids_and_paths_are_told_apart(tmp_path: Path) -> None:
    assert resolve_model_source("Qwen/Qwen3-0.6B") == ("Qwen/Qwen3-0.6B", False)
    assert resolve_model_source(str(tmp_path)) == (str(tmp_path.resolve()), True)
    for path_like in ("./models/x", "/opt/models/x", "a/b/c"):
        with pytest.raises(EngineLoadError, match="no such directory"):
            resolve_model_source(path_like)
