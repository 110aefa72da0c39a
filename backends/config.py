"""Configuration of each backend kind (one section ``backend:`` of a variant in the config file).

They live here, not in ``proxy``, so that backends never import the proxy.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BackendConfig", "EngineBackendConfig", "OpenAIBackendConfig", "VllmBackendConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenAIBackendConfig(_Strict):
    """Any OpenAI-compatible HTTP server (vLLM, SGLang, TGI, llama.cpp server, OpenAI)."""

    kind: Literal["openai"]
    base_url: str = Field(pattern=r"^https?://")
    model: str | None = None
    """Model name the upstream serves; defaults to the client's model name."""
    api_key_env: str | None = None
    """Name of the environment variable holding the upstream's API key (never the key)."""
    connect_timeout_s: float = Field(default=5.0, gt=0)
    """Longest wait for a connection: the connect itself, or a free one when all are busy."""
    read_timeout_s: float = Field(default=600.0, gt=0)
    """Longest wait for any byte; before the response starts, past it the variant fails over."""
    max_connections: int = Field(default=512, ge=1)
    """Connections kept to this upstream at most (idle ones are reused)."""


class EngineBackendConfig(_Strict):
    """The in-process transformers (+ bitsandbytes) engine."""

    kind: Literal["engine"]
    model: str = "probe"
    """Hugging Face hub id or local path; ``probe`` is the small model shipped with quanttrap."""
    precision: Literal["fp32", "fp16", "bf16", "int8", "nf4"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    max_batch_size: int = Field(default=16, ge=1)
    batch_wait_ms: float = Field(default=2.0, ge=0)
    max_new_tokens: int = Field(default=256, ge=1)
    """Default and upper bound for ``max_tokens``."""


class VllmBackendConfig(_Strict):
    """A vLLM OpenAI server that quanttrap launches, waits for, proxies to and stops."""

    kind: Literal["vllm"]
    model: str
    port: int = Field(ge=1, le=65535)
    host: str = "127.0.0.1"
    dtype: str = "auto"
    quantization: str | None = None
    gpus: tuple[int, ...] = ()
    executable: str = "vllm"
    extra_args: tuple[str, ...] = ()
    """Appended last to ``vllm serve``'s command line, so they override quanttrap's flags."""
    served_model_name: str | None = None
    """Name vLLM serves the model under; defaults to the variant's name."""
    startup_timeout_s: float = Field(default=900.0, gt=0)
    stop_timeout_s: float = Field(default=30.0, gt=0)
    """Grace after SIGTERM before the server's process group is killed."""
    read_timeout_s: float = Field(default=600.0, gt=0)


BackendConfig = Annotated[
    OpenAIBackendConfig | EngineBackendConfig | VllmBackendConfig, Field(discriminator="kind")
]
