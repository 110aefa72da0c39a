"""What the HTTP limits cost per request: uvicorn's httptools protocol with and without them.

Run: ``.venv/bin/python benchmarks/http_limits_cost.py`` (numbers in docs/reliability.md).

Method: both protocol classes parse the same keep-alive request (a chat completion with the
headers the ``openai`` client sends, about 700 bytes) ``--requests`` times on one connection
over an in-memory transport, with a minimal ASGI app that answers 200 at once; the loop is
uvloop, as ``quanttrap serve`` runs. Printed: CPU microseconds per request for each, and the
difference (what ``proxy/http_limits.py`` adds). The app, the transport and the event loop
cost the same in both runs, so the difference is the limits' own work (per-header checks,
head-size accounting, the header timer armed and cancelled once per request).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from proxy.http_limits import HttpLimits, limited_protocol

BODY = b'{"model":"demo","messages":[{"role":"user","content":"What is 6 * 7?"}],"stream":false}'
REQUEST = (
    b"POST /v1/chat/completions HTTP/1.1\r\n"
    b"Host: 127.0.0.1:8000\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    b"Accept: application/json\r\nContent-Type: application/json\r\n"
    b"User-Agent: OpenAI/Python 1.99.0\r\nX-Stainless-Lang: python\r\n"
    b"X-Stainless-Package-Version: 1.99.0\r\nX-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\n"
    b"X-Stainless-Runtime: CPython\r\nX-Stainless-Runtime-Version: 3.11.7\r\n"
    b"Authorization: Bearer sk-0123456789abcdef0123456789abcdef\r\n"
    b"X-Stainless-Async: false\r\nX-Stainless-Retry-Count: 0\r\n"
    b"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: Any) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _run(protocol_class: type[HttpToolsProtocol], requests: int) -> float:
    config = uvicorn.Config(_app, access_log=False, log_level="warning", lifespan="off")
    config.load()
    state = ServerState()
    proto = protocol_class(config=config, server_state=state, app_state={})  # type: ignore[call-arg]
    transport = _Transport()
    proto.connection_made(transport)
    for _ in range(200):  # warm-up
        proto.data_received(REQUEST)
        await asyncio.sleep(0)
    cpu = time.process_time()
    for _ in range(requests):
        proto.data_received(REQUEST)
        await asyncio.sleep(0)  # the app's task answers
    cpu = time.process_time() - cpu
    proto.connection_lost(None)
    return cpu / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = asyncio.new_event_loop
    limited = limited_protocol(HttpLimits())
    plain: list[float] = []
    with_limits: list[float] = []
    for _ in range(args.rounds):  # interleaved, best of each: a shared machine is noisy
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            plain.append(runner.run(_run(HttpToolsProtocol, args.requests)))
            with_limits.append(runner.run(_run(limited, args.requests)))
    a, b = min(plain) * 1e6, min(with_limits) * 1e6
    print(f"httptools protocol:        {a:6.2f} us CPU per request (best of {args.rounds})")
    print(f"with quanttrap's limits:   {b:6.2f} us CPU per request")
    print(f"the limits add:            {b - a:6.2f} us per request ({len(REQUEST)}-byte request)")


if __name__ == "__main__":
    main()
