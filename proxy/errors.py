"""Errors the API answers with, in OpenAI's error body.

Every failure a client can see is an :class:`APIError` carrying the HTTP status and the four
fields of OpenAI's body ``{"error": {"message", "type", "param", "code"}}``. Backend exceptions
(``backends.base``) are converted here and nowhere else, so the mapping from "what went wrong
upstream" to "what the client sees" is one table::

    APIError
    ├── 400 invalid_request_error   bad JSON, bad field (param names it), unknown pinned variant
    ├── 401 authentication_error    missing or wrong API key
    ├── 404 invalid_request_error   unknown model (code model_not_found), unknown route
    ├── 405 invalid_request_error   wrong method
    ├── 413 invalid_request_error   body over server.max_body_bytes
    ├── 502 upstream_error          every variant refused or failed before answering
    └── 504 upstream_error          every variant timed out before answering

On Anthropic's Messages route the same errors are written in Anthropic's shape,
``{"type": "error", "error": {"type", "message"}}`` (:meth:`APIError.anthropic_body`), since
that is what its clients parse. ``headers`` carries response headers the client should see
(``Retry-After`` from an overloaded upstream).
"""

from __future__ import annotations

import orjson

from backends.base import BackendConnectError, BackendError, BackendServerError, BackendTimeout

__all__ = ["APIError", "error_body", "from_backend_error"]


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> bytes:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def anthropic_body(self) -> bytes:
        """The same error as Anthropic's API writes it."""
        kind = _ANTHROPIC_TYPES.get(self.status, "api_error" if self.status >= 500 else
                                    "invalid_request_error")  # fmt: skip
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": self.message}})


_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


def error_body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def from_backend_error(errors: list[tuple[str, BackendError]]) -> APIError:
    """The error for a request that no variant could serve; ``errors`` is (variant, error)."""
    tried = "; ".join(f"{name}: {_describe(err)}" for name, err in errors) or "no variant tried"
    last = errors[-1][1] if errors else None
    if isinstance(last, BackendServerError) and last.status == 503 and last.retry_after:
        # Every variant was tried and the last one is overloaded: say so, and when to retry.
        return APIError(
            503,
            f"The model's backends are overloaded ({tried}).",
            type="upstream_error",
            code="upstream_overloaded",
            headers=((b"retry-after", last.retry_after),),
        )
    if errors and all(isinstance(err, BackendTimeout) for _, err in errors):
        return APIError(
            504,
            f"The model's backends did not answer in time ({tried}).",
            type="upstream_error",
            code="upstream_timeout",
        )
    return APIError(
        502,
        f"The model's backends could not serve the request ({tried}).",
        type="upstream_error",
        code="upstream_unavailable",
    )


def _describe(err: BackendError) -> str:
    if isinstance(err, BackendConnectError):
        return "connection refused or failed"
    if isinstance(err, BackendTimeout):
        return "timed out before the first byte"
    if isinstance(err, BackendServerError):
        return f"answered HTTP {err.status}"
    return str(err) or type(err).__name__
