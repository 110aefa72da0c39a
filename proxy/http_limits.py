"""HTTP-level limits, enforced in uvicorn's protocol, answered in OpenAI's error shape.

uvicorn parses requests with httptools (llhttp) in :class:`HttpToolsProtocol` and, left to
itself, has no limit on header count or size, no header-read timeout, and answers a request it
cannot parse with a plain-text ``Invalid HTTP request received.``. uvicorn's extension point is
its ``http`` option, which also takes a protocol *class*: :func:`limited_protocol` returns a
subclass that adds what :class:`HttpLimits` says, before the app sees anything:

==========================================  ======  ==========================================
what                                        status  OpenAI ``code``
==========================================  ======  ==========================================
unparseable request (bad request line,      400     ``invalid_http_request`` (message: the
control byte in a header value,                     parser's reason)
``Content-Length: -1``, bad chunking)
``Content-Length`` over ``max_body_bytes``  413     ``request_too_large``
(or past 2^64), a chunked body growing
past it
more than ``max_headers`` headers           431     ``too_many_headers``
one header over ``max_header_bytes``        431     ``header_too_large``
request line + headers over                 431     ``headers_too_large``
``max_head_bytes`` (checked as bytes
arrive, so memory stays bounded)
headers not complete within                 408     ``request_timeout``
``header_timeout_s`` of their first byte
(slow-loris), or of the connection opening
==========================================  ======  ==========================================

Every rejection closes the connection. When the client may still be sending a body, the
connection is closed *lingeringly*: the response is written, then what arrives is read and
discarded (up to ``linger_bytes``, for at most ``linger_s``) before closing, so the client
reads the 413 instead of a TCP reset (closing a socket with unread data makes the kernel send
RST, which destroys the response in flight).

Caveats: the checks sit on uvicorn's httptools protocol (``uvicorn[standard]``, which this
project depends on); a uvicorn upgrade that renames its protocol's methods breaks
``tests/proxy/test_http_limits.py`` first. The 503 uvicorn sends for ``limit_concurrency`` is
not covered (the proxy does not set it).
"""

from __future__ import annotations

import asyncio
import http
import logging
import sys
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from proxy.errors import APIError

__all__ = ["HttpLimits", "limited_protocol", "rejection_bytes"]

log = logging.getLogger("quanttrap.http")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Limits on one HTTP/1.1 request, checked before the app runs (sizes in bytes)."""

    max_body_bytes: int = 4 * 1024 * 1024
    """Same as ``server.max_body_bytes``: larger bodies get 413."""
    max_headers: int = 100
    """Header fields per request (nginx and Go allow about as many in practice)."""
    max_header_bytes: int = 16 * 1024
    """One header's name plus value (a W3C ``traceparent`` is 55 bytes; a JWT a few KiB)."""
    max_head_bytes: int = 64 * 1024
    """The request line and every header together (nginx's default buffers hold 32 KiB)."""
    header_timeout_s: float = 10.0
    """From a request's first byte (or the connection opening) to its last header."""
    linger_s: float = 5.0
    """After a rejection: how long to keep reading (and discarding) what the client sends."""
    linger_bytes: int = 64 * 1024 * 1024
    """After a rejection: how much to read and discard before closing regardless."""


