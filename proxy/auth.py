"""Client API keys: ``Authorization: Bearer <key>``, compared in constant time.

Keys come only from the environment (``server.api_keys_env``, comma-separated); with none set,
no route needs a key. Comparison uses :func:`hmac.compare_digest` against every configured key,
so the time taken says nothing about how much of a key matched. Keys are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

from fastapi import Request

from proxy.errors import APIError

__all__ = ["KeyChecker"]


class KeyChecker:
    """Checks the bearer key of a request against the configured client keys."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = tuple(k.encode() for k in keys if k)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], variable: str) -> KeyChecker:
        raw = environ.get(variable, "")
        return cls(k.strip() for k in raw.split(",") if k.strip())

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def valid(self, token: bytes) -> bool:
        """``token`` is one of the keys (every key compared, in constant time each)."""
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(key, token)
        return found

    def check_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """Raise a 401 :class:`APIError` unless the ASGI ``headers`` carry a valid key."""
        if not self._keys:
            return
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer" and self.valid(token.strip()):
                    return
                raise APIError(
                    401,
                    "Incorrect API key provided.",
                    type="authentication_error",
                    code="invalid_api_key",
                )
        raise APIError(
            401,
            "You didn't provide an API key. Provide it in the Authorization header: "
            "'Authorization: Bearer YOUR_KEY'.",
            type="authentication_error",
            code="missing_api_key",
        )

    async def dependency(self, request: Request) -> None:
        """The same check as a FastAPI dependency."""
        self.check_headers(request.scope["headers"])
