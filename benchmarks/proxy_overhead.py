"""How much does the proxy cost? Side by side, in one run, against the same fast upstream:

* **direct**: the load generator calls the upstream itself (the floor);
* **nginx**: nginx as a reverse proxy in front of the same upstream (the reference for "next to
  nothing": ≈30–65 µs of CPU per request on these machines);
* **quanttrap**: ``quanttrap serve`` in front of the same upstream.

The upstream is nginx answering canned OpenAI responses (``return 200``), so the upstream's own
cost is tiny and the same for all three. The proxy under test runs as one process pinned to
CPU 0; the upstream and the load generator (wrk) share CPU 1. CPU time per request is the
proxy process's user+system time (``/proc/PID/stat``) divided by the requests served, so it does
not depend on whether the load generator saturates the proxy.

Measured:
  1. added median latency at concurrency 1 (wrk --latency, direct vs through the proxy);
  2. CPU µs per non-streaming request and requests/s at concurrency 64;
  3. CPU µs per streamed chunk (responses of 100 chunks; per-request cost subtracted), both
     for a burst (all chunks at once: nginx) and paced (a chunk every 2 ms, as a model decodes:
     the fake_upstream double), where every chunk costs its own read and write;
     The paced run also measures a bare Python byte relay (``benchmarks/bare_relay.py``: no
     HTTP, nothing measured), the floor that one read and one write per chunk cost here;
  4. time to first chunk with a streaming upstream that waits between chunks (the aiohttp
     fake_upstream test double): through the proxy vs direct, to show nothing is buffered.

Needs Debian's ``wrk`` and ``nginx-light`` (``apt-get install wrk nginx-light``).
Run: ``.venv/bin/python benchmarks/proxy_overhead.py [--duration 10] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.doubles.processes import free_port, quanttrap_command, start_upstream  # noqa: E402

CHUNKS = 100
PACED_WORDS = 100
BODY = json.dumps({"model": "demo", "messages": [{"role": "user", "content": "What is 2+2?"}]})
STREAM_BODY = json.dumps(
    {"model": "demo", "stream": True, "messages": [{"role": "user", "content": "What is 2+2?"}]}
)


def _completion() -> str:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1,
            "model": "demo",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "2 + 2 = 4. #### 4"},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 9, "total_tokens": 18},
        }
    )


def _stream() -> str:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return (
            "data: "
            + json.dumps(
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "demo",
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                    ],
                }
            )
            + "\n\n"
        )

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": f"tok{i} "}) for i in range(CHUNKS - 2)]
    parts.append(chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "demo",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": CHUNKS, "total_tokens": 109},
    }
    parts.append("data: " + json.dumps(usage) + "\n\n")
    parts.append("data: [DONE]\n\n")
    return "".join(parts)


def _two_free_ports() -> int:
    """A port p such that p and p + 1 are free (the canned upstream listens on both)."""
    while True:
        port = free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue


def _nginx_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _start_nginx(conf_dir: Path, name: str, cpu: int, server: str) -> subprocess.Popen[bytes]:
    """One nginx with one worker pinned to ``cpu``, serving ``server`` (a server block)."""
    home = conf_dir / name
    for sub in ("body", "proxy"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    conf = f"""
worker_processes 1;
worker_cpu_affinity {1 << cpu:02b};
pid {home}/nginx.pid;
error_log {home}/error.log warn;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {home}/body;
  proxy_temp_path {home}/proxy;
  {server}
}}
"""
    path = home / "nginx.conf"
    path.write_text(conf)
    return subprocess.Popen(
        ["nginx", "-c", str(path), "-p", str(home)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _canned_upstream(port: int, files: Path) -> str:
    (files / "stream.sse").write_text(_stream())
    files.chmod(0o755)  # nginx's workers drop root and must read the file
    return f"""upstream canned_files {{ server 127.0.0.1:{port + 1}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /v1/chat/completions {{
      default_type application/json;
      return 200 {_nginx_quote(_completion())};
    }}
    location = /s/v1/chat/completions {{
      # nginx serves static files to GET only: fetch the canned stream from a second server
      # with GET (a parameter is too short for 100 chunks), after reading the POST body.
      proxy_pass http://canned_files/stream.sse;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_method GET;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_buffering off;
    }}
    location = /v1/models {{ default_type application/json; return 200 '{{"data":[]}}'; }}
  }}
  server {{
    listen 127.0.0.1:{port + 1};
    location = /stream.sse {{ root {files}; default_type text/event-stream; }}
  }}"""


def _reverse_proxy(port: int, upstream_port: int) -> str:
    return f"""upstream canned {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://canned;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}"""


def _wait(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def _cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


def _nginx_worker_pids(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _wrk(url: str, body: str, connections: int, duration: float, workdir: Path) -> dict[str, Any]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = {json.dumps(body)}\n"
    )
    cmd = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        sample = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        raise RuntimeError(
            f"wrk saw errors against {url}:\n{out}\n"
            f"sample: {sample.status_code} {sample.text[:300]}"
        )
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 1.0, "ms": 1000.0, "s": 1e6}
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "p50_us": float(p50.group(1)) * scale[p50.group(2)] if p50 else None,
    }


