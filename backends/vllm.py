"""A vLLM server that quanttrap launches, waits for, proxies to and stops: one per variant.

:class:`VllmLauncher` owns the child process. The command line is ``vllm serve MODEL --host
--port --dtype [--quantization] --served-model-name [--tensor-parallel-size] EXTRA...``, with
``extra_args`` last so they can override anything quanttrap sets; ``CUDA_VISIBLE_DEVICES`` comes
from ``gpus`` and ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (unless already set) makes those indices
NVML's, which the energy meter uses. The child runs in its own session and process group, so a
stop reaches vLLM's worker processes too: SIGTERM to the group, ``stop_timeout_s`` of grace,
then SIGKILL. Its stdout and stderr are drained continuously (a full pipe would stall vLLM),
logged at debug level and the last lines kept for error messages.

Readiness: ``GET /health`` polled with a growing delay until it answers 200, bounded by
``startup_timeout_s``; if the process exits first, the error carries the tail of its output.

:class:`VllmBackend` then serves through an OpenAI HTTP backend pointed at the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import httpx

from backends.base import (
    Backend,
    BackendConnectError,
    BackendError,
    BackendRequest,
    BackendResponse,
    MemoryReport,
)
from backends.config import OpenAIBackendConfig, VllmBackendConfig

if TYPE_CHECKING:
    from asyncio.subprocess import Process

__all__ = ["UpstreamFactory", "VllmBackend", "VllmLaunchError", "VllmLauncher"]

logger = logging.getLogger(__name__)

UpstreamFactory = Callable[[str, OpenAIBackendConfig], Backend]
"""Builds the HTTP backend that talks to the launched server: ``(variant, config)``."""

_TAIL_LINES = 60
_POLL_FIRST_S = 0.1
_POLL_MAX_S = 2.0


class VllmLaunchError(BackendError):
    """The server could not be started, or did not become healthy in time."""


class VllmLauncher:
    """Starts and stops one ``vllm serve`` child process."""

    def __init__(self, name: str, config: VllmBackendConfig) -> None:
        self.name = name
        self.config = config
        self._process: Process | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)

    @property
    def served_model_name(self) -> str:
        return self.config.served_model_name or self.name

    @property
    def base_url(self) -> str:
        """Where clients reach the server (a wildcard bind is reached on loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
            self.config.host, self.config.host
        )
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.config.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """``None`` while running (or never started); negative: killed by that signal."""
        return self._process.returncode if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    def output_tail(self) -> str:
        """The last lines the server wrote (stdout and stderr, interleaved)."""
        return "\n".join(self._tail)

    def command(self) -> list[str]:
        cfg = self.config
        argv = [cfg.executable, "serve", cfg.model, "--host", cfg.host, "--port", str(cfg.port)]
        argv += ["--dtype", cfg.dtype]
        if cfg.quantization:
            argv += ["--quantization", cfg.quantization]
        argv += ["--served-model-name", self.served_model_name]
        if len(cfg.gpus) > 1:
            argv += ["--tensor-parallel-size", str(len(cfg.gpus))]
        return [*argv, *cfg.extra_args]

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        if self.config.gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(gpu) for gpu in self.config.gpus)
            env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        return env

    async def start(self) -> None:
        """Launch and wait until healthy; raises :class:`VllmLaunchError` (process stopped)."""
        if self.running:
            return
        argv = self.command()
        self._tail.clear()
        try:
            self._process = await asyncio.create_subprocess_exec(
                *argv,
                env=self.environment(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise VllmLaunchError(
                f"variant {self.name!r}: cannot run {argv[0]!r} ({exc}); vLLM is an optional "
                "extra: pip install 'quanttrap[vllm]' on a machine with a supported GPU"
            ) from exc
        logger.info("variant %s: started %s (pid %d)", self.name, " ".join(argv), self.pid)
        self._drain_task = asyncio.create_task(self._drain(self._process))
        try:
            await self._wait_healthy(self._process)
        except BaseException:
            await self.stop()
            raise

    async def _drain(self, process: Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            logger.debug("vllm[%s] %s", self.name, line)

    async def _wait_healthy(self, process: Process) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.startup_timeout_s
        delay = _POLL_FIRST_S
        exited = asyncio.ensure_future(process.wait())
        try:
            async with httpx.AsyncClient(timeout=httpx.Timeout(2.0)) as client:
                while True:
                    if exited.done():
                        await self._finish_drain()
                        raise VllmLaunchError(
                            f"variant {self.name!r}: vllm serve exited with status "
                            f"{process.returncode} before it was healthy; last output:\n"
                            f"{self.output_tail()}"
                        )
                    if await self._healthy(client):
                        logger.info("variant %s: vLLM healthy at %s", self.name, self.base_url)
                        return
                    left = deadline - loop.time()
                    if left <= 0:
                        raise VllmLaunchError(
                            f"variant {self.name!r}: vllm serve was not healthy within "
                            f"startup_timeout_s={self.config.startup_timeout_s:g}; last "
                            f"output:\n{self.output_tail()}"
                        )
                    await asyncio.wait({exited}, timeout=min(delay, left))
                    delay = min(delay * 1.5, _POLL_MAX_S)
        finally:
            if not exited.done():
                exited.cancel()

    async def _healthy(self, client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get(self.base_url + "/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def _finish_drain(self, timeout_s: float = 2.0) -> None:
        """Let the reader take the last lines; a child still holding the pipe is not waited."""
        task = self._drain_task
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)

    async def stop(self) -> None:
        """SIGTERM the process group, wait ``stop_timeout_s``, then SIGKILL it."""
        process = self._process
        if process is not None and process.returncode is None:
            self._signal_group(process, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self.config.stop_timeout_s)
            except TimeoutError:
                logger.warning(
                    "variant %s: vLLM ignored SIGTERM for %gs; killing it",
                    self.name,
                    self.config.stop_timeout_s,
                )
                self._signal_group(process, signal.SIGKILL)
                await process.wait()
        await self._finish_drain(0.5)
        task, self._drain_task = self._drain_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @staticmethod
    def _signal_group(process: Process, sig: signal.Signals) -> None:
        # start_new_session made the child the leader of its own group: pgid == pid.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def _default_upstream(name: str, config: OpenAIBackendConfig) -> Backend:
    from backends.openai_http import OpenAIHTTPBackend

    return OpenAIHTTPBackend(name, config)


class VllmBackend:
    """A variant served by a vLLM child process, reached over OpenAI HTTP."""

    reports_tokens = False

    def __init__(
        self,
        name: str,
        config: VllmBackendConfig,
        *,
        upstream_factory: UpstreamFactory | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.launcher = VllmLauncher(name, config)
        self._factory = upstream_factory or _default_upstream
        self._upstream: Backend | None = None

    @classmethod
    def from_config(cls, name: str, config: VllmBackendConfig) -> VllmBackend:
        return cls(name, config)

    def upstream_config(self) -> OpenAIBackendConfig:
        return OpenAIBackendConfig(
            kind="openai",
            base_url=self.launcher.base_url + "/v1",
            model=self.launcher.served_model_name,
            read_timeout_s=self.config.read_timeout_s,
        )

    async def start(self) -> None:
        await self.launcher.start()
        upstream = self._factory(self.name, self.upstream_config())
        try:
            await upstream.start()
        except BaseException:
            await self.launcher.stop()
            raise
        self._upstream = upstream

    def memory(self) -> MemoryReport | None:
        return None  # vLLM reserves its KV cache up front; declare it in scoring.memory_gb

    async def ready(self) -> bool:
        upstream = self._upstream
        return upstream is not None and self.launcher.running and await upstream.ready()

    async def send(self, request: BackendRequest) -> BackendResponse:
        upstream = self._upstream
        if upstream is None or not self.launcher.running:
            raise BackendConnectError(
                f"variant {self.name!r}: the vLLM server is not running "
                f"(exit status {self.launcher.returncode})"
            )
        return await upstream.send(request)

    async def aclose(self) -> None:
        upstream, self._upstream = self._upstream, None
        try:
            if upstream is not None:
                await upstream.aclose()
        finally:
            await self.launcher.stop()
