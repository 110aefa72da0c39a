"""The in-process engine: transformers (+ bitsandbytes) at one precision per variant.

Importing this package imports torch and transformers; ``backends.factory`` imports it only
for variants whose backend kind is ``engine``.
"""

from backends.base import MemoryReport
from backends.engine.backend import EngineBackend
from backends.engine.batcher import TokenHook
from backends.engine.loader import EngineLoadError, LoadedModel, load_model

__all__ = [
    "EngineBackend",
    "EngineLoadError",
    "LoadedModel",
    "MemoryReport",
    "TokenHook",
    "load_model",
]