def _measure(
    name: str,
    url: str,
    pids: list[int],
    args: argparse.Namespace,
    tmp: Path,
    stream_url: str | None,
) -> dict[str, Any]:
    print(f"[{name}] concurrency 1 latency ...", flush=True)
    c1 = _wrk(url, BODY, 1, args.duration / 2, tmp)
    print(f"[{name}] concurrency 64 ...", flush=True)
    before = _cpu_seconds(pids) if pids else 0.0
    c64 = _wrk(url, BODY, 64, args.duration, tmp)
    cpu_req = (_cpu_seconds(pids) - before) / c64["requests"] * 1e6 if pids else None
    result = {"p50_c1_us": c1["p50_us"], "rps_c64": c64["rps"], "cpu_us_per_request": cpu_req}
    if stream_url is not None:
        print(f"[{name}] streaming, {CHUNKS} chunks per response ...", flush=True)
        before = _cpu_seconds(pids) if pids else 0.0
        s = _wrk(stream_url, STREAM_BODY, 16, args.duration / 2, tmp)
        if pids and cpu_req is not None:
            per_stream = (_cpu_seconds(pids) - before) / s["requests"] * 1e6
            result["cpu_us_per_stream"] = per_stream
            result["cpu_us_per_chunk"] = (per_stream - cpu_req) / CHUNKS
    return result


def _ttft(url: str, n: int = 60, warmup: int = 5) -> float:
    """Median seconds to the first content chunk (the first ``warmup`` requests not counted)."""
    times = []
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            t0 = time.perf_counter()
            with client.stream(
                "POST", url, content=STREAM_BODY, headers={"Content-Type": "application/json"}
            ) as resp:
                for line in resp.iter_lines():  # read to the end; time the first content
                    if len(times) == i and line.startswith("data: {"):
                        choices = json.loads(line[6:]).get("choices") or [{}]
                        if choices[0].get("delta", {}).get("content"):
                            times.append(time.perf_counter() - t0)
    return statistics.median(times[warmup:])


