"""Bounded metric labels: every value a label can take is known at start-up.

Model and variant names come from the config; anything else a client sends is folded into
``other``. Error types are a fixed list (plus HTTP status codes, a bounded set); the rest
become the convention's ``_OTHER``. Request ids, session ids and free text never become
labels: they go to spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from core.buckets import BATCH_BUCKETS
from telemetry.semconv import ERROR_TYPE_OTHER

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "KNOWN_ERROR_TYPES",
    "OTHER",
    "LabelPolicy",
    "bounded_error_type",
    "status_class",
]

OTHER: Final = "other"

BATCH_SIZE_BUCKETS: Final = BATCH_BUCKETS
"""Powers of two: the paper's effects scale with batch size roughly logarithmically."""

KNOWN_ERROR_TYPES: Final = frozenset(
    {
        # OpenAI error body ``type`` values the proxy sends
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "rate_limit_error",
        "server_error",
        "api_error",
        "timeout",
        "upstream_error",
        "overloaded_error",
        "cancelled",
        # backends.base exception classes
        "BackendConnectError",
        "BackendTimeout",
        "BackendServerError",
        "BackendStreamError",
        "BackendUnavailable",
        "BackendError",
        ERROR_TYPE_OTHER,
    }
)


def status_class(status: int) -> str:
    """``"2xx"`` ... ``"5xx"``; anything outside 100-599 is ``"other"``."""
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


def bounded_error_type(error_type: str | None) -> str | None:
    """The value for ``error.type``: ``None`` on success, else a member of a bounded set."""
    if error_type is None:
        return None
    if error_type in KNOWN_ERROR_TYPES:
        return error_type
    if len(error_type) == 3 and error_type.isdigit() and error_type[0] in "12345":
        return error_type
    return ERROR_TYPE_OTHER


class LabelPolicy:
    """Folds model and variant names that are not in the config into ``other``."""

    def __init__(self, variants_by_model: Mapping[str, Iterable[str]]) -> None:
        self._variants = {m: frozenset(vs) for m, vs in variants_by_model.items()}

    def model(self, name: str) -> str:
        return name if name in self._variants else OTHER

    def variant(self, model: str, name: str) -> str:
        known = self._variants.get(model)
        return name if known is not None and name in known else OTHER
