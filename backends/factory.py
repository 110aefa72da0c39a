"""Build the backend for a variant from its config section."""

from __future__ import annotations

from backends.base import Backend
from backends.config import BackendConfig, EngineBackendConfig, OpenAIBackendConfig

__all__ = ["build_backend"]


def build_backend(variant: str, config: BackendConfig) -> Backend:
    """A not-yet-started backend; the app starts it in its lifespan."""
    if isinstance(config, OpenAIBackendConfig):
        from backends.openai_http import OpenAIHTTPBackend

        return OpenAIHTTPBackend(variant, config)
    if isinstance(config, EngineBackendConfig):
        # Imported here: torch and transformers are heavy and only this kind needs them.
        from backends.engine import EngineBackend

        engine: Backend = EngineBackend.from_config(variant, config)
        return engine
    from backends.vllm import VllmBackend

    vllm: Backend = VllmBackend.from_config(variant, config)
    return vllm
