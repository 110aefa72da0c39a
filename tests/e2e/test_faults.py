"""End to end: faults injected around ``quanttrap serve``, and no leak after each.

A real proxy process fronts fake upstream processes (TEST DOUBLES of an OpenAI-compatible
server, faults set through their ``/_double/config``), a port where nothing listens, a host
name that does not resolve (``.invalid`` is reserved, RFC 2606) and a socket that accepts
connections and never answers. Each fault is sent ``ROUNDS`` times, plain and streaming; the
client must get the right answer (failover where configured) or an OpenAI-shaped error
quickly, and afterwards the proxy's open file descriptors (``/proc/<pid>/fd``) must not have
grown with the number of rounds and its ``quanttrap_requests_in_flight`` gauges must be back
at zero. Faults already covered elsewhere: ``tests/e2e/test_openai_client.py`` (failover on
refused / timeout / 503, a broken stream, one client hang-up),
``tests/e2e/test_kill_keeps_evaluations.py`` (``kill -9``), ``tests/e2e/test_store_faults.py``
(the evaluation store's disk full).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.doubles.processes import Process, free_port, start_proxy, start_upstream

pytestmark = pytest.mark.slow

ROUNDS = 15
SLOW_ROUNDS = 4
"""For faults that cost a 1-s timeout each (still more requests than FD_SLACK)."""
FD_SLACK = 4
"""Descriptors a burst may leave open for good: keep-alive connections to upstreams."""
MESSAGES = [{"role": "user", "content": "What is two plus two?"}]


def _variant(name: str, bits: int, url: str, **backend: Any) -> dict[str, Any]:
    return {"name": name, "bits": bits,
            "backend": {"kind": "openai", "base_url": url + "/v1", **backend}}  # fmt: skip


def _model(name: str, *variants: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "anchor": variants[0]["name"], "variants": list(variants),
            "routing": {"primary": variants[0]["name"]}, **extra}  # fmt: skip


class Stack:
    def __init__(self, proxy: Process, ups: dict[str, Process]) -> None:
        self.proxy, self.ups = proxy, ups
        self.http = httpx.Client(base_url=proxy.url, timeout=20)

    def configure(self, upstream: str, **config: Any) -> None:
        httpx.post(self.ups[upstream].url + "/_double/reset").raise_for_status()
        httpx.post(self.ups[upstream].url + "/_double/config", json=config).raise_for_status()

    def chat(self, model: str, *, stream: bool = False) -> tuple[httpx.Response, float]:
        body: dict[str, Any] = {"model": model, "messages": MESSAGES, "stream": stream}
        t0 = time.monotonic()
        resp = self.http.post("/v1/chat/completions", json=body)
        return resp, time.monotonic() - t0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proxy.proc.pid}/fd"))

    def in_flight(self) -> dict[str, float]:
        text = self.http.get("/metrics").text
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("quanttrap_requests_in_flight")
        }

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def settled(self, fds_before: int, timeout: float = 10.0) -> None:
        """Wait until the in-flight gauges are zero and the descriptors are back near
        ``fds_before``; fail with what was left if they never are."""
        deadline = time.monotonic() + timeout
        while True:
            gauges = {k: v for k, v in self.in_flight().items() if v != 0}
            fds = self.fds()
            if not gauges and fds <= fds_before + FD_SLACK:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"leak: in flight {gauges}, descriptors {fds_before} -> {fds}")
            time.sleep(0.2)


class _Silent:
    """A listening socket that never accepts: the kernel completes each TCP handshake, and
    the connection then waits forever for an answer (a wedged server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("faults")
    ups: dict[str, Process] = {}
    silent = _Silent()
    try:
        for name in ("good", "fault", "shadow"):
            ups[name] = start_upstream(name, logs, reply_words=6)
        good, fault = ups["good"].url, ups["fault"].url
        closed = f"http://127.0.0.1:{free_port()}"
        fast = {"read_timeout_s": 1.0, "connect_timeout_s": 1.0}
        models = [
            _model("refused", _variant("a", 16, closed), _variant("b", 4, good)),
            _model("dns", _variant("a", 16, "http://no-such-host.invalid:8000", **fast),
                   _variant("b", 4, good)),
            _model("silent", _variant("a", 16, silent.url, **fast), _variant("b", 4, good)),
            _model("silent-alone", _variant("a", 16, silent.url, **fast)),
            _model("faulty", _variant("a", 16, fault, **fast), _variant("b", 4, good)),
            _model("faulty-alone", _variant("a", 16, fault, **fast)),
            _model("mirror", _variant("a", 16, good), _variant("s", 4, ups["shadow"].url),
                   shadow={"variants": ["s"], "sample_rate": 1.0}),
        ]  # fmt: skip
        config = logs / "quanttrap.yaml"
        config.write_text(json.dumps({"models": models, "scoring": {"enabled": False}}))
        proxy = start_proxy(config, logs)
        ups["proxy"] = proxy
        stack = Stack(proxy, ups)
        yield stack
        stack.http.close()
    finally:
        for proc in ups.values():
            proc.stop()
        silent.sock.close()


def _is_openai_error(resp: httpx.Response) -> dict[str, Any]:
    error = resp.json()["error"]
    assert isinstance(error["message"], str) and isinstance(error["type"], str), error
    assert "param" in error and "code" in error, error
    return error  # type: ignore[no-any-return]


def _events(resp: httpx.Response) -> list[str]:
    return [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]


def _streamed_text(resp: httpx.Response) -> str:
    pieces = [json.loads(e) for e in _events(resp) if e != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in pieces if c["choices"])


def _answered_by(resp: httpx.Response, upstream: str, stream: bool) -> None:
    assert resp.status_code == 200, resp.text
    if stream:
        assert _events(resp)[-1] == "[DONE]", resp.text
        assert _streamed_text(resp).startswith(f"Hello from {upstream}"), resp.text
    else:
        assert resp.json()["choices"][0]["message"]["content"].startswith(f"Hello from {upstream}")


def _burst(
    stack: Stack,
    model: str,
    check: Any,
    *,
    rounds: int = ROUNDS,
    modes: tuple[bool, ...] = (False, True),
) -> None:
    """One warm-up round (pools fill), then ``rounds`` rounds in each of ``modes`` (plain,
    streaming); then the proxy must have settled."""
    for stream in modes:
        check(*stack.chat(model, stream=stream), stream)
    before = stack.fds()
    for _ in range(rounds):
        for stream in modes:
            check(*stack.chat(model, stream=stream), stream)
    stack.settled(before)


@pytest.mark.parametrize("model", ["refused", "dns", "silent"])
def test_an_unreachable_or_wedged_primary_fails_over(stack: Stack, model: str) -> None:
    def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
        _answered_by(resp, "good", stream)
        assert resp.headers["x-quanttrap-variant"] == "b"
        assert elapsed < 5  # the read/connect timeout is 1 s

    _burst(stack, model, check, rounds=SLOW_ROUNDS if model == "silent" else ROUNDS)


def test_a_wedged_upstream_without_failover_is_a_quick_openai_error(stack: Stack) -> None:
    def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
        assert resp.status_code in (502, 504), resp.text
        _is_openai_error(resp)
        assert elapsed < 5

    _burst(stack, "silent-alone", check, rounds=SLOW_ROUNDS)


@pytest.mark.parametrize(
    ("fault", "fails_over"),
    [
        ({"status": 500}, True),
        ({"status": 503}, True),
        ({"latency_ms": 3000}, True),  # past the 1-s read timeout
        ({"latency_ms": 300}, False),  # a slow first byte within it: answered, only later
    ],
    ids=["500", "503", "read-timeout", "slow-first-byte"],
)
def test_upstream_faults_with_failover(
    stack: Stack, fault: dict[str, Any], fails_over: bool | None
) -> None:
    stack.configure("fault", **fault)

    def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
        if fails_over:
            _answered_by(resp, "good", stream)
            assert elapsed < 5
        else:
            _answered_by(resp, "fault", stream)
            assert elapsed >= 0.3

    try:
        _burst(stack, "faulty", check, rounds=ROUNDS if "status" in fault else SLOW_ROUNDS)
    finally:
        stack.configure("fault")


@pytest.mark.parametrize(
    ("model", "stream"),
    [
        pytest.param("faulty", False),
        pytest.param("faulty", True),
        pytest.param("faulty-alone", False),
        pytest.param("faulty-alone", True),
    ],
    ids=["failover-plain", "failover-stream", "alone-plain", "alone-stream"],
)
def test_malformed_upstream_json_never_reaches_the_client_as_a_success(
    stack: Stack, model: str, stream: bool
) -> None:
    stack.configure("fault", malformed=True)

    def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
        assert elapsed < 5
        _check_malformed(resp, stream)

    try:
        _burst(stack, model, check, modes=(stream,))
    finally:
        stack.configure("fault")


def _check_malformed(resp: httpx.Response, stream: bool) -> None:
    """A 200 whose JSON is broken: never relayed as a success the client cannot parse."""
    if resp.status_code == 200 and not stream:
        resp.json()  # whatever came back parses
        _answered_by(resp, "good", stream)
    elif resp.status_code == 200:
        events = _events(resp)
        for event in events:
            if event != "[DONE]":
                json.loads(event)  # every event the client gets parses
        assert any("error" in json.loads(e) for e in events if e != "[DONE]") or (
            _streamed_text(resp).startswith("Hello from good")
        ), resp.text
    else:
        assert resp.status_code in (502, 504), resp.text
        _is_openai_error(resp)


@pytest.mark.parametrize("fault", [{"status": 500}, {"latency_ms": 3000}], ids=["500", "timeout"])
def test_upstream_faults_without_failover_are_openai_errors(
    stack: Stack, fault: dict[str, Any]
) -> None:
    stack.configure("fault", **fault)

    def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
        assert elapsed < 5
        assert resp.status_code in (502, 504), resp.text
        _is_openai_error(resp)

    try:
        _burst(stack, "faulty-alone", check, rounds=ROUNDS if "status" in fault else SLOW_ROUNDS)
    finally:
        stack.configure("fault")


def test_a_stream_cut_midway_ends_with_an_error_event_and_no_leak(stack: Stack) -> None:
    stack.configure("fault", break_after_chunks=2)

    def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
        assert elapsed < 5
        if not stream:  # a plain request is not cut: the double cuts only streams
            _answered_by(resp, "fault", stream)
            return
        assert resp.status_code == 200
        events = _events(resp)
        assert "[DONE]" not in events  # never a clean end for a cut stream
        assert "error" in json.loads(events[-1]), resp.text

    try:
        _burst(stack, "faulty", check)
    finally:
        stack.configure("fault")


@pytest.mark.parametrize("fault", [{"status": 500}, {"latency_ms": 4000}], ids=["fails", "hangs"])
def test_a_failing_or_hanging_shadow_never_delays_the_primary(
    stack: Stack, fault: dict[str, Any]
) -> None:
    stack.configure("shadow", **fault)
    stack.chat("refused")  # warm the path to the good upstream
    try:
        times = []

        def check(resp: httpx.Response, elapsed: float, stream: bool) -> None:
            _answered_by(resp, "good", stream)
            assert resp.headers["x-quanttrap-variant"] == "a"
            times.append(elapsed)

        for stream in (False, True):
            check(*stack.chat("mirror", stream=stream), stream)
        before = stack.fds()
        for _ in range(ROUNDS):
            for stream in (False, True):
                check(*stack.chat("mirror", stream=stream), stream)
        times.sort()
        assert times[len(times) // 2] < 0.5 and times[-1] < 2.0, times  # shadow: 500 or 4 s
        mirrored = len(httpx.get(stack.ups["shadow"].url + "/_double/requests").json())
        assert mirrored > 0  # the copies were sent
        if "status" in fault:
            stack.settled(before)
    finally:
        stack.configure("shadow")
    if "latency_ms" in fault:
        # Hanging copies hold at most max_concurrency slots (8), then are dropped; once the
        # double answers nothing stays behind.
        stack.settled(before + 8, timeout=20)


def test_clients_hanging_up_mid_stream_leave_nothing_behind(stack: Stack) -> None:
    stack.configure("fault", chunk_delay_ms=100, reply_words=50)
    try:
        before = None
        for i in range(ROUNDS + 1):
            body = {"model": "faulty-alone", "messages": MESSAGES, "stream": True}
            with stack.http.stream("POST", "/v1/chat/completions", json=body) as resp:
                assert resp.status_code == 200
                lines = resp.iter_lines()
                for _ in range(3):
                    next(lines)
            # the client hung up after three lines of a 5-second answer
            if i == 0:
                before = stack.fds()
        assert before is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = httpx.get(stack.ups["fault"].url + "/_double/stats").json()
            if stats["aborted_streams"] >= ROUNDS + 1:
                break
            time.sleep(0.1)
        assert stats["aborted_streams"] == ROUNDS + 1  # every upstream stream was closed too
        stack.settled(before)
    finally:
        stack.configure("fault")
