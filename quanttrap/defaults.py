"""The embedded default configuration: what ``quanttrap serve`` runs with no config file.

The probe model shipped with quanttrap, served in-process at three precisions (a full-precision
anchor, LLM.int8() and NF4), with a quarter of the traffic mirrored to the quantized variants
and canary multi-hop questions sent to every variant, so that the live Sustainability Index
has evidence from the first minutes on.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MODEL_NAME", "embedded_default"]

DEFAULT_MODEL_NAME = "probe"


def embedded_default() -> dict[str, Any]:
    def engine(precision: str) -> dict[str, Any]:
        return {"kind": "engine", "model": "probe", "precision": precision}

    return {
        "server": {"host": "127.0.0.1", "port": 8000},
        "models": [
            {
                "name": DEFAULT_MODEL_NAME,
                "anchor": "fp32",
                "variants": [
                    {"name": "fp32", "bits": 32, "backend": engine("fp32")},
                    {"name": "int8", "bits": 8, "backend": engine("int8")},
                    {"name": "nf4", "bits": 4, "backend": engine("nf4")},
                ],
                "routing": {"primary": "fp32"},
                "shadow": {"variants": ["int8", "nf4"], "sample_rate": 0.25},
            }
        ],
        # The probe model was trained on the multi-hop task: its held-out questions are the
        # canaries, so every variant is graded even before any tagged traffic arrives.
        "scoring": {"canary": {"enabled": True, "dataset": "multihop", "rate_per_minute": 6}},
    }
