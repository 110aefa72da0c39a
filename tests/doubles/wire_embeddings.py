"""TEST DOUBLE: embeddings (``POST /v1/embeddings``) in OpenAI's shape, floats or base64."""

from __future__ import annotations

import base64
import hashlib
import struct
from typing import Any

import orjson

__all__ = ["embeddings"]


def _vector(text: str, dim: int) -> list[float]:
    """A deterministic vector from the text's hash (the same text, the same vector)."""
    digest = hashlib.sha256(text.encode()).digest() * (dim // 32 + 1)
    return [round(b / 255.0 - 0.5, 6) for b in digest[:dim]]


def embeddings(config: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A ``CreateEmbeddingResponse``: one vector per input (a string, strings, token ids)."""
    raw = body.get("input", "")
    inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw)
    dim = int(body.get("dimensions") or config.get("embedding_dim", 8))
    data = []
    for i, item in enumerate(inputs):
        vector = _vector(item if isinstance(item, str) else orjson.dumps(item).decode(), dim)
        embedding: Any = vector
        if body.get("encoding_format") == "base64":  # float32 little-endian, as OpenAI sends
            embedding = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = sum(len(i.split()) if isinstance(i, str) else len(i) for i in inputs) or 1
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