def _start_quanttrap(tmp: Path, base_url: str, name: str) -> subprocess.Popen[bytes]:
    port = free_port()
    config = tmp / f"{name}.yaml"
    config.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "name": "demo",
                        "anchor": "bf16",
                        "routing": {"primary": "bf16"},
                        "variants": [
                            {
                                "name": "bf16",
                                "bits": 16,
                                "backend": {"kind": "openai", "base_url": base_url},
                            }
                        ],
                    }
                ]
            }
        )
    )
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            *quanttrap_command(),
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
        ],
        stdout=(tmp / f"{name}.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    proc.port = port  # type: ignore[attr-defined]
    _wait(f"http://127.0.0.1:{port}/healthz")
    return proc


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"benchmark needs {tool!r}: apt-get install wrk nginx-light util-linux")

    results: dict[str, Any] = {"chunks_per_stream": CHUNKS, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        up_port, ngx_port = _two_free_ports(), free_port()
        upstream_nginx = _start_nginx(tmp, "upstream", 1, _canned_upstream(up_port, tmp))
        proxy_nginx = _start_nginx(tmp, "proxy", 0, _reverse_proxy(ngx_port, up_port))
        upstream = f"http://127.0.0.1:{up_port}"
        _wait(upstream + "/v1/models")
        _wait(f"http://127.0.0.1:{ngx_port}/v1/models")
        qt = _start_quanttrap(tmp, upstream + "/v1", "quanttrap")
        qts = _start_quanttrap(tmp, upstream + "/s/v1", "quanttrap-stream")
        try:
            results["direct"] = _measure(
                "direct", upstream + "/v1/chat/completions", [], args, tmp, None
            )
            ngx = f"http://127.0.0.1:{ngx_port}"
            results["nginx"] = _measure(
                "nginx",
                ngx + "/v1/chat/completions",
                _nginx_worker_pids(proxy_nginx.pid),
                args,
                tmp,
                ngx + "/s/v1/chat/completions",
            )
            qt_url = f"http://127.0.0.1:{qt.port}/v1/chat/completions"  # type: ignore[attr-defined]
            qts_url = f"http://127.0.0.1:{qts.port}/v1/chat/completions"  # type: ignore[attr-defined]
            res = _measure("quanttrap", qt_url, [qt.pid], args, tmp, None)
            # Streaming through a second proxy process whose upstream path streams.
            print(f"[quanttrap] streaming, {CHUNKS} chunks per response ...", flush=True)
            before = _cpu_seconds([qts.pid])
            streamed = _wrk(qts_url, STREAM_BODY, 16, args.duration / 2, tmp)
            per_stream = (_cpu_seconds([qts.pid]) - before) / streamed["requests"] * 1e6
            res["cpu_us_per_stream"] = per_stream
            res["cpu_us_per_chunk"] = (per_stream - res["cpu_us_per_request"]) / CHUNKS
            results["quanttrap"] = res
        finally:
            for p in (qt, qts, proxy_nginx, upstream_nginx):
                p.terminate()
                p.wait(timeout=10)

        print("[quanttrap] paced streaming: 100 chunks, 2 ms apart, 16 at once ...", flush=True)
        paced = start_upstream("paced", tmp, reply_words=PACED_WORDS)
        httpx.post(
            paced.url + "/_double/config", json={"chunk_delay_ms": 2, "reply_words": PACED_WORDS}
        )
        subprocess.run(
            ["taskset", "-p", "-c", "1", str(paced.proc.pid)], check=True, capture_output=True
        )
        qtp = _start_quanttrap(tmp, paced.url + "/v1", "quanttrap-paced")
        ngx_paced_port = free_port()
        ngx_paced = _start_nginx(tmp, "proxy-paced", 0, _reverse_proxy(ngx_paced_port, paced.port))
        relay_port = free_port()
        relay = subprocess.Popen(
            [
                "taskset",
                "-c",
                "0",
                sys.executable,
                str(ROOT / "benchmarks" / "bare_relay.py"),
                str(relay_port),
                str(paced.port),
            ]
        )
        _wait(f"http://127.0.0.1:{ngx_paced_port}/v1/models")
        _wait(f"http://127.0.0.1:{relay_port}/v1/models")
        try:
            # The floor: a bare byte relay in Python (no HTTP parsing, nothing measured).
            before = _cpu_seconds([relay.pid])
            streamed = _wrk(
                f"http://127.0.0.1:{relay_port}/v1/chat/completions",
                STREAM_BODY,
                16,
                args.duration / 2,
                tmp,
            )
            results["bare_relay"] = {
                "paced_cpu_us_per_chunk": (_cpu_seconds([relay.pid]) - before)
                / streamed["requests"]
                * 1e6
                / (PACED_WORDS + 3)
            }
            # The reference first: nginx proxying the same paced upstream.
            workers = _nginx_worker_pids(ngx_paced.pid)
            before = _cpu_seconds(workers)
            streamed = _wrk(
                f"http://127.0.0.1:{ngx_paced_port}/v1/chat/completions",
                STREAM_BODY,
                16,
                args.duration / 2,
                tmp,
            )
            per_stream = (_cpu_seconds(workers) - before) / streamed["requests"] * 1e6
            results["nginx"]["paced_cpu_us_per_stream"] = per_stream
            results["nginx"]["paced_cpu_us_per_chunk"] = (
                per_stream - results["nginx"]["cpu_us_per_request"]
            ) / (PACED_WORDS + 3)
            before = _cpu_seconds([qtp.pid])
            streamed = _wrk(
                f"http://127.0.0.1:{qtp.port}/v1/chat/completions",  # type: ignore[attr-defined]
                STREAM_BODY,
                16,
                args.duration / 2,
                tmp,
            )
            per_stream = (_cpu_seconds([qtp.pid]) - before) / streamed["requests"] * 1e6
            # Events per stream: role chunk + one per word + the finish chunk + usage chunk.
            events = PACED_WORDS + 3
            results["quanttrap"]["paced_cpu_us_per_stream"] = per_stream
            results["quanttrap"]["paced_cpu_us_per_chunk"] = (
                per_stream - results["quanttrap"]["cpu_us_per_request"]
            ) / events
        finally:
            for proc in (qtp, ngx_paced, relay):
                proc.terminate()
                proc.wait(timeout=10)
            paced.stop()

        print("[ttft] streaming upstream with 20 ms between chunks ...", flush=True)
        slow = start_upstream("ttft", tmp, reply_words=5)
        httpx.post(slow.url + "/_double/config", json={"chunk_delay_ms": 20, "reply_words": 5})
        qtt = _start_quanttrap(tmp, slow.url + "/v1", "quanttrap-ttft")
        ngx_ttft_port = free_port()
        ngx_ttft = _start_nginx(tmp, "proxy-ttft", 0, _reverse_proxy(ngx_ttft_port, slow.port))
        _wait(f"http://127.0.0.1:{ngx_ttft_port}/v1/models")
        try:
            direct = _ttft(slow.url + "/v1/chat/completions")
            via_nginx = _ttft(f"http://127.0.0.1:{ngx_ttft_port}/v1/chat/completions")
            proxied = _ttft(f"http://127.0.0.1:{qtt.port}/v1/chat/completions")  # type: ignore[attr-defined]
        finally:
            for proc in (qtt, ngx_ttft):
                proc.terminate()
                proc.wait(timeout=10)
            slow.stop()
        results["ttft"] = {
            "direct_ms": direct * 1e3,
            "nginx_ms": via_nginx * 1e3,
            "proxied_ms": proxied * 1e3,
            "added_ms": (proxied - direct) * 1e3,
            "nginx_added_ms": (via_nginx - direct) * 1e3,
        }

    d, n, q = results["direct"], results["nginx"], results["quanttrap"]
    q["added_p50_c1_us"] = q["p50_c1_us"] - d["p50_c1_us"]
    n["added_p50_c1_us"] = n["p50_c1_us"] - d["p50_c1_us"]
    q["cpu_ratio_vs_nginx"] = q["cpu_us_per_request"] / n["cpu_us_per_request"]
    _report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _report(r: dict[str, Any]) -> None:
    d, n, q, t = r["direct"], r["nginx"], r["quanttrap"], r["ttft"]
    print()
    print(f"{'':34}{'direct':>12}{'nginx':>12}{'quanttrap':>12}   target")
    print(
        f"{'median latency, concurrency 1 (µs)':34}{d['p50_c1_us']:12.0f}{n['p50_c1_us']:12.0f}"
        f"{q['p50_c1_us']:12.0f}"
    )
    print(
        f"{'  added by the proxy (µs)':34}{'':12}{n['added_p50_c1_us']:12.0f}"
        f"{q['added_p50_c1_us']:12.0f}   < 500"
    )
    print(
        f"{'requests/s, concurrency 64':34}{d['rps_c64']:12.0f}{n['rps_c64']:12.0f}"
        f"{q['rps_c64']:12.0f}   >= 2000"
    )
    print(
        f"{'proxy CPU per request (µs)':34}{'':12}{n['cpu_us_per_request']:12.1f}"
        f"{q['cpu_us_per_request']:12.1f}   < 400"
    )
    print(
        f"{'  => requests/s per core (1e6/cpu)':34}{'':12}{1e6 / n['cpu_us_per_request']:12.0f}"
        f"{1e6 / q['cpu_us_per_request']:12.0f}"
    )
    print(
        f"{'proxy CPU per streamed chunk (µs)':34}{'':12}{n.get('cpu_us_per_chunk', 0):12.2f}"
        f"{q['cpu_us_per_chunk']:12.2f}   < 15"
    )
    print(
        f"{'  paced, one chunk per write (µs)':34}{'':12}{n['paced_cpu_us_per_chunk']:12.2f}"
        f"{q['paced_cpu_us_per_chunk']:12.2f}   < 15"
    )
    print(
        f"{'  floor: a bare Python byte relay':34}{'':24}"
        f"{r['bare_relay']['paced_cpu_us_per_chunk']:12.2f}   (no HTTP: one read + one write)"
    )
    print(f"{'quanttrap / nginx CPU per request':34}{'':24}{q['cpu_ratio_vs_nginx']:12.1f}x")
    print(
        f"time to first content chunk (upstream waits 20 ms between chunks): direct "
        f"{t['direct_ms']:.2f} ms, through nginx {t['nginx_ms']:.2f} ms (added "
        f"{t['nginx_added_ms']:.2f} ms), through quanttrap {t['proxied_ms']:.2f} ms (added "
        f"{t['added_ms']:.2f} ms; target < 1)"
    )


if __name__ == "__main__":
    sys.exit(main())
