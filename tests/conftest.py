"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import socket

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def require_tools() -> bool:
    """In CI (QUANTTRAP_REQUIRE_INTEGRATION=1) a missing tool fails the test instead of skipping."""
    return os.environ.get("QUANTTRAP_REQUIRE_INTEGRATION") == "1"
