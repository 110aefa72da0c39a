"""From a finished request to live evidence: measurements, and a verdict for evaluation traffic.

Evaluation traffic carries its expected answer: client-tagged requests (header
``X-Quanttrap-Expected`` or ``metadata.expected_answer``), the proxy's own canaries, and
shadow copies of a tagged request (graded against the primary's reference). The grader is
the dataset's (``X-Quanttrap-Dataset`` / ``metadata.dataset``); with no dataset named,
:data:`DEFAULT_DATASET` (GSM8K-style numeric matching: the ``#### n`` answer, else the last
number, compared as numbers). A bare expected answer such as ``"18"`` is accepted for GSM8K
as if it were the reference's final line ``#### 18``.

A request that failed is not graded (a failure is not a wrong answer; it is counted as a
failure), and neither is one that answered with tool calls: an agent hop that calls a tool has
not given its task's final answer yet, so grading its (empty) text would count a wrong answer
that was never given; shadow agreement compares such answers as tool calls instead. A
reference that cannot be read, or an unknown dataset, is reported as ``grading_error`` and
never counted as wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from core.records import RequestRecord, Role
from scoring.graders import GRADERS, GradeResult, get_grader
from scoring.windows import Observation, batch_bucket

__all__ = [
    "DEFAULT_DATASET",
    "Evaluation",
    "Processed",
    "generation_sample",
    "grade_answer",
    "process_record",
    "prompt_sha256",
]

DEFAULT_DATASET = "gsm8k"
_FINAL_MARKER = "####"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One graded evaluation request, as the evaluation log stores it.

    ``prompt`` and ``completion`` are set only when content capture is on; ``prompt_sha256``
    identifies the question either way, ``item_id`` names a canary's dataset item. The
    measurements (``gen_tokens`` ... ``energy_method``) are kept so that a restart can put
    the request's evidence back into the live windows.
    """

    at: float
    request_id: str
    model: str
    variant: str
    bits: int
    role: str
    dataset: str
    bucket: str
    batch_size: int | None
    correct: bool
    extracted: str | None
    expected: str
    method: str
    depth: int | None = None
    pair_key: str | None = None
    prompt_sha256: str | None = None
    prompt: str | None = None
    completion: str | None = None
    item_id: str | None = None
    gen_tokens: int | None = None
    gen_s: float | None = None
    completion_tokens: int | None = None
    energy_j: float | None = None
    energy_method: str = "none"

    def observation(self) -> Observation:
        """The window evidence this evaluation stands for (used when reloading the log)."""
        return Observation(
            at=self.at,
            model=self.model,
            variant=self.variant,
            role=_role(self.role),
            bucket=self.bucket,
            ok=True,
            gen_tokens=self.gen_tokens,
            gen_s=self.gen_s,
            completion_tokens=self.completion_tokens,
            energy_j=self.energy_j,
            energy_method=self.energy_method,
            dataset=self.dataset,
            correct=self.correct,
            pair_key=self.pair_key,
        )


@dataclass(frozen=True, slots=True)
class Processed:
    """A record's evidence, its verdict if it was evaluation traffic, or why grading failed."""

    observation: Observation
    evaluation: Evaluation | None = None
    grading_error: str | None = None


def grade_answer(completion: str, expected: str, dataset: str | None) -> GradeResult:
    """Grade ``completion`` with the grader of ``dataset`` (default :data:`DEFAULT_DATASET`).

    Raises ValueError for an unknown dataset or an unreadable reference.
    """
    name = dataset or DEFAULT_DATASET
    grader = get_grader(name)
    reference = expected.strip()
    if name == "gsm8k" and _FINAL_MARKER not in reference:
        reference = f"{_FINAL_MARKER} {reference}"
    return grader.grade(completion, reference)


def generation_sample(record: RequestRecord) -> tuple[int, float] | None:
    """(generated tokens, generation seconds) as defined in :mod:`scoring.windows`."""
    n = record.completion_tokens
    if not record.ok or not n:
        return None
    if record.stream:
        ttft = record.time_to_first_token_s
        if ttft is None or n < 2 or record.duration_s - ttft <= 0:
            return None
        return n - 1, record.duration_s - ttft
    if record.duration_s <= 0:
        return None
    return n, record.duration_s


def prompt_sha256(prompt: str) -> str | None:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest() if prompt else None


def process_record(
    record: RequestRecord,
    *,
    pair_key: str | None = None,
    item_id: str | None = None,
    capture_content: bool = False,
) -> Processed:
    """Measure ``record`` and, if it carries an expected answer, succeeded and answered
    without tool calls, grade it."""
    at = record.started_at + record.duration_s
    bucket = batch_bucket(record.batch_size)
    sample = generation_sample(record)
    gen_tokens, gen_s = sample if sample is not None else (None, None)
    energy_method = record.energy_method if record.energy_j is not None else "none"
    key = pair_key if pair_key is not None else record.pair_id
    correct: bool | None = None
    evaluation = None
    error = None
    dataset = record.dataset or DEFAULT_DATASET
    if record.expected_answer is not None and record.ok and not record.tool_calls:
        try:
            result = grade_answer(record.text, record.expected_answer, dataset)
            depth = record.reference_depth
            if depth is None:  # not tagged: what the reference itself shows, if anything
                depth = GRADERS[dataset].depth(record.expected_answer)
        except ValueError as exc:
            error = str(exc)
        else:
            correct = result.correct
            evaluation = Evaluation(
                at=at,
                request_id=record.request_id,
                model=record.model,
                variant=record.variant,
                bits=record.bits,
                role=record.role,
                dataset=dataset,
                bucket=bucket,
                batch_size=record.batch_size,
                correct=result.correct,
                extracted=result.extracted,
                expected=result.expected,
                method=result.method,
                depth=depth,
                pair_key=key,
                prompt_sha256=prompt_sha256(record.prompt),
                prompt=record.prompt if capture_content and record.prompt else None,
                completion=record.text if capture_content else None,
                item_id=item_id,
                gen_tokens=gen_tokens,
                gen_s=gen_s,
                completion_tokens=record.completion_tokens,
                energy_j=record.energy_j,
                energy_method=energy_method,
            )
    observation = Observation(
        at=at,
        model=record.model,
        variant=record.variant,
        role=record.role,
        bucket=bucket,
        ok=record.ok,
        gen_tokens=gen_tokens,
        gen_s=gen_s,
        completion_tokens=record.completion_tokens,
        energy_j=record.energy_j,
        energy_method=energy_method,
        dataset=dataset if correct is not None else None,
        correct=correct,
        pair_key=key,
    )
    return Processed(observation, evaluation, error)


def _role(value: str) -> Role:
    if value == "shadow":
        return "shadow"
    if value == "canary":
        return "canary"
    return "primary"
