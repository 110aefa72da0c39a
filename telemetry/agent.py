"""``quanttrap nvml-agent``: one GPU host's energy counters, served over HTTP.

Run beside a backend (a sidecar, or a DaemonSet on GPU nodes) when the proxy is not on the
GPU's host; the proxy reads it with :class:`telemetry.remote.RemoteEnergySource`. The agent
samples its source on a thread at a fixed period (so power integration, where the energy
counter is missing, keeps its resolution whoever polls) and answers with the latest sample:

``GET /v1/gpus`` -> ``[{"uuid", "index", "name", "energy_mj", "power_mw",
"memory_used_bytes", "method", "timestamp"}, ...]`` (``energy_mj`` is cumulative, ``timestamp``
Unix seconds of the read); ``GET /healthz`` -> ``ok``. Standard library only: no event loop,
no framework, a few hundred requests per second at most are expected.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from telemetry.energy_source import EnergySource, GpuInfo, GpuReading

__all__ = ["NvmlAgent"]

_log = logging.getLogger("quanttrap.telemetry")


class NvmlAgent:
    """Samples ``source`` every ``interval_s`` and serves the latest readings."""

    def __init__(
        self,
        source: EnergySource,
        *,
        host: str = "127.0.0.1",
        port: int = 9402,
        interval_s: float = 0.1,
    ) -> None:
        self._source = source
        self._host = host
        self._port = port
        self._interval = interval_s
        self._gpus: dict[str, GpuInfo] = {}
        self._latest: Sequence[GpuReading] = ()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    def gpus_json(self) -> bytes:
        """The body of ``GET /v1/gpus``."""
        rows = []
        for r in self._latest:
            info = self._gpus.get(r.uuid)
            rows.append(
                {
                    "uuid": r.uuid,
                    "index": info.index if info else -1,
                    "name": info.name if info else "",
                    "energy_mj": r.energy_mj,
                    "power_mw": r.power_mw,
                    "memory_used_bytes": r.memory_used_bytes,
                    "method": r.method,
                    "timestamp": r.timestamp_s,
                }
            )
        return json.dumps(rows).encode()

    def _sample(self) -> None:
        try:
            self._latest = tuple(self._source.read())
        except Exception as exc:
            _log.warning("nvml-agent: read failed: %s: %s", type(exc).__name__, exc)
            self._latest = ()

    def _sample_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> tuple[str, int]:
        """Open the source, take a first sample, serve; returns the bound (host, port)."""
        self._gpus = {g.uuid: g for g in self._source.open()}
        self._sample()
        self._server = ThreadingHTTPServer((self._host, self._port), _handler(self))
        self._server.daemon_threads = True
        for target, name in (
            (self._sample_loop, "nvml-agent-sampler"),
            (self._server.serve_forever, "nvml-agent-http"),
        ):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` (or ``timeout``); ``True`` once stopped."""
        return self._stop.wait(timeout)

    def stop(self) -> None:
        """Stop serving and sampling and close the source (idempotent)."""
        if self._stop.is_set() and self._server is None:
            return
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for t in self._threads:
            t.join(timeout=5.0)
        self._threads.clear()
        self._source.close()


def _handler(agent: NvmlAgent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "quanttrap-nvml-agent"

        def do_GET(self) -> None:
            if self.path == "/v1/gpus":
                self._send(200, "application/json", agent.gpus_json())
            elif self.path == "/healthz":
                self._send(200, "text/plain", b"ok")
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            _log.debug("nvml-agent: " + format, *args)

    return Handler
