"""The upstream double served on a real socket from a thread, for tests that talk to it directly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.doubles.fake_upstream import DoubleState, make_app
from tests.doubles.processes import free_port


@dataclass
class ServedDouble:
    url: str
    state: DoubleState

    def configure(self, **config: Any) -> None:
        """Set the double's run-time config through its own HTTP endpoint."""
        httpx.post(self.url + "/_double/config", json=config).raise_for_status()


@pytest.fixture(scope="module")
def served_double() -> Iterator[ServedDouble]:
    state = DoubleState("bf16")
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_app(state), access_log=None)
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="fake-upstream", daemon=True)
    thread.start()
    assert ready.wait(10)
    yield ServedDouble(f"http://127.0.0.1:{port}", state)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture
def double(served_double: ServedDouble) -> ServedDouble:
    """The served double, reset to its defaults for each test."""
    httpx.post(served_double.url + "/_double/reset").raise_for_status()
    return served_double
