"""What the app learns about a request before its body is handled, handed to the service."""

from __future__ import annotations

from dataclasses import dataclass

from scoring.records import Role

__all__ = ["RequestMeta"]


@dataclass(slots=True)
class RequestMeta:
    """What the app learnt from the HTTP request before the body was handled."""

    request_id: str
    started: float
    """``time.perf_counter()`` when the request arrived."""
    started_at: float
    """Unix time when the request arrived."""
    pinned: str | None = None
    forward_headers: dict[str, str] | None = None
    session_id: str | None = None
    expected_answer: str | None = None
    """Reference answer of evaluation traffic (header ``X-Quanttrap-Expected`` or
    ``metadata.expected_answer``); never forwarded to the model."""
    dataset: str | None = None
    reference_depth: int | None = None
    """Reasoning steps the reference needs (header ``X-Quanttrap-Depth`` or
    ``metadata.reference_depth``, or the canary item's); never forwarded to the model."""
    role: Role = "primary"
    """``canary`` for the proxy's own evaluation prompts (never shadowed)."""
    disconnected: bool = False
    """Set by the app when the client hung up before the response ended."""
    ending: bool = False
    """Set just before the last body message: a hang-up after it needs no cancelling."""
