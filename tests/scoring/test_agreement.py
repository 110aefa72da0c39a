"""Tool-call agreement by agent-hop position: per-hop cells, outcome labels, the hop trend."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from core.buckets import HOP_POSITION_BUCKETS, hop_position_bucket
from core.records import RequestRecord, ShadowPair, ToolCall
from scoring.agreement import FIRST_HOP, hop_trend, hop_views
from scoring.comparison import (
    AGREEMENT_REASONS,
    VERDICT_LABELS,
    PairComparison,
    compare_pair,
    verdict_label,
)
from scoring.config import ScoringConfig
from scoring.evaluation import process_record
from scoring.live import LiveScorer, ModelSpec
from scoring.sequential import confidence_sequence
from scoring.snapshot import AgreementView
from scoring.windows import AgreementCell

WEATHER = ToolCall("get_weather", '{"city": "Paris", "days": 3}')
PRIMARY = RequestRecord(
    request_id="p",
    model="m",
    variant="bf16",
    bits=16,
    role="primary",
    operation="chat",
    stream=False,
    status=200,
    started_at=100.0,
    duration_s=1.0,
    tool_calls=(WEATHER,),
    pair_id="p",
)
SHADOW = replace(PRIMARY, request_id="s", variant="nf4", bits=4, role="shadow")
SPEC = ModelSpec("m", "bf16", (("bf16", 16), ("nf4", 4)))


def _pair(hop: int, shadow_calls: tuple[ToolCall, ...], shadow_text: str = "") -> ShadowPair:
    primary = replace(PRIMARY, agent_turns_before=hop)
    return ShadowPair("p", primary, replace(SHADOW, tool_calls=shadow_calls, text=shadow_text))


def _compare(hop: int, shadow_calls: tuple[ToolCall, ...], text: str = "") -> PairComparison:
    cmp = compare_pair(_pair(hop, shadow_calls, text))
    assert cmp is not None
    return cmp


def _scorer(**changes: object) -> LiveScorer:
    return LiveScorer(ScoringConfig.model_validate(changes), [SPEC])


def _view(scorer: LiveScorer, now: float) -> AgreementView:
    (view,) = scorer.evaluate(now).models[0].agreement
    return view


def test_every_reason_has_one_bounded_label() -> None:
    labels = {verdict_label(r, r == "same") for r in AGREEMENT_REASONS if r != "no_answer"}
    labels |= {verdict_label("no_answer", None), verdict_label(None, False)}
    assert labels == set(VERDICT_LABELS)
    assert verdict_label("same", True) == "agree"
    assert verdict_label("different_answer", False) == "text_disagree"
    assert verdict_label(None, None) == "unknown"  # logged before reasons existed
    assert verdict_label("wrong_arguments", False) == "wrong_arguments"


def test_tool_call_pairs_reach_their_hop_cells_and_labels() -> None:
    scorer = _scorer()
    wrong_args = (ToolCall("get_weather", '{"city": "Lyon", "days": 3}'),)
    same_reordered = (ToolCall("get_weather", '{"days": 3.0, "city": "Paris"}'),)
    for cmp in (
        _compare(0, same_reordered),  # agrees: key order and 3 == 3.0 are irrelevant
        _compare(0, (WEATHER,)),
        _compare(1, wrong_args),
        _compare(3, (), "It is sunny."),  # text instead of a call
        _compare(4, (WEATHER, ToolCall("get_time", "{}"))),  # an extra call
        _compare(20, (ToolCall("search", '{"q": "Paris"}'),)),  # the wrong tool
    ):
        scorer.ingest_comparison(cmp, now=101.0)
    view = _view(scorer, 102.0)
    assert (view.agree, view.disagree, view.unknown) == (2, 4, 0)
    assert {h.bucket: (h.agree, h.disagree, h.unknown) for h in view.hops} == {
        "0": (2, 0, 0),
        "1": (0, 1, 0),
        "3-4": (0, 2, 0),
        "17+": (0, 1, 0),
    }
    assert [h.bucket for h in view.hops] == ["0", "1", "3-4", "17+"]  # in hop order
    assert dict(view.verdicts) == {
        "agree": 2,
        "wrong_arguments": 1,
        "text_instead_of_call": 1,
        "extra_call": 1,
        "wrong_tool": 1,
    }
    first = view.hops[0]
    assert first.rate is not None and first.rate.estimate == 1.0 and first.rate.low < 1.0
    # Six comparisons cannot answer the trend (min_graded = 20 per side by default).
    assert view.trend is not None and view.trend.grows is None and view.trend.difference is None
    assert (view.trend.first_compared, view.trend.later_compared) == (2, 4)


def test_tool_call_verdicts_without_a_reference_feed_the_agreement_rate() -> None:
    # No expected answer on either side: the verdict is the agreement itself.
    scorer = _scorer()
    for _ in range(3):
        scorer.ingest_comparison(_compare(2, ()), now=101.0)  # missing call
    scorer.ingest_comparison(_compare(2, (WEATHER,)), now=101.0)
    view = _view(scorer, 102.0)
    assert view.rate is not None and view.rate.estimate == pytest.approx(0.25)
    assert dict(view.verdicts) == {"agree": 1, "missing_call": 3}


def test_a_tool_call_answer_is_not_graded_against_a_reference() -> None:
    # An agent hop that called a tool has not answered the task yet: not a wrong answer.
    tagged = replace(PRIMARY, expected_answer="14", text="")
    processed = process_record(tagged)
    assert processed.evaluation is None and processed.observation.correct is None
    cmp = compare_pair(ShadowPair("p", tagged, replace(SHADOW, tool_calls=(), text="#### 14")))
    assert cmp is not None and cmp.reason == "text_instead_of_call"
    assert (cmp.primary_correct, cmp.shadow_correct) == (None, None)
    # The same request answering text is graded as before.
    assert process_record(replace(tagged, tool_calls=(), text="#### 14")).observation.correct


def test_the_trend_finds_disagreement_growing_after_the_first_hop() -> None:
    scorer = _scorer(trap={"min_graded": 20})
    for i in range(60):  # hop 0: all agree; hops 1-2: half disagree
        scorer.ingest_comparison(_compare(0, (WEATHER,)), now=101.0)
        calls = (WEATHER,) if i % 2 else (ToolCall("get_weather", '{"city": "Rome"}'),)
        scorer.ingest_comparison(_compare(1 + i % 2, calls), now=101.0)
    trend = _view(scorer, 102.0).trend
    assert trend is not None and trend.difference is not None
    assert (trend.first_compared, trend.first_disagree) == (60, 0)
    assert (trend.later_compared, trend.later_disagree) == (60, 30)
    assert trend.difference.estimate == pytest.approx(0.5)
    assert trend.difference.confidence == pytest.approx(0.95)
    assert 0.0 < trend.difference.low < 0.5 < trend.difference.high
    assert trend.grows is True


def test_the_trend_says_no_when_later_hops_agree_as_often() -> None:
    scorer = _scorer(trap={"min_graded": 20})
    for i in range(40):
        calls = (WEATHER,) if i % 4 else ()
        scorer.ingest_comparison(_compare(0, calls), now=101.0)
        scorer.ingest_comparison(_compare(5, calls), now=101.0)
    trend = _view(scorer, 102.0).trend
    assert trend is not None and trend.difference is not None
    assert trend.difference.estimate == 0.0 and trend.grows is False
    assert trend.difference.low < 0.0 < trend.difference.high


def test_the_trend_sequence_is_the_two_sample_bernoulli_construction() -> None:
    cell = AgreementCell()
    for _ in range(30):
        cell.add(True, "0", "agree")
    for _ in range(10):
        cell.add(False, "0", "wrong_tool")
    for _ in range(20):
        cell.add(False, "3-4", "wrong_arguments")
        cell.add(True, "9-16", "agree")
    cell.add(None, "9-16", "unknown")  # not comparable: in neither count
    trend = hop_trend(cell, since=5.0, alpha=0.05, tune_samples=300, min_samples=20)
    n_f, n_l = 40, 40
    diff = 20 / 40 - 10 / 40
    se = math.sqrt(0.25 * (1 / n_f + 1 / n_l))
    expected = confidence_sequence(diff, se, 2 / (1 / n_f + 1 / n_l), 0.05, 300)
    assert trend.difference is not None
    assert (trend.difference.low, trend.difference.high) == pytest.approx(
        (expected.low, expected.high)
    )
    assert trend.since == 5.0 and trend.first_disagree == 10 and trend.later_disagree == 20
    # 40 a side cannot tell 25 % from 50 % at every look: the sequence still covers 0.
    assert trend.difference.low < 0 < trend.difference.high and trend.grows is False


def test_hop_views_and_buckets_stay_bounded() -> None:
    cell = AgreementCell()
    for position in range(-3, 500):
        cell.add(position % 3 == 0, hop_position_bucket(position), "agree")
    assert set(cell.hops) == set(HOP_POSITION_BUCKETS)
    views = hop_views(cell, 0.95)
    assert [v.bucket for v in views] == list(HOP_POSITION_BUCKETS)
    assert FIRST_HOP == "0"
    merged = AgreementCell()
    merged.merge(cell)
    merged.merge(cell)
    assert merged.hops["17+"] == [2 * n for n in cell.hops["17+"]]
    assert merged.verdicts == {"agree": 2 * 503}


def test_a_new_epoch_restarts_the_trend_but_not_the_window() -> None:
    scorer = _scorer(trap={"min_graded": 1, "epoch_s": 100})
    scorer.ingest_comparison(_compare(0, (WEATHER,)), now=101.0)
    scorer.ingest_comparison(_compare(1, ()), now=101.0)
    before = _view(scorer, 102.0).trend
    assert before is not None and before.later_compared == 1
    scorer.new_epoch(150.0)
    after = _view(scorer, 151.0)
    assert after.trend is not None and after.trend.later_compared == 0
    assert after.trend.since == 150.0
    assert (after.agree, after.disagree) == (1, 1)  # the window still holds both
