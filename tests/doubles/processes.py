"""Starting real processes for end-to-end tests and benchmarks: upstream doubles, the proxy."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

__all__ = ["Process", "free_port", "start_proxy", "start_upstream"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """A child process serving HTTP on ``port``; stopped by :meth:`stop` (SIGTERM, then kill)."""

    def __init__(
        self,
        args: Sequence[str],
        port: int,
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(
            list(args),
            cwd=cwd or ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_http(self, path: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"process exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}{path} not up after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def start_upstream(name: str, log_dir: Path, *, reply_words: int = 8) -> Process:
    port = free_port()
    proc = Process(
        [
            sys.executable,
            "-m",
            "tests.doubles.fake_upstream",
            "--port",
            str(port),
            "--name",
            name,
            "--reply-words",
            str(reply_words),
        ],
        port,
        log_dir / f"upstream-{name}-{port}.log",
    )
    proc.wait_http("/health")
    return proc


def quanttrap_command() -> list[str]:
    """The installed console script when there is one (what users run), else the module."""
    exe = shutil.which("quanttrap", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "quanttrap.cli"]


def start_proxy(
    config: Path,
    log_dir: Path,
    *,
    env: dict[str, str] | None = None,
    extra: Sequence[str] = (),
    timeout: float = 60.0,
) -> Process:
    port = free_port()
    # Run in the test's folder: relative paths (the default evaluation log, ./quanttrap-data)
    # land beside the test's logs, never in the working tree.
    env = {"PYTHONPATH": str(ROOT), **(env or {})}
    proc = Process(
        [*quanttrap_command(), "serve", "--config", str(config), "--port", str(port), *extra],
        port,
        log_dir / f"proxy-{port}.log",
        env=env,
        cwd=log_dir,
    )
    proc.wait_http("/healthz", timeout=timeout)
    return proc
