"""TEST DOUBLE: stands in for ``vllm serve`` in the launcher's lifecycle tests. Not vLLM.

Parses the part of vLLM's command line that quanttrap writes (``serve MODEL --host --port
--served-model-name ...``), then serves with the standard library only, so it starts in a
fraction of a second:

    GET  /health               200 once "started" (503 before), like vLLM's health route
    GET  /v1/models            the served model name
    POST /v1/chat/completions  one canned, non-streaming chat completion

Its behaviour comes from environment variables (the launcher passes its environment on):

    FAKE_VLLM_MODE        healthy (default) | crash | never_healthy | ignore_sigterm
    FAKE_VLLM_STARTUP_S   seconds of 503 from /health before it turns healthy
    FAKE_VLLM_RECORD      a file to which it writes its argv, CUDA env and pid as JSON

``crash`` writes a CUDA-style error to stderr and exits with status 3, as a vLLM that runs out
of memory while loading does.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake-vllm")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", default=None)
    args, _unknown = parser.parse_known_args(argv)
    return args


def _handler(served: str, healthy_at: float, mode: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            sys.stdout.write("INFO fake-vllm " + (format % args) + "\n")

        def _send(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/health":
                ok = mode != "never_healthy" and time.monotonic() >= healthy_at
                self._send(200 if ok else 503, {})
            elif self.path == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": served, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length) or b"{}")
            self._send(
                200,
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"fake {served}"},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                },
            )

    return Handler


def main() -> None:
    args = _parse(sys.argv[1:])
    mode = os.environ.get("FAKE_VLLM_MODE", "healthy")
    record = os.environ.get("FAKE_VLLM_RECORD")
    if record:
        with open(record, "w") as out:
            json.dump(
                {
                    "argv": sys.argv[1:],
                    "pid": os.getpid(),
                    "pgid": os.getpgid(0),
                    "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER"),
                },
                out,
            )
    if mode == "crash":
        print("INFO loading weights", flush=True)
        print("torch.OutOfMemoryError: CUDA out of memory (fake)", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "ignore_sigterm":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    healthy_at = time.monotonic() + float(os.environ.get("FAKE_VLLM_STARTUP_S", "0"))
    served = args.served_model_name or args.model
    server = ThreadingHTTPServer((args.host, args.port), _handler(served, healthy_at, mode))
    print(f"INFO fake-vllm serving {served} on {args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
