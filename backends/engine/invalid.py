"""The one error of request reading: a body that asks for something invalid or unsupported."""

from __future__ import annotations

__all__ = ["InvalidRequest"]


class InvalidRequest(Exception):
    """The body asks for something invalid or unsupported: answered with HTTP 400."""

    def __init__(self, message: str, param: str | None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
