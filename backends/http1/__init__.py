"""A small pooled HTTP/1.1 client for the upstream path, on asyncio protocols and httptools.

Why not aiohttp or httpx: the proxy's cost per streamed chunk is the cost of one read from the
upstream and one write to the client, and a general client adds a stream reader, a timer
reset and several coroutine hops to every read (measured side by side in
``benchmarks/upstream_client.py``; results in ``docs/benchmarks.md``). This client parses
with httptools (the parser uvicorn uses) straight from the protocol callback and keeps a
buffer per response, so a chunk costs one wake-up.

Scope: what an OpenAI-compatible upstream needs and no more. One origin per pool;
keep-alive connections reused last-in first-out; request bodies with ``Content-Length``;
responses with ``Content-Length``, chunked or read to close; TLS; a connect timeout and a read
(inactivity) timeout; back-pressure (a response nobody reads stops the socket being read).
No redirects, cookies, proxies, compression (no ``Accept-Encoding`` is sent) or HTTP/2.
"""

from backends.http1.errors import (
    BodyTooLarge,
    ConnectError,
    ConnectTimeout,
    HTTPError,
    ReadTimeout,
    RemoteProtocolError,
)
from backends.http1.pool import ConnectionPool, Response

__all__ = [
    "BodyTooLarge",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "HTTPError",
    "ReadTimeout",
    "RemoteProtocolError",
    "Response",
]
