"""Schema-driven fuzzing of a running proxy: schemathesis cases from its ``/openapi.json``.

Used by ``tests/e2e/test_fuzz_openapi.py`` (a bounded run in CI) and
``benchmarks/fuzz_api.py`` (the longer documented run). Not a test module itself.

Method: every operation of the served schema, in schemathesis's *positive* mode (bodies and
headers that the schema allows) and *negative* mode (bodies and headers that break it), drawn
by Hypothesis with a fixed seed, no shrinking and no example database (a run is a fixed-size
sample, not a search that stops at the first failure). Half the generated bodies get the
configured model name, so that requests also travel past model lookup to the upstream. With
``api_key`` set, each case is sent with the right key, a wrong one or none (drawn). Every
response is checked:

- no 5xx (``/readyz`` may say 503 only when an upstream is down, which a fuzz run avoids);
- no hang: a response within ``timeout`` seconds (the client's read timeout);
- every 4xx a JSON body in OpenAI's error shape (``{"error": {"message", "type", "param",
  "code"}}``), or Anthropic's (``{"type": "error", "error": {"type", "message"}}``) on
  ``/v1/messages``; 401 for a missing or wrong key (the proxy under test is expected to guard
  every route, i.e. run with ``server.protect_metrics`` on when keys are set).

Every drawn case is sent. (Earlier runs held back embeddings requests with huge
``dimensions``: the proxy forwarded any int32 value and one such answer took it out of
memory. It now refuses ``dimensions`` above 16,384 with a 400 and caps a non-streamed
answer at 64 MiB; ``test_fuzz_openapi.py`` keeps a test for each.)

Caveat: requests that the HTTP client refuses to send (a header value with a newline that
negative mode drew) are counted as ``unsendable``, not as requests.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.errors import UnsupportedSchema

__all__ = ["FuzzFailure", "FuzzReport", "error_shape_problem", "fuzz"]

_ANTHROPIC_ROUTES = ("/v1/messages",)


@dataclass(frozen=True)
class FuzzFailure:
    """One response that broke a rule (the body cut to 300 characters)."""

    operation: str
    mode: str
    status: int | None
    problem: str
    body: str
    request: str = ""
    """The request body sent (cut to 300 characters), to reproduce it."""


@dataclass
class FuzzReport:
    """What a fuzz run sent and what came back."""

    requests: int = 0
    unsendable: int = 0
    ungenerated: int = 0
    """Draws schemathesis could not make (a ``not`` it does not support, in negative mode)."""
    seconds: float = 0.0
    by_status: Counter[int] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    failures: list[FuzzFailure] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)

    @property
    def hangs(self) -> int:
        return sum(1 for f in self.failures if f.problem == "timeout")

    def summary(self) -> str:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(self.by_status.items()))
        return (
            f"{self.requests} requests in {self.seconds:.0f} s "
            f"({self.requests / max(self.seconds, 1e-9):.0f}/s), {self.unsendable} unsendable, "
            f"{self.ungenerated} not generated; "
            f"statuses {statuses}; 5xx {self.server_errors}, hangs {self.hangs}, "
            f"rule breaks {len(self.failures)}"
        )


def error_shape_problem(path: str, body: Any) -> str | None:
    """Why ``body`` is not the error shape that ``path``'s API defines, or None when it is."""
    if not isinstance(body, dict):
        return "error body is not a JSON object"
    error = body.get("error")
    if not isinstance(error, dict):
        return "no 'error' object"
    if path in _ANTHROPIC_ROUTES:
        if body.get("type") != "error":
            return "Anthropic error without type 'error'"
        if not isinstance(error.get("type"), str) or not isinstance(error.get("message"), str):
            return "Anthropic error without string type and message"
        return None
    if not isinstance(error.get("message"), str) or not isinstance(error.get("type"), str):
        return "OpenAI error without string message and type"
    if "param" not in error or "code" not in error:
        return "OpenAI error without 'param' and 'code'"
    return None


def _check(case: Any, response: requests.Response, keyed: bool) -> str | None:
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if status < 400:
        return None if keyed else "answered without the right key"
    try:
        body = response.json()
    except ValueError:
        return "error body is not JSON"
    problem = error_shape_problem(case.operation.path, body)
    if problem is None and not keyed and status != 401:
        problem = f"missing or wrong key answered {status}, not 401"
    return problem


@st.composite
def _generated(draw: st.DrawFn, cases: st.SearchStrategy[Any], report: FuzzReport) -> Any:
    """A case, or a rejected draw where schemathesis cannot build one (counted), so that one
    unsupported corner of a schema does not end the operation's run."""
    try:
        return draw(cases)
    except UnsupportedSchema:
        report.ungenerated += 1
        hypothesis.reject()


def fuzz(
    base_url: str,
    *,
    model: str,
    api_key: str | None = None,
    examples: int = 100,
    timeout: float = 15.0,
    seed: int = 0,
) -> FuzzReport:
    """Send ``examples`` cases per operation and generation mode to ``base_url``."""
    # The proxy builds its schema on first use: seconds on a busy machine.
    document = httpx.get(base_url + "/openapi.json", timeout=60).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    keys = [api_key, "wrong-" + api_key, None] if api_key else [None]
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = st.tuples(
                    _generated(operation.as_strategy(generation_mode=mode), report),
                    st.sampled_from(keys),
                    st.booleans(),
                )
                _run(session, strategy, operation, mode, report,
                     base_url=base_url, model=model, api_key=api_key, examples=examples,
                     timeout=timeout, seed=seed)  # fmt: skip
    report.seconds = time.monotonic() - started
    return report


def _run(
    session: requests.Session,
    strategy: st.SearchStrategy[tuple[Any, str | None, bool]],
    operation: Any,
    mode: GenerationMode,
    report: FuzzReport,
    *,
    base_url: str,
    model: str,
    api_key: str | None,
    examples: int,
    timeout: float,
    seed: int,
) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis.seed(seed)
    @hypothesis.settings(
        max_examples=examples,
        phases=[hypothesis.Phase.generate],
        deadline=None,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        derandomize=False,
    )
    @hypothesis.given(strategy)
    def send(drawn: tuple[Any, str | None, bool]) -> None:
        case, key, known_model = drawn
        if known_model and isinstance(case.body, dict) and "model" in case.body:
            case.body["model"] = model
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        try:
            response = case.call(base_url=base_url, session=session, headers=headers,
                                 timeout=timeout)  # fmt: skip
        except requests.Timeout:
            report.requests += 1
            report.failures.append(FuzzFailure(label, mode.value, None, "timeout", ""))
            return
        except (requests.exceptions.InvalidHeader, UnicodeEncodeError, ValueError):
            report.unsendable += 1
            return
        except requests.ConnectionError as exc:
            report.requests += 1
            problem = f"connection dropped without a response: {exc}"[:200]
            report.failures.append(FuzzFailure(label, mode.value, None, problem, ""))
            return
        report.requests += 1
        report.by_status[response.status_code] += 1
        report.by_operation[label] += 1
        keyed = api_key is None or key == api_key
        problem = _check(case, response, keyed)
        if problem is not None:
            sent = repr(case.body)[:300]
            report.failures.append(
                FuzzFailure(label, mode.value, response.status_code, problem,
                            response.text[:300], sent)
            )  # fmt: skip

    # Negative mode of an operation with no inputs: nothing can break its schema.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        send()