class _Rejected(Exception):
    """Raised inside a parser callback to stop parsing; carries the answer."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.message)
        self.error = error


def rejection_bytes(error: APIError) -> bytes:
    """A complete HTTP/1.1 response for ``error``: OpenAI's body, ``connection: close``."""
    body = error.body()
    try:
        phrase = http.HTTPStatus(error.status).phrase
    except ValueError:
        phrase = ""
    head = (
        f"HTTP/1.1 {error.status} {phrase}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def limited_protocol(limits: HttpLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with ``limits`` (pass the class as ``Config(http=...)``)."""
    protocol: type[HttpToolsProtocol] = type(
        "LimitedHttpToolsProtocol", (_LimitedProtocol,), {"limits": limits}
    )
    return protocol


class _LimitedProtocol(HttpToolsProtocol):
    limits = HttpLimits()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True  # reading a request line and headers (not a body)
        self._head_bytes = 0
        self._body_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._draining = False
        self._drained = 0

    # -- connection --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a connection that never sends a header is cut off too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._draining:
            self._drained += len(data)
            if self._drained >= self.limits.linger_bytes:
                self.transport.close()
            return
        # Feed the head in slices no larger than the room left, so that an oversized head is
        # refused as soon as it passes the limit, with at most that much buffered.
        while data and self._in_head:
            room = self.limits.max_head_bytes - self._head_bytes
            if room <= 0:
                self._reject(
                    APIError(
                        431,
                        f"The request line and headers are larger than "
                        f"{self.limits.max_head_bytes} bytes.",
                        code="headers_too_large",
                    )
                )
                return
            chunk, data = data[:room], data[room:]
            self._head_bytes += len(chunk)
            super().data_received(chunk)
            if self._draining or self.transport.is_closing():
                return
            if self._in_head and self._head_timer is None:
                # A head that did not arrive whole (most do, in one read): the clock starts.
                self._arm_head_timer()
        if data:
            super().data_received(data)

    # -- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._body_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm_head_timer()
        # Count and size are checked once the head is complete (memory is bounded meanwhile
        # by max_head_bytes): one pass here is cheaper than a Python call per header.
        headers = self.headers
        if len(headers) > self.limits.max_headers:
            raise _Rejected(
                APIError(
                    431,
                    f"The request has more than {self.limits.max_headers} headers.",
                    code="too_many_headers",
                )
            )
        for name, value in headers:
            if len(name) + len(value) > self.limits.max_header_bytes:
                raise _Rejected(
                    APIError(
                        431,
                        f"The header {_printable(name)!r} is larger than "
                        f"{self.limits.max_header_bytes} bytes.",
                        code="header_too_large",
                    )
                )
        length = _content_length(headers)
        if length is not None and length > self.limits.max_body_bytes:
            raise _Rejected(_too_large(self.limits.max_body_bytes))
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > self.limits.max_body_bytes:  # chunked: no length announced
            raise _Rejected(_too_large(self.limits.max_body_bytes))
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what comes next is the next request's head
        self._head_bytes = 0

    # -- answers -------------------------------------------------------------------------------

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this (inside its ``except``) for anything the parser refused."""
        exc = sys.exc_info()[1]
        cause = exc.__context__ if exc is not None else None
        if isinstance(cause, _Rejected):
            self._reject(cause.error)
            return
        reason = str(exc) if exc is not None and str(exc) else msg
        if "overflow" in reason.lower() and "content-length" in reason.lower():
            self._reject(_too_large(self.limits.max_body_bytes))
            return
        self._reject(APIError(400, f"Invalid HTTP request: {reason}.", code="invalid_http_request"))

    def _reject(self, error: APIError) -> None:
        """Answer ``error`` and close lingeringly (see the module docstring)."""
        self._disarm_head_timer()
        if self.transport.is_closing() or self._draining:
            return
        log.info("rejected an HTTP request: %s %s", error.status, error.code)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # a response is under way: cannot answer, just end
                self.transport.close()
                return
            # The app is running for this request (a chunked body grew too large): it sees
            # a disconnect, and anything it still sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.write(rejection_bytes(error))
        self._draining = True
        self.flow.resume_reading()
        self.loop.call_later(self.limits.linger_s, self._close)

    def _close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()

    # -- the header-read timeout ---------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timeout)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._head_bytes == 0 and self.cycle is not None:
            self.transport.close()  # an idle keep-alive connection: uvicorn's own timeout
            return
        self._reject(
            APIError(
                408,
                f"The request headers did not arrive within {self.limits.header_timeout_s:g} s.",
                code="request_timeout",
            )
        )


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"Request body is larger than the limit of {limit} bytes (server.max_body_bytes).",
        code="request_too_large",
    )


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _printable(name: bytes) -> str:
    text = name[:64].decode("latin-1")
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
