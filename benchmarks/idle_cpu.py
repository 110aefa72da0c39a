"""How much CPU the idle embedded default uses: ``quanttrap serve`` with no config, no traffic.

Run: ``.venv/bin/python benchmarks/idle_cpu.py --minutes 5`` (numbers in docs/reliability.md).

Method: start ``quanttrap serve`` (the embedded default: the probe model in-process at three
precisions, canaries on), wait until ``/readyz`` answers 200 and the first canary rounds have
run (``--warmup``: model loading and the first compilation are start-up, not idle cost), then
read the process's CPU time (user + system, every thread, from ``/proc/<pid>/stat``) every
``--every`` seconds for ``--minutes`` minutes without sending a request. Prints each
interval's cores and the average over the whole run: CPU seconds / wall seconds (1.0 = one
core busy). ``--env KEY=VALUE`` passes settings, e.g. ``QUANTTRAP_SCORING__CANARY__ENABLED=false``
for the baseline without canaries, or ``QUANTTRAP_SCORING__CANARY__CPU_BUDGET=0.5``.

Caveats: Linux only (``/proc``); the evaluation log goes to a temporary directory; on a
machine shared with other work the CPU time is still the proxy's own, but a round's wall time
(and so the canary rate a budget allows) depends on how busy the machine is.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"quanttrap serve exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"not ready after {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds after ready")
    parser.add_argument("--every", type=float, default=30.0, help="seconds per interval")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.update(kv.split("=", 1) for kv in args.env)
        exe = Path(sys.executable).with_name("quanttrap")
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "quanttrap.cli"]
        log = Path(tmp) / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*command, "serve", "--port", str(port)], cwd=tmp, env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                _wait_ready(f"http://127.0.0.1:{port}", proc, timeout=600)
                print(f"ready; warm-up {args.warmup:g} s", flush=True)
                time.sleep(args.warmup)
                start_cpu, start = cpu_seconds(proc.pid), time.monotonic()
                last_cpu, last = start_cpu, start
                end = start + args.minutes * 60
                while time.monotonic() < end:
                    time.sleep(min(args.every, max(0.0, end - time.monotonic())))
                    cpu, now = cpu_seconds(proc.pid), time.monotonic()
                    print(f"  {now - start:6.0f} s: {(cpu - last_cpu) / (now - last):.4f} cores",
                          flush=True)  # fmt: skip
                    last_cpu, last = cpu, now
                total = (last_cpu - start_cpu) / (last - start)
                settings = " ".join(args.env) or "(none)"
                print(f"idle CPU over {(last - start) / 60:.1f} min: {total:.4f} cores "
                      f"({100 * total:.2f}% of a core); env: {settings}")  # fmt: skip
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


if __name__ == "__main__":
    main()
