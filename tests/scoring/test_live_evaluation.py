"""From records to evidence: which requests are graded, how, and what TPS means."""

from __future__ import annotations

from dataclasses import replace

import pytest

from core.records import RequestRecord
from scoring.evaluation import (
    DEFAULT_DATASET,
    generation_sample,
    grade_answer,
    process_record,
    prompt_sha256,
)

RECORD = RequestRecord(
    request_id="r1",
    model="m",
    variant="nf4",
    bits=4,
    role="primary",
    operation="chat",
    stream=True,
    status=200,
    started_at=1000.0,
    duration_s=2.0,
    time_to_first_token_s=0.5,
    completion_tokens=31,
    text="so the answer is 1,234.",
    batch_size=3,
    expected_answer="1234",
    prompt="What is 1000 + 234?",
)


def test_tagged_request_is_graded_with_numeric_matching_by_default() -> None:
    assert DEFAULT_DATASET == "gsm8k"
    p = process_record(RECORD)
    assert p.evaluation is not None and p.evaluation.correct
    assert p.evaluation.dataset == "gsm8k" and p.evaluation.method == "flexible-extract"
    assert p.observation.correct is True and p.observation.bucket == "2-3"
    wrong = process_record(replace(RECORD, text="#### 1235"))
    assert wrong.evaluation is not None and not wrong.evaluation.correct
    assert wrong.evaluation.extracted == "1235" and wrong.evaluation.expected == "1234"


def test_dataset_tag_picks_the_grader() -> None:
    mathqa = replace(RECORD, dataset="mathqa", expected_answer="c", text="The answer is (c).")
    p = process_record(mathqa)
    assert p.evaluation is not None and p.evaluation.correct and p.evaluation.method == "choice"
    multihop = replace(RECORD, dataset="multihop", expected_answer="42", text="x = 6 * 7 = 42")
    assert process_record(multihop).observation.correct is True


def test_bad_reference_or_unknown_dataset_is_an_error_not_a_wrong_answer() -> None:
    for bad in (replace(RECORD, dataset="nosuch"), replace(RECORD, expected_answer="twelve")):
        p = process_record(bad)
        assert p.evaluation is None and p.grading_error is not None
        assert p.observation.correct is None


def test_failed_or_untagged_requests_are_not_graded() -> None:
    failed = process_record(replace(RECORD, status=502, error_type="upstream_error"))
    assert failed.evaluation is None and failed.observation.correct is None
    assert not failed.observation.ok and failed.observation.gen_tokens is None
    plain = process_record(replace(RECORD, expected_answer=None, prompt=""))
    assert plain.evaluation is None and plain.grading_error is None


def test_tps_is_tokens_after_the_first_over_time_after_the_first_token() -> None:
    assert generation_sample(RECORD) == (30, pytest.approx(1.5))
    unstreamed = replace(RECORD, stream=False, time_to_first_token_s=None)
    assert generation_sample(unstreamed) == (31, pytest.approx(2.0))  # prefill included
    assert generation_sample(replace(RECORD, completion_tokens=1)) is None
    assert generation_sample(replace(RECORD, completion_tokens=None)) is None


def test_prompt_text_is_kept_only_with_content_capture() -> None:
    hidden = process_record(RECORD).evaluation
    shown = process_record(RECORD, capture_content=True).evaluation
    assert hidden is not None and shown is not None
    assert hidden.prompt is None and hidden.completion is None
    assert hidden.prompt_sha256 == prompt_sha256("What is 1000 + 234?") == shown.prompt_sha256
    assert shown.prompt == "What is 1000 + 234?" and shown.completion == RECORD.text


def test_energy_method_is_none_without_a_measurement() -> None:
    p = process_record(replace(RECORD, energy_j=None, energy_method="nvml_counter"))
    assert p.observation.energy_method == "none"
    q = process_record(replace(RECORD, energy_j=12.5, energy_method="hli"))
    assert (q.observation.energy_j, q.observation.energy_method) == (12.5, "hli")


def test_grade_answer_accepts_a_full_gsm8k_reference() -> None:
    assert grade_answer("#### 18", "Janet ... <<16-3-4=9>>9 ... #### 18", "gsm8k").correct
    with pytest.raises(ValueError):
        grade_answer("18", "18", "nosuch")
