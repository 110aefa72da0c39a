"""Token choice per row, and the left-padded batch cache that rows join and leave."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from backends.engine.kvbatch import KVBatch
from backends.engine.sampling import RowSampling, sample_tokens


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_greedy_rows_take_the_argmax() -> None:
    logits = torch.randn(4, 50, generator=_generator(0))
    assert sample_tokens(logits, [RowSampling()] * 4) == logits.argmax(-1).tolist()


def test_seeded_rows_repeat_and_do_not_disturb_greedy_neighbours() -> None:
    logits = torch.randn(3, 200, generator=_generator(1))

    def draw(seed: int) -> list[list[int]]:
        rows = [RowSampling(), RowSampling(1.0, 1.0, _generator(seed)), RowSampling()]
        return [sample_tokens(logits, rows) for _ in range(20)]

    first, again, other = draw(7), draw(7), draw(8)
    assert first == again
    assert [r[1] for r in first] != [r[1] for r in other]
    assert {(r[0], r[2]) for r in first} == {tuple(logits[[0, 2]].argmax(-1).tolist())}


@pytest.mark.parametrize("top_p", [0.0, 1e-6])
def test_tiny_top_p_keeps_only_the_most_likely_token(top_p: float) -> None:
    logits = torch.randn(1, 100, generator=_generator(2))
    rows = [RowSampling(2.0, top_p, _generator(3))]
    assert {sample_tokens(logits, rows)[0] for _ in range(30)} == {int(logits.argmax())}


def test_top_p_never_picks_outside_the_nucleus() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    rows = [RowSampling(1.0, 0.75, _generator(4))]
    picks = {sample_tokens(probs.log(), rows)[0] for _ in range(300)}
    assert picks == {0, 1}  # 0.5 + 0.3 reaches 0.75; token 2 and 3 are outside


def test_rows_and_logits_must_agree() -> None:
    with pytest.raises(ValueError):
        sample_tokens(torch.zeros(2, 5), [RowSampling()])


def _batch(lengths: list[int], layers: int = 2, fill: float = 1.0) -> KVBatch:
    longest = max(lengths)
    mask = torch.zeros(len(lengths), longest, dtype=torch.long)
    keys = torch.zeros(len(lengths), 2, longest, 4)
    for row, length in enumerate(lengths):
        mask[row, longest - length :] = 1
        keys[row, :, longest - length :] = fill + row
    cache = DynamicCache(ddp_cache_data=[(keys.clone(), keys.clone()) for _ in range(layers)])
    return KVBatch.from_prefill(cache, mask)


def test_joining_rows_are_left_padded_to_the_common_length() -> None:
    batch = _batch([3, 2])
    batch.extend(_batch([5], fill=10.0))
    assert batch.mask.tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [1, 1, 1, 1, 1]]
    for layer in batch.layers:
        assert layer.keys.shape == (3, 2, 5, 4)
        # Real slots keep their values, padding is zero (not garbage or NaN).
        assert torch.equal(layer.keys[:, 0, :, 0] != 0, batch.mask.bool())
        assert layer.keys[2, 0, 0, 0] == 10.0
    assert batch.cache.get_seq_length() == 5


def test_leaving_rows_are_dropped_and_all_padding_columns_trimmed() -> None:
    batch = _batch([3, 2])
    batch.extend(_batch([6], fill=10.0))
    batch.keep([1, 0])  # the long one leaves; order may change
    assert batch.mask.tolist() == [[0, 1, 1], [1, 1, 1]]
    for layer in batch.layers:
        assert layer.keys[:, 0, :, 0].tolist() == [[0.0, 2.0, 2.0], [1.0, 1.0, 1.0]]


def test_step_inputs_give_each_row_its_own_position() -> None:
    batch = _batch([3, 1])
    mask, positions = batch.step_inputs()
    assert positions.tolist() == [[3], [1]]
    assert mask.tolist() == [[1, 1, 1, 1], [0, 0, 1, 1]]
    assert batch.length == 4
