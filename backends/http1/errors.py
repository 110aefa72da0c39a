"""What the upstream client raises: one base class, split by when failover is still safe."""

from __future__ import annotations

__all__ = [
    "BodyTooLarge",
    "ConnectError",
    "ConnectTimeout",
    "HTTPError",
    "ReadTimeout",
    "RemoteProtocolError",
]


class HTTPError(Exception):
    """Base of every error this client raises."""


class ConnectError(HTTPError):
    """No connection: refused, unresolvable, TLS failure, or not connected in time."""


class ConnectTimeout(ConnectError):
    """Not connected within the connect timeout."""


class ReadTimeout(HTTPError):
    """No byte arrived within the read timeout."""


class RemoteProtocolError(HTTPError):
    """The server closed the connection early or sent something that is not HTTP/1.1."""


class BodyTooLarge(HTTPError):
    """The response body went past the limit the caller set; the connection was closed."""
